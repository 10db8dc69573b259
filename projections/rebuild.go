package projections

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"strings"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/rs/zerolog"

	"herald/events"
	"herald/events/store"
)

// RebuildConfig tunes Rebuild.
type RebuildConfig struct {
	// BatchSize is how many log rows one replay transaction reads (default 10,000).
	BatchSize   int
	MaxAttempts int
	// VisibleWait bounds how long Rebuild waits, before replaying, until the log is readable up
	// to the last event committed when it started (default 30 s). A transaction left open
	// anywhere on the server holds the read horizon back; past VisibleWait Rebuild fails naming
	// it, instead of replaying a log that looks empty.
	VisibleWait time.Duration
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
// checkpoint. Readers see the old tables until the commit and the new ones after it. The
// projection's parked events become those the replay parked: the rows of events it applied
// (fixed since they were parked) go in the same transaction.
//
// The copies carry only their primary key and unique constraints and indexes while the log is
// replayed (ON CONFLICT needs them, and a uniqueness violation must park the same event as on
// the live path); the other indexes are built once, after the replay, under their live names.
func Rebuild(ctx context.Context, pool *pgxpool.Pool, registry *events.Registry, p Projection, cfg RebuildConfig, log zerolog.Logger) (RebuildResult, error) {
	if cfg.BatchSize == 0 {
		cfg.BatchSize = 10_000
	}
	if cfg.MaxAttempts == 0 {
		cfg.MaxAttempts = 3
	}
	if cfg.VisibleWait == 0 {
		cfg.VisibleWait = 30 * time.Second
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
	last, err := store.Last(ctx, pool)
	if err != nil {
		return res, fmt.Errorf("rebuild %s: %w", p.Name(), err)
	}
	if err := waitReadable(ctx, pool, last, cfg.VisibleWait); err != nil {
		return res, fmt.Errorf("rebuild %s: %w", p.Name(), err)
	}
	shadow := shadowSchema(live, p.Name())
	later, err := createShadow(ctx, pool, live, shadow, p.Tables())
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
	// Fill the shadow tables outside the swap, in ordinary batches, until caught up.
	replay := func() error {
		for {
			step, err := a.step(ctx, cur, cfg.BatchSize)
			var failed *applyError
			if errors.As(err, &failed) {
				_, err = a.recover(ctx, cur, failed, cfg.BatchSize, cfg.MaxAttempts)
				step = stepResult{}
			}
			if err != nil {
				return fmt.Errorf("rebuild %s: %w", p.Name(), err)
			}
			res.Events += step.applied
			if step.caughtUp {
				return nil
			}
		}
	}
	if err := replay(); err != nil {
		return res, err
	}
	renames, err := finishShadow(ctx, pool, live, shadow, p.Tables(), later, log)
	if err != nil {
		return res, fmt.Errorf("rebuild %s: %w", p.Name(), err)
	}
	// What was appended while the indexes were built, so the swap has little left to apply.
	if err := replay(); err != nil {
		return res, err
	}
	tail, err := swap(ctx, pool, a, cur, live, shadow, p, renames, cfg.BatchSize)
	if err != nil {
		return res, fmt.Errorf("rebuild %s: swap: %w", p.Name(), err)
	}
	res.Events += tail
	res.Duration = time.Since(start)
	return res, nil
}

// waitReadable waits until readers can see the log up to last (normally store.Last: the last
// event committed when the caller started): until the read horizon (the oldest transaction
// still open anywhere on the server) has passed it. Until then a replay stops early — at the
// extreme it sees nothing — and a rebuild would "succeed" by swapping in tables that miss those
// events, with the checkpoint set back to where it stopped; a catch-up would return before it
// had applied them. It waits at most within (0: until ctx ends), then fails naming the oldest
// open transaction. Rebuild and CatchUp both wait here.
func waitReadable(ctx context.Context, pool *pgxpool.Pool, last store.Checkpoint, within time.Duration) error {
	if last == (store.Checkpoint{}) {
		return nil // an empty log
	}
	start := time.Now()
	delay := 5 * time.Millisecond
	for {
		var horizon uint64
		if err := pool.QueryRow(ctx, `SELECT pg_snapshot_xmin(pg_current_snapshot())`).Scan(&horizon); err != nil {
			if ctx.Err() != nil {
				return heldUntil(ctx, pool, last, start)
			}
			return fmt.Errorf("read horizon: %w", err)
		}
		if horizon > last.TxID {
			return nil
		}
		wait := delay
		if within > 0 {
			left := within - time.Since(start)
			if left < 0 {
				return horizonHeld(ctx, pool, last, within)
			}
			wait = min(wait, left+time.Millisecond)
		}
		select {
		case <-ctx.Done():
			return heldUntil(ctx, pool, last, start)
		case <-time.After(wait):
		}
		delay = min(2*delay, 250*time.Millisecond)
	}
}

// heldUntil is the error of a wait for the horizon that ctx ended: what ended it, and who held
// the horizon (asked on a context of its own, ctx being done).
func heldUntil(ctx context.Context, pool *pgxpool.Pool, last store.Checkpoint, start time.Time) error {
	c, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	return fmt.Errorf("%w: %w", ctx.Err(), horizonHeld(c, pool, last, time.Since(start).Round(time.Millisecond)))
}

// horizonHeld is the error of a rebuild that waited in vain for the read horizon: it names the
// oldest transaction still open, from pg_stat_activity (or pg_prepared_xacts).
func horizonHeld(ctx context.Context, pool *pgxpool.Pool, last store.Checkpoint, waited time.Duration) error {
	head := fmt.Sprintf("the log is not readable up to its last committed event (transaction %d, position %d) after waiting %s",
		last.TxID, last.Position, waited)
	var (
		pid                         int
		user, db, app, state, query string
		xid                         string
		age                         float64
	)
	err := pool.QueryRow(ctx, `SELECT pid, coalesce(usename, ''), coalesce(datname, ''), coalesce(application_name, ''),
    coalesce(state, ''), coalesce(extract(epoch FROM now() - xact_start), 0)::float8, backend_xid::text,
    coalesce(left(regexp_replace(query, '\s+', ' ', 'g'), 120), '')
FROM pg_stat_activity WHERE backend_xid IS NOT NULL AND pid <> pg_backend_pid()
ORDER BY age(backend_xid) DESC LIMIT 1`).Scan(&pid, &user, &db, &app, &state, &age, &xid, &query)
	if err == nil {
		return fmt.Errorf("%s: transaction %s of pid %d (user %s, database %s, application %q, %s, open for %s, last statement %q) "+
			"holds the read horizon back; end it (pg_terminate_backend(%d)) or retry later",
			head, xid, pid, user, db, app, state, (time.Duration(age * float64(time.Second))).Round(time.Millisecond), query, pid)
	}
	if !errors.Is(err, pgx.ErrNoRows) {
		return fmt.Errorf("%s; looking for the transaction holding the read horizon back: %w", head, err)
	}
	var gid, owner string
	err = pool.QueryRow(ctx, `SELECT gid, owner, coalesce(extract(epoch FROM now() - prepared), 0)::float8
FROM pg_prepared_xacts ORDER BY age(transaction) DESC LIMIT 1`).Scan(&gid, &owner, &age)
	if err == nil {
		return fmt.Errorf("%s: prepared transaction %q (owner %s, prepared %s ago) holds the read horizon back; COMMIT PREPARED or ROLLBACK PREPARED it",
			head, gid, owner, (time.Duration(age * float64(time.Second))).Round(time.Millisecond))
	}
	return fmt.Errorf("%s: an open transaction holds the read horizon back (see pg_stat_activity.backend_xid)", head)
}

func shadowSchema(live, projection string) string {
	name := live + "_rebuild_" + projection
	if len(name) > 63 {
		name = name[:63]
	}
	return name
}

// shadowIndex is an index of a live table, to be built on its shadow copy under the same name
// (the schemas differ, so the names do not collide, and the swap moves them in unchanged).
type shadowIndex struct {
	table, name string
	create      string // the statement that builds it on the shadow table
}

// createShadow makes empty copies of the tables in a fresh schema — columns, defaults, CHECK
// constraints and the rest of LIKE … INCLUDING ALL, but without indexes — and adds the primary
// keys, unique constraints and unique indexes at once. It returns the other indexes, to build
// after the replay.
func createShadow(ctx context.Context, pool *pgxpool.Pool, live, shadow string, tables []string) (later []shadowIndex, err error) {
	sh := pgx.Identifier{shadow}.Sanitize()
	if _, err := pool.Exec(ctx, "DROP SCHEMA IF EXISTS "+sh+" CASCADE; CREATE SCHEMA "+sh); err != nil {
		return nil, fmt.Errorf("create schema %s: %w", shadow, err)
	}
	for _, t := range tables {
		if _, err := pool.Exec(ctx, fmt.Sprintf("CREATE TABLE %s (LIKE %s INCLUDING ALL EXCLUDING INDEXES)",
			pgx.Identifier{shadow, t}.Sanitize(), pgx.Identifier{live, t}.Sanitize())); err != nil {
			return nil, fmt.Errorf("copy table %s: %w", t, err)
		}
		idx, err := liveIndexes(ctx, pool, live, shadow, t)
		if err != nil {
			return nil, err
		}
		for _, ix := range idx {
			if !ix.now {
				later = append(later, ix.shadowIndex)
				continue
			}
			if _, err := pool.Exec(ctx, ix.create); err != nil {
				return nil, fmt.Errorf("copy index %s of %s: %w", ix.name, t, err)
			}
		}
	}
	return later, nil
}

type liveIndex struct {
	shadowIndex
	now bool // a constraint or unique: needed while replaying
}

// liveIndexes lists the indexes of live.table with the statements that build them on
// shadow.table.
func liveIndexes(ctx context.Context, pool *pgxpool.Pool, live, shadow, table string) ([]liveIndex, error) {
	rows, err := pool.Query(ctx, `SELECT c.relname, pg_get_indexdef(i.indexrelid), i.indisunique,
    coalesce(con.conname, ''), coalesce(pg_get_constraintdef(con.oid), '')
FROM pg_index i
JOIN pg_class c ON c.oid = i.indexrelid
LEFT JOIN pg_constraint con ON con.conindid = i.indexrelid AND con.conrelid = i.indrelid AND con.contype IN ('p', 'u', 'x')
WHERE i.indrelid = $1::regclass
ORDER BY c.relname`, pgx.Identifier{live, table}.Sanitize())
	if err != nil {
		return nil, fmt.Errorf("list indexes of %s.%s: %w", live, table, err)
	}
	defer rows.Close()
	target := pgx.Identifier{shadow, table}.Sanitize()
	var out []liveIndex
	for rows.Next() {
		var (
			name, def, conname, condef string
			unique                     bool
		)
		if err := rows.Scan(&name, &def, &unique, &conname, &condef); err != nil {
			return nil, err
		}
		ix := liveIndex{shadowIndex: shadowIndex{table: table, name: name}, now: unique || conname != ""}
		if conname != "" {
			ix.create = fmt.Sprintf("ALTER TABLE %s ADD CONSTRAINT %s %s", target, pgx.Identifier{conname}.Sanitize(), condef)
		} else {
			m := indexHead.FindStringSubmatch(def)
			if m == nil {
				return nil, fmt.Errorf("index %s of %s.%s: unexpected definition %q", name, live, table, def)
			}
			ix.create = fmt.Sprintf("CREATE %sINDEX %s ON %s %s", m[1], pgx.Identifier{name}.Sanitize(), target, def[len(m[0]):])
		}
		out = append(out, ix)
	}
	return out, rows.Err()
}

// finishShadow builds the indexes left for after the replay and returns, per table, the shadow
// index names to rename to the live names after the swap: none when every index took its live
// name, as createShadow arranges, but the swap restores the live names whatever happened.
func finishShadow(ctx context.Context, pool *pgxpool.Pool, live, shadow string, tables []string, later []shadowIndex, log zerolog.Logger) (map[string]map[string]string, error) {
	if len(later) > 0 {
		conn, err := pool.Acquire(ctx)
		if err != nil {
			return nil, fmt.Errorf("build indexes: %w", err)
		}
		// One sort per index, in memory where it fits: the default (64 MB) spills the GIN build
		// over a million users to disk.
		_, err = conn.Exec(ctx, fmt.Sprintf("SET maintenance_work_mem = '256MB'; SET lock_timeout = %d", indexWait.Milliseconds()))
		size := map[string]int64{}
		for _, ix := range later {
			if _, ok := size[ix.table]; ok || err != nil {
				continue
			}
			var n int64
			err = conn.QueryRow(ctx, `SELECT pg_relation_size($1::regclass)`, pgx.Identifier{shadow, ix.table}.Sanitize()).Scan(&n)
			size[ix.table] = n
		}
		for _, ix := range later {
			if err != nil {
				break
			}
			err = buildIndex(ctx, conn.Conn(), shadow, ix, size[ix.table] < plainBelow, log)
		}
		if _, rerr := conn.Exec(ctx, "RESET maintenance_work_mem; RESET lock_timeout"); rerr != nil {
			conn.Conn().Close(ctx) //nolint:errcheck // the connection must not go back to the pool with the settings
		}
		conn.Release()
		if err != nil {
			return nil, err
		}
	}
	renames := map[string]map[string]string{}
	for _, t := range tables {
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

// indexWait bounds how long CREATE INDEX CONCURRENTLY waits for older snapshots (a variable
// for the tests).
var indexWait = 5 * time.Second

// plainBelow is the size of a shadow table under which its indexes are built the plain way at
// once (a variable for the tests): a plain build of a small table holds its transaction id for
// milliseconds, while a concurrent one first waits for every older snapshot in the database —
// on a busy server up to indexWait per index, for a table of a few rows.
var plainBelow int64 = 8 << 20

// buildIndex builds one index on a shadow table CONCURRENTLY, although nothing else writes the
// shadow table: a plain CREATE INDEX holds a transaction id for the whole build (seconds for a
// GIN index over a million users), which holds the read horizon back — and the live runners
// and the relay with it — for as long. A concurrent build waits first for every transaction of
// the database that holds an older snapshot, though: if one is still open after indexWait (an
// idle session left in a transaction, a pg_dump), the index is built the plain way instead. A
// small table's (plain) is built the plain way at once.
func buildIndex(ctx context.Context, conn *pgx.Conn, shadow string, ix shadowIndex, plain bool, log zerolog.Logger) error {
	if plain {
		if _, err := conn.Exec(ctx, ix.create); err != nil {
			return fmt.Errorf("build index %s of %s: %w", ix.name, ix.table, err)
		}
		return nil
	}
	_, err := conn.Exec(ctx, strings.Replace(ix.create, "CREATE INDEX ", "CREATE INDEX CONCURRENTLY ", 1))
	var pgErr *pgconn.PgError
	if err == nil || !errors.As(err, &pgErr) || pgErr.Code != "55P03" /* lock_not_available: lock_timeout */ {
		if err != nil {
			return fmt.Errorf("build index %s of %s: %w", ix.name, ix.table, err)
		}
		return nil
	}
	log.Warn().Str("index", ix.name).Dur("waited", indexWait).
		Msg("an older snapshot kept the concurrent index build waiting; building it in one transaction, which holds the read horizon back while it runs")
	// The failed concurrent build leaves an invalid index behind.
	if _, err := conn.Exec(ctx, "DROP INDEX IF EXISTS "+pgx.Identifier{shadow, ix.name}.Sanitize()); err != nil {
		return fmt.Errorf("drop the invalid index %s of %s: %w", ix.name, ix.table, err)
	}
	if _, err := conn.Exec(ctx, ix.create); err != nil {
		return fmt.Errorf("build index %s of %s: %w", ix.name, ix.table, err)
	}
	return nil
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
			pr, err := a.readPage(ctx, tx, cp, batchSize)
			if err != nil {
				return err
			}
			page, err := a.applyPage(ctx, tx, pr, false, nil)
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
		// The replay applied every event up to the checkpoint: what is parked for the
		// projection now is what this rebuild parked, and the rows it superseded go. (The
		// array is never NULL: "<> ALL(NULL)" would delete nothing.)
		if _, err := tx.Exec(ctx, `DELETE FROM parked_events WHERE projection = $1 AND event_id <> ALL($2::uuid[])`,
			p.Name(), append([]uuid.UUID{}, cur.parkedIDs...)); err != nil {
			return fmt.Errorf("clear superseded parked events: %w", err)
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
	// parkedIDs are the events this rebuild parked: at the swap, the only parked rows of the
	// projection left standing.
	parkedIDs []uuid.UUID
}

func (c *rebuildCursor) begin(ctx context.Context) (pgx.Tx, store.Checkpoint, error) {
	tx, err := c.pool.Begin(ctx)
	if err != nil {
		return nil, store.Checkpoint{}, fmt.Errorf("begin: %w", err)
	}
	if _, err := tx.Exec(ctx, "SET LOCAL search_path = "+c.searchPath+"; SET LOCAL synchronous_commit = off; SET LOCAL plan_cache_mode = force_generic_plan"); err != nil {
		tx.Rollback(ctx) //nolint:errcheck
		return nil, store.Checkpoint{}, fmt.Errorf("configure transaction: %w", err)
	}
	return tx, c.cp, nil
}

func (c *rebuildCursor) save(_ context.Context, _ pgx.Tx, cp store.Checkpoint) error {
	c.pending = cp
	return nil
}

func (c *rebuildCursor) skip(_ context.Context, from, _ store.Checkpoint) (bool, error) {
	return c.cp == from, nil // committed moves it
}

func (c *rebuildCursor) committed(cp store.Checkpoint) { c.cp = cp }

func (c *rebuildCursor) parked(eventID uuid.UUID) { c.parkedIDs = append(c.parkedIDs, eventID) }

func (c *rebuildCursor) reader() store.Querier { return c.pool }
