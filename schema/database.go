package schema

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"strings"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
)

// EnsureDatabase creates the database named in dbURL if it does not exist, connecting to the
// server's "postgres" database to do so. dbURL may carry pgxpool's own parameters
// (pool_max_conns, …), as the pools that use it do: they are not sent to the server, which
// refuses any parameter it does not know.
func EnsureDatabase(ctx context.Context, dbURL string) error {
	poolCfg, err := pgxpool.ParseConfig(dbURL)
	if err != nil {
		return fmt.Errorf("DATABASE_URL: %w", err)
	}
	cfg := poolCfg.ConnConfig
	name := cfg.Database
	if name == "" {
		return errors.New("DATABASE_URL: no database name")
	}
	conn, err := pgx.ConnectConfig(ctx, cfg)
	if err == nil {
		return conn.Close(ctx)
	}
	var pgErr *pgconn.PgError
	if !errors.As(err, &pgErr) || pgErr.Code != "3D000" { // invalid_catalog_name
		return fmt.Errorf("DATABASE_URL: cannot connect to %s: %w", redact(dbURL), err)
	}
	adminCfg := cfg.Copy()
	adminCfg.Database = "postgres"
	admin, err := pgx.ConnectConfig(ctx, adminCfg)
	if err != nil {
		return fmt.Errorf("DATABASE_URL: database %q is missing and the server's postgres database is unreachable: %w", name, err)
	}
	defer admin.Close(ctx)
	if _, err := admin.Exec(ctx, "CREATE DATABASE "+pgx.Identifier{name}.Sanitize()); err != nil {
		// 42P04 duplicate_database: another process created it first, which is what we wanted.
		if !errors.As(err, &pgErr) || pgErr.Code != "42P04" {
			return fmt.Errorf("create database %q: %w", name, err)
		}
	}
	return nil
}

// redact hides a password in a database URL.
func redact(dbURL string) string {
	u, err := url.Parse(dbURL)
	if err != nil {
		return "(unparseable URL)"
	}
	if _, has := u.User.Password(); has {
		u.User = url.UserPassword(u.User.Username(), "xxxxx")
	}
	return strings.TrimSpace(u.String())
}
