// Package projections builds Herald's read models from the event log. A Projection declares its
// name, the event types it handles and the tables it owns; the Runner applies events to it in
// log order, in batches, moving its checkpoint in the same transaction (exactly-once effect);
// Rebuild replays the log into fresh tables and swaps them in.
package projections

import (
	"context"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"herald/events"
)

// Projection is one read model.
type Projection interface {
	// Name is stable: it keys the checkpoint and the consumer group. Renaming it means a
	// full rebuild.
	Name() string
	// Handles lists the event types applied; others are skipped (and the checkpoint moves).
	Handles() []string
	// Tables lists the read-model tables the projection owns, which Rebuild recreates.
	Tables() []string
	// Apply writes the effect of one event. It must be deterministic: derive every value,
	// timestamps included, from the envelope, so a rebuild yields the same rows.
	Apply(ctx context.Context, tx Tx, env events.Envelope, e events.Event) error
}

// BatchProjection is a Projection that can also apply a page of events with a few set-based
// statements (multi-row INSERT … SELECT FROM unnest(…) ON CONFLICT …, UPDATE … FROM unnest(…))
// instead of one statement per event. The applier uses ApplyBatch when a projection implements
// it; Apply stays the reference semantics.
type BatchProjection interface {
	Projection
	// ApplyBatch writes the effect of envs — decoded as evs, same length, in log order — exactly
	// as calling Apply on each in turn would. The usual way is to cut the page into runs of
	// consecutive events that one statement can apply (eachRun: the same statement, no key
	// twice) and queue one statement per run, in order. If it fails (or a queued statement
	// does), the applier rolls the page back and applies it again event by event, which names
	// and parks the event at fault; so ApplyBatch need not say which event failed.
	ApplyBatch(ctx context.Context, tx Tx, envs []events.Envelope, evs []events.Event) error
}

// Tx is the transaction a projection writes through. Queue adds a statement to a pipeline
// that is sent with the batch (one round trip for many events); Exec, Query and QueryRow send
// the pipeline first, for the projections that must read before they write.
type Tx interface {
	Queue(sql string, args ...any)
	Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error)
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
}

// PoisonError marks an error that no retry can fix (the event itself is wrong for this
// projection). Projections may wrap their own validation errors with Poison.
type PoisonError struct{ Err error }

func (e *PoisonError) Error() string { return "poison: " + e.Err.Error() }
func (e *PoisonError) Unwrap() error { return e.Err }

// Poison wraps err as a *PoisonError.
func Poison(err error) error { return &PoisonError{Err: err} }

// isPoison reports errors that are the event's fault: undecodable payloads, data errors
// (class 22) and constraint violations (class 23). Anything else — a lost connection, a
// timeout — is the environment's fault and is retried without parking.
func isPoison(err error) bool {
	var (
		poison *PoisonError
		decode *events.DecodeError
		pgErr  *pgconn.PgError
	)
	switch {
	case errors.As(err, &poison), errors.As(err, &decode):
		return true
	case errors.As(err, &pgErr):
		return len(pgErr.Code) == 5 && (pgErr.Code[:2] == "22" || pgErr.Code[:2] == "23")
	}
	return false
}

// applyError says which event of a batch failed.
type applyError struct {
	index int
	env   events.Envelope
	err   error
}

func (e *applyError) Error() string {
	return fmt.Sprintf("apply %s (event %s at %d): %v", e.env.Type, e.env.EventID, e.env.GlobalPosition, e.err)
}

func (e *applyError) Unwrap() error { return e.err }
