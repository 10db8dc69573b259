// Command herald runs Herald: `herald serve`, `herald migrate`, `herald rebuild`.
// This package only wires: configuration → connections → components → run until a signal.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/redis/go-redis/v9"
)

const usage = `usage: herald <command> [flags]

commands:
  serve    [--roles=all]              run the chosen roles: api, relay, projections, saga, scheduler
                                      (comma-separated; all by default, or HERALD_ROLES)
  migrate                             create the database if missing and apply migrations
  rebuild  [projection|all]           replay the event log into fresh read models and swap them in
  import   users|triggers [flags] FILE import users (CSV, JSON, NDJSON) or trigger events (NDJSON)
  version                             print the version

configuration comes from the environment (see README.md)`

var version = "dev"

func main() {
	// go-redis reports dial retries through a package-level logger; its errors reach us
	// anyway, so keep its chatter out of the structured log.
	redis.SetLogger(quietRedisLogger{})
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Getenv, os.Stdout, os.Stderr)
	stop()
	if err != nil {
		// One line, naming the setting at fault; never a stack trace.
		fmt.Fprintln(os.Stderr, "herald:", oneLine(err))
		os.Exit(1)
	}
}

func run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		fmt.Fprintln(stderr, usage)
		return errors.New("no command given")
	}
	switch args[0] {
	case "serve":
		return serve(ctx, args[1:], getenv, stderr)
	case "migrate":
		return migrate(ctx, getenv, stdout)
	case "rebuild":
		return rebuild(ctx, args[1:], getenv, stdout, stderr)
	case "import":
		return importCmd(ctx, args[1:], getenv, stdout, stderr)
	case "version":
		fmt.Fprintln(stdout, "herald", version)
		return nil
	case "help", "-h", "--help":
		fmt.Fprintln(stdout, usage)
		return nil
	default:
		fmt.Fprintln(stderr, usage)
		return fmt.Errorf("unknown command %q", args[0])
	}
}

// oneLine joins a multi-line error (several problems from Validate, a driver's detail
// lines) into one line.
func oneLine(err error) string {
	lines := strings.Split(err.Error(), "\n")
	for i := range lines {
		lines[i] = strings.TrimSpace(lines[i])
	}
	return strings.Join(lines, "; ")
}

type quietRedisLogger struct{}

func (quietRedisLogger) Printf(context.Context, string, ...any) {}
