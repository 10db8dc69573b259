// Command benchreport writes docs/benchmarks.md from the output of `go test -bench` (what
// `make bench` saves in bench.out): the machine, the date and commit, every figure, and each
// issue's target next to its figures with pass or fail (internal/benchreport).
// This package only wires: flags and environment → benchreport.
//
//	benchreport -in bench.out -out docs/benchmarks.md -command "make bench"
package main

import (
	"bytes"
	"context"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"time"

	"herald/internal/benchreport"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "benchreport:", err)
		os.Exit(1)
	}
}

func run() error {
	in := flag.String("in", "bench.out", "go test -bench output to read")
	out := flag.String("out", "docs/benchmarks.md", "Markdown file to write")
	command := flag.String("command", "HERALD_BENCH_FULL=1 go test -run '^$' -bench . -benchtime=1x -timeout 60m ./...", "the command that produced the output, shown in the report")
	flag.Parse()

	f, err := os.Open(*in)
	if err != nil {
		return err
	}
	defer f.Close()
	parsed, err := benchreport.Parse(f)
	if err != nil {
		return fmt.Errorf("%s: %w", *in, err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	machine, err := benchreport.Describe(ctx, benchreport.MachineConfig{
		DatabaseURL: env("TEST_DATABASE_URL", "postgres://postgres@127.0.0.1:5432/herald_test?sslmode=disable"),
		RedisURL:    env("TEST_REDIS_URL", "redis://127.0.0.1:6379/15"),
	})
	if err != nil {
		return err
	}
	full := os.Getenv("HERALD_BENCH_FULL") == "1"
	for _, c := range parsed.Commands {
		full = full || strings.Contains(c, "HERALD_BENCH_FULL=1")
	}
	report := benchreport.Report{Run: parsed, Machine: machine, Date: time.Now(), Commit: commit(),
		Command: *command, Full: full}
	var buf bytes.Buffer
	if err := report.Write(&buf); err != nil {
		return err
	}
	if err := os.WriteFile(*out, buf.Bytes(), 0o644); err != nil {
		return err
	}
	fmt.Printf("benchreport: %d results from %s → %s\n", len(parsed.Results), *in, *out)
	return nil
}

func env(key, def string) string {
	if v := os.Getenv(key); v != "" {
		return v
	}
	return def
}

// commit is HEAD's short hash, marked dirty when tracked files have changes.
func commit() string {
	hash, err := exec.Command("git", "rev-parse", "--short=12", "HEAD").Output()
	if err != nil {
		return "unknown"
	}
	c := strings.TrimSpace(string(hash))
	if err := exec.Command("git", "diff", "--quiet", "HEAD").Run(); err != nil {
		c += " (dirty)"
	}
	return c
}
