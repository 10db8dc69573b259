package ui

// The API's resources as the pages use them (fields the pages do not show are left out).

type list[T any] struct {
	Items      []T    `json:"items"`
	NextCursor string `json:"next_cursor"`
}

type campaign struct {
	ID          string         `json:"id"`
	Name        string         `json:"name"`
	Topic       string         `json:"topic"`
	TemplateID  string         `json:"template_id"`
	SegmentID   string         `json:"segment_id"`
	SegmentRule any            `json:"segment_rule"`
	Status      string         `json:"status"`
	Schedule    map[string]any `json:"schedule"`
	RateLimit   map[string]any `json:"rate_limit"`
	QuietHours  map[string]any `json:"quiet_hours"`
	Retry       map[string]any `json:"retry"`
	CreatedAt   string         `json:"created_at"`
	UpdatedAt   string         `json:"updated_at"`
	Version     int            `json:"version"`
}

type failure struct {
	Code    any    `json:"code"`
	Reason  string `json:"reason"`
	Count   int    `json:"count"`
	Meaning string `json:"meaning"`
	Remedy  string `json:"remedy"`
}

type stats struct {
	At           string         `json:"at"`
	Total        int            `json:"total"`
	ByState      map[string]int `json:"by_state"`
	ByStatus     map[string]int `json:"by_status"`
	Sent         int            `json:"sent"`
	Delivered    int            `json:"delivered"`
	Read         int            `json:"read"`
	DeliveryRate *float64       `json:"delivery_rate"`
	ReadRate     *float64       `json:"read_rate"`
	Failures     []failure      `json:"failures"`
	Skipped      map[string]int `json:"skipped"`
	Deferred     map[string]int `json:"deferred"`
	OptOuts      map[string]int `json:"opt_outs"`
	Progress     struct {
		PerSecond  float64 `json:"per_second"`
		Remaining  int     `json:"remaining"`
		ETASeconds float64 `json:"eta_seconds"`
		FinishesAt string  `json:"finishes_at"`
	} `json:"progress"`
}

type rendered struct {
	Locale     string   `json:"locale"`
	Text       string   `json:"text"`
	Chars      int      `json:"chars"`
	TooLong    bool     `json:"too_long"`
	ContentSID string   `json:"content_sid"`
	Missing    []string `json:"missing"`
}

type campaignPreview struct {
	At         string `json:"at"`
	Matched    int    `json:"matched"`
	Recipients int    `json:"recipients"`
	SendNow    int    `json:"send_now"`
	Deferred   []struct {
		Until string `json:"until"`
		Count int    `json:"count"`
	} `json:"deferred"`
	Skipped map[string]int `json:"skipped"`
	Samples []struct {
		Phone     string    `json:"phone"`
		Decision  string    `json:"decision"`
		Reason    string    `json:"reason"`
		Message   *rendered `json:"message"`
		Zone      string    `json:"zone"`
		LocalTime string    `json:"local_time"`
		Until     *string   `json:"until"`
	} `json:"samples"`
	ETASeconds    float64 `json:"eta_seconds"`
	FinishesAt    string  `json:"finishes_at"`
	RatePerSecond float64 `json:"rate_per_second"`
}

type message struct {
	ID           string `json:"id"`
	Kind         string `json:"kind"`
	CampaignID   string `json:"campaign_id"`
	Phone        string `json:"phone"`
	State        string `json:"state"`
	Reason       string `json:"reason"`
	Detail       string `json:"detail"`
	Status       string `json:"status"`
	ErrorCode    any    `json:"error_code"`
	ErrorMessage string `json:"error_message"`
	Attempts     int    `json:"attempts"`
	Body         string `json:"body"`
	DueAt        string `json:"due_at"`
	QueuedAt     string `json:"queued_at"`
	UpdatedAt    string `json:"updated_at"`
}

type user struct {
	Phone         string         `json:"phone"`
	Country       string         `json:"country"`
	Attributes    map[string]any `json:"attributes"`
	Consent       string         `json:"consent"`
	ConsentSource string         `json:"consent_source"`
	Locale        string         `json:"locale"`
	Timezone      string         `json:"timezone"`
	Topics        []string       `json:"topics"`
	LastInboundAt *string        `json:"last_inbound_at"`
	CreatedAt     string         `json:"created_at"`
	UpdatedAt     string         `json:"updated_at"`
}

type inbound struct {
	EventID     string `json:"event_id"`
	Phone       string `json:"phone"`
	Body        string `json:"body"`
	Command     string `json:"command"`
	Topic       string `json:"topic"`
	ProfileName string `json:"profile_name"`
	ReceivedAt  string `json:"received_at"`
}

type segment struct {
	ID          string `json:"id"`
	Name        string `json:"name"`
	Description string `json:"description"`
	Rule        any    `json:"rule"`
	UpdatedAt   string `json:"updated_at"`
	Version     int    `json:"version"`
}

type variant struct {
	Body       string `json:"body,omitempty"`
	ContentSID string `json:"content_sid,omitempty"`
}

type tmpl struct {
	ID            string             `json:"id"`
	Name          string             `json:"name"`
	DefaultLocale string             `json:"default_locale"`
	Variants      map[string]variant `json:"variants"`
	UpdatedAt     string             `json:"updated_at"`
	Version       int                `json:"version"`
}

type importIssue struct {
	Row    int    `json:"row"`
	Code   string `json:"code"`
	Value  string `json:"value"`
	Detail string `json:"detail"`
}

type importReport struct {
	ID            string         `json:"id"`
	Status        string         `json:"status"`
	Error         string         `json:"error"`
	Format        string         `json:"format"`
	Mode          string         `json:"mode"`
	Source        string         `json:"source"`
	Bytes         int64          `json:"bytes"`
	Totals        map[string]int `json:"totals"`
	RejectedBy    map[string]int `json:"rejected_by"`
	WarningsBy    map[string]int `json:"warnings_by"`
	Countries     map[string]int `json:"countries"`
	Rejections    []importIssue  `json:"rejections"`
	Warnings      []importIssue  `json:"warnings"`
	Truncated     bool           `json:"issues_truncated"`
	StartedAt     string         `json:"started_at"`
	FinishedAt    *string        `json:"finished_at"`
	RowsPerSecond float64        `json:"rows_per_second"`
}
