package store

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"hash/fnv"
	"sort"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"herald/events"
)

// anyExisting is the expected version of AppendExisting: the head of a stream that has events.
const anyExisting = -2

// ErrStreamEmpty refuses AppendExisting on a stream without events. errors.Is also matches
// ErrConcurrency: the caller decides again, knowing the stream is new.
var ErrStreamEmpty = errors.New("the stream has no events")

type streamEmptyError struct{ streamID string }

func (e *streamEmptyError) Error() string {
	return fmt.Sprintf("append to %s: %v (%v)", e.streamID, ErrStreamEmpty, ErrConcurrency)
}

func (e *streamEmptyError) Is(target error) bool {
	return target == ErrStreamEmpty || target == ErrConcurrency
}

// AppendExisting appends recs at the end of streamID, whatever its version, provided the stream
// already has events; an empty stream is refused with ErrStreamEmpty (errors.Is ErrConcurrency)
// and nothing is written. It serves decisions that depend only on a stream's existence: a
// conversation message from a known user needs no read before its append. Idempotency and
// grouping are as for Append.
func (s *Store) AppendExisting(ctx context.Context, streamID string, recs ...events.Record) (AppendResult, error) {
	if len(recs) == 0 {
		return AppendResult{}, errors.New("append: no records")
	}
	return s.submit(ctx, streamID, anyExisting, recs)
}

// atHead reports whether a request is appended at its stream's head (read by the committer).
func (r *appendRequest) atHead() bool { return r.expected == AnyVersion || r.expected == anyExisting }

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

// commitLoop serves one committer's queue. Every append to a given stream goes to the same
// committer (see queueFor), so two committers never race for the same stream's versions.
func (s *Store) commitLoop(queue chan *appendRequest) {
	defer s.wg.Done()
	for {
		var first *appendRequest
		select {
		case first = <-queue:
		case <-s.done:
			// Finish what was queued before Close, then stop.
			for {
				select {
				case r := <-queue:
					s.commitGroup(s.collect(queue, r))
				default:
					return
				}
			}
		}
		s.commitGroup(s.collect(queue, first))
	}
}

// queueFor picks the committer of a stream by a hash of its id.
func (s *Store) queueFor(streamID string) chan *appendRequest {
	h := fnv.New32a()
	h.Write([]byte(streamID))
	return s.requests[h.Sum32()%uint32(len(s.requests))]
}

// collect takes first plus whatever else is already queued, up to MaxGroup events.
func (s *Store) collect(queue chan *appendRequest, first *appendRequest) []*appendRequest {
	group := []*appendRequest{first}
	n := len(first.recs)
	for n < s.cfg.MaxGroup {
		select {
		case r := <-queue:
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
// with one statement; if any record conflicts (a stale version, a duplicate id, a payload Postgres
// refuses) the transaction is rolled back and the group is redone request by request behind
// savepoints, so each caller gets its own exact outcome and no request is partly applied. A
// request the slow path cannot write in log order (see errReordered) is then written in a
// transaction of its own.
func (s *Store) commitGroup(group []*appendRequest) {
	ctx, cancel := context.WithTimeout(context.Background(), groupTimeout)
	defer cancel()

	replies := make([]appendReply, len(group))
	var repeats []int
	err := s.withTx(ctx, func(tx pgx.Tx) error {
		var err error
		repeats, err = s.insertGroup(ctx, tx, group, replies)
		return err
	})
	if err != nil {
		repeats = nil // the savepoint path below answers every request
	}
	var deferred []int
	if errors.Is(err, errMixedOutcome) || isUniqueOnly(err) || isDataException(err) {
		s.slowPathGroups.Add(1)
		// Requests in stream order (see sqlInsert); a stream's requests keep their queue order.
		order := make([]int, len(group))
		for i := range order {
			order[i] = i
		}
		sort.SliceStable(order, func(a, b int) bool { return group[order[a]].streamID < group[order[b]].streamID })
		err = s.withTx(ctx, func(tx pgx.Tx) error {
			deferred = deferred[:0]
			for _, i := range order {
				req := group[i]
				res, err := s.appendOne(ctx, tx, req)
				if errors.Is(err, errReordered) {
					deferred = append(deferred, i)
					continue
				}
				if err != nil && !isOutcome(err) {
					return err
				}
				replies[i] = appendReply{res: res, err: err}
			}
			return nil
		})
	}
	if err == nil {
		for _, i := range deferred {
			replies[i] = s.appendAlone(ctx, group[i])
		}
		s.answerRepeats(ctx, group, repeats, replies)
		s.ring()
	}
	for i, req := range group {
		if err != nil {
			req.reply <- appendReply{err: fmt.Errorf("append to %s: %w", req.streamID, err)}
			continue
		}
		req.reply <- replies[i]
	}
}

// appendAlone writes one request in a transaction of its own, where the append is the first
// write. A retry within that transaction (AnyVersion losing a race) may be refused as reordered
// again, since the failed insert gave the transaction its xid: then it starts a new one.
func (s *Store) appendAlone(ctx context.Context, req *appendRequest) appendReply {
	for range maxAnyRetries {
		var reply appendReply
		err := s.withTx(ctx, func(tx pgx.Tx) error {
			res, err := s.appendOne(ctx, tx, req)
			if err != nil && !isOutcome(err) {
				return err // errReordered included: roll back, try again below
			}
			reply = appendReply{res: res, err: err}
			return nil
		})
		if errors.Is(err, errReordered) {
			continue
		}
		if err != nil {
			return appendReply{err: fmt.Errorf("append to %s: %w", req.streamID, err)}
		}
		return reply
	}
	return appendReply{err: &ConcurrencyError{StreamID: req.streamID, Expected: req.expected}}
}

func isUniqueOnly(err error) bool {
	_, ok := isUniqueViolation(err)
	return ok
}

// isOutcome reports errors that are a request's own answer, not a failure of the transaction.
func isOutcome(err error) bool {
	return errors.Is(err, ErrConcurrency) || errors.Is(err, ErrEventIDReused) || isDataException(err)
}

// isDataException reports SQLSTATE class 22 (a value Postgres refuses: a NUL byte in text, \u0000
// in jsonb, invalid JSON): the fault of the request that carried it, not of its group.
func isDataException(err error) bool {
	var pgErr *pgconn.PgError
	return errors.As(err, &pgErr) && strings.HasPrefix(pgErr.Code, "22")
}

// errReordered refuses an append that would follow, in the same stream, an event of a
// transaction with a higher xid than its own. The gap-safe reader orders the log by
// (transaction_id, global_position), so it would deliver the stream's versions out of order. It
// can happen only in the slow path, where earlier requests of the group gave the transaction its
// xid before this request read the stream.
var errReordered = errors.New("append would precede its stream's previous event in the log")

// sqlPredecessorLater reports whether the stream's event at a version was written by a
// transaction with a higher xid than the current one.
const sqlPredecessorLater = `SELECT EXISTS (SELECT 1 FROM events
WHERE stream_id = $1 AND stream_version = $2 AND transaction_id > pg_current_xact_id())`

// sqlInsert appends rows given as parallel arrays. A row with expected > 0 goes in only if the
// stream's event at that version exists (so an expected version ahead of the stream is refused);
// UNIQUE (stream_id, stream_version) refuses one behind it, with no read-then-write window.
// OFFSET 0 keeps that check an index probe per row: without it the planner may hash the whole
// log once per statement (a young log's statistics make that look cheap).
//
// Every writer (this, the slow path, AppendBulk) inserts in (stream_id in byte order, version)
// order: two transactions that picked the same versions then wait for each other at the first
// contested slot instead of each holding a slot the other needs (a deadlock, which Postgres takes
// deadlock_timeout, 1 s, to break).
const sqlInsert = `INSERT INTO events (event_id, stream_id, stream_version, type, schema_version, data, metadata)
SELECT r.event_id, r.stream_id, r.stream_version, r.type, r.schema_version, r.data::jsonb, r.metadata::jsonb
FROM unnest($1::uuid[], $2::text[], $3::int[], $4::text[], $5::smallint[], $6::text[], $7::text[], $8::int[])
     WITH ORDINALITY AS r(event_id, stream_id, stream_version, type, schema_version, data, metadata, expected, ord)
WHERE r.expected <= 0
   OR EXISTS (SELECT 1 FROM events e WHERE e.stream_id = r.stream_id AND e.stream_version = r.expected OFFSET 0)
ORDER BY r.stream_id COLLATE "C", r.ord
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

func (s *Store) insertGroup(ctx context.Context, tx pgx.Tx, group []*appendRequest, replies []appendReply) (repeats []int, err error) {
	// Retried webhooks make duplicates common. Answer the requests whose ids are all stored
	// already before inserting, so one duplicate does not send its whole group down the
	// savepoint path. (An id belongs to one stream and a stream to one committer, so in this
	// process none can be stored between this read and the insert; another process's write
	// makes the insert conflict, and the savepoint path sorts it out.) The same read returns the
	// heads of the group's streams: one round trip for both.
	pending, repeats, head, err := s.answerStored(ctx, tx, group, replies)
	if err != nil {
		return nil, err
	}
	var args insertArgs
	bases := make(map[int]int, len(pending))
	for _, i := range pending {
		req := group[i]
		base := req.expected
		switch {
		case req.atHead():
			base = head[req.streamID]
		case base != head[req.streamID]:
			// A stale expected version (two first messages from one new number, say) is
			// refused here: in the insert it would fail the statement and send the whole group
			// down the savepoint path. Its ids are not stored (answerStored): a conflict.
			replies[i] = appendReply{err: &ConcurrencyError{StreamID: req.streamID, Expected: req.expected}}
			continue
		}
		if req.expected == anyExisting && base == 0 {
			replies[i] = appendReply{err: &streamEmptyError{streamID: req.streamID}}
			continue
		}
		bases[i] = base
		head[req.streamID] = base + len(req.recs)
		args.add(req, base)
	}
	if len(args.ids) == 0 {
		return repeats, nil
	}
	got, err := args.exec(ctx, tx)
	if err != nil {
		return nil, err
	}
	if len(got) != len(args.ids) {
		return nil, errMixedOutcome
	}
	for _, i := range pending {
		if base, ok := bases[i]; ok {
			replies[i] = appendReply{res: resultOf(group[i].recs, got, base+len(group[i].recs), false)}
		}
	}
	return repeats, nil
}

// sqlStoredAndHeads returns the ids of $1 that are stored (stream NULL) and the head of each
// stream of $2 that has events (event_id NULL), with one index probe per id and per stream: the
// "= ANY($1)" form can be planned as a scan of the whole log once it is large, and the plain
// lateral join was, while the log was young (a hash join over a sequential scan of the log for a
// group's ids); OFFSET 0 keeps the lateral a probe per id.
const sqlStoredAndHeads = `SELECT e.event_id, NULL::text, 0 FROM unnest($1::uuid[]) AS i(id)
CROSS JOIN LATERAL (SELECT event_id FROM events WHERE event_id = i.id OFFSET 0) e
UNION ALL
SELECT NULL::uuid, s.id, h.v FROM unnest($2::text[]) AS s(id)
CROSS JOIN LATERAL (SELECT stream_version AS v FROM events WHERE stream_id = s.id ORDER BY stream_version DESC LIMIT 1) h`

// answerStored fills the replies of requests whose event ids are all stored (duplicates, or
// reused ids) and returns the indexes of the others (pending), the heads of the group's
// streams, and the requests that repeat the ids of an earlier request of the group
// (concurrent deliveries of one webhook): those are answered once the group has committed (see
// answerRepeats), so they do not send the group down the savepoint path. A request only partly
// stored, or only partly repeating an earlier one, is left to the savepoint path
// (errMixedOutcome).
func (s *Store) answerStored(ctx context.Context, tx pgx.Tx, group []*appendRequest, replies []appendReply) (pending, repeats []int, head map[string]int, err error) {
	ids := make([]uuid.UUID, 0, len(group))
	seen := make(map[uuid.UUID]bool, len(group))
	var streams []string
	inGroup := make(map[string]bool, len(group))
	isRepeat := make([]bool, len(group))
	for i, req := range group {
		n := 0
		for _, r := range req.recs {
			if seen[r.EventID] {
				n++
			}
		}
		switch {
		case n == len(req.recs):
			isRepeat[i] = true
			repeats = append(repeats, i)
			continue
		case n > 0:
			return nil, nil, nil, errMixedOutcome
		}
		for _, r := range req.recs {
			seen[r.EventID] = true
			ids = append(ids, r.EventID)
		}
		if !inGroup[req.streamID] {
			inGroup[req.streamID] = true
			streams = append(streams, req.streamID)
		}
	}
	rows, err := tx.Query(ctx, sqlStoredAndHeads, ids, streams)
	if err != nil {
		return nil, nil, nil, fmt.Errorf("look up stored ids and heads: %w", err)
	}
	var stored map[uuid.UUID]bool
	head = make(map[string]int, len(streams))
	for rows.Next() {
		var (
			id     *uuid.UUID
			stream *string
			v      int
		)
		if err := rows.Scan(&id, &stream, &v); err != nil {
			rows.Close()
			return nil, nil, nil, fmt.Errorf("look up stored ids and heads: %w", err)
		}
		if id != nil {
			if stored == nil {
				stored = make(map[uuid.UUID]bool)
			}
			stored[*id] = true
		} else if stream != nil {
			head[*stream] = v
		}
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, nil, nil, fmt.Errorf("look up stored ids and heads: %w", err)
	}
	for i, req := range group {
		if isRepeat[i] {
			continue
		}
		n := 0
		for _, r := range req.recs {
			if stored[r.EventID] {
				n++
			}
		}
		switch {
		case n == 0:
			pending = append(pending, i)
		case n < len(req.recs):
			return nil, nil, nil, errMixedOutcome
		default:
			res, _, err := duplicateResult(ctx, tx, req)
			if err != nil && !isOutcome(err) {
				return nil, nil, nil, err
			}
			replies[i] = appendReply{res: res, err: err}
		}
	}
	return pending, repeats, head, nil
}

// answerRepeats answers, after their group committed, the requests that repeated an earlier
// request's ids: normally a duplicate of what that request stored; if it stored nothing (it was
// refused), the repeat is written on its own.
func (s *Store) answerRepeats(ctx context.Context, group []*appendRequest, repeats []int, replies []appendReply) {
	for _, i := range repeats {
		req := group[i]
		// Outside a transaction, a payload Postgres refuses fails only this comparison.
		res, dup, err := duplicateResult(ctx, s.pool, req)
		switch {
		case isDataException(err):
			replies[i] = appendReply{err: fmt.Errorf("append to %s: %w", req.streamID, err)}
		case err != nil && !isOutcome(err):
			replies[i] = appendReply{err: fmt.Errorf("append to %s: %w", req.streamID, err)}
		case dup:
			replies[i] = appendReply{res: res, err: err}
		default:
			replies[i] = s.appendAlone(ctx, req)
		}
	}
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
		sp, err := tx.Begin(ctx)
		if err != nil {
			return AppendResult{}, err
		}
		base, got, err := insertOne(ctx, sp, req)
		if err == nil && len(got) == len(req.recs) {
			if err := sp.Commit(ctx); err != nil {
				return AppendResult{}, err
			}
			return resultOf(req.recs, got, base+len(req.recs), false), nil
		}
		if rbErr := sp.Rollback(ctx); rbErr != nil {
			return AppendResult{}, rbErr
		}
		switch _, unique := isUniqueViolation(err); {
		case errors.Is(err, errReordered):
			return AppendResult{}, err
		case isDataException(err):
			return AppendResult{}, fmt.Errorf("append to %s: %w", req.streamID, err)
		case err != nil && !unique:
			return AppendResult{}, err
		}
		// Refused: a stored event id (whichever constraint fired first) makes it a
		// duplicate or a reuse; otherwise the stream moved.
		res, dup, err := duplicateResultIn(ctx, tx, req)
		switch {
		case err != nil || dup:
			return res, err
		case req.atHead() && attempt < maxAnyRetries:
			continue // another writer took the version we computed: read the head again
		default:
			return AppendResult{}, &ConcurrencyError{StreamID: req.streamID, Expected: req.expected}
		}
	}
}

// insertOne inserts one request's records after the stream's head (AnyVersion) or after the
// expected version, and refuses with errReordered what the log would deliver out of order.
func insertOne(ctx context.Context, tx pgx.Tx, req *appendRequest) (base int, got map[uuid.UUID]Checkpoint, err error) {
	base = req.expected
	if req.atHead() {
		head, err := heads(ctx, tx, []string{req.streamID})
		if err != nil {
			return 0, nil, err
		}
		base = head[req.streamID]
		if req.expected == anyExisting && base == 0 {
			return 0, nil, &streamEmptyError{streamID: req.streamID}
		}
	}
	var args insertArgs
	args.add(req, base)
	got, err = args.exec(ctx, tx)
	if err != nil || len(got) != len(req.recs) || base == 0 {
		return base, got, err
	}
	var later bool
	if err := tx.QueryRow(ctx, sqlPredecessorLater, req.streamID, base).Scan(&later); err != nil {
		return base, nil, err
	}
	if later {
		return base, nil, errReordered
	}
	return base, got, nil
}

// duplicateResultIn is duplicateResult behind a savepoint: comparing casts the request's payloads,
// which Postgres may refuse, and that must not abort the group's transaction. Payloads Go can
// tell Postgres accepts (the usual case) skip the savepoint's two round trips.
func duplicateResultIn(ctx context.Context, tx pgx.Tx, req *appendRequest) (AppendResult, bool, error) {
	if jsonbSafe(req.recs) {
		return duplicateResult(ctx, tx, req)
	}
	sp, err := tx.Begin(ctx)
	if err != nil {
		return AppendResult{}, false, err
	}
	res, dup, err := duplicateResult(ctx, sp, req)
	if isDataException(err) {
		if rbErr := sp.Rollback(ctx); rbErr != nil {
			return AppendResult{}, false, rbErr
		}
		return AppendResult{}, true, fmt.Errorf("append to %s: %w", req.streamID, err)
	}
	if cErr := sp.Commit(ctx); cErr != nil && err == nil {
		return AppendResult{}, false, cErr
	}
	return res, dup, err
}

// jsonbSafe reports whether every payload is one the ::jsonb cast accepts: valid JSON in valid
// UTF-8 without the \u0000 escape (conservatively: any occurrence of that text).
func jsonbSafe(recs []events.Record) bool {
	for _, r := range recs {
		if !json.Valid(r.Data) || !utf8.Valid(r.Data) || bytes.Contains(r.Data, []byte(`\u0000`)) {
			return false
		}
	}
	return true
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
