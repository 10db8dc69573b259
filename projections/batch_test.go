package projections

import (
	"bytes"
	"context"
	"fmt"
	"math/rand/v2"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/rs/zerolog"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"herald/events"
	"herald/events/store"
	"herald/schema/schematest"
)

func TestEachRun(t *testing.T) {
	t.Parallel()
	kinds := []int{1, 1, 1, 2, 2, 1, 1, 1, 1}
	keys := []string{"a", "b", "a", "a", "b", "c", "d", "e", "d"}
	var got [][2]int
	require.NoError(t, eachRun(len(kinds), func(i int) int { return kinds[i] }, func(i int) string { return keys[i] },
		func(from, to int) error { got = append(got, [2]int{from, to}); return nil }))
	assert.Equal(t, [][2]int{{0, 2}, {2, 3}, {3, 5}, {5, 8}, {8, 9}}, got)
	require.NoError(t, eachRun(0, nil, nil, func(int, int) error { t.Fatal("no run in an empty page"); return nil }))
}

// burstyWorkload appends n events on a few users and provider messages, in bursts of one event
// type, so that set-based runs are long, repeat their keys (the same phone, (phone, topic) or
// MessageSid several times in one burst) and mix with single events: a re-created user keeps
// its first created_at, merges follow each other on one row, a status fold sees its callbacks
// in every order, updates of users that do not exist do nothing. It returns the number of events.
func burstyWorkload(t testing.TB, s *store.Store, n int, seed uint64) int {
	ctx := context.Background()
	rng := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	const users, sids = 40, 12
	topics := []string{"deals", "news", "back-in-stock"}
	statuses := []string{events.StatusQueued, events.StatusSent, events.StatusDelivered, events.StatusRead,
		events.StatusFailed, events.StatusUndelivered}
	base := time.Date(2026, 11, 26, 12, 0, 0, 0, time.UTC)
	ph := func() string { return phone(9000 + rng.IntN(users+5)) } // a few never created
	var recs []events.Record
	add := func(stream string, e events.Event) {
		r, err := events.NewRecord(events.DeterministicID("bursty", strconv.FormatUint(seed, 10), strconv.Itoa(len(recs))),
			stream, e, events.Metadata{Actor: "test"})
		require.NoError(t, err)
		recs = append(recs, r)
	}
	for i := 0; i < users; i += 2 { // start with most users existing
		p := phone(9000 + i)
		add(events.UserStream(p), events.UserCreated{Phone: p, Consent: events.ConsentOptOut, Source: "import",
			Attributes: map[string]any{"i": i, "tags": []any{"x"}}})
	}
	for len(recs) < n {
		kind, burst := rng.IntN(9), 1+rng.IntN(25)
		if rng.IntN(3) == 0 {
			burst = 1
		}
		for b := 0; b < burst && len(recs) < n; b++ {
			p := ph()
			switch kind {
			case 0:
				var attrs map[string]any
				if rng.IntN(4) > 0 {
					attrs = map[string]any{"name": "n" + strconv.Itoa(rng.IntN(100)), "tier": rng.IntN(4)}
				}
				add(events.UserStream(p), events.UserCreated{Phone: p, Consent: []string{events.ConsentOptIn, events.ConsentOptOut}[rng.IntN(2)],
					Source: "import", Locale: []string{"", "es-PE", "en-US"}[rng.IntN(3)], Timezone: []string{"", "America/Lima"}[rng.IntN(2)],
					Attributes: attrs})
			case 1:
				e := events.UserAttributesChanged{Phone: p, Mode: events.AttributesMerge, Source: "api",
					Attributes: map[string]any{"tier": rng.IntN(5), "name": nil, "k" + strconv.Itoa(rng.IntN(4)): rng.IntN(9)}}
				if rng.IntN(4) == 0 {
					e.Mode, e.Attributes = events.AttributesReplace, map[string]any{"only": b, "gone": nil}
				}
				if rng.IntN(3) == 0 {
					loc := []string{"es-PE", "en-US", "pt-BR"}[rng.IntN(3)]
					e.Locale = &loc
				}
				if rng.IntN(3) == 0 {
					tz := []string{"America/Lima", "UTC"}[rng.IntN(2)]
					e.Timezone = &tz
				}
				add(events.UserStream(p), e)
			case 2:
				add(events.UserStream(p), events.UserConsentChanged{Phone: p, Consent: []string{events.ConsentOptIn, events.ConsentOptOut}[rng.IntN(2)],
					Source: []string{"inbound", "api", "twilio"}[rng.IntN(3)], Reason: "STOP"})
			case 3:
				add(events.UserStream(p), events.UserSubscribed{Phone: p, Topic: topics[rng.IntN(len(topics))], Source: "api"})
			case 4:
				add(events.UserStream(p), events.UserUnsubscribed{Phone: p, Topic: topics[rng.IntN(len(topics))], Source: "inbound"})
			case 8:
				add(events.UserStream(p), events.UserDeleted{Phone: p, Source: "api"})
			case 5:
				sid := fmt.Sprintf("SB%032d", len(recs))
				at := base.Add(time.Duration(rng.IntN(86400)) * time.Second)
				add(events.UserStream(p), events.UserMessageReceived{Phone: p, MessageSID: sid, Body: "hola " + strconv.Itoa(b), ReceivedAt: at,
					TimestampSource: events.TimestampFromServer, Raw: map[string][]string{"Body": {"hola"}, "MessageSid": {sid}}})
			default:
				sid := fmt.Sprintf("SR%032d", rng.IntN(sids))
				at := base.Add(time.Duration(rng.IntN(3600)) * time.Second)
				st := events.MessageStatusReceived{MessageSID: sid, Status: statuses[rng.IntN(len(statuses))], ReceivedAt: at,
					TimestampSource: events.TimestampFromServer, Raw: map[string][]string{"MessageSid": {sid}}}
				if rng.IntN(2) == 0 {
					st.Phone = p
				}
				if rng.IntN(2) == 0 {
					st.MessageID = uuid.NewString()
				}
				if rng.IntN(3) == 0 {
					code := 30000 + rng.IntN(8)
					st.ErrorCode, st.ErrorMessage = &code, "error "+strconv.Itoa(code)
				}
				add(events.ReceiptStream(sid), st)
			}
		}
	}
	for from := 0; from < len(recs); from += 1000 {
		_, err := s.AppendBulk(ctx, recs[from:min(from+1000, len(recs))])
		require.NoError(t, err)
	}
	return len(recs)
}

// waitLogReadable waits until everything committed so far is readable: another test's open
// transaction in the same cluster holds the read horizon back, and a reader that stops at the
// horizon would call an unreadable log caught up.
func waitLogReadable(t testing.TB, pool *pgxpool.Pool) {
	t.Helper()
	head, err := store.Last(context.Background(), pool)
	require.NoError(t, err)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for {
		visible, err := store.Head(ctx, pool)
		require.NoError(t, err)
		if !visible.Less(head) {
			return
		}
		require.NoError(t, ctx.Err(), "the log did not become readable")
		time.Sleep(10 * time.Millisecond)
	}
}

// applyInto applies the whole visible log to p's tables in schema (copies of the live tables),
// per event or set-based, in pages of limit log rows, and returns how often a set-based page
// fell back to per-event apply and how many pages were applied as read ahead.
func applyInto(t *testing.T, db *schematest.Schema, p Projection, schema string, batch bool, limit int) (fallbacks, readAheads, prepared int64) {
	ctx := context.Background()
	a := newApplier(p, events.DefaultRegistry())
	if !batch {
		a.batch = nil
	} else {
		require.NotNil(t, a.batch, "%s applies set-based", p.Name())
	}
	cur := &rebuildCursor{pool: db.Pool, searchPath: pgx.Identifier{schema}.Sanitize() + ", " + pgx.Identifier{db.Name}.Sanitize()}
	for {
		res, err := a.step(ctx, cur, limit)
		require.NoError(t, err)
		if res.caughtUp {
			return a.fallbacks.Load(), a.readAheads.Load(), a.prepared.Load()
		}
	}
}

// copySchema creates empty copies of every projection table in a new schema.
func copySchema(t *testing.T, db *schematest.Schema, name string) string {
	ctx := context.Background()
	schema := db.Name + "_" + name
	_, err := db.Pool.Exec(ctx, "CREATE SCHEMA "+pgx.Identifier{schema}.Sanitize())
	require.NoError(t, err)
	t.Cleanup(func() {
		_, _ = db.Pool.Exec(context.Background(), "DROP SCHEMA "+pgx.Identifier{schema}.Sanitize()+" CASCADE")
	})
	for _, p := range All() {
		for _, table := range p.Tables() {
			_, err := db.Pool.Exec(ctx, fmt.Sprintf("CREATE TABLE %s (LIKE %s INCLUDING ALL)",
				pgx.Identifier{schema, table}.Sanitize(), pgx.Identifier{db.Name, table}.Sanitize()))
			require.NoError(t, err)
		}
	}
	return schema
}

func tableRows(t *testing.T, db *schematest.Schema, schema, table string) []string {
	r, err := db.Pool.Query(context.Background(), `SELECT t::text FROM `+pgx.Identifier{schema, table}.Sanitize()+` t ORDER BY 1`)
	require.NoError(t, err)
	rows, err := pgx.CollectRows(r, pgx.RowTo[string])
	require.NoError(t, err)
	return rows
}

// TestApplyBatchEqualsApply applies the same random mixed workloads — the runner tests' mixed
// workload and a bursty one full of repeated keys — once per event with Apply and set-based
// with ApplyBatch at several page sizes, and compares every table row by row.
func TestApplyBatchEqualsApply(t *testing.T) {
	t.Parallel()
	db := schematest.New(t)
	s := newStore(t, db)
	total := mixedWorkload(t, s, 60, 7)
	total += burstyWorkload(t, s, 4000, 7)
	waitLogReadable(t, db.Pool)

	reference := copySchema(t, db, "per_event")
	variants := map[string]int{"batch_1000": 1000, "batch_97": 97, "batch_5": 5}
	schemas := map[string]string{}
	for name := range variants {
		schemas[name] = copySchema(t, db, name)
	}
	for _, p := range All() {
		applyInto(t, db, p, reference, false, 100)
		if _, ok := p.(BatchProjection); !ok {
			continue
		}
		for name, limit := range variants {
			fallbacks, readAheads, prepared := applyInto(t, db, p, schemas[name], true, limit)
			assert.Zero(t, fallbacks, "%s %s: no set-based page fell back", p.Name(), name)
			if limit < 100 {
				assert.Positive(t, readAheads, "%s %s: pages were read ahead", p.Name(), name)
				// Every projection's ApplyBatch only queues: its pages read ahead are prepared.
				assert.Positive(t, prepared, "%s %s: pages were prepared ahead", p.Name(), name)
			}
		}
	}
	for _, p := range All() {
		if _, ok := p.(BatchProjection); !ok {
			continue
		}
		for _, table := range p.Tables() {
			want := tableRows(t, db, reference, table)
			require.NotEmpty(t, want, table)
			for name, schema := range schemas {
				got := tableRows(t, db, schema, table)
				require.Equal(t, len(want), len(got), "%s rows of %s", name, table)
				for i := range want {
					require.Equal(t, want[i], got[i], "%s: row %d of %s", name, i, table)
				}
			}
		}
	}
	var users, recreated int
	require.NoError(t, db.Pool.QueryRow(context.Background(), `SELECT count(*), count(*) FILTER (WHERE created_at < updated_at)
FROM `+pgx.Identifier{reference, "users"}.Sanitize()).Scan(&users, &recreated))
	t.Logf("%d events; %d users, %d changed after creation", total, users, recreated)
}

// TestPoisonInABatchIsParkedAlone: a page applied set-based contains events the read model
// refuses — a phone that fails the CHECK constraint and a MessageSid already stored under
// another event — and one that does not decode, in the middle of long runs. The set-based
// statement fails, the page is applied again event by event, and exactly the faulty events are
// parked, with their own reasons; everything else is applied.
func TestPoisonInABatchIsParkedAlone(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	ctx := context.Background()
	var recs []events.Record
	var bad []uuid.UUID
	for i := 0; i < 30; i++ {
		p := phone(i)
		if i == 17 {
			p = "not-a-phone"
		}
		r := record(t, events.UserStream(p), events.UserCreated{Phone: p, Consent: events.ConsentOptIn, Source: "import"})
		if i == 17 {
			bad = append(bad, r.EventID)
		}
		recs = append(recs, r)
	}
	for i := 0; i < 30; i++ {
		p, sid := phone(i), fmt.Sprintf("SM%032d", i)
		if i == 23 {
			sid = fmt.Sprintf("SM%032d", 5) // the MessageSid of another message
		}
		r := record(t, events.UserStream(p), events.UserMessageReceived{Phone: p, MessageSID: sid, Body: "hi",
			ReceivedAt: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC), TimestampSource: events.TimestampFromServer,
			Raw: map[string][]string{"MessageSid": {sid}}})
		if i == 23 {
			bad = append(bad, r.EventID)
		}
		recs = append(recs, r)
	}
	_, err := h.store.AppendBulk(ctx, recs)
	require.NoError(t, err)
	// A payload that does not decode, between two more runs.
	h.appendUsers(30, 5, 0)
	undecodable := uuid.New()
	_, err = h.db.Pool.Exec(ctx, `INSERT INTO events (event_id, stream_id, stream_version, type, data)
VALUES ($1, 'user-bad', 1, 'user.created', '{"phone": 42}')`, undecodable)
	require.NoError(t, err)
	bad = append(bad, undecodable)
	h.appendUsers(35, 5, 0)

	r := h.runner(Users{}, InboundMessages{}) // pages of 100 log rows: every event in one page
	head, err := store.Last(ctx, h.db.Pool)
	require.NoError(t, err)
	eventually(t, 30*time.Second, func() bool {
		require.NoError(t, r.CatchUp(ctx, ""))
		for _, name := range []string{"users", "inbound_messages"} {
			cp, err := Checkpoint(ctx, h.db.Pool, name)
			require.NoError(t, err)
			if cp.Less(head) {
				return false
			}
		}
		return true
	}, "both projections passed the last event")

	for _, name := range []string{"users", "inbound_messages"} {
		assert.Positive(t, r.workers[name].a.fallbacks.Load(), "%s fell back to per-event apply", name)
	}
	var users, inbound int
	require.NoError(t, h.db.Pool.QueryRow(ctx, `SELECT count(*) FROM users`).Scan(&users))
	require.NoError(t, h.db.Pool.QueryRow(ctx, `SELECT count(*) FROM events_inbound`).Scan(&inbound))
	assert.Equal(t, 39, users, "every user but the refused one")
	assert.Equal(t, 29, inbound, "every message but the refused one")

	rows, err := h.db.Pool.Query(ctx, `SELECT projection, event_id, reason, attempts FROM parked_events`)
	require.NoError(t, err)
	type parked struct {
		projection, reason string
		attempts           int
	}
	got := map[uuid.UUID]parked{}
	for rows.Next() {
		var (
			p  parked
			id uuid.UUID
		)
		require.NoError(t, rows.Scan(&p.projection, &id, &p.reason, &p.attempts))
		got[id] = p
	}
	require.NoError(t, rows.Err())
	require.Len(t, got, 3)
	for i, want := range []struct{ projection, reason string }{
		{"users", "users_phone_check"},
		{"inbound_messages", "events_inbound_message_sid_key"},
		{"users", "decode user.created"},
	} {
		p, ok := got[bad[i]]
		require.True(t, ok, "event %d (%s) parked", i, want.reason)
		assert.Equal(t, want.projection, p.projection)
		assert.Contains(t, p.reason, want.reason)
		assert.Equal(t, 3, p.attempts)
	}
}

// TestRebuildFailsWhileTheHorizonIsHeld: a transaction left open before the last events were
// appended hides them from every reader. Rebuild waits VisibleWait for it, then fails naming
// it, instead of replaying a log that looks empty; once it ends, Rebuild succeeds.
//
// Not parallel: it holds the read horizon of the whole server for a while, which the other
// tests of this package would wait behind.
func TestRebuildFailsWhileTheHorizonIsHeld(t *testing.T) {
	h := newHarness(t)
	ctx := context.Background()
	conn, err := h.db.Pool.Acquire(ctx)
	require.NoError(t, err)
	defer conn.Release()
	held, err := conn.Begin(ctx)
	require.NoError(t, err)
	defer held.Rollback(ctx) //nolint:errcheck
	var (
		pid int
		xid string
	)
	require.NoError(t, held.QueryRow(ctx, `SELECT pg_backend_pid(), pg_current_xact_id()::text`).Scan(&pid, &xid))
	h.appendUsers(0, 20, 0)

	_, err = Rebuild(ctx, h.db.Pool, events.DefaultRegistry(), Users{}, RebuildConfig{VisibleWait: 1500 * time.Millisecond}, quietLog())
	require.Error(t, err)
	assert.Contains(t, err.Error(), "holds the read horizon back")
	// It names the oldest transaction in the cluster: ours, unless another package's test
	// started one earlier.
	assert.Contains(t, err.Error(), "pid ")
	if !strings.Contains(err.Error(), "pid "+strconv.Itoa(pid)) {
		t.Logf("the horizon was held by an older transaction than ours (pid %d): %v", pid, err)
	}
	t.Log(err)

	require.NoError(t, held.Rollback(ctx))
	res, err := Rebuild(ctx, h.db.Pool, events.DefaultRegistry(), Users{}, RebuildConfig{}, quietLog())
	require.NoError(t, err)
	assert.Equal(t, 20, res.Events)
}

// TestRebuildBuildsIndexesDespiteAnOldSnapshot: a session idle in a transaction that has read
// something holds an old snapshot (not the read horizon: it has no transaction id). The
// concurrent index builds would wait for it forever; Rebuild gives up waiting after indexWait,
// builds the indexes the plain way and yields the same tables. The indexes of a small table are
// built the plain way at once, without waiting.
//
// Not parallel: it changes indexWait and plainBelow.
func TestRebuildBuildsIndexesDespiteAnOldSnapshot(t *testing.T) {
	cases := []struct {
		name       string
		plainBelow int64
		waited     bool // the concurrent builds waited, gave up and built the plain way
	}{
		{"concurrent builds give up waiting", 0, true},
		{"small tables build at once", plainBelow, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t)
			ctx := context.Background()
			mixedWorkload(t, h.store, 50, 3)
			live := h.runner(All()...)
			require.NoError(t, live.CatchUp(ctx, ""))
			before := snapshotAll(t, h)

			savedWait, savedPlain := indexWait, plainBelow
			indexWait, plainBelow = 300*time.Millisecond, tc.plainBelow
			t.Cleanup(func() { indexWait, plainBelow = savedWait, savedPlain })
			idle, err := h.db.Pool.BeginTx(ctx, pgx.TxOptions{IsoLevel: pgx.RepeatableRead})
			require.NoError(t, err)
			defer idle.Rollback(ctx)            //nolint:errcheck
			_, err = idle.Exec(ctx, `SELECT 1`) // takes the transaction's snapshot, and no lock the swap would wait for
			require.NoError(t, err)

			var logged bytes.Buffer
			for _, p := range All() {
				rctx, cancel := context.WithTimeout(ctx, time.Minute)
				res, err := Rebuild(rctx, h.db.Pool, events.DefaultRegistry(), p, RebuildConfig{}, zerolog.New(&logged))
				cancel()
				require.NoError(t, err, "rebuild %s", p.Name())
				assert.Positive(t, res.Events, p.Name())
			}
			require.NoError(t, idle.Rollback(ctx))
			assert.Equal(t, tc.waited, strings.Contains(logged.String(), "building it in one transaction"), "log: %s", logged.String())
			after := snapshotAll(t, h)
			for table := range before {
				assert.Equal(t, before[table][0], after[table][0], "rows of %s", table)
				assert.Equal(t, before[table][1], after[table][1], "indexes of %s", table)
			}
		})
	}
}

// batchCounter is the counter projection applying set-based: one multi-row increment per page,
// which counts a page applied twice.
type batchCounter struct{ *counter }

func (c batchCounter) ApplyBatch(_ context.Context, tx Tx, envs []events.Envelope, _ []events.Event) error {
	ids := make([]uuid.UUID, len(envs))
	for i, env := range envs {
		ids[i] = env.EventID
	}
	tx.Queue(`INSERT INTO `+c.name+`_applied (event_id, n) SELECT id, 1 FROM unnest($1::uuid[]) AS r(id)
ON CONFLICT (event_id) DO UPDATE SET n = `+c.name+`_applied.n + 1`, ids)
	return nil
}

// TestTwoRunnersShareABatchProjectionExactlyOnce: two runners apply one set-based projection
// while writers append, in small pages, from a backlog: a page read ahead is used only if the
// checkpoint, locked, is still where the page starts, and every event is applied exactly once.
func TestTwoRunnersShareABatchProjectionExactlyOnce(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	c := batchCounter{newCounter(t, h.db.Pool, "shared_batch")}
	var backlog []events.Record // so that pages are full from the start
	for i := 0; i < 3000; i++ {
		backlog = append(backlog, record(t, events.UserStream(phone(i)),
			events.UserCreated{Phone: phone(i), Consent: events.ConsentOptIn, Source: "import"}))
	}
	_, err := h.store.AppendBulk(context.Background(), backlog)
	require.NoError(t, err)
	h.startRelay()
	first, second := h.runner(c), h.runner(c)
	h.start(first)
	h.start(second)
	var wg sync.WaitGroup
	for w := 0; w < 4; w++ {
		wg.Add(1)
		go func() { defer wg.Done(); h.appendUsers(3000+w*100, 100, 0) }()
	}
	wg.Wait()
	h.waitApplied(c.Name(), 30*time.Second)
	distinct, doubled := counts(t, h.db.Pool, c.counter)
	assert.Equal(t, 3400, distinct)
	assert.Zero(t, doubled)
	a1, a2 := first.workers[c.Name()].a, second.workers[c.Name()].a
	assert.Zero(t, a1.fallbacks.Load()+a2.fallbacks.Load())
	t.Logf("pages applied as read ahead: %d + %d", a1.readAheads.Load(), a2.readAheads.Load())
}

// readingCounter is a set-based projection whose statements depend on what it reads: each page
// stores its events numbered after the count already stored, read in ApplyBatch. Its pages read
// ahead must not be prepared ahead of their transaction (the count read then would be wrong, or
// the read would fail), even though it ignores the error of its read.
type readingCounter struct{ *counter }

func (c readingCounter) ApplyBatch(ctx context.Context, tx Tx, envs []events.Envelope, _ []events.Event) error {
	var stored int
	_ = tx.QueryRow(ctx, `SELECT count(*) FROM `+c.name+`_applied`).Scan(&stored) // error ignored on purpose
	ids := make([]uuid.UUID, len(envs))
	for i, env := range envs {
		ids[i] = env.EventID
	}
	tx.Queue(`INSERT INTO `+c.name+`_applied (event_id, n) SELECT id, $2 + ord::int FROM unnest($1::uuid[]) WITH ORDINALITY AS r(id, ord)`,
		ids, stored)
	return nil
}

// TestReadingBatchProjectionIsNotPrepared: a page read ahead is prepared ahead of its
// transaction only for a projection that does not read in ApplyBatch; one that reads gets its
// ApplyBatch called in the transaction, and the effect of per-event numbering is kept.
func TestReadingBatchProjectionIsNotPrepared(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	c := readingCounter{newCounter(t, h.db.Pool, "reading_batch")}
	const n = 300
	var recs []events.Record
	for i := 0; i < n; i++ {
		recs = append(recs, record(t, events.UserStream(phone(i)),
			events.UserCreated{Phone: phone(i), Consent: events.ConsentOptIn, Source: "import"}))
	}
	_, err := h.store.AppendBulk(context.Background(), recs)
	require.NoError(t, err)
	waitLogReadable(t, h.db.Pool)

	a := newApplier(c, events.DefaultRegistry())
	cur := liveCursor{pool: h.db.Pool, name: c.Name()}
	require.NoError(t, EnsureCheckpoints(context.Background(), h.db.Pool, []Projection{c}))
	for {
		res, err := a.step(context.Background(), cur, 40)
		require.NoError(t, err)
		if res.caughtUp {
			break
		}
	}
	assert.Positive(t, a.readAheads.Load(), "pages were read ahead")
	assert.Zero(t, a.prepared.Load(), "a page of a projection that reads was prepared ahead")
	assert.Zero(t, a.fallbacks.Load())
	var distinct, numbers, top int
	require.NoError(t, h.db.Pool.QueryRow(context.Background(),
		`SELECT count(*), count(DISTINCT n), max(n) FROM `+c.name+`_applied`).Scan(&distinct, &numbers, &top))
	assert.Equal(t, n, distinct)
	assert.Equal(t, n, numbers, "every event numbered once, in order")
	assert.Equal(t, n, top)
}
