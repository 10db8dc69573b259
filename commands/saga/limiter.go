package saga

import (
	"context"
	"fmt"
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
type limiter struct {
	mu          sync.Mutex
	pausedUntil time.Time // the sender's pause as last read from Redis
	pauseRead   time.Time

	rdb       *redis.Client
	prefix    string
	senderMPS int
	// waited observes each wait for a slot, by limit (campaign_second, campaign_minute, sender).
	waited func(limit string, d time.Duration)
}

// periodMargin stretches each interval (4%: sends go at ≥ 96% of the limit, and 40 ms of
// jitter between a slot and Twilio receiving the request cannot put R+1 requests in a second).
const periodMargin = 1.04

// reserveScript reserves the next slot of a schedule: KEYS[1] holds the time (µs) from which
// the next slot is free; ARGV[1] is the interval in µs. It returns how long to wait (µs).
var reserveScript = redis.NewScript(`
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local free = tonumber(redis.call('GET', KEYS[1]) or '0')
local interval = tonumber(ARGV[1])
local slot = math.max(free, now)
redis.call('SET', KEYS[1], slot + interval, 'PX', math.ceil((slot + interval - now) / 1000) + 1000)
return slot - now
`)

func newLimiter(rdb *redis.Client, prefix string, senderMPS int) *limiter {
	return &limiter{rdb: rdb, prefix: prefix, senderMPS: senderMPS}
}

// wait blocks until the campaign's limits and the sender's allow one more message.
func (l *limiter) wait(ctx context.Context, from, campaignID string, rate events.RateLimit) error {
	if campaignID != "" && rate.PerSecond > 0 {
		if err := l.take(ctx, "campaign_second", "campaign:"+campaignID+":s", time.Second/time.Duration(rate.PerSecond)); err != nil {
			return err
		}
	}
	if campaignID != "" && rate.PerMinute > 0 {
		if err := l.take(ctx, "campaign_minute", "campaign:"+campaignID+":m", time.Minute/time.Duration(rate.PerMinute)); err != nil {
			return err
		}
	}
	if err := l.pausedSender(ctx, from); err != nil {
		return err
	}
	if l.senderMPS > 0 {
		return l.take(ctx, "sender", "sender:"+from, time.Second/time.Duration(l.senderMPS))
	}
	return nil
}

func (l *limiter) take(ctx context.Context, limit, key string, interval time.Duration) error {
	interval = time.Duration(float64(interval) * periodMargin)
	wait, err := reserveScript.Run(ctx, l.rdb, []string{l.prefix + "rate:" + key}, interval.Microseconds()).Int64()
	if err != nil {
		return fmt.Errorf("rate limit %s: %w", key, err)
	}
	if l.waited != nil {
		l.waited(limit, time.Duration(max(wait, 0))*time.Microsecond)
	}
	if wait <= 0 {
		return nil
	}
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-time.After(time.Duration(wait) * time.Microsecond):
		return nil
	}
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
	if d := time.Until(until); d > 0 {
		if l.waited != nil {
			l.waited("sender_pause", d)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(d):
		}
	}
	return nil
}
