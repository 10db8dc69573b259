package api

import (
	"errors"
	"math"
	"net/http"
	"sort"
	"time"

	"herald/commands"
	"herald/commands/template"
	"herald/events"
	"herald/projections/segment"
)

// Reasons a recipient would not get a campaign message now.
const (
	skipConsent        = "consent"
	skipTopic          = "topic"
	skipMissingValue   = "missing_template_variable"
	skipTooLong        = "too_long"
	skipOutsideWindow  = "outside_24h_window_without_approved_template"
	decisionSend       = "send"
	decisionDeferred   = "deferred"
	decisionSkipped    = "skipped"
	whatsappWindow     = 24 * time.Hour
	senderDefaultLimit = 80 // Twilio's default WhatsApp throughput per sender, messages per second
	previewSample      = 20
)

// CampaignPreview is a dry run of a campaign against the current read models: who matches,
// what would happen to each of them now, sample messages, and how long sending would take.
type CampaignPreview struct {
	At         time.Time        `json:"at"`
	Matched    int64            `json:"matched"`
	Recipients int64            `json:"recipients"`
	SendNow    int64            `json:"send_now"`
	Deferred   []DeferredBucket `json:"deferred"`
	Skipped    map[string]int64 `json:"skipped"`
	Samples    []PreviewMessage `json:"samples"`
	ETASeconds float64          `json:"eta_seconds"`
	FinishesAt time.Time        `json:"finishes_at"`
	RatePerSec float64          `json:"rate_per_second"`
}

// DeferredBucket counts recipients held by quiet hours until one time.
type DeferredBucket struct {
	Until time.Time `json:"until"`
	Count int64     `json:"count"`
}

// PreviewMessage is what would happen to one recipient.
type PreviewMessage struct {
	Phone    string    `json:"phone"`
	Decision string    `json:"decision"`
	Reason   string    `json:"reason,omitempty"`
	Message  *Rendered `json:"message,omitempty"`
	// With quiet hours: the recipient's zone, their local time at the dry run, and for a
	// deferred message when it would go (UTC).
	Zone      string     `json:"zone,omitempty"`
	LocalTime string     `json:"local_time,omitempty"`
	Until     *time.Time `json:"until,omitempty"`
}

func (a *API) previewCampaign(w http.ResponseWriter, r *http.Request) error {
	ctx := r.Context()
	id, err := idParam(r)
	if err != nil {
		return err
	}
	c, err := a.campaigns.read(ctx, id)
	if err != nil {
		return err
	}
	tpl, err := a.templates.read(ctx, c.TemplateID)
	if err != nil {
		return &commands.StateError{Subject: "campaign " + id, Reason: "its template " + c.TemplateID + " no longer exists"}
	}
	compiled, err := tpl.Template.Compile()
	if err != nil {
		return err
	}
	ruleJSON := c.SegmentRule
	if c.SegmentID != "" {
		s, err := a.segments.read(ctx, c.SegmentID)
		if err != nil {
			return &commands.StateError{Subject: "campaign " + id, Reason: "its segment " + c.SegmentID + " no longer exists"}
		}
		ruleJSON = s.Rule
	}
	now := a.now().UTC()
	where, args := "true", []any{c.Topic}
	if len(ruleJSON) > 0 {
		rule, errs := parseRule("segment_rule", ruleJSON)
		if len(errs) > 0 {
			return invalid(errs...)
		}
		where, args, err = segment.Compile(rule, segment.Params{Now: now, ArgOffset: 1})
		if err != nil {
			return ruleError(err)
		}
		args = append([]any{c.Topic}, args...)
	}
	var quiet *commands.QuietHours
	if c.QuietHours != nil {
		q, probs := commands.ParseQuietHours(*c.QuietHours)
		if len(probs) > 0 {
			return invalid(FieldError{Field: probs[0].Field, Reason: probs[0].Reason})
		}
		quiet = &q
	}

	out := CampaignPreview{At: now, Skipped: map[string]int64{}, Samples: []PreviewMessage{}, Deferred: []DeferredBucket{}}
	subscribed := `EXISTS (SELECT 1 FROM subscriptions s WHERE s.topic = $1 AND s.subscribed AND s.phone = u.phone)`
	var optedOut, unsubscribed int64
	if err := a.pool.QueryRow(ctx, `SELECT count(*), count(*) FILTER (WHERE u.consent <> 'OPT_IN'),
    count(*) FILTER (WHERE u.consent = 'OPT_IN' AND NOT `+subscribed+`)
FROM users u WHERE `+where, args...).Scan(&out.Matched, &optedOut, &unsubscribed); err != nil {
		return err
	}
	out.Skipped[skipConsent], out.Skipped[skipTopic] = optedOut, unsubscribed

	rows, err := a.pool.Query(ctx, `SELECT u.phone, u.country, u.attributes, u.locale, u.timezone, u.last_inbound_at
FROM users u WHERE u.consent = 'OPT_IN' AND `+subscribed+` AND (`+where+`) ORDER BY u.phone`, args...)
	if err != nil {
		return err
	}
	defer rows.Close()
	deferred := map[time.Time]int64{}
	for rows.Next() {
		var (
			phone, country, locale, tz string
			attrs                      map[string]any
			lastInbound                *time.Time
		)
		if err := rows.Scan(&phone, &country, &attrs, &locale, &tz, &lastInbound); err != nil {
			return err
		}
		out.Recipients++
		res, rerr := compiled.Render(template.Data{Phone: phone, Locale: locale, Country: country, Attributes: attrs})
		msg := PreviewMessage{Phone: phone}
		rm := rendered(res)
		msg.Message = &rm
		switch {
		case errors.Is(rerr, template.ErrMissingValue):
			msg.Decision, msg.Reason = decisionSkipped, skipMissingValue
		case errors.Is(rerr, template.ErrTooLong):
			msg.Decision, msg.Reason = decisionSkipped, skipTooLong
		case rerr != nil:
			return rerr
		case res.ContentSID == "" && (lastInbound == nil || now.Sub(*lastInbound) > whatsappWindow):
			msg.Decision, msg.Reason = decisionSkipped, skipOutsideWindow
		}
		if quiet != nil && (msg.Decision == "" || len(out.Samples) < previewSample) {
			d := quiet.Decide(now, tz, phone)
			msg.Zone, msg.LocalTime = d.Zone, d.Local
			if msg.Decision == "" && d.Quiet {
				msg.Decision, msg.Reason = decisionDeferred, d.Reason(*quiet)
				until := d.Until
				msg.Until = &until
				deferred[d.Until]++
			}
		}
		switch msg.Decision {
		case "":
			msg.Decision = decisionSend
			out.SendNow++
		case decisionSkipped:
			out.Skipped[msg.Reason]++
		}
		if len(out.Samples) < previewSample {
			out.Samples = append(out.Samples, msg)
		}
	}
	if err := rows.Err(); err != nil {
		return err
	}
	for until, n := range deferred {
		out.Deferred = append(out.Deferred, DeferredBucket{Until: until, Count: n})
	}
	sort.Slice(out.Deferred, func(i, j int) bool { return out.Deferred[i].Until.Before(out.Deferred[j].Until) })

	out.RatePerSec = effectiveRate(c.RateLimit)
	out.ETASeconds = math.Ceil(float64(out.SendNow) / out.RatePerSec)
	out.FinishesAt = now.Add(time.Duration(out.ETASeconds) * time.Second)
	writeJSON(w, http.StatusOK, out)
	return nil
}

// effectiveRate is the messages per second the campaign's limits and the sender allow.
func effectiveRate(rl events.RateLimit) float64 {
	rate := float64(senderDefaultLimit)
	if rl.PerSecond > 0 {
		rate = math.Min(rate, float64(rl.PerSecond))
	}
	if rl.PerMinute > 0 {
		rate = math.Min(rate, float64(rl.PerMinute)/60)
	}
	return rate
}
