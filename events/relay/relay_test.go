package relay_test

import (
	"context"
	"encoding/json"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/rs/zerolog"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"herald/events"
	"herald/events/relay"
	"herald/events/store"
	"herald/events/transport"
	"herald/events/transport/transporttest"
	"herald/schema/schematest"
)

type fixture struct {
	t     *testing.T
	db    *schematest.Schema
	rds   *transporttest.Redis
	store *store.Store
}

func newFixture(t *testing.T) *fixture {
	db := schematest.New(t)
	s, err := store.New(db.Pool, store.Config{})
	require.NoError(t, err)
	t.Cleanup(s.Close)
	return &fixture{t: t, db: db, rds: transporttest.New(t), store: s}
}

func (f *fixture) newRelay() *relay.Relay { return f.newRelayWith(func(*relay.Config) {}) }

func (f *fixture) newRelayWith(configure func(*relay.Config)) *relay.Relay {
	var schemaName string
	require.NoError(f.t, f.db.Pool.QueryRow(context.Background(), `SELECT current_schema()`).Scan(&schemaName))
	pub, err := transport.NewPublisher(f.rds.Opts, f.rds.Transport, transport.NewLoggerAdapter(zerolog.Nop()))
	require.NoError(f.t, err)
	f.t.Cleanup(func() { pub.Close() })
	cfg := relay.Config{Schema: schemaName, Transport: f.rds.Transport, PollInterval: 100 * time.Millisecond,
		RetryInterval: 100 * time.Millisecond}
	configure(&cfg)
	rl, err := relay.New(cfg, f.db.Pool, f.rds.Client, pub, zerolog.Nop(), nil)
	require.NoError(f.t, err)
	return rl
}

func (f *fixture) run(rl *relay.Relay) (stop func()) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); _ = rl.Run(ctx) }()
	var once sync.Once
	stop = func() { once.Do(func() { cancel(); <-done }) }
	f.t.Cleanup(stop)
	return stop
}

// appendN appends n events to user streams and returns their ids in order.
func (f *fixture) appendN(from, n int) []uuid.UUID {
	var ids []uuid.UUID
	for i := from; i < from+n; i++ {
		p := "+1415555" + strconv.Itoa(1000+i)
		r, err := events.NewRecord(uuid.New(), events.UserStream(p), events.UserSubscribed{Phone: p, Topic: "deals", Source: "test"},
			events.Metadata{CorrelationID: "corr-" + strconv.Itoa(i)})
		require.NoError(f.t, err)
		_, err = f.store.Append(context.Background(), r.StreamID, store.AnyVersion, r)
		require.NoError(f.t, err)
		ids = append(ids, r.EventID)
	}
	return ids
}

// streamIDs reads a category stream straight from Redis, in order.
func (f *fixture) streamIDs(category string) []string {
	msgs, err := f.rds.Client.XRange(context.Background(), f.rds.Transport.EventsTopic(category), "-", "+").Result()
	require.NoError(f.t, err)
	var out []string
	for _, m := range msgs {
		out = append(out, m.Values["_watermill_message_uuid"].(string))
	}
	return out
}

func TestRelayPublishesEveryEventInOrderWithItsMetadata(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	ids := f.appendN(0, 50)
	f.run(f.newRelay())
	more := f.appendN(50, 50)
	ids = append(ids, more...)

	// A Watermill consumer group receives them, with the envelope in the metadata.
	sub, err := transport.NewSubscriber(f.rds.Opts, f.rds.Transport, "test-consumer", "c1", transport.NewLoggerAdapter(zerolog.Nop()))
	require.NoError(t, err)
	defer sub.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	msgs, err := sub.Subscribe(ctx, f.rds.Transport.EventsTopic(events.CategoryUser))
	require.NoError(t, err)
	var got []*message.Message
	for len(got) < len(ids) {
		select {
		case m := <-msgs:
			got = append(got, m)
			m.Ack()
		case <-ctx.Done():
			t.Fatalf("received %d of %d events", len(got), len(ids))
		}
	}
	lastPos := int64(0)
	for i, m := range got {
		assert.Equal(t, ids[i].String(), m.UUID, "message uuid is the event id, in log order")
		assert.Equal(t, events.TypeUserSubscribed, m.Metadata.Get(transport.MetaEventType))
		assert.Equal(t, "corr-"+strconv.Itoa(i), m.Metadata.Get(transport.MetaCorrelationID))
		assert.NotEmpty(t, m.Metadata.Get(transport.MetaStreamID))
		assert.NotEmpty(t, m.Metadata.Get(transport.MetaTransactionID))
		pos, err := strconv.ParseInt(m.Metadata.Get(transport.MetaGlobalPosition), 10, 64)
		require.NoError(t, err)
		assert.Greater(t, pos, lastPos)
		lastPos = pos
		var payload events.UserSubscribed
		require.NoError(t, json.Unmarshal(m.Payload, &payload))
		assert.Equal(t, "deals", payload.Topic)
	}
}

func TestRelayRingsTheDoorbellWithTheCommittedPosition(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	f.run(f.newRelay())
	f.appendN(0, 5)
	last, err := store.Last(context.Background(), f.db.Pool)
	require.NoError(t, err)
	require.Eventually(t, func() bool {
		msgs, err := f.rds.Client.XRange(context.Background(), f.rds.Transport.CommittedTopic(), "-", "+").Result()
		if err != nil || len(msgs) == 0 {
			return false
		}
		var bell relay.Doorbell
		payload, _ := msgs[len(msgs)-1].Values["payload"].(string)
		if json.Unmarshal([]byte(payload), &bell) != nil {
			return false
		}
		return !(store.Checkpoint{TxID: bell.TxID, Position: bell.Position}).Less(last)
	}, 10*time.Second, 20*time.Millisecond)
}

func TestRelayRepublishesWhatConsumersHaveNotAppliedWhenRedisLosesItsData(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	ids := f.appendN(0, 40)
	// A consumer has applied the first 10 events and recorded that in Postgres.
	var cp store.Checkpoint
	require.NoError(t, f.db.Pool.QueryRow(context.Background(),
		`SELECT transaction_id, global_position FROM events WHERE event_id = $1`, ids[9]).Scan(&cp.TxID, &cp.Position))
	_, err := f.db.Pool.Exec(context.Background(), `INSERT INTO checkpoints (name, last_tx, last_position) VALUES ('projection:x', $1, $2)`,
		cp.TxID, cp.Position)
	require.NoError(t, err)

	rl := f.newRelay()
	f.run(rl)
	require.Eventually(t, func() bool { return len(f.streamIDs(events.CategoryUser)) >= 40 }, 10*time.Second, 20*time.Millisecond)

	transporttest.DeletePrefix(context.Background(), f.rds.Client, f.rds.Transport.Prefix) // Redis forgets everything
	require.Eventually(t, func() bool { return len(f.streamIDs(events.CategoryUser)) >= 30 }, 10*time.Second, 20*time.Millisecond)
	var want []string
	for _, id := range ids[10:] {
		want = append(want, id.String())
	}
	assert.Equal(t, want, f.streamIDs(events.CategoryUser), "exactly what the consumer had not applied, in order")
	assert.Equal(t, 1, rl.Status().Republishes)

	// New events keep flowing after the loss.
	more := f.appendN(40, 5)
	require.Eventually(t, func() bool { return len(f.streamIDs(events.CategoryUser)) == 35 }, 10*time.Second, 20*time.Millisecond)
	assert.Equal(t, more[4].String(), f.streamIDs(events.CategoryUser)[34])
}

func TestOnlyOneRelayLeadsAndAStandbyTakesOver(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	first, second := f.newRelay(), f.newRelay()
	stopFirst := f.run(first)
	require.Eventually(t, func() bool { return first.Status().Leader }, 10*time.Second, 20*time.Millisecond)
	f.run(second)
	f.appendN(0, 10)
	require.Eventually(t, func() bool { return len(f.streamIDs(events.CategoryUser)) == 10 }, 10*time.Second, 20*time.Millisecond)
	assert.False(t, second.Status().Leader, "the second relay is a standby")

	stopFirst()
	require.Eventually(t, func() bool { return second.Status().Leader }, 10*time.Second, 20*time.Millisecond)
	f.appendN(10, 10)
	require.Eventually(t, func() bool { return len(f.streamIDs(events.CategoryUser)) == 20 }, 10*time.Second, 20*time.Millisecond)
}

// TestRelayPublishesABacklogInPipelinesInOrder: a backlog published in batches larger than one
// XADD pipeline arrives complete and in log order, readable as the watermill publisher writes.
func TestRelayPublishesABacklogInPipelinesInOrder(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	const n = 2600
	var (
		recs []events.Record
		ids  []string
	)
	for i := range n {
		p := "+1415556" + strconv.Itoa(1000+i)
		r, err := events.NewRecord(uuid.New(), events.UserStream(p), events.UserSubscribed{Phone: p, Topic: "deals", Source: "test"},
			events.Metadata{})
		require.NoError(t, err)
		recs, ids = append(recs, r), append(ids, r.EventID.String())
	}
	res, err := f.store.AppendBulk(context.Background(), recs)
	require.NoError(t, err)
	require.Equal(t, n, res.Appended)
	// The bulk path writes streams in byte order: read the log order back.
	rows, err := f.db.Pool.Query(context.Background(), `SELECT event_id::text FROM events ORDER BY transaction_id, global_position`)
	require.NoError(t, err)
	ids, err = pgx.CollectRows(rows, pgx.RowTo[string])
	require.NoError(t, err)

	f.run(f.newRelayWith(func(c *relay.Config) { c.BatchSize = 2500 }))
	deadline := time.Now().Add(20 * time.Second)
	for len(f.streamIDs(events.CategoryUser)) < n && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	require.Equal(t, ids, f.streamIDs(events.CategoryUser), "every event once, in log order")
}
