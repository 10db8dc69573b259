package saga

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/redis/go-redis/v9"
	"github.com/rs/zerolog"

	"herald/commands/template"
	"herald/events"
	"herald/events/store"
	"herald/handlers/twilio/sender"
)

// Twilio is the part of the Twilio client the saga uses (sender.Sender).
type Twilio interface {
	Send(ctx context.Context, m sender.Message) (sender.Accepted, error)
	List(ctx context.Context, f sender.ListFilter) ([]sender.MessageInfo, error)
	From() string
}

// Saga runs the send saga's loops: materializing runs, starting scheduled campaigns,
// completing finished ones, and deciding and sending due messages.
type Saga struct {
	cfg      Config
	pool     *pgxpool.Pool
	store    *store.Store
	registry *events.Registry
	twilio   Twilio
	limits   *limiter
	booked   *bookedCampaigns
	// workers holds a token per message being worked on (Config.Workers); inflight counts them.
	workers  chan struct{}
	inflight sync.WaitGroup
	metrics  *metrics
	log      zerolog.Logger
	now      func() time.Time

	tplMu     sync.Mutex
	templates map[string]cachedTemplate

	statusMu sync.Mutex
	statuses map[string]cachedStatus
}

type cachedStatus struct {
	status string
	at     time.Time
}

type cachedTemplate struct {
	version  int
	compiled *template.Compiled
}

// New checks the configuration and wires the saga.
func New(cfg Config, s *store.Store, registry *events.Registry, rdb *redis.Client, twilio Twilio, log zerolog.Logger) (*Saga, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg = cfg.withDefaults()
	m, err := newMetrics(cfg.Metrics)
	if err != nil {
		return nil, fmt.Errorf("saga metrics: %w", err)
	}
	limits := newLimiter(rdb, cfg.RedisPrefix, cfg.SenderMPS)
	limits.waited = m.rateWait
	return &Saga{
		cfg: cfg, pool: s.Pool(), store: s, registry: registry, twilio: twilio,
		limits: limits, booked: newBookedCampaigns(), workers: make(chan struct{}, cfg.Workers), metrics: m,
		log: log.With().Str("component", "saga").Logger(), now: time.Now,
		templates: map[string]cachedTemplate{}, statuses: map[string]cachedStatus{},
	}, nil
}

// Run runs every loop until ctx ends: the sender's and the scheduler's.
func (s *Saga) Run(ctx context.Context) error {
	return s.run(ctx, s.sendLoop, s.runLoop)
}

// RunSender decides and sends due messages until ctx ends (the saga role). Any number of
// processes may run it: claims are leases and rate limits are shared through Redis.
func (s *Saga) RunSender(ctx context.Context) error { return s.run(ctx, s.sendLoop) }

// RunScheduler runs the once-a-second tick until ctx ends (the scheduler role): start due and
// recurring runs, materialize runs and triggers into messages, complete finished runs. Each
// step is idempotent, so two schedulers do no harm, but one is enough.
func (s *Saga) RunScheduler(ctx context.Context) error { return s.run(ctx, s.runLoop) }

func (s *Saga) run(ctx context.Context, loops ...func(context.Context) error) error {
	var wg sync.WaitGroup
	errc := make(chan error, len(loops))
	for _, loop := range loops {
		wg.Add(1)
		go func() { defer wg.Done(); errc <- loop(ctx) }()
	}
	wg.Wait()
	s.Wait() // the messages the send loop handed to workers, ending with ctx
	close(errc)
	for err := range errc {
		if err != nil {
			return err
		}
	}
	return nil
}

// every runs fn every interval (at once first) until ctx ends, logging its errors.
func (s *Saga) every(ctx context.Context, interval time.Duration, what string, fn func(context.Context) (bool, error)) error {
	for {
		busy, err := fn(ctx)
		if err != nil && ctx.Err() == nil {
			s.log.Error().Err(err).Str("loop", what).Msg("saga step failed; will retry")
		}
		if busy && err == nil {
			continue
		}
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(interval):
		}
	}
}

func (s *Saga) sendLoop(ctx context.Context) error {
	return s.every(ctx, s.cfg.Poll, "send", s.SendDue)
}

func (s *Saga) runLoop(ctx context.Context) error {
	return s.every(ctx, time.Second, "runs", func(ctx context.Context) (bool, error) {
		errs := []error{}
		if err := s.StartDue(ctx); err != nil {
			errs = append(errs, err)
		}
		if err := s.MaterializePending(ctx); err != nil {
			errs = append(errs, err)
		}
		if err := s.CompleteFinished(ctx); err != nil {
			errs = append(errs, err)
		}
		for {
			more, err := s.MaterializeTriggers(ctx)
			if err != nil {
				errs = append(errs, err)
			}
			if !more || err != nil {
				break
			}
		}
		return false, errors.Join(errs...)
	})
}

// appendTo appends one event to a message stream at the version decided on. A conflict means
// another worker decided first: not an error, the decision is theirs.
func (s *Saga) appendTo(ctx context.Context, m *message, e events.Event) (bool, error) {
	rec, err := events.NewRecord(uuid.Nil, m.stream, e, events.Metadata{Source: "saga", Actor: s.cfg.Owner})
	if err != nil {
		return false, err
	}
	res, err := s.store.Append(ctx, m.stream, m.version, rec)
	switch {
	case errors.Is(err, store.ErrConcurrency):
		return false, nil
	case err != nil:
		return false, fmt.Errorf("record %s on %s: %w", e.EventType(), m.stream, err)
	}
	m.version = res.StreamVersion
	s.metrics.decided(e)
	return true, nil
}

// template returns a compiled template, cached by version.
func (s *Saga) template(ctx context.Context, id string) (*template.Compiled, error) {
	var (
		version  int
		name     string
		channel  string
		def      string
		variants map[string]template.Variant
	)
	err := s.pool.QueryRow(ctx, `SELECT version, name, channel, default_locale, variants FROM templates WHERE id = $1`, id).
		Scan(&version, &name, &channel, &def, &variants)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("template %s: %w", id, err)
	}
	s.tplMu.Lock()
	defer s.tplMu.Unlock()
	if c, ok := s.templates[id]; ok && c.version == version {
		return c.compiled, nil
	}
	compiled, err := template.Template{Name: name, Channel: channel, DefaultLocale: def, Variants: variants}.Compile()
	if err != nil {
		return nil, fmt.Errorf("template %s: %w", id, err)
	}
	s.templates[id] = cachedTemplate{version: version, compiled: compiled}
	return compiled, nil
}
