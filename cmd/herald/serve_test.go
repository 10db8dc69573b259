package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"herald/events"
	"herald/events/store"
	"herald/events/transport/transporttest"
	"herald/projections"
	"herald/schema/schematest"
)

func freeAddr(t *testing.T) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer ln.Close()
	return ln.Addr().String()
}

// TestServeRunsTheWholeFoundation starts `herald serve` as the binary would, appends events,
// sees them in the read model, and shuts down gracefully on cancel.
func TestServeRunsTheWholeFoundation(t *testing.T) {
	t.Parallel()
	db := schematest.New(t)
	rds := transporttest.New(t)
	addr := freeAddr(t)
	vars := map[string]string{
		"DATABASE_URL": db.URL, "REDIS_URL": fmt.Sprintf("redis://%s/%d", rds.Opts.Addr, rds.Opts.DB),
		"HERALD_ADDR": addr, "HERALD_REDIS_PREFIX": rds.Transport.Prefix, "HERALD_LOG_LEVEL": "warn",
	}

	var out bytes.Buffer
	require.NoError(t, run(context.Background(), []string{"migrate"}, env(vars), &out, io.Discard))
	assert.Contains(t, out.String(), "schema is up to date", "re-running migrate is a no-op")

	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- run(ctx, []string{"serve"}, env(vars), io.Discard, io.Discard) }()

	require.Eventually(t, func() bool {
		resp, err := http.Get("http://" + addr + "/readyz")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	}, 20*time.Second, 50*time.Millisecond)

	s, err := store.New(db.Pool, store.Config{})
	require.NoError(t, err)
	defer s.Close()
	p := "+14155550123"
	r, err := events.NewRecord(uuid.New(), events.UserStream(p), events.UserCreated{Phone: p, Consent: events.ConsentOptIn, Source: "test"}, events.Metadata{})
	require.NoError(t, err)
	res, err := s.Append(ctx, r.StreamID, 0, r)
	require.NoError(t, err)
	wait, stop := context.WithTimeout(ctx, 10*time.Second)
	defer stop()
	require.NoError(t, projections.WaitFor(wait, db.Pool, "users", res.Checkpoint))
	var consent string
	require.NoError(t, db.Pool.QueryRow(ctx, `SELECT consent FROM users WHERE phone = $1`, p).Scan(&consent))
	assert.Equal(t, events.ConsentOptIn, consent)

	cancel()
	select {
	case err := <-done:
		assert.NoError(t, err, "graceful shutdown")
	case <-time.After(20 * time.Second):
		t.Fatal("serve did not stop")
	}
}
