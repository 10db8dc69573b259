package projections

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"herald/events"
	"herald/events/store"
)

// TestEraserRemovesPersonalDataAndRebuildStillEqualsLive: users with messages, callbacks and
// topics; two are deleted, one writes again afterwards. Once the read models have applied the
// deletions, the Eraser leaves no trace of the deleted phones in the events before the
// deletions (payloads and stream ids), keeps every event id and position, leaves the later
// user alone, and a rebuild still equals the live read models.
func TestEraserRemovesPersonalDataAndRebuildStillEqualsLive(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	ctx := context.Background()
	at := time.Date(2026, 11, 26, 12, 0, 0, 0, time.UTC)
	appendTo := func(stream string, evs ...events.Event) {
		recs := make([]events.Record, len(evs))
		for i, e := range evs {
			recs[i] = record(t, stream, e)
		}
		_, err := h.store.Append(ctx, stream, store.AnyVersion, recs...)
		require.NoError(t, err)
	}
	receipt := func(sid, p string, status string, minute int) {
		appendTo(events.ReceiptStream(sid), events.MessageStatusReceived{MessageSID: sid, Status: status, Phone: p,
			ReceivedAt: at.Add(time.Duration(minute) * time.Minute), TimestampSource: events.TimestampFromServer,
			Raw: map[string][]string{"MessageSid": {sid}, "To": {"whatsapp:" + p}, "MessageStatus": {status}}})
	}
	for i := 0; i < 5; i++ {
		p := phone(i)
		appendTo(events.UserStream(p),
			events.UserCreated{Phone: p, Consent: events.ConsentOptIn, Source: "test", Attributes: map[string]any{"name": fmt.Sprintf("Person %d", i)}},
			events.UserSubscribed{Phone: p, Topic: "deals", Source: "api"},
			events.UserMessageReceived{Phone: p, MessageSID: fmt.Sprintf("SMin%d", i), Body: "hola", ProfileName: "Person",
				ReceivedAt: at, TimestampSource: events.TimestampFromServer, Raw: map[string][]string{"From": {"whatsapp:" + p}}})
		receipt(fmt.Sprintf("SMout%d", i), p, events.StatusSent, 1)
		receipt(fmt.Sprintf("SMout%d", i), p, events.StatusDelivered, 2)
	}
	var deletions []int64
	for _, i := range []int{1, 3} {
		p := phone(i)
		res, err := h.store.Append(ctx, events.UserStream(p), store.AnyVersion, record(t, events.UserStream(p), events.UserDeleted{Phone: p, Source: "api"}))
		require.NoError(t, err)
		deletions = append(deletions, res.Positions[0])
	}
	// A late callback for the erased user's message, and the number writing again: kept.
	receipt("SMout1", phone(1), events.StatusRead, 3)
	appendTo(events.UserStream(phone(3)), events.UserCreated{Phone: phone(3), Consent: events.ConsentOptOut, Source: "inbound"})

	var before int
	require.NoError(t, h.db.Pool.QueryRow(ctx, `SELECT count(*) FROM events`).Scan(&before))
	eraser, err := NewEraser(EraserConfig{}, h.db.Pool, quietLog())
	require.NoError(t, err)
	n, err := eraser.EraseDue(ctx)
	require.NoError(t, err)
	assert.Zero(t, n, "nothing is erased before the read models have applied the deletions")

	live := h.runner(All()...)
	require.NoError(t, live.CatchUp(ctx, ""))
	n, err = eraser.EraseDue(ctx)
	require.NoError(t, err)
	assert.Equal(t, 2, n)
	n, err = eraser.EraseDue(ctx)
	require.NoError(t, err)
	assert.Zero(t, n, "an erasure happens once")

	for k, i := range []int{1, 3} {
		var traces int
		require.NoError(t, h.db.Pool.QueryRow(ctx, `SELECT count(*) FROM events
WHERE global_position <= $2 AND (strpos(data::text, $1) > 0 OR strpos(stream_id, $1) > 0)`, phone(i), deletions[k]).Scan(&traces))
		assert.Zero(t, traces, "no event up to the deletion names %s", phone(i))
	}
	var after, erased, kept int
	require.NoError(t, h.db.Pool.QueryRow(ctx, `SELECT count(*), count(*) FILTER (WHERE type = 'event.erased'),
    count(*) FILTER (WHERE stream_id = $1)
FROM events`, events.UserStream(phone(3))).Scan(&after, &erased, &kept))
	assert.Equal(t, before, after, "every event keeps its place in the log")
	assert.Equal(t, 6, erased, "3 events of each deleted user")
	assert.Equal(t, 1, kept, "the user who wrote again keeps the new stream")
	var late int
	require.NoError(t, h.db.Pool.QueryRow(ctx, `SELECT count(*) FROM events WHERE data->>'phone' = $1`, phone(1)).Scan(&late))
	assert.Equal(t, 1, late, "the callback after the deletion is not rewritten (the read model keeps it too)")

	// Read models: the deleted users are gone, and a rebuild agrees row by row.
	var users int
	require.NoError(t, h.db.Pool.QueryRow(ctx, `SELECT count(*) FROM users`).Scan(&users))
	assert.Equal(t, 4, users)
	before2 := snapshotAll(t, h)
	for _, p := range All() {
		_, err := Rebuild(ctx, h.db.Pool, events.DefaultRegistry(), p, RebuildConfig{BatchSize: 500}, quietLog())
		require.NoError(t, err)
	}
	rebuilt := snapshotAll(t, h)
	for table := range before2 {
		assert.Equal(t, before2[table][0], rebuilt[table][0], "rows of %s", table)
	}

	// The log refuses every other change.
	_, err = h.db.Pool.Exec(ctx, `UPDATE events SET data = '{}' WHERE stream_id = $1`, events.UserStream(phone(0)))
	require.ErrorContains(t, err, "events are immutable")
	_, err = h.db.Pool.Exec(ctx, `DELETE FROM events WHERE stream_id = $1`, events.UserStream(phone(0)))
	require.ErrorContains(t, err, "events are immutable")
}
