package saga

import (
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"herald/events"
)

// TestOutcomeOf: every decision the saga appends maps onto an outcome with a bounded reason.
func TestOutcomeOf(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name            string
		event           events.Event
		outcome, reason string
	}{
		{"attempted", events.MessageSendAttempted{Attempt: 1}, outcomeAttempted, ""},
		{"accepted by the response", events.MessageAccepted{Via: events.AcceptedByResponse}, outcomeSent, "response"},
		{"accepted by reconciliation", events.MessageAccepted{Via: events.AcceptedByReconciliation}, outcomeSent, "reconciliation"},
		{"skipped for consent", events.MessageSkipped{Reason: events.ReasonConsent}, outcomeSkipped, events.ReasonConsent},
		{"skipped with free text", events.MessageSkipped{Reason: "template 42 does not exist"}, outcomeSkipped, "other"},
		{"deferred for quiet hours", events.MessageDeferred{Reason: events.ReasonQuietHours}, outcomeDeferred, events.ReasonQuietHours},
		{"retry after a 429", events.MessageRetryScheduled{Code: 20429, Reason: "Too Many Requests"}, outcomeRetry, "twilio_20429"},
		{"retry without a code", events.MessageRetryScheduled{Reason: "campaign paused before the send"}, outcomeRetry, "transient"},
		{"ambiguous", events.MessageOutcomeUnknown{Reason: "timeout"}, outcomeUnknown, "ambiguous"},
		{"failed with a code", events.MessageFailed{Code: 63016, Reason: "outside the window"}, outcomeFailed, "twilio_63016"},
		{"failed, attempts exhausted", events.MessageFailed{Code: 20429, Reason: events.ReasonAttemptsExhausted + ": Too Many Requests"}, outcomeFailed, events.ReasonAttemptsExhausted},
		{"failed without a code", events.MessageFailed{Reason: "boom"}, outcomeFailed, "other"},
		{"cancelled", events.MessageCancelled{Reason: "campaign cancelled"}, outcomeCancelled, events.ReasonCampaignCancelled},
		{"not a decision", events.MessageQueued{}, "", ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			outcome, reason := outcomeOf(tc.event)
			assert.Equal(t, tc.outcome, outcome)
			assert.Equal(t, tc.reason, reason)
		})
	}
}

// TestMetricsRegister: the saga's metrics register once per registry, show every outcome and
// limit from the start, and count what they are told.
func TestMetricsRegister(t *testing.T) {
	t.Parallel()
	reg := prometheus.NewRegistry()
	m, err := newMetrics(reg)
	require.NoError(t, err)
	_, err = newMetrics(reg)
	require.Error(t, err, "a second saga on one registry is refused, not silently unexported")

	m.decided(events.MessageSkipped{Reason: events.ReasonConsent})
	m.queued(events.MessageKindCampaign, 3)
	m.rateWait("sender", 30*time.Millisecond)

	families, err := reg.Gather()
	require.NoError(t, err)
	got := map[string]float64{}
	for _, f := range families {
		for _, metric := range f.GetMetric() {
			key := f.GetName()
			for _, l := range metric.GetLabel() {
				key += " " + l.GetName() + "=" + l.GetValue()
			}
			if c := metric.GetCounter(); c != nil {
				got[key] = c.GetValue()
			} else if h := metric.GetHistogram(); h != nil {
				got[key] = float64(h.GetSampleCount())
			}
		}
	}
	assert.Equal(t, 1.0, got["herald_saga_outcomes_total outcome=skipped reason=consent_opt_out"])
	assert.Equal(t, 3.0, got["herald_saga_outcomes_total outcome=queued reason=campaign"])
	assert.Equal(t, 1.0, got["herald_saga_rate_limit_wait_seconds limit=sender"])
	for _, o := range outcomes {
		assert.Contains(t, got, "herald_saga_outcomes_total outcome="+o+" reason=", "%s shows from the start", o)
	}
	assert.Contains(t, got, "herald_saga_rate_limit_wait_seconds limit=campaign")
	assert.Contains(t, got, "herald_saga_rate_limited_total")
}
