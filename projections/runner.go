package projections

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"sync"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"
	"github.com/rs/zerolog"

	"herald/events"
	"herald/events/relay"
	"herald/events/store"
	"herald/events/transport"
)

// Config tunes the runner.
type Config struct {
	// BatchSize is how many log rows one transaction reads and applies (default 5,000). Pages
	// are full only while catching up; a projection applies a page with a few set-based
	// statements (BatchProjection), so a larger page amortizes the per-transaction work.
	BatchSize int
	// MaxAttempts is how often a failing event is tried before it is parked.
	MaxAttempts int
	// PollInterval is the fallback catch-up when no doorbell arrives.
	PollInterval time.Duration
	// RoundBudget bounds one catch-up round, so a doorbell is acked well inside MaxIdleTime.
	RoundBudget time.Duration
	// MaxBackoff caps the pause after a transient failure.
	MaxBackoff time.Duration
	// ResubscribeDelay is the pause before subscribing again after a subscription ended
	// (Redis restarted or lost the consumer group).
	ResubscribeDelay time.Duration
	// Consumer names this process in the consumer groups (stable names make XINFO readable).
	Consumer  string
	Transport transport.Config
}

func (c Config) withDefaults() Config {
	if c.BatchSize == 0 {
		c.BatchSize = 5000
	}
	if c.MaxAttempts == 0 {
		c.MaxAttempts = 3
	}
	if c.PollInterval == 0 {
		c.PollInterval = time.Second
	}
	c.Transport = c.Transport.WithDefaults()
	if c.RoundBudget == 0 {
		c.RoundBudget = min(5*time.Second, c.Transport.MaxIdleTime/4)
	}
	if c.MaxBackoff == 0 {
		c.MaxBackoff = 30 * time.Second
	}
	if c.ResubscribeDelay == 0 {
		c.ResubscribeDelay = 500 * time.Millisecond
	}
	if c.Consumer == "" {
		host, _ := os.Hostname()
		c.Consumer = fmt.Sprintf("%s-%d", host, os.Getpid())
	}
	return c
}

// Validate lists every problem.
func (c Config) Validate() error {
	var errs []error
	if c.BatchSize < 1 || c.BatchSize > 100_000 {
		errs = append(errs, fmt.Errorf("projections: BatchSize must be 1..100000, got %d", c.BatchSize))
	}
	if c.MaxAttempts < 1 {
		errs = append(errs, fmt.Errorf("projections: MaxAttempts must be ≥ 1, got %d", c.MaxAttempts))
	}
	if c.RoundBudget >= c.Transport.MaxIdleTime {
		errs = append(errs, fmt.Errorf("projections: RoundBudget (%s) must be below the transport's MaxIdleTime (%s)",
			c.RoundBudget, c.Transport.MaxIdleTime))
	}
	errs = append(errs, c.Transport.Validate())
	return errors.Join(errs...)
}

// Runner keeps every projection caught up with the log.
type Runner struct {
	cfg         Config
	pool        *pgxpool.Pool
	registry    *events.Registry
	redisOpts   *redis.Options
	projections []Projection
	log         zerolog.Logger
	metrics     *metrics

	mu      sync.Mutex
	health  map[string]*health
	workers map[string]*worker
}

type health struct {
	stuck     bool
	lastError string
	since     time.Time
}

// NewRunner checks the configuration and that projection names are unique.
func NewRunner(cfg Config, pool *pgxpool.Pool, registry *events.Registry, redisOpts *redis.Options,
	projections []Projection, log zerolog.Logger, reg prometheus.Registerer) (*Runner, error) {
	cfg = cfg.withDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	seen := map[string]bool{}
	for _, p := range projections {
		if seen[p.Name()] {
			return nil, fmt.Errorf("projections: %s registered twice", p.Name())
		}
		seen[p.Name()] = true
		for _, t := range p.Handles() {
			if !registry.Known(t) {
				return nil, fmt.Errorf("projections: %s handles unknown event type %s", p.Name(), t)
			}
		}
	}
	m, err := newMetrics(reg)
	if err != nil {
		return nil, err
	}
	r := &Runner{cfg: cfg, pool: pool, registry: registry, redisOpts: redisOpts, projections: projections,
		log: log.With().Str("component", "projections").Logger(), metrics: m,
		health: map[string]*health{}, workers: map[string]*worker{}}
	for _, p := range projections {
		r.health[p.Name()] = &health{}
		r.workers[p.Name()] = &worker{r: r, p: p, a: newApplier(p, registry), cur: liveCursor{pool: pool, name: p.Name()},
			wake: make(chan struct{}, 1), next: make(chan struct{}),
			log: r.log.With().Str("projection", p.Name()).Logger()}
	}
	return r, nil
}

// Projections lists the registered projections.
func (r *Runner) Projections() []Projection { return r.projections }

// Run keeps every projection caught up until ctx ends. In-flight transactions finish or roll
// back; an unacked doorbell is redelivered, and the checkpoint makes that harmless.
// A failure to reach PostgreSQL at the start is waited out like any later one.
func (r *Runner) Run(ctx context.Context) error {
	for backoff := time.Duration(0); ; {
		err := EnsureCheckpoints(ctx, r.pool, r.projections)
		if err == nil {
			break
		}
		if ctx.Err() != nil {
			return nil
		}
		backoff = nextBackoff(backoff, r.cfg.MaxBackoff)
		r.log.Error().Err(err).Dur("retry_in", backoff).Msg("projections cannot start")
		for _, p := range r.projections {
			r.setHealth(p.Name(), err)
		}
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(backoff):
		}
	}
	var wg sync.WaitGroup
	for _, w := range r.workers {
		wg.Add(1)
		go func() { defer wg.Done(); w.applyLoop(ctx) }()
		if r.redisOpts != nil { // without Redis the runner polls every PollInterval
			wg.Add(1)
			go func() { defer wg.Done(); w.doorbellLoop(ctx) }()
		}
	}
	wg.Wait()
	return nil
}

// EnsureCheckpoints creates the checkpoint rows the runner locks.
func EnsureCheckpoints(ctx context.Context, pool *pgxpool.Pool, projections []Projection) error {
	for _, p := range projections {
		if _, err := pool.Exec(ctx, `INSERT INTO checkpoints (name) VALUES ($1) ON CONFLICT DO NOTHING`,
			checkpointName(p.Name())); err != nil {
			return fmt.Errorf("create checkpoint of %s: %w", p.Name(), err)
		}
	}
	return nil
}

// CatchUp applies everything committed before the call to one projection (or all, with
// name ""), outside the background loops. Tests use it.
func (r *Runner) CatchUp(ctx context.Context, name string) error {
	if err := EnsureCheckpoints(ctx, r.pool, r.projections); err != nil {
		return err
	}
	// Everything committed before this call, even if an unrelated open transaction still
	// holds the read horizon below it: then this waits (bounded by ctx) rather than
	// returning early, and names that transaction if ctx ends first.
	target, err := store.Last(ctx, r.pool)
	if err != nil {
		return err
	}
	if err := waitReadable(ctx, r.pool, target, 0); err != nil {
		return fmt.Errorf("catch up: %w", err)
	}
	for _, w := range r.workers {
		if name != "" && w.p.Name() != name {
			continue
		}
		for {
			if _, err := w.round(ctx, 0); err != nil {
				return err
			}
			cp, err := Checkpoint(ctx, r.pool, w.p.Name())
			if err != nil {
				return err
			}
			if !cp.Less(target) {
				break
			}
			// A round that ends caught up has passed the horizon, hence target: only another
			// runner holding the checkpoint between our reads gets here.
			select {
			case <-ctx.Done():
				return fmt.Errorf("catch up %s: %w", w.p.Name(), ctx.Err())
			case <-time.After(10 * time.Millisecond):
			}
		}
	}
	return nil
}

func (r *Runner) setHealth(name string, err error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	h := r.health[name]
	if err == nil {
		*h = health{}
		return
	}
	if !h.stuck {
		h.since = time.Now()
	}
	h.stuck, h.lastError = true, err.Error()
}

// worker runs one projection.
type worker struct {
	r   *Runner
	p   Projection
	a   *applier
	cur cursor
	log zerolog.Logger

	wake chan struct{}
	mu   sync.Mutex
	next chan struct{} // closed when the next round to start has finished
}

func (w *worker) poke() {
	select {
	case w.wake <- struct{}{}:
	default:
	}
}

// nextRound returns a channel closed once a round that starts after this call has finished.
func (w *worker) nextRound() <-chan struct{} {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.next
}

func (w *worker) applyLoop(ctx context.Context) {
	poll := time.NewTicker(w.r.cfg.PollInterval)
	defer poll.Stop()
	backoff := time.Duration(0)
	w.poke() // catch up at start, before any doorbell
	for {
		select {
		case <-ctx.Done():
			return
		case <-w.wake:
		case <-poll.C:
		}
		w.mu.Lock()
		done := w.next
		w.next = make(chan struct{})
		w.mu.Unlock()

		caughtUp, err := w.round(ctx, w.r.cfg.RoundBudget)
		close(done)
		if ctx.Err() != nil {
			return
		}
		if err != nil {
			backoff = nextBackoff(backoff, w.r.cfg.MaxBackoff)
			w.log.Error().Err(err).Dur("retry_in", backoff).Msg("projection stuck")
			select {
			case <-ctx.Done():
				return
			case <-time.After(backoff):
			}
			w.poke()
			continue
		}
		backoff = 0
		if !caughtUp {
			w.poke()
		}
	}
}

// nextBackoff doubles the pause after a failure, from 100 ms up to ceiling.
func nextBackoff(prev, ceiling time.Duration) time.Duration {
	return min(max(2*prev, 100*time.Millisecond), ceiling)
}

// round applies pages until caught up or the budget (0 = none) is spent.
func (w *worker) round(ctx context.Context, budget time.Duration) (caughtUp bool, err error) {
	start := time.Now()
	for {
		res, err := w.a.step(ctx, w.cur, w.r.cfg.BatchSize)
		var failed *applyError
		if errors.As(err, &failed) {
			w.r.metrics.errors.WithLabelValues(w.p.Name()).Inc()
			parked, rerr := w.a.recover(ctx, w.cur, failed, w.r.cfg.BatchSize, w.r.cfg.MaxAttempts)
			if parked {
				w.r.metrics.parked.WithLabelValues(w.p.Name()).Inc()
				w.log.Error().Err(failed.err).Str("event_id", failed.env.EventID.String()).Str("type", failed.env.Type).
					Int64("global_position", failed.env.GlobalPosition).Msg("event parked after bounded retries")
			}
			err = rerr
			res = stepResult{}
		}
		if err != nil {
			if ctx.Err() == nil {
				w.r.metrics.errors.WithLabelValues(w.p.Name()).Inc()
				w.r.setHealth(w.p.Name(), err)
			}
			return false, err
		}
		w.r.setHealth(w.p.Name(), nil)
		w.r.metrics.applied.WithLabelValues(w.p.Name()).Add(float64(res.applied))
		switch {
		case res.caughtUp:
			w.r.metrics.lag.WithLabelValues(w.p.Name()).Set(0)
		case res.applied > 0:
			w.r.metrics.lag.WithLabelValues(w.p.Name()).Set(time.Since(res.last.RecordedAt).Seconds())
		} // a page that scanned only other types says nothing about the lag
		if res.caughtUp {
			return true, nil
		}
		if budget > 0 && time.Since(start) > budget {
			return false, nil
		}
	}
}

// doorbellLoop treats each message on the committed topic as "there is news": it wakes the
// apply loop, waits for a round that started after the message, then acks. Duplicates and
// redeliveries cost one empty round. If Redis loses the consumer group the subscription ends
// and is made again, which re-creates the group.
func (w *worker) doorbellLoop(ctx context.Context) {
	cfg := w.r.cfg
	for ctx.Err() == nil {
		err := w.subscribe(ctx, cfg)
		if ctx.Err() != nil {
			return
		}
		if err != nil {
			w.log.Warn().Err(err).Msg("doorbell subscription ended; subscribing again")
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(cfg.ResubscribeDelay):
		}
		w.poke() // whatever rang while unsubscribed
	}
}

func (w *worker) subscribe(ctx context.Context, cfg Config) error {
	sub, err := transport.NewSubscriber(w.r.redisOpts, cfg.Transport, "projection:"+w.p.Name(), cfg.Consumer,
		transport.NewLoggerAdapter(w.log))
	if err != nil {
		return err
	}
	defer sub.Close()
	msgs, err := sub.Subscribe(ctx, cfg.Transport.CommittedTopic())
	if err != nil {
		return fmt.Errorf("subscribe: %w", err)
	}
	for {
		select {
		case <-ctx.Done():
			return nil
		case msg, ok := <-msgs:
			if !ok {
				return errors.New("subscription closed")
			}
			w.handleDoorbell(ctx, msg)
		}
	}
}

func (w *worker) handleDoorbell(ctx context.Context, msg *message.Message) {
	// A doorbell names the head the relay saw. Doorbells are rung every few milliseconds while
	// the log grows, many more than there are rounds: one this applier has already passed is
	// acked at once rather than waiting for a round of its own, which kept a backlog of them
	// queued in front of the newest one (the subscriber hands over the next only after an ack).
	var bell relay.Doorbell
	if json.Unmarshal(msg.Payload, &bell) == nil && w.a.passed(store.Checkpoint{TxID: bell.TxID, Position: bell.Position}) {
		msg.Ack()
		return
	}
	done := w.nextRound()
	w.poke()
	select {
	case <-done:
		msg.Ack()
	case <-ctx.Done():
		msg.Nack()
	}
}

// Checkpoint returns a projection's checkpoint.
func Checkpoint(ctx context.Context, q store.Querier, projection string) (store.Checkpoint, error) {
	var cp store.Checkpoint
	err := q.QueryRow(ctx, `SELECT last_tx, last_position FROM checkpoints WHERE name = $1`, checkpointName(projection)).
		Scan(&cp.TxID, &cp.Position)
	if err != nil {
		return cp, fmt.Errorf("read checkpoint of %s: %w", projection, err)
	}
	return cp, nil
}

// WaitFor blocks until projection has applied everything up to cp (read-your-writes for a
// command that appended at cp), or ctx ends.
func WaitFor(ctx context.Context, q store.Querier, projection string, cp store.Checkpoint) error {
	delay := time.Millisecond
	for {
		got, err := Checkpoint(ctx, q, projection)
		if errors.Is(err, pgx.ErrNoRows) {
			// The runner has not started yet (another process, or a moment later in this one):
			// nothing is applied.
			got, err = store.Checkpoint{}, nil
		}
		if err != nil {
			return err
		}
		if !got.Less(cp) {
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(delay):
		}
		delay = min(2*delay, 50*time.Millisecond)
	}
}
