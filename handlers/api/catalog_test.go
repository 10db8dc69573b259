package api_test

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestIdempotencyKey(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	body := map[string]any{"name": "Lima", "rule": map[string]any{"attr": "city", "op": "eq", "value": "Lima"}}
	first := e.admin(http.MethodPost, "/v1/segments", body, "Idempotency-Key", "k-1")
	require.Equal(t, http.StatusCreated, first.status, string(first.raw))

	// The same key and body, also concurrently: one segment, the first answer every time.
	var wg sync.WaitGroup
	for i := 0; i < 3; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			again := e.admin(http.MethodPost, "/v1/segments", body, "Idempotency-Key", "k-1")
			assert.Equal(t, http.StatusCreated, again.status)
			assert.Equal(t, string(first.raw), string(again.raw))
			assert.Equal(t, "true", again.header.Get("Idempotent-Replayed"))
			assert.Equal(t, first.header.Get("Location"), again.header.Get("Location"))
		}()
	}
	wg.Wait()
	list := e.admin(http.MethodGet, "/v1/segments", nil)
	assert.Len(t, list.body["items"], 1)

	other := e.admin(http.MethodPost, "/v1/segments", map[string]any{"name": "Cusco", "rule": body["rule"]}, "Idempotency-Key", "k-1")
	assert.Equal(t, http.StatusUnprocessableEntity, other.status)
	assert.Equal(t, []string{"Idempotency-Key"}, other.problemFields())

	// A request still in flight with the key.
	_, err := e.db.Pool.Exec(context.Background(), `INSERT INTO idempotency_keys (principal, key, method, path, body_hash)
SELECT principal, 'k-2', method, path, body_hash FROM idempotency_keys WHERE key = 'k-1'`)
	require.NoError(t, err)
	assert.Equal(t, http.StatusConflict, e.admin(http.MethodPost, "/v1/segments", body, "Idempotency-Key", "k-2").status)

	// A refused request is remembered as refused; a new key is a new segment.
	bad := e.admin(http.MethodPost, "/v1/segments", map[string]any{"name": "x"}, "Idempotency-Key", "k-3")
	assert.Equal(t, http.StatusUnprocessableEntity, bad.status)
	assert.Equal(t, http.StatusCreated, e.admin(http.MethodPost, "/v1/segments", body, "Idempotency-Key", "k-4").status)
	assert.Len(t, e.admin(http.MethodGet, "/v1/segments", nil).body["items"], 2)

	// Keys belong to the API key that sent them: the read key cannot replay an admin's answer.
	assert.Equal(t, http.StatusForbidden, e.call(http.MethodPost, "/v1/segments", readKey, body, "Idempotency-Key", "k-1").status)
}

func seedUsers(t *testing.T, e *env) {
	t.Helper()
	now := time.Now().UTC()
	users := []map[string]any{
		{"phone": "+51987650001", "attributes": map[string]any{"first_name": "Ana", "city": "Lima", "age": 34}, "locale": "es-PE", "timezone": "America/Lima", "consent": "OPT_IN", "topics": []string{"deals"}},
		{"phone": "+51987650002", "attributes": map[string]any{"city": "Lima", "age": 19}, "locale": "es", "consent": "OPT_IN", "topics": []string{"deals"}},
		{"phone": "+51987650003", "attributes": map[string]any{"first_name": "Rosa", "city": "Lima", "age": 51}, "consent": "OPT_OUT", "topics": []string{"deals"}},
		{"phone": "+51987650004", "attributes": map[string]any{"first_name": "Luis", "city": "Lima", "age": 40}, "consent": "OPT_IN"},
		{"phone": "+14155550105", "attributes": map[string]any{"first_name": "Joe", "city": "SF", "age": 28}, "locale": "en-US", "consent": "OPT_IN", "topics": []string{"deals"}},
	}
	for _, u := range users {
		require.Equal(t, http.StatusCreated, e.admin(http.MethodPost, "/v1/users", u).status)
	}
	// Ana wrote to us an hour ago: inside the WhatsApp 24-hour window.
	_, err := e.db.Pool.Exec(context.Background(), `UPDATE users SET last_inbound_at = $1 WHERE phone = '+51987650001'`, now.Add(-time.Hour))
	require.NoError(t, err)
}

func TestSegments(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	seedUsers(t, e)
	rule := map[string]any{"and": []any{
		map[string]any{"attr": "city", "op": "eq", "value": "Lima"},
		map[string]any{"attr": "age", "op": "gte", "value": 30},
		map[string]any{"field": "consent", "op": "eq", "value": "OPT_IN"},
	}}
	res := e.call(http.MethodPost, "/v1/segments/preview", readKey, map[string]any{"rule": rule, "sample": 5})
	require.Equal(t, http.StatusOK, res.status, string(res.raw))
	assert.EqualValues(t, 2, res.body["count"])
	require.Len(t, res.body["sample"], 2)
	assert.Equal(t, "+51987650001", res.body["sample"].([]any)[0].(map[string]any)["phone"])

	created := e.admin(http.MethodPost, "/v1/segments", map[string]any{"name": "Lima 30+", "rule": rule})
	require.Equal(t, http.StatusCreated, created.status, string(created.raw))
	id := created.body["id"].(string)
	res = e.call(http.MethodPost, "/v1/segments/"+id+"/preview", readKey, nil)
	require.Equal(t, http.StatusOK, res.status, string(res.raw))
	assert.EqualValues(t, 2, res.body["count"])

	// Replace with If-Match; a stale ETag is refused.
	etag := created.header.Get("ETag")
	res = e.admin(http.MethodPut, "/v1/segments/"+id, map[string]any{"name": "everyone in Lima", "rule": rule["and"].([]any)[0]}, "If-Match", etag)
	require.Equal(t, http.StatusOK, res.status, string(res.raw))
	assert.Equal(t, "everyone in Lima", res.body["name"])
	assert.Equal(t, http.StatusConflict, e.admin(http.MethodPut, "/v1/segments/"+id, map[string]any{"name": "x", "rule": rule}, "If-Match", etag).status)
	res = e.call(http.MethodPost, "/v1/segments/"+id+"/preview", readKey, nil)
	assert.EqualValues(t, 4, res.body["count"])

	// Trigger-style rules take their values from an event.
	eventRule := map[string]any{"attr": "city", "op": "eq", "value": map[string]any{"$event": "city"}}
	res = e.call(http.MethodPost, "/v1/segments/preview", readKey, map[string]any{"rule": eventRule, "event": map[string]any{"city": "SF"}})
	assert.EqualValues(t, 1, res.body["count"])
	res = e.call(http.MethodPost, "/v1/segments/preview", readKey, map[string]any{"rule": eventRule})
	assert.Equal(t, http.StatusUnprocessableEntity, res.status)
	assert.Equal(t, []string{"event"}, res.problemFields())

	tests := []struct {
		name  string
		rule  any
		field string
	}{
		{"unknown op", map[string]any{"attr": "city", "op": "like", "value": "x"}, "rule.op"},
		{"path into the rule", map[string]any{"and": []any{map[string]any{"attr": "a", "op": "eq", "value": 1}, map[string]any{"or": []any{map[string]any{"field": "shoe_size", "op": "eq", "value": 1}}}}}, "rule.and[1].or[0].field"},
		{"injection attempt as a key", map[string]any{"attr": "city'; DROP TABLE users; --", "op": "eq", "value": "x"}, ""},
		{"missing", nil, "rule"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res := e.admin(http.MethodPost, "/v1/segments", map[string]any{"name": "bad", "rule": tt.rule})
			if tt.field == "" {
				// A strange attribute name is just a key that nobody has.
				require.Equal(t, http.StatusCreated, res.status, string(res.raw))
				return
			}
			assert.Equal(t, http.StatusUnprocessableEntity, res.status, string(res.raw))
			assert.Equal(t, []string{tt.field}, res.problemFields(), string(res.raw))
		})
	}
	var users int
	require.NoError(t, e.db.Pool.QueryRow(context.Background(), `SELECT count(*) FROM users`).Scan(&users))
	assert.Equal(t, 5, users)

	deep := map[string]any{"attr": "a", "op": "exists"}
	for i := 0; i < 100; i++ {
		deep = map[string]any{"not": deep}
	}
	res = e.admin(http.MethodPost, "/v1/segments", map[string]any{"name": "deep", "rule": deep})
	assert.Equal(t, http.StatusUnprocessableEntity, res.status)

	assert.Equal(t, http.StatusNoContent, e.admin(http.MethodDelete, "/v1/segments/"+id, nil).status)
	assert.Equal(t, http.StatusNotFound, e.admin(http.MethodGet, "/v1/segments/"+id, nil).status)
}

func createTemplate(t *testing.T, e *env, body map[string]any) string {
	t.Helper()
	res := e.admin(http.MethodPost, "/v1/templates", body)
	require.Equal(t, http.StatusCreated, res.status, string(res.raw))
	return res.body["id"].(string)
}

func TestTemplates(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	seedUsers(t, e)
	id := createTemplate(t, e, map[string]any{"name": "price drop", "default_locale": "en", "variants": map[string]any{
		"en":    map[string]any{"body": "Hi {first_name|there}, {event.product} is now {event.price}."},
		"es":    map[string]any{"body": "Hola {first_name|}, {event.product} ahora cuesta {event.price}."},
		"es_pe": map[string]any{"body": "¡Hola {first_name}! {event.product} a S/ {event.price}."},
	}})
	res := e.admin(http.MethodGet, "/v1/templates/"+id, nil)
	assert.Equal(t, "whatsapp", res.body["channel"])
	assert.Contains(t, res.body["variants"], "es-PE", "locales are stored canonically")

	preview := func(body map[string]any) map[string]any {
		res := e.call(http.MethodPost, "/v1/templates/"+id+"/preview", readKey, body)
		require.Equal(t, http.StatusOK, res.status, string(res.raw))
		return res.body
	}
	event := map[string]any{"product": "Zapatillas", "price": 199.9}
	got := preview(map[string]any{"phone": "+51987650001", "event": event})
	assert.Equal(t, "es-PE", got["locale"])
	assert.Equal(t, "¡Hola Ana! Zapatillas a S/ 199.9.", got["text"])
	got = preview(map[string]any{"phone": "+51987650002", "event": event})
	assert.Equal(t, "es", got["locale"], "es → the language variant")
	assert.Equal(t, "Hola , Zapatillas ahora cuesta 199.9.", got["text"])
	got = preview(map[string]any{"attributes": map[string]any{"first_name": "{phone} {{.Secret}}"}, "locale": "fr", "event": event})
	assert.Equal(t, "en", got["locale"], "unknown locale → the default")
	assert.Equal(t, "Hi {phone} {{.Secret}}, Zapatillas is now 199.9.", got["text"], "values are inserted literally")
	got = preview(map[string]any{"locale": "es-PE", "event": map[string]any{"product": "x"}})
	assert.Equal(t, []any{"first_name", "event.price"}, got["missing"])

	res = e.admin(http.MethodPost, "/v1/templates", map[string]any{"name": "broken", "default_locale": "en", "variants": map[string]any{
		"en": map[string]any{"body": "Hi {first_name"}, "de": map[string]any{"body": "Hallo }"}}})
	assert.Equal(t, http.StatusUnprocessableEntity, res.status)
	fields := strings.Join(res.problemFields(), ",")
	assert.Contains(t, fields, "variants.en.body")
	assert.Contains(t, fields, "variants.de.body")
	assert.Contains(t, string(res.raw), "at ", "the reason gives the position")

	res = e.admin(http.MethodPost, "/v1/templates", map[string]any{"name": "x", "channel": "sms", "default_locale": "en",
		"variants": map[string]any{"en": map[string]any{"body": "hi"}}})
	assert.Equal(t, http.StatusUnprocessableEntity, res.status)
	assert.Contains(t, res.problemFields(), "channel")
}

func TestCampaigns(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	seedUsers(t, e)
	tpl := createTemplate(t, e, map[string]any{"name": "deal", "default_locale": "en", "variants": map[string]any{
		"en": map[string]any{"body": "Hi {first_name}, 20% off today."},
		"es": map[string]any{"body": "Hola {first_name}, 20% de descuento hoy."},
	}})
	body := map[string]any{"name": "Black Friday", "topic": "deals", "template_id": tpl,
		"segment_rule": map[string]any{"field": "country", "op": "in", "value": []any{"PE", "US"}},
		"rate_limit":   map[string]any{"per_second": 2},
		"quiet_hours":  map[string]any{"start": "21:00", "end": "08:00", "timezone_fallback": "America/Lima"},
	}
	res := e.admin(http.MethodPost, "/v1/campaigns", body)
	require.Equal(t, http.StatusCreated, res.status, string(res.raw))
	id := res.body["id"].(string)
	assert.Equal(t, "draft", res.body["status"])
	assert.Equal(t, "now", res.body["schedule"].(map[string]any)["kind"])
	assert.EqualValues(t, 5, res.body["retry"].(map[string]any)["max_attempts"], "a default retry policy")

	res = e.call(http.MethodPost, "/v1/campaigns/"+id+"/preview", readKey, nil)
	require.Equal(t, http.StatusOK, res.status, string(res.raw))
	p := res.body
	assert.EqualValues(t, 5, p["matched"])
	assert.EqualValues(t, 3, p["recipients"], "opted in and subscribed")
	skipped := p["skipped"].(map[string]any)
	assert.EqualValues(t, 1, skipped["consent"])
	assert.EqualValues(t, 1, skipped["topic"])
	assert.EqualValues(t, 1, skipped["missing_template_variable"], "+51987650002 has no first_name")
	// Ana is inside the 24-hour window; Joe is not and the template has no approved content_sid.
	assert.EqualValues(t, 1, skipped["outside_24h_window_without_approved_template"])
	now := time.Now().In(mustLoc(t, "America/Lima"))
	quiet := now.Hour() >= 21 || now.Hour() < 8
	deferred := 0.0
	for _, d := range p["deferred"].([]any) {
		deferred += d.(map[string]any)["count"].(float64)
	}
	if quiet {
		assert.EqualValues(t, 0, p["send_now"])
		assert.EqualValues(t, 1, deferred)
	} else {
		assert.EqualValues(t, 1, p["send_now"])
		assert.EqualValues(t, 0, deferred)
	}
	assert.EqualValues(t, 2, p["rate_per_second"])
	assert.Len(t, p["samples"], 3)
	// With quiet hours every sample says the recipient's zone and local time, a deferred one until when.
	for _, it := range p["samples"].([]any) {
		sm := it.(map[string]any)
		assert.NotEmpty(t, sm["zone"], sm["phone"])
		assert.Regexp(t, `^\d\d:\d\d$`, sm["local_time"], sm["phone"])
		if sm["phone"] == "+51987650001" {
			assert.Equal(t, "America/Lima", sm["zone"], "Ana's own time zone")
		}
		if sm["decision"] == "deferred" {
			assert.NotEmpty(t, sm["until"])
		} else {
			assert.Nil(t, sm["until"])
		}
	}

	// Status changes follow the life cycle.
	res = e.admin(http.MethodPost, "/v1/campaigns/"+id+"/resume", nil)
	assert.Equal(t, http.StatusConflict, res.status, "a draft cannot be resumed")
	res = e.admin(http.MethodPost, "/v1/campaigns/"+id+"/launch", nil)
	require.Equal(t, http.StatusOK, res.status, string(res.raw))
	assert.Equal(t, "running", res.body["status"])
	res = e.admin(http.MethodPut, "/v1/campaigns/"+id, body)
	assert.Equal(t, http.StatusConflict, res.status, "a running campaign cannot be edited")
	assert.Equal(t, "paused", e.admin(http.MethodPost, "/v1/campaigns/"+id+"/pause", nil).body["status"])
	assert.Equal(t, "running", e.admin(http.MethodPost, "/v1/campaigns/"+id+"/resume", nil).body["status"])
	assert.Equal(t, http.StatusConflict, e.admin(http.MethodDelete, "/v1/campaigns/"+id, nil).status)
	assert.Equal(t, "cancelled", e.admin(http.MethodPost, "/v1/campaigns/"+id+"/cancel", nil).body["status"])
	assert.Equal(t, http.StatusConflict, e.admin(http.MethodPost, "/v1/campaigns/"+id+"/launch", nil).status)
	res = e.admin(http.MethodGet, "/v1/campaigns?status=cancelled", nil)
	assert.Len(t, res.body["items"], 1)
	assert.Equal(t, http.StatusNoContent, e.admin(http.MethodDelete, "/v1/campaigns/"+id, nil).status)

	// Scheduled campaigns launch into scheduled.
	body["schedule"] = map[string]any{"kind": "cron", "cron": "0 9 * * 5", "timezone": "America/Lima"}
	res = e.admin(http.MethodPost, "/v1/campaigns", body)
	require.Equal(t, http.StatusCreated, res.status, string(res.raw))
	assert.Equal(t, "scheduled", e.admin(http.MethodPost, "/v1/campaigns/"+res.body["id"].(string)+"/launch", nil).body["status"])

	tests := []struct {
		name   string
		change map[string]any
		fields []string
	}{
		{"status is the server's", map[string]any{"status": "running"}, []string{"status"}},
		{"id is the server's", map[string]any{"id": "mine"}, []string{"id"}},
		{"unknown template", map[string]any{"template_id": "nope"}, []string{"template_id"}},
		{"segment both ways", map[string]any{"segment_id": "x"}, []string{"segment_rule"}},
		{"bad schedule", map[string]any{"schedule": map[string]any{"kind": "cron", "cron": "every day"}}, []string{"schedule.cron"}},
		{"bad limits and quiet hours", map[string]any{"rate_limit": map[string]any{"per_second": -1, "per_minute": 10_000_000},
			"quiet_hours": map[string]any{"start": "9pm", "end": "08:00", "timezone_fallback": "Lima"}},
			[]string{"rate_limit.per_second", "rate_limit.per_minute", "quiet_hours.start", "quiet_hours.timezone_fallback"}},
		{"bad retry", map[string]any{"retry": map[string]any{"max_attempts": 0, "initial_backoff": "1ms", "max_backoff": "2d"}},
			[]string{"retry.max_attempts", "retry.initial_backoff", "retry.max_backoff"}},
		{"topic slug", map[string]any{"topic": "Big Deals"}, []string{"topic"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := map[string]any{}
			for k, v := range body {
				b[k] = v
			}
			for k, v := range tt.change {
				b[k] = v
			}
			res := e.admin(http.MethodPost, "/v1/campaigns", b)
			assert.Equal(t, http.StatusUnprocessableEntity, res.status, string(res.raw))
			assert.Equal(t, tt.fields, res.problemFields(), string(res.raw))
		})
	}
}

func mustLoc(t *testing.T, name string) *time.Location {
	loc, err := time.LoadLocation(name)
	require.NoError(t, err)
	return loc
}

func TestEventsAreTheAuditLog(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	seedUsers(t, e)
	res := e.admin(http.MethodGet, "/v1/events?stream=user&type=user.subscribed&limit=2", nil)
	require.Equal(t, http.StatusOK, res.status, string(res.raw))
	assert.Len(t, res.body["items"], 2)
	next := res.body["next_cursor"].(string)
	res = e.admin(http.MethodGet, "/v1/events?stream=user&type=user.subscribed&limit=2&cursor="+next, nil)
	assert.Len(t, res.body["items"], 2)
	first := res.body["items"].([]any)[0].(map[string]any)
	assert.Equal(t, "user.subscribed", first["type"])
	assert.Equal(t, "api", first["metadata"].(map[string]any)["source"])
	assert.True(t, strings.HasPrefix(first["metadata"].(map[string]any)["actor"].(string), "key_"), "the actor is the key's id, never the key")
	assert.NotContains(t, string(res.raw), adminKey)
	assert.Equal(t, http.StatusForbidden, e.call(http.MethodGet, "/v1/events", readKey, nil).status)
	assert.Equal(t, http.StatusUnprocessableEntity, e.admin(http.MethodGet, "/v1/events?after=-1", nil).status)
	_ = fmt.Sprint()
}

func TestScheduleCampaign(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	tpl := createTemplate(t, e, map[string]any{"name": "deal", "default_locale": "en", "variants": map[string]any{"en": map[string]any{"body": "Hi"}}})
	res := e.admin(http.MethodPost, "/v1/campaigns", map[string]any{"name": "weekly", "topic": "deals", "template_id": tpl})
	require.Equal(t, http.StatusCreated, res.status, string(res.raw))
	id := res.body["id"].(string)

	for _, tt := range []struct {
		body  map[string]any
		field string
	}{
		{map[string]any{"kind": "cron", "cron": "every friday"}, "schedule.cron"},
		{map[string]any{"kind": "at", "at": "2001-01-01T09:00:00Z"}, "schedule.at"},
		{map[string]any{"kind": "now"}, "schedule.kind"},
		{map[string]any{"kind": "cron", "cron": "0 9 * * 5", "timezone": "Lima"}, "schedule.timezone"},
	} {
		res := e.admin(http.MethodPost, "/v1/campaigns/"+id+"/schedule", tt.body)
		assert.Equal(t, http.StatusUnprocessableEntity, res.status, string(res.raw))
		assert.Equal(t, []string{tt.field}, res.problemFields())
	}
	res = e.admin(http.MethodPost, "/v1/campaigns/"+id+"/schedule", map[string]any{"kind": "cron", "cron": "0 9 * * 5", "timezone": "America/Lima"})
	require.Equal(t, http.StatusOK, res.status, string(res.raw))
	assert.Equal(t, "scheduled", res.body["status"])
	assert.Equal(t, map[string]any{"kind": "cron", "cron": "0 9 * * 5", "timezone": "America/Lima"}, res.body["schedule"])
	assert.Equal(t, "weekly", res.body["name"], "the rest of the campaign is kept")
	// Rescheduling a scheduled campaign keeps it scheduled.
	at := time.Now().Add(48 * time.Hour).UTC().Format(time.RFC3339)
	res = e.admin(http.MethodPost, "/v1/campaigns/"+id+"/schedule", map[string]any{"kind": "at", "at": at})
	require.Equal(t, http.StatusOK, res.status, string(res.raw))
	assert.Equal(t, "scheduled", res.body["status"])
	assert.Equal(t, at, res.body["schedule"].(map[string]any)["at"])
}

// TestSlowReadModelAnswers202WithTheID: when the read models do not show a write within
// WaitTimeout the answer is 202 with the log position, and a create names what it made — in
// the body and in Location — so the client can GET it later. The body had no id, and a client
// creating a template under load could not name it in its campaign (a CI run's fault test).
func TestSlowReadModelAnswers202WithTheID(t *testing.T) {
	t.Parallel()
	e := newEnvWith(t, envOptions{stalled: true})
	for _, tc := range []struct {
		path string
		body map[string]any
	}{
		{"/v1/segments", map[string]any{"name": "Lima", "rule": map[string]any{"attr": "city", "op": "eq", "value": "Lima"}}},
		{"/v1/templates", map[string]any{"name": "deal", "default_locale": "es",
			"variants": map[string]any{"es": map[string]any{"body": "Hola {first_name}"}}}},
	} {
		t.Run(tc.path, func(t *testing.T) {
			res := e.admin(http.MethodPost, tc.path, tc.body)
			require.Equal(t, http.StatusAccepted, res.status, string(res.raw))
			id, _ := res.body["id"].(string)
			require.NotEmpty(t, id, "the 202 names the new resource: %s", res.raw)
			assert.Equal(t, tc.path+"/"+id, res.header.Get("Location"))
			assert.Equal(t, "accepted", res.body["status"])
			assert.NotEmpty(t, res.body["position"])
		})
	}
}
