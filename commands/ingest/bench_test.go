package ingest_test

// The ingest benchmarks, end to end on the real database:
//
//	flock /tmp/herald-bench.lock env HERALD_BENCH_FULL=1 go test -run '^$' -bench . -benchtime=1x -timeout 30m ./commands/ingest/
//
// BenchmarkImportUsers generates a CSV (1,000,000 rows with HERALD_BENCH_FULL=1, 20,000
// otherwise: 10 attribute columns, 5% invalid phones, 3% duplicate rows in another format, 20
// countries), imports it — parsed, validated, merged, appended as events — while the users
// projection applies them, and stops the clock when the users read model has every row.
// BenchmarkTriggers validates and accepts 100,000 trigger lines (5,000 small) whose rule
// reads the payload, against 100,000 users (10,000 small).

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/nyaruka/phonenumbers"
	"github.com/rs/zerolog"
	"github.com/stretchr/testify/require"

	"herald/commands/ingest"
	"herald/events"
	"herald/events/store"
	"herald/projections"
	"herald/schema/schematest"
)

func full() bool { return os.Getenv("HERALD_BENCH_FULL") == "1" }

var benchRegions = []string{"PE", "US", "MX", "BR", "AR", "CO", "CL", "ES", "GB", "DE", "FR", "IT", "IN", "ID", "NG", "ZA", "EG", "PH", "JP", "AU"}

// mobileBases are, per region, an example mobile number's digits without its last five.
func mobileBases(tb testing.TB) map[string][2]string {
	out := map[string][2]string{}
	for _, r := range benchRegions {
		n := phonenumbers.GetExampleNumberForType(r, phonenumbers.MOBILE)
		require.NotNil(tb, n, r)
		national := phonenumbers.GetNationalSignificantNumber(n)
		out[r] = [2]string{strconv.Itoa(int(n.GetCountryCode())), national[:len(national)-5]}
	}
	return out
}

// writeUsersCSV writes n rows; it returns how many rows have an invalid phone and how many
// repeat an earlier phone.
func writeUsersCSV(tb testing.TB, path string, n int) (invalid, dups int) {
	f, err := os.Create(path)
	require.NoError(tb, err)
	defer f.Close()
	w := bufio.NewWriterSize(f, 1<<20)
	bases := mobileBases(tb)
	rng := rand.New(rand.NewPCG(1, 2))
	fmt.Fprintln(w, "phone,first_name,last_name,city,plan,signup_date,score,segment,referrer,color,notes,consent,topics,locale")
	cities := []string{"Lima", "Cusco", "Austin", "Monterrey", "Recife", "Rosario", "Medellín", "Santiago", "Sevilla", "Leeds"}
	type prev struct{ region, local string }
	var seen []prev
	next := map[string]int{} // per region: the next local number, so every phone is new
	for i := 0; i < n; i++ {
		var phone string
		switch x := rng.IntN(100); {
		case x < 5:
			invalid++
			phone = []string{"+51 98", "n/a", "+999 123 456", "12", "+44 7911 12345678901"}[rng.IntN(5)]
		case x < 8 && len(seen) > 0:
			dups++
			p := seen[rng.IntN(len(seen))]
			b := bases[p.region]
			phone = "00" + b[0] + " " + b[1] + " " + p.local // another format
		default:
			region := benchRegions[rng.IntN(len(benchRegions))]
			b := bases[region]
			local := fmt.Sprintf("%05d", next[region]%100000)
			next[region]++
			phone = "+" + b[0] + b[1] + local
			if len(seen) < 200_000 {
				seen = append(seen, prev{region, local})
			}
		}
		consent := []string{"OPT_IN", "OPT_OUT", ""}[rng.IntN(3)]
		topics := ""
		if rng.IntN(10) == 0 {
			topics = "deals;news"
		}
		fmt.Fprintf(w, "%s,Name%d,Family%d,%s,%s,2026-%02d-%02d,%d,s%d,ref%d,c%d,\"note %d, with a comma\",%s,%s,es-PE\n",
			phone, i, i%977, cities[rng.IntN(len(cities))], []string{"free", "gold", "silver"}[rng.IntN(3)], 1+rng.IntN(12), 1+rng.IntN(28),
			rng.IntN(1000), rng.IntN(20), rng.IntN(500), rng.IntN(8), i, consent, topics)
	}
	require.NoError(tb, w.Flush())
	return invalid, dups
}

// peakRSS is the process's peak resident set (VmHWM) in MiB.
func peakRSS() float64 {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(line, "VmHWM:") {
			kb, _ := strconv.ParseFloat(strings.Fields(line)[1], 64)
			return kb / 1024
		}
	}
	return 0
}

// cpuSeconds is this process's CPU time (user and system).
func cpuSeconds() float64 {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano()).Seconds()
}

// postgresCPU is the CPU time (user and system) of the server processes behind pool's idle
// connections, read from /proc (the server runs on this machine): with wall time shared with
// other work, CPU per operation is what compares runs.
func postgresCPU(pool *pgxpool.Pool) float64 {
	conns := pool.AcquireAllIdle(context.Background())
	total := 0.0
	for _, c := range conns {
		stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", c.Conn().PgConn().PID()))
		c.Release()
		if err != nil {
			continue
		}
		// Fields after the command (which ends with ')'): state is the 3rd field, utime the 14th.
		f := strings.Fields(string(stat[bytes.LastIndexByte(stat, ')')+1:]))
		if len(f) > 12 {
			u, _ := strconv.ParseFloat(f[11], 64)
			s, _ := strconv.ParseFloat(f[12], 64)
			total += (u + s) / 100 // clock ticks
		}
	}
	return total
}

func BenchmarkImportUsers(b *testing.B) {
	n := 20_000
	if full() {
		n = 1_000_000
	}
	if s := os.Getenv("HERALD_BENCH_ROWS"); s != "" { // ad-hoc sizes
		n, _ = strconv.Atoi(s)
	}
	path := filepath.Join(b.TempDir(), "users.csv")
	invalid, dups := writeUsersCSV(b, path, n)
	st, err := os.Stat(path)
	require.NoError(b, err)
	runtime.GC()
	for i := 0; i < b.N; i++ {
		db := schematest.New(b)
		s, err := store.New(db.Pool, store.Config{})
		require.NoError(b, err)
		reg := events.DefaultRegistry()
		im, err := ingest.NewImporter(s, reg, ingest.Config{})
		require.NoError(b, err)
		runner, err := projections.NewRunner(projections.Config{}, db.Pool, reg, nil, []projections.Projection{projections.Users{}}, zerolog.Nop(), nil)
		require.NoError(b, err)
		f, err := os.Open(path)
		require.NoError(b, err)

		ctx, cancel := context.WithCancel(context.Background())
		applied := make(chan error, 1)
		go func() { // the users projection applies while the import appends, as in a running Herald
			for ctx.Err() == nil {
				if err := runner.CatchUp(ctx, "users"); err != nil && ctx.Err() == nil {
					applied <- err
					return
				}
				time.Sleep(50 * time.Millisecond)
			}
			applied <- nil
		}()
		b.ResetTimer()
		goCPU, pgCPU := cpuSeconds(), postgresCPU(db.Pool)
		start := time.Now()
		rep, err := im.Run(context.Background(), ingest.Spec{Source: "users.csv"}, f, nil)
		require.NoError(b, err)
		imported := time.Since(start)
		cancel()
		require.NoError(b, <-applied)
		require.NoError(b, runner.CatchUp(context.Background(), "users")) // the rest
		total := time.Since(start)
		b.StopTimer()
		goCPU, pgCPU = cpuSeconds()-goCPU, postgresCPU(db.Pool)-pgCPU
		f.Close()

		var users int
		require.NoError(b, db.Pool.QueryRow(context.Background(), `SELECT count(*) FROM users`).Scan(&users))
		require.Equal(b, rep.Totals.Created, users)
		require.Equal(b, events.ImportCompleted, rep.Status)
		b.ReportMetric(float64(n), "rows")
		b.ReportMetric(float64(n)/total.Seconds(), "rows/s")
		b.ReportMetric(total.Seconds(), "s_end_to_end")
		b.ReportMetric(imported.Seconds(), "s_appended")
		b.ReportMetric(peakRSS(), "peak_RSS_MiB")
		b.ReportMetric(float64(st.Size())/(1<<20), "file_MiB")
		b.ReportMetric(goCPU, "go_cpu_s")
		b.ReportMetric(pgCPU, "pg_cpu_s")
		b.Logf("%d rows (%d invalid phones, %d duplicate rows written): read %d, rejected %d, merged %d, created %d, warnings %d; appended in %s, applied to users in %s",
			n, invalid, dups, rep.Totals.RowsRead, rep.Totals.Rejected, rep.Totals.Merged, rep.Totals.Created, rep.Totals.Warnings,
			imported.Round(time.Millisecond), total.Round(time.Millisecond))
		ps := db.Pool.Stat()
		b.Logf("pool: %d connections at most, %d acquires, %d waited for one, %s waiting in all", ps.MaxConns(), ps.AcquireCount(),
			ps.EmptyAcquireCount(), ps.AcquireDuration().Round(time.Millisecond))
		b.Logf("import stages: waiting for rows %s, reading users %s, deciding %s, waiting for the batch before %s, appending %s",
			rep.Timing.WaitRead.Round(time.Millisecond), rep.Timing.Fold.Round(time.Millisecond), rep.Timing.Decide.Round(time.Millisecond),
			rep.Timing.WaitAppend.Round(time.Millisecond), rep.Timing.Append.Round(time.Millisecond))
		s.Close()
	}
}

// triggerLines generates n lines: a rule on the payload for most, a few duplicates and errors.
type triggerLines struct {
	n, i int
	buf  []byte
}

func (t *triggerLines) Read(p []byte) (int, error) {
	for len(t.buf) < len(p) && t.i < t.n {
		i := t.i
		t.i++
		switch {
		case i%100 == 99:
			t.buf = append(t.buf, "{\"event_id\": \"broken\n"...)
		default:
			t.buf = fmt.Appendf(t.buf, `{"event_id":"evt-%d","type":"price_drop","occurred_at":"2026-11-27T10:00:00Z","payload":{"product_id":"sku-%d","price":%d},"segment":{"and":[{"attr":"watching","op":"eq","value":{"$event":"product_id"}},{"field":"country","op":"eq","value":"PE"}]},"template_id":"price-drop","topic":"deals"}`+"\n",
				i, i%500, i%97)
		}
	}
	if len(t.buf) == 0 {
		return 0, io.EOF
	}
	n := copy(p, t.buf)
	t.buf = t.buf[n:]
	return n, nil
}

func BenchmarkTriggers(b *testing.B) {
	lines, users := 5_000, 10_000
	if full() {
		lines, users = 100_000, 100_000
	}
	db := schematest.New(b)
	s, err := store.New(db.Pool, store.Config{})
	require.NoError(b, err)
	defer s.Close()
	reg := events.DefaultRegistry()
	var recs []events.Record
	rec := func(stream string, e events.Event) events.Record {
		r, err := events.NewRecord([16]byte{}, stream, e, events.Metadata{})
		require.NoError(b, err)
		return r
	}
	recs = append(recs, rec(events.TemplateStream("price-drop"), events.TemplateSaved{ID: "price-drop", Name: "p", Channel: "whatsapp",
		DefaultLocale: "es", Variants: map[string]events.TemplateVariant{"es": {Body: "Bajó {product}"}}}))
	var subs []events.Record
	for i := 0; i < users; i++ {
		phone := fmt.Sprintf("+5198%07d", i)
		recs = append(recs, rec(events.UserStream(phone), events.UserCreated{Phone: phone, Consent: events.ConsentOptIn, Source: "bench",
			Attributes: map[string]any{"watching": fmt.Sprintf("sku-%d", i%500)}}))
		subs = append(subs, rec(events.UserStream(phone), events.UserSubscribed{Phone: phone, Topic: "deals", Source: "bench"}))
	}
	// Creations, then subscriptions: interleaved, they would cut the users projection's runs.
	for _, part := range [][]events.Record{recs, subs} {
		_, err = s.AppendBulk(context.Background(), part)
		require.NoError(b, err)
	}
	runner, err := projections.NewRunner(projections.Config{}, db.Pool, reg, nil, projections.All(), zerolog.Nop(), nil)
	require.NoError(b, err)
	require.NoError(b, runner.CatchUp(context.Background(), ""))
	_, err = db.Pool.Exec(context.Background(), `ANALYZE users; ANALYZE subscriptions`)
	require.NoError(b, err)
	tr, err := ingest.NewTriggers(s, reg, ingest.TriggersConfig{})
	require.NoError(b, err)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		goCPU, pgCPU := cpuSeconds(), postgresCPU(db.Pool)
		start := time.Now()
		rep, err := tr.Process(context.Background(), &triggerLines{n: lines}, events.Metadata{Source: "bench"})
		require.NoError(b, err)
		took := time.Since(start)
		goCPU, pgCPU = cpuSeconds()-goCPU, postgresCPU(db.Pool)-pgCPU
		if i == 0 {
			require.Equal(b, lines-lines/100, rep.Accepted)
		}
		b.ReportMetric(float64(lines), "lines")
		b.ReportMetric(float64(lines)/took.Seconds(), "lines/s")
		b.ReportMetric(took.Seconds(), "s_total")
		b.ReportMetric(goCPU, "go_cpu_s")
		b.ReportMetric(pgCPU, "pg_cpu_s")
		b.Logf("%d lines against %d users: accepted %d, rejected %d, duplicates %d, recipients %d in %s",
			lines, users, rep.Accepted, rep.Rejected, rep.Duplicates, rep.Recipients, took.Round(time.Millisecond))
		b.Logf("stages: parsing %s, looking up ids and the catalog %s, counting audiences %s, appending %s",
			rep.Timing.Parse.Round(time.Millisecond), rep.Timing.Lookup.Round(time.Millisecond),
			rep.Timing.Count.Round(time.Millisecond), rep.Timing.Append.Round(time.Millisecond))
	}
}
