package projections

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/rs/zerolog"

	"herald/events"
)

// EraserConfig tunes the Eraser.
type EraserConfig struct {
	// Interval is how often pending deletions are looked for.
	Interval time.Duration
	// After names the projections that must have applied a deletion before its events are
	// erased (they drop the user's rows when they apply it). Default: every read model that
	// holds personal data.
	After []string
	// Batch bounds the deletions erased per round.
	Batch int
}

func (c EraserConfig) withDefaults() EraserConfig {
	if c.Interval == 0 {
		c.Interval = time.Second
	}
	if c.After == nil {
		c.After = []string{Users{}.Name(), Subscriptions{}.Name(), InboundMessages{}.Name(), DeliveryReceipts{}.Name()}
	}
	if c.Batch == 0 {
		c.Batch = 100
	}
	return c
}

// Validate lists every problem.
func (c EraserConfig) Validate() error {
	var errs []error
	if c.Interval < 10*time.Millisecond {
		errs = append(errs, fmt.Errorf("eraser: Interval must be ≥ 10ms, got %s", c.Interval))
	}
	if c.Batch < 1 {
		errs = append(errs, fmt.Errorf("eraser: Batch must be ≥ 1, got %d", c.Batch))
	}
	return errors.Join(errs...)
}

// Eraser removes a deleted user's personal data from the log. Once every read model in After
// has applied a user.deleted, it rewrites, in one transaction:
//   - every earlier event of the user's stream into an event.erased (payload: the deletion's
//     id), moved to the stream erased-<deletion id>, so neither payload nor stream id names
//     the person any more;
//   - the deletion itself into that stream, without the phone;
//   - the status callbacks before the deletion that named the phone, without it (and without
//     the raw To);
//   - the API's remembered Idempotency-Key answers that name the phone.
//
// Event ids, positions and stream versions stay, so the audit log still shows that events
// existed, when, and that they were erased by which deletion. Rebuilds then see nothing of the
// person: the erased events are handled by no projection. Events appended after the deletion
// (the number writing again) are a new user and stay.
type Eraser struct {
	cfg  EraserConfig
	pool *pgxpool.Pool
	log  zerolog.Logger
}

// NewEraser checks the configuration.
func NewEraser(cfg EraserConfig, pool *pgxpool.Pool, log zerolog.Logger) (*Eraser, error) {
	cfg = cfg.withDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	return &Eraser{cfg: cfg, pool: pool, log: log.With().Str("component", "eraser").Logger()}, nil
}

// Run erases pending deletions every Interval until ctx ends.
func (e *Eraser) Run(ctx context.Context) error {
	t := time.NewTicker(e.cfg.Interval)
	defer t.Stop()
	for {
		if n, err := e.EraseDue(ctx); err != nil && ctx.Err() == nil {
			e.log.Error().Err(err).Msg("erasure failed; will retry")
		} else if n > 0 {
			e.log.Info().Int("deletions", n).Msg("erased deleted users' personal data from the log")
		}
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}

// sqlDueDeletions finds deletions still on their user stream that every read model in $1 has
// applied, oldest first.
const sqlDueDeletions = `SELECT e.event_id::text, e.stream_id, e.stream_version, coalesce(e.data->>'phone', '')
FROM events e
WHERE e.type = 'user.deleted' AND e.stream_id LIKE 'user-%'
  AND (SELECT count(*) FROM checkpoints c
       WHERE c.name = ANY($1) AND (c.last_tx, c.last_position) >= (e.transaction_id, e.global_position)) = cardinality($1)
ORDER BY e.global_position
LIMIT $2`

// EraseDue erases every deletion that is due, and says how many.
func (e *Eraser) EraseDue(ctx context.Context) (int, error) {
	names := make([]string, len(e.cfg.After))
	for i, n := range e.cfg.After {
		names[i] = checkpointName(n)
	}
	type deletion struct {
		id, stream, phone string
		version           int
	}
	rows, err := e.pool.Query(ctx, sqlDueDeletions, names, e.cfg.Batch)
	if err != nil {
		return 0, fmt.Errorf("find due deletions: %w", err)
	}
	due, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (deletion, error) {
		var d deletion
		err := r.Scan(&d.id, &d.stream, &d.version, &d.phone)
		return d, err
	})
	if err != nil {
		return 0, fmt.Errorf("find due deletions: %w", err)
	}
	for i, d := range due {
		if err := e.erase(ctx, d.id, d.stream, d.version, d.phone); err != nil {
			return i, err
		}
	}
	return len(due), nil
}

func (e *Eraser) erase(ctx context.Context, deletionID, stream string, version int, phone string) error {
	tx, err := e.pool.Begin(ctx)
	if err != nil {
		return fmt.Errorf("erase %s: %w", stream, err)
	}
	defer func() { _ = tx.Rollback(ctx) }()
	erased := events.ErasedStream(deletionID)
	batch := &pgx.Batch{}
	batch.Queue(`SET LOCAL herald.erase = 'on'`)
	batch.Queue(`UPDATE events SET stream_id = $2, data = data - 'phone' WHERE event_id = $1::uuid`, deletionID, erased)
	batch.Queue(`UPDATE events SET stream_id = $2, type = $4, schema_version = 1, data = jsonb_build_object('erased_by', $3::text)
WHERE stream_id = $1 AND stream_version < $5`, stream, erased, deletionID, events.TypeEventErased, version)
	if phone != "" {
		// Only callbacks before the deletion: the read model keeps the phone of later ones too.
		batch.Queue(`UPDATE events SET data = jsonb_set(data - 'phone', '{raw}', coalesce(data->'raw', '{}') - 'To')
WHERE type = $1 AND data->>'phone' = $2
  AND (transaction_id, global_position) < (SELECT transaction_id, global_position FROM events WHERE event_id = $3::uuid)`,
			events.TypeMessageStatusReceived, phone, deletionID)
	}
	if phone != "" {
		// The API remembers answers to Idempotency-Key requests for a day; forget those naming them.
		batch.Queue(`DELETE FROM idempotency_keys WHERE strpos(convert_from(response, 'UTF8'), $1) > 0`, phone)
	}
	if err := tx.SendBatch(ctx, batch).Close(); err != nil {
		return fmt.Errorf("erase %s: %w", stream, err)
	}
	if err := tx.Commit(ctx); err != nil {
		return fmt.Errorf("erase %s: commit: %w", stream, err)
	}
	return nil
}
