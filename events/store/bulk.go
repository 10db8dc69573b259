package store

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"herald/events"
)

// BulkResult counts what AppendBulk did.
type BulkResult struct {
	Appended   int
	Duplicates int // records whose event id was already stored unchanged
	// Checkpoint is the log position of the last appended record.
	Checkpoint Checkpoint
}

// A chunk is first written with one COPY straight into events, the versions numbered after the
// stream heads read just before (sqlBulkHeads) in the same transaction. That is the common case —
// an import of new records — and as fast as COPY gets. If anything conflicts (an id already
// stored, an id repeated in the input, a concurrent writer that took a version) COPY fails, the
// transaction rolls back and the chunk goes the careful way: COPY into a session temp table (no
// WAL, no indexes), then one INSERT … SELECT … ON CONFLICT DO NOTHING that leaves stored ids out
// and numbers the rest after the heads.
//
// The heads are read even when every stream is expected new: numbering from 1 and counting on
// the (stream_id, stream_version) index to refuse an existing stream's version 1 would be wrong
// for a stream whose first versions the Eraser moved to an erased-… stream — it has no version 1
// and may have later ones.
//
// In both ways the write into events is the transaction's first write, after the heads were
// read: the transaction gets its xid only then, above that of every writer whose events it
// numbers after. Otherwise a writer committing in between with a higher xid would precede, in the
// log's (transaction_id, global_position) order, events appended after its own, and the gap-safe
// reader would deliver that stream out of order. So the staging table is filled in a transaction
// of its own, before the inserting one.
const sqlStaging = `CREATE TEMP TABLE IF NOT EXISTS events_staging (
    ord bigint, event_id uuid, stream_id text, type text, schema_version smallint, data jsonb, metadata jsonb
)`

const sqlStagingEmpty = `TRUNCATE events_staging`

var stagingColumns = []string{"ord", "event_id", "stream_id", "type", "schema_version", "data", "metadata"}

var eventColumns = []string{"event_id", "stream_id", "stream_version", "type", "schema_version", "data", "metadata"}

// sqlBulkHeads reads the head of each of $1's streams that exists, with one probe of the
// (stream_id, stream_version) index per stream whatever the statistics say. The form
// "stream_id = ANY($1) GROUP BY stream_id" is planned from an estimate of how many rows thousands
// of ids match; past a million events it became a parallel sequential scan of the whole table —
// 0.3–0.7 s per 10,000-record chunk, growing with the log — which is what made bulk imports slow
// down as they grew.
const sqlBulkHeads = `SELECT s.id, h.v FROM unnest($1::text[]) AS s(id)
CROSS JOIN LATERAL (SELECT e.stream_version AS v FROM events e WHERE e.stream_id = s.id
    ORDER BY e.stream_version DESC LIMIT 1) h`

// sqlBulkInsert numbers each staged record after its stream's current head, in staging order,
// and inserts them all, stream by stream (the order every writer inserts in, see sqlInsert).
// Stream heads are looked up once per distinct stream through the (stream_id, stream_version)
// index. When skipExisting is true, records whose event id is already stored are left out
// first, so a re-run does not leave version gaps.
const sqlBulkInsert = `WITH fresh AS (
    SELECT DISTINCT ON (s.event_id) s.* FROM events_staging s
    WHERE NOT $1::bool OR NOT EXISTS (SELECT 1 FROM events e WHERE e.event_id = s.event_id)
    ORDER BY s.event_id, s.ord
), heads AS (
    SELECT d.stream_id, coalesce((SELECT max(e.stream_version) FROM events e WHERE e.stream_id = d.stream_id), 0) AS head
    FROM (SELECT DISTINCT stream_id FROM fresh) d
)
INSERT INTO events (event_id, stream_id, stream_version, type, schema_version, data, metadata)
SELECT f.event_id, f.stream_id,
       h.head + row_number() OVER (PARTITION BY f.stream_id COLLATE "C" ORDER BY f.ord),
       f.type, f.schema_version, f.data, f.metadata
FROM fresh f JOIN heads h USING (stream_id)
ORDER BY f.stream_id COLLATE "C", f.ord
ON CONFLICT DO NOTHING`

// sqlBulkReused finds ids stored, or staged twice, with another stream, type or payload.
const sqlBulkReused = `(SELECT s.event_id FROM events_staging s JOIN events e ON e.event_id = s.event_id
 WHERE e.stream_id <> s.stream_id OR e.type <> s.type OR e.data <> s.data LIMIT 20)
UNION
(SELECT a.event_id FROM events_staging a JOIN events_staging b ON a.event_id = b.event_id AND a.ord < b.ord
 WHERE a.stream_id <> b.stream_id OR a.type <> b.type OR a.data <> b.data LIMIT 20)`

// sqlBulkStored counts staged records (repeats included) whose id is now stored.
const sqlBulkStored = `SELECT count(*) FROM events_staging s
WHERE EXISTS (SELECT 1 FROM events e WHERE e.event_id = s.event_id)`

const sqlBulkCheckpoint = `SELECT e.transaction_id, e.global_position FROM events e
WHERE e.transaction_id = pg_current_xact_id() ORDER BY e.global_position DESC LIMIT 1`

// AppendBulk appends records at the end of their streams, cfg.BulkChunk records per
// transaction, through COPY. It is idempotent by event id: records already stored unchanged are
// counted as duplicates; a stored id with another payload fails with *EventIDReusedError and
// that chunk is not written (earlier chunks stay written: re-running the same input is safe).
// Records of one stream keep their order.
func (s *Store) AppendBulk(ctx context.Context, recs []events.Record) (BulkResult, error) {
	var total BulkResult
	for i := range recs {
		if recs[i].StreamID == "" {
			return total, fmt.Errorf("append bulk: record %d: stream id is empty", i)
		}
		if err := validateRecord(recs[i]); err != nil {
			return total, fmt.Errorf("append bulk: record %d: %w", i, err)
		}
	}
	for start := 0; start < len(recs); start += s.cfg.BulkChunk {
		chunk := recs[start:min(start+s.cfg.BulkChunk, len(recs))]
		res, err := s.bulkChunk(ctx, chunk)
		if err != nil {
			return total, fmt.Errorf("append bulk: records %d..%d: %w", start, start+len(chunk)-1, err)
		}
		if res.Appended > 0 {
			s.ring()
		}
		total.Appended += res.Appended
		total.Duplicates += res.Duplicates
		if total.Checkpoint.Less(res.Checkpoint) {
			total.Checkpoint = res.Checkpoint
		}
	}
	return total, nil
}

// maxBulkRetries bounds how often a chunk is redone after a concurrent writer took a version.
const maxBulkRetries = 10

func (s *Store) bulkChunk(ctx context.Context, recs []events.Record) (BulkResult, error) {
	// Stream by stream, each stream's records in input order: the order every writer inserts in
	// (see sqlInsert), so that a version race ends in a conflict, not a deadlock.
	sorted := slices.Clone(recs)
	slices.SortStableFunc(sorted, func(a, b events.Record) int { return strings.Compare(a.StreamID, b.StreamID) })

	conn, err := s.pool.Acquire(ctx)
	if err != nil {
		return BulkResult{}, err
	}
	defer conn.Release()

	res, err := copyChunk(ctx, conn, sorted)
	if !errors.Is(err, errMixedOutcome) {
		return res, err
	}
	return s.stagedChunk(ctx, conn, sorted)
}

// copyChunk writes recs with one COPY into events, or fails with errMixedOutcome (nothing
// written) if any of them conflicts.
func copyChunk(ctx context.Context, conn *pgxpool.Conn, recs []events.Record) (BulkResult, error) {
	var res BulkResult
	err := withTxOn(ctx, conn, func(tx pgx.Tx) error {
		var streams []string
		for i, r := range recs {
			if i == 0 || r.StreamID != recs[i-1].StreamID {
				streams = append(streams, r.StreamID)
			}
		}
		head, err := bulkHeads(ctx, tx, streams)
		if err != nil {
			return err
		}
		// The COPY is this transaction's first write (see above).
		n, err := tx.CopyFrom(ctx, pgx.Identifier{"events"}, eventColumns, &versionedSource{recs: recs, head: head})
		if _, unique := isUniqueViolation(err); unique {
			return errMixedOutcome
		}
		if err != nil {
			return fmt.Errorf("copy: %w", err)
		}
		res.Appended = int(n)
		return tx.QueryRow(ctx, sqlBulkCheckpoint).Scan(&res.Checkpoint.TxID, &res.Checkpoint.Position)
	})
	return res, err
}

// bulkHeads maps each stream of streams that exists to its head.
func bulkHeads(ctx context.Context, q Querier, streams []string) (map[string]int, error) {
	out := make(map[string]int, len(streams))
	rows, err := q.Query(ctx, sqlBulkHeads, streams)
	if err != nil {
		return nil, fmt.Errorf("read stream heads: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var (
			id string
			v  int
		)
		if err := rows.Scan(&id, &v); err != nil {
			return nil, fmt.Errorf("read stream heads: %w", err)
		}
		out[id] = v
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read stream heads: %w", err)
	}
	return out, nil
}

// stagedChunk is the careful way: stored ids are counted as duplicates, the rest appended.
func (s *Store) stagedChunk(ctx context.Context, conn *pgxpool.Conn, recs []events.Record) (BulkResult, error) {
	err := pgx.BeginFunc(ctx, conn, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, sqlStaging); err != nil {
			return fmt.Errorf("staging table: %w", err)
		}
		if _, err := tx.Exec(ctx, sqlStagingEmpty); err != nil {
			return fmt.Errorf("empty staging table: %w", err)
		}
		if _, err := tx.CopyFrom(ctx, pgx.Identifier{"events_staging"}, stagingColumns, &recordSource{recs: recs}); err != nil {
			return fmt.Errorf("copy: %w", err)
		}
		return nil
	})
	if err != nil {
		return BulkResult{}, err
	}
	defer func() { _, _ = conn.Exec(context.WithoutCancel(ctx), sqlStagingEmpty) }()

	for range maxBulkRetries {
		var res BulkResult
		err := withTxOn(ctx, conn, func(tx pgx.Tx) error {
			reused, err := reusedIDs(ctx, tx)
			if err != nil {
				return err
			}
			if len(reused) > 0 {
				return &EventIDReusedError{EventIDs: reused}
			}
			// The INSERT is this transaction's first write (see above).
			tag, err := tx.Exec(ctx, sqlBulkInsert, true)
			if err != nil {
				return fmt.Errorf("insert: %w", err)
			}
			res.Appended = int(tag.RowsAffected())
			// Everything not appended must be a stored duplicate; anything else lost a version
			// race with a concurrent writer.
			var stored int
			if err := tx.QueryRow(ctx, sqlBulkStored).Scan(&stored); err != nil {
				return fmt.Errorf("count duplicates: %w", err)
			}
			res.Duplicates = stored - res.Appended
			if res.Appended+res.Duplicates != len(recs) {
				return errMixedOutcome
			}
			if res.Appended > 0 {
				if err := tx.QueryRow(ctx, sqlBulkCheckpoint).Scan(&res.Checkpoint.TxID, &res.Checkpoint.Position); err != nil {
					return fmt.Errorf("read checkpoint: %w", err)
				}
			}
			return nil
		})
		if errors.Is(err, errMixedOutcome) {
			continue
		}
		return res, err
	}
	return BulkResult{}, fmt.Errorf("gave up after %d conflicting attempts: %w", maxBulkRetries, ErrConcurrency)
}

func reusedIDs(ctx context.Context, tx pgx.Tx) ([]uuid.UUID, error) {
	rows, err := tx.Query(ctx, sqlBulkReused)
	if err != nil {
		return nil, fmt.Errorf("compare duplicates: %w", err)
	}
	return pgx.CollectRows(rows, pgx.RowTo[uuid.UUID])
}

// recordSource feeds records to COPY without building an intermediate [][]any.
type recordSource struct {
	recs []events.Record
	i    int
	row  [7]any
}

func (r *recordSource) Next() bool {
	r.i++
	return r.i <= len(r.recs)
}

func (r *recordSource) Values() ([]any, error) {
	rec := r.recs[r.i-1]
	r.row = [7]any{int64(r.i), rec.EventID, rec.StreamID, rec.Type, int16(rec.SchemaVersion), []byte(rec.Data), metadataJSON(rec.Metadata)}
	return r.row[:], nil
}

func (r *recordSource) Err() error { return nil }

// versionedSource feeds records to COPY into events, numbering each after its stream's head.
type versionedSource struct {
	recs []events.Record
	head map[string]int
	i    int
	row  [7]any
}

func (r *versionedSource) Next() bool {
	r.i++
	return r.i <= len(r.recs)
}

func (r *versionedSource) Values() ([]any, error) {
	rec := r.recs[r.i-1]
	v := r.head[rec.StreamID] + 1
	r.head[rec.StreamID] = v
	r.row = [7]any{rec.EventID, rec.StreamID, int32(v), rec.Type, int16(rec.SchemaVersion), []byte(rec.Data), metadataJSON(rec.Metadata)}
	return r.row[:], nil
}

func (r *versionedSource) Err() error { return nil }
