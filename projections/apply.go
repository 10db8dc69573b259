package projections

import (
	"context"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"

	"herald/events"
	"herald/events/store"
)

// cursor is where an applier keeps its checkpoint: the checkpoints table for the live path,
// memory for a rebuild. begin opens the transaction the page is applied in.
type cursor interface {
	begin(ctx context.Context) (pgx.Tx, store.Checkpoint, error)
	save(ctx context.Context, tx pgx.Tx, cp store.Checkpoint) error
	committed(cp store.Checkpoint)
}

// applier applies the log to one projection.
type applier struct {
	p        Projection
	registry *events.Registry
	handles  []string
}

func newApplier(p Projection, registry *events.Registry) *applier {
	return &applier{p: p, registry: registry, handles: p.Handles()}
}

// applyPage reads up to limit events after cp inside tx and applies them. On failure the
// error is an *applyError naming the event, and tx must be rolled back.
func (a *applier) applyPage(ctx context.Context, tx pgx.Tx, cp store.Checkpoint, limit int) (store.Page, error) {
	page, err := store.ReadAfter(ctx, tx, cp, limit, a.handles)
	if err != nil {
		return page, err
	}
	ptx := newPipelineTx(tx, page.Events)
	for i, env := range page.Events {
		ptx.current = i
		e, err := a.registry.Decode(env)
		if err == nil {
			err = a.p.Apply(ctx, ptx, env, e)
		}
		if err != nil {
			var ae *applyError
			if errors.As(err, &ae) {
				return page, ae
			}
			return page, &applyError{index: i, env: env, err: err}
		}
	}
	return page, ptx.flush(ctx)
}

// stepResult is one committed page.
type stepResult struct {
	applied  int
	caughtUp bool
	last     events.Envelope // the last event applied, if any
}

// step applies one page in its own transaction and moves the checkpoint with it.
func (a *applier) step(ctx context.Context, cur cursor, limit int) (stepResult, error) {
	tx, cp, err := cur.begin(ctx)
	if err != nil {
		return stepResult{}, err
	}
	defer tx.Rollback(ctx) //nolint:errcheck // a no-op after Commit
	page, err := a.applyPage(ctx, tx, cp, limit)
	if err != nil {
		return stepResult{}, err
	}
	if err := cur.save(ctx, tx, page.Next); err != nil {
		return stepResult{}, err
	}
	if err := tx.Commit(ctx); err != nil {
		return stepResult{}, fmt.Errorf("commit %s: %w", a.p.Name(), err)
	}
	cur.committed(page.Next)
	res := stepResult{applied: len(page.Events), caughtUp: page.CaughtUp}
	if n := len(page.Events); n > 0 {
		res.last = page.Events[n-1]
	}
	return res, nil
}

// recover handles a failed page: it commits the events before the failing one, then retries
// the failing event alone up to maxAttempts times. An event that still fails with a poison
// error is parked — recorded with its reason in parked_events — and the checkpoint moves past
// it, so one bad event cannot stall the projection. A transient error is returned for the
// caller to back off and retry.
func (a *applier) recover(ctx context.Context, cur cursor, failed *applyError, maxAttempts int) (parked bool, err error) {
	if failed.index > 0 {
		if _, err := a.step(ctx, cur, failed.index); err != nil {
			return false, err
		}
	}
	var last error
	for attempt := 1; attempt <= maxAttempts; attempt++ {
		_, err := a.step(ctx, cur, 1)
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
	return nil
}

// liveCursor keeps the checkpoint in the checkpoints table, locked for the transaction so
// one runner per projection applies at a time, across processes.
type liveCursor struct {
	pool interface {
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
	if _, err := tx.Exec(ctx, `SET LOCAL synchronous_commit = off; SET LOCAL lock_timeout = '30s'`); err != nil {
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

func (liveCursor) committed(store.Checkpoint) {}
