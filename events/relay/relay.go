// Package relay fans the event log out to Redis Streams. It tails the events table gap-safely
// from a checkpoint kept in Postgres, publishes each event to its category's stream in the
// watermill-redisstream format (pipelined XADDs), and rings a low-volume "committed up to P" doorbell that
// projections subscribe to. It wakes on LISTEN/NOTIFY, and notices when Redis has lost its data
// (the epoch key is gone) and republishes what consumers have not applied.
package relay

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ThreeDotsLabs/watermill-redisstream/pkg/redisstream"
	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"
	"github.com/rs/zerolog"

	"herald/events"
	"herald/events/store"
	"herald/events/transport"
	"herald/internal/failpoint"
)

// Config tunes the relay.
type Config struct {
	// Name keys the relay's checkpoint, epoch and leadership lock. One relay per name is active.
	Name string
	// BatchSize is how many events one read-and-publish round carries.
	BatchSize int
	// PollInterval is the fallback when no NOTIFY arrives (e.g. a missed notification).
	PollInterval time.Duration
	// RetryInterval is the pause after a failure (Redis or Postgres unreachable).
	RetryInterval time.Duration
	// DoorbellInterval is the least time between two doorbells: they are coalesced, not queued.
	DoorbellInterval time.Duration
	// Schema is the Postgres schema of the events table; NOTIFYs from other schemas are ignored.
	Schema    string
	Transport transport.Config
	// Failpoints end the process between publishing a batch and moving the checkpoint (fault
	// tests; nil: never).
	Failpoints *failpoint.Set
}

func (c Config) withDefaults() Config {
	if c.Name == "" {
		c.Name = "relay"
	}
	if c.BatchSize == 0 {
		c.BatchSize = 1000
	}
	if c.PollInterval == 0 {
		c.PollInterval = time.Second
	}
	if c.RetryInterval == 0 {
		c.RetryInterval = time.Second
	}
	if c.DoorbellInterval == 0 {
		c.DoorbellInterval = 5 * time.Millisecond
	}
	c.Transport = c.Transport.WithDefaults()
	return c
}

// Validate lists every problem.
func (c Config) Validate() error {
	var errs []error
	if c.BatchSize < 1 || c.BatchSize > 100_000 {
		errs = append(errs, fmt.Errorf("relay: BatchSize must be 1..100000, got %d", c.BatchSize))
	}
	if c.PollInterval <= 0 {
		errs = append(errs, errors.New("relay: PollInterval must be > 0"))
	}
	if c.Schema == "" {
		errs = append(errs, errors.New("relay: Schema is required"))
	}
	errs = append(errs, c.Transport.Validate())
	return errors.Join(errs...)
}

// Relay publishes the log to Redis Streams.
type Relay struct {
	cfg       Config
	pool      *pgxpool.Pool
	redis     *redis.Client
	publisher message.Publisher
	log       zerolog.Logger
	metrics   *metrics

	forceBell atomic.Bool // ring the doorbell even if the head has not moved

	mu     sync.Mutex
	status Status
}

// Status is what /readyz shows of the relay.
type Status struct {
	Leader      bool
	Checkpoint  store.Checkpoint
	LagSeconds  float64
	LastError   string
	Republishes int
}

// New builds a relay. publisher is normally transport.NewPublisher: it rings the doorbell. rdb
// holds the epoch key and carries the events, in the format of that publisher (see xadd).
func New(cfg Config, pool *pgxpool.Pool, rdb *redis.Client, publisher message.Publisher, log zerolog.Logger, reg prometheus.Registerer) (*Relay, error) {
	cfg = cfg.withDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	m, err := newMetrics(reg)
	if err != nil {
		return nil, err
	}
	return &Relay{cfg: cfg, pool: pool, redis: rdb, publisher: publisher,
		log: log.With().Str("component", "relay").Logger(), metrics: m}, nil
}

// Status returns a snapshot for health reporting.
func (r *Relay) Status() Status {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.status
}

func (r *Relay) setStatus(f func(*Status)) {
	r.mu.Lock()
	f(&r.status)
	r.mu.Unlock()
}

// Run relays until ctx ends. Only the process holding the relay's advisory lock publishes;
// the others wait as standbys and take over if the leader's connection goes away.
func (r *Relay) Run(ctx context.Context) error {
	for {
		err := r.lead(ctx)
		r.setStatus(func(s *Status) { s.Leader = false })
		if ctx.Err() != nil {
			return nil
		}
		if err != nil {
			r.log.Error().Err(err).Msg("relay stopped; retrying")
			r.setStatus(func(s *Status) { s.LastError = err.Error() })
		}
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(r.cfg.RetryInterval):
		}
	}
}

// lead takes leadership on a dedicated connection, which also LISTENs, and relays until an
// error or ctx ends.
func (r *Relay) lead(ctx context.Context) error {
	conn, err := r.pool.Acquire(ctx)
	if err != nil {
		return fmt.Errorf("acquire listen connection: %w", err)
	}
	defer conn.Release()
	lockKey := "herald.relay." + r.cfg.Schema + "." + r.cfg.Name
	var leader bool
	if err := conn.QueryRow(ctx, `SELECT pg_try_advisory_lock(hashtextextended($1, 0))`, lockKey).Scan(&leader); err != nil {
		return fmt.Errorf("leadership lock: %w", err)
	}
	if !leader {
		return nil // a standby: try again after RetryInterval
	}
	defer func() {
		// Unlock on a fresh context: ctx may be done. If the connection is broken the
		// session (and the lock) is gone anyway.
		c, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		if _, err := conn.Exec(c, `SELECT pg_advisory_unlock(hashtextextended($1, 0))`, lockKey); err != nil {
			conn.Conn().Close(c) //nolint:errcheck // drop the session so the lock goes with it
		}
	}()
	if _, err := conn.Exec(ctx, `LISTEN herald_events`); err != nil {
		return fmt.Errorf("listen: %w", err)
	}
	if err := r.ensureCheckpoint(ctx); err != nil {
		return err
	}
	r.setStatus(func(s *Status) { s.Leader = true; s.LastError = "" })
	r.log.Info().Str("name", r.cfg.Name).Msg("relay is leader")

	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	wakeEvents := make(chan struct{}, 1)
	wakeDoorbell := make(chan struct{}, 1)
	wake := func() {
		for _, ch := range []chan struct{}{wakeEvents, wakeDoorbell} {
			select {
			case ch <- struct{}{}:
			default:
			}
		}
	}
	wake()

	forceDoorbell := func() {
		r.forceBell.Store(true)
		wake()
	}

	errs := make(chan error, 3)
	go func() { errs <- r.listen(ctx, conn.Conn(), wake) }()
	go func() { errs <- r.doorbellLoop(ctx, wakeDoorbell) }()
	go func() { errs <- r.eventsLoop(ctx, wakeEvents, forceDoorbell) }()
	err = <-errs
	cancel()
	<-errs
	<-errs
	if ctx.Err() != nil && err == nil {
		return nil
	}
	return err
}

// listen turns notifications for our schema into wake-ups.
func (r *Relay) listen(ctx context.Context, conn *pgx.Conn, wake func()) error {
	for {
		n, err := conn.WaitForNotification(ctx)
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return fmt.Errorf("wait for notification: %w", err)
		}
		if n.Payload == r.cfg.Schema {
			wake()
		}
	}
}

func (r *Relay) ensureCheckpoint(ctx context.Context) error {
	_, err := r.pool.Exec(ctx, `INSERT INTO checkpoints (name) VALUES ($1) ON CONFLICT DO NOTHING`, r.cfg.Name)
	if err != nil {
		return fmt.Errorf("create relay checkpoint: %w", err)
	}
	return nil
}

// doorbellLoop publishes "committed up to P" whenever the visible head moves. Projections
// catch up from Postgres on it, so one doorbell stands for any number of events.
func (r *Relay) doorbellLoop(ctx context.Context, wake <-chan struct{}) error {
	var (
		last  store.Checkpoint
		first = true
	)
	poll := time.NewTicker(r.cfg.PollInterval)
	defer poll.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-wake:
		case <-poll.C:
		}
		head, err := store.Head(ctx, r.pool)
		if err != nil {
			return err
		}
		if head == last && !first && !r.forceBell.Swap(false) {
			continue
		}
		if err := r.ringDoorbell(head); err != nil {
			return err
		}
		last, first = head, false
		// Coalesce: whatever commits during this pause is covered by the next doorbell.
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(r.cfg.DoorbellInterval):
		}
	}
}

// Doorbell is the payload on the committed topic.
type Doorbell struct {
	TxID     uint64 `json:"tx"`
	Position int64  `json:"pos"`
}

func (r *Relay) ringDoorbell(head store.Checkpoint) error {
	payload, err := json.Marshal(Doorbell{TxID: head.TxID, Position: head.Position})
	if err != nil {
		return err
	}
	if err := r.publisher.Publish(r.cfg.Transport.CommittedTopic(), message.NewMessage(uuid.NewString(), payload)); err != nil {
		return fmt.Errorf("publish doorbell: %w", err)
	}
	r.metrics.doorbells.Inc()
	return nil
}

// eventsLoop publishes every event to its category stream, in log order per category, and
// moves the relay's checkpoint only after the whole batch is in Redis (at-least-once).
func (r *Relay) eventsLoop(ctx context.Context, wake <-chan struct{}, forceDoorbell func()) error {
	epoch, err := r.loadEpoch(ctx)
	if err != nil {
		return err
	}
	poll := time.NewTicker(r.cfg.PollInterval)
	defer poll.Stop()
	for {
		if epoch, err = r.checkEpoch(ctx, epoch, forceDoorbell); err != nil {
			return err
		}
		caughtUp, err := r.publishBatch(ctx)
		if err != nil {
			return err
		}
		if !caughtUp {
			continue
		}
		select {
		case <-ctx.Done():
			return nil
		case <-wake:
		case <-poll.C:
		}
	}
}

func (r *Relay) publishBatch(ctx context.Context) (caughtUp bool, err error) {
	var cp store.Checkpoint
	if err := r.pool.QueryRow(ctx, `SELECT last_tx, last_position FROM checkpoints WHERE name = $1`, r.cfg.Name).
		Scan(&cp.TxID, &cp.Position); err != nil {
		return false, fmt.Errorf("read relay checkpoint: %w", err)
	}
	page, err := store.ReadAfter(ctx, r.pool, cp, r.cfg.BatchSize, nil)
	if err != nil {
		return false, err
	}
	if err := r.publish(ctx, page.Events); err != nil {
		return false, err
	}
	if len(page.Events) > 0 {
		r.cfg.Failpoints.Hit(failpoint.AfterXAddBeforeCheckpoint)
	}
	if page.Next != cp {
		if _, err := r.pool.Exec(ctx, `UPDATE checkpoints SET last_tx = $2, last_position = $3, updated_at = now() WHERE name = $1`,
			r.cfg.Name, page.Next.TxID, page.Next.Position); err != nil {
			return false, fmt.Errorf("move relay checkpoint: %w", err)
		}
	}
	lag := 0.0
	if n := len(page.Events); n > 0 && !page.CaughtUp {
		lag = time.Since(page.Events[n-1].RecordedAt).Seconds()
	}
	r.metrics.published.Add(float64(len(page.Events)))
	r.metrics.lag.Set(lag)
	r.setStatus(func(s *Status) { s.Checkpoint = page.Next; s.LagSeconds = lag; s.LastError = "" })
	return page.CaughtUp, nil
}

// publish sends events grouped by category stream; categories go out in parallel, each in
// log order.
func (r *Relay) publish(ctx context.Context, evs []events.Envelope) error {
	byTopic := map[string][]*message.Message{}
	var topics []string
	for _, e := range evs {
		topic := r.cfg.Transport.EventsTopic(transport.Category(e.StreamID))
		if _, ok := byTopic[topic]; !ok {
			topics = append(topics, topic)
		}
		byTopic[topic] = append(byTopic[topic], toMessage(e))
	}
	errs := make(chan error, len(topics))
	for _, topic := range topics {
		go func() { errs <- r.xadd(ctx, topic, byTopic[topic]) }()
	}
	var all []error
	for range topics {
		if err := <-errs; err != nil {
			all = append(all, err)
		}
	}
	if err := errors.Join(all...); err != nil {
		return fmt.Errorf("publish events: %w", err)
	}
	return nil
}

// xaddPipeline is how many XADDs go to Redis in one round trip.
const xaddPipeline = 1000

// streamMarshaller encodes messages as the watermill-redisstream publisher does, so its
// subscribers read them alike.
var streamMarshaller redisstream.DefaultMarshallerUnmarshaller

// xadd appends msgs, in order, to one stream, with the XADD the watermill-redisstream publisher
// sends (same fields, MAXLEN ~ the transport's MaxLen) but pipelined: one round trip per
// xaddPipeline events rather than one per event, which made the relay spend more CPU on
// syscalls than on anything else during an import. Commands on one connection run in order; if
// the pipeline fails part-way, the batch is published again (at-least-once, as before).
func (r *Relay) xadd(ctx context.Context, topic string, msgs []*message.Message) error {
	for from := 0; from < len(msgs); from += xaddPipeline {
		pipe := r.redis.Pipeline()
		for _, m := range msgs[from:min(from+xaddPipeline, len(msgs))] {
			values, err := streamMarshaller.Marshal(topic, m)
			if err != nil {
				return fmt.Errorf("marshal message %s: %w", m.UUID, err)
			}
			pipe.XAdd(ctx, &redis.XAddArgs{Stream: topic, Values: values, MaxLen: r.cfg.Transport.MaxLen, Approx: true})
		}
		if _, err := pipe.Exec(ctx); err != nil {
			return fmt.Errorf("xadd to %s: %w", topic, err)
		}
	}
	return nil
}

func toMessage(e events.Envelope) *message.Message {
	m := message.NewMessage(e.EventID.String(), message.Payload(e.Data))
	m.Metadata.Set(transport.MetaEventType, e.Type)
	m.Metadata.Set(transport.MetaStreamID, e.StreamID)
	m.Metadata.Set(transport.MetaStreamVersion, strconv.Itoa(e.StreamVersion))
	m.Metadata.Set(transport.MetaGlobalPosition, strconv.FormatInt(e.GlobalPosition, 10))
	m.Metadata.Set(transport.MetaTransactionID, strconv.FormatUint(e.TransactionID, 10))
	m.Metadata.Set(transport.MetaSchemaVersion, strconv.Itoa(e.SchemaVersion))
	m.Metadata.Set(transport.MetaRecordedAt, e.RecordedAt.UTC().Format(time.RFC3339Nano))
	if e.Metadata.CorrelationID != "" {
		m.Metadata.Set(transport.MetaCorrelationID, e.Metadata.CorrelationID)
	}
	if e.Metadata.CausationID != "" {
		m.Metadata.Set(transport.MetaCausationID, e.Metadata.CausationID)
	}
	return m
}
