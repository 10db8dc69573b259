package api

import (
	"context"
	"errors"
	"net/http"
	"regexp"
	"strings"
	"time"

	"github.com/gorilla/mux"
	"github.com/jackc/pgx/v5"

	"herald/commands"
	"herald/events/store"
)

// User is a user as the API shows it.
type User struct {
	Phone         string         `json:"phone"`
	Country       string         `json:"country"`
	Attributes    map[string]any `json:"attributes"`
	Consent       string         `json:"consent"`
	ConsentSource string         `json:"consent_source"`
	Locale        string         `json:"locale"`
	Timezone      string         `json:"timezone"`
	Topics        []string       `json:"topics"`
	LastInboundAt *time.Time     `json:"last_inbound_at"`
	CreatedAt     time.Time      `json:"created_at"`
	UpdatedAt     time.Time      `json:"updated_at"`
	Version       int            `json:"version"`
}

const userColumns = `u.phone, u.country, u.attributes, u.consent, u.consent_source, u.locale, u.timezone,
    coalesce((SELECT array_agg(s.topic ORDER BY s.topic) FROM subscriptions s WHERE s.phone = u.phone AND s.subscribed), '{}'),
    u.last_inbound_at, u.created_at, u.updated_at, u.version`

func scanUser(row pgx.Row) (User, error) {
	var u User
	err := row.Scan(&u.Phone, &u.Country, &u.Attributes, &u.Consent, &u.ConsentSource, &u.Locale, &u.Timezone,
		&u.Topics, &u.LastInboundAt, &u.CreatedAt, &u.UpdatedAt, &u.Version)
	return u, err
}

func (a *API) readUser(ctx context.Context, phone string) (User, error) {
	u, err := scanUser(a.pool.QueryRow(ctx, `SELECT `+userColumns+` FROM users u WHERE u.phone = $1`, phone))
	if errors.Is(err, pgx.ErrNoRows) {
		return u, notFound("user " + phone)
	}
	return u, err
}

// userTarget reads the user a write is about ({phone} in any common format) and If-Match.
func (a *API) userTarget(r *http.Request) (phone string, expected int, err error) {
	if phone, err = a.phoneParam(r); err != nil {
		return "", 0, err
	}
	expected, err = ifMatch(r)
	return phone, expected, err
}

// phoneParam reads {phone} from the path in any common format.
func (a *API) phoneParam(r *http.Request) (string, error) {
	return commands.NormalizePhone(mux.Vars(r)["phone"], a.cfg.DefaultRegion)
}

func (a *API) getUser(w http.ResponseWriter, r *http.Request) error {
	phone, err := a.phoneParam(r)
	if err != nil {
		return err
	}
	u, err := a.readUser(r.Context(), phone)
	if err != nil {
		return err
	}
	setETag(w, u.Version)
	writeJSON(w, http.StatusOK, u)
	return nil
}

// userBody is POST /v1/users and PATCH /v1/users/{phone}.
type userBody struct {
	Phone         string         `json:"phone"`
	Attributes    map[string]any `json:"attributes"`
	Locale        *string        `json:"locale"`
	Timezone      *string        `json:"timezone"`
	Consent       string         `json:"consent"`
	ConsentReason string         `json:"consent_reason"`
	Topics        []string       `json:"topics"`
}

func (b *userBody) check(errs *fieldErrors) {
	checkAttributes(errs, b.Attributes)
	checkLocale(errs, "locale", b.Locale)
	checkTimezone(errs, "timezone", b.Timezone)
	checkConsent(errs, "consent", b.Consent, false)
	if len(b.Topics) > maxTopics {
		errs.add("topics", "at most %d", maxTopics)
	}
	for i, t := range b.Topics {
		b.Topics[i] = checkTopic(errs, "topics", t)
	}
}

// upsertUser creates a user or merges into an existing one.
func (a *API) upsertUser(w http.ResponseWriter, r *http.Request) error {
	var b userBody
	if err := a.decode(w, r, &b); err != nil {
		return err
	}
	var errs fieldErrors
	phone, err := commands.NormalizePhone(b.Phone, a.cfg.DefaultRegion)
	if err != nil {
		var pe *commands.PhoneError
		if errors.As(err, &pe) {
			errs.add("phone", "%s", pe.Reason)
		}
	}
	b.check(&errs)
	if err := errs.err(); err != nil {
		return err
	}
	written, err := a.users.Save(r.Context(), commands.SaveUser{Phone: phone, Attributes: b.Attributes, Locale: b.Locale,
		Timezone: b.Timezone, Consent: b.Consent, ConsentReason: b.ConsentReason, Topics: b.Topics,
		Expected: store.AnyVersion, Source: "api", Metadata: metadata(r)})
	if err != nil {
		return err
	}
	status := http.StatusOK
	if written.Created {
		status = http.StatusCreated
	}
	return a.answerUser(w, r, status, phone, written)
}

// patchUser changes attributes (merge; null deletes a key), locale and time zone. Consent and
// topics have their own routes, so PATCH refuses them along with any other field.
func (a *API) patchUser(w http.ResponseWriter, r *http.Request) error {
	phone, expected, err := a.userTarget(r)
	if err != nil {
		return err
	}
	var b struct {
		Attributes        map[string]any `json:"attributes"`
		ReplaceAttributes bool           `json:"replace_attributes"`
		Locale            *string        `json:"locale"`
		Timezone          *string        `json:"timezone"`
	}
	if err := a.decode(w, r, &b); err != nil {
		return err
	}
	var errs fieldErrors
	checkAttributes(&errs, b.Attributes)
	checkLocale(&errs, "locale", b.Locale)
	checkTimezone(&errs, "timezone", b.Timezone)
	if err := errs.err(); err != nil {
		return err
	}
	written, err := a.users.Save(r.Context(), commands.SaveUser{Phone: phone, Attributes: b.Attributes, ReplaceAttributes: b.ReplaceAttributes,
		Locale: b.Locale, Timezone: b.Timezone, MustExist: true, Expected: expected, Source: "api", Metadata: metadata(r)})
	if err != nil {
		return err
	}
	return a.answerUser(w, r, http.StatusOK, phone, written)
}

func (a *API) deleteUser(w http.ResponseWriter, r *http.Request) error {
	phone, expected, err := a.userTarget(r)
	if err != nil {
		return err
	}
	written, err := a.users.Delete(r.Context(), commands.DeleteUser{Phone: phone, Reason: r.URL.Query().Get("reason"),
		Expected: expected, Source: "api", Metadata: metadata(r)})
	if err != nil {
		return err
	}
	return a.answerNoContent(w, r, written, "users", "subscriptions", "inbound_messages")
}

func (a *API) setConsent(w http.ResponseWriter, r *http.Request) error {
	phone, expected, err := a.userTarget(r)
	if err != nil {
		return err
	}
	var b struct {
		Consent string `json:"consent"`
		Reason  string `json:"reason"`
	}
	if err := a.decode(w, r, &b); err != nil {
		return err
	}
	var errs fieldErrors
	checkConsent(&errs, "consent", b.Consent, true)
	if err := errs.err(); err != nil {
		return err
	}
	written, err := a.users.SetConsent(r.Context(), commands.SetConsent{Phone: phone, Consent: b.Consent, Reason: b.Reason,
		Expected: expected, Source: "api", Metadata: metadata(r)})
	if err != nil {
		return err
	}
	return a.answerUser(w, r, http.StatusOK, phone, written)
}

func (a *API) subscribe(w http.ResponseWriter, r *http.Request) error {
	return a.setSubscription(w, r, true)
}
func (a *API) unsubscribe(w http.ResponseWriter, r *http.Request) error {
	return a.setSubscription(w, r, false)
}

func (a *API) setSubscription(w http.ResponseWriter, r *http.Request, on bool) error {
	phone, expected, err := a.userTarget(r)
	if err != nil {
		return err
	}
	var errs fieldErrors
	topic := checkTopic(&errs, "topic", mux.Vars(r)["topic"])
	if err := errs.err(); err != nil {
		return err
	}
	written, err := a.users.SetSubscription(r.Context(), commands.SetSubscription{Phone: phone, Topic: topic, Subscribed: on,
		Expected: expected, Source: "api", Metadata: metadata(r)})
	if err != nil {
		return err
	}
	return a.answerUser(w, r, http.StatusOK, phone, written)
}

// answerUser waits for the users and subscriptions read models and answers with the user.
func (a *API) answerUser(w http.ResponseWriter, r *http.Request, status int, phone string, written commands.Written) error {
	ok, err := a.applied(r.Context(), written, "users", "subscriptions")
	if err != nil {
		return err
	}
	location := "/v1/users/" + phone
	if !ok {
		return accepted(w, r, location, "", written)
	}
	u, err := a.readUser(r.Context(), phone)
	if err != nil {
		return err
	}
	if status == http.StatusCreated {
		w.Header().Set("Location", location)
	}
	setETag(w, u.Version)
	writeJSON(w, status, u)
	return nil
}

var (
	phonePrefixPattern = regexp.MustCompile(`^\+?[0-9]{1,15}$`)
	countryPattern     = regexp.MustCompile(`^[A-Z]{2}$`)
)

// listUsers searches users: consent, topic, country, phone prefix, attribute equality
// (attr.<key>=value, compared as text) and free text in attributes; ordered by phone.
func (a *API) listUsers(w http.ResponseWriter, r *http.Request) error {
	var after string
	limit, err := pageParams(r, &after)
	if err != nil {
		return err
	}
	q := r.URL.Query()
	var (
		errs  fieldErrors
		where []string
		args  []any
	)
	arg := func(v any) string {
		args = append(args, v)
		return "$" + itoa(len(args))
	}
	for key, values := range q {
		v := values[0]
		switch {
		case key == "limit" || key == "cursor":
		case key == "consent":
			checkConsent(&errs, key, v, true)
			where = append(where, "u.consent = "+arg(v))
		case key == "topic":
			where = append(where, "EXISTS (SELECT 1 FROM subscriptions s WHERE s.topic = "+arg(checkTopic(&errs, key, v))+
				" AND s.subscribed AND s.phone = u.phone)")
		case key == "country":
			v = strings.ToUpper(v)
			if !countryPattern.MatchString(v) {
				errs.add(key, "must be an ISO 3166 alpha-2 code like PE")
			}
			where = append(where, "u.country = "+arg(v))
		case key == "phone_prefix":
			if !phonePrefixPattern.MatchString(v) {
				errs.add(key, "must be digits, optionally after +")
			}
			if !strings.HasPrefix(v, "+") {
				v = "+" + v
			}
			where = append(where, "starts_with(u.phone, "+arg(v)+")")
		case key == "q":
			if len(v) > 200 {
				errs.add(key, "is longer than 200 characters")
			}
			where = append(where, "strpos(lower(u.attributes::text), lower("+arg(v)+")) > 0")
		case strings.HasPrefix(key, "attr."):
			name := strings.TrimPrefix(key, "attr.")
			if !attrKeyPattern.MatchString(name) || len(name) > maxAttributeKey {
				errs.add(key, "is not an attribute name")
			}
			where = append(where, "u.attributes ->> "+arg(name)+" = "+arg(v))
		default:
			errs.add(key, "is not a filter (consent, topic, country, phone_prefix, q, attr.<name>, limit, cursor)")
		}
	}
	if err := errs.err(); err != nil {
		return err
	}
	if after != "" {
		where = append(where, "u.phone > "+arg(after))
	}
	sql := `SELECT ` + userColumns + ` FROM users u`
	if len(where) > 0 {
		sql += " WHERE " + strings.Join(where, " AND ")
	}
	sql += " ORDER BY u.phone LIMIT " + arg(limit+1)
	rows, err := a.pool.Query(r.Context(), sql, args...)
	if err != nil {
		return err
	}
	users, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (User, error) { return scanUser(row) })
	if err != nil {
		return err
	}
	page := Page[User]{Items: users}
	if len(users) > limit {
		page.Items = users[:limit]
		page.NextCursor = encodeCursor(users[limit-1].Phone)
	}
	if page.Items == nil {
		page.Items = []User{}
	}
	writeJSON(w, http.StatusOK, page)
	return nil
}
