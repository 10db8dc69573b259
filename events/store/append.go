package store

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"herald/events"
)

type appendRequest struct {
	streamID string
	expected int
	recs     []events.Record
	reply    chan appendReply
}

type appendReply struct {
	res AppendResult
	err error
}

// groupTimeout bounds one group transaction; it is not tied to any caller's context because
// the group serves many callers.
const groupTimeout = 30 * time.Second

func (s *Store) commitLoop() {
	defer s.wg.Done()
	for {
		var first *appendRequest
		select {
		case first = <-s.requests:
		case <-s.done:
			// Finish what was queued before Close, then stop.
			for {
				select {
				case r := <-s.requests:
					s.commitGroup(s.collect(r))
				default:
					return
				}
			}
		}
		s.commitGroup(s.collect(first))
	}
}

// collect takes first plus whatever else is already queued, up to MaxGroup events.
func (s *Store) collect(first *appendRequest) []*appendRequest {
	group := []*appendRequest{first}
	n := len(first.recs)
	for n < s.cfg.MaxGroup {
		select {
		case r := <-s.requests:
			group = append(group, r)
			n += len(r.recs)
		default:
			return group
		}
	}
	return group
}

// errMixedOutcome sends a group down the slow path: some request in it did not go in cleanly.
var errMixedOutcome = errors.New("group had a conflict")

// commitGroup writes a group of appends in one transaction. The fast path inserts everything
// with one statement; if any record conflicts (a stale version, a duplicate id) the transaction
// is rolled back and the group is redone request by request behind savepoints, so each caller
// gets its own exact outcome and no request is partly applied.
func (s *Store) commitGroup(group []*appendRequest) {
	ctx, cancel := context.WithTimeout(context.Background(), groupTimeout)
	defer cancel()

	replies := make([]appendReply, len(group))
	err := s.withTx(ctx, func(tx pgx.Tx) error { return s.insertGroup(ctx, tx, group, replies) })
	if errors.Is(err, errMixedOutcome) || isUniqueOnly(err) {
		err = s.withTx(ctx, func(tx pgx.Tx) error {
			for i, req := range group {
				res, err := s.appendOne(ctx, tx, req)
				if err != nil && !isOutcome(err) {
					return err
				}
				replies[i] = appendReply{res: res, err: err}
			}
			return nil
		})
	}
	for i, req := range group {
		if err != nil {
			req.reply <- appendReply{err: fmt.Errorf("append to %s: %w", req.streamID, err)}
			continue
		}
		req.reply <- replies[i]
	}
}

func isUniqueOnly(err error) bool {
	_, ok := isUniqueViolation(err)
	return ok
}

// isOutcome reports errors that are a request's own answer, not a failure of the transaction.
func isOutcome(err error) bool {
	return errors.Is(err, ErrConcurrency) || errors.Is(err, ErrEventIDReused)
}

// sqlInsert appends rows given as parallel arrays. A row with expected > 0 goes in only if the
// stream's event at that version exists (so an expected version ahead of the stream is refused);
// UNIQUE (stream_id, stream_version) refuses one behind it, with no read-then-write window.
const sqlInsert = `INSERT INTO events (event_id, stream_id, stream_version, type, schema_version, data, metadata)
SELECT r.event_id, r.stream_id, r.stream_version, r.type, r.schema_version, r.data::jsonb, r.metadata::jsonb
FROM unnest($1::uuid[], $2::text[], $3::int[], $4::text[], $5::smallint[], $6::text[], $7::text[], $8::int[])
     WITH ORDINALITY AS r(event_id, stream_id, stream_version, type, schema_version, data, metadata, expected, ord)
WHERE r.expected <= 0
   OR EXISTS (SELECT 1 FROM events e WHERE e.stream_id = r.stream_id AND e.stream_version = r.expected)
ORDER BY r.ord
RETURNING event_id, global_position, transaction_id`

const sqlHeads = `SELECT stream_id, max(stream_version) FROM events WHERE stream_id = ANY($1::text[]) GROUP BY stream_id`

type insertArgs struct {
	ids, streams, types, data, metadata []string
	versions, schemaVersions, expected  []int32
}

func (a *insertArgs) add(req *appendRequest, base int) {
	for i, r := range req.recs {
		a.ids = append(a.ids, r.EventID.String())
		a.streams = append(a.streams, req.streamID)
		a.versions = append(a.versions, int32(base+i+1))
		a.types = append(a.types, r.Type)
		a.schemaVersions = append(a.schemaVersions, int32(r.SchemaVersion))
		a.data = append(a.data, string(r.Data))
		a.metadata = append(a.metadata, metadataJSON(r.Metadata))
		exp := 0
		if i == 0 && req.expected > 0 {
			exp = req.expected
		}
		a.expected = append(a.expected, int32(exp))
	}
}

func (a *insertArgs) exec(ctx context.Context, tx pgx.Tx) (map[uuid.UUID]Checkpoint, error) {
	rows, err := tx.Query(ctx, sqlInsert, a.ids, a.streams, a.versions, a.types, a.schemaVersions, a.data, a.metadata, a.expected)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	got := make(map[uuid.UUID]Checkpoint, len(a.ids))
	for rows.Next() {
		var (
			id uuid.UUID
			cp Checkpoint
		)
		if err := rows.Scan(&id, &cp.Position, &cp.TxID); err != nil {
			return nil, err
		}
		got[id] = cp
	}
	return got, rows.Err()
}

// heads returns the current version of each stream (absent = empty stream).
func heads(ctx context.Context, q Querier, streams []string) (map[string]int, error) {
	out := make(map[string]int, len(streams))
	if len(streams) == 0 {
		return out, nil
	}
	rows, err := q.Query(ctx, sqlHeads, streams)
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
			return nil, err
		}
		out[id] = v
	}
	return out, rows.Err()
}

func (s *Store) insertGroup(ctx context.Context, tx pgx.Tx, group []*appendRequest, replies []appendReply) error {
	var anyStreams []string
	for _, req := range group {
		if req.expected == AnyVersion {
			anyStreams = append(anyStreams, req.streamID)
		}
	}
	head, err := heads(ctx, tx, anyStreams)
	if err != nil {
		return err
	}
	var args insertArgs
	bases := make([]int, len(group))
	for i, req := range group {
		base := req.expected
		if base == AnyVersion {
			base = head[req.streamID]
		}
		bases[i] = base
		head[req.streamID] = base + len(req.recs)
		args.add(req, base)
	}
	got, err := args.exec(ctx, tx)
	if err != nil {
		return err
	}
	if len(got) != len(args.ids) {
		return errMixedOutcome
	}
	for i, req := range group {
		replies[i] = appendReply{res: resultOf(req.recs, got, bases[i]+len(req.recs), false)}
	}
	return nil
}

func resultOf(recs []events.Record, got map[uuid.UUID]Checkpoint, version int, dup bool) AppendResult {
	res := AppendResult{Positions: make([]int64, len(recs)), StreamVersion: version, Duplicate: dup}
	for i, r := range recs {
		cp := got[r.EventID]
		res.Positions[i] = cp.Position
		if res.Checkpoint.Less(cp) {
			res.Checkpoint = cp
		}
	}
	return res
}

// maxAnyRetries bounds how often an AnyVersion append re-reads the head after losing a race.
const maxAnyRetries = 20

// appendOne writes one request behind a savepoint and classifies a refusal.
func (s *Store) appendOne(ctx context.Context, tx pgx.Tx, req *appendRequest) (AppendResult, error) {
	for attempt := 0; ; attempt++ {
		base := req.expected
		if base == AnyVersion {
			head, err := heads(ctx, tx, []string{req.streamID})
			if err != nil {
				return AppendResult{}, err
			}
			base = head[req.streamID]
		}
		var args insertArgs
		args.add(req, base)

		sp, err := tx.Begin(ctx)
		if err != nil {
			return AppendResult{}, err
		}
		got, err := args.exec(ctx, sp)
		if err == nil && len(got) == len(req.recs) {
			if err := sp.Commit(ctx); err != nil {
				return AppendResult{}, err
			}
			return resultOf(req.recs, got, base+len(req.recs), false), nil
		}
		if rbErr := sp.Rollback(ctx); rbErr != nil {
			return AppendResult{}, rbErr
		}
		if _, unique := isUniqueViolation(err); err != nil && !unique {
			return AppendResult{}, err
		}
		// Refused: a stored event id (whichever constraint fired first) makes it a
		// duplicate or a reuse; otherwise the stream moved.
		res, dup, err := duplicateResult(ctx, tx, req)
		switch {
		case err != nil || dup:
			return res, err
		case req.expected == AnyVersion && attempt < maxAnyRetries:
			continue // another writer took the version we computed: read the head again
		default:
			return AppendResult{}, &ConcurrencyError{StreamID: req.streamID, Expected: req.expected}
		}
	}
}

const sqlCompare = `SELECT r.event_id, e.global_position, e.transaction_id, e.stream_version,
       coalesce(e.stream_id = r.stream_id AND e.type = r.type AND e.data = r.data::jsonb, false)
FROM unnest($1::uuid[], $2::text[], $3::text[], $4::text[]) WITH ORDINALITY AS r(event_id, stream_id, type, data, ord)
LEFT JOIN events e ON e.event_id = r.event_id
ORDER BY r.ord`

// duplicateResult looks for the request's event ids among the stored events. None stored:
// dup is false (the refusal was a version conflict). All stored unchanged: the original
// positions, as an idempotent success. Otherwise an *EventIDReusedError naming the ids stored
// with another payload, or missing beside stored ones.
func duplicateResult(ctx context.Context, q Querier, req *appendRequest) (res AppendResult, dup bool, err error) {
	var ids, streams, types, data []string
	for _, r := range req.recs {
		ids = append(ids, r.EventID.String())
		streams = append(streams, req.streamID)
		types = append(types, r.Type)
		data = append(data, string(r.Data))
	}
	rows, err := q.Query(ctx, sqlCompare, ids, streams, types, data)
	if err != nil {
		return AppendResult{}, false, fmt.Errorf("compare duplicate: %w", err)
	}
	defer rows.Close()
	got := make(map[uuid.UUID]Checkpoint, len(ids))
	var (
		reused  []uuid.UUID
		stored  int
		version int
	)
	for rows.Next() {
		var (
			id   uuid.UUID
			pos  *int64
			txid *uint64
			ver  *int
			same bool
		)
		if err := rows.Scan(&id, &pos, &txid, &ver, &same); err != nil {
			return AppendResult{}, false, err
		}
		if pos != nil {
			stored++
		}
		if !same {
			reused = append(reused, id)
			continue
		}
		got[id] = Checkpoint{TxID: *txid, Position: *pos}
		version = max(version, *ver)
	}
	if err := rows.Err(); err != nil {
		return AppendResult{}, false, err
	}
	if stored == 0 {
		return AppendResult{}, false, nil
	}
	if len(reused) > 0 {
		return AppendResult{}, true, &EventIDReusedError{EventIDs: reused}
	}
	return resultOf(req.recs, got, version, true), true, nil
}
