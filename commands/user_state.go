package commands

import (
	"context"
	"fmt"

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
	stream := events.UserStream(phone)
	st = userState{consent: events.ConsentOptOut, topics: map[string]bool{}}
	snap, err := store.ReadStreamSnapshot(ctx, q, stream, stateTypes, idempotencyKey)
	if err != nil {
		return st, false, err
	}
	st.version = snap.Version
	for _, env := range snap.Events {
		e, err := registry.Decode(env)
		if err != nil {
			return st, false, fmt.Errorf("load user %s: %w", phone, err)
		}
		st.apply(e)
	}
	return st, snap.Stored, nil
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
