// Package saga sends messages: it materializes a campaign run into one message per recipient,
// starts scheduled campaigns, and drives every due message through the decisions of the send
// saga (consent and topic, template, the WhatsApp 24-hour window, quiet hours, frequency cap,
// rate limits) to Twilio and back, recording each decision as an event on the message's
// stream. Nothing sleeps: deferrals, retries and reconciliations are due times in the messages
// read model, claimed with leases.
package saga

import (
	"errors"
	"fmt"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"herald/internal/failpoint"
)

// Config tunes the saga. Zero values take the defaults.
type Config struct {
	// Owner names this process in send leases.
	Owner string
	// Workers is how many messages are decided and sent at once.
	Workers int
	// Claim is how many due messages one claim takes.
	Claim int
	// Lease is how long a claimed message is this process's; a process that dies loses it after.
	Lease time.Duration
	// Poll is the pause when nothing is due.
	Poll time.Duration
	// SenderMPS is the per-sender limit across every process (TWILIO_MPS, 80 by default:
	// Twilio's WhatsApp default); 0 means no limit.
	SenderMPS int
	// ReconcileAfter is how long after an ambiguous attempt its outcome is looked up (a
	// status callback usually settles it first).
	ReconcileAfter time.Duration
	// FrequencyCap limits messages per user (Max per Per); zero Max: off.
	FrequencyCap FrequencyCap
	// RedisPrefix prefixes the rate limiter's keys.
	RedisPrefix string
	// Metrics registers the saga's metrics (metrics.go); nil: kept but not exported.
	Metrics prometheus.Registerer
	// Failpoints end the process between the steps of a send (fault tests; nil: never).
	Failpoints *failpoint.Set
}

// FrequencyCap is at most Max messages accepted per user within Per.
type FrequencyCap struct {
	Max int
	Per time.Duration
}

func (c Config) withDefaults() Config {
	if c.Owner == "" {
		c.Owner = "herald"
	}
	if c.Workers == 0 {
		c.Workers = 32
	}
	if c.Claim == 0 {
		c.Claim = 256
	}
	if c.Lease == 0 {
		c.Lease = time.Minute
	}
	if c.Poll == 0 {
		c.Poll = 200 * time.Millisecond
	}
	if c.ReconcileAfter == 0 {
		c.ReconcileAfter = 30 * time.Second
	}
	return c
}

// Validate lists every problem.
func (c Config) Validate() error {
	c = c.withDefaults()
	var errs []error
	if c.Workers < 1 || c.Claim < 1 {
		errs = append(errs, fmt.Errorf("saga: Workers and Claim must be ≥ 1, got %d and %d", c.Workers, c.Claim))
	}
	if c.SenderMPS < 0 {
		errs = append(errs, fmt.Errorf("TWILIO_MPS: must be ≥ 0 (0: no limit), got %d", c.SenderMPS))
	}
	if c.Lease < time.Second {
		errs = append(errs, fmt.Errorf("saga: Lease must be ≥ 1s, got %s", c.Lease))
	}
	if c.FrequencyCap.Max < 0 || (c.FrequencyCap.Max > 0 && c.FrequencyCap.Per <= 0) {
		errs = append(errs, errors.New("HERALD_FREQUENCY_CAP: a maximum needs a positive period"))
	}
	return errors.Join(errs...)
}
