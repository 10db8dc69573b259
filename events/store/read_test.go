package store_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"herald/events"
	"herald/events/store"
)

// openTx is a transaction on a connection of its own, as another writer would have, inserting
// with plain SQL.
type openTx struct {
	name string
	tx   pgx.Tx
	ids  []uuid.UUID
	cps  []store.Checkpoint
	done bool // committed or rolled back
}

func begin(t *testing.T, e env, name string) *openTx {
	t.Helper()
	tx, err := e.db.Pool.Begin(context.Background())
	require.NoError(t, err)
	t.Cleanup(func() { _ = tx.Rollback(context.Background()) })
	return &openTx{name: name, tx: tx}
}

func (o *openTx) insert(t *testing.T, stream string, version int) {
	t.Helper()
	id := uuid.New()
	o.ids = append(o.ids, id)
	o.cps = append(o.cps, rawInsert(t, o.tx, id, testEventType, stream, version, payload(0, version)))
}

func (o *openTx) xid() uint64 { return o.cps[0].TxID }

func (o *openTx) finish(t *testing.T, commit bool) {
	t.Helper()
	if commit {
		require.NoError(t, o.tx.Commit(context.Background()))
	} else {
		require.NoError(t, o.tx.Rollback(context.Background()))
	}
	o.done = true
}

// TestReadAfterOutOfOrderCommits: A inserts first (lower position, lower xid), B second, and B
// commits first. The reader must not return B while A is open, nor move its checkpoint past A;
// when A commits both arrive, A first; when A rolls back, B arrives and A never does.
func TestReadAfterOutOfOrderCommits(t *testing.T) {
	t.Parallel()
	for _, commitA := range []bool{true, false} {
		name := map[bool]string{true: "A commits after B", false: "A rolls back after B commits"}[commitA]
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			e := newEnv(t, 6, store.Config{})
			ctx := context.Background()

			zero := rec("ooo-0", 0, 0)
			_, err := e.store.Append(ctx, "ooo-0", 0, zero)
			require.NoError(t, err)
			got, cp := readUntil(t, e.db.Pool, store.Checkpoint{}, 7, nil, func(evs []events.Envelope, _ store.Checkpoint) bool { return len(evs) == 1 })
			require.Equal(t, zero.EventID, got[0].EventID)

			a, b := begin(t, e, "A"), begin(t, e, "B")
			a.insert(t, "ooo-a", 1)
			b.insert(t, "ooo-b", 1)
			require.Less(t, a.cps[0].Position, b.cps[0].Position, "A took the lower position")
			require.Less(t, a.xid(), b.xid(), "A took the lower xid")
			b.finish(t, true)
			// A third writer commits after B, through the store.
			c := rec("ooo-c", 0, 0)
			_, err = e.store.Append(ctx, "ooo-c", 0, c)
			require.NoError(t, err)

			for range 3 { // whatever else the cluster does, A is open: nothing may pass it
				evs, next := readAllVisible(t, e.db.Pool, cp, 7, nil)
				assert.Empty(t, evs, "the reader returned events committed after a still open transaction")
				assert.True(t, next.Less(a.cps[0]), "checkpoint %+v moved past the open transaction at %+v", next, a.cps[0])
				cp = next
			}

			a.finish(t, commitA)
			want := []uuid.UUID{b.ids[0], c.EventID}
			if commitA {
				want = []uuid.UUID{a.ids[0], b.ids[0], c.EventID}
			}
			evs, next := readUntil(t, e.db.Pool, cp, 7, nil, func(evs []events.Envelope, _ store.Checkpoint) bool {
				return contains(evs, c.EventID)
			})
			assert.Equal(t, want, envelopeIDs(evs), "A before B, none missing, a rolled back A never")
			requireLogOrder(t, evs)

			more, _ := readAllVisible(t, e.db.Pool, next, 7, nil)
			assert.Empty(t, more, "nothing is delivered twice")
		})
	}
}

func contains(evs []events.Envelope, id uuid.UUID) bool {
	return slices.ContainsFunc(evs, func(e events.Envelope) bool { return e.EventID == id })
}

// TestReadAfterCommitOrders: three transactions insert interleaved (A1 B1 C1 A2 B2 C2) and end in
// various orders, some rolling back. After every end the reader reads what is visible: it never
// returns an event while a transaction with a lower xid is open, never returns one twice or one
// rolled back, and in the end has exactly the committed events in (xid, position) order.
func TestReadAfterCommitOrders(t *testing.T) {
	t.Parallel()
	type step struct {
		tx     int // 0 = A, 1 = B, 2 = C
		commit bool
	}
	tests := []struct {
		name  string
		steps []step
	}{
		{"in order", []step{{0, true}, {1, true}, {2, true}}},
		{"reversed", []step{{2, true}, {1, true}, {0, true}}},
		{"middle first", []step{{1, true}, {2, true}, {0, true}}},
		{"last first, first rolled back", []step{{2, true}, {0, false}, {1, true}}},
		{"middle rolled back first", []step{{1, false}, {2, true}, {0, true}}},
		{"only the middle commits, last", []step{{0, false}, {2, false}, {1, true}}},
	}
	e := newEnv(t, 10, store.Config{})
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			// Each case reads from its own stream names, filtered out of the shared log by type.
			typ := fmt.Sprintf("test.order-%d", i)
			txs := []*openTx{begin(t, e, "A"), begin(t, e, "B"), begin(t, e, "C")}
			for round := 1; round <= 2; round++ {
				for _, o := range txs {
					id := uuid.New()
					o.ids = append(o.ids, id)
					o.cps = append(o.cps, rawInsert(t, o.tx, id, typ, fmt.Sprintf("order-%d-%s", i, o.name), round, payload(0, round)))
				}
			}
			require.True(t, txs[0].xid() < txs[1].xid() && txs[1].xid() < txs[2].xid())

			owner := map[uuid.UUID]*openTx{}
			for _, o := range txs {
				for _, id := range o.ids {
					owner[id] = o
				}
			}
			committed := map[*openTx]bool{}
			var read []events.Envelope
			cp := store.Checkpoint{}
			for _, st := range tt.steps {
				o := txs[st.tx]
				o.finish(t, st.commit)
				committed[o] = st.commit
				evs, next := readAllVisible(t, e.db.Pool, cp, 3, []string{typ})
				cp = next
				for _, ev := range evs {
					w := owner[ev.EventID]
					require.NotNil(t, w, "an event of no transaction of this case")
					require.True(t, committed[w], "read an event of %s, which is not committed", w.name)
					for _, other := range txs {
						if other.xid() < w.xid() {
							require.True(t, other.done, "read %s's event while %s (lower xid) is open", w.name, other.name)
						}
					}
				}
				read = append(read, evs...)
			}

			var want []uuid.UUID
			for _, o := range txs { // A, B, C is xid order; within one, position order
				if committed[o] {
					want = append(want, o.ids...)
				}
			}
			rest, _ := readUntil(t, e.db.Pool, cp, 3, []string{typ}, func(evs []events.Envelope, _ store.Checkpoint) bool {
				return len(read)+len(evs) >= len(want)
			})
			read = append(read, rest...)
			assert.Equal(t, want, envelopeIDs(read))
			requireLogOrder(t, read)
		})
	}
}

// TestReadAfterTypeFilter: a reader filtering by type moves its checkpoint past the events it
// skips, but never past a transaction that is still open.
func TestReadAfterTypeFilter(t *testing.T) {
	t.Parallel()
	e := newEnv(t, 6, store.Config{})
	ctx := context.Background()
	const wanted = "test.wanted"
	filter := []string{wanted}

	var lastOther store.Checkpoint
	for i := range 5 {
		res, err := e.store.Append(ctx, "filter-other", store.AnyVersion, rec("filter-other", 0, i))
		require.NoError(t, err)
		lastOther = res.Checkpoint
	}
	evs, cp := readUntil(t, e.db.Pool, store.Checkpoint{}, 2, filter, func(_ []events.Envelope, cp store.Checkpoint) bool {
		return !cp.Less(lastOther)
	})
	assert.Empty(t, evs)
	assert.False(t, cp.Less(lastOther), "the checkpoint passed the skipped events without returning them")

	a := begin(t, e, "A")
	a.insertType(t, wanted, "filter-wanted", 1)
	res, err := e.store.Append(ctx, "filter-other", store.AnyVersion, rec("filter-other", 0, 5))
	require.NoError(t, err)
	afterA := res.Checkpoint
	require.True(t, a.cps[0].Less(afterA))
	for range 3 {
		evs, next := readAllVisible(t, e.db.Pool, cp, 2, filter)
		assert.Empty(t, evs)
		assert.True(t, next.Less(a.cps[0]), "a filtering reader's checkpoint %+v passed the open transaction at %+v", next, a.cps[0])
		cp = next
	}

	a.finish(t, true)
	evs, cp = readUntil(t, e.db.Pool, cp, 2, filter, func(evs []events.Envelope, cp store.Checkpoint) bool {
		return len(evs) == 1 && !cp.Less(afterA)
	})
	require.Len(t, evs, 1)
	assert.Equal(t, a.ids[0], evs[0].EventID)
	assert.Equal(t, wanted, evs[0].Type)

	// Several types at once, and the unfiltered reader sees everything.
	all, _ := readAllVisible(t, e.db.Pool, store.Checkpoint{}, 4, nil)
	assert.Len(t, all, 7)
	both, _ := readAllVisible(t, e.db.Pool, store.Checkpoint{}, 4, []string{wanted, testEventType})
	assert.Equal(t, envelopeIDs(all), envelopeIDs(both))
}

// TestReadAfterTypeFilterJumps: a filtering reader starts at the first event of its types, so a
// stretch of other types costs it no page, and a log without its types is read in one.
func TestReadAfterTypeFilterJumps(t *testing.T) {
	t.Parallel()
	e := newEnv(t, 6, store.Config{})
	ctx := context.Background()
	const wanted = "test.jump"
	var recs []events.Record
	for i := range 20 {
		recs = append(recs, rec("jump-other", 0, i))
	}
	res, err := e.store.Append(ctx, "jump-other", 0, recs...)
	require.NoError(t, err)
	a := begin(t, e, "A")
	a.insertType(t, wanted, "jump-wanted", 1)
	a.finish(t, true)
	readUntil(t, e.db.Pool, store.Checkpoint{}, 100, nil, func(evs []events.Envelope, _ store.Checkpoint) bool { return len(evs) == 21 })

	page, err := store.ReadAfter(ctx, e.db.Pool, store.Checkpoint{}, 2, []string{wanted})
	require.NoError(t, err)
	require.Len(t, page.Events, 1, "the first page holds the wanted event behind 20 others")
	assert.Equal(t, a.ids[0], page.Events[0].EventID)
	assert.True(t, page.CaughtUp)

	page, err = store.ReadAfter(ctx, e.db.Pool, store.Checkpoint{}, 2, []string{"test.none"})
	require.NoError(t, err)
	assert.Empty(t, page.Events)
	assert.True(t, page.CaughtUp, "no event of the types: caught up in one read")
	assert.False(t, page.Next.Less(a.cps[0]), "the checkpoint passed every event")
	assert.False(t, page.Next.Less(res.Checkpoint))
}

func (o *openTx) insertType(t *testing.T, typ, stream string, version int) {
	t.Helper()
	id := uuid.New()
	o.ids = append(o.ids, id)
	o.cps = append(o.cps, rawInsert(t, o.tx, id, typ, stream, version, payload(0, version)))
}

// TestReadAfterPages: a full page stops at its last event and is not caught up; the next one
// continues exactly there.
func TestReadAfterPages(t *testing.T) {
	t.Parallel()
	e := newEnv(t, 4, store.Config{})
	ctx := context.Background()
	var recs []events.Record
	for i := range 5 {
		recs = append(recs, rec("pages", 0, i))
	}
	res, err := e.store.Append(ctx, "pages", 0, recs...)
	require.NoError(t, err)
	readUntil(t, e.db.Pool, store.Checkpoint{}, 10, nil, func(evs []events.Envelope, _ store.Checkpoint) bool { return len(evs) == 5 })

	cp := store.Checkpoint{}
	var got []events.Envelope
	for _, want := range []struct {
		n        int
		caughtUp bool
	}{{2, false}, {2, false}, {1, true}} {
		page, err := store.ReadAfter(ctx, e.db.Pool, cp, 2, nil)
		require.NoError(t, err)
		require.Len(t, page.Events, want.n)
		assert.Equal(t, want.caughtUp, page.CaughtUp)
		if !want.caughtUp {
			assert.Equal(t, store.After(page.Events[len(page.Events)-1]), page.Next, "a full page stops at its last event")
		} else {
			assert.False(t, page.Next.Less(res.Checkpoint))
		}
		got = append(got, page.Events...)
		cp = page.Next
	}
	assert.Equal(t, recordIDs(recs), envelopeIDs(got))
	for i, ev := range got {
		assert.Equal(t, i+1, ev.StreamVersion)
		assert.Equal(t, res.Positions[i], ev.GlobalPosition)
		assert.Equal(t, "test", ev.Metadata.Actor)
		assert.Equal(t, testEventType, ev.Type)
		assert.Equal(t, 1, ev.SchemaVersion)
		assert.False(t, ev.RecordedAt.IsZero())
		assert.JSONEq(t, string(recs[i].Data), string(ev.Data))
	}
}

// TestReadAfterStorm: 16 writers commit (or roll back, one in ten) many small transactions with
// random delays while a reader tails the log seven events at a time. When the writers stop and the
// reader has caught up, it has read exactly the committed events, once each, every stream in
// version order.
func TestReadAfterStorm(t *testing.T) {
	t.Parallel()
	const (
		writers = 16
		txs     = 30
		streams = 3 // per writer
		page    = 7
	)
	e := newEnv(t, writers+4, store.Config{})
	ctx := context.Background()

	var mu sync.Mutex
	committed := map[uuid.UUID]bool{}
	rolledBack := 0
	errs := make(chan error, writers)
	var wg sync.WaitGroup
	for w := range writers {
		rng := rand.New(rand.NewPCG(uint64(w), 42))
		wg.Go(func() {
			next := make([]int, streams) // committed versions per stream
			for range txs {
				tx, err := e.db.Pool.Begin(ctx)
				if err != nil {
					errs <- err
					return
				}
				pending := slices.Clone(next)
				var ids []uuid.UUID
				for range 1 + rng.IntN(5) {
					s := rng.IntN(streams)
					pending[s]++
					id := uuid.New()
					if _, err := tx.Exec(ctx, `INSERT INTO events (event_id, stream_id, stream_version, type, data) VALUES ($1, $2, $3, $4, $5::jsonb)`,
						id, fmt.Sprintf("storm-%02d-%d", w, s), pending[s], testEventType, payload(w, pending[s])); err != nil {
						errs <- err
						return
					}
					ids = append(ids, id)
				}
				time.Sleep(time.Duration(rng.IntN(1500)) * time.Microsecond) // commit later than the next writer, sometimes
				if rng.IntN(10) == 0 {
					if err := tx.Rollback(ctx); err != nil {
						errs <- err
						return
					}
					mu.Lock()
					rolledBack++
					mu.Unlock()
					continue
				}
				if err := tx.Commit(ctx); err != nil {
					errs <- err
					return
				}
				next = pending
				mu.Lock()
				for _, id := range ids {
					committed[id] = true
				}
				mu.Unlock()
			}
		})
	}
	writersDone := make(chan struct{})
	go func() { wg.Wait(); close(writersDone) }()

	var (
		read          []events.Envelope
		readDuring    int
		cp            store.Checkpoint
		last          store.Checkpoint
		stopped       bool
		deadline      = time.Now().Add(2 * waitTimeout)
		readErr       error
		pagesDuring   int
		pagesCaughtUp int
	)
	for {
		page, err := store.ReadAfter(ctx, e.db.Pool, cp, page, nil)
		if err != nil {
			readErr = err
			break
		}
		require.False(t, page.Next.Less(cp), "checkpoint moved backwards")
		read = append(read, page.Events...)
		cp = page.Next
		if !stopped {
			pagesDuring++
			readDuring = len(read)
		}
		if !page.CaughtUp {
			continue
		}
		pagesCaughtUp++
		if stopped && !cp.Less(last) {
			break
		}
		if !stopped {
			select {
			case <-writersDone:
				stopped = true
				last, err = store.Last(ctx, e.db.Pool)
				require.NoError(t, err)
				continue
			default:
			}
		}
		require.True(t, time.Now().Before(deadline), "the reader did not catch up (horizon held back?)")
		time.Sleep(200 * time.Microsecond) // poll interval of a tailing reader
	}
	<-writersDone
	close(errs)
	for err := range errs {
		require.NoError(t, err)
	}
	require.NoError(t, readErr)
	t.Logf("%d events committed, %d transactions rolled back; %d read while writing in %d pages", len(committed), rolledBack, readDuring, pagesDuring)

	seen := map[uuid.UUID]bool{}
	for _, ev := range read {
		require.False(t, seen[ev.EventID], "event %s read twice", ev.EventID)
		seen[ev.EventID] = true
		require.True(t, committed[ev.EventID], "read event %s, which was never committed", ev.EventID)
	}
	for id := range committed {
		require.True(t, seen[id], "committed event %s was never read", id)
	}
	requireLogOrder(t, read)
	versions := map[string]int{}
	for _, ev := range read {
		require.Equal(t, versions[ev.StreamID]+1, ev.StreamVersion, "stream %s", ev.StreamID)
		versions[ev.StreamID] = ev.StreamVersion
	}
}

func TestReadStream(t *testing.T) {
	t.Parallel()
	e := newEnv(t, 4, store.Config{})
	ctx := context.Background()
	var recs []events.Record
	for i := range 4 {
		recs = append(recs, rec("rs-1", 0, i))
	}
	other, err := events.NewRecord(uuid.New(), "rs-1", events.UserSubscribed{Phone: "+1", Topic: "t"}, events.Metadata{CorrelationID: "corr"})
	require.NoError(t, err)
	recs = append(recs, other)
	_, err = e.store.Append(ctx, "rs-1", 0, recs...)
	require.NoError(t, err)
	_, err = e.store.Append(ctx, "rs-10", 0, rec("rs-10", 0, 0)) // a stream whose name extends the first
	require.NoError(t, err)

	tests := []struct {
		name string
		from int
		want []events.Record
	}{
		{"from the start", 0, recs},
		{"after version 2", 2, recs[2:]},
		{"after the last version", 5, nil},
		{"past the end", 9, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			evs, err := store.ReadStream(ctx, e.db.Pool, "rs-1", tt.from)
			require.NoError(t, err)
			assert.Equal(t, recordIDs(tt.want), envelopeIDs(evs))
			for i, ev := range evs {
				assert.Equal(t, tt.from+i+1, ev.StreamVersion)
				assert.Equal(t, "rs-1", ev.StreamID)
			}
		})
	}

	evs := readStream(t, e.db.Pool, "rs-1")
	assert.Equal(t, events.Metadata{CorrelationID: "corr"}, evs[4].Metadata)
	typed, err := store.ReadStreamTypes(ctx, e.db.Pool, "rs-1", []string{events.TypeUserSubscribed})
	require.NoError(t, err)
	assert.Equal(t, []uuid.UUID{other.EventID}, envelopeIDs(typed))
	v, err := store.StreamVersion(ctx, e.db.Pool, "rs-1")
	require.NoError(t, err)
	assert.Equal(t, 5, v)
	v, err = store.StreamVersion(ctx, e.db.Pool, "rs-none")
	require.NoError(t, err)
	assert.Zero(t, v)
	ok, err := store.Exists(ctx, e.db.Pool, other.EventID)
	require.NoError(t, err)
	assert.True(t, ok)
	ok, err = store.Exists(ctx, e.db.Pool, uuid.New())
	require.NoError(t, err)
	assert.False(t, ok)
	empty, err := store.ReadStream(ctx, e.db.Pool, "rs-none", 0)
	require.NoError(t, err)
	assert.Empty(t, empty)

	// One round trip: version, the wanted types in order, and whether an id is stored.
	snap, err := store.ReadStreamSnapshot(ctx, e.db.Pool, "rs-1", []string{events.TypeUserSubscribed, testEventType}, other.EventID)
	require.NoError(t, err)
	assert.Equal(t, 5, snap.Version)
	assert.True(t, snap.Stored)
	assert.Equal(t, recordIDs(recs), envelopeIDs(snap.Events))
	assert.Equal(t, evs, snap.Events, "the same envelopes as ReadStream")
	snap, err = store.ReadStreamSnapshot(ctx, e.db.Pool, "rs-1", []string{events.TypeUserSubscribed}, uuid.New())
	require.NoError(t, err)
	assert.Equal(t, 5, snap.Version)
	assert.False(t, snap.Stored)
	assert.Equal(t, []uuid.UUID{other.EventID}, envelopeIDs(snap.Events))
	snap, err = store.ReadStreamSnapshot(ctx, e.db.Pool, "rs-1", []string{"none"}, uuid.Nil)
	require.NoError(t, err)
	assert.Equal(t, store.StreamSnapshot{Version: 5}, snap, "no event of the wanted types")
	snap, err = store.ReadStreamSnapshot(ctx, e.db.Pool, "rs-none", []string{testEventType}, recs[0].EventID)
	require.NoError(t, err)
	assert.Equal(t, store.StreamSnapshot{Stored: true}, snap, "an empty stream; the id is stored elsewhere")

	// Many pairs in one statement, each answered as alone.
	snaps, err := store.ReadStreamSnapshots(ctx, e.db.Pool, []string{"rs-none", "rs-1", "rs-10", "rs-1"},
		[]uuid.UUID{uuid.Nil, uuid.New(), recs[0].EventID, other.EventID}, []string{events.TypeUserSubscribed})
	require.NoError(t, err)
	require.Len(t, snaps, 4)
	assert.Equal(t, store.StreamSnapshot{}, snaps[0])
	assert.Equal(t, 5, snaps[1].Version)
	assert.False(t, snaps[1].Stored)
	assert.Equal(t, []uuid.UUID{other.EventID}, envelopeIDs(snaps[1].Events))
	assert.Equal(t, store.StreamSnapshot{Version: 1, Stored: true}, snaps[2])
	assert.True(t, snaps[3].Stored)
	assert.Equal(t, snaps[1].Events, snaps[3].Events)
	_, err = store.ReadStreamSnapshots(ctx, e.db.Pool, []string{"a"}, nil, nil)
	assert.Error(t, err)
}

// TestReadMalformedMetadata: metadata is best effort; an event whose metadata does not fit still
// reads.
func TestReadMalformedMetadata(t *testing.T) {
	t.Parallel()
	e := newEnv(t, 4, store.Config{})
	ctx := context.Background()
	_, err := e.db.Pool.Exec(ctx, `INSERT INTO events (event_id, stream_id, stream_version, type, data, metadata)
VALUES ($1, 'md-1', 1, 'test.appended', '{}', '["not", "an", "object"]')`, uuid.New())
	require.NoError(t, err)
	evs := readStream(t, e.db.Pool, "md-1")
	require.Len(t, evs, 1)
	assert.Zero(t, evs[0].Metadata)
}

// TestHeadAndLast: Head is the newest event readers can see; Last the newest committed one,
// visible or not.
func TestHeadAndLast(t *testing.T) {
	t.Parallel()
	e := newEnv(t, 6, store.Config{})
	ctx := context.Background()
	for _, f := range []func(context.Context, store.Querier) (store.Checkpoint, error){store.Head, store.Last} {
		cp, err := f(ctx, e.db.Pool)
		require.NoError(t, err)
		assert.Zero(t, cp, "an empty log")
	}
	_, err := e.store.Append(ctx, "hl-1", 0, rec("hl-1", 0, 0))
	require.NoError(t, err)
	a := begin(t, e, "A")
	a.insert(t, "hl-a", 1)
	second, err := e.store.Append(ctx, "hl-2", 0, rec("hl-2", 0, 0))
	require.NoError(t, err)

	last, err := store.Last(ctx, e.db.Pool)
	require.NoError(t, err)
	assert.Equal(t, second.Checkpoint, last)
	head, err := store.Head(ctx, e.db.Pool)
	require.NoError(t, err)
	assert.True(t, head.Less(a.cps[0]), "Head does not pass an open transaction")

	a.finish(t, true)
	deadline := time.Now().Add(waitTimeout)
	for head != second.Checkpoint {
		require.True(t, time.Now().Before(deadline), "Head never reached the last event")
		time.Sleep(2 * time.Millisecond)
		head, err = store.Head(ctx, e.db.Pool)
		require.NoError(t, err)
	}
}

func TestCheckpointOrder(t *testing.T) {
	t.Parallel()
	tests := []struct {
		a, b store.Checkpoint
		less bool
	}{
		{store.Checkpoint{TxID: 1, Position: 9}, store.Checkpoint{TxID: 2, Position: 1}, true},
		{store.Checkpoint{TxID: 2, Position: 1}, store.Checkpoint{TxID: 1, Position: 9}, false},
		{store.Checkpoint{TxID: 2, Position: 1}, store.Checkpoint{TxID: 2, Position: 2}, true},
		{store.Checkpoint{TxID: 2, Position: 2}, store.Checkpoint{TxID: 2, Position: 2}, false},
		{store.Checkpoint{}, store.Checkpoint{TxID: 1}, true},
	}
	for _, tt := range tests {
		assert.Equal(t, tt.less, tt.a.Less(tt.b), "%+v < %+v", tt.a, tt.b)
	}
	env := events.Envelope{TransactionID: 7, GlobalPosition: 70}
	assert.Equal(t, store.Checkpoint{TxID: 7, Position: 70}, store.After(env))
}
