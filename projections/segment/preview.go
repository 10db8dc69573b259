package segment

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/jackc/pgx/v5"
)

// Config tunes Counter.
type Config struct {
	// StatementTimeout bounds each statement of a count or preview (statement_timeout, local to
	// its transaction). Default 5 s.
	StatementTimeout time.Duration
	// SampleSize is how many phones Preview lists. Default 100, at most 1,000.
	SampleSize int
}

func (c Config) withDefaults() Config {
	if c.StatementTimeout == 0 {
		c.StatementTimeout = 5 * time.Second
	}
	if c.SampleSize == 0 {
		c.SampleSize = 100
	}
	return c
}

// Validate reports every problem of the configuration.
func (c Config) Validate() error {
	var errs []error
	if c.StatementTimeout < 0 {
		errs = append(errs, errors.New("segment: StatementTimeout must not be negative"))
	}
	if c.SampleSize < 0 || c.SampleSize > 1000 {
		errs = append(errs, errors.New("segment: SampleSize must be between 0 (default 100) and 1000"))
	}
	return errors.Join(errs...)
}

// Beginner is *pgxpool.Pool, *pgx.Conn or a pgx.Tx (a nested transaction is a savepoint).
type Beginner interface {
	BeginTx(ctx context.Context, opts pgx.TxOptions) (pgx.Tx, error)
}

// Counter runs rules against the users table of the database's search_path.
type Counter struct {
	db  Beginner
	cfg Config
}

// NewCounter checks the configuration and returns a Counter.
func NewCounter(db Beginner, cfg Config) (*Counter, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	return &Counter{db: db, cfg: cfg.withDefaults()}, nil
}

// Preview is a rule's audience at one instant.
type Preview struct {
	Count  int64
	Sample []string // up to SampleSize phones, in phone order
}

// Count returns how many users match the rule. Params.ArgOffset is ignored.
func (c *Counter) Count(ctx context.Context, r Rule, p Params) (int64, error) {
	pv, err := c.run(ctx, r, p, false)
	return pv.Count, err
}

// Preview returns the count and a sample of the matching users from one snapshot (a read-only
// repeatable-read transaction). Params.ArgOffset is ignored.
func (c *Counter) Preview(ctx context.Context, r Rule, p Params) (Preview, error) {
	return c.run(ctx, r, p, true)
}

func (c *Counter) run(ctx context.Context, r Rule, p Params, sample bool) (Preview, error) {
	p.Now, p.ArgOffset = p.now(), 0 // one instant for both statements
	where, args, err := Compile(r, p)
	if err != nil {
		return Preview{}, err
	}
	var pv Preview
	err = pgx.BeginTxFunc(ctx, c.db, pgx.TxOptions{IsoLevel: pgx.RepeatableRead, AccessMode: pgx.ReadOnly}, func(tx pgx.Tx) error {
		// Custom plans always: a rule's selectivity depends on its values (the generic plan of the
		// 1M-user benchmark rule was slower than its custom plan). No JIT: the plan of a count
		// grows with the table (the 1M-user rule costs about 53,000), and past jit_above_cost
		// (100,000) every parallel process compiles it on its own; past the inlining and
		// optimization thresholds (500,000) that compile took 1.6 s of CPU when forced on the
		// 1M-user rule, whose whole count takes 0.3 s of CPU without it.
		ms := strconv.FormatInt(c.cfg.StatementTimeout.Milliseconds(), 10)
		if _, err := tx.Exec(ctx, `SELECT set_config('statement_timeout', $1, true), set_config('plan_cache_mode', 'force_custom_plan', true), set_config('jit', 'off', true)`, ms); err != nil {
			return fmt.Errorf("segment: settings: %w", err)
		}
		if err := tx.QueryRow(ctx, `SELECT count(*) FROM users u WHERE `+where, args...).Scan(&pv.Count); err != nil {
			return fmt.Errorf("segment: count: %w", err)
		}
		if !sample {
			return nil
		}
		pv.Sample = []string{}
		if pv.Count == 0 {
			return nil
		}
		p.ArgOffset = 1 // $1 is the sample size
		where, args, err := Compile(r, p)
		if err != nil {
			return err
		}
		rows, err := tx.Query(ctx, `SELECT u.phone FROM users u WHERE `+where+` ORDER BY u.phone LIMIT $1`,
			append([]any{c.cfg.SampleSize}, args...)...)
		if err != nil {
			return fmt.Errorf("segment: sample: %w", err)
		}
		if pv.Sample, err = pgx.CollectRows(rows, pgx.RowTo[string]); err != nil {
			return fmt.Errorf("segment: sample: %w", err)
		}
		return nil
	})
	return pv, err
}
