package saga

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/go-redis/redis_rate/v10"
	"github.com/redis/go-redis/v9"

	"herald/events"
)

// limiter holds the campaign's own limits and the sender's across every Herald process, with
// GCRA in Redis (go-redis/redis_rate). A burst of 1 spaces sends evenly: no 1-second window
// holds more than the rate.
type limiter struct {
	mu          sync.Mutex
	pausedUntil time.Time // the sender's pause as last read from Redis
	pauseRead   time.Time

	rdb       *redis.Client
	rl        *redis_rate.Limiter
	prefix    string
	senderMPS int
}

func newLimiter(rdb *redis.Client, prefix string, senderMPS int) *limiter {
	return &limiter{rdb: rdb, rl: redis_rate.NewLimiter(rdb), prefix: prefix, senderMPS: senderMPS}
}

// wait blocks until the campaign's limits and the sender's allow one more message.
func (l *limiter) wait(ctx context.Context, from, campaignID string, rate events.RateLimit) error {
	if campaignID != "" && rate.PerSecond > 0 {
		if err := l.take(ctx, "campaign:"+campaignID+":s", redis_rate.Limit{Rate: rate.PerSecond, Burst: 1, Period: time.Second}); err != nil {
			return err
		}
	}
	if campaignID != "" && rate.PerMinute > 0 {
		if err := l.take(ctx, "campaign:"+campaignID+":m", redis_rate.Limit{Rate: rate.PerMinute, Burst: 1, Period: time.Minute}); err != nil {
			return err
		}
	}
	if err := l.pausedSender(ctx, from); err != nil {
		return err
	}
	if l.senderMPS > 0 {
		return l.take(ctx, "sender:"+from, redis_rate.Limit{Rate: l.senderMPS, Burst: 1, Period: time.Second})
	}
	return nil
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
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(d):
		}
	}
	return nil
}

func (l *limiter) take(ctx context.Context, key string, limit redis_rate.Limit) error {
	for {
		res, err := l.rl.Allow(ctx, l.prefix+"rate:"+key, limit)
		if err != nil {
			return fmt.Errorf("rate limit %s: %w", key, err)
		}
		if res.Allowed > 0 {
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(res.RetryAfter):
		}
	}
}
