package projections

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"herald/events"
	"herald/events/store"
)

// cursor is where an applier keeps its checkpoint: the checkpoints table for the live path,
// memory for a rebuild. begin opens the transaction the page is applied in; reader reads the
// log outside it (the next page, ahead of time). skip moves the checkpoint from → to past a
// stretch of the log that holds nothing for the projection — no effect to commit with it, so no
// page transaction — and reports false if the checkpoint is no longer at from (another runner
// moved it).
type cursor interface {
	begin(ctx context.Context) (pgx.Tx, store.Checkpoint, error)
	save(ctx context.Context, tx pgx.Tx, cp store.Checkpoint) error
	skip(ctx context.Context, from, to store.Checkpoint) (bool, error)
	committed(cp store.Checkpoint)
	// parked is told of each event parked through this cursor, once its park has committed.
	parked(eventID uuid.UUID)
	reader() store.Querier
}

// applier applies the log to one projection.
type applier struct {
	p        Projection
	batch    BatchProjection // p, if it can apply a page set-based
	registry *events.Registry
	handles  []string
	// fallbacks counts the set-based pages that failed and were applied again event by event;
	// readAheads the pages applied as read ahead; prepared the pages applied with statements
	// prepared ahead of their transaction (pageRead.prepare); skipped the pages with nothing for
	// the projection, passed without a page transaction (skipOutside).
	fallbacks, readAheads, prepared, skipped atomic.Int64

	mu    sync.Mutex
	ahead *readAhead // the next page, being read while the current one is applied
	again *pageRead  // the page of a failed set-based attempt, for the per-event retry
	// left is where this applier's last commit left the checkpoint (valid if moved): a page
	// that starts elsewhere means another runner applies this projection too, and pages are
	// not read ahead — they would mostly be the other runner's next page, read twice.
	left  store.Checkpoint
	moved bool
}

func newApplier(p Projection, registry *events.Registry) *applier {
	a := &applier{p: p, registry: registry, handles: p.Handles()}
	a.batch, _ = p.(BatchProjection)
	return a
}

// pageRead is a page of the log read after from with limit, and its events decoded.
type pageRead struct {
	from  store.Checkpoint
	limit int
	page  store.Page
	evs   []events.Event // evs[i] is page.Events[i] decoded, nil if errs[i] is not
	errs  []error
	// prepared holds the statements ApplyBatch queued for the whole page ahead of its
	// transaction (see prepare), nil if it was not, or could not be, prepared.
	prepared []queuedStmt
}

// prepare runs ApplyBatch for the whole page ahead of its transaction, on the goroutine that
// read the page, recording the statements it queues: the applier then only sends them, so the
// Go side of a page (building the statements' arrays, encoding attributes, …) overlaps with
// Postgres applying the page before. ApplyBatch writes through Queue only when its statements
// depend on nothing but the events — the page is the same page whenever it is applied — so
// the recorded statements are exactly what it would queue in the transaction. If it reads
// (Exec, Query, QueryRow), fails, or a page event did not decode, nothing is prepared and the
// page is applied the ordinary way, in its transaction.
func (pr *pageRead) prepare(ctx context.Context, batch BatchProjection) {
	if batch == nil || len(pr.page.Events) < 2 {
		return
	}
	for _, err := range pr.errs {
		if err != nil {
			return
		}
	}
	rec := &recordingTx{}
	if err := batch.ApplyBatch(ctx, rec, pr.page.Events, pr.evs); err != nil || rec.read {
		return
	}
	pr.prepared = rec.stmts
}

func (a *applier) read(ctx context.Context, q store.Querier, from store.Checkpoint, limit int) (*pageRead, error) {
	page, err := store.ReadAfter(ctx, q, from, limit, a.handles)
	if err != nil {
		return nil, err
	}
	pr := &pageRead{from: from, limit: limit, page: page, evs: make([]events.Event, len(page.Events)),
		errs: make([]error, len(page.Events))}
	for i, env := range page.Events {
		pr.evs[i], pr.errs[i] = a.registry.Decode(env)
	}
	return pr, nil
}

// readAhead is a page being read (and decoded) on another connection while the previous page
// is applied, so that reading and decoding overlap with Postgres applying. It is used only if
// the checkpoint, locked in the next transaction, is where the page starts — another runner may
// have moved it — which keeps apply and checkpoint in one transaction: a page read earlier is
// the same page (the log below the horizon it was read at does not change), read sooner.
type readAhead struct {
	from  store.Checkpoint
	limit int
	done  chan struct{}
	pr    *pageRead
	err   error
}

// readNext starts reading the page after page, unless page was the last one.
func (a *applier) readNext(ctx context.Context, cur cursor, page store.Page, limit int) {
	if page.CaughtUp {
		return
	}
	ra := &readAhead{from: page.Next, limit: limit, done: make(chan struct{})}
	a.mu.Lock()
	a.ahead = ra
	a.mu.Unlock()
	go func() {
		defer close(ra.done)
		ra.pr, ra.err = a.read(ctx, cur.reader(), ra.from, ra.limit)
		if ra.err == nil {
			ra.pr.prepare(ctx, a.batch)
		}
	}()
}

// takeAhead returns the page read ahead, once read (nil if none or if the read failed); the
// caller checks that it starts at its checkpoint. It is called holding no connection: the read
// needs one from the pool.
func (a *applier) takeAhead(ctx context.Context) *pageRead {
	a.mu.Lock()
	ra := a.ahead
	a.ahead = nil
	a.mu.Unlock()
	if ra == nil {
		return nil
	}
	select {
	case <-ra.done:
	case <-ctx.Done():
		return nil
	}
	if ra.err != nil {
		return nil // read it again in the transaction, which reports the error
	}
	return ra.pr
}

// batchError is a failure of a page applied with ApplyBatch. It names no event: the page is
// rolled back and applied again event by event, which names the event at fault.
type batchError struct{ err error }

func (e *batchError) Error() string { return "apply page set-based: " + e.err.Error() }
func (e *batchError) Unwrap() error { return e.err }

// readPage reads the page of up to limit log rows after cp inside tx.
func (a *applier) readPage(ctx context.Context, tx pgx.Tx, cp store.Checkpoint, limit int) (*pageRead, error) {
	return a.read(ctx, tx, cp, limit)
}

// applyPage applies the events of a page: with ApplyBatch if batch is set and the projection
// has it, else one Apply per event. With a non-nil until it applies only the events at or
// before until and ends the page there. On failure the error is an *applyError naming the event
// (or a *batchError), and tx must be rolled back.
func (a *applier) applyPage(ctx context.Context, tx pgx.Tx, pr *pageRead, batch bool, until *store.Checkpoint) (store.Page, error) {
	page, evs, errs := pr.page, pr.evs, pr.errs
	if until != nil {
		page = cut(page, *until)
		evs, errs = evs[:len(page.Events)], errs[:len(page.Events)]
	}
	if batch && a.batch != nil && len(page.Events) > 1 {
		var prepared []queuedStmt
		if len(page.Events) == len(pr.page.Events) { // the page was not cut: the statements are its own
			prepared = pr.prepared
		}
		return page, a.applyBatch(ctx, tx, page.Events, evs, errs, prepared)
	}
	ptx := newPipelineTx(tx, page.Events)
	for i, env := range page.Events {
		ptx.current = i
		err := errs[i]
		if err == nil {
			err = a.p.Apply(ctx, ptx, env, evs[i])
		}
		if err != nil {
			var ae *applyError
			if errors.As(err, &ae) {
				return page, ae
			}
			// The statements queued for the events before this one have not run yet, and the
			// event at fault is the first that fails in log order: run them first.
			if err := ptx.flush(ctx); err != nil {
				return page, err
			}
			return page, &applyError{index: i, env: env, err: err}
		}
	}
	return page, ptx.flush(ctx)
}

// applyBatch applies a page with ApplyBatch, or with the statements prepared for it ahead of
// the transaction if there are (see pageRead.prepare).
func (a *applier) applyBatch(ctx context.Context, tx pgx.Tx, envs []events.Envelope, evs []events.Event, errs []error, prepared []queuedStmt) error {
	for _, err := range errs {
		if err != nil {
			return &batchError{err: err}
		}
	}
	ptx := newPipelineTx(tx, envs)
	if prepared != nil {
		a.prepared.Add(1)
		for _, q := range prepared {
			ptx.Queue(q.sql, q.args...)
		}
	} else if err := a.batch.ApplyBatch(ctx, ptx, envs, evs); err != nil {
		return &batchError{err: err}
	}
	if err := ptx.flush(ctx); err != nil {
		return &batchError{err: err}
	}
	return nil
}

// cut keeps the events of page at or before until and ends the page there.
func cut(page store.Page, until store.Checkpoint) store.Page {
	if !until.Less(page.Next) {
		return page
	}
	n := 0
	for n < len(page.Events) && !until.Less(store.After(page.Events[n])) {
		n++
	}
	return store.Page{Events: page.Events[:n], Next: until}
}

// before is the checkpoint just before env: the next row read after it is env.
func before(env events.Envelope) store.Checkpoint {
	return store.Checkpoint{TxID: env.TransactionID, Position: env.GlobalPosition - 1}
}

// stepResult is one committed page.
type stepResult struct {
	applied  int
	caughtUp bool
	last     events.Envelope // the last event applied, if any
}

// step applies one page in its own transaction and moves the checkpoint with it. While it is
// applied, the next page is read ahead.
func (a *applier) step(ctx context.Context, cur cursor, limit int) (stepResult, error) {
	return a.stepUntil(ctx, cur, limit, nil)
}

// stepUntil is step, ending the page at until if it is not nil. A page is applied set-based
// when the projection can; if that fails, the page is rolled back and applied again event by
// event, which either succeeds or fails with an *applyError naming the event at fault.
func (a *applier) stepUntil(ctx context.Context, cur cursor, limit int, until *store.Checkpoint) (stepResult, error) {
	res, err := a.stepPage(ctx, cur, limit, a.batch != nil, until)
	var failed *batchError
	if errors.As(err, &failed) {
		a.fallbacks.Add(1)
		return a.stepPage(ctx, cur, limit, false, until)
	}
	return res, err
}

func (a *applier) stepPage(ctx context.Context, cur cursor, limit int, batch bool, until *store.Checkpoint) (stepResult, error) {
	var known []*pageRead // pages read before the transaction, usable if they start at its checkpoint
	if until == nil {
		ahead := a.takeAhead(ctx)
		known = append(known, ahead)
		if ahead == nil {
			pr, res, done, err := a.skipOutside(ctx, cur, limit)
			if done || err != nil {
				return res, err
			}
			known = append(known, pr)
		}
	}
	a.mu.Lock()
	known, a.again = append(known, a.again), nil
	a.mu.Unlock()

	tx, cp, err := cur.begin(ctx)
	if err != nil {
		return stepResult{}, err
	}
	defer tx.Rollback(ctx) //nolint:errcheck // a no-op after Commit
	if until != nil && !cp.Less(*until) {
		return stepResult{}, nil // already there (or another runner moved past it)
	}
	var pr *pageRead
	for i, k := range known {
		if k != nil && k.from == cp && k.limit == limit {
			pr = k
			if i == 0 && until == nil {
				a.readAheads.Add(1)
			}
			break
		}
	}
	if pr == nil {
		if pr, err = a.readPage(ctx, tx, cp, limit); err != nil {
			return stepResult{}, err
		}
	}
	a.mu.Lock()
	alone := !a.moved || a.left == cp
	a.mu.Unlock()
	if until == nil && batch && alone {
		a.readNext(ctx, cur, pr.page, limit)
	}
	page, err := a.applyPage(ctx, tx, pr, batch, until)
	if err != nil {
		var failed *batchError
		if errors.As(err, &failed) {
			a.mu.Lock()
			a.again = pr
			a.mu.Unlock()
		}
		return stepResult{}, err
	}
	if err := cur.save(ctx, tx, page.Next); err != nil {
		return stepResult{}, err
	}
	if err := tx.Commit(ctx); err != nil {
		return stepResult{}, fmt.Errorf("commit %s: %w", a.p.Name(), err)
	}
	cur.committed(page.Next)
	a.mu.Lock()
	a.left, a.moved = page.Next, true
	a.mu.Unlock()
	res := stepResult{applied: len(page.Events), caughtUp: page.CaughtUp}
	if n := len(page.Events); n > 0 {
		res.last = page.Events[n-1]
	}
	return res, nil
}

// skipOutside reads the page after where this applier last left the checkpoint, outside any
// transaction, and settles it there if it holds nothing for the projection: nothing new at all
// (an empty round costs the read), or only other types (the checkpoint moves with one
// compare-and-set, cursor.skip). Most projections handle few types, and every doorbell used to
// cost each of them a page transaction — begin, lock, read, update, commit — for nothing. No
// effect is committed, so moving the checkpoint alone keeps apply and checkpoint together. A
// page with events is returned (done false) for the transaction to apply if its checkpoint is
// still where the page starts; so is nil when this applier has not committed yet, the read
// failed (the transaction reads again and reports it) or another runner moved the checkpoint.
func (a *applier) skipOutside(ctx context.Context, cur cursor, limit int) (pr *pageRead, res stepResult, done bool, err error) {
	a.mu.Lock()
	from, moved := a.left, a.moved
	a.mu.Unlock()
	if !moved {
		return nil, stepResult{}, false, nil
	}
	pr, err = a.read(ctx, cur.reader(), from, limit)
	if err != nil || len(pr.page.Events) > 0 {
		return pr, stepResult{}, false, nil
	}
	res = stepResult{caughtUp: pr.page.CaughtUp}
	next := pr.page.Next
	if next == from {
		return nil, res, true, nil
	}
	ok, err := cur.skip(ctx, from, next)
	if err != nil || !ok {
		return nil, stepResult{}, err != nil, err
	}
	a.skipped.Add(1)
	cur.committed(next)
	a.mu.Lock()
	a.left = next
	a.mu.Unlock()
	return nil, res, true, nil
}

// passed reports whether this applier's last commit left the checkpoint at or past cp.
func (a *applier) passed(cp store.Checkpoint) bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.moved && !a.left.Less(cp)
}

// recover handles a failed page (read with limit): it commits the events before the failing
// one, ending that page just before it, then retries the failing event alone — the next row of
// the log — up to maxAttempts times. An event that still fails with a poison error is parked —
// recorded with its reason in parked_events — and the checkpoint moves past it, so one bad
// event cannot stall the projection. A transient error is returned for the caller to back off
// and retry.
func (a *applier) recover(ctx context.Context, cur cursor, failed *applyError, limit, maxAttempts int) (parked bool, err error) {
	until := before(failed.env)
	if _, err := a.stepUntil(ctx, cur, limit, &until); err != nil {
		return false, err
	}
	var last error
	for attempt := 1; attempt <= maxAttempts; attempt++ {
		_, err := a.stepPage(ctx, cur, 1, false, nil)
		if err == nil {
			return false, nil
		}
		last = err
		if !isPoison(err) {
			return false, err
		}
	}
	return true, a.park(ctx, cur, failed.env, last, maxAttempts)
}

func (a *applier) park(ctx context.Context, cur cursor, env events.Envelope, reason error, attempts int) error {
	tx, cp, err := cur.begin(ctx)
	if err != nil {
		return err
	}
	defer tx.Rollback(ctx) //nolint:errcheck // a no-op after Commit
	page, err := store.ReadAfter(ctx, tx, cp, 1, a.handles)
	if err != nil {
		return err
	}
	if len(page.Events) == 0 || page.Events[0].EventID != env.EventID {
		return nil // another runner moved on meanwhile
	}
	if _, err := tx.Exec(ctx, `INSERT INTO parked_events (projection, event_id, global_position, type, reason, attempts)
VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (projection, event_id) DO UPDATE SET reason = excluded.reason, attempts = excluded.attempts`,
		a.p.Name(), env.EventID, env.GlobalPosition, env.Type, reason.Error(), attempts); err != nil {
		return fmt.Errorf("park event %s: %w", env.EventID, err)
	}
	next := store.After(env)
	if err := cur.save(ctx, tx, next); err != nil {
		return err
	}
	if err := tx.Commit(ctx); err != nil {
		return fmt.Errorf("park event %s: %w", env.EventID, err)
	}
	cur.committed(next)
	cur.parked(env.EventID)
	return nil
}

// liveCursor keeps the checkpoint in the checkpoints table, locked for the transaction so
// one runner per projection applies at a time, across processes.
type liveCursor struct {
	pool interface {
		store.Querier
		Begin(ctx context.Context) (pgx.Tx, error)
	}
	name string
}

// checkpointName is the projection's row in the checkpoints table.
func checkpointName(projection string) string { return "projection:" + projection }

func (c liveCursor) begin(ctx context.Context) (pgx.Tx, store.Checkpoint, error) {
	tx, err := c.pool.Begin(ctx)
	if err != nil {
		return nil, store.Checkpoint{}, fmt.Errorf("begin: %w", err)
	}
	// Read models are rebuildable from the log, so a crash may lose the last commits of a
	// projection (they are applied again from its checkpoint) but never the log itself.
	if _, err := tx.Exec(ctx, `SET LOCAL synchronous_commit = off; SET LOCAL lock_timeout = '30s'; SET LOCAL plan_cache_mode = force_generic_plan`); err != nil {
		tx.Rollback(ctx) //nolint:errcheck
		return nil, store.Checkpoint{}, fmt.Errorf("configure transaction: %w", err)
	}
	var cp store.Checkpoint
	if err := tx.QueryRow(ctx, `SELECT last_tx, last_position FROM checkpoints WHERE name = $1 FOR UPDATE`,
		checkpointName(c.name)).Scan(&cp.TxID, &cp.Position); err != nil {
		tx.Rollback(ctx) //nolint:errcheck
		return nil, store.Checkpoint{}, fmt.Errorf("lock checkpoint of %s: %w", c.name, err)
	}
	return tx, cp, nil
}

func (c liveCursor) save(ctx context.Context, tx pgx.Tx, cp store.Checkpoint) error {
	if _, err := tx.Exec(ctx, `UPDATE checkpoints SET last_tx = $2, last_position = $3, updated_at = now() WHERE name = $1`,
		checkpointName(c.name), cp.TxID, cp.Position); err != nil {
		return fmt.Errorf("move checkpoint of %s: %w", c.name, err)
	}
	return nil
}

// sqlSkip moves a checkpoint that is still where the caller left it. It is one statement, its
// own transaction, with synchronous_commit off for that transaction (set_config local to it; the
// commit record is written before the setting is reset), as for the page transactions.
const sqlSkip = `WITH async AS (SELECT set_config('synchronous_commit', 'off', true))
UPDATE checkpoints SET last_tx = $2, last_position = $3, updated_at = now()
WHERE name = $1 AND last_tx = $4 AND last_position = $5 AND EXISTS (SELECT FROM async)`

func (c liveCursor) skip(ctx context.Context, from, to store.Checkpoint) (bool, error) {
	tag, err := c.pool.Exec(ctx, sqlSkip, checkpointName(c.name), to.TxID, to.Position, from.TxID, from.Position)
	if err != nil {
		return false, fmt.Errorf("move checkpoint of %s: %w", c.name, err)
	}
	return tag.RowsAffected() == 1, nil
}

func (liveCursor) committed(store.Checkpoint) {}

func (liveCursor) parked(uuid.UUID) {}

func (c liveCursor) reader() store.Querier { return c.pool }
