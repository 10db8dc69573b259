package saga

import (
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"herald/commands"
	"herald/commands/template"
	"herald/events"
)

func compiled(t *testing.T, variants map[string]template.Variant) *template.Compiled {
	t.Helper()
	c, err := template.Template{Name: "t", Channel: "whatsapp", DefaultLocale: "es", Variants: variants}.Compile()
	require.NoError(t, err)
	return c
}

// TestDecide walks the saga's rules in order, each case changing one input of a message that
// would otherwise be sent.
func TestDecide(t *testing.T) {
	t.Parallel()
	now := time.Date(2026, 11, 27, 15, 0, 0, 0, time.UTC) // 10:00 in Lima
	recent := now.Add(-time.Hour)
	old := now.Add(-25 * time.Hour)
	body := compiled(t, map[string]template.Variant{"es": {Body: "Hola {first_name}"}, "en": {Body: "Hi {first_name}"}})
	approved := compiled(t, map[string]template.Variant{"es": {Body: "Hola {first_name}", ContentSID: "HX0123456789abcdef0123456789abcdef",
		ContentVariables: map[string]string{"1": "{first_name}"}}})
	long := compiled(t, map[string]template.Variant{"es": {Body: "{first_name}"}})
	night, probs := commands.ParseQuietHours(events.QuietHours{Start: "21:00", End: "08:00", TimezoneFallback: "America/Lima"})
	require.Empty(t, probs)
	morning, probs := commands.ParseQuietHours(events.QuietHours{Start: "09:00", End: "11:00", TimezoneFallback: "America/Lima"})
	require.Empty(t, probs)

	type input struct {
		kind     string
		attempts int
		c        *campaign
		tpl      *template.Compiled
		body     string
		r        recipient
		cap      string
	}
	base := func() input {
		return input{kind: events.MessageKindCampaign, c: &campaign{id: "c1", status: events.CampaignRunning, topic: "deals",
			retry: events.RetryPolicy{MaxAttempts: 3}}, tpl: body,
			r: recipient{state: commands.UserState{Exists: true, Consent: events.ConsentOptIn, Topics: map[string]bool{"deals": true}},
				found: true, locale: "es-PE", attributes: map[string]any{"first_name": "Ana"}, lastInboundAt: &recent}}
	}
	tests := []struct {
		name   string
		change func(*input)
		want   string // event type, or "send"
		reason string
		check  func(t *testing.T, d decision)
	}{
		{name: "everything allows it", change: func(*input) {}, want: "send", check: func(t *testing.T, d decision) {
			assert.Equal(t, "Hola Ana", d.send.attempt.Body)
			assert.Equal(t, "es", d.send.attempt.Locale, "es-PE → es")
			assert.Equal(t, 1, d.send.attempt.Attempt)
			assert.Equal(t, "whatsapp:+51987654321", d.send.attempt.To)
		}},
		{name: "campaign cancelled", change: func(in *input) { in.c.status = events.CampaignCancelled }, want: events.TypeMessageCancelled},
		{name: "user erased", change: func(in *input) { in.r.state.Exists = false }, want: events.TypeMessageSkipped, reason: events.ReasonUserDeleted},
		{name: "sent STOP", change: func(in *input) { in.r.state.Consent = events.ConsentOptOut }, want: events.TypeMessageSkipped, reason: events.ReasonConsent},
		{name: "left the topic", change: func(in *input) { in.r.state.Topics = map[string]bool{} }, want: events.TypeMessageSkipped, reason: events.ReasonNotSubscribed},
		{name: "attempts used up", change: func(in *input) { in.attempts = 3 }, want: events.TypeMessageFailed},
		{name: "missing variable", change: func(in *input) { in.r.attributes = nil }, want: events.TypeMessageSkipped, reason: events.ReasonMissingVariable,
			check: func(t *testing.T, d decision) { assert.Equal(t, "first_name", d.event.(events.MessageSkipped).Detail) }},
		{name: "too long", change: func(in *input) {
			in.tpl, in.r.attributes = long, map[string]any{"first_name": strings.Repeat("a", 1601)}
		}, want: events.TypeMessageSkipped, reason: events.ReasonTooLong},
		{name: "outside the 24-hour window, free text only", change: func(in *input) { in.r.lastInboundAt = &old },
			want: events.TypeMessageSkipped, reason: events.ReasonOutsideWindow},
		{name: "never wrote", change: func(in *input) { in.r.lastInboundAt = nil }, want: events.TypeMessageSkipped, reason: events.ReasonOutsideWindow},
		{name: "outside the window with an approved template", change: func(in *input) { in.r.lastInboundAt, in.tpl = &old, approved },
			want: "send", check: func(t *testing.T, d decision) {
				assert.Equal(t, "HX0123456789abcdef0123456789abcdef", d.send.attempt.ContentSID)
				assert.Equal(t, map[string]string{"1": "Ana"}, d.send.attempt.ContentVariables)
			}},
		{name: "inside the window the free text goes even with a template", change: func(in *input) { in.tpl = approved }, want: "send",
			check: func(t *testing.T, d decision) { assert.Empty(t, d.send.attempt.ContentSID) }},
		{name: "quiet hours in Lima", change: func(in *input) { in.c.quiet = &morning }, want: events.TypeMessageDeferred, reason: events.ReasonQuietHours,
			check: func(t *testing.T, d decision) {
				assert.Equal(t, time.Date(2026, 11, 27, 16, 0, 0, 0, time.UTC), d.event.(events.MessageDeferred).Until)
			}},
		{name: "outside quiet hours", change: func(in *input) { in.c.quiet = &night }, want: "send"},
		{name: "frequency cap", change: func(in *input) { in.cap = "3 messages in 24h" }, want: events.TypeMessageDeferred, reason: events.ReasonFrequencyCap},
		{name: "a reply ignores quiet hours and the cap", change: func(in *input) {
			in.kind, in.c, in.tpl, in.body = events.MessageKindReply, nil, nil, "Gracias!"
			in.cap = "capped"
		}, want: "send", check: func(t *testing.T, d decision) { assert.Equal(t, "Gracias!", d.send.attempt.Body) }},
		{name: "a reply to a user who sent STOP after it was queued", change: func(in *input) {
			in.kind, in.c, in.tpl, in.body = events.MessageKindReply, nil, nil, "Gracias!"
			in.r.state.Consent = events.ConsentOptOut
		}, want: events.TypeMessageSkipped, reason: events.ReasonConsent},
		{name: "a reply outside the window", change: func(in *input) {
			in.kind, in.c, in.tpl, in.body, in.r.lastInboundAt = events.MessageKindReply, nil, nil, "Gracias!", &old
		}, want: events.TypeMessageSkipped, reason: events.ReasonOutsideWindow},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			in := base()
			tt.change(&in)
			m := &message{attempts: in.attempts, queued: events.MessageQueued{Kind: in.kind, Phone: "+51987654321", Body: in.body}}
			if in.c != nil {
				m.queued.Topic = in.c.topic
			}
			d := decide(m, in.c, in.tpl, in.r, "whatsapp:+14155238886", now, in.cap)
			if tt.want == "send" {
				require.NotNil(t, d.send, "decided %#v", d.event)
				assert.Nil(t, d.event)
			} else {
				require.NotNil(t, d.event, "decided to send")
				assert.Equal(t, tt.want, d.event.EventType())
				if tt.reason != "" {
					switch e := d.event.(type) {
					case events.MessageSkipped:
						assert.Equal(t, tt.reason, e.Reason)
						assert.NotEmpty(t, e.Detail)
					case events.MessageDeferred:
						assert.Equal(t, tt.reason, e.Reason)
						assert.NotEmpty(t, e.Detail)
					}
				}
			}
			if tt.check != nil {
				tt.check(t, d)
			}
		})
	}
}

func TestBackoffGrowsWithJitterAndHonoursRetryAfter(t *testing.T) {
	t.Parallel()
	p := events.RetryPolicy{MaxAttempts: 5, InitialBackoff: "10s", MaxBackoff: "1m"}
	for attempt, want := range map[int][2]time.Duration{1: {5 * time.Second, 10 * time.Second}, 2: {10 * time.Second, 20 * time.Second},
		3: {20 * time.Second, 40 * time.Second}, 6: {30 * time.Second, time.Minute}} {
		for range 50 {
			d := backoff(p, attempt, 0)
			assert.GreaterOrEqual(t, d, want[0], "attempt %d", attempt)
			assert.LessOrEqual(t, d, want[1], "attempt %d", attempt)
		}
	}
	assert.Equal(t, 2*time.Minute, backoff(p, 1, 2*time.Minute), "Retry-After wins when longer")
}

func TestReconcileDaysCoverMidnight(t *testing.T) {
	t.Parallel()
	day := func(s string) time.Time { d, _ := time.Parse("2006-01-02", s); return d }
	assert.Equal(t, []time.Time{day("2026-11-27")}, reconcileDays(time.Date(2026, 11, 27, 15, 0, 0, 0, time.UTC)))
	assert.Equal(t, []time.Time{day("2026-11-27"), day("2026-11-28")}, reconcileDays(time.Date(2026, 11, 27, 23, 30, 0, 0, time.UTC)))
	lima := time.FixedZone("PET", -5*3600)
	assert.Equal(t, []time.Time{day("2026-11-28")}, reconcileDays(time.Date(2026, 11, 27, 20, 0, 0, 0, lima)), "days are UTC days")
}
