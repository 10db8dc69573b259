// Package store is Herald's Postgres event store: optimistic-concurrency appends grouped into
// shared transactions, idempotent by event id; bulk appends through COPY; gap-safe reads.
package store

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"herald/events"
)

// AnyVersion appends at the end of the stream whatever its version.
const AnyVersion = -1

// Config tunes the store.
type Config struct {
	// Committers is how many transactions may be filling and committing at once. Concurrent
	// Append calls are grouped into these transactions (group commit).
	Committers int
	// MaxGroup caps how many events one group transaction carries.
	MaxGroup int
	// BulkChunk is how many events AppendBulk writes per transaction.
	BulkChunk int
}

func (c *Config) setDefaults() {
	if c.Committers == 0 {
		c.Committers = 2
	}
	if c.MaxGroup == 0 {
		c.MaxGroup = 1000
	}
	if c.BulkChunk == 0 {
		c.BulkChunk = 10000
	}
}

// Validate lists every problem with the configuration.
func (c Config) Validate() error {
	var errs []error
	if c.Committers < 1 || c.Committers > 64 {
		errs = append(errs, fmt.Errorf("store: Committers must be 1..64, got %d", c.Committers))
	}
	if c.MaxGroup < 1 {
		errs = append(errs, fmt.Errorf("store: MaxGroup must be ≥ 1, got %d", c.MaxGroup))
	}
	if c.BulkChunk < 1 {
		errs = append(errs, fmt.Errorf("store: BulkChunk must be ≥ 1, got %d", c.BulkChunk))
	}
	return errors.Join(errs...)
}

// Store appends to and reads from the events table.
type Store struct {
	pool     *pgxpool.Pool
	cfg      Config
	requests []chan *appendRequest // one queue per committer
	done     chan struct{}
	wg       sync.WaitGroup
	closeMu  sync.RWMutex
	closed   bool
	// bell coalesces "events were committed" notifications: one pending at most.
	bell chan struct{}
	// slowPathGroups counts this store's groups that went down the savepoint path (read by
	// tests; per store, so parallel tests do not count each other's).
	slowPathGroups atomic.Int64
}

// New starts a store with cfg.Committers group-commit workers. Close stops them.
func New(pool *pgxpool.Pool, cfg Config) (*Store, error) {
	cfg.setDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	s := &Store{
		pool: pool,
		cfg:  cfg,
		done: make(chan struct{}),
		bell: make(chan struct{}, 1),
	}
	for range cfg.Committers {
		queue := make(chan *appendRequest, 4*cfg.MaxGroup)
		s.requests = append(s.requests, queue)
		s.wg.Add(1)
		go s.commitLoop(queue)
	}
	s.wg.Add(1)
	go s.notifyLoop()
	return s, nil
}

// ring asks the notifier to tell listeners (the relay) that events were committed.
func (s *Store) ring() {
	select {
	case s.bell <- struct{}{}:
	default: // one is already pending: it covers these events too
	}
}

// notifyLoop sends NOTIFY herald_events outside the append transactions. A transaction that
// notifies holds a cluster-wide lock until its commit is flushed, which would serialize every
// append commit; a separate, write-free notification costs no flush. Listeners also poll, so
// a notification lost to a crash costs latency, never events.
func (s *Store) notifyLoop() {
	defer s.wg.Done()
	for {
		select {
		case <-s.done:
			return
		case <-s.bell:
		}
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		_, _ = s.pool.Exec(ctx, `SELECT pg_notify('herald_events', current_schema())`) // best effort: listeners poll too
		cancel()
	}
}

// Close stops the committers after the appends already queued are done.
func (s *Store) Close() {
	s.closeMu.Lock()
	if s.closed {
		s.closeMu.Unlock()
		return
	}
	s.closed = true
	close(s.done)
	s.closeMu.Unlock()
	s.wg.Wait()
}

// Pool is the connection pool the store writes through.
func (s *Store) Pool() *pgxpool.Pool { return s.pool }

// AppendResult says where the appended events are.
type AppendResult struct {
	// Positions holds the global position of each record, in order.
	Positions []int64
	// Checkpoint is the log position of the last record: a reader whose checkpoint has
	// passed it has seen every record of this append.
	Checkpoint Checkpoint
	// StreamVersion is the stream's version after the last record.
	StreamVersion int
	// Duplicate is true when every record was already stored (an idempotent retry); the
	// positions are the original ones.
	Duplicate bool
}

// Append writes recs to streamID as one atomic unit. expected is the stream version the caller
// decided on (0 for a new stream) or AnyVersion. A stale expected version fails with a
// *ConcurrencyError (errors.Is ErrConcurrency). If every record's event id is already stored
// with the same stream, type and payload, Append succeeds with the original positions; a
// reused id with another payload fails with *EventIDReusedError.
//
// Concurrent calls are grouped into shared transactions, so many writers cost one commit.
func (s *Store) Append(ctx context.Context, streamID string, expected int, recs ...events.Record) (AppendResult, error) {
	if len(recs) == 0 {
		return AppendResult{}, errors.New("append: no records")
	}
	if expected < AnyVersion {
		return AppendResult{}, fmt.Errorf("append to %s: invalid expected version %d", streamID, expected)
	}
	return s.submit(ctx, streamID, expected, recs)
}

// submit validates recs, queues them for a committer and waits for the outcome. expected is a
// version, AnyVersion or anyExisting.
func (s *Store) submit(ctx context.Context, streamID string, expected int, recs []events.Record) (AppendResult, error) {
	for i := range recs {
		if recs[i].StreamID != "" && recs[i].StreamID != streamID {
			return AppendResult{}, fmt.Errorf("append to %s: record %d names stream %s", streamID, i, recs[i].StreamID)
		}
		if err := validateRecord(recs[i]); err != nil {
			return AppendResult{}, fmt.Errorf("append to %s: record %d: %w", streamID, i, err)
		}
	}
	req := &appendRequest{streamID: streamID, expected: expected, recs: recs, reply: make(chan appendReply, 1)}

	s.closeMu.RLock()
	if s.closed {
		s.closeMu.RUnlock()
		return AppendResult{}, ErrClosed
	}
	select {
	case s.queueFor(streamID) <- req:
		s.closeMu.RUnlock()
	case <-ctx.Done():
		s.closeMu.RUnlock()
		return AppendResult{}, ctx.Err()
	}
	// Once queued, the request is written whatever happens to ctx: the caller learns the outcome
	// unless it stops waiting, and a retry with the same event ids is then an idempotent success.
	select {
	case r := <-req.reply:
		return r.res, r.err
	case <-ctx.Done():
		return AppendResult{}, ctx.Err()
	}
}

func validateRecord(r events.Record) error {
	var errs []error
	if r.EventID == [16]byte{} {
		errs = append(errs, errors.New("event id is empty"))
	}
	if r.Type == "" {
		errs = append(errs, errors.New("type is empty"))
	}
	if r.SchemaVersion < 1 {
		errs = append(errs, fmt.Errorf("schema version %d < 1", r.SchemaVersion))
	}
	if len(r.Data) == 0 {
		errs = append(errs, errors.New("data is empty"))
	}
	return errors.Join(errs...)
}

// isUniqueViolation reports a 23505 and the constraint it hit.
func isUniqueViolation(err error) (constraint string, ok bool) {
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) && pgErr.Code == "23505" {
		return pgErr.ConstraintName, true
	}
	return "", false
}

// isRetryable reports deadlocks and serialization failures, which a retry of the same
// transaction resolves.
func isRetryable(err error) bool {
	var pgErr *pgconn.PgError
	return errors.As(err, &pgErr) && (pgErr.Code == "40P01" || pgErr.Code == "40001")
}

// withTx runs fn in a transaction, retrying deadlocks a bounded number of times.
func (s *Store) withTx(ctx context.Context, fn func(pgx.Tx) error) error {
	return withTxOn(ctx, s.pool, fn)
}

// withTxOn is withTx on a given pool or connection.
func withTxOn(ctx context.Context, db interface {
	Begin(context.Context) (pgx.Tx, error)
}, fn func(pgx.Tx) error) error {
	var err error
	for attempt := 0; attempt < 5; attempt++ {
		err = pgx.BeginFunc(ctx, db, fn)
		if !isRetryable(err) {
			return err
		}
		time.Sleep(time.Duration(attempt+1) * 5 * time.Millisecond)
	}
	return err
}
