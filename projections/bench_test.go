package projections_test

// Benchmarks behind Herald's measured claims about projections. Each does a fixed workload once
// per b.N iteration (run them with -benchtime=1x); the workload is scaled down unless
// HERALD_BENCH_FULL=1. The figures are reported with b.ReportMetric and the context needed to
// read them (mode, cores, Postgres settings, events and seconds) is printed with b.Logf.
//
//	go test -run '^$' -bench 'BenchmarkEndToEnd|BenchmarkLagSteady5000|BenchmarkRebuild' -benchtime=1x ./projections/
//	HERALD_BENCH_FULL=1 go test -run '^$' -bench . -benchtime=1x -timeout 1h ./projections/

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"io"
	"math"
	"os"
	"runtime"
	"slices"
	"sort"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/redis/go-redis/v9"
	"github.com/rs/zerolog"

	"herald/events"
	"herald/events/relay"
	"herald/events/store"
	"herald/events/transport"
	"herald/events/transport/transporttest"
	"herald/projections"
	"herald/schema/schematest"
)

// BenchmarkEndToEnd imports user.created events through AppendBulk, one new stream per user, in
// chunks of 10,000 from one goroutine, while the relay and every projection run, and measures
// from the first append until every projection's checkpoint has passed the last append.
func BenchmarkEndToEnd(b *testing.B) {
	n := benchSize(1_000_000, 100_000)
	const chunk = 10_000
	logContext(b)

	var total, appendOnly rate
	for i := range b.N {
		b.StopTimer()
		env := startPipeline(b)
		recs := importRecords(b, fmt.Sprintf("bench-import-%d", i), n)
		b.StartTimer()

		start := time.Now()
		var last store.Checkpoint
		for from := 0; from < n; from += chunk {
			res, err := env.store.AppendBulk(env.ctx, recs[from:min(from+chunk, n)])
			if err != nil {
				b.Fatalf("append chunk at %d: %v", from, err)
			}
			last = res.Checkpoint
		}
		appended := time.Since(start)
		env.waitProjections(b, last, 10*time.Minute)
		elapsed := time.Since(start)

		b.StopTimer()
		expectRows(b, env.db, "users", n)
		env.logRelay(b, last)
		appendOnly.add(n, appended)
		total.add(n, elapsed)
		b.Logf("iteration %d: %d events appended in %.2fs, all %d projections caught up after %.2fs",
			i, n, appended.Seconds(), len(env.runner.Projections()), elapsed.Seconds())
		env.stop(b)
	}
	b.ReportMetric(total.perSecond(), "events/s")
	b.ReportMetric(appendOnly.perSecond(), "append-events/s")
	b.Logf("end to end: %s; append only: %s (target ≥ 20000 events/s end to end)", total, appendOnly)
}

// BenchmarkLagSteady5000 appends single events at a steady 5,000 events/s from 8 writers while
// the relay and every projection run, and measures, per event, how long after its Append
// returned the users projection's checkpoint first passed it.
func BenchmarkLagSteady5000(b *testing.B) {
	const (
		writers   = 8
		perSecond = 5_000
		pollEvery = 2 * time.Millisecond
	)
	duration := time.Duration(benchSize(20, 5)) * time.Second
	logContext(b)

	var (
		lags, visible, appends []time.Duration
		achieved               rate
	)
	for i := range b.N {
		b.StopTimer()
		env := startPipeline(b)
		watch := newCheckpointWatcher(env, "users", pollEvery)
		b.StartTimer()

		run := paceWriters(env, writers, perSecond, duration, fmt.Sprintf("bench-lag-%d", i))
		if run.err != nil {
			b.Fatal(run.err)
		}
		if err := watch.waitPassed(run.last, time.Minute); err != nil {
			b.Fatal(err)
		}

		b.StopTimer()
		watch.stop()
		applied, err := watch.lags(run.samples, func(p checkpointPoll) store.Checkpoint { return p.applied })
		if err != nil {
			b.Fatal(err)
		}
		readable, err := watch.lags(run.samples, func(p checkpointPoll) store.Checkpoint { return p.visible })
		if err != nil {
			b.Fatal(err)
		}
		lags, visible = append(lags, applied...), append(visible, readable...)
		for _, s := range run.samples {
			appends = append(appends, s.returned.Sub(s.called))
		}
		achieved.add(len(run.samples), run.elapsed)
		b.Logf("iteration %d: %d appends due in %s returned within %.2fs; %d checkpoint readings",
			i, len(run.samples), duration, run.elapsed.Seconds(), len(watch.polls))
		if gaps := watch.moves(); len(gaps) > 0 {
			b.Logf("iteration %d: the users checkpoint moved %d times; time between moves p50 %.1fms p99 %.1fms max %.1fms",
				i, len(gaps), ms(percentile(gaps, 50)), ms(percentile(gaps, 99)), ms(gaps[len(gaps)-1]))
		}
		env.stop(b)
	}
	for _, d := range [][]time.Duration{lags, visible, appends} {
		slices.Sort(d)
	}
	p50, p99 := percentile(lags, 50), percentile(lags, 99)
	b.ReportMetric(ms(p50), "p50-ms")
	b.ReportMetric(ms(p99), "p99-ms")
	b.ReportMetric(ms(lags[len(lags)-1]), "max-ms")
	b.ReportMetric(ms(percentile(visible, 99)), "visible-p99-ms")
	b.ReportMetric(achieved.perSecond(), "events/s")
	b.Logf("lag append→users projection over %d events: p50 %.1fms p99 %.1fms max %.1fms (target p99 < 1000ms)",
		len(lags), ms(p50), ms(p99), ms(lags[len(lags)-1]))
	b.Logf("of which waiting to become readable (older transactions open in the cluster): p50 %.1fms p99 %.1fms max %.1fms",
		ms(percentile(visible, 50)), ms(percentile(visible, 99)), ms(visible[len(visible)-1]))
	b.Logf("offered %d events/s from %d writers, achieved %s; Append latency p50 %.1fms p99 %.1fms",
		perSecond, writers, achieved, ms(percentile(appends, 50)), ms(percentile(appends, 99)))
}

// BenchmarkRebuild fills the log with a mix of user events, brings the live projections up to
// date, then times projections.Rebuild of every projection.
func BenchmarkRebuild(b *testing.B) {
	n := benchSize(1_000_000, 100_000)
	logContext(b)

	var all rate
	perProjection := map[string]*rate{}
	for i := range b.N {
		b.StopTimer()
		db := schematest.NewWithOptions(b, schematest.Options{MaxConns: 16})
		s := newStore(b, db)
		ctx := context.Background()
		recs := mixedRecords(b, fmt.Sprintf("bench-rebuild-%d", i), n)
		fillStart := time.Now()
		var last store.Checkpoint
		for from := 0; from < len(recs); from += 10_000 {
			res, err := s.AppendBulk(ctx, recs[from:min(from+10_000, len(recs))])
			if err != nil {
				b.Fatalf("fill: %v", err)
			}
			if res.Appended != min(10_000, len(recs)-from) {
				b.Fatalf("fill: chunk at %d appended %d events (%d duplicates)", from, res.Appended, res.Duplicates)
			}
			last = res.Checkpoint
		}
		b.Logf("iteration %d: filled the log with %d events in %.2fs", i, n, time.Since(fillStart).Seconds())
		recs = nil
		waitVisible(b, db, last)
		live, err := projections.NewRunner(projections.Config{}, db.Pool, events.DefaultRegistry(), nil,
			projections.All(), benchLog(), nil)
		if err != nil {
			b.Fatal(err)
		}
		if err := live.CatchUp(ctx, ""); err != nil {
			b.Fatalf("catch up: %v", err)
		}
		b.Logf("iteration %d: log of %d events, live projections caught up", i, n)
		b.StartTimer()

		var iteration time.Duration
		for _, p := range projections.All() {
			res, err := projections.Rebuild(ctx, db.Pool, events.DefaultRegistry(), p, projections.RebuildConfig{}, benchLog())
			if err != nil {
				b.Fatalf("rebuild %s: %v", p.Name(), err)
			}
			if perProjection[p.Name()] == nil {
				perProjection[p.Name()] = &rate{}
			}
			perProjection[p.Name()].add(res.Events, res.Duration)
			all.add(res.Events, res.Duration)
			iteration += res.Duration
			b.Logf("rebuild %-17s %8d events in %6.2fs", p.Name(), res.Events, res.Duration.Seconds())
		}
		b.StopTimer()
		expectRows(b, db, "users", n/4)
		b.Logf("iteration %d: every projection rebuilt from the %d-event log in %.2fs (%.0f log events/s)",
			i, n, iteration.Seconds(), float64(n)/iteration.Seconds())
		s.Close()
	}
	for _, p := range projections.All() {
		if r := perProjection[p.Name()]; r.events > 0 {
			b.ReportMetric(r.perSecond(), p.Name()+"-events/s")
		}
	}
	b.ReportMetric(all.perSecond(), "events/s")
	b.Logf("rebuild: %s applied over all projections (target ≥ 50000 events/s)", all)
}

// --- The running pipeline: store, relay and runner on a fresh schema and Redis prefix ---

// benchPollInterval is the runner's fallback poll. It is long, so the figures measure the
// doorbell path (relay → Redis → runner) and a stalled doorbell shows as a stall, not as a
// one-second poll.
const benchPollInterval = time.Minute

type pipeline struct {
	ctx    context.Context
	cancel context.CancelFunc
	db     *schematest.Schema
	store  *store.Store
	relay  *relay.Relay
	runner *projections.Runner
	rdb    *redis.Client
	prefix string
	done   sync.WaitGroup
	closed []func() error
}

// startPipeline runs a relay and a runner of projections.All() against a fresh schema and a
// fresh Redis key prefix, and returns once both are running.
func startPipeline(b *testing.B) *pipeline {
	b.Helper()
	db := schematest.NewWithOptions(b, schematest.Options{MaxConns: 16})
	opts := redisOptions(b)
	var suffix [6]byte
	_, _ = rand.Read(suffix[:])
	tcfg := transport.Config{Prefix: "bench:" + hex.EncodeToString(suffix[:]) + ":"}.WithDefaults()

	ctx, cancel := context.WithCancel(context.Background())
	p := &pipeline{ctx: ctx, cancel: cancel, db: db, store: newStore(b, db), rdb: redis.NewClient(opts), prefix: tcfg.Prefix}
	b.Cleanup(func() { p.stop(b) })
	if err := p.rdb.Ping(ctx).Err(); err != nil {
		b.Fatalf("Redis at %s (is redis-server running?): %v", opts.Addr, err)
	}

	pub, err := transport.NewPublisher(opts, tcfg, transport.NewLoggerAdapter(benchLog()))
	if err != nil {
		b.Fatal(err)
	}
	p.closed = append(p.closed, pub.Close)
	p.relay, err = relay.New(relay.Config{Schema: db.Name, Transport: tcfg}, db.Pool, p.rdb, pub, benchLog(), nil)
	if err != nil {
		b.Fatal(err)
	}
	p.runner, err = projections.NewRunner(projections.Config{Transport: tcfg, PollInterval: benchPollInterval,
		Consumer: "bench"}, db.Pool, events.DefaultRegistry(), opts, projections.All(), benchLog(), nil)
	if err != nil {
		b.Fatal(err)
	}
	p.done.Add(2)
	go func() { defer p.done.Done(); _ = p.relay.Run(ctx) }()
	go func() { defer p.done.Done(); _ = p.runner.Run(ctx) }()

	// Ready when the relay leads and every projection has its checkpoint row.
	deadline := time.Now().Add(30 * time.Second)
	for !p.relay.Status().Leader || !p.checkpointsExist() {
		if time.Now().After(deadline) {
			b.Fatal("the relay or the runner did not start within 30s")
		}
		time.Sleep(10 * time.Millisecond)
	}
	return p
}

func (p *pipeline) checkpointsExist() bool {
	for _, proj := range p.runner.Projections() {
		if _, err := projections.Checkpoint(p.ctx, p.db.Pool, proj.Name()); err != nil {
			return false
		}
	}
	return true
}

// waitProjections waits until every projection's checkpoint has passed cp.
func (p *pipeline) waitProjections(b *testing.B, cp store.Checkpoint, within time.Duration) {
	b.Helper()
	ctx, cancel := context.WithTimeout(p.ctx, within)
	defer cancel()
	for _, proj := range p.runner.Projections() {
		if err := projections.WaitFor(ctx, p.db.Pool, proj.Name(), cp); err != nil {
			got, _ := projections.Checkpoint(context.Background(), p.db.Pool, proj.Name())
			b.Fatalf("projection %s did not pass %+v within %s (at %+v): %v", proj.Name(), cp, within, got, err)
		}
	}
}

// logRelay says whether the relay's per-event publishing had kept up: projections do not
// wait for it (they follow the doorbell), but it shares the machine.
func (p *pipeline) logRelay(b *testing.B, cp store.Checkpoint) {
	st := p.relay.Status()
	state := "had published every event"
	if st.Checkpoint.Less(cp) {
		var behind int64
		_ = p.db.Pool.QueryRow(p.ctx, `SELECT count(*) FROM events WHERE (transaction_id, global_position) > ($1::xid8, $2::bigint)`,
			st.Checkpoint.TxID, st.Checkpoint.Position).Scan(&behind)
		state = fmt.Sprintf("was still %d events behind (lag %.1fs)", behind, st.LagSeconds)
	}
	b.Logf("relay to Redis streams %s when the projections caught up", state)
}

// stop ends the relay and the runner and deletes the benchmark's Redis keys. The schema is
// dropped by schematest when the benchmark ends.
func (p *pipeline) stop(b *testing.B) {
	if p.cancel == nil {
		return
	}
	p.cancel()
	p.cancel = nil
	p.done.Wait()
	for _, closeFn := range p.closed {
		if err := closeFn(); err != nil {
			b.Logf("close: %v", err)
		}
	}
	p.store.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	transporttest.DeletePrefix(ctx, p.rdb, p.prefix)
	_ = p.rdb.Close()
}

// --- Workloads ---

// benchPhone is a unique, valid E.164 number per index (up to 10,000,000 users).
func benchPhone(i int) string { return fmt.Sprintf("+1415555%07d", i) }

// importRecords is an import of n users: one user.created with six attributes per new stream,
// with event ids derived from the import id and row number, as the importer does.
func importRecords(b *testing.B, importID string, n int) []events.Record {
	recs := make([]events.Record, n)
	for i := range recs {
		id := events.DeterministicID("import", importID, strconv.Itoa(i))
		recs[i] = benchRecord(b, id, benchPhone(i), importID, importedUser(i))
	}
	return recs
}

func importedUser(i int) events.UserCreated {
	return events.UserCreated{
		Phone: benchPhone(i), Consent: events.ConsentOptIn, Source: "import", Locale: "es-PE", Timezone: "America/Lima",
		Attributes: map[string]any{
			"first_name": "Nombre" + strconv.Itoa(i%9973), "last_name": "Apellido" + strconv.Itoa(i%7919),
			"email": "user" + strconv.Itoa(i) + "@example.com", "city": []string{"Lima", "Cusco", "Arequipa"}[i%3],
			"tier": i % 4, "signed_up": "2026-01-15",
		},
	}
}

// mixedRecords is n user events in the order an import followed by ordinary use produces them:
// every user is created, then has an attribute change, a consent change and a subscription.
func mixedRecords(b *testing.B, runID string, n int) []events.Record {
	users := n / 4
	topics := []string{"deals", "news", "back-in-stock"}
	recs := make([]events.Record, 0, n)
	add := func(kind string, i int, phone string, e events.Event) {
		id := events.DeterministicID("bench", runID, kind, strconv.Itoa(i))
		recs = append(recs, benchRecord(b, id, phone, runID, e))
	}
	for i := range users {
		add("created", i, benchPhone(i), importedUser(i))
	}
	for i := range users {
		add("attributes", i, benchPhone(i), events.UserAttributesChanged{Phone: benchPhone(i), Mode: events.AttributesMerge,
			Source: "api", Attributes: map[string]any{"tier": (i + 1) % 4, "signed_up": nil, "last_order": "2026-03-01"}})
	}
	for i := range users {
		consent := events.ConsentOptOut
		if i%10 == 0 {
			consent = events.ConsentOptIn
		}
		add("consent", i, benchPhone(i), events.UserConsentChanged{Phone: benchPhone(i), Consent: consent, Source: "inbound", Reason: "STOP"})
	}
	subscribes := n - len(recs)
	for i := range subscribes {
		phone := benchPhone(i % users)
		add("subscribed", i, phone, events.UserSubscribed{Phone: phone, Topic: topics[i%len(topics)], Source: "api"})
	}
	return recs
}

// benchRecord encodes a user event for the stream of its phone.
func benchRecord(b *testing.B, id uuid.UUID, phone, correlation string, e events.Event) events.Record {
	r, err := events.NewRecord(id, events.UserStream(phone), e, events.Metadata{CorrelationID: correlation, Actor: "bench", Source: "bench"})
	if err != nil {
		b.Fatal(err)
	}
	return r
}

// appendSample is one Append: when it was called, when it returned, and where it landed.
type appendSample struct {
	called, returned time.Time
	cp               store.Checkpoint
}

type pacedRun struct {
	samples []appendSample
	last    store.Checkpoint // the greatest checkpoint appended
	elapsed time.Duration    // from the start to the last Append's return
	err     error
}

// paceWriters runs writers goroutines that append single user.created events, each to a new
// stream, on a fixed schedule adding up to perSecond, for duration: event k of writer w is due
// at start + (k·writers + w)/perSecond. The load is open: a writer starts each Append when it is
// due, without waiting for its previous one to return, as independent requests would. (Waiting
// would cap the rate at writers ÷ Append latency — with synchronous_commit=on and a 5–7 ms
// commit here, about 1,200 events/s — and measure the writers, not the pipeline.)
func paceWriters(p *pipeline, writers, perSecond int, duration time.Duration, runID string) pacedRun {
	start := time.Now()
	interval := time.Second / time.Duration(perSecond)
	due := func(seq int) time.Time { return start.Add(time.Duration(seq) * interval) }

	var (
		mu       sync.Mutex
		run      pacedRun
		inFlight sync.WaitGroup
		pacers   sync.WaitGroup
	)
	appendOne := func(seq int) {
		u := importedUser(seq)
		rec, err := events.NewRecord(events.DeterministicID("bench", runID, strconv.Itoa(seq)), events.UserStream(u.Phone), u,
			events.Metadata{CorrelationID: runID, Actor: "bench", Source: "bench"})
		called := time.Now()
		var res store.AppendResult
		if err == nil {
			res, err = p.store.Append(p.ctx, rec.StreamID, 0, rec)
		}
		returned := time.Now()
		mu.Lock()
		defer mu.Unlock()
		if err != nil {
			if run.err == nil {
				run.err = fmt.Errorf("append %d: %w", seq, err)
			}
			return
		}
		run.samples = append(run.samples, appendSample{called: called, returned: returned, cp: res.Checkpoint})
		if run.last.Less(res.Checkpoint) {
			run.last = res.Checkpoint
		}
	}
	for w := range writers {
		pacers.Go(func() {
			for seq := w; due(seq).Sub(start) < duration; seq += writers {
				time.Sleep(time.Until(due(seq)))
				inFlight.Go(func() { appendOne(seq) })
			}
		})
	}
	pacers.Wait()
	inFlight.Wait()
	for _, smp := range run.samples {
		run.elapsed = max(run.elapsed, smp.returned.Sub(start))
	}
	if len(run.samples) == 0 && run.err == nil {
		run.err = fmt.Errorf("no appends in %s", duration)
	}
	return run
}

// --- Watching a projection's checkpoint ---

// checkpointPoll is one reading: the projection's checkpoint and the newest event readers could
// see (the visible head), taken together.
type checkpointPoll struct {
	at      time.Time // when the reading returned
	applied store.Checkpoint
	visible store.Checkpoint
}

// checkpointWatcher reads one projection's checkpoint and the visible head every interval and
// keeps every reading. The visible head splits the lag in two: waiting for the log to become
// readable (older transactions still open) and the relay → doorbell → runner path.
type checkpointWatcher struct {
	cancel context.CancelFunc
	done   chan struct{}
	mu     sync.Mutex
	polls  []checkpointPoll
	err    error
}

func newCheckpointWatcher(p *pipeline, projection string, every time.Duration) *checkpointWatcher {
	ctx, cancel := context.WithCancel(p.ctx)
	w := &checkpointWatcher{cancel: cancel, done: make(chan struct{})}
	go func() {
		defer close(w.done)
		tick := time.NewTicker(every)
		defer tick.Stop()
		for {
			visible, err := store.Head(ctx, p.db.Pool)
			var applied store.Checkpoint
			if err == nil {
				applied, err = projections.Checkpoint(ctx, p.db.Pool, projection)
			}
			at := time.Now()
			w.mu.Lock()
			if err != nil && ctx.Err() == nil {
				w.err = err
			}
			if err == nil {
				w.polls = append(w.polls, checkpointPoll{at: at, applied: applied, visible: visible})
			}
			w.mu.Unlock()
			select {
			case <-ctx.Done():
				return
			case <-tick.C:
			}
		}
	}()
	return w
}

// waitPassed waits until a reading of the projection's checkpoint has passed cp.
func (w *checkpointWatcher) waitPassed(cp store.Checkpoint, within time.Duration) error {
	deadline := time.Now().Add(within)
	for {
		w.mu.Lock()
		n, err := len(w.polls), w.err
		passed := n > 0 && !w.polls[n-1].applied.Less(cp)
		w.mu.Unlock()
		switch {
		case err != nil:
			return fmt.Errorf("watch checkpoint: %w", err)
		case passed:
			return nil
		case time.Now().After(deadline):
			return fmt.Errorf("the projection did not pass %+v within %s", cp, within)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// moves returns, sorted, the times between the readings at which the checkpoint had moved: how
// often the projection commits (rounds that apply), as far as the reading interval shows it.
func (w *checkpointWatcher) moves() []time.Duration {
	var (
		gaps []time.Duration
		last time.Time
	)
	for i := 1; i < len(w.polls); i++ {
		if w.polls[i].applied == w.polls[i-1].applied {
			continue
		}
		if !last.IsZero() {
			gaps = append(gaps, w.polls[i].at.Sub(last))
		}
		last = w.polls[i].at
	}
	slices.Sort(gaps)
	return gaps
}

func (w *checkpointWatcher) stop() {
	w.cancel()
	<-w.done
}

// lags returns, for each sample, the time from its Append's return to the first reading whose
// checkpoint (as chosen by of) had passed the sample's (0 if a reading taken before the return
// had already passed it).
func (w *checkpointWatcher) lags(samples []appendSample, of func(checkpointPoll) store.Checkpoint) ([]time.Duration, error) {
	out := make([]time.Duration, 0, len(samples))
	for _, s := range samples {
		i := sort.Search(len(w.polls), func(i int) bool { return !of(w.polls[i]).Less(s.cp) })
		if i == len(w.polls) {
			return nil, fmt.Errorf("no reading passed %+v", s.cp)
		}
		out = append(out, max(0, w.polls[i].at.Sub(s.returned)))
	}
	return out, nil
}

// --- Small helpers ---

// expectRows fails unless table has want rows: a figure is only worth reporting if the work
// was really done.
func expectRows(b *testing.B, db *schematest.Schema, table string, want int) {
	b.Helper()
	var got int
	if err := db.Pool.QueryRow(context.Background(), `SELECT count(*) FROM `+table).Scan(&got); err != nil {
		b.Fatal(err)
	}
	if got != want {
		b.Fatalf("%s has %d rows, want %d", table, got, want)
	}
}

// waitVisible waits until readers can see the log up to cp. The gap-safe reader stops below the
// oldest transaction still open anywhere in the Postgres cluster, so another session's long
// transaction (another test, elsewhere on a shared server) hides the whole log meanwhile, and a
// rebuild would replay nothing.
func waitVisible(b *testing.B, db *schematest.Schema, cp store.Checkpoint) {
	b.Helper()
	start := time.Now()
	for {
		head, err := store.Head(context.Background(), db.Pool)
		if err != nil {
			b.Fatal(err)
		}
		if !head.Less(cp) {
			break
		}
		if time.Since(start) > 5*time.Minute {
			b.Fatalf("the log is still not visible up to %+v after 5 minutes (head %+v)", cp, head)
		}
		time.Sleep(10 * time.Millisecond)
	}
	if waited := time.Since(start); waited > 100*time.Millisecond {
		b.Logf("waited %.2fs for an older open transaction elsewhere in the cluster before the log was visible", waited.Seconds())
	}
}

// benchSize is full with HERALD_BENCH_FULL=1, small otherwise.
func benchSize(full, small int) int {
	if os.Getenv("HERALD_BENCH_FULL") == "1" {
		return full
	}
	return small
}

// logContext prints what the figures depend on: the mode, the cores and Postgres' settings.
func logContext(b *testing.B) {
	b.Helper()
	mode := "small (set HERALD_BENCH_FULL=1 for the full sizes)"
	if os.Getenv("HERALD_BENCH_FULL") == "1" {
		mode = "full"
	}
	b.Logf("mode %s; %s/%s, %d CPUs, GOMAXPROCS %d", mode, runtime.GOOS, runtime.GOARCH, runtime.NumCPU(), runtime.GOMAXPROCS(0))
	db := schematest.New(b) // also creates the test database if it is missing
	var version, syncCommit, sharedBuffers, walLevel string
	err := db.Pool.QueryRow(context.Background(), `SELECT version(), current_setting('synchronous_commit'),
current_setting('shared_buffers'), current_setting('wal_level')`).Scan(&version, &syncCommit, &sharedBuffers, &walLevel)
	if err != nil {
		b.Fatal(err)
	}
	b.Logf("%s; synchronous_commit=%s shared_buffers=%s wal_level=%s", version, syncCommit, sharedBuffers, walLevel)
}

func redisOptions(b *testing.B) *redis.Options {
	u := os.Getenv("TEST_REDIS_URL")
	if u == "" {
		u = transporttest.DefaultURL
	}
	opts, err := redis.ParseURL(u)
	if err != nil {
		b.Fatal(err)
	}
	return opts
}

func newStore(b *testing.B, db *schematest.Schema) *store.Store {
	s, err := store.New(db.Pool, store.Config{BulkChunk: 10_000})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(s.Close)
	return s
}

// benchLog shows warnings and errors (a stuck projection, a relay retry) and nothing else.
func benchLog() zerolog.Logger {
	return zerolog.New(zerolog.ConsoleWriter{Out: withoutShutdownNoise{os.Stderr}}).Level(zerolog.WarnLevel).With().Timestamp().Logger()
}

// withoutShutdownNoise drops the "read fail: context canceled" errors Watermill's subscriber
// logs when the runner stops at the end of each iteration.
type withoutShutdownNoise struct{ w io.Writer }

func (q withoutShutdownNoise) Write(p []byte) (int, error) {
	if bytes.Contains(p, []byte("context canceled")) {
		return len(p), nil
	}
	return q.w.Write(p)
}

// rate accumulates events over time.
type rate struct {
	events  int
	elapsed time.Duration
}

func (r *rate) add(n int, d time.Duration) { r.events += n; r.elapsed += d }

func (r rate) perSecond() float64 {
	if r.elapsed <= 0 {
		return 0
	}
	return float64(r.events) / r.elapsed.Seconds()
}

func (r rate) String() string {
	return fmt.Sprintf("%d events in %.2fs = %.0f events/s", r.events, r.elapsed.Seconds(), r.perSecond())
}

// percentile of sorted durations, nearest rank.
func percentile(sorted []time.Duration, p float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	i := int(math.Ceil(p/100*float64(len(sorted)))) - 1
	return sorted[min(max(i, 0), len(sorted)-1)]
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
