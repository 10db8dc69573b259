package commands

import (
	"context"
	"fmt"

	"herald/events"
	"herald/events/store"
)

// UserState is what sending decisions need to know about a user, folded from the user's
// stream (the source of truth: a STOP recorded a second ago already counts).
type UserState struct {
	Exists  bool
	Consent string
	Topics  map[string]bool
	Version int
}

// LoadUserStates folds the streams of many users in one round trip.
func LoadUserStates(ctx context.Context, q store.Querier, registry *events.Registry, phones []string) (map[string]UserState, error) {
	streams := make([]string, len(phones))
	for i, p := range phones {
		streams[i] = events.UserStream(p)
	}
	byStream, err := store.ReadStreams(ctx, q, streams, stateTypes)
	if err != nil {
		return nil, err
	}
	out := make(map[string]UserState, len(phones))
	for _, p := range phones {
		st := userState{consent: events.ConsentOptOut, topics: map[string]bool{}}
		for _, env := range byStream[events.UserStream(p)] {
			e, err := registry.Decode(env)
			if err != nil {
				return nil, fmt.Errorf("load user %s: %w", p, err)
			}
			st.apply(e)
			st.version = env.StreamVersion
		}
		out[p] = UserState{Exists: st.exists, Consent: st.consent, Topics: st.topics, Version: st.version}
	}
	return out, nil
}
