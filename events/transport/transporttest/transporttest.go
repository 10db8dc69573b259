// Package transporttest gives each test its own key prefix on the real Redis, so tests run in
// parallel, and removes the test's keys when it ends.
package transporttest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"os"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/require"

	"herald/events/transport"
)

// DefaultURL is the test Redis when TEST_REDIS_URL is not set.
const DefaultURL = "redis://127.0.0.1:6379/15"

// Redis is one test's slice of Redis.
type Redis struct {
	Opts      *redis.Options
	Client    *redis.Client
	Transport transport.Config
}

// New returns a client and a transport config whose keys all start with a fresh prefix.
// MaxIdleTime and ClaimInterval are short, so redeliveries happen within a test's time.
func New(t testing.TB) *Redis {
	t.Helper()
	u := os.Getenv("TEST_REDIS_URL")
	if u == "" {
		u = DefaultURL
	}
	opts, err := redis.ParseURL(u)
	require.NoError(t, err)
	client := redis.NewClient(opts)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	require.NoError(t, client.Ping(ctx).Err(), "Redis at %s (is redis-server running?)", opts.Addr)

	var b [6]byte
	_, err = rand.Read(b[:])
	require.NoError(t, err)
	cfg := transport.Config{
		Prefix:        "test:" + hex.EncodeToString(b[:]) + ":",
		MaxIdleTime:   2 * time.Second,
		ClaimInterval: 500 * time.Millisecond,
	}.WithDefaults()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		DeletePrefix(ctx, client, cfg.Prefix)
		client.Close()
	})
	return &Redis{Opts: opts, Client: client, Transport: cfg}
}

// DeletePrefix removes every key starting with prefix — the test's own "FLUSHALL", which
// loses streams, consumer groups and the epoch exactly as a Redis restart without persistence
// does, without touching other tests' keys.
func DeletePrefix(ctx context.Context, client *redis.Client, prefix string) {
	iter := client.Scan(ctx, 0, prefix+"*", 1000).Iterator()
	var keys []string
	for iter.Next(ctx) {
		keys = append(keys, iter.Val())
	}
	if len(keys) > 0 {
		client.Del(ctx, keys...)
	}
}
