package saga

import (
	"context"
	"fmt"
	"math"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"

	"herald/events"
)

// limiter holds the campaign's own limits and the sender's across every Herald process. Each
// limit is a virtual schedule in Redis (GCRA in its queueing form): a sender reserves the next
// free slot — one every interval, never two in the same interval — and sleeps until it. No slot
// is lost to a late wake-up, so the measured rate is the limit's, and reserving never lets two
// sends share a slot, so no window holds more than the rate. Each interval is stretched by
// periodMargin: requests reach Twilio with some jitter, and the slack keeps every 1-second
// window at the receiving end within the rate.
//
// A campaign's slot is reserved only if it is at most a horizon away (reserveCampaign): a
// message whose slot would be further is left for later instead of holding a worker until then.
type limiter struct {
	mu          sync.Mutex
	pausedUntil time.Time // the sender's pause as last read from Redis
	pauseRead   time.Time

	rdb       *redis.Client
	prefix    string
	senderMPS int
	// waited observes each wait for a slot, by limit (campaign, sender, sender_pause).
	waited func(limit string, d time.Duration)
}

// periodMargin stretches each interval (4%: sends go at ≥ 96% of the limit, and 40 ms of
// jitter between a slot and Twilio receiving the request cannot put R+1 requests in a second).
const periodMargin = 1.04

// slotLead is the least time between reserving a campaign slot and the slot, and how long
// before the slot the attempt is recorded: a send that followed its slot by the time the
// recording takes would crowd the next one.
const slotLead = 50 * time.Millisecond

// reserveScript reserves one slot on every schedule of KEYS at once — the first time, at
// least ARGV[n+1] µs from now, at which each is free — provided it is at most ARGV[n+2] µs away;
// ARGV[i] is the interval of KEYS[i] in µs. It returns {1, wait} when it reserved, {0, wait}
// (nothing reserved) when the slot is too far.
var reserveScript = redis.NewScript(`
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local n = #KEYS
local slot = now + tonumber(ARGV[n + 1])
for i = 1, n do
  slot = math.max(slot, tonumber(redis.call('GET', KEYS[i]) or '0'))
end
if slot - now > tonumber(ARGV[n + 2]) then
  return {0, slot - now}
end
for i = 1, n do
  local free = slot + tonumber(ARGV[i])
  redis.call('SET', KEYS[i], free, 'PX', math.ceil((free - now) / 1000) + 1000)
end
return {1, slot - now}
`)

func newLimiter(rdb *redis.Client, prefix string, senderMPS int) *limiter {
	return &limiter{rdb: rdb, prefix: prefix, senderMPS: senderMPS}
}

// campaignLimit is one of a campaign's rate limits: the suffix of its schedule's key and its
// interval, stretched by periodMargin.
type campaignLimit struct {
	suffix   string
	interval time.Duration
}

// campaignLimits are the limits a campaign's rate sets (none without limits).
func campaignLimits(rate events.RateLimit) []campaignLimit {
	var out []campaignLimit
	if rate.PerSecond > 0 {
		out = append(out, campaignLimit{"s", stretched(time.Second / time.Duration(rate.PerSecond))})
	}
	if rate.PerMinute > 0 {
		out = append(out, campaignLimit{"m", stretched(time.Minute / time.Duration(rate.PerMinute))})
	}
	return out
}

// pace is the interval between two sends of a campaign under its limits (the slower one's);
// 0 without limits.
func pace(rate events.RateLimit) time.Duration {
	var d time.Duration
	for _, lim := range campaignLimits(rate) {
		d = max(d, lim.interval)
	}
	return d
}

// reserveCampaign reserves the campaign's next slot under all its limits if that slot is at
// most horizon away, and says how far it is: reserved false means nothing was reserved, and
// the message should wait until the schedule has room (in about wait - horizon).
func (l *limiter) reserveCampaign(ctx context.Context, campaignID string, rate events.RateLimit, horizon time.Duration) (wait time.Duration, reserved bool, err error) {
	limits := campaignLimits(rate)
	if len(limits) == 0 {
		return 0, true, nil
	}
	keys := make([]string, len(limits))
	intervals := make([]time.Duration, len(limits))
	for i, lim := range limits {
		keys[i], intervals[i] = "campaign:"+campaignID+":"+lim.suffix, lim.interval
	}
	wait, reserved, err = l.reserve(ctx, keys, intervals, slotLead, horizon)
	if err != nil {
		return 0, false, fmt.Errorf("rate limit campaign %s: %w", campaignID, err)
	}
	if reserved && l.waited != nil {
		l.waited("campaign", wait)
	}
	return wait, reserved, nil
}

// reserve runs reserveScript on the schedules of keys (under the limiter's prefix), whose
// intervals are already stretched: the campaign's limits at once, or the sender's alone.
func (l *limiter) reserve(ctx context.Context, keys []string, intervals []time.Duration, lead, horizon time.Duration) (time.Duration, bool, error) {
	full := make([]string, len(keys))
	args := make([]any, 0, len(keys)+2)
	for i, k := range keys {
		full[i] = l.prefix + "rate:" + k
		args = append(args, intervals[i].Microseconds())
	}
	args = append(args, lead.Microseconds(), horizon.Microseconds())
	got, err := reserveScript.Run(ctx, l.rdb, full, args...).Int64Slice()
	if err == nil && len(got) != 2 {
		err = fmt.Errorf("unexpected reply %v", got)
	}
	if err != nil {
		return 0, false, err
	}
	return time.Duration(got[1]) * time.Microsecond, got[0] == 1, nil
}

func stretched(interval time.Duration) time.Duration {
	return time.Duration(float64(interval) * periodMargin)
}

// waitSender blocks until the sender's limit (and any pause after a 429) allows one more
// message.
func (l *limiter) waitSender(ctx context.Context, from string) error {
	if err := l.pausedSender(ctx, from); err != nil {
		return err
	}
	if l.senderMPS > 0 {
		return l.take(ctx, "sender", "sender:"+from, time.Second/time.Duration(l.senderMPS))
	}
	return nil
}

// sleepUntil blocks until t (a reserved slot) or ctx ends.
func sleepUntil(ctx context.Context, t time.Time) error {
	d := time.Until(t)
	if d <= 0 {
		return nil
	}
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-time.After(d):
		return nil
	}
}

// take reserves the next slot of one schedule, however far, and sleeps until it.
func (l *limiter) take(ctx context.Context, limit, key string, interval time.Duration) error {
	wait, _, err := l.reserve(ctx, []string{key}, []time.Duration{stretched(interval)}, 0, time.Duration(math.MaxInt64))
	if err != nil {
		return fmt.Errorf("rate limit %s: %w", key, err)
	}
	if l.waited != nil {
		l.waited(limit, max(wait, 0))
	}
	return sleepUntil(ctx, time.Now().Add(wait))
}

// slowDown makes every process hold the sender's sends for d (Twilio's 429 / Retry-After).
func (l *limiter) slowDown(ctx context.Context, from string, d time.Duration) {
	if d <= 0 {
		return
	}
	until := time.Now().Add(d)
	l.mu.Lock()
	l.pausedUntil, l.pauseRead = until, time.Now()
	l.mu.Unlock()
	_ = l.rdb.Set(ctx, l.prefix+"rate:pause:"+from, until.UnixMilli(), d).Err()
}

// pauseFresh is how old this process's view of a sender pause set by another may be.
const pauseFresh = 100 * time.Millisecond

func (l *limiter) pausedSender(ctx context.Context, from string) error {
	l.mu.Lock()
	until, readAt := l.pausedUntil, l.pauseRead
	l.mu.Unlock()
	if time.Since(readAt) > pauseFresh {
		ms, err := l.rdb.Get(ctx, l.prefix+"rate:pause:"+from).Int64()
		until = time.Time{}
		if err == nil {
			until = time.UnixMilli(ms)
		} // else no pause (redis.Nil), or Redis trouble the rate limit will report
		l.mu.Lock()
		l.pausedUntil, l.pauseRead = until, time.Now()
		l.mu.Unlock()
	}
	if d := time.Until(until); d > 0 && l.waited != nil {
		l.waited("sender_pause", d)
	}
	return sleepUntil(ctx, until)
}
