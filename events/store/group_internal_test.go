package store

import (
	"context"
	"encoding/json"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"herald/events"
	"herald/schema/schematest"
)

// These tests drive commitGroup directly, so that which requests share a group transaction is
// decided by the test, not by timing.

func groupRec(stream string, data string) events.Record {
	return events.Record{EventID: uuid.New(), StreamID: stream, Type: "test.group", SchemaVersion: 1, Data: json.RawMessage(data)}
}

func request(stream string, expected int, recs ...events.Record) *appendRequest {
	return &appendRequest{streamID: stream, expected: expected, recs: recs, reply: make(chan appendReply, 1)}
}

func newGroupStore(t *testing.T) (*Store, *schematest.Schema) {
	t.Helper()
	SchemaMu.Lock()
	db := schematest.NewWithOptions(t, schematest.Options{MaxConns: 6})
	SchemaMu.Unlock()
	s, err := New(db.Pool, Config{Committers: 1})
	require.NoError(t, err)
	t.Cleanup(s.Close)
	return s, db
}

// TestGroupPerStreamLogOrder: the slow path of a group writes its requests one after another in
// one transaction, whose xid was taken by the first of them. A later request of the group may
// append after an event that another transaction — with a higher xid — committed in between. The
// gap-safe reader orders by (transaction_id, global_position), so without care the log would then
// deliver that stream's version n+1 before version n.
func TestGroupPerStreamLogOrder(t *testing.T) {
	t.Parallel()
	s, db := newGroupStore(t)
	ctx := context.Background()

	// req0's payload is one Postgres refuses: the fast path's statement fails while casting the
	// rows, before it writes any, and the slow path starts. It writes in stream order (a, s, z):
	// req1 takes the transaction's xid and, since x holds a-1 uncommitted, blocks.
	x, err := db.Pool.Begin(ctx)
	require.NoError(t, err)
	defer func() { _ = x.Rollback(ctx) }()
	_, err = x.Exec(ctx, `INSERT INTO events (event_id, stream_id, stream_version, type, data) VALUES ($1, 'a', 1, 't', '{}')`, uuid.New())
	require.NoError(t, err)
	var xPID int
	require.NoError(t, x.QueryRow(ctx, `SELECT pg_backend_pid()`).Scan(&xPID))

	req0 := request("z", 0, groupRec("z", `{"text":"\u0000"}`))
	req1 := request("a", 0, groupRec("a", `{"n":1}`))
	req2 := request("s", AnyVersion, groupRec("s", `{"n":2}`))
	done := make(chan struct{})
	go func() {
		defer close(done)
		s.commitGroup([]*appendRequest{req0, req1, req2})
	}()

	// Wait until the slow path is blocked behind x (an observable state, polled).
	deadline := time.Now().Add(30 * time.Second)
	for {
		var blocked bool
		require.NoError(t, db.Pool.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM pg_stat_activity WHERE $1 = ANY(pg_blocking_pids(pid)))`, xPID).Scan(&blocked))
		if blocked {
			break
		}
		require.True(t, time.Now().Before(deadline), "the group never blocked behind x")
		time.Sleep(time.Millisecond)
	}

	// Meanwhile another writer starts and commits s-1: its xid is above the group's.
	_, err = db.Pool.Exec(ctx, `INSERT INTO events (event_id, stream_id, stream_version, type, data) VALUES ($1, 's', 1, 't', '{}')`, uuid.New())
	require.NoError(t, err)
	require.NoError(t, x.Rollback(ctx))
	<-done

	r0, r1, r2 := <-req0.reply, <-req1.reply, <-req2.reply
	assert.True(t, isDataException(r0.err), "req0: %v", r0.err)
	require.NoError(t, r1.err)
	require.NoError(t, r2.err)
	assert.Equal(t, 2, r2.res.StreamVersion)

	// Read stream s through the gap-safe reader: version 1 must come before version 2.
	var got []int
	cp := Checkpoint{}
	for deadline := time.Now().Add(30 * time.Second); len(got) < 2; {
		page, err := ReadAfter(ctx, db.Pool, cp, 100, nil)
		require.NoError(t, err)
		for _, e := range page.Events {
			if e.StreamID == "s" {
				got = append(got, e.StreamVersion)
			}
		}
		cp = page.Next
		require.True(t, time.Now().Before(deadline), "stream s never became readable")
		if len(got) < 2 {
			time.Sleep(2 * time.Millisecond)
		}
	}
	assert.Equal(t, []int{1, 2}, got, "the log must deliver a stream's events in version order")
}

// TestGroupBadPayloadFailsOnlyItsOwnRequest: a payload Postgres refuses (jsonb has no \u0000, text
// no NUL byte) is the fault of one request; the others in its group must still be written.
func TestGroupBadPayloadFailsOnlyItsOwnRequest(t *testing.T) {
	t.Parallel()
	s, db := newGroupStore(t)
	ctx := context.Background()

	nulMetadata := groupRec("g-4", `{"n":4}`)
	nulMetadata.Metadata.Actor = "a\x00b"
	reqs := []*appendRequest{
		request("g-1", 0, groupRec("g-1", `{"n":1}`)),
		request("g-2", 0, groupRec("g-2", `{"text":"nul \u0000 here"}`)),
		request("g-3", AnyVersion, groupRec("g-3", `{"n":3}`), groupRec("g-3", `{"n":3.5}`)),
		request("g-4", 0, nulMetadata),
		request("g-\x00", 0, groupRec("g-\x00", `{"n":5}`)),
		request("g-6", 0, groupRec("g-6", `{"n":6}`)),
		// Refused before its payload is cast (expected version ahead), so the duplicate
		// lookup is what casts it.
		request("g-7", 3, groupRec("g-7", `{"text":"\u0000"}`)),
		request("g-8", 0, groupRec("g-8", `{"n":`)), // not JSON
		request("g-9", AnyVersion, groupRec("g-9", `{"n":9}`)),
	}
	s.commitGroup(reqs)
	wantOK := map[int]bool{0: true, 2: true, 5: true, 8: true}
	for i, req := range reqs {
		r := <-req.reply
		if wantOK[i] {
			assert.NoError(t, r.err, "request %d must not fail because of another request's payload", i)
			continue
		}
		require.Error(t, r.err, "request %d", i)
		assert.Contains(t, r.err.Error(), "append to "+req.streamID)
		assert.NotErrorIs(t, r.err, ErrConcurrency)
	}
	var n int
	require.NoError(t, db.Pool.QueryRow(ctx, `SELECT count(*) FROM events`).Scan(&n))
	assert.Equal(t, 5, n)
}

// TestGroupSameStreamChain: requests of one group may build on each other (expected 0 then 1 then
// 2 on one stream); all succeed in order.
func TestGroupSameStreamChain(t *testing.T) {
	t.Parallel()
	s, db := newGroupStore(t)
	ctx := context.Background()
	reqs := []*appendRequest{
		request("c", 0, groupRec("c", `{"n":1}`)),
		request("c", 1, groupRec("c", `{"n":2}`), groupRec("c", `{"n":3}`)),
		request("c", AnyVersion, groupRec("c", `{"n":4}`)),
		request("c", 4, groupRec("c", `{"n":5}`)),
		request("c", 4, groupRec("c", `{"n":6}`)), // stale: 4 was taken by the previous request
	}
	s.commitGroup(reqs)
	wantVersion := []int{1, 3, 4, 5}
	for i, v := range wantVersion {
		r := <-reqs[i].reply
		require.NoError(t, r.err, "request %d", i)
		assert.Equal(t, v, r.res.StreamVersion, "request %d", i)
	}
	assert.ErrorIs(t, (<-reqs[4].reply).err, ErrConcurrency)
	evs, err := ReadStream(ctx, db.Pool, "c", 0)
	require.NoError(t, err)
	require.Len(t, evs, 5)
	for i, e := range evs {
		assert.Equal(t, i+1, e.StreamVersion)
		assert.JSONEq(t, `{"n":`+string(rune('1'+i))+`}`, string(e.Data))
	}
}

// TestGroupDuplicateWithinGroup: the same event id twice in one group is written once; the second
// request is a duplicate with the first's position.
func TestGroupDuplicateWithinGroup(t *testing.T) {
	t.Parallel()
	s, _ := newGroupStore(t)
	r := groupRec("d", `{"n":1}`)
	other := groupRec("e", `{"n":2}`)
	reqs := []*appendRequest{request("d", 0, r), request("e", 0, other), request("d", 0, r), request("d", AnyVersion, r)}
	var wg sync.WaitGroup
	wg.Go(func() { s.commitGroup(reqs) })
	wg.Wait()
	first := <-reqs[0].reply
	require.NoError(t, first.err)
	assert.False(t, first.res.Duplicate)
	require.NoError(t, (<-reqs[1].reply).err)
	for _, req := range reqs[2:] {
		got := <-req.reply
		require.NoError(t, got.err)
		assert.True(t, got.res.Duplicate)
		assert.Equal(t, first.res.Positions, got.res.Positions)
	}
}

// TestGroupRepeatsStayOnTheFastPath: concurrent deliveries of one webhook often land in the same
// group. The repeats are answered after the group commits, as duplicates of the first delivery
// (with its positions) or as its reused-id refusal, and the group is not redone behind
// savepoints. A repeat of a request that was refused is written on its own.
func TestGroupRepeatsStayOnTheFastPath(t *testing.T) {
	t.Parallel()
	s, db := newGroupStore(t)
	ctx := context.Background()
	r := groupRec("rp", `{"n":1}`)
	changed := r
	changed.Data = json.RawMessage(`{"n":2}`)
	before := s.slowPathGroups.Load()
	reqs := []*appendRequest{
		request("rp", AnyVersion, r), request("rq", AnyVersion, groupRec("rq", `{"n":1}`)),
		request("rp", AnyVersion, r), request("rp", 0, r), request("rp", AnyVersion, changed),
	}
	s.commitGroup(reqs)
	assert.Equal(t, before, s.slowPathGroups.Load(), "no savepoint path")
	first := <-reqs[0].reply
	require.NoError(t, first.err)
	assert.False(t, first.res.Duplicate)
	require.NoError(t, (<-reqs[1].reply).err)
	for _, req := range reqs[2:4] {
		got := <-req.reply
		require.NoError(t, got.err)
		assert.True(t, got.res.Duplicate)
		assert.Equal(t, first.res.Positions, got.res.Positions)
		assert.Equal(t, 1, got.res.StreamVersion)
	}
	assert.ErrorIs(t, (<-reqs[4].reply).err, ErrEventIDReused)

	// The first delivery is refused (stale version): its repeat, at any version, goes in alone.
	n := groupRec("rn", `{"n":1}`)
	_, err := db.Pool.Exec(ctx, `INSERT INTO events (event_id, stream_id, stream_version, type, data) VALUES ($1, 'rn', 1, 't', '{}')`, uuid.New())
	require.NoError(t, err)
	reqs = []*appendRequest{request("rn", 0, n), request("rn", AnyVersion, n)}
	s.commitGroup(reqs)
	assert.ErrorIs(t, (<-reqs[0].reply).err, ErrConcurrency)
	got := <-reqs[1].reply
	require.NoError(t, got.err)
	assert.False(t, got.res.Duplicate)
	assert.Equal(t, 2, got.res.StreamVersion)

	var count int
	require.NoError(t, db.Pool.QueryRow(ctx, `SELECT count(*) FROM events WHERE stream_id IN ('rp', 'rq', 'rn')`).Scan(&count))
	assert.Equal(t, 4, count)
}

// TestGroupStaleVersionsStayOnTheFastPath: a request whose expected version is not its stream's
// head — behind it (the stream moved on, or an earlier request of the group took the version) or
// ahead of it — is refused with a ConcurrencyError before the insert, and the rest of its group
// goes in on the fast path. In the insert it would fail the statement and send every request of
// the group through savepoints: two first messages from one new number did that, 4,000 times in
// the inbound benchmark's 60,000 webhooks, and most of its p99.
func TestGroupStaleVersionsStayOnTheFastPath(t *testing.T) {
	t.Parallel()
	s, db := newGroupStore(t)
	ctx := context.Background()
	_, err := db.Pool.Exec(ctx, `INSERT INTO events (event_id, stream_id, stream_version, type, data) VALUES ($1, 'sv-old', 1, 't', '{}')`, uuid.New())
	require.NoError(t, err)
	reqs := []*appendRequest{
		request("sv-new", 0, groupRec("sv-new", `{"n":1}`)),
		request("sv-new", 0, groupRec("sv-new", `{"n":2}`)), // the first request took version 1
		request("sv-old", 0, groupRec("sv-old", `{"n":3}`)), // behind the stored head
		request("sv-old", 3, groupRec("sv-old", `{"n":4}`)), // ahead of it
		request("sv-old", 1, groupRec("sv-old", `{"n":5}`), groupRec("sv-old", `{"n":6}`)),
		request("sv-any", AnyVersion, groupRec("sv-any", `{"n":7}`)),
	}
	before := s.slowPathGroups.Load()
	s.commitGroup(reqs)
	assert.Equal(t, before, s.slowPathGroups.Load(), "fast path")
	for i, want := range []int{1, 0, 0, 0, 3, 1} {
		r := <-reqs[i].reply
		if want == 0 {
			var conflict *ConcurrencyError
			require.ErrorAs(t, r.err, &conflict, "request %d", i)
			assert.Equal(t, reqs[i].streamID, conflict.StreamID)
			assert.Equal(t, reqs[i].expected, conflict.Expected)
			continue
		}
		require.NoError(t, r.err, "request %d", i)
		assert.Equal(t, want, r.res.StreamVersion, "request %d", i)
	}
	var n int
	require.NoError(t, db.Pool.QueryRow(ctx, `SELECT count(*) FROM events WHERE stream_id LIKE 'sv-%'`).Scan(&n))
	assert.Equal(t, 5, n, "sv-old 1..3, sv-new 1, sv-any 1")
}

// TestGroupAppendExisting: in one group, an append-if-existing to an empty stream is refused
// alone; one after the request that creates its stream goes in after it. The same holds on the
// savepoint path.
func TestGroupAppendExisting(t *testing.T) {
	t.Parallel()
	s, db := newGroupStore(t)
	ctx := context.Background()
	for _, slow := range []bool{false, true} {
		p := "fast-"
		if slow {
			p = "slow-"
		}
		reqs := []*appendRequest{
			request(p+"x", anyExisting, groupRec(p+"x", `{"n":1}`)),
			request(p+"y", 0, groupRec(p+"y", `{"n":1}`)),
			request(p+"y", anyExisting, groupRec(p+"y", `{"n":2}`), groupRec(p+"y", `{"n":3}`)),
		}
		if slow {
			// A payload Postgres refuses sends the group down the savepoint path.
			reqs = append(reqs, request("slow-z", 0, groupRec("slow-z", `{"text":"\u0000"}`)))
		}
		before := s.slowPathGroups.Load()
		s.commitGroup(reqs)
		if slow {
			assert.Equal(t, before+1, s.slowPathGroups.Load(), "savepoint path")
		} else {
			assert.Equal(t, before, s.slowPathGroups.Load(), "fast path")
		}
		err := (<-reqs[0].reply).err
		assert.ErrorIs(t, err, ErrStreamEmpty, p)
		assert.ErrorIs(t, err, ErrConcurrency, p)
		require.NoError(t, (<-reqs[1].reply).err, p)
		got := <-reqs[2].reply
		require.NoError(t, got.err, p)
		assert.Equal(t, 3, got.res.StreamVersion, p)
		if slow {
			err := (<-reqs[3].reply).err
			assert.True(t, isDataException(err), "slow-z: %v", err)
		}
		evs, err := ReadStream(ctx, db.Pool, p+"y", 0)
		require.NoError(t, err)
		assert.Len(t, evs, 3, p)
		evs, err = ReadStream(ctx, db.Pool, p+"x", 0)
		require.NoError(t, err)
		assert.Empty(t, evs, p)
	}
}
