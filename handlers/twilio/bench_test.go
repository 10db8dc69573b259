package twilio_test

import (
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/gorilla/mux"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/rs/zerolog"
	"github.com/stretchr/testify/require"

	"herald/commands"
	"herald/events"
	"herald/events/store"
	"herald/handlers/twilio"
	"herald/projections"
	"herald/schema/schematest"
)

// BenchmarkWebhooks drives signed webhooks over real loopback HTTP from 64 concurrent
// connections; each request is durably stored before its 200. It reports throughput, p50/p99
// latency, CPU per request (server and load generator share the process and the 2 cores), and
// how long the projections take to catch up once the load stops.
//
//	HERALD_BENCH_FULL=1 go test -run '^$' -bench BenchmarkWebhooks -benchtime=1x ./handlers/twilio/
func BenchmarkWebhooks(b *testing.B) {
	requests := 10_000
	if os.Getenv("HERALD_BENCH_FULL") != "" {
		requests = 60_000
	}
	for _, kind := range []string{"status", "inbound"} {
		b.Run(kind, func(b *testing.B) {
			for i := 0; i < b.N; i++ {
				runWebhookLoad(b, kind, requests, 64)
			}
		})
	}
}

func runWebhookLoad(b *testing.B, kind string, requests, conns int) {
	db := schematest.NewWithOptions(b, schematest.Options{MaxConns: 32})
	s, err := store.New(db.Pool, store.Config{})
	require.NoError(b, err)
	defer s.Close()
	reg := events.DefaultRegistry()
	wh, err := twilio.New(twilio.Config{PublicBaseURL: publicBase, AuthToken: authToken},
		commands.NewReceiveInboundHandler(s, reg, commands.Replies{}), commands.NewRecordStatusHandler(s, reg), nil)
	require.NoError(b, err)
	router := mux.NewRouter()
	wh.Register(router)
	srv := httptest.NewServer(router)
	defer srv.Close()

	// The projections run alongside, polling (the relay's doorbells are measured elsewhere).
	// HERALD_BENCH_NO_PROJECTIONS=1 leaves them out, to see what the appends alone cost.
	noProjections := os.Getenv("HERALD_BENCH_NO_PROJECTIONS") != ""
	runner, err := projections.NewRunner(projections.Config{PollInterval: 50 * time.Millisecond}, db.Pool, reg, nil,
		projections.All(), zerolog.Nop(), nil)
	require.NoError(b, err)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	if !noProjections {
		go func() { _ = runner.Run(ctx) }()
	}

	// Pre-sign every request so the generator spends its time sending.
	path := twilio.StatusPath
	if kind == "inbound" {
		path = twilio.InboundPath
	}
	bodies := make([]string, requests)
	sigs := make([]string, requests)
	rng := rand.New(rand.NewPCG(1, 2))
	statuses := []string{"sent", "delivered", "read"}
	for i := range bodies {
		var form url.Values
		if kind == "inbound" {
			phone := fmt.Sprintf("+1415555%04d", rng.IntN(10_000))
			form = inbound(fmt.Sprintf("SM%032d", i), phone, []string{"hola", "STOP", "START", "SUBSCRIBE deals", "¿precio?"}[rng.IntN(5)])
		} else {
			// Three callbacks per message (sent, delivered, read), 2% of them delivered twice.
			st := statuses[i%3]
			if rng.IntN(50) == 0 {
				st = statuses[max(0, i%3-1)]
			}
			form = url.Values{"MessageSid": {fmt.Sprintf("SM%032d", i/3)}, "MessageStatus": {st},
				"To": {"whatsapp:+14155552671"}, "AccountSid": {"ACtest"}, "ChannelPrefix": {"whatsapp"}}
		}
		bodies[i] = form.Encode()
		sigs[i] = twilio.Sign(authToken, publicBase+path, form)
	}

	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: conns, MaxConnsPerHost: conns}, Timeout: 30 * time.Second}
	latencies := make([]time.Duration, requests)
	var next, failures atomic.Int64
	blocksBefore := schemaBlocks(b, db.Pool)
	cpuBefore, hostBefore, pgBefore := cpuTime(), hostCPUTime(), postgresCPU()
	start := time.Now()
	var wg sync.WaitGroup
	for c := 0; c < conns; c++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1)) - 1
				if i >= requests {
					return
				}
				req, _ := http.NewRequest(http.MethodPost, srv.URL+path, strings.NewReader(bodies[i]))
				req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
				req.Header.Set(twilio.SignatureHeader, sigs[i])
				t0 := time.Now()
				resp, err := client.Do(req)
				latencies[i] = time.Since(t0)
				if err != nil || resp.StatusCode != http.StatusOK {
					failures.Add(1)
				}
				if resp != nil {
					// Read to EOF so the connection is reused: a body closed unread (the
					// inbound TwiML) made the client dial a new connection per request.
					_, _ = io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
				}
			}
		}()
	}
	wg.Wait()
	elapsed := time.Since(start)
	cpu, host, pgAfter := cpuTime()-cpuBefore, hostCPUTime()-hostBefore, postgresCPU()
	require.Zero(b, failures.Load(), "every webhook answered 200")

	stopped := time.Now()
	last, err := store.Last(context.Background(), db.Pool)
	require.NoError(b, err)
	wait, stop := context.WithTimeout(ctx, time.Minute)
	defer stop()
	for _, p := range projections.All() {
		if noProjections {
			break
		}
		require.NoError(b, projections.WaitFor(wait, db.Pool, p.Name(), last))
	}
	catchUp := time.Since(stopped)
	// Postgres CPU of this pool's backends only: other work on the server is left out.
	var pg time.Duration
	idle := db.Pool.AcquireAllIdle(context.Background())
	for _, c := range idle {
		pid := int(c.Conn().PgConn().PID())
		pg += pgAfter[pid] - pgBefore[pid]
		c.Release()
	}

	// The backends report their table statistics within a second of going idle.
	time.Sleep(1500 * time.Millisecond)
	blocks := schemaBlocks(b, db.Pool) - blocksBefore

	sort.Slice(latencies, func(i, j int) bool { return latencies[i] < latencies[j] })
	p := func(q float64) float64 { return float64(latencies[int(q*float64(requests-1))].Microseconds()) / 1000 }
	b.ReportMetric(float64(requests)/elapsed.Seconds(), "req/s")
	b.ReportMetric(p(0.50), "p50-ms")
	b.ReportMetric(p(0.99), "p99-ms")
	b.ReportMetric(float64(cpu.Microseconds())/float64(requests), "cpu-µs/req")
	if host > 0 {
		// Every core's busy time: this process, Postgres, the kernel (and anything else running).
		b.ReportMetric(float64(host.Microseconds())/float64(requests), "host-cpu-µs/req")
	}
	if pg > 0 {
		// This pool's backends (appends, the projections' reads and writes), counted from the
		// load's start to its end, when Postgres runs on this machine.
		b.ReportMetric(float64(pg.Microseconds())/float64(requests), "pg-cpu-µs/req")
	}
	// Buffer pages read or hit in this schema's tables and indexes (appends, reads and the
	// projections): unlike CPU time, it does not grow when other work loads the machine.
	b.ReportMetric(float64(blocks)/float64(requests), "pg-blocks/req")
	b.ReportMetric(catchUp.Seconds(), "catchup-s")
	b.Logf("%s: %d signed webhooks from %d connections in %s; projections caught up %s after the load stopped",
		kind, requests, conns, elapsed.Round(time.Millisecond), catchUp.Round(time.Millisecond))
}

// schemaBlocks is how many buffer pages the tables and indexes of the pool's schema have read or
// hit so far (pg_statio_user_tables, TOAST included).
func schemaBlocks(b *testing.B, pool *pgxpool.Pool) int64 {
	var n int64
	require.NoError(b, pool.QueryRow(context.Background(), `SELECT coalesce(sum(
    coalesce(heap_blks_read, 0) + coalesce(heap_blks_hit, 0) + coalesce(idx_blks_read, 0) + coalesce(idx_blks_hit, 0) +
    coalesce(toast_blks_read, 0) + coalesce(toast_blks_hit, 0) + coalesce(tidx_blks_read, 0) + coalesce(tidx_blks_hit, 0)), 0)::bigint
FROM pg_statio_user_tables WHERE schemaname = current_schema()`).Scan(&n))
	return n
}

// hostCPUTime is the machine's busy CPU time (all cores, /proc/stat), 0 where unavailable.
func hostCPUTime() time.Duration {
	raw, err := os.ReadFile("/proc/stat")
	if err != nil {
		return 0
	}
	line, _, _ := strings.Cut(string(raw), "\n")
	fields := strings.Fields(line)
	if len(fields) < 8 || fields[0] != "cpu" {
		return 0
	}
	var busy int64
	for i, f := range fields[1:] {
		if i == 3 || i == 4 { // idle, iowait
			continue
		}
		if i >= 7 { // steal, guest (already in user), guest_nice
			break
		}
		n, _ := strconv.ParseInt(f, 10, 64)
		busy += n
	}
	return time.Duration(busy) * time.Second / 100 // USER_HZ
}

// postgresCPU is the CPU time of each process named postgres on this machine, by pid (empty if
// none can be read).
func postgresCPU() map[int]time.Duration {
	out := map[int]time.Duration{}
	dirs, _ := os.ReadDir("/proc")
	for _, d := range dirs {
		pid, err := strconv.Atoi(d.Name())
		if err != nil {
			continue
		}
		raw, err := os.ReadFile("/proc/" + d.Name() + "/stat")
		if err != nil {
			continue
		}
		open, close := strings.IndexByte(string(raw), '('), strings.LastIndexByte(string(raw), ')')
		if open < 0 || close < open || string(raw[open+1:close]) != "postgres" {
			continue
		}
		fields := strings.Fields(string(raw[close+1:]))
		if len(fields) < 13 {
			continue
		}
		utime, _ := strconv.ParseInt(fields[11], 10, 64)
		stime, _ := strconv.ParseInt(fields[12], 10, 64)
		out[pid] = time.Duration(utime+stime) * time.Second / 100 // USER_HZ
	}
	return out
}

// cpuTime is this process's user+system CPU time.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
