package main

// The load test (`make load`; HERALD_LOAD_TEST=1, HERALD_LOAD_DURATION, default 5m, shortens it
// for a CI smoke run): one Herald process with every role and the simulator, driven at once by
// signed inbound webhooks, signed status callbacks, API reads and a running campaign (whose
// creates make the simulator post its own callbacks). It reports throughput and p50/p99 latency
// per kind, samples the queues — relay lag, projection lag, Redis stream lengths, due messages —
// every 5 s, checks none grows without bound (lag in the last third of the run stays within twice
// the middle third and drains after the load; no Redis stream passes its MaxLen cap; the due
// messages are the campaign's backlog, which ends), and ends with the history checker.

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"herald/commands/saga"
	"herald/events/transport"
)

// loadKinds are the operations the load test drives, each at its own rate (per second).
var loadKinds = []struct {
	name string
	rate int
}{{"inbound", 100}, {"status", 200}, {"api-read", 50}}

type latencies struct {
	mu     sync.Mutex
	byKind map[string][]time.Duration
	errors map[string]int
	missed map[string]int // ticks no worker was free for
}

func (l *latencies) add(kind string, d time.Duration, ok bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.byKind[kind] = append(l.byKind[kind], d)
	if !ok {
		l.errors[kind]++
	}
}

// queueSample is one sample of the queues.
type queueSample struct {
	at                       time.Duration
	relayLag, projectionLag  int64 // events between the head of the log and the checkpoint
	redisStreams, dueMessage int64
	longestStream            int64 // entries in the longest Redis stream (capped at MaxLen)
}

func TestLoad(t *testing.T) {
	if os.Getenv("HERALD_LOAD_TEST") == "" {
		t.Skip("the load test runs with `make load` (HERALD_LOAD_TEST=1)")
	}
	duration := 5 * time.Minute
	if v := os.Getenv("HERALD_LOAD_DURATION"); v != "" {
		d, err := time.ParseDuration(v)
		require.NoError(t, err, "HERALD_LOAD_DURATION")
		duration = d
	}
	s := newStack(t, nil)
	s.startHerald("herald", faultRoles, s.addr, nil)
	h := newHistory()
	wc := newWebhookClient(s, h)
	ctx := t.Context()

	// Subscribers for the campaign: enough for it to run the whole test at 20 messages/s.
	const campaignRate = 20
	n := min(int(duration.Seconds())*campaignRate, 6000)
	phones := make([]string, n)
	var wg sync.WaitGroup
	next := make(chan int)
	for range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range next {
				phones[i] = fmt.Sprintf("+51984%06d", i)
				require.NoError(t, retryUntilOK(ctx, func() int { return wc.inbound(ctx, newSID(), phones[i], "SUBSCRIBE deals") }))
			}
		}()
	}
	for i := range n {
		next <- i
	}
	close(next)
	wg.Wait()
	var tpl, cmp struct {
		ID string `json:"id"`
	}
	s.mustAPI(http.MethodPost, "/templates", map[string]any{"name": "load", "default_locale": "es",
		"variants": map[string]any{"es": map[string]any{"body": "Hola {first_name|amigo}, oferta de hoy."}}}, &tpl)
	s.mustAPI(http.MethodPost, "/campaigns", map[string]any{"name": "load", "topic": "deals", "template_id": tpl.ID,
		"rate_limit": map[string]any{"per_second": campaignRate}}, &cmp)
	eventually(t, 2*time.Minute, "the preview sees every subscriber", func() bool {
		var p struct {
			Recipients int `json:"recipients"`
		}
		s.mustAPI(http.MethodPost, "/campaigns/"+cmp.ID+"/preview", nil, &p)
		return p.Recipients == n
	})
	s.mustAPI(http.MethodPost, "/campaigns/"+cmp.ID+"/launch", nil, nil)
	for _, p := range phones {
		h.record(opMessage, saga.MessageID(cmp.ID+"/once", p), outcomeOK)
	}

	lat := &latencies{byKind: map[string][]time.Duration{}, errors: map[string]int{}, missed: map[string]int{}}
	start := time.Now()
	loadCtx, stop := context.WithTimeout(ctx, duration)
	defer stop()
	api := &http.Client{Timeout: 10 * time.Second}
	for _, k := range loadKinds {
		ticks := make(chan struct{})
		wg.Add(1)
		go func() { // the kind's clock: one tick per operation due, dropped when no worker is free
			defer wg.Done()
			defer close(ticks)
			tk := time.NewTicker(time.Second / time.Duration(k.rate))
			defer tk.Stop()
			for {
				select {
				case <-loadCtx.Done():
					return
				case <-tk.C:
					select {
					case ticks <- struct{}{}:
					default:
						lat.mu.Lock()
						lat.missed[k.name]++
						lat.mu.Unlock()
					}
				}
			}
		}()
		for w := range 8 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := 0; ; i++ {
					if _, ok := <-ticks; !ok {
						return
					}
					phone := phones[(w*7919+i)%n]
					began := time.Now()
					var status int
					switch k.name {
					case "inbound":
						status = wc.inbound(ctx, newSID(), phone, "hola "+strconv.Itoa(i))
					case "status":
						status = wc.status(ctx, newSID(), phone, "delivered")
					case "api-read":
						path := "/users/" + pathPhone(phone)
						if i%2 == 1 {
							path = "/campaigns/" + cmp.ID + "/stats"
						}
						req, _ := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+s.addr+"/v1"+path, nil)
						req.Header.Set("Authorization", "Bearer "+e2eAPIKey)
						if resp, err := api.Do(req); err == nil {
							resp.Body.Close()
							status = resp.StatusCode
						}
					}
					lat.add(k.name, time.Since(began), status >= 200 && status < 300)
				}
			}()
		}
	}

	// Sample the queues every 5 s while the load runs.
	var samples []queueSample
	sample := func() queueSample {
		q := queueSample{at: time.Since(start).Round(time.Second)}
		c, cancel := context.WithTimeout(ctx, 30*time.Second)
		defer cancel()
		pool := s.db.Pool
		// Events after a checkpoint, in the log's (transaction_id, global_position) order.
		const lag = `SELECT coalesce(max(n), 0) FROM checkpoints c CROSS JOIN LATERAL (SELECT count(*) AS n FROM events e
WHERE (e.transaction_id, e.global_position) > (c.last_tx, c.last_position)) x WHERE c.name LIKE $1`
		_ = pool.QueryRow(c, lag, "relay").Scan(&q.relayLag)
		_ = pool.QueryRow(c, lag, "projection:%").Scan(&q.projectionLag)
		_ = pool.QueryRow(c, `SELECT count(*) FROM messages WHERE due_at <= now()`).Scan(&q.dueMessage)
		iter := s.rds.Client.Scan(c, 0, s.rds.Transport.Prefix+"*", 1000).Iterator()
		for iter.Next(c) {
			if n, err := s.rds.Client.XLen(c, iter.Val()).Result(); err == nil {
				q.redisStreams += n
				q.longestStream = max(q.longestStream, n)
			}
		}
		return q
	}
	for tk := time.NewTicker(5 * time.Second); loadCtx.Err() == nil; {
		select {
		case <-loadCtx.Done():
		case <-tk.C:
			samples = append(samples, sample())
		}
	}
	wg.Wait()
	elapsed := time.Since(start)

	// Drain: after the load, every queue empties.
	var drained queueSample
	for deadline := time.Now().Add(2 * time.Minute); time.Now().Before(deadline); time.Sleep(time.Second) {
		if drained = sample(); drained.relayLag == 0 && drained.projectionLag == 0 {
			break
		}
	}
	h.fault("load stopped after %s", elapsed.Round(time.Second))

	// The summary.
	var b strings.Builder
	fmt.Fprintf(&b, "\nload for %s on %d CPUs (%d campaign recipients at %d/s)\n", elapsed.Round(time.Second), runtime.NumCPU(), n, campaignRate)
	fmt.Fprintf(&b, "%-10s %8s %8s %10s %10s %10s %8s %8s\n", "kind", "target/s", "ops", "ops/s", "p50", "p99", "errors", "missed")
	for _, k := range loadKinds {
		d := slices.Clone(lat.byKind[k.name])
		slices.Sort(d)
		fmt.Fprintf(&b, "%-10s %8d %8d %10.1f %10s %10s %8d %8d\n", k.name, k.rate, len(d), float64(len(d))/elapsed.Seconds(),
			pct(d, 0.50), pct(d, 0.99), lat.errors[k.name], lat.missed[k.name])
	}
	creates := s.creates()
	fmt.Fprintf(&b, "%-10s %8d %8d %10.1f\n", "creates", campaignRate, creates, float64(creates)/elapsed.Seconds())
	fmt.Fprintf(&b, "%-8s %12s %14s %14s %14s %12s\n", "at", "relay lag", "projection lag", "redis entries", "longest stream", "due msgs")
	for _, q := range append(samples, drained) {
		fmt.Fprintf(&b, "%-8s %12d %14d %14d %14d %12d\n", q.at, q.relayLag, q.projectionLag, q.redisStreams, q.longestStream, q.dueMessage)
	}
	t.Log(b.String())

	for _, k := range loadKinds {
		assert.Zero(t, lat.errors[k.name], "%s: every operation answered 2xx", k.name)
	}
	assert.Zero(t, drained.relayLag+drained.projectionLag, "the relay and the projections catch up within 2 min of the load")
	// Redis streams grow until MaxLen trims them (approximately: whole macro nodes).
	for _, q := range samples {
		assert.LessOrEqual(t, q.longestStream, int64(transport.DefaultMaxLen)*11/10, "a Redis stream past its cap at %s", q.at)
	}
	// No queue grows without bound: the last third of the run stays within twice the middle
	// third (plus a floor for noise).
	if third := len(samples) / 3; third > 0 {
		for _, q := range []struct {
			name string
			get  func(queueSample) int64
		}{
			{"relay lag", func(q queueSample) int64 { return q.relayLag }},
			{"projection lag", func(q queueSample) int64 { return q.projectionLag }},
		} {
			var mid, last int64
			for _, x := range samples[third : 2*third] {
				mid = max(mid, q.get(x))
			}
			for _, x := range samples[2*third:] {
				last = max(last, q.get(x))
			}
			assert.LessOrEqual(t, last, 2*mid+2000, "%s grows: at most %d in the middle third of the run, %d in the last", q.name, mid, last)
		}
	}
	// Every message the campaign owes ends; the checker proves nothing lost or doubled.
	h.check(t, "load", 5*time.Minute, s.observer(h))
}

func pct(sorted []time.Duration, p float64) string {
	if len(sorted) == 0 {
		return "-"
	}
	return sorted[min(len(sorted)-1, int(float64(len(sorted))*p))].Round(100 * time.Microsecond).String()
}
