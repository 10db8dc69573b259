package store_test

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"

	"herald/events"
	"herald/events/store"
)

// Run with: go test ./events/store -run '^$' -bench . -benchtime=5000x
// (b.N is a number of events for the Append benchmarks; BenchmarkAppendBulk runs the whole import
// per iteration, so -benchtime=1x suits it.) HERALD_BENCH_FULL=1 makes BenchmarkAppendBulk import
// 1,000,000 events instead of 100,000.

// BenchmarkAppendConcurrent32: 32 goroutines each make single-event appends (a new stream each,
// expected version 0) with the default configuration. b.N is the total number of events; every
// Append returns after its group's commit, so the rate is of durably committed events.
func BenchmarkAppendConcurrent32(b *testing.B) {
	benchAppendConcurrent(b, 32, store.Config{})
}

// BenchmarkAppendConcurrent32Committers is BenchmarkAppendConcurrent32 for several values of
// Config.Committers, the knob that trades group size for commits in flight.
func BenchmarkAppendConcurrent32Committers(b *testing.B) {
	for _, c := range []int{1, 2, 4, 8} {
		b.Run(fmt.Sprintf("committers=%d", c), func(b *testing.B) {
			benchAppendConcurrent(b, 32, store.Config{Committers: c})
		})
	}
}

func benchAppendConcurrent(b *testing.B, workers int, cfg store.Config) {
	e := newEnv(b, 12, cfg)
	ctx := context.Background()
	logSyncCommit(b, e)
	// A fixed workload per iteration (make bench runs -benchtime=1x): enough appends for a
	// steady rate, whatever b.N is.
	n := 20_000
	if os.Getenv("HERALD_BENCH_FULL") == "1" {
		n = 100_000
	}
	recs := make([]events.Record, n*b.N)
	for i := range recs {
		recs[i] = rec(fmt.Sprintf("bench-%d", i), 0, i)
	}
	var next atomic.Int64
	b.ResetTimer()
	start := time.Now()
	var wg sync.WaitGroup
	for range workers {
		wg.Go(func() {
			for {
				i := next.Add(1) - 1
				if i >= int64(len(recs)) {
					return
				}
				if _, err := e.store.Append(ctx, recs[i].StreamID, 0, recs[i]); err != nil {
					b.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
	elapsed := time.Since(start)
	b.StopTimer()
	b.ReportMetric(float64(len(recs))/elapsed.Seconds(), "events/s")
}

// logSyncCommit fails the benchmark unless commits are durable (the rate would be meaningless).
func logSyncCommit(b *testing.B, e env) {
	var sc string
	require.NoError(b, e.db.Pool.QueryRow(context.Background(), `SHOW synchronous_commit`).Scan(&sc))
	require.Contains(b, []string{"on", "remote_write", "remote_apply"}, sc, "synchronous_commit")
}

// importRecords builds n import-shaped events: user.created with six attributes, one new user
// stream each, with the deterministic ids an import would use.
func importRecords(b *testing.B, n int) []events.Record {
	b.Helper()
	recs := make([]events.Record, n)
	md := events.Metadata{CorrelationID: "import-bench", Actor: "importer", Source: "csv"}
	for i := range recs {
		phone := fmt.Sprintf("+5198%07d", i)
		r, err := events.NewRecord(events.DeterministicID("import.row", "bench", fmt.Sprint(i)), events.UserStream(phone), events.UserCreated{
			Phone: phone,
			Attributes: map[string]any{
				"first_name":  "Ana",
				"last_name":   fmt.Sprintf("Pérez %d", i%977),
				"email":       fmt.Sprintf("user%d@example.com", i),
				"city":        []string{"Lima", "Cusco", "Arequipa", "Piura"}[i%4],
				"plan":        []string{"free", "gold", "platinum"}[i%3],
				"signup_date": "2026-03-14",
			},
			Locale:   "es-PE",
			Timezone: "America/Lima",
			Consent:  events.ConsentOptIn,
			Source:   "import:bench",
		}, md)
		require.NoError(b, err)
		recs[i] = r
	}
	return recs
}

// BenchmarkAppendBulk imports the same events twice, each into a fresh schema of its own: with a
// raw COPY straight into events (versions given, no checks: the floor) and through AppendBulk,
// BulkChunk events per transaction both. The two imports are interleaved chunk by chunk (raw
// first on even chunks, AppendBulk first on odd ones), so both see the same machine — the same
// checkpoints, autovacuum runs and neighbours' load — and the ratio compares like with like:
// the same table, indexes and row shape, at the same size. Each iteration is the whole set; run
// it with -benchtime=1x. Reports AppendBulk's events/s, the raw COPY's (raw-copy-events/s) and
// their ratio, and logs both rates per tenth of the import, to show whether either slows down
// as the table grows.
func BenchmarkAppendBulk(b *testing.B) {
	n := 100_000
	if os.Getenv("HERALD_BENCH_FULL") == "1" {
		n = 1_000_000
	}
	recs := importRecords(b, n)
	const chunk = 10_000 // store.Config's default BulkChunk
	raw := newEnv(b, 4, store.Config{})
	bulk := newEnv(b, 4, store.Config{BulkChunk: chunk})
	ctx := context.Background()

	copyRaw := func(part []events.Record) {
		err := pgx.BeginFunc(ctx, raw.db.Pool, func(tx pgx.Tx) error {
			_, err := tx.CopyFrom(ctx, pgx.Identifier{"events"},
				[]string{"event_id", "stream_id", "stream_version", "type", "schema_version", "data", "metadata"},
				pgx.CopyFromSlice(len(part), func(i int) ([]any, error) {
					r := part[i]
					return []any{r.EventID, r.StreamID, int32(1), r.Type, int16(r.SchemaVersion), []byte(r.Data), metadataJSON(r.Metadata)}, nil
				}))
			return err
		})
		require.NoError(b, err)
	}
	appendBulk := func(part []events.Record) {
		res, err := bulk.store.AppendBulk(ctx, part)
		require.NoError(b, err)
		require.Equal(b, len(part), res.Appended)
	}

	var rawTime, bulkTime time.Duration
	timed := func(total *time.Duration, f func([]events.Record), part []events.Record) time.Duration {
		start := time.Now()
		f(part)
		d := time.Since(start)
		*total += d
		return d
	}
	b.ResetTimer()
	for range b.N {
		b.StopTimer()
		truncate(b, raw)
		truncate(b, bulk)
		_, err := raw.db.Pool.Exec(ctx, `CHECKPOINT`) // both start with no dirty pages
		require.NoError(b, err)
		b.StartTimer()
		var tenthRaw, tenthBulk time.Duration
		for k, lo := 0, 0; lo < len(recs); k, lo = k+1, lo+chunk {
			part := recs[lo:min(lo+chunk, len(recs))]
			if k%2 == 0 {
				tenthRaw += timed(&rawTime, copyRaw, part)
				tenthBulk += timed(&bulkTime, appendBulk, part)
			} else {
				tenthBulk += timed(&bulkTime, appendBulk, part)
				tenthRaw += timed(&rawTime, copyRaw, part)
			}
			if tenth := len(recs) / 10; (lo+len(part))%tenth == 0 {
				b.Logf("events %7d..%7d: raw COPY %6.0f events/s, AppendBulk %6.0f events/s", lo+len(part)-tenth, lo+len(part),
					float64(tenth)/tenthRaw.Seconds(), float64(tenth)/tenthBulk.Seconds())
				tenthRaw, tenthBulk = 0, 0
			}
		}
	}
	b.StopTimer()
	rawRate := float64(b.N*len(recs)) / rawTime.Seconds()
	bulkRate := float64(b.N*len(recs)) / bulkTime.Seconds()
	b.ReportMetric(bulkRate, "events/s")
	b.ReportMetric(rawRate, "raw-copy-events/s")
	b.ReportMetric(bulkRate/rawRate, "ratio_to_raw_copy")
}

func truncate(b *testing.B, e env) {
	b.Helper()
	_, err := e.db.Pool.Exec(context.Background(), `TRUNCATE events`)
	require.NoError(b, err)
	_, err = e.db.Pool.Exec(context.Background(), `VACUUM ANALYZE events`)
	require.NoError(b, err)
}

// metadataJSON encodes metadata as the store does.
func metadataJSON(md events.Metadata) []byte {
	b, err := json.Marshal(md)
	if err != nil {
		panic(err)
	}
	return b
}
