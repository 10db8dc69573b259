package saga

import (
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"herald/events"
)

// Outcomes counted by herald_saga_outcomes_total: one per decision the saga records.
const (
	outcomeQueued    = "queued"    // materialized (reason: campaign or trigger)
	outcomeAttempted = "attempted" // send_attempted recorded, Twilio about to be called
	outcomeSent      = "sent"      // accepted by Twilio (reason: response, callback, reconciliation)
	outcomeSkipped   = "skipped"   // reason: consent_opt_out, not_subscribed, quiet_hours, …
	outcomeDeferred  = "deferred"  // reason: quiet_hours, frequency_cap, …
	outcomeRetry     = "retry"     // reason: twilio_<code>, or transient without a code
	outcomeUnknown   = "unknown"   // ambiguous attempt, to be reconciled
	outcomeFailed    = "failed"    // reason: twilio_<code>, attempts_exhausted
	outcomeCancelled = "cancelled" // the campaign was cancelled
)

var outcomes = []string{outcomeQueued, outcomeAttempted, outcomeSent, outcomeSkipped, outcomeDeferred,
	outcomeRetry, outcomeUnknown, outcomeFailed, outcomeCancelled}

// metrics are the saga's Prometheus metrics. Labels stay bounded: reasons are the catalogue's
// constants or a Twilio error code, never free text.
type metrics struct {
	outcomes *prometheus.CounterVec
	waits    *prometheus.HistogramVec
	// leftDue counts messages left due, untouched, because their campaign's rate schedule had
	// no slot within slotHorizon: the campaign runs at its limit with a backlog.
	leftDue prometheus.Counter
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	m := &metrics{
		outcomes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "herald_saga_outcomes_total",
			Help: "Decisions the send saga recorded, by outcome (queued, attempted, sent, skipped, deferred, retry, unknown, failed, cancelled) and reason."},
			[]string{"outcome", "reason"}),
		waits: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "herald_saga_rate_limit_wait_seconds",
			Help: "Time a send waited for its rate slot, by limit (campaign: its per-second and per-minute limits at once; sender; sender_pause after a 429).",
			// From no wait (a free slot) to a per-minute campaign limit's queue.
			Buckets: []float64{0.001, 0.005, 0.0125, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300}},
			[]string{"limit"}),
		leftDue: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "herald_saga_rate_limited_total",
			Help: "Messages left due because their campaign's rate limit had no slot within the next 2 s (the campaign has a backlog)."}),
	}
	// Every outcome shows from the start (as 0), so dashboards and alerts see the series.
	for _, o := range outcomes {
		m.outcomes.WithLabelValues(o, "")
	}
	for _, l := range []string{"campaign", "sender", "sender_pause"} {
		m.waits.WithLabelValues(l)
	}
	if reg == nil {
		return m, nil
	}
	for _, c := range []prometheus.Collector{m.outcomes, m.waits, m.leftDue} {
		if err := reg.Register(c); err != nil {
			return nil, err
		}
	}
	return m, nil
}

// decided counts one event the saga appended to a message stream.
func (m *metrics) decided(e events.Event) {
	outcome, reason := outcomeOf(e)
	if outcome != "" {
		m.outcomes.WithLabelValues(outcome, reason).Inc()
	}
}

// queued counts n messages materialized at once.
func (m *metrics) queued(kind string, n int) {
	m.outcomes.WithLabelValues(outcomeQueued, kind).Add(float64(n))
}

func (m *metrics) rateWait(limit string, d time.Duration) {
	m.waits.WithLabelValues(limit).Observe(d.Seconds())
}

// outcomeOf maps a saga event onto an outcome and a bounded reason.
func outcomeOf(e events.Event) (outcome, reason string) {
	switch e := e.(type) {
	case events.MessageSendAttempted:
		return outcomeAttempted, ""
	case events.MessageAccepted:
		return outcomeSent, e.Via
	case events.MessageSkipped:
		return outcomeSkipped, catalogueReason(e.Reason)
	case events.MessageDeferred:
		return outcomeDeferred, catalogueReason(e.Reason)
	case events.MessageRetryScheduled:
		if e.Code != 0 {
			return outcomeRetry, twilioCode(e.Code)
		}
		return outcomeRetry, "transient"
	case events.MessageOutcomeUnknown:
		return outcomeUnknown, "ambiguous"
	case events.MessageFailed:
		if strings.HasPrefix(e.Reason, events.ReasonAttemptsExhausted) {
			return outcomeFailed, events.ReasonAttemptsExhausted
		}
		if e.Code != 0 {
			return outcomeFailed, twilioCode(e.Code)
		}
		return outcomeFailed, "other"
	case events.MessageCancelled:
		return outcomeCancelled, events.ReasonCampaignCancelled
	}
	return "", ""
}

// catalogueReason keeps a reason that is one of the catalogue's slugs; anything else (free
// text) is "other", so a label never grows without bound.
func catalogueReason(r string) string {
	if r == "" || len(r) > 40 || strings.ContainsAny(r, " :/") {
		return "other"
	}
	return r
}

func twilioCode(code int) string { return "twilio_" + strconv.Itoa(code) }
