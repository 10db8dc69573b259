package sender

import (
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// A minimal fake of Twilio's Messages API for this package's tests (not the simulator): it
// records every request and answers creates with whatever the test's create handler does,
// fetches and lists from an in-memory set of messages.

const (
	testSID   = "ACtest123"
	testToken = "secrettoken9"
	testFrom  = "whatsapp:+15005550006"
)

type recorded struct {
	Method, Path string
	Query        url.Values
	Form         url.Values
	User, Pass   string
	HasAuth      bool
	UserAgent    string
}

type fakeTwilio struct {
	t   *testing.T
	srv *httptest.Server

	// create answers POST …/Messages.json after the form was parsed and recorded. nil: 201.
	create http.HandlerFunc

	// maxPage caps a list page like Twilio's own cap (1000); tests lower it to force paging.
	maxPage int

	// release ends hanging handlers when the test is over.
	release chan struct{}

	mu       sync.Mutex
	reqs     []recorded
	messages []map[string]any // newest first, as Twilio lists them
	nextSID  int
}

func newFake(t *testing.T, create http.HandlerFunc) *fakeTwilio {
	t.Helper()
	return newFakeWrapped(t, create, nil)
}

// newFakeWrapped puts wrap (if not nil) in front of the fake's handler.
func newFakeWrapped(t *testing.T, create http.HandlerFunc, wrap func(http.Handler) http.Handler) *fakeTwilio {
	t.Helper()
	f := &fakeTwilio{t: t, create: create, release: make(chan struct{})}
	var h http.Handler = http.HandlerFunc(f.serve)
	if wrap != nil {
		h = wrap(h)
	}
	f.srv = httptest.NewServer(h)
	t.Cleanup(f.srv.Close)                 // runs second: waits for handlers
	t.Cleanup(func() { close(f.release) }) // runs first: frees hanging handlers
	return f
}

// sender builds a Sender pointed at the fake; mutate adjusts the config first.
func (f *fakeTwilio) sender(t *testing.T, mutate ...func(*Config)) *Sender {
	t.Helper()
	cfg := Config{AccountSID: testSID, AuthToken: testToken, From: testFrom, APIURL: f.srv.URL,
		PublicBaseURL: "https://herald.example.com", Timeout: 5 * time.Second}
	for _, m := range mutate {
		m(&cfg)
	}
	s, err := New(cfg)
	require.NoError(t, err)
	t.Cleanup(s.Close)
	return s
}

func (f *fakeTwilio) requests() []recorded {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]recorded(nil), f.reqs...)
}

func (f *fakeTwilio) add(m map[string]any) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.messages = append([]map[string]any{m}, f.messages...)
}

func (f *fakeTwilio) newSID() string {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.nextSID++
	return fmt.Sprintf("SM%032x", f.nextSID)
}

func (f *fakeTwilio) serve(w http.ResponseWriter, r *http.Request) {
	rec := recorded{Method: r.Method, Path: r.URL.Path, Query: r.URL.Query(), UserAgent: r.UserAgent()}
	rec.User, rec.Pass, rec.HasAuth = r.BasicAuth()
	if r.Method == http.MethodPost {
		if err := r.ParseForm(); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		rec.Form = r.PostForm
	}
	f.mu.Lock()
	f.reqs = append(f.reqs, rec)
	f.mu.Unlock()

	if !rec.HasAuth || rec.User != testSID || rec.Pass != testToken {
		twilioError(w, http.StatusUnauthorized, 20003, "Authenticate")
		return
	}
	prefix := "/2010-04-01/Accounts/" + testSID + "/Messages"
	rest, ok := strings.CutPrefix(r.URL.Path, prefix)
	switch {
	case !ok:
		http.Error(w, "<html>not found</html>", http.StatusNotFound)
	case r.Method == http.MethodPost && rest == ".json":
		if f.create != nil {
			f.create(w, r)
			return
		}
		writeJSON(w, http.StatusCreated, f.created(r.PostForm))
	case r.Method == http.MethodGet && rest == ".json":
		f.list(w, r)
	case r.Method == http.MethodGet && strings.HasPrefix(rest, "/") && strings.HasSuffix(rest, ".json"):
		sid := strings.TrimSuffix(strings.TrimPrefix(rest, "/"), ".json")
		f.mu.Lock()
		defer f.mu.Unlock()
		for _, m := range f.messages {
			if m["sid"] == sid {
				writeJSON(w, http.StatusOK, m)
				return
			}
		}
		twilioError(w, http.StatusNotFound, 20404, "The requested resource "+r.URL.Path+" was not found")
	default:
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
	}
}

// created answers a create the way Twilio does: 201 and a queued Message resource.
func (f *fakeTwilio) created(form url.Values) map[string]any {
	m := message(f.newSID(), form.Get("To"), form.Get("From"), form.Get("Body"), "queued")
	f.add(m)
	return m
}

func message(sid, to, from, body, status string) map[string]any {
	return map[string]any{
		"sid": sid, "account_sid": testSID, "to": to, "from": from, "body": body, "status": status,
		"direction": "outbound-api", "num_segments": "1", "num_media": "0", "price": nil,
		"error_code": nil, "error_message": nil, "api_version": "2010-04-01",
		"date_created": "Fri, 27 Nov 2026 12:59:58 +0000", "date_updated": "Fri, 27 Nov 2026 12:59:58 +0000",
		"date_sent": nil, "uri": "/2010-04-01/Accounts/" + testSID + "/Messages/" + sid + ".json",
	}
}

// list pages by Page/PageSize and filters by To and From like Twilio (DateSent is recorded,
// not applied).
func (f *fakeTwilio) list(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	size, _ := strconv.Atoi(q.Get("PageSize"))
	if size <= 0 {
		size = 50
	}
	if f.maxPage > 0 {
		size = min(size, f.maxPage)
	}
	page, _ := strconv.Atoi(q.Get("Page"))
	f.mu.Lock()
	var match []map[string]any
	for _, m := range f.messages {
		if (q.Get("To") == "" || m["to"] == q.Get("To")) && (q.Get("From") == "" || m["from"] == q.Get("From")) {
			match = append(match, m)
		}
	}
	f.mu.Unlock()
	start := min(page*size, len(match))
	end := min(start+size, len(match))
	resp := map[string]any{"messages": match[start:end], "page": page, "page_size": size, "start": start, "end": end,
		"uri": r.URL.RequestURI(), "next_page_uri": nil}
	if end < len(match) {
		next := url.Values{}
		for k, v := range q {
			next[k] = v
		}
		next.Set("Page", strconv.Itoa(page+1))
		resp["next_page_uri"] = r.URL.Path + "?" + next.Encode()
	}
	writeJSON(w, http.StatusOK, resp)
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

// twilioError writes Twilio's error body shape (reference §4.3).
func twilioError(w http.ResponseWriter, status, code int, msg string) {
	writeJSON(w, status, map[string]any{"code": code, "message": msg,
		"more_info": fmt.Sprintf("https://www.twilio.com/docs/errors/%d", code), "status": status})
}

// Create behaviours.

func answerError(status, code int, msg string, header ...string) http.HandlerFunc {
	return func(w http.ResponseWriter, _ *http.Request) {
		for i := 0; i+1 < len(header); i += 2 {
			w.Header().Set(header[i], header[i+1])
		}
		twilioError(w, status, code, msg)
	}
}

func answerRaw(status int, contentType, body string, header ...string) http.HandlerFunc {
	return func(w http.ResponseWriter, _ *http.Request) {
		for i := 0; i+1 < len(header); i += 2 {
			w.Header().Set(header[i], header[i+1])
		}
		w.Header().Set("Content-Type", contentType)
		w.WriteHeader(status)
		_, _ = w.Write([]byte(body))
	}
}

// hang never answers: it waits until the client goes away (or the test ends). arrived, if
// not nil, is signalled once the request is in.
func (f *fakeTwilio) hang(arrived chan<- struct{}) http.HandlerFunc {
	return func(_ http.ResponseWriter, r *http.Request) {
		if arrived != nil {
			arrived <- struct{}{}
		}
		select {
		case <-r.Context().Done():
		case <-f.release:
		}
	}
}

// reset reads the request, then drops the connection with a TCP RST (linger 0) and no answer.
func reset(t *testing.T, rst bool) http.HandlerFunc {
	return func(w http.ResponseWriter, _ *http.Request) {
		conn, _, err := http.NewResponseController(w).Hijack()
		if err != nil {
			t.Errorf("hijack: %v", err)
			return
		}
		if tc, ok := conn.(*net.TCPConn); ok && rst {
			_ = tc.SetLinger(0)
		}
		_ = conn.Close()
	}
}
