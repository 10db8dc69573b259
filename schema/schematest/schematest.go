// Package schematest gives each test its own migrated Postgres schema on the real server, so
// tests run in parallel without seeing each other's rows.
package schematest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net/url"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"

	"herald/schema"
)

// DefaultURL is the test database when TEST_DATABASE_URL is not set.
const DefaultURL = "postgres://postgres@127.0.0.1:5432/herald_test?sslmode=disable"

// URL returns the test database URL.
func URL() string {
	if u := os.Getenv("TEST_DATABASE_URL"); u != "" {
		return u
	}
	return DefaultURL
}

var ensureOnce sync.Once

// ensureDatabase creates the test database if it is missing.
func ensureDatabase(t testing.TB, dbURL string) {
	ensureOnce.Do(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if err := schema.EnsureDatabase(ctx, dbURL); err != nil {
			t.Fatalf("test database: %v", err)
		}
	})
}

// Schema is one test's isolated schema.
type Schema struct {
	Name string
	URL  string // the database URL with search_path set to Name
	Pool *pgxpool.Pool
}

// Options tune New.
type Options struct {
	// MaxConns caps the pool; 0 means 4, not pgxpool's max(4, CPUs), so a suite's tests in
	// parallel fit PostgreSQL's default 100 connections on any machine.
	MaxConns int32
}

// New creates a fresh schema, migrates it, and returns a pool whose connections use it. The
// schema is dropped when the test ends (unless HERALD_KEEP_TEST_SCHEMA is set).
func New(t testing.TB) *Schema { return NewWithOptions(t, Options{}) }

// NewWithOptions is New with a pool size.
func NewWithOptions(t testing.TB, opts Options) *Schema {
	t.Helper()
	base := URL()
	ensureDatabase(t, base)

	var b [6]byte
	_, err := rand.Read(b[:])
	require.NoError(t, err)
	name := "t_" + strings.ToLower(hex.EncodeToString(b[:]))

	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	admin, err := pgx.Connect(ctx, base)
	require.NoError(t, err, "connect to the test database %s (is PostgreSQL running?)", base)
	_, err = admin.Exec(ctx, "CREATE SCHEMA "+name)
	require.NoError(t, err)
	require.NoError(t, admin.Close(ctx))

	u, err := url.Parse(base)
	require.NoError(t, err)
	q := u.Query()
	q.Set("search_path", name)
	u.RawQuery = q.Encode()

	cfg, err := pgxpool.ParseConfig(u.String())
	require.NoError(t, err)
	cfg.MaxConns = 4
	if opts.MaxConns > 0 {
		cfg.MaxConns = opts.MaxConns
	}
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	require.NoError(t, err)
	_, err = schema.Migrate(ctx, pool)
	require.NoError(t, err)

	s := &Schema{Name: name, URL: u.String(), Pool: pool}
	t.Cleanup(func() {
		pool.Close()
		if os.Getenv("HERALD_KEEP_TEST_SCHEMA") != "" {
			t.Logf("kept schema %s", name)
			return
		}
		ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
		defer cancel()
		conn, err := pgx.Connect(ctx, base)
		if err != nil {
			t.Logf("drop schema %s: %v", name, err)
			return
		}
		defer conn.Close(ctx)
		if _, err := conn.Exec(ctx, fmt.Sprintf("DROP SCHEMA %s CASCADE", name)); err != nil {
			t.Logf("drop schema %s: %v", name, err)
		}
	})
	return s
}
