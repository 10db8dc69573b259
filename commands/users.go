package commands

import (
	"context"
	"errors"

	"herald/events"
	"herald/events/store"
)

// ErrNotFound is returned by a command whose subject does not exist.
var ErrNotFound = errors.New("not found")

// Written says what a command wrote. Checkpoint is zero when nothing had to change (the
// command was already true), in which case Version is the subject's current version.
type Written struct {
	Created    bool
	Changed    bool
	Version    int
	Checkpoint store.Checkpoint
}

// Users handles the API's commands on users: create or update, consent, topics and erasure.
// Every command folds the user's stream, decides, and appends with the version it decided on;
// when another write got there first it decides again, unless the caller pinned the version
// (If-Match), in which case the *store.ConcurrencyError is returned.
type Users struct {
	store    *store.Store
	registry *events.Registry
}

// NewUsers wires the user commands.
func NewUsers(s *store.Store, registry *events.Registry) *Users {
	return &Users{store: s, registry: registry}
}

// SaveUser creates a user or changes one. Nil fields are left as they are; attributes merge (a
// null value deletes the key) unless ReplaceAttributes. Consent, if set, is recorded with
// Source; Topics are subscribed (never unsubscribed: that is an explicit command).
type SaveUser struct {
	Phone             string
	Attributes        map[string]any
	ReplaceAttributes bool
	Locale            *string
	Timezone          *string
	Consent           string
	ConsentReason     string
	Topics            []string
	// MustExist makes a missing user ErrNotFound instead of a creation (PATCH).
	MustExist bool
	// Expected pins the stream version (If-Match); store.AnyVersion decides on the latest.
	Expected int
	Source   string
	Metadata events.Metadata
}

// Save runs SaveUser.
func (h *Users) Save(ctx context.Context, cmd SaveUser) (Written, error) {
	return h.decideAndAppend(ctx, cmd.Phone, cmd.Expected, cmd.Metadata, func(st userState) ([]events.Event, error) {
		if !st.exists && cmd.MustExist {
			return nil, ErrNotFound
		}
		var out []events.Event
		consent := st.consent
		if !st.exists {
			created := events.UserCreated{Phone: cmd.Phone, Attributes: withoutNulls(cmd.Attributes), Consent: events.ConsentOptOut, Source: cmd.Source}
			if cmd.Locale != nil {
				created.Locale = *cmd.Locale
			}
			if cmd.Timezone != nil {
				created.Timezone = *cmd.Timezone
			}
			if created.Attributes == nil {
				created.Attributes = map[string]any{}
			}
			out = append(out, created)
			consent = events.ConsentOptOut
		} else if len(cmd.Attributes) > 0 || cmd.ReplaceAttributes || cmd.Locale != nil || cmd.Timezone != nil {
			mode := events.AttributesMerge
			if cmd.ReplaceAttributes {
				mode = events.AttributesReplace
			}
			attrs := cmd.Attributes
			if attrs == nil {
				attrs = map[string]any{}
			}
			out = append(out, events.UserAttributesChanged{Phone: cmd.Phone, Mode: mode, Attributes: attrs,
				Locale: cmd.Locale, Timezone: cmd.Timezone, Source: cmd.Source})
		}
		if cmd.Consent != "" && cmd.Consent != consent {
			out = append(out, events.UserConsentChanged{Phone: cmd.Phone, Consent: cmd.Consent, Source: cmd.Source, Reason: cmd.ConsentReason})
		}
		for _, topic := range cmd.Topics {
			if !st.topics[topic] {
				out = append(out, events.UserSubscribed{Phone: cmd.Phone, Topic: topic, Source: cmd.Source})
				st.topics[topic] = true
			}
		}
		return out, nil
	})
}

// withoutNulls drops null values: on creation there is nothing for them to delete.
func withoutNulls(attrs map[string]any) map[string]any {
	var out map[string]any
	for k, v := range attrs {
		if v == nil {
			continue
		}
		if out == nil {
			out = make(map[string]any, len(attrs))
		}
		out[k] = v
	}
	return out
}

// SetConsent records an opt-in or opt-out of an existing user, with its source and reason.
type SetConsent struct {
	Phone    string
	Consent  string
	Reason   string
	Expected int
	Source   string
	Metadata events.Metadata
}

// SetConsent runs SetConsent.
func (h *Users) SetConsent(ctx context.Context, cmd SetConsent) (Written, error) {
	return h.decideAndAppend(ctx, cmd.Phone, cmd.Expected, cmd.Metadata, func(st userState) ([]events.Event, error) {
		if !st.exists {
			return nil, ErrNotFound
		}
		if st.consent == cmd.Consent {
			return nil, nil
		}
		return []events.Event{events.UserConsentChanged{Phone: cmd.Phone, Consent: cmd.Consent, Source: cmd.Source, Reason: cmd.Reason}}, nil
	})
}

// SetSubscription turns an existing user's topic subscription on or off.
type SetSubscription struct {
	Phone      string
	Topic      string
	Subscribed bool
	Expected   int
	Source     string
	Metadata   events.Metadata
}

// SetSubscription runs SetSubscription.
func (h *Users) SetSubscription(ctx context.Context, cmd SetSubscription) (Written, error) {
	return h.decideAndAppend(ctx, cmd.Phone, cmd.Expected, cmd.Metadata, func(st userState) ([]events.Event, error) {
		switch {
		case !st.exists:
			return nil, ErrNotFound
		case st.topics[cmd.Topic] == cmd.Subscribed:
			return nil, nil
		case cmd.Subscribed:
			return []events.Event{events.UserSubscribed{Phone: cmd.Phone, Topic: cmd.Topic, Source: cmd.Source}}, nil
		default:
			return []events.Event{events.UserUnsubscribed{Phone: cmd.Phone, Topic: cmd.Topic, Source: cmd.Source}}, nil
		}
	})
}

// DeleteUser erases an existing user.
type DeleteUser struct {
	Phone    string
	Reason   string
	Expected int
	Source   string
	Metadata events.Metadata
}

// Delete runs DeleteUser.
func (h *Users) Delete(ctx context.Context, cmd DeleteUser) (Written, error) {
	return h.decideAndAppend(ctx, cmd.Phone, cmd.Expected, cmd.Metadata, func(st userState) ([]events.Event, error) {
		if !st.exists {
			return nil, ErrNotFound
		}
		return []events.Event{events.UserDeleted{Phone: cmd.Phone, Source: cmd.Source, Reason: cmd.Reason}}, nil
	})
}

// decideAndAppend folds the user's stream, asks decide for the events, and appends them.
func (h *Users) decideAndAppend(ctx context.Context, phone string, expected int, md events.Metadata,
	decide func(userState) ([]events.Event, error)) (Written, error) {
	return writeStream(ctx, h.store, events.UserStream(phone), expected, md,
		func(ctx context.Context) (userState, int, bool, error) {
			st, err := loadUser(ctx, h.store.Pool(), h.registry, phone)
			return st, st.version, st.exists, err
		}, decide)
}
