package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/redis/go-redis/v9"
	"github.com/rs/zerolog"

	"herald/schema"
)

func newLogger(cfg Config, stderr interface{ Write([]byte) (int, error) }) zerolog.Logger {
	level, _ := zerolog.ParseLevel(cfg.LogLevel) // validated
	var log zerolog.Logger
	if cfg.LogFormat == "console" {
		log = zerolog.New(zerolog.ConsoleWriter{Out: stderr, TimeFormat: time.TimeOnly})
	} else {
		log = zerolog.New(stderr)
	}
	host, _ := os.Hostname()
	return log.Level(level).With().Timestamp().Str("service", "herald").Str("host", host).Logger()
}

// connectPostgres opens the pool and proves the server answers; errors name DATABASE_URL.
// Connections carry application_name app (unless the URL sets one), so pg_stat_activity tells
// which process, and which roles, hold them. A server that answers "too many clients" or "starting
// up" is asked again for up to startupWait: both pass on their own, a wrong address does not.
func connectPostgres(ctx context.Context, dbURL, app string) (*pgxpool.Pool, error) {
	cfg, err := pgxpool.ParseConfig(dbURL)
	if err != nil {
		return nil, fmt.Errorf("DATABASE_URL: %w", err)
	}
	cfg.ConnConfig.ConnectTimeout = 5 * time.Second
	if cfg.ConnConfig.RuntimeParams["application_name"] == "" {
		cfg.ConnConfig.RuntimeParams["application_name"] = app
	}
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("DATABASE_URL: %w", err)
	}
	if err := pingPostgres(ctx, pool); err != nil {
		pool.Close()
		var pgErr *pgconn.PgError
		if errors.As(err, &pgErr) && pgErr.Code == "3D000" {
			return nil, fmt.Errorf("DATABASE_URL: database %q does not exist: run `herald migrate` (or `make run`) to create it", cfg.ConnConfig.Database)
		}
		return nil, fmt.Errorf("DATABASE_URL: cannot reach PostgreSQL at %s:%d: %w", cfg.ConnConfig.Host, cfg.ConnConfig.Port, err)
	}
	return pool, nil
}

// startupWait bounds how long connectPostgres waits out a server that is full or starting up.
const startupWait = 30 * time.Second

func pingPostgres(ctx context.Context, pool *pgxpool.Pool) error {
	deadline := time.Now().Add(startupWait)
	for {
		ping, cancel := context.WithTimeout(ctx, 10*time.Second)
		err := pool.Ping(ping)
		cancel()
		if err == nil || !passesOnItsOwn(err) || time.Now().After(deadline) {
			return err
		}
		select {
		case <-ctx.Done():
			return err
		case <-time.After(time.Second):
		}
	}
}

// passesOnItsOwn tells the server's refusals that wait can cure: class 53 (too many connections,
// out of memory or disk) and 57P03 (the server is starting up or shutting down).
func passesOnItsOwn(err error) bool {
	var pgErr *pgconn.PgError
	return errors.As(err, &pgErr) && (strings.HasPrefix(pgErr.Code, "53") || pgErr.Code == "57P03")
}

// connectRedis opens a client and proves the server answers; errors name REDIS_URL.
func connectRedis(ctx context.Context, redisURL string) (*redis.Client, *redis.Options, error) {
	opts, err := redis.ParseURL(redisURL)
	if err != nil {
		return nil, nil, fmt.Errorf("REDIS_URL: %w", err)
	}
	opts.DialTimeout = 5 * time.Second
	client := redis.NewClient(opts)
	ping, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if err := client.Ping(ping).Err(); err != nil {
		client.Close()
		return nil, nil, fmt.Errorf("REDIS_URL: cannot reach Redis at %s: %w", opts.Addr, err)
	}
	return client, opts, nil
}

// requireMigrated refuses to run against a schema with pending migrations.
func requireMigrated(ctx context.Context, pool *pgxpool.Pool) error {
	pending, err := schema.Pending(ctx, pool)
	if err != nil {
		return err
	}
	if pending {
		return fmt.Errorf("DATABASE_URL: the database has pending migrations: run `herald migrate` (or `make run`) first")
	}
	return nil
}
