package main

// Fault scenarios of reliability.md §5 and §7 (R-02/R-04, R-05/R-06, E-05, E-06, S-05), each on
// real processes and each judged by the history checker (history_test.go): the relay and the
// projection workers killed with SIGKILL again and again during 100,000 appends; a private Redis
// shut down without saving, restarted, then flushed mid-campaign; a private PostgreSQL restarted
// with -m immediate under webhook load; the Twilio simulator partitioned (refusing, then
// hanging) for 60 s mid-campaign; a transaction holding xmin back while webhooks are appended.

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"herald/events"
	"herald/events/store"
)

// faultRoles is every role in one process.
const faultRoles = "api,relay,projections,saga,scheduler"

// TestFaultWorkersKilled: the relay and the projections run in two supervised
// processes; while the test appends 100,000 events — 50,000 users in bulk (COPY, 5,000 a
// transaction) and 50,000 status callbacks one append at a time from 32 writers — one of the
// two is killed with SIGKILL every 1.5 s, alternately. Every event must reach its read model
// exactly once (users rows; receipts rows and each message's callback counter) within 90 s of
// the last append.
func TestFaultWorkersKilled(t *testing.T) {
	faultTests(t)
	t.Parallel()
	s := newStack(t, nil)
	relayP := s.supervise("herald-relay", "relay", freeAddr(t), nil)
	projP := s.supervise("herald-projections", "projections", freeAddr(t), nil)
	es, err := store.New(s.db.Pool, store.Config{})
	require.NoError(t, err)
	t.Cleanup(es.Close)
	h := newHistory()

	const users, sids = 50_000, 10_000
	statuses := []string{events.StatusQueued, events.StatusSent, events.StatusDelivered, events.StatusRead, events.StatusFailed}
	ctx := t.Context()
	done := make(chan struct{})
	var appendErrs atomic.Int64
	go func() {
		defer close(done)
		var wg sync.WaitGroup
		wg.Add(1)
		go func() { // bulk
			defer wg.Done()
			for start := 0; start < users; start += 5_000 {
				recs := make([]events.Record, 0, 5_000)
				phones := make([]string, 0, 5_000)
				for i := start; i < start+5_000; i++ {
					phone := fmt.Sprintf("+5698%07d", i)
					rec, err := events.NewRecord(uuid.New(), events.UserStream(phone), events.UserCreated{Phone: phone,
						Attributes: map[string]any{"n": i}, Consent: events.ConsentOptIn, Source: "import"}, events.Metadata{})
					if err != nil {
						appendErrs.Add(1)
						continue
					}
					recs, phones = append(recs, rec), append(phones, phone)
				}
				o := outcomeOK
				if _, err := es.AppendBulk(ctx, recs); err != nil {
					o = outcomeInfo
					appendErrs.Add(1)
				}
				for _, p := range phones {
					h.record(opUser, p, o)
				}
			}
		}()
		next := make(chan int)
		for range 32 { // single appends
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := range next {
					sid := fmt.Sprintf("SM%032x", i)
					for _, st := range statuses {
						rec, err := events.NewRecord(uuid.New(), events.ReceiptStream(sid), events.MessageStatusReceived{
							MessageSID: sid, Status: st, ReceivedAt: time.Now().UTC(), TimestampSource: "received",
							Raw: map[string][]string{"MessageSid": {sid}, "MessageStatus": {st}}}, events.Metadata{})
						o := outcomeOK
						if err == nil {
							_, err = es.Append(ctx, events.ReceiptStream(sid), store.AnyVersion, rec)
						}
						if err != nil {
							o = outcomeInfo
							appendErrs.Add(1)
						}
						h.record(opStatus, sid+"/"+st, o)
					}
				}
			}()
		}
		for i := range sids {
			next <- i
		}
		close(next)
		wg.Wait()
	}()

	kills := 0
	for stop := false; !stop || kills < 8; kills++ {
		select {
		case <-done:
			stop = true
		case <-time.After(1500 * time.Millisecond):
		}
		if kills%2 == 0 {
			relayP.kill()
			h.fault("SIGKILL relay")
		} else {
			projP.kill()
			h.fault("SIGKILL projections")
		}
		time.Sleep(300 * time.Millisecond)
	}
	<-done
	t.Logf("%d kills (relay restarted %d times, projections %d), %d appends failed", kills, relayP.restarts(),
		projP.restarts(), appendErrs.Load())
	assert.Zero(t, appendErrs.Load(), "the test's appends do not depend on the killed processes")
	h.check(t, "workers-killed", 90*time.Second, func(ctx context.Context) (observation, error) {
		var o observation
		return o, observeLog(ctx, s.db.Pool, &o)
	})
}

// TestFaultRedisRestart: Herald runs on a private redis-server without
// persistence. Mid-campaign it is shut down with SHUTDOWN NOSAVE and started again empty
// (Herald's processes, supervised, may exit and come back while it is down); later FLUSHALL
// empties it again. The campaign must finish with nothing lost or doubled.
func TestFaultRedisRestart(t *testing.T) {
	faultTests(t)
	t.Parallel()
	r := startPrivateRedis(t)
	s := newStackWith(t, stackOptions{rds: r.rds})
	s.supervise("herald", faultRoles, s.addr, nil)
	fc := newFaultCampaign(t, s, faultRecipients, map[string]any{"per_second": 40})

	eventually(t, 2*time.Minute, "40 creates before the shutdown", func() bool { return s.creates() >= 40 })
	r.shutdownNoSave()
	fc.h.fault("Redis SHUTDOWN NOSAVE")
	time.Sleep(3 * time.Second)
	r.start()
	fc.h.fault("Redis restarted empty")
	eventually(t, 2*time.Minute, "120 creates before the flush", func() bool { return s.creates() >= 120 })
	r.flushAll()
	fc.h.fault("Redis FLUSHALL")
	fc.settle(t, 4*time.Minute)
}

// TestFaultPostgresRestart (E-06): Herald runs on a private PostgreSQL cluster; 16 clients post
// signed inbound and status webhooks for 20 s, retrying each unacknowledged one with the same
// MessageSid as Twilio does, while the cluster is restarted with -m immediate. Every webhook
// answered 2xx must be stored and applied once; the retries must add no second event.
func TestFaultPostgresRestart(t *testing.T) {
	faultTests(t)
	t.Parallel()
	pg := startPrivatePostgres(t)
	s := newStackWith(t, stackOptions{db: pg.db})
	herald := s.supervise("herald", "api,relay,projections", s.addr, nil)
	h := newHistory()
	firstTry := runWebhookLoad(t, s, h, 20*time.Second, func() {
		time.Sleep(7 * time.Second)
		pg.restartImmediate()
		h.fault("pg_ctl restart -m immediate")
	})
	t.Logf("webhooks not acknowledged at the first try, by Herald's answer: %v (retried until they were); Herald restarted %d times",
		firstTry, herald.restarts())
	h.check(t, "postgres-restart", 60*time.Second, func(ctx context.Context) (observation, error) {
		var o observation
		return o, observeLog(ctx, pg.db.Pool, &o)
	})
}

// TestFaultLongTransaction (E-05): on a private cluster (xmin is cluster-wide), a transaction
// appends a user and then stays open 40 s while webhooks are appended after it. Readers must
// wait for it — none of the later webhooks reaches a read model while it is open, as its own
// event, committed last with the lowest transaction id, would otherwise be skipped — and
// everything converges once it commits.
func TestFaultLongTransaction(t *testing.T) {
	faultTests(t)
	t.Parallel()
	pg := startPrivatePostgres(t)
	s := newStackWith(t, stackOptions{db: pg.db})
	s.supervise("herald", "api,relay,projections", s.addr, nil)
	h := newHistory()
	ctx := t.Context()

	conn, err := pgx.Connect(ctx, pg.db.URL)
	require.NoError(t, err)
	defer conn.Close(context.Background())
	tx, err := conn.Begin(ctx)
	require.NoError(t, err)
	const phone = "+51985000001"
	data, err := json.Marshal(events.UserCreated{Phone: phone, Attributes: map[string]any{}, Consent: events.ConsentOptIn, Source: "api"})
	require.NoError(t, err)
	_, err = tx.Exec(ctx, `INSERT INTO events (event_id, stream_id, stream_version, type, data) VALUES ($1, $2, 1, $3, $4)`,
		uuid.New(), events.UserStream(phone), events.TypeUserCreated, data)
	require.NoError(t, err)
	h.fault("transaction open holding xmin")
	opened := time.Now()

	// The load runs 25 s inside the transaction; webhooks it cannot finish are retried after.
	var firstTry map[int]int
	loaded := make(chan struct{})
	go func() {
		defer close(loaded)
		firstTry = runWebhookLoad(t, s, h, 25*time.Second, nil)
	}()
	time.Sleep(time.Until(opened.Add(40 * time.Second)))
	var inbound, applied int
	require.NoError(t, pg.db.Pool.QueryRow(ctx, `SELECT count(*) FROM events WHERE type IN ('user.message_received', 'message.status_received')`).Scan(&inbound))
	require.NoError(t, pg.db.Pool.QueryRow(ctx, `SELECT (SELECT count(*) FROM events_inbound) + (SELECT count(*) FROM delivery_receipts)`).Scan(&applied))
	require.NoError(t, tx.Commit(ctx))
	h.fault("transaction committed after %s", time.Since(opened).Round(time.Second))
	h.record(opUser, phone, outcomeOK)
	<-loaded
	t.Logf("while the transaction was open: %d webhook events appended after it, %d in the read models (readers waited); "+
		"webhooks not acknowledged at the first try, by Herald's answer: %v", inbound, applied, firstTry)
	assert.Positive(t, inbound, "webhooks were appended while the transaction was open")
	assert.Zero(t, applied, "no reader went past the open transaction")
	h.check(t, "long-transaction", 60*time.Second, func(ctx context.Context) (observation, error) {
		var o observation
		return o, observeLog(ctx, pg.db.Pool, &o)
	})
}

// TestFaultTwilioPartitioned (S-05): Herald calls the simulator through a proxy that, mid-
// campaign, refuses connections for 30 s and then accepts and never answers for 30 s. Every
// message must end accepted or failed, none created twice, after the partition heals.
func TestFaultTwilioPartitioned(t *testing.T) {
	faultTests(t)
	t.Parallel()
	var px *partitionProxy
	s := newStackWith(t, stackOptions{twilioURL: func(simAddr string) string {
		px = newPartitionProxy(t, simAddr)
		return "http://" + px.addr
	}})
	s.supervise("herald", faultRoles, s.addr, nil)
	fc := newFaultCampaign(t, s, faultRecipients, map[string]any{"per_second": 20})
	eventually(t, 2*time.Minute, "40 creates before the partition", func() bool { return s.creates() >= 40 })
	px.set("refuse")
	fc.h.fault("Twilio refusing connections")
	time.Sleep(30 * time.Second)
	px.set("hang")
	fc.h.fault("Twilio hanging")
	time.Sleep(30 * time.Second)
	px.set("pass")
	fc.h.fault("Twilio healed")
	fc.settle(t, 4*time.Minute)
}

// runWebhookLoad posts inbound messages and status callbacks from 16 clients for d, each
// retried until acknowledged (for up to 2 min), while fault runs (if not nil). It returns how
// many were not acknowledged at the first try, by Herald's answer (0: none).
func runWebhookLoad(t *testing.T, s *stack, h *history, d time.Duration, fault func()) map[int]int {
	t.Helper()
	wc := newWebhookClient(s, h)
	ctx, cancel := context.WithTimeout(t.Context(), d+2*time.Minute)
	defer cancel()
	end := time.Now().Add(d)
	var (
		mu       sync.Mutex
		firstTry = map[int]int{}
		failed   atomic.Int64
	)
	var wg sync.WaitGroup
	if fault != nil {
		wg.Add(1)
		go func() { defer wg.Done(); fault() }()
	}
	statuses := []string{events.StatusSent, events.StatusDelivered, events.StatusRead}
	for c := range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rng := rand.New(rand.NewPCG(uint64(c), 7))
			for i := 0; time.Now().Before(end); i++ {
				phone := fmt.Sprintf("+51986%02d%04d", c, rng.IntN(500))
				sid := newSID()
				ops := []func() int{func() int { return wc.inbound(ctx, sid, phone, fmt.Sprintf("hola %d", i)) }}
				out := newSID()
				for _, st := range statuses {
					ops = append(ops, func() int { return wc.status(ctx, out, phone, st) })
				}
				for _, op := range ops {
					st := op()
					if st >= 200 && st < 300 {
						continue
					}
					mu.Lock()
					firstTry[st]++
					mu.Unlock()
					if err := retryUntilOK(ctx, op); err != nil {
						failed.Add(1)
					}
				}
			}
		}()
	}
	wg.Wait()
	assert.Zero(t, failed.Load(), "every webhook is acknowledged once Herald is back")
	return firstTry
}
