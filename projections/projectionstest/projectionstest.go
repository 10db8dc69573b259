// Package projectionstest runs Herald's read side for a test: the relay publishing the test
// schema's log to the test's Redis prefix, and every projection kept up to date, as a process
// does, until the test ends.
package projectionstest

import (
	"context"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/rs/zerolog"
	"github.com/stretchr/testify/require"

	"herald/events"
	"herald/events/relay"
	"herald/events/transport"
	"herald/events/transport/transporttest"
	"herald/projections"
	"herald/schema/schematest"
)

// Start runs the relay and the runner of projections.All() until the test ends. Polls are
// short so a test waiting for a read model does not wait for a fallback round.
func Start(t testing.TB, db *schematest.Schema, rds *transporttest.Redis) {
	t.Helper()
	log := zerolog.Nop()
	pub, err := transport.NewPublisher(rds.Opts, rds.Transport, transport.NewLoggerAdapter(log))
	require.NoError(t, err)
	rl, err := relay.New(relay.Config{Schema: db.Name, Transport: rds.Transport, PollInterval: 50 * time.Millisecond},
		db.Pool, rds.Client, pub, log, nil)
	require.NoError(t, err)
	runner, err := projections.NewRunner(projections.Config{Transport: rds.Transport, PollInterval: 100 * time.Millisecond,
		Consumer: uuid.NewString()}, db.Pool, events.DefaultRegistry(), rds.Opts, projections.All(), log, nil)
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{}, 2)
	go func() { _ = rl.Run(ctx); done <- struct{}{} }()
	go func() { _ = runner.Run(ctx); done <- struct{}{} }()
	t.Cleanup(func() {
		cancel()
		<-done
		<-done
		pub.Close()
	})
}
