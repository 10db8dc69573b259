package relay

import "github.com/prometheus/client_golang/prometheus"

type metrics struct {
	published   prometheus.Counter
	doorbells   prometheus.Counter
	republishes prometheus.Counter
	lag         prometheus.Gauge
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	m := &metrics{
		published: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "herald_relay_published_events_total", Help: "Events published to Redis Streams."}),
		doorbells: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "herald_relay_doorbells_total", Help: "Committed-position doorbells published."}),
		republishes: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "herald_relay_redis_data_loss_total", Help: "Times the relay found Redis had lost its data and republished."}),
		lag: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "herald_relay_lag_seconds", Help: "Age of the newest event published in the last round while behind; 0 when caught up."}),
	}
	if reg == nil {
		return m, nil
	}
	for _, c := range []prometheus.Collector{m.published, m.doorbells, m.republishes, m.lag} {
		if err := reg.Register(c); err != nil {
			return nil, err
		}
	}
	return m, nil
}
