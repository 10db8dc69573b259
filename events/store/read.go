package store

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"herald/events"
)

// Querier is what reads need: a pool, a connection or a transaction.
type Querier interface {
	Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error)
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
}

// Checkpoint is a position in the log in gap-safe coordinates: everything at or before
// (TxID, Position) in (transaction_id, global_position) order has been seen.
type Checkpoint struct {
	TxID     uint64 `json:"tx"`
	Position int64  `json:"pos"`
}

// Less orders checkpoints like the log does.
func (c Checkpoint) Less(o Checkpoint) bool {
	return c.TxID < o.TxID || (c.TxID == o.TxID && c.Position < o.Position)
}

// After returns the checkpoint just past env.
func After(env events.Envelope) Checkpoint {
	return Checkpoint{TxID: env.TransactionID, Position: env.GlobalPosition}
}

// Page is one gap-safe read: the events, and the checkpoint to read from next. A read scans at
// most limit rows of the log, in order, and returns those of the wanted types; Next is the last
// row scanned, so a reader filtering by type does not rescan events it skipped. A filtering read
// starts its scan at the first event of its types (found through events_type_position_idx), so
// a stretch of other types is passed for one index probe per type rather than scanned. When
// fewer than limit rows were left to scan, Next is moved up to the visibility horizon.
type Page struct {
	Events []events.Envelope
	Next   Checkpoint
	// CaughtUp is true when nothing visible was left after this page. A page that is not caught
	// up may hold fewer than limit events, or none, when it scanned events of other types.
	CaughtUp bool
}

const envelopeColumns = `global_position, transaction_id, event_id, stream_id, stream_version, type, schema_version, data, metadata, recorded_at`

// sqlHorizon is the oldest transaction that may still commit. Every transaction below it has
// committed or rolled back, so rows below it can be read without ever skipping a later commit.
const sqlHorizon = `SELECT pg_snapshot_xmin(pg_current_snapshot())`

// sqlScan is the gap-safe tail of the log (ARCHITECTURE.md, "Reading the log"): at most $4
// rows after the checkpoint, in log order, below the horizon. It is a range scan of the primary
// key (transaction_id, global_position) that stops after $4 rows, whatever the statistics say:
// the limit is a sub-select, which the planner cannot see through, so it plans for a fraction of
// the range and the ordered index scan wins. With a visible limit and no statistics yet (a
// fresh or bulk-loaded events table) it estimated the range small, read all of it with a bitmap
// scan and sorted it, on disk: the whole backlog for every page.
const sqlScan = `SELECT ` + envelopeColumns + ` FROM events
WHERE (transaction_id, global_position) > ($1::xid8, $2::bigint)
  AND transaction_id < $3::xid8
ORDER BY transaction_id, global_position
LIMIT (SELECT $4::bigint)`

// sqlReadAfter reads a page without a type filter: every row scanned.
const sqlReadAfter = sqlScan

// sqlReadAfterTypes scans the same bounded range and returns the rows of the wanted types, plus
// the last row scanned when the scan was full (n = $4), so the reader can move past what it
// skipped. The type test is applied to the rows scanned, never inside the scan: a type
// condition there made the planner pick a sequential scan and a sort of the whole backlog.
const sqlReadAfterTypes = `SELECT ` + envelopeColumns + `, wanted, n FROM (
    SELECT scan.*, type = ANY($5::text[]) AS wanted,
           row_number() OVER (ORDER BY transaction_id, global_position) AS n
    FROM (` + sqlScan + `) scan
) page
WHERE wanted OR n = $4::bigint
ORDER BY transaction_id, global_position`

// sqlFirstOfTypes reads the horizon and, below it, the first event of the types $3 after the
// checkpoint: one index-only probe of events_type_position_idx per type. A filtering reader
// starts its scan there — nothing it wants lies between — and is caught up when there is none.
const sqlFirstOfTypes = `SELECT h.horizon, f.transaction_id, f.global_position
FROM (` + sqlHorizon + ` AS horizon) h
LEFT JOIN LATERAL (
    SELECT e.transaction_id, e.global_position FROM unnest($3::text[]) AS t(type)
    CROSS JOIN LATERAL (SELECT transaction_id, global_position FROM events
        WHERE type = t.type AND (transaction_id, global_position) > ($1::xid8, $2::bigint) AND transaction_id < h.horizon
        ORDER BY transaction_id, global_position LIMIT 1) e
    ORDER BY e.transaction_id, e.global_position LIMIT 1) f ON true`

// ReadAfter reads the events after cp that can no longer be overtaken by a commit, scanning at
// most limit rows of the log and keeping those of the given types (all, without types). It
// never returns an event of a transaction that is still open, and never skips one that commits
// later. The work is bounded by limit whatever the types: a page of a filtering reader may be
// short, or empty, without being caught up.
func ReadAfter(ctx context.Context, q Querier, cp Checkpoint, limit int, types []string) (Page, error) {
	var horizon uint64
	if len(types) == 0 {
		if err := q.QueryRow(ctx, sqlHorizon).Scan(&horizon); err != nil {
			return Page{}, fmt.Errorf("read horizon: %w", err)
		}
	} else {
		var (
			tx  *uint64
			pos *int64
		)
		if err := q.QueryRow(ctx, sqlFirstOfTypes, cp.TxID, cp.Position, types).Scan(&horizon, &tx, &pos); err != nil {
			return Page{}, fmt.Errorf("read horizon and first event after %d/%d: %w", cp.TxID, cp.Position, err)
		}
		if tx == nil {
			return caughtUp(Page{Next: cp}, horizon), nil
		}
		// Nothing of these types lies between cp and the first one: start just before it.
		if first := (Checkpoint{TxID: *tx, Position: *pos - 1}); cp.Less(first) {
			cp = first
		}
	}
	page := Page{Next: cp}
	var scanned int
	if len(types) == 0 {
		rows, err := q.Query(ctx, sqlReadAfter, cp.TxID, cp.Position, horizon, limit)
		if err != nil {
			return Page{}, fmt.Errorf("read after %d/%d: %w", cp.TxID, cp.Position, err)
		}
		page.Events, err = scanEnvelopes(rows)
		if err != nil {
			return Page{}, fmt.Errorf("read after %d/%d: %w", cp.TxID, cp.Position, err)
		}
		scanned = len(page.Events)
		if scanned > 0 {
			page.Next = After(page.Events[scanned-1])
		}
	} else {
		rows, err := q.Query(ctx, sqlReadAfterTypes, cp.TxID, cp.Position, horizon, limit, types)
		if err != nil {
			return Page{}, fmt.Errorf("read after %d/%d: %w", cp.TxID, cp.Position, err)
		}
		var last *events.Envelope
		page.Events, last, err = scanFiltered(rows, limit)
		if err != nil {
			return Page{}, fmt.Errorf("read after %d/%d: %w", cp.TxID, cp.Position, err)
		}
		if last != nil { // the scan was full: continue after its last row
			scanned = limit
			page.Next = After(*last)
		}
	}
	if scanned < limit {
		page = caughtUp(page, horizon)
	}
	return page, nil
}

// caughtUp marks page as the last one below horizon: every transaction below it is finished
// and was fully scanned, so the next read starts at the horizon.
func caughtUp(page Page, horizon uint64) Page {
	page.CaughtUp = true
	if h := (Checkpoint{TxID: horizon - 1, Position: math.MaxInt64}); horizon > 0 && page.Next.Less(h) {
		page.Next = h
	}
	return page
}

// scanFiltered reads sqlReadAfterTypes: the wanted events, and the last row scanned if the scan
// was full (row number limit), whether wanted or not.
func scanFiltered(rows pgx.Rows, limit int) (evs []events.Envelope, last *events.Envelope, err error) {
	defer rows.Close()
	for rows.Next() {
		var (
			e      events.Envelope
			wanted bool
			n      int64
		)
		if err := scanEnvelope(rows, &e, &wanted, &n); err != nil {
			return nil, nil, err
		}
		if wanted {
			evs = append(evs, e)
		}
		if n == int64(limit) {
			last = &e
		}
	}
	return evs, last, rows.Err()
}

func scanEnvelopes(rows pgx.Rows) ([]events.Envelope, error) {
	defer rows.Close()
	var out []events.Envelope
	for rows.Next() {
		var e events.Envelope
		if err := scanEnvelope(rows, &e); err != nil {
			return nil, err
		}
		out = append(out, e)
	}
	return out, rows.Err()
}

// scanEnvelope scans envelopeColumns, then extra.
func scanEnvelope(rows pgx.Rows, e *events.Envelope, extra ...any) error {
	var (
		data     []byte
		metadata []byte
		version  int16
	)
	if err := rows.Scan(append([]any{&e.GlobalPosition, &e.TransactionID, &e.EventID, &e.StreamID, &e.StreamVersion,
		&e.Type, &version, &data, &metadata, &e.RecordedAt}, extra...)...); err != nil {
		return err
	}
	e.SchemaVersion = int(version)
	e.Data = json.RawMessage(data)
	if len(metadata) > 0 {
		// Metadata is best effort: a malformed one must not make the event unreadable.
		_ = json.Unmarshal(metadata, &e.Metadata)
	}
	return nil
}

const sqlReadStream = `SELECT ` + envelopeColumns + ` FROM events
WHERE stream_id = $1 AND stream_version > $2 ORDER BY stream_version`

// ReadStream returns the events of one stream after version fromVersion (0 = from the start).
func ReadStream(ctx context.Context, q Querier, streamID string, fromVersion int) ([]events.Envelope, error) {
	rows, err := q.Query(ctx, sqlReadStream, streamID, fromVersion)
	if err != nil {
		return nil, fmt.Errorf("read stream %s: %w", streamID, err)
	}
	evs, err := scanEnvelopes(rows)
	if err != nil {
		return nil, fmt.Errorf("read stream %s: %w", streamID, err)
	}
	return evs, nil
}

// Head returns the checkpoint of the newest event readers can see now.
func Head(ctx context.Context, q Querier) (Checkpoint, error) {
	var cp Checkpoint
	err := q.QueryRow(ctx, `SELECT transaction_id, global_position FROM events
WHERE transaction_id < pg_snapshot_xmin(pg_current_snapshot())
ORDER BY transaction_id DESC, global_position DESC LIMIT 1`).Scan(&cp.TxID, &cp.Position)
	if err == pgx.ErrNoRows {
		return Checkpoint{}, nil
	}
	if err != nil {
		return Checkpoint{}, fmt.Errorf("read head: %w", err)
	}
	return cp, nil
}

// Last returns the checkpoint of the newest committed event, whether or not readers can see it
// yet (an older transaction may still be open). Waiting until a consumer passes it means
// waiting until the consumer has everything committed so far.
func Last(ctx context.Context, q Querier) (Checkpoint, error) {
	var cp Checkpoint
	err := q.QueryRow(ctx, `SELECT transaction_id, global_position FROM events
ORDER BY transaction_id DESC, global_position DESC LIMIT 1`).Scan(&cp.TxID, &cp.Position)
	if err == pgx.ErrNoRows {
		return Checkpoint{}, nil
	}
	if err != nil {
		return Checkpoint{}, fmt.Errorf("read last event: %w", err)
	}
	return cp, nil
}

// StreamVersion returns the version of the stream's last event (0 for an empty stream).
func StreamVersion(ctx context.Context, q Querier, streamID string) (int, error) {
	var v int
	if err := q.QueryRow(ctx, `SELECT coalesce(max(stream_version), 0) FROM events WHERE stream_id = $1`, streamID).Scan(&v); err != nil {
		return 0, fmt.Errorf("version of %s: %w", streamID, err)
	}
	return v, nil
}

// ReadStreamTypes returns the events of one stream that have one of the given types, in
// stream order: a decision that needs only some facts of a long stream reads only those.
func ReadStreamTypes(ctx context.Context, q Querier, streamID string, types []string) ([]events.Envelope, error) {
	rows, err := q.Query(ctx, `SELECT `+envelopeColumns+` FROM events
WHERE stream_id = $1 AND type = ANY($2::text[]) ORDER BY stream_version`, streamID, types)
	if err != nil {
		return nil, fmt.Errorf("read stream %s: %w", streamID, err)
	}
	evs, err := scanEnvelopes(rows)
	if err != nil {
		return nil, fmt.Errorf("read stream %s: %w", streamID, err)
	}
	return evs, nil
}

// Exists reports whether an event id is stored.
func Exists(ctx context.Context, q Querier, eventID uuid.UUID) (bool, error) {
	var ok bool
	if err := q.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM events WHERE event_id = $1)`, eventID).Scan(&ok); err != nil {
		return false, fmt.Errorf("look up event %s: %w", eventID, err)
	}
	return ok, nil
}

// StreamSnapshot is one consistent look at a stream, for a decision: its version, the events of
// the types the decision needs (in stream order, all at or below Version), and whether a given
// event id is already stored (the command's idempotency key).
type StreamSnapshot struct {
	Version int
	Events  []events.Envelope
	Stored  bool
}

// sqlStreamSnapshots reads a StreamSnapshot per (stream, id) pair in one statement, hence one
// round trip and one snapshot: a stream's version and events cannot disagree. A pair whose stream
// has no event of the wanted types gives one row with the event columns NULL. The lateral reads
// each stream through its own index, fenced by OFFSET 0, and the types are filtered in the join:
// pulled up into a join it was planned as a hash join over a sequential scan of the whole log,
// and with the type inside it as a BitmapAnd that read every entry of the wanted types in
// events_type_position_idx for each stream. OFFSET 0 also keeps the EXISTS a probe of the event
// id index: turned into a hashed "= ANY", a batch of 100 ids hashed every id in the log.
const sqlStreamSnapshots = `SELECT k.ord, h.version, h.stored, e.global_position, e.transaction_id, e.event_id,
       e.stream_version, e.type, e.schema_version, e.data, e.metadata, e.recorded_at
FROM unnest($1::text[], $2::uuid[]) WITH ORDINALITY AS k(stream_id, event_id, ord)
CROSS JOIN LATERAL (SELECT coalesce((SELECT max(stream_version) FROM events WHERE stream_id = k.stream_id), 0) AS version,
                           EXISTS (SELECT 1 FROM events WHERE event_id = k.event_id OFFSET 0) AS stored) h
LEFT JOIN LATERAL (SELECT * FROM events WHERE stream_id = k.stream_id OFFSET 0) e ON e.type = ANY($3::text[])
ORDER BY k.ord, e.stream_version`

// ReadStreamSnapshot reads the version of a stream, its events of the given types and whether
// eventID (uuid.Nil: none) is stored, in one round trip.
func ReadStreamSnapshot(ctx context.Context, q Querier, streamID string, types []string, eventID uuid.UUID) (StreamSnapshot, error) {
	snaps, err := ReadStreamSnapshots(ctx, q, []string{streamID}, []uuid.UUID{eventID}, types)
	if err != nil {
		return StreamSnapshot{}, err
	}
	return snaps[0], nil
}

// ReadStreamSnapshots is ReadStreamSnapshot for many (stream, event id) pairs at once, in one
// statement: snapshot i is of streamIDs[i] and eventIDs[i].
func ReadStreamSnapshots(ctx context.Context, q Querier, streamIDs []string, eventIDs []uuid.UUID, types []string) ([]StreamSnapshot, error) {
	if len(streamIDs) != len(eventIDs) {
		return nil, fmt.Errorf("read stream snapshots: %d streams, %d event ids", len(streamIDs), len(eventIDs))
	}
	rows, err := q.Query(ctx, sqlStreamSnapshots, streamIDs, eventIDs, types)
	if err != nil {
		return nil, fmt.Errorf("read stream snapshots: %w", err)
	}
	defer rows.Close()
	snaps := make([]StreamSnapshot, len(streamIDs))
	for rows.Next() {
		var (
			ord      int64
			version  int
			stored   bool
			pos      *int64
			txid     *uint64
			id       *uuid.UUID
			sv       *int
			typ      *string
			schema   *int16
			data     []byte
			metadata []byte
			recorded *time.Time
		)
		if err := rows.Scan(&ord, &version, &stored, &pos, &txid, &id, &sv, &typ, &schema, &data, &metadata, &recorded); err != nil {
			return nil, fmt.Errorf("read stream snapshots: %w", err)
		}
		if ord < 1 || int(ord) > len(snaps) {
			return nil, fmt.Errorf("read stream snapshots: row for pair %d of %d", ord, len(snaps))
		}
		snap := &snaps[ord-1]
		snap.Version, snap.Stored = version, stored
		if pos == nil {
			continue // no event of the wanted types
		}
		e := events.Envelope{GlobalPosition: *pos, TransactionID: *txid, EventID: *id, StreamID: streamIDs[ord-1],
			StreamVersion: *sv, Type: *typ, SchemaVersion: int(*schema), Data: json.RawMessage(data), RecordedAt: *recorded}
		if len(metadata) > 0 {
			_ = json.Unmarshal(metadata, &e.Metadata) // best effort, as in scanEnvelope
		}
		snap.Events = append(snap.Events, e)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read stream snapshots: %w", err)
	}
	return snaps, nil
}
