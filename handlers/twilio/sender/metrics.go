package sender

import (
	"errors"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Operations timed by herald_twilio_request_duration_seconds.
const (
	opCreate = "create"
	opFetch  = "fetch"
	opList   = "list"
)

// metrics are the client's Prometheus metrics: latency per call and errors by Twilio code.
type metrics struct {
	duration *prometheus.HistogramVec
	errors   *prometheus.CounterVec
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	m := &metrics{
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "herald_twilio_request_duration_seconds",
			Help: "Time of one Messages API call (create, fetch, list), by result: ok or the error kind (permanent, retryable, rate_limited, ambiguous).",
			// Twilio answers a create in ~100–300 ms; the client's timeout is 10 s.
			Buckets: []float64{0.025, 0.05, 0.1, 0.2, 0.3, 0.5, 0.75, 1, 2, 5, 10, 15}},
			[]string{"operation", "result"}),
		errors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "herald_twilio_errors_total",
			Help: "Failed Messages API calls by operation, Twilio error code (none when Twilio gave none) and HTTP status (0: no response)."},
			[]string{"operation", "code", "status"}),
	}
	for _, op := range []string{opCreate, opFetch, opList} {
		m.duration.WithLabelValues(op, "ok")
	}
	if reg == nil {
		return m, nil
	}
	for _, c := range []prometheus.Collector{m.duration, m.errors} {
		if err := reg.Register(c); err != nil {
			return nil, err
		}
	}
	return m, nil
}

// observe records one call that started at start and ended with err.
func (m *metrics) observe(op string, start time.Time, err error) {
	result := "ok"
	if err != nil {
		code, status := "none", "0"
		var se *SendError
		if errors.As(err, &se) {
			result = se.Kind.String()
			if se.Code != 0 {
				code = strconv.Itoa(se.Code)
			}
			status = strconv.Itoa(se.HTTPStatus)
		} else {
			result = "error"
		}
		m.errors.WithLabelValues(op, code, status).Inc()
	}
	m.duration.WithLabelValues(op, result).Observe(time.Since(start).Seconds())
}
