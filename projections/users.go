package projections

import (
	"context"
	"encoding/json"
	"fmt"

	"herald/events"
)

// Users is the users read model: one row per E.164 phone with attributes, consent, locale and
// time zone, and the stream version of the last event (the ETag for updates).
type Users struct{}

func (Users) Name() string     { return "users" }
func (Users) Tables() []string { return []string{"users"} }
func (Users) Handles() []string {
	return []string{events.TypeUserCreated, events.TypeUserAttributesChanged, events.TypeUserConsentChanged,
		events.TypeUserSubscribed, events.TypeUserUnsubscribed, events.TypeUserMessageReceived}
}

const (
	sqlUserCreate = `INSERT INTO users (phone, attributes, consent, consent_source, locale, timezone, created_at, updated_at, version)
VALUES ($1, $2, $3, $4, $5, $6, $7, $7, $8)
ON CONFLICT (phone) DO UPDATE SET attributes = excluded.attributes, consent = excluded.consent,
    consent_source = excluded.consent_source, locale = excluded.locale, timezone = excluded.timezone,
    updated_at = excluded.updated_at, version = excluded.version`

	// A null value in a merge deletes the key; replace starts from an empty object.
	sqlUserAttributes = `UPDATE users SET
    attributes = coalesce((SELECT jsonb_object_agg(k, v) FROM jsonb_each(
        CASE WHEN $2 = 'replace' THEN '{}'::jsonb ELSE users.attributes END || $3::jsonb) AS a(k, v)
        WHERE v <> 'null'::jsonb), '{}'::jsonb),
    locale = coalesce($4, locale), timezone = coalesce($5, timezone), updated_at = $6, version = $7
WHERE phone = $1`

	sqlUserConsent = `UPDATE users SET consent = $2, consent_source = $3, updated_at = $4, version = $5 WHERE phone = $1`

	sqlUserTouch = `UPDATE users SET updated_at = $2, version = $3 WHERE phone = $1`

	// The WhatsApp 24-hour window runs from the latest inbound message.
	sqlUserInbound = `UPDATE users SET last_inbound_at = greatest(last_inbound_at, $2), updated_at = $3, version = $4 WHERE phone = $1`
)

func (Users) Apply(_ context.Context, tx Tx, env events.Envelope, e events.Event) error {
	switch e := e.(type) {
	case *events.UserCreated:
		attrs, err := attributesJSON(e.Attributes)
		if err != nil {
			return err
		}
		tx.Queue(sqlUserCreate, e.Phone, attrs, e.Consent, e.Source, e.Locale, e.Timezone, env.RecordedAt, env.StreamVersion)
	case *events.UserAttributesChanged:
		attrs, err := attributesJSON(e.Attributes)
		if err != nil {
			return err
		}
		tx.Queue(sqlUserAttributes, e.Phone, e.Mode, attrs, e.Locale, e.Timezone, env.RecordedAt, env.StreamVersion)
	case *events.UserConsentChanged:
		tx.Queue(sqlUserConsent, e.Phone, e.Consent, e.Source, env.RecordedAt, env.StreamVersion)
	case *events.UserSubscribed:
		tx.Queue(sqlUserTouch, e.Phone, env.RecordedAt, env.StreamVersion)
	case *events.UserUnsubscribed:
		tx.Queue(sqlUserTouch, e.Phone, env.RecordedAt, env.StreamVersion)
	case *events.UserMessageReceived:
		tx.Queue(sqlUserInbound, e.Phone, e.ReceivedAt, env.RecordedAt, env.StreamVersion)
	default:
		return Poison(fmt.Errorf("users: unexpected %T", e))
	}
	return nil
}

func attributesJSON(a map[string]any) (string, error) {
	if a == nil {
		return "{}", nil
	}
	b, err := json.Marshal(a)
	if err != nil {
		return "", Poison(fmt.Errorf("attributes: %w", err))
	}
	return string(b), nil
}

// Subscriptions is the user × topic read model.
type Subscriptions struct{}

func (Subscriptions) Name() string     { return "subscriptions" }
func (Subscriptions) Tables() []string { return []string{"subscriptions"} }
func (Subscriptions) Handles() []string {
	return []string{events.TypeUserSubscribed, events.TypeUserUnsubscribed}
}

const sqlSubscription = `INSERT INTO subscriptions (phone, topic, subscribed, source, updated_at) VALUES ($1, $2, $3, $4, $5)
ON CONFLICT (phone, topic) DO UPDATE SET subscribed = excluded.subscribed, source = excluded.source, updated_at = excluded.updated_at`

func (Subscriptions) Apply(_ context.Context, tx Tx, env events.Envelope, e events.Event) error {
	switch e := e.(type) {
	case *events.UserSubscribed:
		tx.Queue(sqlSubscription, e.Phone, e.Topic, true, e.Source, env.RecordedAt)
	case *events.UserUnsubscribed:
		tx.Queue(sqlSubscription, e.Phone, e.Topic, false, e.Source, env.RecordedAt)
	default:
		return Poison(fmt.Errorf("subscriptions: unexpected %T", e))
	}
	return nil
}

// All returns Herald's projections, in the order they are started and rebuilt.
func All() []Projection {
	return []Projection{Users{}, Subscriptions{}, InboundMessages{}, DeliveryReceipts{}}
}
