package projections

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"herald/events"
)

// snapshot returns every row of a table as JSON text, in primary-key order, plus its index
// names: the things a rebuild must reproduce exactly.
func snapshot(t *testing.T, h *harness, table string) (rows []string, indexes []string) {
	ctx := context.Background()
	r, err := h.db.Pool.Query(ctx, `SELECT t::text FROM `+pgx.Identifier{table}.Sanitize()+` t ORDER BY 1`)
	require.NoError(t, err)
	rows, err = pgx.CollectRows(r, pgx.RowTo[string])
	require.NoError(t, err)
	r, err = h.db.Pool.Query(ctx, `SELECT indexname || ' ' || regexp_replace(indexdef, '^.* USING ', '')
FROM pg_indexes WHERE schemaname = current_schema() AND tablename = $1 ORDER BY 1`, table)
	require.NoError(t, err)
	indexes, err = pgx.CollectRows(r, pgx.RowTo[string])
	require.NoError(t, err)
	return rows, indexes
}

func snapshotAll(t *testing.T, h *harness) map[string][2][]string {
	out := map[string][2][]string{}
	for _, p := range All() {
		for _, table := range p.Tables() {
			rows, idx := snapshot(t, h, table)
			out[table] = [2][]string{rows, idx}
		}
	}
	return out
}

func rebuildAll(t *testing.T, h *harness) {
	for _, p := range All() {
		res, err := Rebuild(context.Background(), h.db.Pool, events.DefaultRegistry(), p, RebuildConfig{BatchSize: 500}, quietLog())
		require.NoError(t, err)
		assert.Positive(t, res.Events, p.Name())
	}
}

func TestRebuildEqualsLive(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	total := mixedWorkload(t, h.store, 300, 1)
	require.Greater(t, total, 1000)

	live := h.runner(All()...)
	require.NoError(t, live.CatchUp(context.Background(), ""))
	before := snapshotAll(t, h)
	require.NotEmpty(t, before["users"][0])
	require.NotEmpty(t, before["subscriptions"][0])

	rebuildAll(t, h)
	after := snapshotAll(t, h)
	for table := range before {
		assert.Equal(t, before[table][0], after[table][0], "rows of %s", table)
		assert.Equal(t, before[table][1], after[table][1], "indexes of %s", table)
	}

	// The swapped-in tables keep working on the live path.
	mixedWorkloadFrom(t, h, 300, 20)
	require.NoError(t, live.CatchUp(context.Background(), ""))
	var users int
	require.NoError(t, h.db.Pool.QueryRow(context.Background(), `SELECT count(*) FROM users`).Scan(&users))
	assert.Equal(t, usersAfterMixedWorkload(300)+20, users)
}

func TestRebuildWhileLiveRunnerAndWritersAreBusy(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	mixedWorkload(t, h.store, 200, 2)
	h.startRelay()
	h.start(h.runner(All()...))

	var wg sync.WaitGroup
	wg.Add(1)
	go func() { defer wg.Done(); mixedWorkloadFrom(t, h, 200, 300) }()
	rebuildAll(t, h) // concurrently with the writers and the live runner
	wg.Wait()
	for _, p := range All() {
		h.waitApplied(p.Name(), 30*time.Second)
	}
	live := snapshotAll(t, h)

	rebuildAll(t, h) // a quiet rebuild is the reference
	reference := snapshotAll(t, h)
	for table := range live {
		assert.Equal(t, reference[table][0], live[table][0], "rows of %s", table)
		assert.Equal(t, reference[table][1], live[table][1], "indexes of %s", table)
	}
	var users int
	require.NoError(t, h.db.Pool.QueryRow(context.Background(), `SELECT count(*) FROM users`).Scan(&users))
	assert.Equal(t, usersAfterMixedWorkload(200)+300, users)
}

// mixedWorkloadFrom creates n more users after the first `from` and gives each a few events.
func mixedWorkloadFrom(t *testing.T, h *harness, from, n int) {
	ctx := context.Background()
	for i := from; i < from+n; i++ {
		p := phone(i)
		stream := events.UserStream(p)
		_, err := h.store.Append(ctx, stream, 0,
			record(t, stream, events.UserCreated{Phone: p, Consent: events.ConsentOptOut, Source: "test", Attributes: map[string]any{"n": i}}),
			record(t, stream, events.UserSubscribed{Phone: p, Topic: "deals", Source: "inbound"}),
			record(t, stream, events.UserConsentChanged{Phone: p, Consent: events.ConsentOptIn, Source: "inbound", Reason: "START"}),
			record(t, stream, events.UserAttributesChanged{Phone: p, Mode: events.AttributesMerge, Source: "api",
				Attributes: map[string]any{"n": nil, "vip": true}}),
		)
		require.NoError(t, err)
	}
}

// TestRebuildClearsTheParkedEventsItApplied: after a fix, a rebuild replays the events the
// projection had parked. Those it now applies are no longer parked once it swaps; those it
// parks again stay, and other projections' parked events are not touched.
func TestRebuildClearsTheParkedEventsItApplied(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	ctx := context.Background()
	c := newCounter(t, h.db.Pool, "fixme")
	h.appendUsers(0, 8, 0)
	r, err := h.db.Pool.Query(ctx, `SELECT event_id FROM events ORDER BY global_position`)
	require.NoError(t, err)
	ids, err := pgx.CollectRows(r, pgx.RowTo[uuid.UUID])
	require.NoError(t, err)
	require.Len(t, ids, 8)
	fixed, stillBad := ids[2], ids[5]
	c.failOn = map[uuid.UUID]bool{fixed: true, stillBad: true}
	c.poison = true
	require.NoError(t, h.runner(c).CatchUp(ctx, ""))
	other := uuid.New()
	_, err = h.db.Pool.Exec(ctx, `INSERT INTO parked_events (projection, event_id, global_position, type, reason, attempts)
VALUES ('another', $1, 1, 'user.created', 'its own trouble', 3)`, other)
	require.NoError(t, err)
	parked := func() map[string][]uuid.UUID {
		rows, err := h.db.Pool.Query(ctx, `SELECT projection, event_id FROM parked_events ORDER BY global_position`)
		require.NoError(t, err)
		out := map[string][]uuid.UUID{}
		for rows.Next() {
			var name string
			var id uuid.UUID
			require.NoError(t, rows.Scan(&name, &id))
			out[name] = append(out[name], id)
		}
		require.NoError(t, rows.Err())
		return out
	}
	require.Equal(t, map[string][]uuid.UUID{"fixme": {fixed, stillBad}, "another": {other}}, parked())

	delete(c.failOn, fixed) // the release with the fix
	_, err = Rebuild(ctx, h.db.Pool, events.DefaultRegistry(), c, RebuildConfig{BatchSize: 3}, quietLog())
	require.NoError(t, err)
	assert.Equal(t, map[string][]uuid.UUID{"fixme": {stillBad}, "another": {other}}, parked())
	distinct, doubled := counts(t, h.db.Pool, c)
	assert.Equal(t, 7, distinct, "the fixed event is applied")
	assert.Zero(t, doubled)
}
