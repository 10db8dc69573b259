package store_test

import (
	"context"
	"encoding/json"
	"fmt"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"

	"herald/events"
	"herald/events/store"
	"herald/schema/schematest"
)

// testEvent is a test-only payload: who wrote it and its sequence number for that writer.
type testEvent struct {
	Writer int    `json:"writer"`
	Seq    int    `json:"seq"`
	Note   string `json:"note,omitempty"`
}

const testEventType = "test.appended"

func (testEvent) EventType() string  { return testEventType }
func (testEvent) SchemaVersion() int { return 1 }

// rec builds a record of stream with a fresh random id. It is safe in any goroutine.
func rec(stream string, writer, seq int) events.Record {
	r, err := events.NewRecord(uuid.New(), stream, testEvent{Writer: writer, Seq: seq}, events.Metadata{Actor: "test"})
	if err != nil {
		panic(err) // a testEvent always encodes
	}
	return r
}

func decodeTest(t testing.TB, e events.Envelope) testEvent {
	t.Helper()
	var te testEvent
	require.NoError(t, json.Unmarshal(e.Data, &te), "event %s", e.EventID)
	return te
}

type env struct {
	db    *schematest.Schema
	store *store.Store
}

// newEnv gives a test its own schema, a pool of maxConns connections and a store.
func newEnv(t testing.TB, maxConns int32, cfg store.Config) env {
	t.Helper()
	store.SchemaMu.Lock()
	db := schematest.NewWithOptions(t, schematest.Options{MaxConns: maxConns})
	store.SchemaMu.Unlock()
	s, err := store.New(db.Pool, cfg)
	require.NoError(t, err)
	t.Cleanup(s.Close) // runs before the schema's cleanup closes the pool
	return env{db: db, store: s}
}

// readStream returns a stream's whole content.
func readStream(t testing.TB, q store.Querier, stream string) []events.Envelope {
	t.Helper()
	evs, err := store.ReadStream(context.Background(), q, stream, 0)
	require.NoError(t, err)
	return evs
}

// requireVersions1toN fails unless evs (in stream order) have versions exactly 1..len(evs) and
// distinct event ids.
func requireVersions1toN(t testing.TB, evs []events.Envelope) {
	t.Helper()
	seen := make(map[uuid.UUID]bool, len(evs))
	for i, e := range evs {
		require.Equal(t, i+1, e.StreamVersion, "stream %s: gap or repeat at index %d", e.StreamID, i)
		require.False(t, seen[e.EventID], "event %s stored twice", e.EventID)
		seen[e.EventID] = true
	}
}

// readAllVisible reads gap-safely from cp until the reader is caught up (one pass, no waiting).
func readAllVisible(t testing.TB, q store.Querier, cp store.Checkpoint, limit int, types []string) ([]events.Envelope, store.Checkpoint) {
	t.Helper()
	var out []events.Envelope
	for {
		page, err := store.ReadAfter(context.Background(), q, cp, limit, types)
		require.NoError(t, err)
		out = append(out, page.Events...)
		require.False(t, page.Next.Less(cp), "checkpoint moved backwards")
		cp = page.Next
		if page.CaughtUp {
			return out, cp
		}
	}
}

// waitTimeout bounds how long a test waits for the read horizon: it is cluster-wide, so
// transactions of other tests (or other developers) on the same server can hold it back.
const waitTimeout = 30 * time.Second

// readUntil reads gap-safely from cp, accumulating events, until done says the events read so far
// are enough. Between passes it waits briefly: the horizon moves when transactions anywhere in the
// cluster end, which the test cannot observe directly.
func readUntil(t testing.TB, q store.Querier, cp store.Checkpoint, limit int, types []string,
	done func([]events.Envelope, store.Checkpoint) bool) ([]events.Envelope, store.Checkpoint) {
	t.Helper()
	deadline := time.Now().Add(waitTimeout)
	var all []events.Envelope
	for {
		evs, next := readAllVisible(t, q, cp, limit, types)
		all = append(all, evs...)
		cp = next
		if done(all, cp) {
			return all, cp
		}
		if time.Now().After(deadline) {
			require.FailNow(t, "reader did not get what it waited for", "read %d events, checkpoint %+v; a transaction elsewhere in the cluster may be holding the horizon back", len(all), cp)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

// rawInsert inserts one event with plain SQL in tx, the way another writer (or a manual fix)
// would, and returns where it went.
func rawInsert(t testing.TB, tx pgx.Tx, id uuid.UUID, typ, stream string, version int, payload string) store.Checkpoint {
	t.Helper()
	var cp store.Checkpoint
	err := tx.QueryRow(context.Background(), `INSERT INTO events (event_id, stream_id, stream_version, type, data)
VALUES ($1, $2, $3, $4, $5::jsonb) RETURNING transaction_id, global_position`,
		id, stream, version, typ, payload).Scan(&cp.TxID, &cp.Position)
	require.NoError(t, err)
	return cp
}

func payload(writer, seq int) string { return fmt.Sprintf(`{"writer":%d,"seq":%d}`, writer, seq) }

func envelopeIDs(evs []events.Envelope) []uuid.UUID {
	out := make([]uuid.UUID, len(evs))
	for i, e := range evs {
		out[i] = e.EventID
	}
	return out
}

func recordIDs(recs []events.Record) []uuid.UUID {
	out := make([]uuid.UUID, len(recs))
	for i, r := range recs {
		out[i] = r.EventID
	}
	return out
}

// requireLogOrder fails unless evs are in strictly increasing (transaction_id, global_position)
// order and, per stream, in strictly increasing version order.
func requireLogOrder(t testing.TB, evs []events.Envelope) {
	t.Helper()
	last := map[string]int{}
	for i, e := range evs {
		if i > 0 {
			require.True(t, store.After(evs[i-1]).Less(store.After(e)), "log order broken at %d", i)
		}
		require.Greater(t, e.StreamVersion, last[e.StreamID],
			"stream %s: version %d read after version %d (per-stream order broken in the log)", e.StreamID, e.StreamVersion, last[e.StreamID])
		last[e.StreamID] = e.StreamVersion
	}
}

// requireLogReadsStreamsInOrder reads the whole log (n events) gap-safely and fails unless it
// delivers every stream in version order.
func requireLogReadsStreamsInOrder(t testing.TB, e env, n int) []events.Envelope {
	t.Helper()
	all, _ := readUntil(t, e.db.Pool, store.Checkpoint{}, 500, nil, func(evs []events.Envelope, _ store.Checkpoint) bool {
		return len(evs) >= n
	})
	require.Len(t, all, n)
	requireLogOrder(t, all)
	return all
}
