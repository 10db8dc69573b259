package projections

import (
	"context"
	"encoding/json"
	"fmt"
	"sort"
	"strconv"
	"time"

	"github.com/nyaruka/phonenumbers"

	"herald/events"
)

// Users is the users read model: one row per E.164 phone with attributes, consent, locale and
// time zone, and the stream version of the last event (the ETag for updates).
type Users struct{}

func (Users) Name() string     { return "users" }
func (Users) Tables() []string { return []string{"users"} }
func (Users) Handles() []string {
	return []string{events.TypeUserCreated, events.TypeUserAttributesChanged, events.TypeUserConsentChanged,
		events.TypeUserSubscribed, events.TypeUserUnsubscribed, events.TypeUserMessageReceived, events.TypeUserDeleted}
}

const (
	sqlUserCreate = `INSERT INTO users (phone, attributes, consent, consent_source, locale, timezone, created_at, updated_at, version, country)
VALUES ($1, $2, $3, $4, $5, $6, $7, $7, $8, $9)
ON CONFLICT (phone) DO UPDATE SET attributes = excluded.attributes, consent = excluded.consent, country = excluded.country,
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
		tx.Queue(sqlUserCreate, e.Phone, attrs, e.Consent, e.Source, e.Locale, e.Timezone, env.RecordedAt, env.StreamVersion, Country(e.Phone))
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
	case *events.UserDeleted:
		tx.Queue(sqlUsersDelete, []string{e.Phone})
	default:
		return Poison(fmt.Errorf("users: unexpected %T", e))
	}
	return nil
}

// The set-based forms of the statements above, one row per event of a run (eachRun). Each
// computes every column exactly as its single-row form does.
const (
	sqlUsersCreate = `INSERT INTO users (phone, attributes, consent, consent_source, locale, timezone, created_at, updated_at, version, country)
SELECT phone, attributes::jsonb, consent, source, locale, timezone, at, at, version, country
FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[], $7::timestamptz[], $8::int[], $9::text[])
    AS r(phone, attributes, consent, source, locale, timezone, at, version, country)
ON CONFLICT (phone) DO UPDATE SET attributes = excluded.attributes, consent = excluded.consent, country = excluded.country,
    consent_source = excluded.consent_source, locale = excluded.locale, timezone = excluded.timezone,
    updated_at = excluded.updated_at, version = excluded.version`

	sqlUsersAttributes = `UPDATE users SET
    attributes = coalesce((SELECT jsonb_object_agg(k, v) FROM jsonb_each(
        CASE WHEN r.mode = 'replace' THEN '{}'::jsonb ELSE users.attributes END || r.attributes::jsonb) AS a(k, v)
        WHERE v <> 'null'::jsonb), '{}'::jsonb),
    locale = coalesce(r.locale, users.locale), timezone = coalesce(r.timezone, users.timezone),
    updated_at = r.at, version = r.version
FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::timestamptz[], $7::int[])
    AS r(phone, mode, attributes, locale, timezone, at, version)
WHERE users.phone = r.phone`

	sqlUsersConsent = `UPDATE users SET consent = r.consent, consent_source = r.source, updated_at = r.at, version = r.version
FROM unnest($1::text[], $2::text[], $3::text[], $4::timestamptz[], $5::int[]) AS r(phone, consent, source, at, version)
WHERE users.phone = r.phone`

	sqlUsersTouch = `UPDATE users SET updated_at = r.at, version = r.version
FROM unnest($1::text[], $2::timestamptz[], $3::int[]) AS r(phone, at, version)
WHERE users.phone = r.phone`

	sqlUsersDelete = `DELETE FROM users WHERE phone = ANY($1)`

	sqlUsersInbound = `UPDATE users SET last_inbound_at = greatest(users.last_inbound_at, r.received_at), updated_at = r.at, version = r.version
FROM unnest($1::text[], $2::timestamptz[], $3::timestamptz[], $4::int[]) AS r(phone, received_at, at, version)
WHERE users.phone = r.phone`
)

// The statement each user event is applied with; a run (eachRun) shares one.
const (
	userCreate = iota
	userAttributes
	userConsent
	userTouch
	userInbound
	userDelete
)

// ApplyBatch applies a page with one statement per round and kind (eachRound): a user's events
// keep their order, and events of different users — which touch different rows — share
// statements whatever lies between them. Inbound webhooks interleave users' events (created,
// message, consent; then the next sender), which cut runs of consecutive events (eachRun) to one
// event each: a statement per event.
func (Users) ApplyBatch(_ context.Context, tx Tx, envs []events.Envelope, evs []events.Event) error {
	kinds := make([]int, len(evs))
	keys := make([]string, len(evs)) // the phone
	for i, e := range evs {
		switch e := e.(type) {
		case *events.UserCreated:
			kinds[i], keys[i] = userCreate, e.Phone
		case *events.UserAttributesChanged:
			kinds[i], keys[i] = userAttributes, e.Phone
		case *events.UserConsentChanged:
			kinds[i], keys[i] = userConsent, e.Phone
		case *events.UserSubscribed:
			kinds[i], keys[i] = userTouch, e.Phone
		case *events.UserUnsubscribed:
			kinds[i], keys[i] = userTouch, e.Phone
		case *events.UserMessageReceived:
			kinds[i], keys[i] = userInbound, e.Phone
		case *events.UserDeleted:
			kinds[i], keys[i] = userDelete, e.Phone
		default:
			return Poison(fmt.Errorf("users: unexpected %T", e))
		}
	}
	return eachRound(kinds, keys, func(idx []int) error {
		phones := make([]string, len(idx))
		at := make([]time.Time, len(idx))
		version := make([]int, len(idx))
		for j, i := range idx {
			phones[j], at[j], version[j] = keys[i], envs[i].RecordedAt, envs[i].StreamVersion
		}
		switch kinds[idx[0]] {
		case userCreate:
			var attrs, consent, source, locale, timezone, country []string
			for _, i := range idx {
				e := evs[i].(*events.UserCreated)
				a, err := attributesJSON(e.Attributes)
				if err != nil {
					return err
				}
				attrs, consent, source = append(attrs, a), append(consent, e.Consent), append(source, e.Source)
				locale, timezone = append(locale, e.Locale), append(timezone, e.Timezone)
				country = append(country, Country(e.Phone))
			}
			tx.Queue(sqlUsersCreate, phones, attrs, consent, source, locale, timezone, at, version, country)
		case userAttributes:
			var mode, attrs []string
			var locale, timezone []*string
			for _, i := range idx {
				e := evs[i].(*events.UserAttributesChanged)
				a, err := attributesJSON(e.Attributes)
				if err != nil {
					return err
				}
				mode, attrs = append(mode, e.Mode), append(attrs, a)
				locale, timezone = append(locale, e.Locale), append(timezone, e.Timezone)
			}
			tx.Queue(sqlUsersAttributes, phones, mode, attrs, locale, timezone, at, version)
		case userConsent:
			var consent, source []string
			for _, i := range idx {
				e := evs[i].(*events.UserConsentChanged)
				consent, source = append(consent, e.Consent), append(source, e.Source)
			}
			tx.Queue(sqlUsersConsent, phones, consent, source, at, version)
		case userTouch:
			tx.Queue(sqlUsersTouch, phones, at, version)
		case userInbound:
			received := make([]time.Time, len(idx))
			for j, i := range idx {
				received[j] = evs[i].(*events.UserMessageReceived).ReceivedAt
			}
			tx.Queue(sqlUsersInbound, phones, received, at, version)
		case userDelete:
			tx.Queue(sqlUsersDelete, phones)
		}
		return nil
	})
}

// eachRound groups the items of a page for set-based statements whose effect on one key's rows
// does not depend on any other key's: an item's round is one more than that of the previous item
// with its key, and fn gets, round after round, the round's items of each kind (in page order;
// kinds in ascending order). Every key's items are thus applied in page order, at most once per
// statement, and the number of statements is bounded by the rounds (the most items one key has
// in the page) times the kinds, not by how the keys interleave.
func eachRound(kinds []int, keys []string, fn func(idx []int) error) error {
	n := len(kinds)
	round := make([]int, n)
	last := make(map[string]int, min(n, 1024))
	for i, k := range keys {
		round[i] = last[k] + 1
		last[k] = round[i]
	}
	order := make([]int, n)
	for i := range order {
		order[i] = i
	}
	sort.SliceStable(order, func(a, b int) bool {
		ia, ib := order[a], order[b]
		if round[ia] != round[ib] {
			return round[ia] < round[ib]
		}
		return kinds[ia] < kinds[ib]
	})
	for from := 0; from < n; {
		to := from + 1
		for to < n && round[order[to]] == round[order[from]] && kinds[order[to]] == kinds[order[from]] {
			to++
		}
		if err := fn(order[from:to:to]); err != nil {
			return err
		}
		from = to
	}
	return nil
}

// Country is the ISO 3166-1 alpha-2 region of an E.164 phone number (users.country), or "" when
// the number does not parse or its calling code has no single region (+800, an unassigned +1
// area code). It depends only on the phone, so a rebuild gives the same value. phone is E.164
// as commands.NormalizePhone writes it (users.phone); other spellings may be read differently
// than libphonenumber's parse would (a national prefix after the calling code is not stripped).
//
// Most calling codes belong to one region, which the code alone answers (a map lookup); only
// shared codes (+1, +7, +44, …) need libphonenumber's parse and per-region patterns (≈ 14 µs,
// a third of an import's Go CPU when every number took that path).
func Country(phone string) string {
	if len(phone) < 3 || phone[0] != '+' {
		return ""
	}
	for n := 1; n <= 3 && n < len(phone); n++ {
		cc, err := strconv.Atoi(phone[1 : 1+n])
		if err != nil || phone[1] == '0' {
			return ""
		}
		switch regions := phonenumbers.GetRegionCodesForCountryCode(cc); len(regions) {
		case 0:
			continue // calling codes are prefix-free: try a longer one
		case 1:
			return regionOrNone(regions[0])
		default:
			return sharedCodeCountry(int32(cc), phone[1+n:])
		}
	}
	return ""
}

// sharedCodeCountry asks libphonenumber which region of a shared calling code the national
// number belongs to, without its costly parse (the number is already E.164).
func sharedCodeCountry(cc int32, national string) string {
	if national == "" || national[0] == '0' {
		return slowCountry("+" + strconv.Itoa(int(cc)) + national)
	}
	nsn, err := strconv.ParseUint(national, 10, 64)
	if err != nil {
		return ""
	}
	return regionOrNone(phonenumbers.GetRegionCodeForNumber(&phonenumbers.PhoneNumber{CountryCode: &cc, NationalNumber: &nsn}))
}

func slowCountry(phone string) string {
	n, err := phonenumbers.Parse(phone, "")
	if err != nil {
		return ""
	}
	return regionOrNone(phonenumbers.GetRegionCodeForNumber(n))
}

func regionOrNone(r string) string {
	if len(r) != 2 || r == phonenumbers.UNKNOWN_REGION || r[0] < 'A' || r[0] > 'Z' || r[1] < 'A' || r[1] > 'Z' {
		return ""
	}
	return r
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
	return []string{events.TypeUserSubscribed, events.TypeUserUnsubscribed, events.TypeUserDeleted}
}

const sqlSubscription = `INSERT INTO subscriptions (phone, topic, subscribed, source, updated_at) VALUES ($1, $2, $3, $4, $5)
ON CONFLICT (phone, topic) DO UPDATE SET subscribed = excluded.subscribed, source = excluded.source, updated_at = excluded.updated_at`

func (Subscriptions) Apply(_ context.Context, tx Tx, env events.Envelope, e events.Event) error {
	switch e := e.(type) {
	case *events.UserSubscribed:
		tx.Queue(sqlSubscription, e.Phone, e.Topic, true, e.Source, env.RecordedAt)
	case *events.UserUnsubscribed:
		tx.Queue(sqlSubscription, e.Phone, e.Topic, false, e.Source, env.RecordedAt)
	case *events.UserDeleted:
		tx.Queue(`DELETE FROM subscriptions WHERE phone = $1`, e.Phone)
	default:
		return Poison(fmt.Errorf("subscriptions: unexpected %T", e))
	}
	return nil
}

const sqlSubscriptions = `INSERT INTO subscriptions (phone, topic, subscribed, source, updated_at)
SELECT * FROM unnest($1::text[], $2::text[], $3::boolean[], $4::text[], $5::timestamptz[])
ON CONFLICT (phone, topic) DO UPDATE SET subscribed = excluded.subscribed, source = excluded.source, updated_at = excluded.updated_at`

// ApplyBatch upserts a run of (un)subscriptions with one statement, cutting it where a
// (phone, topic) repeats.
func (Subscriptions) ApplyBatch(_ context.Context, tx Tx, envs []events.Envelope, evs []events.Event) error {
	phones := make([]string, len(evs))
	topics := make([]string, len(evs))
	subscribed := make([]bool, len(evs))
	sources := make([]string, len(evs))
	at := make([]time.Time, len(evs))
	deleted := make([]bool, len(evs))
	for i, e := range evs {
		switch e := e.(type) {
		case *events.UserSubscribed:
			phones[i], topics[i], subscribed[i], sources[i] = e.Phone, e.Topic, true, e.Source
		case *events.UserUnsubscribed:
			phones[i], topics[i], subscribed[i], sources[i] = e.Phone, e.Topic, false, e.Source
		case *events.UserDeleted:
			phones[i], deleted[i] = e.Phone, true
		default:
			return Poison(fmt.Errorf("subscriptions: unexpected %T", e))
		}
		at[i] = envs[i].RecordedAt
	}
	kind := func(i int) int {
		if deleted[i] {
			return 1
		}
		return 0
	}
	return eachRun(len(evs), kind, func(i int) string { return phones[i] + "\x00" + topics[i] },
		func(from, to int) error {
			if deleted[from] {
				tx.Queue(`DELETE FROM subscriptions WHERE phone = ANY($1)`, phones[from:to])
				return nil
			}
			tx.Queue(sqlSubscriptions, phones[from:to], topics[from:to], subscribed[from:to], sources[from:to], at[from:to])
			return nil
		})
}

// All returns Herald's projections, in the order they are started and rebuilt.
func All() []Projection {
	return []Projection{Users{}, Subscriptions{}, InboundMessages{}, DeliveryReceipts{}, Segments{}, Templates{}, Campaigns{}, Messages{}, Imports{}}
}
