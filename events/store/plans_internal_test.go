package store

import (
	"context"
	"fmt"
	"strings"
	"testing"

	"github.com/google/uuid"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"herald/events"
)

// TestGroupStatementsProbeTheLog: the group's look-up of stored ids and heads, and the insert's
// check of expected versions, must probe the log's indexes per row whatever the log's size.
// While the log was young, the planner joined a group's 64 ids to a sequential scan of the whole
// log (thousands of times in the inbound benchmark's first 100,000 events, most of its Postgres
// CPU), and hashed the whole log for the insert's version check.
func TestGroupStatementsProbeTheLog(t *testing.T) {
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
	var insert insertArgs
	for i := range 64 {
		stream := fmt.Sprintf("plan-%d", i+1)
		insert.add(&appendRequest{streamID: stream, expected: 1, recs: []events.Record{groupRec(stream, `{}`)}}, 1)
	}
	statements := []struct {
		name string
		sql  string
		args []any
	}{
		{"stored and heads", sqlStoredAndHeads, []any{ids, []string{"plan-1"}}},
		{"insert", sqlInsert, []any{insert.ids, insert.streams, insert.versions, insert.types, insert.schemaVersions,
			insert.data, insert.metadata, insert.expected}},
	}
	for _, st := range statements {
		for _, mode := range []string{"force_custom_plan", "force_generic_plan"} {
			t.Run(st.name+"/"+mode, func(t *testing.T) {
				tx, err := db.Pool.Begin(ctx)
				require.NoError(t, err)
				defer func() { _ = tx.Rollback(ctx) }()
				_, err = tx.Exec(ctx, "SET LOCAL plan_cache_mode = "+mode)
				require.NoError(t, err)
				rows, err := tx.Query(ctx, "EXPLAIN "+st.sql, st.args...)
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
}
