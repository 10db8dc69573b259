package schema_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"net/url"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"herald/schema"
	"herald/schema/schematest"
)

// TestEnsureDatabaseTakesAPoolURL: the DATABASE_URL that docs/deploy-gcp.md gives carries
// pool_max_conns; `herald migrate` sent it to the server as a setting, which the server refused
// ("unrecognized configuration parameter"), so the migration never ran.
func TestEnsureDatabaseTakesAPoolURL(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	var b [4]byte
	_, err := rand.Read(b[:])
	require.NoError(t, err)
	name := "herald_ensure_" + hex.EncodeToString(b[:])

	u, err := url.Parse(schematest.URL())
	require.NoError(t, err)
	u.Path = "/" + name
	q := u.Query()
	q.Set("pool_max_conns", "3")
	q.Set("pool_max_conn_idle_time", "1m")
	u.RawQuery = q.Encode()

	admin, err := pgx.Connect(ctx, schematest.URL())
	require.NoError(t, err)
	t.Cleanup(func() {
		_, _ = admin.Exec(context.Background(), "DROP DATABASE IF EXISTS "+name)
		_ = admin.Close(context.Background())
	})

	require.NoError(t, schema.EnsureDatabase(ctx, u.String()), "creates the database")
	require.NoError(t, schema.EnsureDatabase(ctx, u.String()), "and finds it the second time")
	var exists bool
	require.NoError(t, admin.QueryRow(ctx, `SELECT EXISTS (SELECT FROM pg_database WHERE datname = $1)`, name).Scan(&exists))
	assert.True(t, exists)
}
