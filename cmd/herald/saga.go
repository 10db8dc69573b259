package main

import (
	"fmt"
	"os"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"
	"github.com/rs/zerolog"

	"herald/commands/saga"
	"herald/events"
	"herald/events/store"
	"herald/handlers/twilio/sender"
)

// newSaga wires the send saga for the saga role (deciding and sending due messages) and the
// scheduler role (starting, materializing and completing runs). Without Twilio credentials
// nothing can be sent, so both are left out (and say so): no components.
func newSaga(cfg Config, roles map[string]bool, pool *pgxpool.Pool, rdb *redis.Client, registry *events.Registry,
	reg prometheus.Registerer, log zerolog.Logger) ([]component, func(), error) {
	none := func() {}
	if cfg.TwilioSID == "" {
		log.Warn().Msg("TWILIO_ACCOUNT_SID is not set: the send saga and scheduler are disabled (campaigns will not send)")
		return nil, none, nil
	}
	tw, err := sender.New(sender.Config{AccountSID: cfg.TwilioSID, AuthToken: cfg.TwilioToken, From: cfg.TwilioFrom,
		APIURL: cfg.TwilioAPIURL, PublicBaseURL: cfg.PublicBaseURL, Metrics: reg})
	if err != nil {
		return nil, none, err
	}
	es, err := store.New(pool, store.Config{})
	if err != nil {
		tw.Close()
		return nil, none, err
	}
	host, _ := os.Hostname()
	sg, err := saga.New(saga.Config{Owner: fmt.Sprintf("%s-%d", host, os.Getpid()), SenderMPS: cfg.TwilioMPS,
		FrequencyCap: cfg.FrequencyCap, RedisPrefix: cfg.RedisPrefix, Metrics: reg, Failpoints: cfg.Failpoints}, es, registry, rdb, tw, log)
	if err != nil {
		es.Close()
		tw.Close()
		return nil, none, err
	}
	var components []component
	if roles[roleSaga] {
		components = append(components, component{"saga", sg.RunSender})
	}
	if roles[roleScheduler] {
		components = append(components, component{"scheduler", sg.RunScheduler})
	}
	return components, func() { es.Close(); tw.Close() }, nil
}
