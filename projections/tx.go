package projections

import (
	"context"
	"errors"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"herald/events"
)

// pipelineTx implements Tx over a pgx.Tx, remembering which event queued each statement so
// a failure in the pipeline is blamed on the right event.
type pipelineTx struct {
	tx      pgx.Tx
	batch   *pgx.Batch
	owners  []int // owners[i] is the index of the event that queued statement i
	current int
	envs    []events.Envelope
}

func newPipelineTx(tx pgx.Tx, envs []events.Envelope) *pipelineTx {
	return &pipelineTx{tx: tx, batch: &pgx.Batch{}, envs: envs}
}

func (p *pipelineTx) Queue(sql string, args ...any) {
	p.batch.Queue(sql, args...)
	p.owners = append(p.owners, p.current)
}

// flush sends the queued statements; an error is an *applyError for the event that queued
// the failing statement.
func (p *pipelineTx) flush(ctx context.Context) error {
	if p.batch.Len() == 0 {
		return nil
	}
	batch, owners := p.batch, p.owners
	p.batch, p.owners = &pgx.Batch{}, nil
	results := p.tx.SendBatch(ctx, batch)
	for i := range owners {
		if _, err := results.Exec(); err != nil {
			results.Close()
			return &applyError{index: owners[i], env: p.envs[owners[i]], err: err}
		}
	}
	return results.Close()
}

func (p *pipelineTx) Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error) {
	if err := p.flush(ctx); err != nil {
		return pgconn.CommandTag{}, err
	}
	return p.tx.Exec(ctx, sql, args...)
}

func (p *pipelineTx) Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error) {
	if err := p.flush(ctx); err != nil {
		return nil, err
	}
	return p.tx.Query(ctx, sql, args...)
}

// flushErrRow reports a pipeline failure through pgx.Row.
type flushErrRow struct{ err error }

func (r flushErrRow) Scan(...any) error { return r.err }

func (p *pipelineTx) QueryRow(ctx context.Context, sql string, args ...any) pgx.Row {
	if err := p.flush(ctx); err != nil {
		return flushErrRow{err: err}
	}
	return p.tx.QueryRow(ctx, sql, args...)
}

// queuedStmt is a statement queued through Tx.Queue.
type queuedStmt struct {
	sql  string
	args []any
}

// errNeedsTx is what a recordingTx answers a read with.
var errNeedsTx = errors.New("projections: statements prepared ahead of the transaction cannot read")

// recordingTx is the Tx of an ApplyBatch run ahead of the page's transaction (pageRead.prepare):
// it records queued statements, and refuses reads, noting that the projection tried one.
type recordingTx struct {
	stmts []queuedStmt
	read  bool
}

func (r *recordingTx) Queue(sql string, args ...any) {
	r.stmts = append(r.stmts, queuedStmt{sql: sql, args: args})
}

func (r *recordingTx) Exec(context.Context, string, ...any) (pgconn.CommandTag, error) {
	r.read = true
	return pgconn.CommandTag{}, errNeedsTx
}

func (r *recordingTx) Query(context.Context, string, ...any) (pgx.Rows, error) {
	r.read = true
	return nil, errNeedsTx
}

func (r *recordingTx) QueryRow(context.Context, string, ...any) pgx.Row {
	r.read = true
	return flushErrRow{err: errNeedsTx}
}
