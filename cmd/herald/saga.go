package main

import (
	"fmt"
	"os"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/redis/go-redis/v9"
	"github.com/rs/zerolog"

	"herald/commands/saga"
	"herald/events"
	"herald/events/store"
	"herald/handlers/twilio/sender"
)

// newSaga wires the send saga. Without Twilio credentials nothing can be sent, so the saga is
// left out (and says so); a zero component means that.
func newSaga(cfg Config, pool *pgxpool.Pool, rdb *redis.Client, registry *events.Registry, log zerolog.Logger) (component, func(), error) {
	none := func() {}
	if cfg.TwilioSID == "" {
		log.Warn().Msg("TWILIO_ACCOUNT_SID is not set: the send saga is disabled (campaigns will not send)")
		return component{}, none, nil
	}
	tw, err := sender.New(sender.Config{AccountSID: cfg.TwilioSID, AuthToken: cfg.TwilioToken, From: cfg.TwilioFrom,
		APIURL: cfg.TwilioAPIURL, PublicBaseURL: cfg.PublicBaseURL})
	if err != nil {
		return component{}, none, err
	}
	es, err := store.New(pool, store.Config{})
	if err != nil {
		tw.Close()
		return component{}, none, err
	}
	host, _ := os.Hostname()
	sg, err := saga.New(saga.Config{Owner: fmt.Sprintf("%s-%d", host, os.Getpid()), SenderMPS: cfg.TwilioMPS,
		FrequencyCap: cfg.FrequencyCap, RedisPrefix: cfg.RedisPrefix}, es, registry, rdb, tw, log)
	if err != nil {
		es.Close()
		tw.Close()
		return component{}, none, err
	}
	return component{"saga", sg.Run}, func() { es.Close(); tw.Close() }, nil
}
