package ingest

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"

	"herald/events"
	"herald/events/store"
)

// user is what an import decision needs from a user's stream.
type user struct {
	exists        bool
	version       int
	attrs         map[string]any
	locale        string
	timezone      string
	consent       string
	consentSource string
	topics        map[string]bool
}

var foldTypes = []string{events.TypeUserCreated, events.TypeUserAttributesChanged, events.TypeUserConsentChanged,
	events.TypeUserSubscribed, events.TypeUserUnsubscribed, events.TypeUserDeleted}

// sqlFold reads the streams of $1, one index probe per stream (the ANY(…) form is planned as
// a scan of the whole log past a million events; see store.sqlBulkHeads). Payloads are read
// only for the events a decision needs: inbound messages count for the version only.
const sqlFold = `SELECT s.id, e.stream_version, e.type, e.schema_version, e.data
FROM unnest($1::text[]) AS s(id)
CROSS JOIN LATERAL (SELECT e.stream_version, e.type, e.schema_version,
        CASE WHEN e.type = ANY($2::text[]) THEN e.data END AS data
    FROM events e WHERE e.stream_id = s.id ORDER BY e.stream_version) e`

// loadUsers folds the streams of phones.
func loadUsers(ctx context.Context, q store.Querier, registry *events.Registry, phones []string) (map[string]*user, error) {
	streams := make([]string, len(phones))
	for i, p := range phones {
		streams[i] = events.UserStream(p)
	}
	out := make(map[string]*user, len(phones))
	rows, err := q.Query(ctx, sqlFold, streams, foldTypes)
	if err != nil {
		return nil, fmt.Errorf("read users: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var (
			stream, typ string
			version, sv int
			data        []byte
		)
		if err := rows.Scan(&stream, &version, &typ, &sv, &data); err != nil {
			return nil, fmt.Errorf("read users: %w", err)
		}
		phone := stream[len(events.CategoryUser)+1:]
		u := out[phone]
		if u == nil {
			u = &user{topics: map[string]bool{}, consent: events.ConsentOptOut}
			out[phone] = u
		}
		u.version = max(u.version, version)
		if data == nil {
			continue
		}
		e, err := registry.DecodeData(typ, sv, json.RawMessage(data))
		if err != nil {
			return nil, fmt.Errorf("read user %s: %w", phone, err)
		}
		u.apply(e)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read users: %w", err)
	}
	return out, nil
}

func (u *user) apply(e events.Event) {
	switch e := e.(type) {
	case *events.UserCreated:
		u.exists = true
		u.attrs = maps.Clone(e.Attributes)
		u.locale, u.timezone = e.Locale, e.Timezone
		u.consent, u.consentSource = e.Consent, e.Source
		clear(u.topics)
	case *events.UserAttributesChanged:
		if e.Mode == events.AttributesReplace || u.attrs == nil {
			u.attrs = map[string]any{}
		}
		for k, v := range e.Attributes {
			if v == nil {
				delete(u.attrs, k)
			} else {
				u.attrs[k] = v
			}
		}
		if e.Locale != nil {
			u.locale = *e.Locale
		}
		if e.Timezone != nil {
			u.timezone = *e.Timezone
		}
	case *events.UserConsentChanged:
		u.consent, u.consentSource = e.Consent, e.Source
	case *events.UserSubscribed:
		u.topics[e.Topic] = true
	case *events.UserUnsubscribed:
		delete(u.topics, e.Topic)
	case *events.UserDeleted:
		*u = user{version: u.version, topics: map[string]bool{}, consent: events.ConsentOptOut}
	}
}
