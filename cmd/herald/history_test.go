package main

// The fault tests' one checker (reliability.md §5, §7, after Jepsen): a test records a
// history of what it asked for and what was acknowledged — webhooks Herald answered 2xx, events
// appended, messages a launched campaign owes — while faults are injected, then observes what
// Herald holds — events in the log per natural key, effects in the read models, creates the
// simulator accepted per Herald message id — until it converges, and checks: 0 acknowledged
// operations lost, 0 events or read-model effects doubled, 0 duplicate Twilio creates,
// convergence within a stated bound. Indeterminate operations (a timeout, a 5xx, a refused
// connection: the write may or may not have happened) may be present or absent, never twice.

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"herald/handlers/twilio/twiliosim"
)

// Kinds of operation a history holds; a key is kind + ":" + natural key.
const (
	opInbound  = "inbound"  // an inbound webhook, by MessageSid
	opStatus   = "status"   // a status callback, by MessageSid/status
	opUser     = "user"     // a user.created appended, by phone
	opMessage  = "message"  // a message a launched campaign owes, by Herald message id
	opReceipts = "receipts" // a message's callback counter, by MessageSid (effects only)
)

// outcome is what the client learnt of an operation.
type outcome int

const (
	outcomeOK   outcome = iota + 1 // acknowledged: it must be there
	outcomeInfo                    // indeterminate: may be there or not, never twice
	outcomeFail                    // refused: it must not matter either way
)

// history is one fault test's record of operations and faults, safe for concurrent use.
type history struct {
	mu     sync.Mutex
	start  time.Time
	ops    map[string]outcome // key → the best outcome seen (a retry may turn info into ok)
	faults []string
}

func newHistory() *history { return &history{start: time.Now(), ops: map[string]outcome{}} }

func opKey(kind, key string) string { return kind + ":" + key }

// record notes one operation's outcome; an acknowledgement wins over earlier tries.
func (h *history) record(kind, key string, o outcome) {
	h.mu.Lock()
	defer h.mu.Unlock()
	k := opKey(kind, key)
	if prev, ok := h.ops[k]; !ok || o < prev {
		h.ops[k] = o
	}
}

// fault notes an injected fault, with the time since the test started.
func (h *history) fault(format string, args ...any) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.faults = append(h.faults, fmt.Sprintf("%s@%s", fmt.Sprintf(format, args...), time.Since(h.start).Round(time.Second)))
}

// observation is what Herald holds at one moment.
type observation struct {
	stored  map[string]int // key → events in the log
	applied map[string]int // key → effects in the read models (rows, counters)
	creates map[string]int // Herald message id → messages the simulator created for it
	open    int            // operations still under way (messages not yet ended)
}

// verdict is the checker's figures.
type verdict struct {
	ops                       map[string][3]int // kind → ok, indeterminate, failed
	lost, notApplied          []string
	doubledEvents, doubledFX  []string
	duplicateCreates          []string
	maxCreates, open          int
	storedTotal, appliedTotal int
	converged                 bool
	convergence               time.Duration
}

func (v verdict) clean() bool {
	return len(v.lost)+len(v.notApplied)+len(v.doubledEvents)+len(v.doubledFX)+len(v.duplicateCreates) == 0 && v.open == 0
}

// judge compares the history with one observation.
func (h *history) judge(o observation) verdict {
	h.mu.Lock()
	defer h.mu.Unlock()
	v := verdict{ops: map[string][3]int{}, open: o.open}
	for k, out := range h.ops {
		kind, _, _ := strings.Cut(k, ":")
		c := v.ops[kind]
		c[out-1]++
		v.ops[kind] = c
		if out == outcomeOK && o.stored[k] == 0 {
			v.lost = append(v.lost, k)
		}
	}
	for k, n := range o.stored {
		v.storedTotal += n
		if n > 1 && !strings.HasPrefix(k, opReceipts+":") {
			v.doubledEvents = append(v.doubledEvents, k)
		}
		if o.applied[k] < n {
			v.notApplied = append(v.notApplied, k)
		}
	}
	for k, n := range o.applied {
		v.appliedTotal += n
		if n > o.stored[k] {
			v.doubledFX = append(v.doubledFX, k)
		}
	}
	for id, n := range o.creates {
		if id == "" {
			continue // not Herald's (no message id in its callback URL)
		}
		v.maxCreates = max(v.maxCreates, n)
		if n > 1 {
			v.duplicateCreates = append(v.duplicateCreates, id)
		}
	}
	return v
}

// check observes until the history is converged — every acknowledged operation stored, every
// stored event applied exactly once, nothing under way — or bound passes from now (the end of
// the load and the faults), then asserts the verdict and prints the figures.
func (h *history) check(t *testing.T, name string, bound time.Duration, observe func(context.Context) (observation, error)) verdict {
	t.Helper()
	from := time.Now()
	var (
		v   verdict
		err error
		o   observation
	)
	for {
		ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
		o, err = observe(ctx)
		cancel()
		if err == nil {
			v = h.judge(o)
			if v.clean() {
				v.converged, v.convergence = true, time.Since(from)
				break
			}
		}
		if time.Since(from) > bound {
			v.convergence = time.Since(from)
			break
		}
		time.Sleep(500 * time.Millisecond)
	}
	require.NoError(t, err, "observe")
	h.mu.Lock()
	faults := slices.Clone(h.faults)
	h.mu.Unlock()
	t.Logf("history %s after %s: operations %s; faults %v; events stored %d, effects %d; lost %d, not applied %d, "+
		"events doubled %d, effects doubled %d, Twilio creates per message ≤ %d (%d ids created twice), still open %d; "+
		"converged %v in %s (bound %s)", name, time.Since(h.start).Round(time.Second), formatOps(v.ops), faults,
		v.storedTotal, v.appliedTotal, len(v.lost), len(v.notApplied), len(v.doubledEvents), len(v.doubledFX),
		v.maxCreates, len(v.duplicateCreates), v.open, v.converged, v.convergence.Round(100*time.Millisecond), bound)
	assert.Empty(t, sample(v.lost), "acknowledged operations lost")
	assert.Empty(t, sample(v.notApplied), "events stored but not (fully) in the read models after %s", bound)
	assert.Empty(t, sample(v.doubledEvents), "events stored twice for one natural key")
	assert.Empty(t, sample(v.doubledFX), "read-model effects doubled")
	assert.Empty(t, sample(v.duplicateCreates), "Herald message ids created more than once at the simulator")
	assert.Zero(t, v.open, "operations still under way after %s", bound)
	assert.True(t, v.converged, "converged within %s", bound)
	return v
}

func formatOps(ops map[string][3]int) string {
	kinds := make([]string, 0, len(ops))
	for k := range ops {
		kinds = append(kinds, k)
	}
	slices.Sort(kinds)
	var b strings.Builder
	for _, k := range kinds {
		c := ops[k]
		fmt.Fprintf(&b, "%s ok %d/indeterminate %d/failed %d; ", k, c[0], c[1], c[2])
	}
	return strings.TrimSuffix(b.String(), "; ")
}

// sample keeps an assertion's message short.
func sample(keys []string) []string {
	slices.Sort(keys)
	if len(keys) > 10 {
		return append(keys[:10:10], fmt.Sprintf("… %d in all", len(keys)))
	}
	return keys
}

// observeLog reads, from a Herald schema, the events per natural key and their effects in the
// read models: inbound webhooks (events_inbound), status callbacks (delivery_receipts, and each
// message's callback counter in message_provider_status), users created (users) and campaign
// messages (messages; a message not yet accepted or failed is open).
func observeLog(ctx context.Context, pool *pgxpool.Pool, o *observation) error {
	o.stored, o.applied = map[string]int{}, map[string]int{}
	queries := []struct {
		into *map[string]int
		sql  string
	}{
		{&o.stored, `SELECT 'inbound:' || (data->>'message_sid'), count(*) FROM events WHERE type = 'user.message_received' GROUP BY 1`},
		{&o.applied, `SELECT 'inbound:' || message_sid, count(*) FROM events_inbound GROUP BY 1`},
		{&o.stored, `SELECT 'status:' || (data->>'message_sid') || '/' || (data->>'status'), count(*) FROM events
WHERE type = 'message.status_received' GROUP BY 1`},
		{&o.applied, `SELECT 'status:' || message_sid || '/' || status, count(*) FROM delivery_receipts GROUP BY 1`},
		{&o.stored, `SELECT 'receipts:' || (data->>'message_sid'), count(*) FROM events WHERE type = 'message.status_received' GROUP BY 1`},
		{&o.applied, `SELECT 'receipts:' || message_sid, callbacks FROM message_provider_status`},
		{&o.stored, `SELECT 'user:' || (data->>'phone'), count(*) FROM events WHERE type = 'user.created' GROUP BY 1`},
		{&o.applied, `SELECT 'user:' || phone, 1 FROM users`},
		{&o.stored, `SELECT 'message:' || (data->>'message_id'), count(*) FROM events WHERE type = 'message.queued' GROUP BY 1`},
		{&o.applied, `SELECT 'message:' || id::text, 1 FROM messages`},
	}
	for _, q := range queries {
		rows, err := pool.Query(ctx, q.sql)
		if err != nil {
			return fmt.Errorf("observe: %w", err)
		}
		for rows.Next() {
			var k string
			var n int
			if err := rows.Scan(&k, &n); err != nil {
				rows.Close()
				return fmt.Errorf("observe: %w", err)
			}
			(*q.into)[k] += n
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return fmt.Errorf("observe: %w", err)
		}
	}
	return pool.QueryRow(ctx, `SELECT count(*) FROM messages WHERE state NOT IN ('accepted', 'failed', 'skipped', 'cancelled')`).Scan(&o.open)
}

// observer is the observe function of check for a stack: it first adds to h every webhook the
// simulator delivered (its record of Herald's answers), then reads the schema and counts the
// simulator's creates per Herald message id (GET /sim/creates).
func (s *stack) observer(h *history) func(context.Context) (observation, error) {
	return func(ctx context.Context) (observation, error) {
		var o observation
		var callbacks []twiliosim.RecordedCallback
		s.simGet("/sim/callbacks", &callbacks)
		for _, c := range callbacks {
			kind, key := opInbound, c.MessageSID
			if c.Kind == "status" {
				kind, key = opStatus, c.MessageSID+"/"+c.Status
			}
			h.record(kind, key, outcomeOf(c.ResponseStatus))
		}
		if err := observeLog(ctx, s.db.Pool, &o); err != nil {
			return o, err
		}
		var created twiliosim.CreateCounts
		s.simGet("/sim/creates", &created)
		o.creates = created.ByMessageID
		return o, nil
	}
}

// outcomeOf classifies an HTTP answer: 2xx acknowledged, 4xx refused, anything else (5xx, no
// answer) indeterminate.
func outcomeOf(status int) outcome {
	switch {
	case status >= 200 && status < 300:
		return outcomeOK
	case status >= 400 && status < 500:
		return outcomeFail
	}
	return outcomeInfo
}
