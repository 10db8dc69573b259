package twilio

import (
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Metrics counts webhooks and times their storage.
type Metrics struct {
	requests *prometheus.CounterVec
	latency  *prometheus.HistogramVec
}

// NewMetrics registers the webhook metrics on reg (nil: unregistered).
func NewMetrics(reg prometheus.Registerer) (*Metrics, error) {
	m := &Metrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "herald_webhook_requests_total", Help: "Twilio webhooks by kind, HTTP status and whether they were duplicates."},
			[]string{"kind", "status", "duplicate"}),
		latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "herald_webhook_store_seconds", Help: "Time to store an accepted webhook durably.",
			Buckets: []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1}}, []string{"kind"}),
	}
	if reg != nil {
		for _, c := range []prometheus.Collector{m.requests, m.latency} {
			if err := reg.Register(c); err != nil {
				return nil, err
			}
		}
	}
	return m, nil
}

func (m *Metrics) observe(kind string, status int, duplicate bool, d time.Duration) {
	m.requests.WithLabelValues(kind, strconv.Itoa(status), strconv.FormatBool(duplicate)).Inc()
	if status == 200 {
		m.latency.WithLabelValues(kind).Observe(d.Seconds())
	}
}
