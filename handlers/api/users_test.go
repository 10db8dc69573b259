package api_test

import (
	"context"
	"fmt"
	"net/http"
	"sync"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestUserLifecycleReadsItsOwnWrites(t *testing.T) {
	t.Parallel()
	e := newEnv(t)

	res := e.admin(http.MethodPost, "/v1/users", map[string]any{"phone": "987 654 321", "attributes": map[string]any{"city": "Lima", "plan": "gold"},
		"locale": "es-PE", "timezone": "America/Lima", "consent": "OPT_IN", "topics": []string{"deals"}})
	require.Equal(t, http.StatusCreated, res.status, string(res.raw))
	assert.Equal(t, "+51987654321", res.body["phone"], "read in HERALD_DEFAULT_REGION and stored as E.164")
	assert.Equal(t, "PE", res.body["country"])
	assert.Equal(t, "OPT_IN", res.body["consent"])
	assert.Equal(t, "api", res.body["consent_source"])
	assert.Equal(t, []any{"deals"}, res.body["topics"])
	assert.Equal(t, "/v1/users/+51987654321", res.header.Get("Location"))
	etag := res.header.Get("ETag")
	require.NotEmpty(t, etag)

	// Merge: a null deletes a key; PATCH with the current ETag.
	res = e.admin(http.MethodPatch, "/v1/users/+51987654321", map[string]any{"attributes": map[string]any{"plan": nil, "age": 34}}, "If-Match", etag)
	require.Equal(t, http.StatusOK, res.status, string(res.raw))
	assert.Equal(t, map[string]any{"city": "Lima", "age": 34.0}, res.body["attributes"])
	// The old ETag is stale now.
	res = e.admin(http.MethodPatch, "/v1/users/+51987654321", map[string]any{"locale": "en"}, "If-Match", etag)
	assert.Equal(t, http.StatusConflict, res.status)
	assert.Equal(t, []string{"If-Match"}, res.problemFields())

	res = e.admin(http.MethodPut, "/v1/users/51987654321/consent", map[string]any{"consent": "OPT_OUT", "reason": "asked by phone"})
	require.Equal(t, http.StatusOK, res.status, string(res.raw))
	assert.Equal(t, "OPT_OUT", res.body["consent"])
	res = e.admin(http.MethodDelete, "/v1/users/+51987654321/subscriptions/deals", nil)
	require.Equal(t, http.StatusOK, res.status)
	assert.Equal(t, []any{}, res.body["topics"])
	res = e.admin(http.MethodPut, "/v1/users/+51987654321/subscriptions/back-in-stock", nil)
	assert.Equal(t, []any{"back-in-stock"}, res.body["topics"])

	// The user's stream is the audit trail of all of it.
	res = e.admin(http.MethodGet, "/v1/events?stream=user-%2B51987654321", nil)
	require.Equal(t, http.StatusOK, res.status)
	var types []string
	for _, it := range res.body["items"].([]any) {
		types = append(types, it.(map[string]any)["type"].(string))
	}
	assert.Equal(t, []string{"user.created", "user.consent_changed", "user.subscribed", "user.attributes_changed",
		"user.consent_changed", "user.unsubscribed", "user.subscribed"}, types)

	res = e.admin(http.MethodDelete, "/v1/users/+51987654321", nil)
	require.Equal(t, http.StatusNoContent, res.status)
	assert.Equal(t, http.StatusNotFound, e.admin(http.MethodGet, "/v1/users/+51987654321", nil).status)
	assert.Equal(t, http.StatusNotFound, e.admin(http.MethodDelete, "/v1/users/+51987654321", nil).status)
	// Created again afterwards, from scratch.
	res = e.admin(http.MethodPost, "/v1/users", map[string]any{"phone": "+51987654321"})
	require.Equal(t, http.StatusCreated, res.status)
	assert.Equal(t, "OPT_OUT", res.body["consent"])
	assert.Equal(t, []any{}, res.body["topics"])
}

func TestUserValidation(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	require.Equal(t, http.StatusCreated, e.admin(http.MethodPost, "/v1/users", map[string]any{"phone": "+51987654321"}).status)
	tests := []struct {
		name   string
		method string
		path   string
		body   any
		status int
		fields []string
	}{
		{"invalid phone", "POST", "/v1/users", map[string]any{"phone": "+1 555"}, 422, []string{"phone"}},
		{"every problem at once", "POST", "/v1/users", map[string]any{"phone": "12", "locale": "spanish!", "timezone": "Lima",
			"consent": "YES", "topics": []string{"Big Deals"}}, 422, []string{"phone", "locale", "timezone", "consent", "topics"}},
		{"bad attribute key", "POST", "/v1/users", map[string]any{"phone": "+51987654321", "attributes": map[string]any{"a b": 1}}, 422, []string{"attributes.a b"}},
		{"unknown field", "POST", "/v1/users", map[string]any{"phone": "+51987654321", "admin": true}, 422, []string{"admin"}},
		{"mass assignment: consent via PATCH", "PATCH", "/v1/users/+51987654321", map[string]any{"consent": "OPT_IN"}, 422, []string{"consent"}},
		{"mass assignment: phone via PATCH", "PATCH", "/v1/users/+51987654321", map[string]any{"phone": "+51911111111"}, 422, []string{"phone"}},
		{"mass assignment: version via PATCH", "PATCH", "/v1/users/+51987654321", map[string]any{"version": 99}, 422, []string{"version"}},
		{"wrong type", "PATCH", "/v1/users/+51987654321", map[string]any{"locale": 5}, 422, []string{"locale"}},
		{"not JSON", "POST", "/v1/users", "{phone:", 400, []string{"body"}},
		{"two values", "POST", "/v1/users", `{"phone":"+51987654321"} {}`, 400, []string{"body"}},
		{"patch a stranger", "PATCH", "/v1/users/+51911111111", map[string]any{"locale": "es"}, 404, nil},
		{"consent required", "PUT", "/v1/users/+51987654321/consent", map[string]any{}, 422, []string{"consent"}},
		{"topic not a slug", "PUT", "/v1/users/+51987654321/subscriptions/Big%20Deals", nil, 422, []string{"topic"}},
		{"huge page", "GET", "/v1/users?limit=10001", nil, 422, []string{"limit"}},
		{"unknown filter", "GET", "/v1/users?tenant=1", nil, 422, []string{"tenant"}},
		{"forged cursor", "GET", "/v1/users?cursor=%27%3B--", nil, 422, []string{"cursor"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res := e.admin(tt.method, tt.path, tt.body)
			assert.Equal(t, tt.status, res.status, string(res.raw))
			if tt.status >= 400 {
				assert.Equal(t, "application/problem+json", res.header.Get("Content-Type"))
			}
			if tt.fields != nil {
				assert.Equal(t, tt.fields, res.problemFields(), string(res.raw))
			}
		})
	}
	// Nothing refused was written.
	res := e.admin(http.MethodGet, "/v1/users/+51987654321", nil)
	assert.Equal(t, "OPT_OUT", res.body["consent"])
	assert.Equal(t, "", res.body["locale"])
}

func TestUserBodyIsCapped(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	big := fmt.Sprintf(`{"phone":"+51987654321","attributes":{"x":"%0100000d"}}`, 0)
	res := e.admin(http.MethodPost, "/v1/users", big)
	assert.Equal(t, http.StatusRequestEntityTooLarge, res.status)
}

func TestSearchUsers(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	for i := 0; i < 30; i++ {
		body := map[string]any{"phone": fmt.Sprintf("+5198765%04d", i), "attributes": map[string]any{"city": []string{"Lima", "Cusco", "Arequipa"}[i%3], "n": i},
			"consent": []string{"OPT_IN", "OPT_OUT"}[i%2]}
		if i%5 == 0 {
			body["topics"] = []string{"deals"}
		}
		if i == 7 {
			body["phone"] = "+14155550107"
			body["attributes"] = map[string]any{"city": "San Francisco", "note": "VIP customer"}
		}
		require.Equal(t, http.StatusCreated, e.admin(http.MethodPost, "/v1/users", body).status)
	}
	phones := func(path string) ([]string, string) {
		res := e.call(http.MethodGet, path, readKey, nil)
		require.Equal(t, http.StatusOK, res.status, string(res.raw))
		var out []string
		for _, it := range res.body["items"].([]any) {
			out = append(out, it.(map[string]any)["phone"].(string))
		}
		next, _ := res.body["next_cursor"].(string)
		return out, next
	}
	got, _ := phones("/v1/users?attr.city=Cusco&consent=OPT_IN")
	assert.Equal(t, []string{"+51987650004", "+51987650010", "+51987650016", "+51987650022", "+51987650028"}, got)
	got, _ = phones("/v1/users?topic=deals")
	assert.Equal(t, []string{"+51987650000", "+51987650005", "+51987650010", "+51987650015", "+51987650020", "+51987650025"}, got)
	got, _ = phones("/v1/users?country=US")
	assert.Equal(t, []string{"+14155550107"}, got)
	got, _ = phones("/v1/users?q=vip")
	assert.Equal(t, []string{"+14155550107"}, got)
	got, _ = phones("/v1/users?phone_prefix=%2B5198765002")
	assert.Len(t, got, 10)
	got, _ = phones("/v1/users?attr.n=3")
	assert.Equal(t, []string{"+51987650003"}, got, "attributes compare as text")

	// Pages walk the whole set once.
	var all []string
	path := "/v1/users?limit=7"
	for {
		page, next := phones(path)
		all = append(all, page...)
		if next == "" {
			break
		}
		path = "/v1/users?limit=7&cursor=" + next
	}
	assert.Len(t, all, 30)
	assert.IsIncreasing(t, all)
}

func TestConcurrentWritesToOneUserAllLand(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	require.Equal(t, http.StatusCreated, e.admin(http.MethodPost, "/v1/users", map[string]any{"phone": "+51987654321"}).status)
	var wg sync.WaitGroup
	for i := 0; i < 16; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			res := e.admin(http.MethodPatch, "/v1/users/+51987654321", map[string]any{"attributes": map[string]any{fmt.Sprintf("k%d", i): i}})
			assert.Equal(t, http.StatusOK, res.status, string(res.raw))
		}()
	}
	wg.Wait()
	res := e.admin(http.MethodGet, "/v1/users/+51987654321", nil)
	assert.Len(t, res.body["attributes"], 16, "no write lost to a concurrent one")
	var n int
	require.NoError(t, e.db.Pool.QueryRow(context.Background(), `SELECT count(*) FROM events WHERE stream_id = 'user-+51987654321'`).Scan(&n))
	assert.Equal(t, 17, n)
}
