package relay

import (
	"context"
	"errors"
	"fmt"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/redis/go-redis/v9"

	"herald/events/store"
)

// loadEpoch reads the epoch the relay last wrote to Redis ("" before the first run).
func (r *Relay) loadEpoch(ctx context.Context) (string, error) {
	var epoch string
	err := r.pool.QueryRow(ctx, `SELECT epoch FROM relay_state WHERE name = $1`, r.cfg.Name).Scan(&epoch)
	if errors.Is(err, pgx.ErrNoRows) {
		return "", nil
	}
	if err != nil {
		return "", fmt.Errorf("read relay epoch: %w", err)
	}
	return epoch, nil
}

// checkEpoch compares Redis's epoch key with ours. If it is missing or different, Redis has
// lost its data (a restart without persistence, FLUSHALL, a failover to an empty replica): the
// streams, consumer groups and pending entries are gone. The relay then rewinds its checkpoint
// to the oldest consumer checkpoint, so everything some consumer has not applied is published
// again, writes a new epoch, and rings the doorbell.
func (r *Relay) checkEpoch(ctx context.Context, epoch string, forceDoorbell func()) (string, error) {
	got, err := r.redis.Get(ctx, r.cfg.Transport.EpochKey()).Result()
	if err != nil && !errors.Is(err, redis.Nil) {
		return epoch, fmt.Errorf("read epoch key: %w", err)
	}
	if epoch != "" && got == epoch {
		return epoch, nil
	}
	rewind, err := r.oldestConsumerCheckpoint(ctx)
	if err != nil {
		return epoch, err
	}
	next := uuid.NewString()
	err = pgx.BeginFunc(ctx, r.pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `UPDATE checkpoints SET last_tx = $2, last_position = $3, updated_at = now()
WHERE name = $1 AND (last_tx, last_position) > ($2::xid8, $3::bigint)`, r.cfg.Name, rewind.TxID, rewind.Position); err != nil {
			return fmt.Errorf("rewind relay checkpoint: %w", err)
		}
		if _, err := tx.Exec(ctx, `INSERT INTO relay_state (name, epoch) VALUES ($1, $2)
ON CONFLICT (name) DO UPDATE SET epoch = excluded.epoch, updated_at = now()`, r.cfg.Name, next); err != nil {
			return fmt.Errorf("store relay epoch: %w", err)
		}
		return nil
	})
	if err != nil {
		return epoch, err
	}
	// Written after Postgres commits: if this fails, the next check finds the key still
	// missing and rewinds again, which only republishes more.
	if err := r.redis.Set(ctx, r.cfg.Transport.EpochKey(), next, 0).Err(); err != nil {
		return epoch, fmt.Errorf("write epoch key: %w", err)
	}
	if epoch != "" {
		r.log.Warn().Str("old_epoch", epoch).Str("redis_epoch", got).
			Uint64("rewind_tx", rewind.TxID).Int64("rewind_position", rewind.Position).
			Msg("Redis lost its data: republishing what consumers have not applied")
		r.metrics.republishes.Inc()
		r.setStatus(func(s *Status) { s.Republishes++ })
	}
	forceDoorbell()
	return next, nil
}

// oldestConsumerCheckpoint is the least checkpoint of every consumer recorded in Postgres
// (projections, and any per-event consumer that records its low-water mark), or the start.
func (r *Relay) oldestConsumerCheckpoint(ctx context.Context) (store.Checkpoint, error) {
	var cp store.Checkpoint
	err := r.pool.QueryRow(ctx, `SELECT last_tx, last_position FROM checkpoints WHERE name <> $1
ORDER BY last_tx, last_position LIMIT 1`, r.cfg.Name).Scan(&cp.TxID, &cp.Position)
	if errors.Is(err, pgx.ErrNoRows) {
		return store.Checkpoint{}, nil
	}
	if err != nil {
		return cp, fmt.Errorf("read consumer checkpoints: %w", err)
	}
	return cp, nil
}
