package projections

import (
	"context"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"herald/events"
	"herald/events/relay"
	"herald/events/store"
	"herald/events/transport/transporttest"
	"herald/schema/schematest"
)

// harness runs a relay and lets a test start and stop runners against one schema.
type harness struct {
	t     *testing.T
	db    *schematest.Schema
	rds   *transporttest.Redis
	store *store.Store
	relay *relay.Relay
}

func newHarness(t *testing.T) *harness {
	db := schematest.New(t)
	rds := transporttest.New(t)
	h := &harness{t: t, db: db, rds: rds, store: newStore(t, db)}
	return h
}

// startRelay runs the relay until the test ends.
func (h *harness) startRelay() {
	var schemaName string
	require.NoError(h.t, h.db.Pool.QueryRow(context.Background(), `SELECT current_schema()`).Scan(&schemaName))
	pub, err := transportNewPublisher(h)
	require.NoError(h.t, err)
	rl, err := relay.New(relay.Config{Schema: schemaName, Transport: h.rds.Transport, PollInterval: 100 * time.Millisecond},
		h.db.Pool, h.rds.Client, pub, quietLog(), nil)
	require.NoError(h.t, err)
	h.relay = rl
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); _ = rl.Run(ctx) }()
	h.t.Cleanup(func() { cancel(); <-done; pub.Close() })
}

// runner builds a runner that relies on doorbells: its fallback poll is an hour.
func (h *harness) runner(ps ...Projection) *Runner {
	r, err := NewRunner(Config{Transport: h.rds.Transport, PollInterval: time.Hour, BatchSize: 100,
		ResubscribeDelay: 100 * time.Millisecond, Consumer: uuid.NewString()},
		h.db.Pool, events.DefaultRegistry(), h.rds.Opts, ps, quietLog(), nil)
	require.NoError(h.t, err)
	return r
}

// start runs r until the returned stop is called (or the test ends).
func (h *harness) start(r *Runner) (stop func()) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); _ = r.Run(ctx) }()
	var once sync.Once
	stop = func() { once.Do(func() { cancel(); <-done }) }
	h.t.Cleanup(stop)
	return stop
}

// waitApplied waits until projection name has passed everything appended so far.
func (h *harness) waitApplied(name string, within time.Duration) {
	h.t.Helper()
	head, err := store.Last(context.Background(), h.db.Pool)
	require.NoError(h.t, err)
	ctx, cancel := context.WithTimeout(context.Background(), within)
	defer cancel()
	require.NoError(h.t, WaitFor(ctx, h.db.Pool, name, head), "projection %s did not reach %v", name, head)
}

// appendUsers appends n single-event appends to fresh user streams, pausing between them.
func (h *harness) appendUsers(from, n int, pause time.Duration) {
	for i := from; i < from+n; i++ {
		p := phone(i)
		_, err := h.store.Append(context.Background(), events.UserStream(p), 0, record(h.t, events.UserStream(p),
			events.UserCreated{Phone: p, Consent: events.ConsentOptIn, Source: "test", Attributes: map[string]any{"i": i}}))
		require.NoError(h.t, err)
		if pause > 0 {
			time.Sleep(pause)
		}
	}
}

func TestRedisLosingItsDataLosesNoEvent(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	c := newCounter(t, h.db.Pool, "flush")
	h.startRelay()
	h.start(h.runner(c, Users{}))

	epochWritten := func() bool {
		n, err := h.rds.Client.Exists(context.Background(), h.rds.Transport.EpochKey()).Result()
		return err == nil && n == 1
	}
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { defer wg.Done(); h.appendUsers(0, 600, time.Millisecond) }()
	for range 2 {
		// Once the relay has written its epoch, Redis forgets everything.
		eventually(t, 20*time.Second, epochWritten, "the relay writes its epoch")
		time.Sleep(100 * time.Millisecond)
		transporttest.DeletePrefix(context.Background(), h.rds.Client, h.rds.Transport.Prefix)
	}
	wg.Wait()

	h.waitApplied(c.Name(), 30*time.Second)
	h.waitApplied("users", 30*time.Second)
	distinct, doubled := counts(t, h.db.Pool, c)
	assert.Equal(t, 600, distinct, "every event applied")
	assert.Zero(t, doubled, "no event applied twice")
	var users int
	require.NoError(t, h.db.Pool.QueryRow(context.Background(), `SELECT count(*) FROM users`).Scan(&users))
	assert.Equal(t, 600, users)
	eventually(t, 20*time.Second, func() bool { return h.relay.Status().Republishes >= 2 },
		"the relay noticed Redis losing its data, twice")
}

// hookCursor wraps the live cursor with failpoints.
type hookCursor struct {
	cursor
	afterCommit func()
}

func (c hookCursor) committed(cp store.Checkpoint) {
	c.cursor.committed(cp)
	if c.afterCommit != nil {
		c.afterCommit()
	}
}

func TestConsumerKilledMidBatchLosesNothingAndDoublesNothing(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name string
		// kill arranges for cancel to be called at a failpoint of runner r.
		kill func(r *Runner, c *counter, cancel func())
	}{
		{"between apply and commit", func(_ *Runner, c *counter, cancel func()) {
			var n atomic.Int64
			c.onApply = func(events.Envelope) {
				if n.Add(1) == 150 { // in the middle of the second batch of 100
					cancel()
				}
			}
		}},
		{"between commit and ack", func(r *Runner, c *counter, cancel func()) {
			w := r.workers[c.Name()]
			var n atomic.Int64
			w.cur = hookCursor{cursor: w.cur, afterCommit: func() {
				if n.Add(1) == 2 {
					cancel()
				}
			}}
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			h := newHarness(t)
			c := newCounter(t, h.db.Pool, "killed")
			h.appendUsers(0, 500, 0)
			h.startRelay()

			first := h.runner(c)
			ctx, cancel := context.WithCancel(context.Background())
			tc.kill(first, c, cancel)
			done := make(chan struct{})
			go func() { defer close(done); _ = first.Run(ctx) }()
			select {
			case <-done:
			case <-time.After(30 * time.Second):
				t.Fatal("the first runner was never killed")
			}
			distinct, _ := counts(t, h.db.Pool, c)
			require.Less(t, distinct, 500, "the failpoint fired before the end")

			c.onApply = nil
			h.start(h.runner(c)) // the replacement process
			h.appendUsers(500, 100, 0)
			h.waitApplied(c.Name(), 30*time.Second)
			distinct, doubled := counts(t, h.db.Pool, c)
			assert.Equal(t, 600, distinct)
			assert.Zero(t, doubled)
		})
	}
}

func TestTwoRunnersShareAProjectionExactlyOnce(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	c := newCounter(t, h.db.Pool, "shared")
	h.startRelay()
	h.start(h.runner(c))
	h.start(h.runner(c))
	var wg sync.WaitGroup
	for w := 0; w < 4; w++ {
		wg.Add(1)
		go func() { defer wg.Done(); h.appendUsers(w*200, 200, 0) }()
	}
	wg.Wait()
	h.waitApplied(c.Name(), 30*time.Second)
	distinct, doubled := counts(t, h.db.Pool, c)
	assert.Equal(t, 800, distinct)
	assert.Zero(t, doubled)
}

func TestMalformedEventsAreParkedAndOthersGoOn(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	ctx := context.Background()
	h.appendUsers(0, 3, 0)
	// Hand-edited rows: a payload that does not decode, and one the read model refuses.
	for i, data := range []string{`{"phone": 42}`, `{"phone": "not-a-phone", "consent": "OPT_IN"}`} {
		_, err := h.db.Pool.Exec(ctx, `INSERT INTO events (event_id, stream_id, stream_version, type, data)
VALUES ($1, $2, 1, 'user.created', $3::jsonb)`, uuid.New(), "user-bad"+string(rune('a'+i)), data)
		require.NoError(t, err)
	}
	h.appendUsers(3, 2, 0)
	p := phone(9)
	_, err := h.store.Append(ctx, events.UserStream(p), 0, record(t, events.UserStream(p), events.UserSubscribed{Phone: p, Topic: "deals", Source: "api"}))
	require.NoError(t, err)

	r := h.runner(Users{}, Subscriptions{})
	require.NoError(t, r.CatchUp(ctx, ""))

	var users int
	require.NoError(t, h.db.Pool.QueryRow(ctx, `SELECT count(*) FROM users`).Scan(&users))
	assert.Equal(t, 5, users, "events after the bad ones were applied")
	var subs int
	require.NoError(t, h.db.Pool.QueryRow(ctx, `SELECT count(*) FROM subscriptions`).Scan(&subs))
	assert.Equal(t, 1, subs, "another projection is unaffected")

	rows, err := h.db.Pool.Query(ctx, `SELECT projection, reason, attempts FROM parked_events ORDER BY global_position`)
	require.NoError(t, err)
	type parked struct {
		projection, reason string
		attempts           int
	}
	var got []parked
	for rows.Next() {
		var p parked
		require.NoError(t, rows.Scan(&p.projection, &p.reason, &p.attempts))
		got = append(got, p)
	}
	require.NoError(t, rows.Err())
	require.Len(t, got, 2)
	assert.Equal(t, "users", got[0].projection)
	assert.Contains(t, got[0].reason, "decode user.created")
	assert.Contains(t, got[1].reason, "users_phone_check")
	assert.Equal(t, 3, got[0].attempts)

	statuses, err := r.Status(ctx)
	require.NoError(t, err)
	for _, s := range statuses {
		assert.False(t, s.Stuck, s.Name)
		if s.Name == "users" {
			assert.Equal(t, 2, s.Parked)
		}
	}
}

// flaky fails every event while failing is set, with an error that is not the event's fault.
type flaky struct {
	*counter
	failing atomic.Bool
}

func (f *flaky) Apply(ctx context.Context, tx Tx, env events.Envelope, e events.Event) error {
	if f.failing.Load() {
		return context.DeadlineExceeded // looks like an unreachable database
	}
	return f.counter.Apply(ctx, tx, env, e)
}

func TestATransientFailureIsRetriedAndReportedNotParked(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	f := &flaky{counter: newCounter(t, h.db.Pool, "flaky")}
	f.failing.Store(true)
	h.appendUsers(0, 10, 0)
	h.startRelay()
	r := h.runner(f)
	h.start(r)

	ctx := context.Background()
	eventually(t, 10*time.Second, func() bool {
		s, err := r.Status(ctx)
		return err == nil && s[0].Stuck && s[0].LastError != ""
	}, "the projection reports itself stuck")
	f.failing.Store(false)
	h.waitApplied(f.Name(), 60*time.Second)
	distinct, doubled := counts(t, h.db.Pool, f.counter)
	assert.Equal(t, 10, distinct)
	assert.Zero(t, doubled)
	var parked int
	require.NoError(t, h.db.Pool.QueryRow(ctx, `SELECT count(*) FROM parked_events`).Scan(&parked))
	assert.Zero(t, parked, "a transient failure never parks an event")
	eventually(t, 10*time.Second, func() bool {
		s, err := r.Status(ctx)
		return err == nil && !s[0].Stuck
	}, "the projection recovers")
}

// TestWaitForBeforeTheRunnerStarted: an API process may write before any runner has created
// its checkpoint rows; waiting then means waiting, not failing.
func TestWaitForBeforeTheRunnerStarted(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	res, err := h.store.Append(context.Background(), events.UserStream(phone(1)), 0,
		record(t, events.UserStream(phone(1)), events.UserCreated{Phone: phone(1), Consent: events.ConsentOptIn, Source: "test"}))
	require.NoError(t, err)
	done := make(chan error, 1)
	go func() { done <- WaitFor(context.Background(), h.db.Pool, "users", res.Checkpoint) }()
	time.Sleep(100 * time.Millisecond)
	select {
	case err := <-done:
		t.Fatalf("WaitFor returned %v before any runner applied the event", err)
	default:
	}
	require.NoError(t, h.runner(Users{}).CatchUp(context.Background(), ""))
	require.NoError(t, <-done)
}

// TestRunnerWaitsOutAFailingStart: a runner that cannot create its checkpoint rows (here the
// table is away; in CI it was PostgreSQL refusing connections, "too many clients") reports
// every projection stuck and tries again, then applies once it can. It used to return the
// error, and `herald serve` exited with it.
func TestRunnerWaitsOutAFailingStart(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	ctx := context.Background()
	h.appendUsers(0, 5, 0)
	_, err := h.db.Pool.Exec(ctx, `ALTER TABLE checkpoints RENAME TO checkpoints_away`)
	require.NoError(t, err)
	r := h.runner(Users{})
	r.cfg.MaxBackoff = 200 * time.Millisecond
	done := make(chan error, 1)
	runCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	go func() { done <- r.Run(runCtx) }()

	stuck := func() bool {
		r.mu.Lock()
		defer r.mu.Unlock()
		return r.health["users"].stuck
	}
	eventually(t, 10*time.Second, stuck, "the runner reports the projection stuck")
	select {
	case err := <-done:
		t.Fatalf("Run returned while PostgreSQL refused it: %v", err)
	case <-time.After(500 * time.Millisecond):
	}

	_, err = h.db.Pool.Exec(ctx, `ALTER TABLE checkpoints_away RENAME TO checkpoints`)
	require.NoError(t, err)
	h.waitApplied("users", 10*time.Second)
	assert.False(t, stuck(), "healthy again")
	var users int
	require.NoError(t, h.db.Pool.QueryRow(ctx, `SELECT count(*) FROM users`).Scan(&users))
	assert.Equal(t, 5, users)
	cancel()
	assert.NoError(t, <-done)
}
