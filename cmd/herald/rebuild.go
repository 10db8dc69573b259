package main

import (
	"context"
	"fmt"
	"io"
	"strings"

	"herald/events"
	"herald/projections"
)

func rebuild(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	cfg, err := loadConfig(getenv)
	if err != nil {
		return err
	}
	target := "all"
	if len(args) > 0 {
		target = args[0]
	}
	var chosen []projections.Projection
	var names []string
	for _, p := range projections.All() {
		names = append(names, p.Name())
		if target == "all" || target == p.Name() {
			chosen = append(chosen, p)
		}
	}
	if len(chosen) == 0 {
		return fmt.Errorf("rebuild: unknown projection %q (known: %s, or all)", target, strings.Join(names, ", "))
	}
	log := newLogger(cfg, stderr)
	pool, err := connectPostgres(ctx, cfg.DatabaseURL, "herald rebuild")
	if err != nil {
		return err
	}
	defer pool.Close()
	if err := requireMigrated(ctx, pool); err != nil {
		return err
	}
	registry := events.DefaultRegistry()
	for _, p := range chosen {
		res, err := projections.Rebuild(ctx, pool, registry, p, projections.RebuildConfig{}, log)
		if err != nil {
			return err
		}
		rate := float64(res.Events) / max(res.Duration.Seconds(), 1e-9)
		fmt.Fprintf(stdout, "rebuilt %s: %d events in %s (%.0f events/s)\n", res.Projection, res.Events, res.Duration.Round(1e6), rate)
	}
	return nil
}
