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
