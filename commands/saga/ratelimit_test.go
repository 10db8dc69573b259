package saga_test

import (
	"context"
	"fmt"
	"sort"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"herald/commands"
	"herald/commands/saga"
	"herald/events"
	"herald/events/store"
	"herald/handlers/twilio/twiliosim"
)

// maxInWindow is the most creates the simulator received within any window of length d.
func maxInWindow(times []time.Time, d time.Duration) int {
	sort.Slice(times, func(i, j int) bool { return times[i].Before(times[j]) })
	most, from := 0, 0
	for to := range times {
		for times[to].Sub(times[from]) >= d {
			from++
		}
		most = max(most, to-from+1)
	}
	return most
}

func createTimes(w *world) []time.Time {
	var out []time.Time
	for _, r := range w.sim.Creates("") {
		if r.Status == 201 {
			out = append(out, r.Time)
		}
	}
	return out
}

// TestCampaignRateLimitHolds: a campaign limited to 10 messages/s sends at that rate, measured
// where it matters (at the simulator): never more than 10 in any second, and at ≥ 95% of it.
func TestCampaignRateLimitHolds(t *testing.T) {
	t.Parallel()
	const rate, n = 10, 40
	w := newWorld(t, twiliosim.Config{CallbackLatency: -1}, saga.Config{Workers: 16})
	recent := time.Now().Add(-time.Hour)
	for i := 0; i < n; i++ {
		w.user(fmt.Sprintf("+5198766%04d", i), map[string]any{"first_name": "X"}, events.ConsentOptIn, recent, "deals")
	}
	cmp := w.campaign("Hola {first_name}", events.RateLimit{PerSecond: rate}, nil)
	w.eventually(60*time.Second, func() bool {
		return w.count(`SELECT count(*) FROM messages WHERE campaign_id = $1 AND state = 'accepted'`, cmp) == n
	}, "every message accepted")
	times := createTimes(w)
	assert.Len(t, times, n)
	assert.LessOrEqual(t, maxInWindow(times, time.Second), rate, "no 1-second window above the limit")
	sort.Slice(times, func(i, j int) bool { return times[i].Before(times[j]) })
	measured := float64(n-1) / times[n-1].Sub(times[0]).Seconds()
	assert.GreaterOrEqual(t, measured, 0.95*rate, "measured %.2f/s", measured)
	assert.LessOrEqual(t, measured, rate*1.05, "measured %.2f/s", measured)
}

// TestQuietHoursDeferThenSend: a recipient inside the quiet window gets a deferral with its
// inputs, and nothing is sent.
func TestQuietHoursDefer(t *testing.T) {
	t.Parallel()
	w := newWorld(t, twiliosim.Config{CallbackLatency: -1}, saga.Config{})
	now := time.Now().UTC()
	// A window that contains now in UTC, whatever the time of day.
	start, end := now.Add(-time.Hour).Format("15:04"), now.Add(time.Hour).Format("15:04")
	w.user("+51987667777", map[string]any{"first_name": "X", "timezone": "UTC"}, events.ConsentOptIn, now.Add(-time.Minute), "deals")
	_, err := w.users.Save(w.ctx, saveTZ("+51987667777", "UTC"))
	assert.NoError(t, err)
	cmp := w.campaign("Hola {first_name}", events.RateLimit{}, &events.QuietHours{Start: start, End: end, TimezoneFallback: "UTC"})
	w.eventually(20*time.Second, func() bool {
		state, _, _ := w.messageState(cmp, "+51987667777")
		return state == "deferred"
	}, "the message is deferred")
	_, reason, detail := w.messageState(cmp, "+51987667777")
	assert.Equal(t, events.ReasonQuietHours, reason)
	assert.Contains(t, detail, "UTC (user timezone), window "+start+"–"+end)
	assert.Empty(t, w.sim.Creates(""))
}

// TestLimiterFailureRetriesUnsent: when Redis cannot clear a rate slot, nothing was sent, so
// the attempt is retried soon as definitely unsent (retry_scheduled), never left as an outcome
// to reconcile; once Redis answers again, every message goes out once.
func TestLimiterFailureRetriesUnsent(t *testing.T) {
	t.Parallel()
	const n = 5
	w := newWorld(t, twiliosim.Config{CallbackLatency: -1}, saga.Config{SenderMPS: 80})
	// A sender schedule key of the wrong type makes the reservation script fail, as a Redis
	// outage would, without disturbing the other Redis users of the test.
	senderKey := w.redisPrefix + "rate:sender:" + twiliosim.DefaultSender
	require.NoError(t, w.rdb.RPush(w.ctx, senderKey, "not a schedule").Err())
	recent := time.Now().Add(-time.Hour)
	for i := 0; i < n; i++ {
		w.user(fmt.Sprintf("+5198767%04d", i), map[string]any{"first_name": "X"}, events.ConsentOptIn, recent, "deals")
	}
	cmp := w.campaign("Hola {first_name}", events.RateLimit{}, nil)
	w.eventually(30*time.Second, func() bool {
		return w.count(`SELECT count(*) FROM events WHERE type = $1 AND data->>'reason' LIKE 'rate limiter unavailable%'`,
			events.TypeMessageRetryScheduled) >= n
	}, "every attempt retried as unsent while the limiter fails")
	require.NoError(t, w.rdb.Del(w.ctx, senderKey).Err())
	w.eventually(30*time.Second, func() bool {
		return w.count(`SELECT count(*) FROM messages WHERE campaign_id = $1 AND state = 'accepted'`, cmp) == n
	}, "every message accepted once the limiter answers")
	assert.Zero(t, w.count(`SELECT count(*) FROM events WHERE type = $1`, events.TypeMessageOutcomeUnknown), "no attempt left to reconciliation")
	assert.Len(t, createTimes(w), n, "each message created once")
}

// TestRateLimitedRunIsPaced: a rate-limited run's messages fall due one pace apart (the slower
// limit's interval, stretched like the limiter's) and a second ahead of their place, in
// the order they are queued, so a claim finds about as many due as the limit lets go; a
// recipient who is opted out is due at once (skipped then, taking no slot). A run without a
// limit is due at once.
func TestRateLimitedRunIsPaced(t *testing.T) {
	t.Parallel()
	w := newWorldWith(t, twiliosim.Config{CallbackLatency: -1}, saga.Config{}, false)
	recent := time.Now().Add(-time.Hour)
	for i := 0; i < 4; i++ {
		w.user(fmt.Sprintf("+5198768%04d", i), map[string]any{"first_name": "X"}, events.ConsentOptIn, recent, "deals")
	}
	w.user("+51987689999", map[string]any{"first_name": "X"}, events.ConsentOptOut, recent, "deals")
	for _, tt := range []struct {
		rate events.RateLimit
		pace time.Duration
	}{
		{events.RateLimit{}, 0},
		{events.RateLimit{PerSecond: 2}, 520 * time.Millisecond},
		{events.RateLimit{PerSecond: 50, PerMinute: 30}, 2080 * time.Millisecond},
	} {
		cmp := w.campaign("Hola {first_name}", tt.rate, nil)
		start := time.Now()
		n, err := w.saga.Materialize(w.ctx, cmp, "r1")
		require.NoError(t, err)
		require.Equal(t, 5, n)
		rows, err := w.db.Pool.Query(w.ctx, `SELECT data->>'phone', (data->>'due_at')::timestamptz FROM events
WHERE type = $1 AND data->>'campaign_id' = $2 ORDER BY data->>'phone'`, events.TypeMessageQueued, cmp)
		require.NoError(t, err)
		var due []time.Duration
		for rows.Next() {
			var phone string
			var at time.Time
			require.NoError(t, rows.Scan(&phone, &at))
			if phone == "+51987689999" {
				assert.WithinDuration(t, start, at, time.Second, "the opted-out recipient is due at once")
				continue
			}
			due = append(due, at.Sub(start))
		}
		require.NoError(t, rows.Err())
		require.Len(t, due, 4)
		for i := 1; i < len(due); i++ {
			want := max(0, time.Duration(i)*tt.pace-time.Second)
			assert.Equal(t, want, due[i]-due[0], "%+v: message %d", tt.rate, i)
		}
	}
}

// TestSlowCampaignHoldsNoClaim: an operator pauses a running campaign, lowers its limit to one
// message a minute and resumes it, with 20 messages due. One is sent; the others are left due,
// untouched (no attempt, no event), instead of holding the claim — and with it every reply and
// alert behind it — for 19 minutes. A reply queued next goes out at the next claim.
func TestSlowCampaignHoldsNoClaim(t *testing.T) {
	t.Parallel()
	const n = 20
	w := newWorldWith(t, twiliosim.Config{CallbackLatency: -1}, saga.Config{Workers: 4}, false)
	recent := time.Now().Add(-time.Hour)
	for i := 0; i < n; i++ {
		w.user(fmt.Sprintf("+5198769%04d", i), map[string]any{"first_name": "X"}, events.ConsentOptIn, recent, "deals")
	}
	cmp := w.campaign("Hola {first_name}", events.RateLimit{}, nil)
	got, err := w.saga.Materialize(w.ctx, cmp, "r1")
	require.NoError(t, err)
	require.Equal(t, n, got)
	w.eventually(10*time.Second, func() bool {
		return w.count(`SELECT count(*) FROM messages WHERE campaign_id = $1 AND due_at <= now()`, cmp) == n
	}, "every message due")

	var tpl string
	require.NoError(t, w.db.Pool.QueryRow(w.ctx, `SELECT template_id FROM campaigns WHERE id = $1`, cmp).Scan(&tpl))
	_, err = w.catalog.ChangeCampaignStatus(w.ctx, cmp, events.CampaignPaused, "slow down", store.AnyVersion, events.Metadata{})
	require.NoError(t, err)
	_, err = w.catalog.SaveCampaign(w.ctx, events.CampaignSaved{ID: cmp, Name: "c", Topic: "deals", TemplateID: tpl,
		Schedule: events.Schedule{Kind: events.ScheduleNow}, RateLimit: events.RateLimit{PerMinute: 1},
		Retry: events.RetryPolicy{MaxAttempts: 5, InitialBackoff: "1s", MaxBackoff: "2s"}}, false, store.AnyVersion, events.Metadata{})
	require.NoError(t, err)
	_, err = w.catalog.ChangeCampaignStatus(w.ctx, cmp, events.CampaignRunning, "resume", store.AnyVersion, events.Metadata{})
	require.NoError(t, err)
	w.eventually(10*time.Second, func() bool {
		return w.count(`SELECT count(*) FROM campaigns WHERE id = $1 AND status = 'running' AND (rate_limit->>'per_minute')::int = 1`, cmp) == 1
	}, "the campaign resumed at one a minute")

	// Bounded: before this fix, the claim waited out every message's slot, one a minute.
	sendDue := func() time.Duration {
		ctx, cancel := context.WithTimeout(w.ctx, 30*time.Second)
		defer cancel()
		start := time.Now()
		_, err := w.saga.SendDue(ctx)
		require.NoError(t, err)
		w.saga.Wait()
		return time.Since(start)
	}
	assert.Less(t, sendDue(), 5*time.Second, "the claim does not wait for slots a minute away")
	assert.Len(t, createTimes(w), 1, "one message in the campaign's first minute")
	assert.Equal(t, 1, w.count(`SELECT count(*) FROM events WHERE type = $1`, events.TypeMessageSendAttempted))
	w.eventually(10*time.Second, func() bool {
		return w.count(`SELECT count(*) FROM messages WHERE campaign_id = $1 AND state = 'accepted'`, cmp) == 1
	}, "the one sent is accepted")
	assert.Equal(t, n-1, w.count(`SELECT count(*) FROM messages WHERE campaign_id = $1 AND state = 'queued'`, cmp),
		"the others are untouched")

	reply := uuid.NewString()
	_, err = commands.NewConversations(w.store).Reply(w.ctx, commands.Reply{MessageID: reply, Phone: "+51987690000", Body: "Gracias",
		Facts: commands.ReplyFacts{Now: time.Now(), UserExists: true, Consent: events.ConsentOptIn, LastInboundAt: &recent}})
	require.NoError(t, err)
	w.eventually(10*time.Second, func() bool {
		return w.count(`SELECT count(*) FROM messages WHERE id = $1`, reply) == 1
	}, "the reply in the read model")
	assert.Less(t, sendDue(), 5*time.Second)
	assert.Equal(t, 1, w.createdFor(reply), "the reply went out")
	assert.Len(t, createTimes(w), 2, "and nothing more of the campaign")
}
