package store

import (
	"context"
	"fmt"
	"strings"
	"testing"

	"github.com/google/uuid"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestStoredAndHeadsProbesEachID: the group's look-up of stored ids must probe the id index per
// id whatever the log's size. While the log was young, the planner joined a group's 64 ids to a
// sequential scan of the whole log (thousands of times in the inbound benchmark's first 100,000
// events, most of its Postgres CPU).
func TestStoredAndHeadsProbesEachID(t *testing.T) {
	t.Parallel()
	_, db := newGroupStore(t)
	ctx := context.Background()
	_, err := db.Pool.Exec(ctx, `INSERT INTO events (event_id, stream_id, stream_version, type, data)
SELECT gen_random_uuid(), 'plan-' || n, 1, 't', '{}' FROM generate_series(1, 6000) AS n`)
	require.NoError(t, err)
	_, err = db.Pool.Exec(ctx, `ANALYZE events`)
	require.NoError(t, err)

	ids := make([]string, 64)
	for i := range ids {
		ids[i] = uuid.NewString()
	}
	for _, mode := range []string{"force_custom_plan", "force_generic_plan"} {
		t.Run(mode, func(t *testing.T) {
			tx, err := db.Pool.Begin(ctx)
			require.NoError(t, err)
			defer func() { _ = tx.Rollback(ctx) }()
			_, err = tx.Exec(ctx, "SET LOCAL plan_cache_mode = "+mode)
			require.NoError(t, err)
			rows, err := tx.Query(ctx, "EXPLAIN "+sqlStoredAndHeads, ids, []string{"plan-1"})
			require.NoError(t, err)
			var plan []string
			for rows.Next() {
				var line string
				require.NoError(t, rows.Scan(&line))
				plan = append(plan, line)
			}
			require.NoError(t, rows.Err())
			text := strings.Join(plan, "\n")
			assert.NotContains(t, text, "Seq Scan on events", fmt.Sprintf("plan:\n%s", text))
		})
	}
}
