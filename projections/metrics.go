package projections

import "github.com/prometheus/client_golang/prometheus"

type metrics struct {
	applied *prometheus.CounterVec
	errors  *prometheus.CounterVec
	parked  *prometheus.CounterVec
	lag     *prometheus.GaugeVec
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	m := &metrics{
		applied: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "herald_projection_applied_events_total", Help: "Events applied to a projection."}, []string{"projection"}),
		errors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "herald_projection_errors_total", Help: "Failed apply attempts."}, []string{"projection"}),
		parked: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "herald_projection_parked_events_total", Help: "Events parked after bounded retries."}, []string{"projection"}),
		lag: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "herald_projection_lag_seconds", Help: "Age of the newest event applied in the last page while behind; 0 when caught up."}, []string{"projection"}),
	}
	if reg == nil {
		return m, nil
	}
	for _, c := range []prometheus.Collector{m.applied, m.errors, m.parked, m.lag} {
		if err := reg.Register(c); err != nil {
			return nil, err
		}
	}
	return m, nil
}
