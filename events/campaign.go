package events

import "encoding/json"

// CampaignStream is the stream of one campaign: its definition and its status changes.
func CampaignStream(id string) string { return CategoryCampaign + "-" + id }

// Event types of the campaign stream.
const (
	TypeCampaignSaved         = "campaign.saved"
	TypeCampaignStatusChanged = "campaign.status_changed"
	TypeCampaignDeleted       = "campaign.deleted"
)

// Campaign statuses.
const (
	CampaignDraft     = "draft"
	CampaignScheduled = "scheduled"
	CampaignRunning   = "running"
	CampaignPaused    = "paused"
	CampaignCompleted = "completed"
	CampaignCancelled = "cancelled"
	CampaignFailed    = "failed"
)

// Schedule kinds.
const (
	ScheduleNow  = "now"
	ScheduleAt   = "at"
	ScheduleCron = "cron"
)

// Schedule says when a campaign sends: now, once at At, or on every Cron tick in Timezone.
type Schedule struct {
	Kind     string `json:"kind"`
	At       string `json:"at,omitempty"`
	Cron     string `json:"cron,omitempty"`
	Timezone string `json:"timezone,omitempty"`
}

// RateLimit caps a campaign's sends; zero means no cap of that kind (the sender's own limit
// still applies).
type RateLimit struct {
	PerSecond int `json:"per_second,omitempty"`
	PerMinute int `json:"per_minute,omitempty"`
}

// QuietHours is a daily window, in the recipient's local time, in which nothing is sent; it may
// cross midnight. TimezoneFallback is used for recipients whose zone is unknown.
type QuietHours struct {
	Start            string `json:"start"`
	End              string `json:"end"`
	TimezoneFallback string `json:"timezone_fallback"`
}

// RetryPolicy bounds retries of a send that was definitely not accepted (429, 5xx before
// acceptance).
type RetryPolicy struct {
	MaxAttempts    int    `json:"max_attempts"`
	InitialBackoff string `json:"initial_backoff"`
	MaxBackoff     string `json:"max_backoff"`
}

// CampaignSaved is the whole campaign definition after a create or an update. Exactly one of
// SegmentID and SegmentRule may be set (neither: everyone subscribed to Topic).
type CampaignSaved struct {
	ID          string          `json:"id"`
	Name        string          `json:"name"`
	Topic       string          `json:"topic"`
	TemplateID  string          `json:"template_id"`
	SegmentID   string          `json:"segment_id,omitempty"`
	SegmentRule json.RawMessage `json:"segment_rule,omitempty"`
	Schedule    Schedule        `json:"schedule"`
	RateLimit   RateLimit       `json:"rate_limit"`
	QuietHours  *QuietHours     `json:"quiet_hours,omitempty"`
	Retry       RetryPolicy     `json:"retry"`
}

func (CampaignSaved) EventType() string  { return TypeCampaignSaved }
func (CampaignSaved) SchemaVersion() int { return 1 }

// CampaignStatusChanged moves a campaign through its life cycle.
type CampaignStatusChanged struct {
	ID     string `json:"id"`
	From   string `json:"from"`
	To     string `json:"to"`
	Reason string `json:"reason,omitempty"`
}

func (CampaignStatusChanged) EventType() string  { return TypeCampaignStatusChanged }
func (CampaignStatusChanged) SchemaVersion() int { return 1 }

// CampaignDeleted removes a campaign that never ran.
type CampaignDeleted struct {
	ID string `json:"id"`
}

func (CampaignDeleted) EventType() string  { return TypeCampaignDeleted }
func (CampaignDeleted) SchemaVersion() int { return 1 }
