package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"net/url"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"herald/schema/schematest"
)

// TestConnectPostgresWaitsOutAFullServer: a server that answers "too many connections" (here
// for a role whose limit is 0, raised 1.5 s later) is asked again until it has room, and the
// connections are named for pg_stat_activity. In CI a full server made `herald serve` exit at
// once.
func TestConnectPostgresWaitsOutAFullServer(t *testing.T) {
	t.Parallel()
	db := schematest.New(t)
	ctx := context.Background()
	var b [4]byte
	_, err := rand.Read(b[:])
	require.NoError(t, err)
	role := "herald_full_" + hex.EncodeToString(b[:])
	_, err = db.Pool.Exec(ctx, "CREATE ROLE "+role+" LOGIN CONNECTION LIMIT 0")
	require.NoError(t, err)
	t.Cleanup(func() { _, _ = db.Pool.Exec(context.Background(), "DROP ROLE IF EXISTS "+role) })
	u, err := url.Parse(db.URL)
	require.NoError(t, err)
	u.User = url.User(role)

	go func() {
		time.Sleep(1500 * time.Millisecond)
		_, _ = db.Pool.Exec(ctx, "ALTER ROLE "+role+" CONNECTION LIMIT 4")
	}()
	start := time.Now()
	pool, err := connectPostgres(ctx, u.String(), "herald test")
	require.NoError(t, err, "the server made room within startupWait")
	defer pool.Close()
	assert.GreaterOrEqual(t, time.Since(start), time.Second, "it waited for the room")
	var app string
	require.NoError(t, pool.QueryRow(ctx, "SHOW application_name").Scan(&app))
	assert.Equal(t, "herald test", app)
}

func TestConnectPostgresNamesItsConnections(t *testing.T) {
	t.Parallel()
	db := schematest.New(t)
	ctx := context.Background()
	u, err := url.Parse(db.URL)
	require.NoError(t, err)
	q := u.Query()
	q.Set("application_name", "from-the-url")
	u.RawQuery = q.Encode()
	pool, err := connectPostgres(ctx, u.String(), "herald api")
	require.NoError(t, err)
	defer pool.Close()
	var app string
	require.NoError(t, pool.QueryRow(ctx, "SHOW application_name").Scan(&app))
	assert.Equal(t, "from-the-url", app, "the URL's name wins")
}

func TestConnectPostgresGivesUpAtOnceOnAWrongAddress(t *testing.T) {
	t.Parallel()
	start := time.Now()
	_, err := connectPostgres(context.Background(), "postgres://postgres@127.0.0.1:1/herald?connect_timeout=2", "herald test")
	require.Error(t, err)
	assert.Contains(t, err.Error(), "DATABASE_URL: cannot reach PostgreSQL at 127.0.0.1:1")
	assert.Less(t, time.Since(start), 10*time.Second, "a refused connection is not waited out")
}

func TestPassesOnItsOwn(t *testing.T) {
	tests := []struct {
		name string
		err  error
		want bool
	}{
		{"too many clients", &pgconn.PgError{Code: "53300"}, true},
		{"out of memory", &pgconn.PgError{Code: "53200"}, true},
		{"starting up", &pgconn.PgError{Code: "57P03"}, true},
		{"no such database", &pgconn.PgError{Code: "3D000"}, false},
		{"bad password", &pgconn.PgError{Code: "28P01"}, false},
		{"admin shutdown", &pgconn.PgError{Code: "57P01"}, false},
		{"not a server answer", context.DeadlineExceeded, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			assert.Equal(t, tc.want, passesOnItsOwn(tc.err))
		})
	}
}
