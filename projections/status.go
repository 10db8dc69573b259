package projections

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"herald/events/store"
)

// Status is what /readyz and operators see of one projection.
type Status struct {
	Name       string           `json:"name"`
	Checkpoint store.Checkpoint `json:"checkpoint"`
	// LagSeconds is the age of the oldest event the projection has not applied yet.
	LagSeconds float64 `json:"lag_seconds"`
	Parked     int     `json:"parked"`
	// Stuck is true while the projection is failing on an event and retrying.
	Stuck      bool      `json:"stuck"`
	StuckSince time.Time `json:"stuck_since,omitzero"`
	LastError  string    `json:"last_error,omitempty"`
}

// Status reports every projection, reading checkpoints and lag from Postgres so the answer
// holds whichever process is applying.
func (r *Runner) Status(ctx context.Context) ([]Status, error) {
	out := make([]Status, 0, len(r.projections))
	for _, p := range r.projections {
		s := Status{Name: p.Name()}
		cp, err := Checkpoint(ctx, r.pool, p.Name())
		if err != nil && !errors.Is(err, pgx.ErrNoRows) {
			return nil, err
		}
		s.Checkpoint = cp
		var oldest *time.Time
		// The first unapplied event, found with one index-only probe of events_type_position_idx
		// per type: a type filter on the primary-key scan read the whole rest of the log when no
		// event of the types was left.
		if err := r.pool.QueryRow(ctx, `SELECT ev.recorded_at FROM (
    SELECT e.transaction_id, e.global_position FROM unnest($3::text[]) AS t(type)
    CROSS JOIN LATERAL (SELECT transaction_id, global_position FROM events
        WHERE type = t.type AND (transaction_id, global_position) > ($1::xid8, $2::bigint)
        ORDER BY transaction_id, global_position LIMIT 1) e
    ORDER BY e.transaction_id, e.global_position LIMIT 1) first
JOIN events ev USING (transaction_id, global_position)`, cp.TxID, cp.Position, p.Handles()).Scan(&oldest); err != nil && !errors.Is(err, pgx.ErrNoRows) {
			return nil, fmt.Errorf("lag of %s: %w", p.Name(), err)
		}
		if oldest != nil {
			s.LagSeconds = max(0, time.Since(*oldest).Seconds())
		}
		if err := r.pool.QueryRow(ctx, `SELECT count(*) FROM parked_events WHERE projection = $1`, p.Name()).Scan(&s.Parked); err != nil {
			return nil, fmt.Errorf("parked events of %s: %w", p.Name(), err)
		}
		r.mu.Lock()
		if h := r.health[p.Name()]; h.stuck {
			s.Stuck, s.StuckSince, s.LastError = true, h.since, h.lastError
		}
		r.mu.Unlock()
		out = append(out, s)
	}
	return out, nil
}
