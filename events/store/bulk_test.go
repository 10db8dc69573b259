package store_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"herald/events"
	"herald/events/store"
)

// interleaved returns perStream records for each stream, round-robin (s0#0, s1#0, …, s0#1, …),
// so that every stream's records are spread over several chunks. The writer field is w.
func interleaved(streams []string, perStream, w int) []events.Record {
	var out []events.Record
	for i := range perStream {
		for _, s := range streams {
			out = append(out, rec(s, w, i))
		}
	}
	return out
}

func streamNames(prefix string, n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = fmt.Sprintf("%s-%03d", prefix, i)
	}
	return out
}

func countEvents(t testing.TB, e env) int {
	t.Helper()
	var n int
	require.NoError(t, e.db.Pool.QueryRow(context.Background(), `SELECT count(*) FROM events`).Scan(&n))
	return n
}

// requireWriterOrder fails unless, in every stream, each writer's events appear with sequence
// numbers want[stream][writer] = 0, 1, 2, … in order and complete.
func requireWriterOrder(t testing.TB, e env, want map[string]map[int]int) {
	t.Helper()
	for stream, writers := range want {
		evs := readStream(t, e.db.Pool, stream)
		requireVersions1toN(t, evs)
		next := map[int]int{}
		for _, ev := range evs {
			te := decodeTest(t, ev)
			require.Equal(t, next[te.Writer], te.Seq, "stream %s: writer %d's events out of order", stream, te.Writer)
			next[te.Writer]++
		}
		for w, n := range writers {
			require.Equal(t, n, next[w], "stream %s: writer %d has %d events, want %d", stream, w, next[w], n)
		}
		require.Len(t, next, len(writers), "stream %s has events of unexpected writers", stream)
	}
}

func TestAppendBulkManyStreams(t *testing.T) {
	t.Parallel()
	e := newEnv(t, 6, store.Config{BulkChunk: 64})
	ctx := context.Background()
	streams := streamNames("bulk", 60)
	want := map[string]map[int]int{}
	for i, s := range streams {
		want[s] = map[int]int{1: 5}
		if i%3 == 0 { // a third of the streams already have two events
			_, err := e.store.Append(ctx, s, 0, rec(s, 0, 0), rec(s, 0, 1))
			require.NoError(t, err)
			want[s][0] = 2
		}
	}
	before := countEvents(t, e)
	input := interleaved(streams, 5, 1)

	res, err := e.store.AppendBulk(ctx, input)
	require.NoError(t, err)
	assert.Equal(t, len(input), res.Appended)
	assert.Zero(t, res.Duplicates)
	last, err := store.Last(ctx, e.db.Pool)
	require.NoError(t, err)
	assert.Equal(t, last, res.Checkpoint, "the checkpoint is the last appended event")
	assert.Equal(t, before+len(input), countEvents(t, e))
	requireWriterOrder(t, e, want) // versions continue after the existing events, input order kept
	for _, r := range input {
		ok, err := store.Exists(ctx, e.db.Pool, r.EventID)
		require.NoError(t, err)
		require.True(t, ok)
	}
	requireLogReadsStreamsInOrder(t, e, before+len(input))

	t.Run("re-running the same input appends nothing", func(t *testing.T) {
		again, err := e.store.AppendBulk(ctx, input)
		require.NoError(t, err)
		assert.Zero(t, again.Appended)
		assert.Equal(t, len(input), again.Duplicates)
		assert.Zero(t, again.Checkpoint)
		assert.Equal(t, before+len(input), countEvents(t, e))
		requireWriterOrder(t, e, want)
	})
}

func TestAppendBulkMixedNewAndStored(t *testing.T) {
	t.Parallel()
	e := newEnv(t, 6, store.Config{BulkChunk: 16})
	ctx := context.Background()
	streams := streamNames("mixed", 12)
	full := interleaved(streams, 5, 1)
	// The first three rounds (three records per stream) are stored first.
	first := full[:3*len(streams)]
	res, err := e.store.AppendBulk(ctx, first)
	require.NoError(t, err)
	require.Equal(t, len(first), res.Appended)

	res, err = e.store.AppendBulk(ctx, full)
	require.NoError(t, err)
	assert.Equal(t, len(full)-len(first), res.Appended)
	assert.Equal(t, len(first), res.Duplicates)
	want := map[string]map[int]int{}
	for _, s := range streams {
		want[s] = map[int]int{1: 5}
	}
	requireWriterOrder(t, e, want) // no gap where the duplicates were skipped

	t.Run("new records before stored ones in the input", func(t *testing.T) {
		s := "mixed-front"
		stored := rec(s, 2, 0)
		_, err := e.store.Append(ctx, s, 0, stored)
		require.NoError(t, err)
		fresh1, fresh2 := rec(s, 3, 0), rec(s, 3, 1)
		res, err := e.store.AppendBulk(ctx, []events.Record{fresh1, stored, fresh2})
		require.NoError(t, err)
		assert.Equal(t, 2, res.Appended)
		assert.Equal(t, 1, res.Duplicates)
		evs := readStream(t, e.db.Pool, s)
		requireVersions1toN(t, evs)
		assert.Equal(t, []uuid.UUID{stored.EventID, fresh1.EventID, fresh2.EventID}, envelopeIDs(evs))
	})
}

func TestAppendBulkRepeatedIDInInput(t *testing.T) {
	t.Parallel()
	e := newEnv(t, 6, store.Config{})
	ctx := context.Background()
	const s = "repeat-1"
	a, b := rec(s, 0, 0), rec(s, 0, 1)
	res, err := e.store.AppendBulk(ctx, []events.Record{a, b, a})
	require.NoError(t, err)
	assert.Equal(t, 2, res.Appended)
	assert.Equal(t, 1, res.Duplicates)
	evs := readStream(t, e.db.Pool, s)
	requireVersions1toN(t, evs)
	assert.Equal(t, []uuid.UUID{a.EventID, b.EventID}, envelopeIDs(evs))

	t.Run("repeated with another payload", func(t *testing.T) {
		const s = "repeat-2"
		x := rec(s, 0, 0)
		changed := x
		changed.Data = json.RawMessage(`{"writer":0,"seq":0,"note":"changed"}`)
		_, err := e.store.AppendBulk(ctx, []events.Record{x, rec(s, 0, 1), changed})
		require.ErrorIs(t, err, store.ErrEventIDReused)
		assert.Empty(t, readStream(t, e.db.Pool, s))
	})
}

func TestAppendBulkEventIDReused(t *testing.T) {
	t.Parallel()
	e := newEnv(t, 6, store.Config{BulkChunk: 10})
	ctx := context.Background()
	stored := rec("reused-0", 0, 0)
	_, err := e.store.Append(ctx, "reused-0", 0, stored)
	require.NoError(t, err)

	tests := []struct {
		name   string
		change func(r *events.Record)
	}{
		{"other payload", func(r *events.Record) { r.Data = json.RawMessage(`{"writer":0,"seq":0,"note":"x"}`) }},
		{"other stream", func(r *events.Record) { r.StreamID = "reused-elsewhere" }},
		{"other type", func(r *events.Record) { r.Type = "test.other" }},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := fmt.Sprintf("reused-%d", i+1)
			before := countEvents(t, e)
			input := interleaved([]string{s}, 25, 1) // chunks of 10: 0..9, 10..19, 20..24
			bad := stored
			tt.change(&bad)
			input[14] = bad // in the second chunk

			res, err := e.store.AppendBulk(ctx, input)
			require.ErrorIs(t, err, store.ErrEventIDReused)
			var reused *store.EventIDReusedError
			require.ErrorAs(t, err, &reused)
			assert.Equal(t, []uuid.UUID{stored.EventID}, reused.EventIDs)
			assert.Contains(t, err.Error(), "records 10..19")

			assert.Equal(t, 10, res.Appended, "the first chunk stays written")
			evs := readStream(t, e.db.Pool, s)
			requireVersions1toN(t, evs)
			assert.Equal(t, envelopeIDs(evs), recordIDs(input[:10]), "nothing of the refused chunk (nor after it) is written")
			assert.Equal(t, before+10, countEvents(t, e))
		})
	}
}

func TestAppendBulkRejectsInvalidInput(t *testing.T) {
	t.Parallel()
	e := newEnv(t, 4, store.Config{BulkChunk: 2})
	ctx := context.Background()
	good := func() events.Record { return rec("binv", 0, 0) }
	tests := []struct {
		name    string
		change  func(r *events.Record)
		wantErr string
	}{
		{"no stream id", func(r *events.Record) { r.StreamID = "" }, "record 3: stream id is empty"},
		{"nil event id", func(r *events.Record) { r.EventID = uuid.Nil }, "record 3: event id is empty"},
		{"no type", func(r *events.Record) { r.Type = "" }, "record 3: type is empty"},
		{"no data", func(r *events.Record) { r.Data = nil }, "record 3: data is empty"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			input := []events.Record{good(), good(), good(), good()}
			tt.change(&input[3])
			res, err := e.store.AppendBulk(ctx, input)
			require.Error(t, err)
			assert.Contains(t, err.Error(), tt.wantErr)
			assert.Zero(t, res)
			assert.Zero(t, countEvents(t, e), "invalid input is refused before anything is written")
		})
	}
	res, err := e.store.AppendBulk(ctx, nil)
	require.NoError(t, err)
	assert.Zero(t, res)
}

// TestAppendBulkConcurrentWithAppend: bulk imports and single appends racing on the same streams
// leave every stream 1..n with each writer's events complete and in order, and the log delivers
// every stream in version order.
func TestAppendBulkConcurrentWithAppend(t *testing.T) {
	t.Parallel()
	const (
		bulkWriters   = 2
		appendWriters = 6
		appends       = 40
	)
	e := newEnv(t, 12, store.Config{BulkChunk: 40})
	ctx := context.Background()
	streams := streamNames("race", 16)

	var mu sync.Mutex
	want := map[string]map[int]int{}
	for _, s := range streams {
		want[s] = map[int]int{}
	}
	count := func(stream string, writer, n int) {
		mu.Lock()
		defer mu.Unlock()
		want[stream][writer] += n
	}

	errs := make(chan error, bulkWriters+appendWriters)
	retries := make([]int, bulkWriters+appendWriters)
	start := make(chan struct{})
	var wg sync.WaitGroup
	for b := range bulkWriters {
		w := 100 + b
		input := interleaved(streams, 12, w)
		for _, s := range streams {
			count(s, w, 12)
		}
		wg.Go(func() {
			<-start
			for {
				_, err := e.store.AppendBulk(ctx, input)
				if errors.Is(err, store.ErrConcurrency) {
					retries[b]++ // documented: re-running the same input is safe
					continue
				}
				if err != nil {
					errs <- err
				}
				return
			}
		})
	}
	for a := range appendWriters {
		rng := rand.New(rand.NewPCG(uint64(a), 7))
		wg.Go(func() {
			<-start
			seq := map[string]int{}
			for range appends {
				s := streams[rng.IntN(len(streams))]
				var recs []events.Record
				for range 1 + rng.IntN(2) {
					recs = append(recs, rec(s, a, seq[s]))
					seq[s]++
				}
				for {
					_, err := e.store.Append(ctx, s, store.AnyVersion, recs...)
					if errors.Is(err, store.ErrConcurrency) {
						retries[bulkWriters+a]++
						continue
					}
					if err != nil {
						errs <- err
						return
					}
					break
				}
				count(s, a, len(recs))
			}
		})
	}
	close(start)
	wg.Wait()
	close(errs)
	for err := range errs {
		require.NoError(t, err)
	}
	t.Logf("retries after ErrConcurrency: %v", retries)

	requireWriterOrder(t, e, want)
	requireLogReadsStreamsInOrder(t, e, countEvents(t, e))
}

// TestAppendBulkExistingStreamsProbeHeads appends a chunk to thousands of streams, half of them
// stored already, numbered after the heads read in the chunk's transaction. That read must probe
// the (stream_id, stream_version) index once per stream: it used to be one "stream_id = ANY(…)"
// query that, for a chunk of thousands of streams, the planner made a sequential scan of the
// whole table — 0.3–0.7 s per chunk past a million events, growing with the log. Closing the
// store's own pool makes its backends report their scans.
func TestAppendBulkExistingStreamsProbeHeads(t *testing.T) {
	t.Parallel()
	e := newEnv(t, 4, store.Config{})
	ctx := context.Background()
	const stored, chunk = 8000, 6000
	var first []events.Record
	for i := range stored {
		first = append(first, rec(fmt.Sprintf("probe-%05d", i), 0, 0))
	}
	res, err := e.store.AppendBulk(ctx, first)
	require.NoError(t, err)
	require.Equal(t, stored, res.Appended)
	_, err = e.db.Pool.Exec(ctx, `ANALYZE events`)
	require.NoError(t, err)

	scans := func() (seq, idx int64) {
		require.NoError(t, e.db.Pool.QueryRow(ctx, `SELECT coalesce(seq_scan, 0), coalesce(idx_scan, 0)
FROM pg_stat_user_tables WHERE relid = 'events'::regclass`).Scan(&seq, &idx))
		return seq, idx
	}
	seqBefore, idxBefore := scans()

	pool, err := pgxpool.NewWithConfig(ctx, e.db.Pool.Config().Copy())
	require.NoError(t, err)
	s, err := store.New(pool, store.Config{BulkChunk: chunk})
	require.NoError(t, err)
	// Half the chunk's streams are stored (one event each), half are new.
	var second []events.Record
	for i := stored - chunk/2; i < stored+chunk/2; i++ {
		second = append(second, rec(fmt.Sprintf("probe-%05d", i), 0, 1))
	}
	res, err = s.AppendBulk(ctx, second)
	require.NoError(t, err)
	require.Equal(t, chunk, res.Appended)
	s.Close()
	pool.Close() // a backend reports its statistics when it exits

	seq, idx := seqBefore, idxBefore
	for deadline := time.Now().Add(10 * time.Second); idx == idxBefore && time.Now().Before(deadline); {
		time.Sleep(20 * time.Millisecond)
		seq, idx = scans()
	}
	require.Greater(t, idx, idxBefore, "the heads were not read through the index (or no statistics arrived)")
	require.Equal(t, seqBefore, seq, "reading the heads of a chunk scanned the whole events table")

	for _, r := range second {
		evs := readStream(t, e.db.Pool, r.StreamID)
		requireVersions1toN(t, evs)
		require.Equal(t, r.EventID, evs[len(evs)-1].EventID)
	}
}

// TestAppendBulkAfterErasure: a stream whose first versions the Eraser moved to an erased-…
// stream has no version 1 but later ones. A bulk append must continue after its head, not start
// again at 1 (which no unique index would refuse).
func TestAppendBulkAfterErasure(t *testing.T) {
	t.Parallel()
	e := newEnv(t, 4, store.Config{})
	ctx := context.Background()
	const s = "user-+14155550100"
	_, err := e.store.Append(ctx, s, 0, rec(s, 0, 0), rec(s, 0, 1), rec(s, 0, 2))
	require.NoError(t, err)
	tx, err := e.db.Pool.Begin(ctx)
	require.NoError(t, err)
	_, err = tx.Exec(ctx, `SET LOCAL herald.erase = 'on'`)
	require.NoError(t, err)
	_, err = tx.Exec(ctx, `UPDATE events SET stream_id = 'erased-test' WHERE stream_id = $1 AND stream_version <= 2`, s)
	require.NoError(t, err)
	require.NoError(t, tx.Commit(ctx))

	res, err := e.store.AppendBulk(ctx, []events.Record{rec(s, 1, 0), rec("bulk-new", 1, 0), rec(s, 1, 1)})
	require.NoError(t, err)
	require.Equal(t, 3, res.Appended)
	evs := readStream(t, e.db.Pool, s)
	var versions []int
	for _, ev := range evs {
		versions = append(versions, ev.StreamVersion)
	}
	require.Equal(t, []int{3, 4, 5}, versions, "the stream continues after its head")
	require.Equal(t, 1, decodeTest(t, evs[1]).Writer)
}
