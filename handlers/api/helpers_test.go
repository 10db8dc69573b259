package api_test

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/mux"
	"github.com/rs/zerolog"
	"github.com/stretchr/testify/require"

	"herald/events"
	"herald/events/store"
	"herald/events/transport/transporttest"
	"herald/handlers/api"
	"herald/projections/projectionstest"
	"herald/schema/schematest"
)

const (
	adminKey = "admin-key-0123456789abcdef"
	readKey  = "read-key-0123456789abcdef"
)

// env is Herald's API as a process runs it: a real HTTP server, the event store on a test
// schema, the relay to the test's Redis prefix and the projection runner.
type env struct {
	t     *testing.T
	db    *schematest.Schema
	store *store.Store
	srv   *httptest.Server
}

func newEnv(t *testing.T) *env { return newEnvWith(t, envOptions{}) }

// envOptions change an env: stalled runs no projections, so every write waits out a short
// WaitTimeout and answers 202.
type envOptions struct{ stalled bool }

func newEnvWith(t *testing.T, o envOptions) *env {
	t.Helper()
	db := schematest.New(t)
	rds := transporttest.New(t)
	log := zerolog.Nop()
	s, err := store.New(db.Pool, store.Config{})
	require.NoError(t, err)
	t.Cleanup(s.Close)
	reg := events.DefaultRegistry()

	wait := 10 * time.Second
	if o.stalled {
		wait = 100 * time.Millisecond
	} else {
		projectionstest.Start(t, db, rds)
	}

	keys, err := api.ParseKeys(adminKey + "," + readKey + ":read")
	require.NoError(t, err)
	a, err := api.New(api.Config{Keys: keys, DefaultRegion: "PE", MaxBody: 64 << 10, WaitTimeout: wait}, s, reg, log)
	require.NoError(t, err)
	r := mux.NewRouter()
	a.Register(r)
	srv := httptest.NewServer(r)
	t.Cleanup(srv.Close)
	return &env{t: t, db: db, store: s, srv: srv}
}

// response is an answer with its body decoded as JSON (when it is JSON).
type response struct {
	status int
	header http.Header
	raw    []byte
	body   map[string]any
}

func (r response) problemFields() []string {
	var out []string
	errs, _ := r.body["errors"].([]any)
	for _, e := range errs {
		out = append(out, e.(map[string]any)["field"].(string))
	}
	return out
}

// call sends a request with key (none when "") and body (JSON-encoded unless a string).
func (e *env) call(method, path, key string, body any, headers ...string) response {
	e.t.Helper()
	var rd io.Reader
	switch b := body.(type) {
	case nil:
	case string:
		rd = strings.NewReader(b)
	default:
		buf, err := json.Marshal(b)
		require.NoError(e.t, err)
		rd = bytes.NewReader(buf)
	}
	req, err := http.NewRequest(method, e.srv.URL+path, rd)
	require.NoError(e.t, err)
	if rd != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if key != "" {
		req.Header.Set("Authorization", "Bearer "+key)
	}
	for i := 0; i+1 < len(headers); i += 2 {
		req.Header.Set(headers[i], headers[i+1])
	}
	res, err := e.srv.Client().Do(req)
	require.NoError(e.t, err)
	defer res.Body.Close()
	raw, err := io.ReadAll(res.Body)
	require.NoError(e.t, err)
	out := response{status: res.StatusCode, header: res.Header, raw: raw}
	if len(raw) > 0 && raw[0] == '{' {
		require.NoError(e.t, json.Unmarshal(raw, &out.body), string(raw))
	}
	return out
}

func (e *env) admin(method, path string, body any, headers ...string) response {
	e.t.Helper()
	return e.call(method, path, adminKey, body, headers...)
}
