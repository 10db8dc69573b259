package saga

import (
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"strings"
	"time"

	"herald/commands"
	"herald/commands/template"
	"herald/events"
)

// recipient is what the decisions read about the person: their stream's consent and topics
// (strongly consistent) and their read-model row (attributes, locale, zone, 24-hour window).
type recipient struct {
	state         commands.UserState
	found         bool // the users row exists
	country       string
	locale        string
	timezone      string
	attributes    map[string]any
	lastInboundAt *time.Time
}

// campaign is what the decisions read about a campaign (zero for replies).
type campaign struct {
	id         string
	status     string
	topic      string
	templateID string
	rate       events.RateLimit
	quiet      *commands.QuietHours
	retry      events.RetryPolicy
}

// sendPlan is a decision to send: what, to whom, as which attempt.
type sendPlan struct {
	attempt events.MessageSendAttempted
}

// decision is the outcome of deciding one due message: an event to record, a send, or nothing.
type decision struct {
	event events.Event
	send  *sendPlan
}

const whatsappWindow = 24 * time.Hour

// decide applies the saga's rules, in order, to a message that is due now. It is pure: every
// input is an argument, and the result names the rule and its inputs.
func decide(m *message, c *campaign, tpl *template.Compiled, r recipient, from string, now time.Time, capReached string) decision {
	q := m.queued
	switch {
	case c != nil && c.status == events.CampaignCancelled:
		return decision{event: events.MessageCancelled{Reason: "campaign cancelled"}}
	case !r.state.Exists || !r.found:
		return decision{event: events.MessageSkipped{Reason: events.ReasonUserDeleted, Detail: "no user " + q.Phone}}
	case r.state.Consent != events.ConsentOptIn:
		// Replies too: the API refuses one to an opted-out user (commands.DecideReply), and a
		// STOP that arrives after the reply was queued wins here.
		return decision{event: events.MessageSkipped{Reason: events.ReasonConsent, Detail: "consent is " + r.state.Consent}}
	case q.Topic != "" && !r.state.Topics[q.Topic]:
		return decision{event: events.MessageSkipped{Reason: events.ReasonNotSubscribed, Detail: "not subscribed to " + q.Topic}}
	}
	if m.attempts >= retryPolicy(c).MaxAttempts {
		return decision{event: events.MessageFailed{Attempt: m.attempts, Reason: fmt.Sprintf("%s after %d attempts", events.ReasonAttemptsExhausted, m.attempts)}}
	}

	// What to send: the template for the user's locale, or the reply's own text.
	var res template.Result
	if tpl != nil {
		var err error
		res, err = tpl.Render(template.Data{Phone: q.Phone, Locale: r.locale, Country: r.country, Attributes: r.attributes, Event: q.Payload})
		var missing *template.MissingError
		switch {
		case errors.As(err, &missing):
			return decision{event: events.MessageSkipped{Reason: events.ReasonMissingVariable, Detail: strings.Join(missing.Placeholders, ", ")}}
		case errors.Is(err, template.ErrTooLong):
			return decision{event: events.MessageSkipped{Reason: events.ReasonTooLong, Detail: err.Error()}}
		case err != nil:
			return decision{event: events.MessageSkipped{Reason: events.ReasonTemplateMissing, Detail: err.Error()}}
		}
	} else if q.Body != "" {
		res = template.Result{Text: q.Body}
	} else {
		return decision{event: events.MessageSkipped{Reason: events.ReasonTemplateMissing, Detail: "template " + q.TemplateID + " does not exist"}}
	}

	// The WhatsApp 24-hour window: free text only if the user wrote within 24 h.
	inWindow := r.lastInboundAt != nil && now.Sub(*r.lastInboundAt) < whatsappWindow
	plan := events.MessageSendAttempted{Attempt: m.attempts + 1, To: "whatsapp:" + q.Phone, From: from, Locale: res.Locale, At: now}
	switch {
	case inWindow && res.Text != "":
		plan.Body = res.Text
	case res.ContentSID != "":
		plan.ContentSID, plan.ContentVariables = res.ContentSID, res.ContentVariables
		plan.Body = res.Text // for the trail; Twilio gets the ContentSid
	default:
		last := "never"
		if r.lastInboundAt != nil {
			last = r.lastInboundAt.UTC().Format(time.RFC3339)
		}
		return decision{event: events.MessageSkipped{Reason: events.ReasonOutsideWindow,
			Detail: "last inbound message " + last + "; the template has no approved content_sid for locale " + res.Locale}}
	}

	if c != nil && c.quiet != nil && q.Kind != events.MessageKindReply {
		if d := c.quiet.Decide(now, r.timezone, q.Phone); d.Quiet {
			return decision{event: events.MessageDeferred{Reason: events.ReasonQuietHours, Detail: d.Reason(*c.quiet), Until: d.Until}}
		}
	}
	if capReached != "" && q.Kind != events.MessageKindReply {
		return decision{event: events.MessageDeferred{Reason: events.ReasonFrequencyCap, Detail: capReached, Until: now.Add(time.Hour)}}
	}
	return decision{send: &sendPlan{attempt: plan}}
}

// retryPolicy is the campaign's retry policy, or, for messages without a campaign (triggers,
// replies) the default.
func retryPolicy(c *campaign) events.RetryPolicy {
	if c == nil || c.retry.MaxAttempts < 1 {
		return events.RetryPolicy{MaxAttempts: 5, InitialBackoff: "30s", MaxBackoff: "30m"}
	}
	return c.retry
}

// backoff is the pause before attempt n+1: exponential from the policy's initial backoff,
// capped, with full jitter in its upper half; at least retryAfter.
func backoff(p events.RetryPolicy, attempt int, retryAfter time.Duration) time.Duration {
	initial, err := time.ParseDuration(p.InitialBackoff)
	if err != nil || initial <= 0 {
		initial = 30 * time.Second
	}
	maxB, err := time.ParseDuration(p.MaxBackoff)
	if err != nil || maxB < initial {
		maxB = 30 * time.Minute
	}
	d := time.Duration(math.Min(float64(initial)*math.Pow(2, float64(attempt-1)), float64(maxB)))
	d = d/2 + time.Duration(rand.Int64N(int64(d/2)+1))
	return max(d, retryAfter)
}
