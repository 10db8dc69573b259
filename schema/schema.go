// Package schema holds Herald's versioned SQL migrations, embedded in the binary, and applies them.
package schema

import (
	"context"
	"embed"
	"errors"
	"fmt"
	"hash/fnv"
	"io/fs"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/jackc/pgx/v5/stdlib"
	"github.com/pressly/goose/v3"
	"github.com/pressly/goose/v3/lock"
)

//go:embed *.sql
var migrations embed.FS

// Migrations returns the embedded migration files.
func Migrations() fs.FS { return migrations }

func provider(ctx context.Context, pool *pgxpool.Pool) (*goose.Provider, func(), error) {
	// One migration lock per schema: installations (and test schemas) sharing a database do
	// not wait for each other.
	var schemaName string
	if err := pool.QueryRow(ctx, `SELECT current_schema()`).Scan(&schemaName); err != nil {
		return nil, nil, fmt.Errorf("migrate: current schema: %w", err)
	}
	h := fnv.New64a()
	h.Write([]byte("herald.migrate." + schemaName))
	db := stdlib.OpenDBFromPool(pool)
	locker, err := lock.NewPostgresSessionLocker(lock.WithLockID(int64(h.Sum64()>>1)), lock.WithLockTimeout(1, 300))
	if err != nil {
		db.Close()
		return nil, nil, fmt.Errorf("migrate: locker: %w", err)
	}
	p, err := goose.NewProvider(goose.DialectPostgres, db, migrations, goose.WithSessionLocker(locker))
	if err != nil {
		db.Close()
		return nil, nil, fmt.Errorf("migrate: %w", err)
	}
	return p, func() { db.Close() }, nil
}

// Pending reports whether migrations remain to be applied.
func Pending(ctx context.Context, pool *pgxpool.Pool) (bool, error) {
	p, done, err := provider(ctx, pool)
	if err != nil {
		return false, err
	}
	defer done()
	pending, err := p.HasPending(ctx)
	if err != nil {
		return false, fmt.Errorf("check migrations: %w", err)
	}
	return pending, nil
}

// Migrate applies every pending migration to the schema the pool's search_path names first.
// Re-running it is a no-op. Concurrent callers are serialised by a Postgres advisory lock.
func Migrate(ctx context.Context, pool *pgxpool.Pool) (applied []string, err error) {
	p, done, err := provider(ctx, pool)
	if err != nil {
		return nil, err
	}
	defer done()
	results, err := p.Up(ctx)
	for _, r := range results {
		applied = append(applied, r.Source.Path)
	}
	if err != nil {
		var partial *goose.PartialError
		if errors.As(err, &partial) && partial.Failed != nil {
			return applied, fmt.Errorf("migrate: %s: %w", partial.Failed.Source.Path, partial.Err)
		}
		return applied, fmt.Errorf("migrate: %w", err)
	}
	return applied, nil
}
