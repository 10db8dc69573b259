package store_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/google/uuid"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"herald/events"
	"herald/events/store"
)

// TestAppendOptimisticConcurrencyRace: 64 writers append to one stream, each deciding its
// expected version from what it read and retrying on a conflict. The stream must end up 1..total
// with every writer's events there, in each writer's own order.
func TestAppendOptimisticConcurrencyRace(t *testing.T) {
	t.Parallel()
	const writers, perWriter = 64, 3
	e := newEnv(t, 12, store.Config{})
	ctx := context.Background()
	stream := "race-1"

	var conflicts atomic.Int64
	errs := make(chan error, writers)
	start := make(chan struct{})
	var wg sync.WaitGroup
	for w := range writers {
		wg.Go(func() {
			<-start
			known := 0 // the last version this writer has read
			for i := range perWriter {
				r := rec(stream, w, i)
				for {
					evs, err := store.ReadStream(ctx, e.db.Pool, stream, known)
					if err != nil {
						errs <- err
						return
					}
					if len(evs) > 0 {
						known = evs[len(evs)-1].StreamVersion
					}
					res, err := e.store.Append(ctx, stream, known, r)
					if errors.Is(err, store.ErrConcurrency) {
						conflicts.Add(1)
						continue
					}
					if err != nil {
						errs <- err
						return
					}
					if res.StreamVersion != known+1 || res.Duplicate {
						errs <- fmt.Errorf("append after version %d returned %+v", known, res)
						return
					}
					known = res.StreamVersion
					break
				}
			}
		})
	}
	close(start)
	wg.Wait()
	close(errs)
	for err := range errs {
		require.NoError(t, err)
	}
	t.Logf("%d conflicts retried", conflicts.Load())

	evs := readStream(t, e.db.Pool, stream)
	require.Len(t, evs, writers*perWriter)
	requireVersions1toN(t, evs)
	requireLogReadsStreamsInOrder(t, e, len(evs))
	next := make([]int, writers) // the sequence number expected next from each writer
	for _, ev := range evs {
		te := decodeTest(t, ev)
		require.Equal(t, next[te.Writer], te.Seq, "writer %d's events out of order or missing", te.Writer)
		next[te.Writer]++
	}
	for w, n := range next {
		assert.Equal(t, perWriter, n, "writer %d", w)
	}
}

// TestAppendIdempotentConcurrent: the same append (same event ids, same payloads) from 10
// goroutines at once is stored once; every caller succeeds with the same positions.
func TestAppendIdempotentConcurrent(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name     string
		expected int
		records  int
	}{
		{"new stream, expected 0", 0, 1},
		{"any version", store.AnyVersion, 1},
		{"three records, expected 0", 0, 3},
		{"three records, any version", store.AnyVersion, 3},
	}
	e := newEnv(t, 8, store.Config{})
	ctx := context.Background()
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			stream := "idem-" + string(rune('a'+i))
			var recs []events.Record
			for j := range tt.records {
				recs = append(recs, rec(stream, 0, j))
			}
			const callers = 10
			results := make([]store.AppendResult, callers)
			errs := make([]error, callers)
			start := make(chan struct{})
			var wg sync.WaitGroup
			for c := range callers {
				wg.Go(func() {
					<-start
					results[c], errs[c] = e.store.Append(ctx, stream, tt.expected, recs...)
				})
			}
			close(start)
			wg.Wait()

			dups := 0
			for c := range callers {
				require.NoError(t, errs[c], "caller %d", c)
				assert.Equal(t, results[0].Positions, results[c].Positions, "caller %d", c)
				assert.Equal(t, results[0].Checkpoint, results[c].Checkpoint, "caller %d", c)
				assert.Equal(t, tt.records, results[c].StreamVersion, "caller %d", c)
				if results[c].Duplicate {
					dups++
				}
			}
			assert.Equal(t, callers-1, dups, "all callers but one see a duplicate")

			evs := readStream(t, e.db.Pool, stream)
			require.Len(t, evs, tt.records)
			requireVersions1toN(t, evs)
			for j, ev := range evs {
				assert.Equal(t, recs[j].EventID, ev.EventID)
				assert.Equal(t, results[0].Positions[j], ev.GlobalPosition)
			}
			assert.Equal(t, store.After(evs[len(evs)-1]), results[0].Checkpoint)
		})
	}
}

// TestAppendRetryIsDuplicate: a retried append succeeds with the original positions even when
// the stream has moved on or the retry names another expected version; metadata is not compared.
func TestAppendRetryIsDuplicate(t *testing.T) {
	t.Parallel()
	e := newEnv(t, 6, store.Config{})
	ctx := context.Background()
	const stream = "retry-1"
	first := []events.Record{rec(stream, 0, 0), rec(stream, 0, 1)}
	orig, err := e.store.Append(ctx, stream, 0, first...)
	require.NoError(t, err)
	require.False(t, orig.Duplicate)
	_, err = e.store.Append(ctx, stream, 2, rec(stream, 0, 2))
	require.NoError(t, err)

	reformatted := first[1]
	reformatted.Data = json.RawMessage(`{ "seq": 1, "writer": 0 }`) // same JSON value, other text
	newMetadata := first[0]
	newMetadata.Metadata = events.Metadata{CorrelationID: "retry", Actor: "someone else"}

	tests := []struct {
		name     string
		expected int
		recs     []events.Record
	}{
		{"same expected version", 0, first},
		{"any version", store.AnyVersion, first},
		{"current expected version", 3, first},
		{"payload with other formatting", 0, []events.Record{first[0], reformatted}},
		{"other metadata", 0, []events.Record{newMetadata, first[1]}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res, err := e.store.Append(ctx, stream, tt.expected, tt.recs...)
			require.NoError(t, err)
			assert.True(t, res.Duplicate)
			assert.Equal(t, orig.Positions, res.Positions)
			assert.Equal(t, orig.Checkpoint, res.Checkpoint)
			assert.Equal(t, 2, res.StreamVersion)
		})
	}
	evs := readStream(t, e.db.Pool, stream)
	require.Len(t, evs, 3)
	assert.Equal(t, "test", evs[0].Metadata.Actor, "the original metadata stays")
}

func TestAppendEventIDReused(t *testing.T) {
	t.Parallel()
	e := newEnv(t, 6, store.Config{})
	ctx := context.Background()
	const stream = "reuse-1"
	stored := rec(stream, 0, 0)
	_, err := e.store.Append(ctx, stream, 0, stored)
	require.NoError(t, err)

	otherData := stored
	otherData.Data = json.RawMessage(`{"writer":0,"seq":0,"note":"changed"}`)
	otherType := stored
	otherType.Type = "test.other"
	otherStream := stored
	otherStream.StreamID = "reuse-2"

	tests := []struct {
		name     string
		stream   string
		expected int
		rec      events.Record
	}{
		{"other payload", stream, store.AnyVersion, otherData},
		{"other payload, expected 0", stream, 0, otherData},
		{"other payload, current version", stream, 1, otherData},
		{"other type", stream, store.AnyVersion, otherType},
		{"other stream", "reuse-2", 0, otherStream},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := e.store.Append(ctx, tt.stream, tt.expected, tt.rec)
			require.ErrorIs(t, err, store.ErrEventIDReused)
			assert.NotErrorIs(t, err, store.ErrConcurrency)
			var reused *store.EventIDReusedError
			require.ErrorAs(t, err, &reused)
			assert.Equal(t, []uuid.UUID{stored.EventID}, reused.EventIDs)
		})
	}
	evs := readStream(t, e.db.Pool, stream)
	require.Len(t, evs, 1)
	assert.JSONEq(t, string(stored.Data), string(evs[0].Data))
	assert.Empty(t, readStream(t, e.db.Pool, "reuse-2"))
}

// TestAppendIsAtomic: when one record of a multi-record append is refused, none is stored.
func TestAppendIsAtomic(t *testing.T) {
	t.Parallel()
	e := newEnv(t, 6, store.Config{})
	ctx := context.Background()
	elsewhere := rec("atomic-other", 9, 9)
	_, err := e.store.Append(ctx, "atomic-other", 0, elsewhere)
	require.NoError(t, err)
	_, err = e.store.Append(ctx, "atomic-full", 0, rec("atomic-full", 0, 0))
	require.NoError(t, err)

	tests := []struct {
		name     string
		stream   string
		expected int
		middle   func(stream string, first events.Record) events.Record
		wantErr  error // nil: any error
	}{
		{"middle record's id stored in another stream", "atomic-a", 0,
			func(s string, _ events.Record) events.Record { r := elsewhere; r.StreamID = s; return r }, store.ErrEventIDReused},
		{"middle record repeats the first's id", "atomic-b", store.AnyVersion,
			func(_ string, first events.Record) events.Record { return first }, nil},
		{"stale expected version", "atomic-full", 0,
			func(s string, _ events.Record) events.Record { return rec(s, 1, 1) }, store.ErrConcurrency},
		{"expected version ahead", "atomic-full", 5,
			func(s string, _ events.Record) events.Record { return rec(s, 1, 1) }, store.ErrConcurrency},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := readStream(t, e.db.Pool, tt.stream)
			first, last := rec(tt.stream, 1, 0), rec(tt.stream, 1, 2)
			middle := tt.middle(tt.stream, first)
			_, err := e.store.Append(ctx, tt.stream, tt.expected, first, middle, last)
			require.Error(t, err)
			if tt.wantErr != nil {
				assert.ErrorIs(t, err, tt.wantErr)
			}
			for _, id := range []uuid.UUID{first.EventID, last.EventID} {
				ok, err := store.Exists(ctx, e.db.Pool, id)
				require.NoError(t, err)
				assert.False(t, ok, "a record of a refused append was stored")
			}
			assert.Equal(t, before, readStream(t, e.db.Pool, tt.stream))
		})
	}
}

func TestAppendExpectedVersion(t *testing.T) {
	t.Parallel()
	e := newEnv(t, 6, store.Config{})
	ctx := context.Background()
	const existing = "ev-existing" // three events, version 3

	tests := []struct {
		name        string
		stream      string
		expected    int
		records     int
		wantVersion int   // the stream version after a successful append
		wantErr     error // nil: success
	}{
		{"new stream, expected 0", "ev-new-0", 0, 1, 1, nil},
		{"new stream, three records", "ev-new-3", 0, 3, 3, nil},
		{"new stream, any version", "ev-new-any", store.AnyVersion, 2, 2, nil},
		{"new stream, expected 1 (ahead)", "ev-new-ahead", 1, 1, 0, store.ErrConcurrency},
		{"existing, current version", existing, 3, 1, 4, nil},
		{"existing, expected 0", existing, 0, 1, 0, store.ErrConcurrency},
		{"existing, stale version", existing, 2, 1, 0, store.ErrConcurrency},
		{"existing, stale version, several records", existing, 1, 3, 0, store.ErrConcurrency},
		{"existing, one ahead", existing, 4, 1, 0, store.ErrConcurrency},
		{"existing, far ahead", existing, 100, 2, 0, store.ErrConcurrency},
		{"existing, any version", existing, store.AnyVersion, 2, 5, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			// Each case starts from its own copy of the situation.
			stream := tt.stream + "-" + strings.ReplaceAll(tt.name, " ", "_")
			if tt.stream == existing {
				_, err := e.store.Append(ctx, stream, 0, rec(stream, 0, 0), rec(stream, 0, 1), rec(stream, 0, 2))
				require.NoError(t, err)
			}
			before := readStream(t, e.db.Pool, stream)
			var recs []events.Record
			for i := range tt.records {
				recs = append(recs, rec(stream, 1, i))
			}
			res, err := e.store.Append(ctx, stream, tt.expected, recs...)
			after := readStream(t, e.db.Pool, stream)
			requireVersions1toN(t, after)
			if tt.wantErr != nil {
				require.ErrorIs(t, err, tt.wantErr)
				var ce *store.ConcurrencyError
				require.ErrorAs(t, err, &ce)
				assert.Equal(t, stream, ce.StreamID)
				assert.Equal(t, tt.expected, ce.Expected)
				assert.Equal(t, before, after, "a refused append changed the stream")
				return
			}
			require.NoError(t, err)
			assert.False(t, res.Duplicate)
			assert.Equal(t, tt.wantVersion, res.StreamVersion)
			require.Len(t, after, tt.wantVersion)
			require.Len(t, res.Positions, tt.records)
			for i, r := range recs {
				got := after[len(before)+i]
				assert.Equal(t, r.EventID, got.EventID)
				assert.Equal(t, res.Positions[i], got.GlobalPosition)
			}
			assert.Equal(t, store.After(after[len(after)-1]), res.Checkpoint)
			v, err := store.StreamVersion(ctx, e.db.Pool, stream)
			require.NoError(t, err)
			assert.Equal(t, tt.wantVersion, v)
		})
	}
}

// TestAppendAnyVersionConcurrent: concurrent AnyVersion appends of one to three records to one
// stream all succeed and leave versions 1..n with each writer's events in its order.
func TestAppendAnyVersionConcurrent(t *testing.T) {
	t.Parallel()
	const writers, appends = 32, 8
	e := newEnv(t, 8, store.Config{})
	ctx := context.Background()
	const stream = "any-1"

	var total atomic.Int64
	errs := make(chan error, writers)
	start := make(chan struct{})
	var wg sync.WaitGroup
	for w := range writers {
		wg.Go(func() {
			<-start
			seq := 0
			for a := range appends {
				var recs []events.Record
				for range 1 + (w+a)%3 {
					recs = append(recs, rec(stream, w, seq))
					seq++
				}
				res, err := e.store.Append(ctx, stream, store.AnyVersion, recs...)
				if err != nil {
					errs <- err
					return
				}
				if len(res.Positions) != len(recs) || res.Duplicate {
					errs <- errors.New("unexpected append result")
					return
				}
				total.Add(int64(len(recs)))
			}
		})
	}
	close(start)
	wg.Wait()
	close(errs)
	for err := range errs {
		require.NoError(t, err)
	}

	evs := readStream(t, e.db.Pool, stream)
	require.Len(t, evs, int(total.Load()))
	requireVersions1toN(t, evs)
	requireLogReadsStreamsInOrder(t, e, len(evs))
	next := make([]int, writers)
	for _, ev := range evs {
		te := decodeTest(t, ev)
		require.Equal(t, next[te.Writer], te.Seq, "writer %d's events out of order", te.Writer)
		next[te.Writer]++
	}
}

// TestAppendExisting: an append at the head of a stream that must have events. An empty stream is
// refused (ErrStreamEmpty, also ErrConcurrency) with nothing written; concurrent ones on an
// existing stream all go in, versions contiguous; a retry is a duplicate.
func TestAppendExisting(t *testing.T) {
	t.Parallel()
	e := newEnv(t, 8, store.Config{})
	ctx := context.Background()
	const stream = "existing-1"

	_, err := e.store.AppendExisting(ctx, stream, rec(stream, 0, 0))
	require.ErrorIs(t, err, store.ErrStreamEmpty)
	require.ErrorIs(t, err, store.ErrConcurrency)
	assert.Empty(t, readStream(t, e.db.Pool, stream), "nothing written")

	_, err = e.store.Append(ctx, stream, 0, rec(stream, 0, 0))
	require.NoError(t, err)
	const writers = 16
	var wg sync.WaitGroup
	errs := make(chan error, writers)
	for w := 1; w <= writers; w++ {
		wg.Go(func() {
			recs := []events.Record{rec(stream, w, 0), rec(stream, w, 1)}
			res, err := e.store.AppendExisting(ctx, stream, recs...)
			if err == nil && res.Duplicate {
				err = errors.New("a first append answered as a duplicate")
			}
			if err == nil {
				again, err2 := e.store.AppendExisting(ctx, stream, recs...)
				switch {
				case err2 != nil:
					err = err2
				case !again.Duplicate || !slices.Equal(again.Positions, res.Positions):
					err = errors.New("a retry was not a duplicate with the original positions")
				}
			}
			errs <- err
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		require.NoError(t, err)
	}
	evs := readStream(t, e.db.Pool, stream)
	require.Len(t, evs, 1+2*writers)
	requireVersions1toN(t, evs)
	requireLogReadsStreamsInOrder(t, e, len(evs))
}

// TestAppendGroupsManyStreams: many concurrent single-event appends to distinct streams (the
// group-commit fast path) mixed with conflicting ones each get their own answer.
func TestAppendGroupsManyStreams(t *testing.T) {
	t.Parallel()
	const writers = 48
	e := newEnv(t, 8, store.Config{Committers: 2})
	ctx := context.Background()
	// Even writers append to a fresh stream; odd writers to a stream that already has an event,
	// with expected 0, which must fail without failing their neighbours.
	for w := 1; w < writers; w += 2 {
		_, err := e.store.Append(ctx, streamOf(w), 0, rec(streamOf(w), w, 0))
		require.NoError(t, err)
	}
	errs := make([]error, writers)
	start := make(chan struct{})
	var wg sync.WaitGroup
	for w := range writers {
		wg.Go(func() {
			<-start
			for i := range 5 {
				_, err := e.store.Append(ctx, streamOf(w), i, rec(streamOf(w), w, i+1))
				if err != nil {
					errs[w] = err
					return
				}
			}
		})
	}
	close(start)
	wg.Wait()
	for w := range writers {
		evs := readStream(t, e.db.Pool, streamOf(w))
		requireVersions1toN(t, evs)
		if w%2 == 0 {
			assert.NoError(t, errs[w], "writer %d", w)
			assert.Len(t, evs, 5)
		} else {
			assert.ErrorIs(t, errs[w], store.ErrConcurrency, "writer %d", w)
			assert.Len(t, evs, 1)
		}
	}
}

func streamOf(w int) string { return fmt.Sprintf("many-%02d", w) }

func TestAppendRejectsInvalidInput(t *testing.T) {
	t.Parallel()
	e := newEnv(t, 4, store.Config{})
	ctx := context.Background()
	good := rec("inv-1", 0, 0)
	mod := func(f func(*events.Record)) events.Record {
		r := good
		f(&r)
		return r
	}
	tests := []struct {
		name     string
		expected int
		recs     []events.Record
		wantErr  string
	}{
		{"no records", 0, nil, "no records"},
		{"expected version below AnyVersion", -2, []events.Record{good}, "invalid expected version -2"},
		{"record of another stream", 0, []events.Record{mod(func(r *events.Record) { r.StreamID = "inv-2" })}, "names stream inv-2"},
		{"nil event id", 0, []events.Record{mod(func(r *events.Record) { r.EventID = uuid.Nil })}, "event id is empty"},
		{"no type", 0, []events.Record{mod(func(r *events.Record) { r.Type = "" })}, "type is empty"},
		{"schema version 0", 0, []events.Record{mod(func(r *events.Record) { r.SchemaVersion = 0 })}, "schema version 0"},
		{"no data", 0, []events.Record{mod(func(r *events.Record) { r.Data = nil })}, "data is empty"},
		{"second record invalid", 0, []events.Record{good, mod(func(r *events.Record) { r.Type = "" })}, "record 1"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := e.store.Append(ctx, "inv-1", tt.expected, tt.recs...)
			require.Error(t, err)
			assert.Contains(t, err.Error(), tt.wantErr)
			assert.NotErrorIs(t, err, store.ErrConcurrency)
		})
	}
	assert.Empty(t, readStream(t, e.db.Pool, "inv-1"))

	// A record with an empty stream id takes the stream of the call.
	r := good
	r.StreamID = ""
	_, err := e.store.Append(ctx, "inv-1", 0, r)
	require.NoError(t, err)
	assert.Len(t, readStream(t, e.db.Pool, "inv-1"), 1)
}

func TestAppendCanceledContext(t *testing.T) {
	t.Parallel()
	e := newEnv(t, 4, store.Config{})
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	r := rec("ctx-1", 0, 0)
	_, err := e.store.Append(ctx, "ctx-1", 0, r)
	require.ErrorIs(t, err, context.Canceled)

	// Whether or not the canceled call got queued, a retry with the same id succeeds once.
	res, err := e.store.Append(context.Background(), "ctx-1", 0, r)
	require.NoError(t, err)
	assert.Equal(t, 1, res.StreamVersion)
	assert.Len(t, readStream(t, e.db.Pool, "ctx-1"), 1)
}

func TestCloseFinishesQueuedAppendsThenRefuses(t *testing.T) {
	t.Parallel()
	e := newEnv(t, 6, store.Config{Committers: 1})
	ctx := context.Background()
	const n = 50
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			s := fmt.Sprintf("close-%02d", i)
			_, errs[i] = e.store.Append(ctx, s, 0, rec(s, i, 0))
		})
	}
	e.store.Close()
	wg.Wait()
	appended := 0
	for i, err := range errs {
		if err == nil {
			appended++
			continue
		}
		assert.ErrorIs(t, err, store.ErrClosed, "append %d", i)
	}
	var count int
	require.NoError(t, e.db.Pool.QueryRow(ctx, `SELECT count(*) FROM events`).Scan(&count))
	assert.Equal(t, appended, count, "exactly the appends that returned success are stored")

	_, err := e.store.Append(ctx, "close-z", 0, rec("close-z", 0, 0))
	assert.ErrorIs(t, err, store.ErrClosed)
	e.store.Close() // idempotent
}

func TestConfigValidate(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		cfg     store.Config
		wantErr []string
	}{
		{"valid", store.Config{Committers: 1, MaxGroup: 1, BulkChunk: 1}, nil},
		{"too many committers", store.Config{Committers: 65, MaxGroup: 1, BulkChunk: 1}, []string{"Committers must be 1..64, got 65"}},
		{"everything wrong", store.Config{Committers: -1, MaxGroup: -1, BulkChunk: -1},
			[]string{"Committers must be", "MaxGroup must be", "BulkChunk must be"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.cfg.Validate()
			if tt.wantErr == nil {
				assert.NoError(t, err)
				return
			}
			require.Error(t, err)
			for _, w := range tt.wantErr {
				assert.Contains(t, err.Error(), w)
			}
		})
	}
	_, err := store.New(nil, store.Config{Committers: 100})
	assert.ErrorContains(t, err, "Committers must be 1..64")
}
