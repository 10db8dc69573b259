package api

import (
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"herald/commands"
	"herald/events"
)

// Campaign is a campaign as the API shows it.
type Campaign struct {
	ID          string             `json:"id"`
	Name        string             `json:"name"`
	Topic       string             `json:"topic"`
	TemplateID  string             `json:"template_id"`
	SegmentID   string             `json:"segment_id,omitempty"`
	SegmentRule json.RawMessage    `json:"segment_rule,omitempty"`
	Status      string             `json:"status"`
	Schedule    events.Schedule    `json:"schedule"`
	RateLimit   events.RateLimit   `json:"rate_limit"`
	QuietHours  *events.QuietHours `json:"quiet_hours,omitempty"`
	Retry       events.RetryPolicy `json:"retry"`
	CreatedAt   time.Time          `json:"created_at"`
	UpdatedAt   time.Time          `json:"updated_at"`
	Version     int                `json:"version"`
}

// campaignBody is what a client may set; id and status are the server's.
type campaignBody struct {
	Name        string              `json:"name"`
	Topic       string              `json:"topic"`
	TemplateID  string              `json:"template_id"`
	SegmentID   string              `json:"segment_id"`
	SegmentRule json.RawMessage     `json:"segment_rule"`
	Schedule    *events.Schedule    `json:"schedule"`
	RateLimit   events.RateLimit    `json:"rate_limit"`
	QuietHours  *events.QuietHours  `json:"quiet_hours"`
	Retry       *events.RetryPolicy `json:"retry"`
}

// Limits of a campaign definition.
const (
	maxPerSecond   = 1000
	maxPerMinute   = 60000
	maxAttempts    = 20
	defaultRetries = 5
)

// DefaultRetry is the retry policy of a campaign that sets none.
var DefaultRetry = events.RetryPolicy{MaxAttempts: defaultRetries, InitialBackoff: "30s", MaxBackoff: "30m"}

func (a *API) checkCampaign(ctx context.Context, id string, b campaignBody) (events.CampaignSaved, error) {
	var errs fieldErrors
	checkName(&errs, "name", b.Name)
	topic := checkTopic(&errs, "topic", b.Topic)
	if b.TemplateID == "" {
		errs.add("template_id", "is required")
	} else if _, err := a.templates.read(ctx, b.TemplateID); err != nil {
		errs.add("template_id", "no template has this id")
	}
	var rule json.RawMessage
	switch {
	case b.SegmentID != "" && len(b.SegmentRule) > 0:
		errs.add("segment_rule", "give segment_id or segment_rule, not both")
	case b.SegmentID != "":
		if _, err := a.segments.read(ctx, b.SegmentID); err != nil {
			errs.add("segment_id", "no segment has this id")
		}
	case len(b.SegmentRule) > 0 && string(b.SegmentRule) != "null":
		_, ruleErrs := parseRule("segment_rule", b.SegmentRule)
		errs = append(errs, ruleErrs...)
		rule, _ = compactJSON(b.SegmentRule)
	}
	schedule := events.Schedule{Kind: events.ScheduleNow}
	if b.Schedule != nil {
		schedule = *b.Schedule
	}
	_, probs := commands.ParseSchedule(schedule)
	for _, p := range probs {
		errs.add(p.Field, "%s", p.Reason)
	}
	if b.RateLimit.PerSecond < 0 || b.RateLimit.PerSecond > maxPerSecond {
		errs.add("rate_limit.per_second", "must be from 0 (no cap) to %d", maxPerSecond)
	}
	if b.RateLimit.PerMinute < 0 || b.RateLimit.PerMinute > maxPerMinute {
		errs.add("rate_limit.per_minute", "must be from 0 (no cap) to %d", maxPerMinute)
	}
	if b.QuietHours != nil {
		_, probs := commands.ParseQuietHours(*b.QuietHours)
		for _, p := range probs {
			errs.add(p.Field, "%s", p.Reason)
		}
	}
	retry := DefaultRetry
	if b.Retry != nil {
		retry = *b.Retry
		if retry.MaxAttempts < 1 || retry.MaxAttempts > maxAttempts {
			errs.add("retry.max_attempts", "must be from 1 to %d", maxAttempts)
		}
		initial, err1 := time.ParseDuration(retry.InitialBackoff)
		if err1 != nil || initial < time.Second {
			errs.add("retry.initial_backoff", "must be a duration of at least 1s, like 30s")
		}
		maxB, err2 := time.ParseDuration(retry.MaxBackoff)
		if err2 != nil || maxB > 24*time.Hour {
			errs.add("retry.max_backoff", "must be a duration of at most 24h, like 30m")
		} else if err1 == nil && maxB < initial {
			errs.add("retry.max_backoff", "must be at least initial_backoff")
		}
	}
	if err := errs.err(); err != nil {
		return events.CampaignSaved{}, err
	}
	return events.CampaignSaved{ID: id, Name: b.Name, Topic: topic, TemplateID: b.TemplateID, SegmentID: b.SegmentID,
		SegmentRule: rule, Schedule: schedule, RateLimit: b.RateLimit, QuietHours: b.QuietHours, Retry: retry}, nil
}

func (a *API) createCampaign(w http.ResponseWriter, r *http.Request) error {
	return a.saveCampaign(w, r, true)
}

func (a *API) replaceCampaign(w http.ResponseWriter, r *http.Request) error {
	return a.saveCampaign(w, r, false)
}

func (a *API) saveCampaign(w http.ResponseWriter, r *http.Request, create bool) error {
	id, expected, status, err := saveTarget(r, create)
	if err != nil {
		return err
	}
	var body campaignBody
	if err := a.decode(w, r, &body); err != nil {
		return err
	}
	c, err := a.checkCampaign(r.Context(), id, body)
	if err != nil {
		return err
	}
	written, err := a.catalog.SaveCampaign(r.Context(), c, create, expected, metadata(r))
	if err != nil {
		return err
	}
	return a.campaigns.answer(a, w, r, status, id, written)
}

// Campaign actions. The runner (a later piece) acts on the status; here they move it.
const (
	actionLaunch = "launch"
	actionPause  = "pause"
	actionResume = "resume"
	actionCancel = "cancel"
)

func (a *API) campaignAction(action string) handlerFunc {
	return func(w http.ResponseWriter, r *http.Request) error {
		id, expected, err := target(r)
		if err != nil {
			return err
		}
		var b struct {
			Reason string `json:"reason"`
		}
		if r.ContentLength != 0 {
			if err := a.decode(w, r, &b); err != nil {
				return err
			}
		}
		c, err := a.campaigns.read(r.Context(), id)
		if err != nil {
			return err
		}
		var to string
		switch action {
		case actionLaunch, actionResume:
			to = events.CampaignRunning
			if c.Schedule.Kind != events.ScheduleNow {
				to = events.CampaignScheduled
			}
		case actionPause:
			to = events.CampaignPaused
		case actionCancel:
			to = events.CampaignCancelled
		}
		if action == actionResume && c.Status != events.CampaignPaused {
			return &commands.StateError{Subject: "campaign " + id, Reason: "only a paused campaign can be resumed"}
		}
		if action == actionLaunch && c.Status != events.CampaignDraft {
			return &commands.StateError{Subject: "campaign " + id, Reason: "only a draft campaign can be launched; it is " + c.Status}
		}
		reason := b.Reason
		if reason == "" {
			reason = action + " via API"
		}
		written, err := a.catalog.ChangeCampaignStatus(r.Context(), id, to, reason, expected, metadata(r))
		if err != nil {
			return err
		}
		return a.campaigns.answer(a, w, r, http.StatusOK, id, written)
	}
}

const campaignColumns = `id, name, topic, template_id, segment_id, segment_rule, status, schedule, rate_limit, quiet_hours, retry,
    created_at, updated_at, version`

func scanCampaign(row pgx.Row) (Campaign, error) {
	var c Campaign
	var rule []byte
	err := row.Scan(&c.ID, &c.Name, &c.Topic, &c.TemplateID, &c.SegmentID, &rule, &c.Status, &c.Schedule, &c.RateLimit,
		&c.QuietHours, &c.Retry, &c.CreatedAt, &c.UpdatedAt, &c.Version)
	if len(rule) > 0 {
		c.SegmentRule = rule
	}
	return c, err
}

func (a *API) getCampaign(w http.ResponseWriter, r *http.Request) error { return a.campaigns.get(w, r) }

func (a *API) listCampaigns(w http.ResponseWriter, r *http.Request) error {
	status := r.URL.Query().Get("status")
	if status != "" {
		q := r.URL.Query()
		q.Del("status")
		r.URL.RawQuery = q.Encode()
		if !strings.Contains(" draft scheduled running paused completed cancelled failed ", " "+status+" ") {
			return invalid(FieldError{Field: "status", Reason: "must be one of draft scheduled running paused completed cancelled failed"})
		}
	}
	return a.campaigns.list(w, r, `AND ($3 = '' OR status = $3)`, status)
}

// scheduleCampaign sets a campaign's schedule — {"kind":"at","at":…} once, or
// {"kind":"cron","cron":…,"timezone":…} recurring, each occurrence its own run — and moves it
// to scheduled; the saga starts each run when it is due.
func (a *API) scheduleCampaign(w http.ResponseWriter, r *http.Request) error {
	id, expected, err := target(r)
	if err != nil {
		return err
	}
	var sched events.Schedule
	if err := a.decode(w, r, &sched); err != nil {
		return err
	}
	var errs fieldErrors
	if sched.Kind == events.ScheduleNow {
		errs.add("schedule.kind", "is at or cron here; to send now, launch the campaign")
	}
	parsed, probs := commands.ParseSchedule(sched)
	for _, p := range probs {
		errs.add(p.Field, "%s", p.Reason)
	}
	if len(probs) == 0 && sched.Kind == events.ScheduleAt && parsed.Next(a.now()).IsZero() {
		errs.add("schedule.at", "is in the past")
	}
	if err := errs.err(); err != nil {
		return err
	}
	c, err := a.campaigns.read(r.Context(), id)
	if err != nil {
		return err
	}
	saved := events.CampaignSaved{ID: id, Name: c.Name, Topic: c.Topic, TemplateID: c.TemplateID, SegmentID: c.SegmentID,
		SegmentRule: c.SegmentRule, Schedule: sched, RateLimit: c.RateLimit, QuietHours: c.QuietHours, Retry: c.Retry}
	written, err := a.catalog.SaveCampaign(r.Context(), saved, false, expected, metadata(r))
	if err != nil {
		return err
	}
	if c.Status != events.CampaignScheduled {
		if written, err = a.catalog.ChangeCampaignStatus(r.Context(), id, events.CampaignScheduled, "scheduled via API", written.Version, metadata(r)); err != nil {
			return err
		}
	}
	return a.campaigns.answer(a, w, r, http.StatusOK, id, written)
}
