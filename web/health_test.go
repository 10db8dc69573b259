package web

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"herald/events/relay"
	"herald/projections"
)

func TestReadyz(t *testing.T) {
	t.Parallel()
	ok := func(context.Context) error { return nil }
	down := func(context.Context) error { return errors.New("connection refused") }
	statuses := func(s ...projections.Status) func(context.Context) ([]projections.Status, error) {
		return func(context.Context) ([]projections.Status, error) { return s, nil }
	}
	cases := []struct {
		name       string
		health     Health
		wantStatus int
		wantIn     string
	}{
		{"all well", Health{Postgres: ok, Redis: ok, Relay: func() relay.Status { return relay.Status{Leader: true} },
			Projections: statuses(projections.Status{Name: "users"})}, http.StatusOK, `"ready": true`},
		{"redis down", Health{Postgres: ok, Redis: down}, http.StatusServiceUnavailable, "redis: connection refused"},
		{"stuck projection", Health{Postgres: ok, Redis: ok, Projections: statuses(
			projections.Status{Name: "users", Stuck: true, LastError: "boom", StuckSince: time.Now()})},
			http.StatusServiceUnavailable, "projection users is stuck"},
		{"lagging projection", Health{Postgres: ok, Redis: ok, MaxLag: time.Second, Projections: statuses(
			projections.Status{Name: "subscriptions", LagSeconds: 5})}, http.StatusServiceUnavailable, "subscriptions is 5.0s behind"},
		{"parked events are reported but do not make it unready", Health{Postgres: ok, Redis: ok, Projections: statuses(
			projections.Status{Name: "users", Parked: 2})}, http.StatusOK, "2 parked event"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			reg := prometheus.NewRegistry()
			srv, err := NewServer(Config{Addr: "127.0.0.1:0"}, tc.health, reg, reg, zerolog.Nop())
			require.NoError(t, err)
			rec := httptest.NewRecorder()
			srv.Router().ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/readyz", nil))
			assert.Equal(t, tc.wantStatus, rec.Code)
			assert.Contains(t, rec.Body.String(), tc.wantIn)
			assert.NotEmpty(t, rec.Header().Get(CorrelationHeader))
			var body map[string]any
			require.NoError(t, json.Unmarshal(rec.Body.Bytes(), &body))
		})
	}
}

func TestMetricsAndHealthz(t *testing.T) {
	t.Parallel()
	reg := prometheus.NewRegistry()
	srv, err := NewServer(Config{Addr: "127.0.0.1:0"}, Health{}, reg, reg, zerolog.Nop())
	require.NoError(t, err)
	rec := httptest.NewRecorder()
	srv.Router().ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/healthz", nil))
	assert.Equal(t, http.StatusOK, rec.Code)
	rec = httptest.NewRecorder()
	srv.Router().ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/metrics", nil))
	assert.Equal(t, http.StatusOK, rec.Code)
	assert.Contains(t, rec.Body.String(), `herald_http_request_duration_seconds_count{method="GET",route="/healthz",status="200"} 1`)
}
