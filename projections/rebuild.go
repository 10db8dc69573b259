package projections

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/rs/zerolog"

	"herald/events"
	"herald/events/store"
)

// RebuildConfig tunes Rebuild.
type RebuildConfig struct {
	BatchSize   int
	MaxAttempts int
}

// RebuildResult says what a rebuild did.
type RebuildResult struct {
	Projection string
	Events     int
	Duration   time.Duration
}

// Rebuild replays the whole log (never Redis) into fresh copies of p's tables, then swaps them
// in atomically: the swap transaction locks the projection's checkpoint (so the live runner
// waits), applies whatever was appended meanwhile, replaces the live tables and sets the
// checkpoint. Readers see the old tables until the commit and the new ones after it.
func Rebuild(ctx context.Context, pool *pgxpool.Pool, registry *events.Registry, p Projection, cfg RebuildConfig, log zerolog.Logger) (RebuildResult, error) {
	if cfg.BatchSize == 0 {
		cfg.BatchSize = 5000
	}
	if cfg.MaxAttempts == 0 {
		cfg.MaxAttempts = 3
	}
	start := time.Now()
	res := RebuildResult{Projection: p.Name()}
	if err := EnsureCheckpoints(ctx, pool, []Projection{p}); err != nil {
		return res, err
	}
	var live string
	if err := pool.QueryRow(ctx, `SELECT current_schema()`).Scan(&live); err != nil {
		return res, fmt.Errorf("rebuild %s: current schema: %w", p.Name(), err)
	}
	shadow := shadowSchema(live, p.Name())
	renames, err := createShadow(ctx, pool, live, shadow, p.Tables())
	if err != nil {
		return res, fmt.Errorf("rebuild %s: %w", p.Name(), err)
	}
	defer func() {
		c, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if _, err := pool.Exec(c, "DROP SCHEMA IF EXISTS "+pgx.Identifier{shadow}.Sanitize()+" CASCADE"); err != nil {
			log.Warn().Err(err).Str("schema", shadow).Msg("could not drop the rebuild schema")
		}
	}()

	a := newApplier(p, registry)
	cur := &rebuildCursor{pool: pool, searchPath: pgx.Identifier{shadow}.Sanitize() + ", " + pgx.Identifier{live}.Sanitize()}
	// Fill the shadow tables outside the swap, in ordinary batches.
	for {
		step, err := a.step(ctx, cur, cfg.BatchSize)
		var failed *applyError
		if errors.As(err, &failed) {
			_, err = a.recover(ctx, cur, failed, cfg.MaxAttempts)
			step = stepResult{}
		}
		if err != nil {
			return res, fmt.Errorf("rebuild %s: %w", p.Name(), err)
		}
		res.Events += step.applied
		if step.caughtUp {
			break
		}
	}
	tail, err := swap(ctx, pool, a, cur, live, shadow, p, renames, cfg.BatchSize)
	if err != nil {
		return res, fmt.Errorf("rebuild %s: swap: %w", p.Name(), err)
	}
	res.Events += tail
	res.Duration = time.Since(start)
	return res, nil
}

func shadowSchema(live, projection string) string {
	name := live + "_rebuild_" + projection
	if len(name) > 63 {
		name = name[:63]
	}
	return name
}

// createShadow makes empty copies of the tables in a fresh schema and returns, per table, the
// shadow index names to rename back to the live names after the swap (LIKE … INCLUDING ALL
// generates its own index names).
func createShadow(ctx context.Context, pool *pgxpool.Pool, live, shadow string, tables []string) (map[string]map[string]string, error) {
	sh := pgx.Identifier{shadow}.Sanitize()
	if _, err := pool.Exec(ctx, "DROP SCHEMA IF EXISTS "+sh+" CASCADE; CREATE SCHEMA "+sh); err != nil {
		return nil, fmt.Errorf("create schema %s: %w", shadow, err)
	}
	renames := map[string]map[string]string{}
	for _, t := range tables {
		if _, err := pool.Exec(ctx, fmt.Sprintf("CREATE TABLE %s (LIKE %s INCLUDING ALL)",
			pgx.Identifier{shadow, t}.Sanitize(), pgx.Identifier{live, t}.Sanitize())); err != nil {
			return nil, fmt.Errorf("copy table %s: %w", t, err)
		}
		liveIdx, err := indexes(ctx, pool, live, t)
		if err != nil {
			return nil, err
		}
		shadowIdx, err := indexes(ctx, pool, shadow, t)
		if err != nil {
			return nil, err
		}
		renames[t] = map[string]string{}
		for shape, name := range shadowIdx {
			if want, ok := liveIdx[shape]; ok && want != name {
				renames[t][name] = want
			}
		}
	}
	return renames, nil
}

var indexHead = regexp.MustCompile(`^CREATE (UNIQUE )?INDEX \S+ ON \S+ `)

// indexes maps each index's shape (its definition without name and table) to its name.
func indexes(ctx context.Context, pool *pgxpool.Pool, schema, table string) (map[string]string, error) {
	rows, err := pool.Query(ctx, `SELECT indexname, indexdef FROM pg_indexes WHERE schemaname = $1 AND tablename = $2`, schema, table)
	if err != nil {
		return nil, fmt.Errorf("list indexes of %s.%s: %w", schema, table, err)
	}
	defer rows.Close()
	out := map[string]string{}
	for rows.Next() {
		var name, def string
		if err := rows.Scan(&name, &def); err != nil {
			return nil, err
		}
		m := indexHead.FindStringSubmatch(def)
		if m == nil {
			continue
		}
		out[m[1]+def[len(m[0]):]] = name
	}
	return out, rows.Err()
}

// swap finishes the replay and replaces the live tables in one transaction.
func swap(ctx context.Context, pool *pgxpool.Pool, a *applier, cur *rebuildCursor, live, shadow string, p Projection,
	renames map[string]map[string]string, batchSize int) (int, error) {
	applied := 0
	err := pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, "SET LOCAL search_path = "+cur.searchPath+"; SET LOCAL lock_timeout = '30s'"); err != nil {
			return err
		}
		// Holding the checkpoint row stops the live runner for the length of the swap.
		if _, err := tx.Exec(ctx, `SELECT 1 FROM checkpoints WHERE name = $1 FOR UPDATE`, checkpointName(p.Name())); err != nil {
			return fmt.Errorf("lock checkpoint: %w", err)
		}
		cp := cur.cp
		for {
			page, err := a.applyPage(ctx, tx, cp, batchSize)
			if err != nil {
				return err
			}
			applied += len(page.Events)
			cp = page.Next
			if page.CaughtUp {
				break
			}
		}
		for _, t := range p.Tables() {
			if _, err := tx.Exec(ctx, fmt.Sprintf("DROP TABLE %s; ALTER TABLE %s SET SCHEMA %s",
				pgx.Identifier{live, t}.Sanitize(), pgx.Identifier{shadow, t}.Sanitize(), pgx.Identifier{live}.Sanitize())); err != nil {
				return fmt.Errorf("swap table %s: %w", t, err)
			}
			for from, to := range renames[t] {
				if _, err := tx.Exec(ctx, fmt.Sprintf("ALTER INDEX %s RENAME TO %s",
					pgx.Identifier{live, from}.Sanitize(), pgx.Identifier{to}.Sanitize())); err != nil {
					return fmt.Errorf("rename index %s: %w", from, err)
				}
			}
		}
		if _, err := tx.Exec(ctx, `UPDATE checkpoints SET last_tx = $2, last_position = $3, updated_at = now() WHERE name = $1`,
			checkpointName(p.Name()), cp.TxID, cp.Position); err != nil {
			return fmt.Errorf("set checkpoint: %w", err)
		}
		return nil
	})
	return applied, err
}

// rebuildCursor keeps a rebuild's checkpoint in memory and points the transaction's
// search_path at the shadow schema first, so the projection's unqualified table names write
// to the shadow tables while the events table is still found in the live schema.
type rebuildCursor struct {
	pool       *pgxpool.Pool
	searchPath string
	cp         store.Checkpoint
	pending    store.Checkpoint
}

func (c *rebuildCursor) begin(ctx context.Context) (pgx.Tx, store.Checkpoint, error) {
	tx, err := c.pool.Begin(ctx)
	if err != nil {
		return nil, store.Checkpoint{}, fmt.Errorf("begin: %w", err)
	}
	if _, err := tx.Exec(ctx, "SET LOCAL search_path = "+c.searchPath+"; SET LOCAL synchronous_commit = off"); err != nil {
		tx.Rollback(ctx) //nolint:errcheck
		return nil, store.Checkpoint{}, fmt.Errorf("configure transaction: %w", err)
	}
	return tx, c.cp, nil
}

func (c *rebuildCursor) save(_ context.Context, _ pgx.Tx, cp store.Checkpoint) error {
	c.pending = cp
	return nil
}

func (c *rebuildCursor) committed(cp store.Checkpoint) { c.cp = cp }
