package saga_test

import (
	"context"
	"fmt"
	"os"
	"sort"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/stretchr/testify/require"

	"herald/commands/saga"
	"herald/events"
	"herald/handlers/twilio/twiliosim"
)

func full() bool { return os.Getenv("HERALD_BENCH_FULL") == "1" }

// loadUsers appends n opted-in users subscribed to deals, who wrote an hour ago, through the
// bulk path, and waits for the read models.
func loadUsers(b *testing.B, w *world, n int) []string {
	ctx := context.Background()
	phones := make([]string, n)
	recent := time.Now().Add(-time.Hour)
	var recs []events.Record
	flush := func() {
		_, err := w.store.AppendBulk(ctx, recs)
		require.NoError(b, err)
		recs = recs[:0]
	}
	for i := range phones {
		p := fmt.Sprintf("+5198%07d", i)
		phones[i] = p
		stream := events.UserStream(p)
		for _, e := range []events.Event{
			events.UserCreated{Phone: p, Consent: events.ConsentOptIn, Source: "bench", Attributes: map[string]any{"first_name": fmt.Sprintf("U%d", i)}},
			events.UserSubscribed{Phone: p, Topic: "deals", Source: "bench"},
			events.UserMessageReceived{Phone: p, MessageSID: fmt.Sprintf("SMb%031d", i), Body: "hi", ReceivedAt: recent,
				TimestampSource: events.TimestampFromServer, Raw: map[string][]string{}},
		} {
			rec, err := events.NewRecord(uuid.New(), stream, e, events.Metadata{})
			require.NoError(b, err)
			recs = append(recs, rec)
		}
		if len(recs) >= 30_000 {
			flush()
		}
	}
	if len(recs) > 0 {
		flush()
	}
	w.eventually(10*time.Minute, func() bool {
		return w.count(`SELECT count(*) FROM subscriptions WHERE subscribed`) == n &&
			w.count(`SELECT count(*) FROM users WHERE last_inbound_at IS NOT NULL`) == n
	}, "users in the read models")
	return phones
}

// BenchmarkMaterialize: a campaign run over N subscribers (1,000,000 with HERALD_BENCH_FULL=1)
// queued — every message.queued appended and applied to the messages read model.
func BenchmarkMaterialize(b *testing.B) {
	n := 50_000
	if full() {
		n = 1_000_000
	}
	w := newWorldWith(b, twiliosim.Config{CallbackLatency: -1}, saga.Config{}, false)
	loadUsers(b, w, n)
	cmp := w.campaign("Hola {first_name}", events.RateLimit{}, nil)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		start := time.Now()
		run := fmt.Sprintf("bench-%d", i)
		got, err := w.saga.Materialize(context.Background(), cmp, run)
		require.NoError(b, err)
		require.Equal(b, n, got)
		appended := time.Since(start)
		w.eventually(10*time.Minute, func() bool {
			return w.count(`SELECT count(*) FROM messages WHERE run_id = $1`, run) == n
		}, "messages projected")
		total := time.Since(start)
		b.ReportMetric(float64(n)/total.Seconds(), "msgs/s")
		b.ReportMetric(total.Seconds(), "s_total")
		b.ReportMetric(appended.Seconds(), "s_appended")
	}
}

// BenchmarkSendPipeline: N messages through every decision to the simulator (no latency, no
// rate limit) and back: launch → every message accepted.
func BenchmarkSendPipeline(b *testing.B) {
	n := 3_000
	if full() {
		n = 20_000
	}
	w := newWorldWith(b, twiliosim.Config{CallbackLatency: -1, ReadRate: ptr(0.0)}, saga.Config{Workers: 64, Claim: 512}, false)
	loadUsers(b, w, n)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		cmp := w.campaign("Hola {first_name}, 20% hoy.", events.RateLimit{}, nil)
		start := time.Now()
		_, err := w.saga.Materialize(context.Background(), cmp, "once")
		require.NoError(b, err)
		w.eventually(time.Minute, func() bool {
			return w.count(`SELECT count(*) FROM messages WHERE campaign_id = $1 AND due_at IS NOT NULL`, cmp) == n
		}, "messages due")
		queued := time.Since(start)
		sendStart := time.Now()
		for {
			busy, err := w.saga.SendDue(context.Background())
			require.NoError(b, err)
			if !busy && w.count(`SELECT count(*) FROM messages WHERE campaign_id = $1 AND state <> 'accepted'`, cmp) == 0 {
				break
			}
			if !busy {
				time.Sleep(5 * time.Millisecond)
			}
		}
		sent := time.Since(sendStart)
		b.ReportMetric(float64(n)/sent.Seconds(), "msgs/s")
		b.ReportMetric(queued.Seconds(), "s_materialize")
		b.ReportMetric(sent.Seconds(), "s_send")
		require.Len(b, w.sim.Creates(""), n*(i+1))
	}
}

func ptr[T any](v T) *T { return &v }

// BenchmarkSenderLimit80: the per-sender limit at Twilio's default 80 messages/s, measured at
// the simulator: the rate over the run and the most requests in any 1-second window.
func BenchmarkSenderLimit80(b *testing.B) {
	n := 400
	if full() {
		n = 2_400
	}
	w := newWorldWith(b, twiliosim.Config{CallbackLatency: -1, ReadRate: ptr(0.0)}, saga.Config{Workers: 64, SenderMPS: 80}, false)
	loadUsers(b, w, n)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		cmp := w.campaign("Hola {first_name}", events.RateLimit{}, nil)
		_, err := w.saga.Materialize(context.Background(), cmp, "once")
		require.NoError(b, err)
		w.eventually(time.Minute, func() bool {
			return w.count(`SELECT count(*) FROM messages WHERE campaign_id = $1 AND due_at IS NOT NULL`, cmp) == n
		}, "messages due")
		for w.count(`SELECT count(*) FROM messages WHERE campaign_id = $1 AND state <> 'accepted'`, cmp) > 0 {
			busy, err := w.saga.SendDue(context.Background())
			require.NoError(b, err)
			if !busy {
				time.Sleep(5 * time.Millisecond)
			}
		}
		times := createTimes(w)
		sort.Slice(times, func(i, j int) bool { return times[i].Before(times[j]) })
		rate := float64(len(times)-1) / times[len(times)-1].Sub(times[0]).Seconds()
		b.ReportMetric(rate, "msgs/s")
		b.ReportMetric(float64(maxInWindow(times, time.Second)), "max_per_1s_window")
	}
}
