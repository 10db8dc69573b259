package sender

import (
	"context"
	"net/http"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestMetrics: every call is timed by operation and result, and every failure is counted by
// Twilio's code and the HTTP status.
func TestMetrics(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name         string
		create       http.HandlerFunc
		result       string
		code, status string // of the failure; empty: none
	}{
		{name: "accepted", result: "ok"},
		{name: "rate limited", create: answerError(429, 20429, "Too Many Requests"), result: "rate_limited", code: "20429", status: "429"},
		{name: "opted out", create: answerError(400, 21610, "Attempt to send to unsubscribed recipient"), result: "permanent", code: "21610", status: "400"},
		{name: "5xx without a code", create: answerRaw(500, "text/plain", "oops"), result: "ambiguous", code: "none", status: "500"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			reg := prometheus.NewRegistry()
			s := newFake(t, tc.create).sender(t, func(c *Config) { c.Metrics = reg })
			_, err := s.Send(context.Background(), Message{MessageID: msgID, Attempt: 1, To: "+51987654321", Body: "Hola"})
			if tc.code == "" {
				require.NoError(t, err)
			}
			got := gather(t, reg)
			assert.Equal(t, 1.0, got["herald_twilio_request_duration_seconds{operation=create,result="+tc.result+"}"], "one create timed")
			if tc.code != "" {
				assert.Equal(t, 1.0, got["herald_twilio_errors_total{code="+tc.code+",operation=create,status="+tc.status+"}"])
			} else {
				for k := range got {
					assert.NotContains(t, k, "herald_twilio_errors_total", "no failure counted")
				}
			}
		})
	}
}

// gather flattens reg into "name{label=value,…}" → counter value or histogram count.
func gather(t *testing.T, reg *prometheus.Registry) map[string]float64 {
	t.Helper()
	families, err := reg.Gather()
	require.NoError(t, err)
	out := map[string]float64{}
	for _, f := range families {
		for _, m := range f.GetMetric() {
			key := f.GetName() + "{"
			for i, l := range m.GetLabel() {
				if i > 0 {
					key += ","
				}
				key += l.GetName() + "=" + l.GetValue()
			}
			key += "}"
			switch {
			case m.GetCounter() != nil:
				out[key] = m.GetCounter().GetValue()
			case m.GetHistogram() != nil:
				out[key] = float64(m.GetHistogram().GetSampleCount())
			}
		}
	}
	return out
}
