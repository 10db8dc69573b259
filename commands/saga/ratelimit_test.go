package saga_test

import (
	"fmt"
	"sort"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"herald/commands/saga"
	"herald/events"
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
