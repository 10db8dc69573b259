package ui_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"mime/multipart"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/textproto"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/mux"
	"github.com/rs/zerolog"
	"github.com/stretchr/testify/require"

	"herald/commands"
	"herald/commands/saga"
	"herald/events"
	"herald/events/store"
	"herald/events/transport/transporttest"
	"herald/handlers/api"
	"herald/handlers/twilio"
	"herald/handlers/twilio/sender"
	"herald/handlers/twilio/twiliosim"
	"herald/projections"
	"herald/projections/projectionstest"
	"herald/schema/schematest"
	"herald/web/ui"
)

const (
	adminKey = "admin-key-0123456789abcdef"
	readKey  = "read-key-0123456789abcdef"
)

// world is Herald as one process runs it — store, relay, projections, the /v1 API, the UI
// and the Twilio webhooks on one router behind a real HTTP server, and (with the saga) the
// send saga talking to the Twilio simulator over HTTP.
type world struct {
	t   testing.TB
	db  *schematest.Schema
	srv *httptest.Server
	sim *twiliosim.Server
}

func newWorld(t testing.TB, withSaga bool) *world {
	t.Helper()
	db := schematest.New(t)
	rds := transporttest.New(t)
	log := zerolog.Nop()
	ctx, cancel := context.WithCancel(context.Background())
	s, err := store.New(db.Pool, store.Config{})
	require.NoError(t, err)
	t.Cleanup(s.Close)
	reg := events.DefaultRegistry()

	projectionstest.Start(t, db, rds)

	r := mux.NewRouter()
	srv := httptest.NewServer(r)
	simCfg := twiliosim.Config{AccountSID: twiliosim.DefaultAccountSID, AuthToken: twiliosim.DefaultAuthToken,
		WebhookBaseURL: srv.URL, CallbackLatency: 300 * time.Millisecond, ReadRate: twiliosim.Rate(1)}
	sim, err := twiliosim.New(simCfg)
	require.NoError(t, err)
	simURL, err := sim.Start(ctx, "127.0.0.1:0")
	require.NoError(t, err)
	wh, err := twilio.New(twilio.Config{PublicBaseURL: srv.URL, AuthToken: simCfg.AuthToken},
		commands.NewReceiveInboundHandler(s, reg, commands.Replies{}), commands.NewRecordStatusHandler(s, reg), nil)
	require.NoError(t, err)
	wh.Register(r)

	keys, err := api.ParseKeys(adminKey + "," + readKey + ":read")
	require.NoError(t, err)
	a, err := api.New(api.Config{Keys: keys, DefaultRegion: "PE", WaitTimeout: 10 * time.Second}, s, reg, log)
	require.NoError(t, err)
	a.Register(r)
	pages, err := ui.New(ui.Config{API: r, SessionSecret: []byte(adminKey)}, log)
	require.NoError(t, err)
	pages.Register(r)

	n := 1
	done := make(chan struct{}, 2)
	go func() { _ = a.Run(ctx); done <- struct{}{} }()
	var tw *sender.Sender
	if withSaga {
		tw, err = sender.New(sender.Config{AccountSID: simCfg.AccountSID, AuthToken: simCfg.AuthToken, From: twiliosim.DefaultSender,
			APIURL: simURL, PublicBaseURL: srv.URL, Timeout: 2 * time.Second})
		require.NoError(t, err)
		sg, err := saga.New(saga.Config{Poll: 50 * time.Millisecond, ReconcileAfter: time.Second, RedisPrefix: rds.Transport.Prefix},
			s, reg, rds.Client, tw, log)
		require.NoError(t, err)
		n++
		go func() { _ = sg.Run(ctx); done <- struct{}{} }()
	}
	t.Cleanup(func() {
		cancel()
		for range n {
			<-done
		}
		sim.Close()
		srv.Close()
		if tw != nil {
			tw.Close()
		}
	})
	w := &world{t: t, db: db, srv: srv, sim: sim}
	w.ready()
	return w
}

// ready waits until every projection has a checkpoint (so reads answer).
func (w *world) ready() {
	w.t.Helper()
	require.Eventually(w.t, func() bool {
		for _, p := range projections.All() {
			if _, err := projections.Checkpoint(context.Background(), w.db.Pool, p.Name()); err != nil {
				return false
			}
		}
		return true
	}, 15*time.Second, 20*time.Millisecond)
}

// api calls /v1 with the admin key and decodes the JSON answer.
func (w *world) api(method, path string, body any) map[string]any {
	w.t.Helper()
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		require.NoError(w.t, err)
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequest(method, w.srv.URL+path, rd)
	require.NoError(w.t, err)
	req.Header.Set("Authorization", "Bearer "+adminKey)
	if rd != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	res, err := http.DefaultClient.Do(req)
	require.NoError(w.t, err)
	defer res.Body.Close()
	raw, _ := io.ReadAll(res.Body)
	require.Less(w.t, res.StatusCode, 300, "%s %s: %s", method, path, raw)
	out := map[string]any{}
	if len(raw) > 0 && raw[0] == '{' {
		require.NoError(w.t, json.Unmarshal(raw, &out))
	}
	return out
}

// browser is an HTTP client with a cookie jar that does not follow redirects.
type browser struct {
	t *testing.T
	w *world
	c *http.Client
}

func (w *world) browser(t *testing.T) *browser {
	jar, _ := cookiejar.New(nil)
	return &browser{t: t, w: w, c: &http.Client{Jar: jar, CheckRedirect: func(*http.Request, []*http.Request) error {
		return http.ErrUseLastResponse
	}}}
}

type page struct {
	status int
	header http.Header
	body   string
}

func (b *browser) do(method, path string, form url.Values, headers ...string) page {
	b.t.Helper()
	var rd io.Reader
	if form != nil {
		rd = strings.NewReader(form.Encode())
	}
	req, err := http.NewRequest(method, b.w.srv.URL+path, rd)
	require.NoError(b.t, err)
	if form != nil {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	for i := 0; i+1 < len(headers); i += 2 {
		req.Header.Set(headers[i], headers[i+1])
	}
	res, err := b.c.Do(req)
	require.NoError(b.t, err)
	defer res.Body.Close()
	raw, _ := io.ReadAll(res.Body)
	return page{status: res.StatusCode, header: res.Header, body: string(raw)}
}

func (b *browser) get(path string) page { b.t.Helper(); return b.do(http.MethodGet, path, nil) }

// post sends a form as the browser does from Herald's own page (same-origin fetch metadata).
func (b *browser) post(path string, form url.Values) page {
	b.t.Helper()
	return b.do(http.MethodPost, path, form, "Sec-Fetch-Site", "same-origin", "Origin", b.w.srv.URL)
}

func (b *browser) login(key string) {
	b.t.Helper()
	p := b.post("/login", url.Values{"key": {key}, "zone": {"America/Lima"}})
	require.Equal(b.t, http.StatusSeeOther, p.status, p.body)
}

// upload posts a multipart form with one file, as the import page does.
func (b *browser) upload(path, name, content string) page {
	b.t.Helper()
	var buf bytes.Buffer
	mw := multipart.NewWriter(&buf)
	require.NoError(b.t, mw.WriteField("mode", "merge"))
	h := textproto.MIMEHeader{}
	h.Set("Content-Disposition", `form-data; name="file"; filename="`+strings.ReplaceAll(name, `"`, "%22")+`"`)
	h.Set("Content-Type", "text/csv")
	fw, err := mw.CreatePart(h)
	require.NoError(b.t, err)
	_, _ = fw.Write([]byte(content))
	require.NoError(b.t, mw.Close())
	req, err := http.NewRequest(http.MethodPost, b.w.srv.URL+path, &buf)
	require.NoError(b.t, err)
	req.Header.Set("Content-Type", mw.FormDataContentType())
	req.Header.Set("Sec-Fetch-Site", "same-origin")
	res, err := b.c.Do(req)
	require.NoError(b.t, err)
	defer res.Body.Close()
	raw, _ := io.ReadAll(res.Body)
	return page{status: res.StatusCode, header: res.Header, body: string(raw)}
}
