package commands

import (
	"context"
	"fmt"

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
var stateTypes = []string{events.TypeUserCreated, events.TypeUserConsentChanged, events.TypeUserSubscribed, events.TypeUserUnsubscribed}

// loadUser folds the state-changing events of a user's stream. The version is read first: if
// the stream moves on meanwhile, the append with that expected version fails and the caller
// decides again.
func loadUser(ctx context.Context, q store.Querier, registry *events.Registry, phone string) (userState, error) {
	stream := events.UserStream(phone)
	st := userState{consent: events.ConsentOptOut, topics: map[string]bool{}}
	v, err := store.StreamVersion(ctx, q, stream)
	if err != nil {
		return st, err
	}
	st.version = v
	evs, err := store.ReadStreamTypes(ctx, q, stream, stateTypes)
	if err != nil {
		return st, err
	}
	for _, env := range evs {
		if env.StreamVersion > v {
			break
		}
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
	}
}
