package commands

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/google/uuid"

	"herald/events"
	"herald/events/store"
)

// userState is what consent and subscription decisions need from a user's stream.
type userState struct {
	exists  bool
	consent string
	topics  map[string]bool
	version int
}

// stateTypes are the events that change userState; a user's stream also holds every inbound
// message, which the decisions do not need to read.
var stateTypes = []string{events.TypeUserCreated, events.TypeUserConsentChanged, events.TypeUserSubscribed,
	events.TypeUserUnsubscribed, events.TypeUserDeleted}

// loadUser folds the state-changing events of a user's stream, read in one round trip together
// with the stream's version. If the stream moves on after the read, the append with that
// expected version fails and the caller decides again.
func loadUser(ctx context.Context, q store.Querier, registry *events.Registry, phone string) (userState, error) {
	st, _, err := loadUserKey(ctx, q, registry, phone, uuid.Nil)
	return st, err
}

// loadUserKey is loadUser that also reports, in the same round trip, whether idempotencyKey
// (uuid.Nil: none) is already stored.
func loadUserKey(ctx context.Context, q store.Querier, registry *events.Registry, phone string, idempotencyKey uuid.UUID) (st userState, stored bool, err error) {
	snap, err := store.ReadStreamSnapshot(ctx, q, events.UserStream(phone), stateTypes, idempotencyKey)
	if err != nil {
		return userState{}, false, err
	}
	st, err = foldUser(registry, phone, snap)
	return st, snap.Stored, err
}

// foldUser folds a snapshot of a user's stream.
func foldUser(registry *events.Registry, phone string, snap store.StreamSnapshot) (userState, error) {
	st := userState{consent: events.ConsentOptOut, topics: map[string]bool{}, version: snap.Version}
	for _, env := range snap.Events {
		e, err := registry.Decode(env)
		if err != nil {
			return st, fmt.Errorf("load user %s: %w", phone, err)
		}
		st.apply(e)
	}
	return st, nil
}

func (st *userState) apply(e events.Event) {
	switch e := e.(type) {
	case *events.UserCreated:
		st.exists = true
		st.consent = e.Consent
	case *events.UserConsentChanged:
		st.consent = e.Consent
	case *events.UserSubscribed:
		st.topics[e.Topic] = true
	case *events.UserUnsubscribed:
		delete(st.topics, e.Topic)
	case *events.UserDeleted:
		// An erased user who writes again starts afresh: opted out, no topics.
		st.exists = false
		st.consent = events.ConsentOptOut
		clear(st.topics)
	}
}

// userReads coalesces the concurrent user reads of a handler into one statement per round trip
// (store.ReadStreamSnapshots), as the store's committers group appends: under load, inbound
// webhooks that must read their sender's state share one query instead of one each. A reader
// goroutine runs while reads are pending and exits when none are; one batch is in flight at a
// time, and the next one gathers the reads that arrived meanwhile.
type userReads struct {
	pool    store.Querier
	mu      sync.Mutex
	pending []*userRead
	running bool
}

type userRead struct {
	stream string
	key    uuid.UUID
	snap   store.StreamSnapshot
	err    error
	done   chan struct{}
}

// maxUserReads caps one batch.
const maxUserReads = 256

// userReadTimeout bounds a batch, which serves many callers and so is tied to none of them.
const userReadTimeout = 10 * time.Second

func newUserReads(pool store.Querier) *userReads { return &userReads{pool: pool} }

// load is loadUserKey through the batch.
func (b *userReads) load(ctx context.Context, registry *events.Registry, phone string, key uuid.UUID) (st userState, stored bool, err error) {
	if err := ctx.Err(); err != nil {
		return userState{}, false, err
	}
	r := &userRead{stream: events.UserStream(phone), key: key, done: make(chan struct{})}
	b.mu.Lock()
	b.pending = append(b.pending, r)
	if !b.running {
		b.running = true
		go b.serve()
	}
	b.mu.Unlock()
	select {
	case <-r.done:
	case <-ctx.Done():
		return userState{}, false, ctx.Err()
	}
	if r.err != nil {
		return userState{}, false, r.err
	}
	st, err = foldUser(registry, phone, r.snap)
	return st, r.snap.Stored, err
}

// serve reads batches until none is pending.
func (b *userReads) serve() {
	for {
		b.mu.Lock()
		batch := b.pending
		if len(batch) > maxUserReads {
			batch = batch[:maxUserReads:maxUserReads]
		}
		b.pending = b.pending[len(batch):]
		if len(batch) == 0 {
			b.running = false
			b.pending = nil
			b.mu.Unlock()
			return
		}
		b.mu.Unlock()
		streams := make([]string, len(batch))
		keys := make([]uuid.UUID, len(batch))
		for i, r := range batch {
			streams[i], keys[i] = r.stream, r.key
		}
		ctx, cancel := context.WithTimeout(context.Background(), userReadTimeout)
		snaps, err := store.ReadStreamSnapshots(ctx, b.pool, streams, keys, stateTypes)
		cancel()
		for i, r := range batch {
			if err != nil {
				r.err = err
			} else {
				r.snap = snaps[i]
			}
			close(r.done)
		}
	}
}

// userCache remembers each user's state at the stream version this process last read or wrote
// it, so that a keyword from a user written to recently needs no read before its append: the
// append expects that version, and any other write since (another process, the API, a status
// opt-out) makes it fail with a concurrency error, after which the command forgets the entry and
// reads. A state is only ever stored with the version it was read or written at, so an entry is
// either the stream's present state or refused by the append.
//
// One case survives that check: an erased stream (its events moved off by the Eraser) that
// other writers fill up to exactly a cached version again. So an entry is trusted only for a
// decision that writes every event its keyword asks for (trusted): there a stale entry could at
// worst add a redundant change (an opt-out of a user already opted out), never leave one out. A
// keyword whose effect the entry says is already in place (STOP from an opted-out user, a
// retried delivery) reads first.
type userCache struct {
	mu      sync.Mutex
	entries map[string]userState
	max     int
}

// maxCachedUsers bounds the cache; it is emptied when full (about 200 bytes an entry).
const maxCachedUsers = 100_000

func newUserCache(max int) *userCache {
	return &userCache{entries: map[string]userState{}, max: max}
}

// get returns a copy of the entry for phone.
func (c *userCache) get(phone string) (userState, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	st, ok := c.entries[phone]
	if !ok {
		return userState{}, false
	}
	return st.clone(), true
}

// put stores st (a copy) unless the entry already holds a later version.
func (c *userCache) put(phone string, st userState) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if old, ok := c.entries[phone]; ok && old.version >= st.version {
		return
	}
	if len(c.entries) >= c.max {
		clear(c.entries)
	}
	c.entries[phone] = st.clone()
}

// advance records that events changing no state took the stream from version from to to: an
// entry at from moves to to, any other entry older than to is dropped.
func (c *userCache) advance(phone string, from, to int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	st, ok := c.entries[phone]
	switch {
	case !ok || st.version >= to:
	case st.version == from:
		st.version = to
		c.entries[phone] = st
	default:
		delete(c.entries, phone)
	}
}

// forget drops the entry for phone.
func (c *userCache) forget(phone string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	delete(c.entries, phone)
}

func (st userState) clone() userState {
	topics := make(map[string]bool, len(st.topics))
	for t := range st.topics {
		topics[t] = true
	}
	st.topics = topics
	return st
}

// trusted reports whether a decision from st writes every event kw can ask for, so that st may
// come from the cache (see userCache).
func (st userState) trusted(kw Keyword) bool {
	if !st.exists {
		return false
	}
	switch kw.Command {
	case events.CommandStop:
		return st.consent != events.ConsentOptOut
	case events.CommandStart:
		return st.consent != events.ConsentOptIn
	case events.CommandSubscribe:
		return st.consent != events.ConsentOptIn && !st.topics[kw.Topic]
	case events.CommandUnsubscribe:
		return st.topics[kw.Topic]
	}
	return false
}

// after is st once the decided events are appended, at version.
func (st userState) after(decided []decision, version int) userState {
	st = st.clone()
	st.version = version
	for _, d := range decided {
		switch e := d.event.(type) {
		case events.UserCreated:
			st.exists, st.consent = true, e.Consent
		case events.UserConsentChanged:
			st.consent = e.Consent
		case events.UserSubscribed:
			st.topics[e.Topic] = true
		case events.UserUnsubscribed:
			delete(st.topics, e.Topic)
		}
	}
	return st
}
