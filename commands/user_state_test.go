package commands

import (
	"context"
	"fmt"
	"sync"
	"testing"

	"github.com/google/uuid"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"herald/events"
	"herald/events/store"
	"herald/schema/schematest"
)

// TestUserReadsAnswerEachAsAlone: concurrent reads through the batch get what a read of their
// own gets (state, version, whether the key is stored), and a caller that stops waiting is let go.
func TestUserReadsAnswerEachAsAlone(t *testing.T) {
	t.Parallel()
	db := schematest.New(t)
	s, err := store.New(db.Pool, store.Config{})
	require.NoError(t, err)
	t.Cleanup(s.Close)
	reg := events.DefaultRegistry()
	ctx := context.Background()

	const users = 40
	keys := make([]uuid.UUID, users)
	for i := range users {
		phone := fmt.Sprintf("+1415555%04d", i)
		stream := events.UserStream(phone)
		evs := []events.Event{events.UserCreated{Phone: phone, Consent: events.ConsentOptOut, Source: "test"}}
		if i%2 == 0 {
			evs = append(evs, events.UserConsentChanged{Phone: phone, Consent: events.ConsentOptIn, Source: "test"})
		}
		if i%3 == 0 {
			evs = append(evs, events.UserSubscribed{Phone: phone, Topic: fmt.Sprintf("t%d", i), Source: "test"})
		}
		var recs []events.Record
		for _, e := range evs {
			rec, err := events.NewRecord(uuid.New(), stream, e, events.Metadata{})
			require.NoError(t, err)
			recs = append(recs, rec)
		}
		keys[i] = uuid.New()
		if i%4 == 0 {
			keys[i] = recs[0].EventID // stored
		}
		_, err := s.Append(ctx, stream, 0, recs...)
		require.NoError(t, err)
	}

	reads := newUserReads(db.Pool)
	var wg sync.WaitGroup
	for round := range 3 {
		for i := range users + 5 { // 5 unknown users
			wg.Go(func() {
				phone := fmt.Sprintf("+1415555%04d", i)
				key := uuid.New()
				if i < users {
					key = keys[i]
				}
				got, gotStored, err := reads.load(ctx, reg, phone, key)
				if !assert.NoError(t, err) {
					return
				}
				want, wantStored, err := loadUserKey(ctx, db.Pool, reg, phone, key)
				if !assert.NoError(t, err) {
					return
				}
				assert.Equal(t, want, got, "round %d user %d", round, i)
				assert.Equal(t, wantStored, gotStored, "round %d user %d", round, i)
				assert.Equal(t, i < users, got.exists)
			})
		}
		wg.Wait()
	}

	canceled, cancel := context.WithCancel(ctx)
	cancel()
	_, _, err = reads.load(canceled, reg, "+14155550000", uuid.Nil)
	assert.ErrorIs(t, err, context.Canceled)
}

// TestUserCache: entries only move forward, conversation messages advance an entry they follow,
// and a cached state is trusted only for a keyword that writes everything it asks for.
func TestUserCache(t *testing.T) {
	t.Parallel()
	optedIn := userState{exists: true, consent: events.ConsentOptIn, topics: map[string]bool{"deals": true}, version: 4}
	c := newUserCache(10)
	c.put("+1", optedIn)
	optedIn.topics["news"] = true // the cache keeps its own copy
	got, ok := c.get("+1")
	require.True(t, ok)
	assert.Equal(t, map[string]bool{"deals": true}, got.topics)

	c.put("+1", userState{exists: true, version: 3}) // older: ignored
	got, _ = c.get("+1")
	assert.Equal(t, 4, got.version)
	c.advance("+1", 4, 5) // a message right after it
	got, _ = c.get("+1")
	assert.Equal(t, 5, got.version)
	assert.Equal(t, events.ConsentOptIn, got.consent)
	c.advance("+1", 6, 7) // a write this process did not see came first
	_, ok = c.get("+1")
	assert.False(t, ok)

	after := got.after([]decision{{keyMessage, events.UserMessageReceived{}},
		{keyConsent, events.UserConsentChanged{Consent: events.ConsentOptOut}},
		{keyUnsubscribed, events.UserUnsubscribed{Topic: "deals"}}}, 8)
	assert.Equal(t, userState{exists: true, consent: events.ConsentOptOut, topics: map[string]bool{}, version: 8}, after)
	assert.Equal(t, map[string]bool{"deals": true}, got.topics, "after works on a copy")

	for _, tc := range []struct {
		name string
		st   userState
		kw   Keyword
		want bool
	}{
		{"STOP from an opted-in user", got, Keyword{Command: events.CommandStop}, true},
		{"STOP from an opted-out user", after, Keyword{Command: events.CommandStop}, false},
		{"START from an opted-out user", after, Keyword{Command: events.CommandStart}, true},
		{"START from an opted-in user", got, Keyword{Command: events.CommandStart}, false},
		{"SUBSCRIBE to a new topic, opted out", after, Keyword{Command: events.CommandSubscribe, Topic: "news"}, true},
		{"SUBSCRIBE to a new topic, opted in", got, Keyword{Command: events.CommandSubscribe, Topic: "news"}, false},
		{"UNSUBSCRIBE from a topic held", got, Keyword{Command: events.CommandUnsubscribe, Topic: "deals"}, true},
		{"UNSUBSCRIBE from a topic not held", after, Keyword{Command: events.CommandUnsubscribe, Topic: "deals"}, false},
		{"a user not created", userState{consent: events.ConsentOptIn}, Keyword{Command: events.CommandStop}, false},
		{"a conversation message", got, Keyword{}, false},
	} {
		assert.Equal(t, tc.want, tc.st.trusted(tc.kw), tc.name)
	}
}
