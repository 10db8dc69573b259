package twiliosim

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	twilio "herald/handlers/twilio"
)

const (
	testSID    = "ACtest0123456789abcdef0123456789ab"
	testToken  = "secrettoken9"
	testSender = "whatsapp:+14155238886"
	testTo     = "whatsapp:+51987654321"
	// waitLimit only keeps a broken test from hanging; nothing asserts on time.
	waitLimit = 10 * time.Second
)

// newSim starts a simulator on a free loopback port; mutate adjusts the config first.
func newSim(t *testing.T, mutate ...func(*Config)) (*Server, string) {
	t.Helper()
	cfg := Config{AccountSID: testSID, AuthToken: testToken, Sender: testSender, CallbackLatency: -1, Seed: 42}
	for _, m := range mutate {
		m(&cfg)
	}
	sim, err := New(cfg)
	require.NoError(t, err)
	t.Cleanup(sim.Close)
	base, err := sim.Start(context.Background(), "127.0.0.1:0")
	require.NoError(t, err)
	return sim, base
}

// waitIdle waits until every callback of every message has been delivered.
func waitIdle(t *testing.T, sim *Server) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), waitLimit)
	defer cancel()
	require.NoError(t, sim.WaitIdle(ctx))
}

// received is one webhook as the fake Herald got it.
type received struct {
	Path   string
	Query  url.Values
	Form   url.Values
	Raw    string
	Valid  bool // the signature verified against public + path + query
	Token  string
	Header http.Header
}

// herald is a fake Herald: it verifies every webhook's signature with Herald's own verifier
// against its public base URL (not the Host header) and records it.
type herald struct {
	srv    *httptest.Server
	public string
	ver    *twilio.Verifier

	mu      sync.Mutex
	got     []received
	respond func(n int, r received) (int, string) // n: 1-based count of webhooks so far
}

func newHerald(t *testing.T) *herald {
	t.Helper()
	h := &herald{ver: twilio.NewVerifier(testToken)}
	h.srv = httptest.NewServer(http.HandlerFunc(h.serve))
	h.public = h.srv.URL
	t.Cleanup(h.srv.Close)
	return h
}

func (h *herald) serve(w http.ResponseWriter, r *http.Request) {
	raw, _ := io.ReadAll(r.Body)
	form, _ := url.ParseQuery(string(raw))
	h.mu.Lock()
	rec := received{Path: r.URL.Path, Query: r.URL.Query(), Form: form, Raw: string(raw),
		Valid: h.ver.Verify(h.public+r.URL.RequestURI(), raw, r.Header.Get(twilio.SignatureHeader)),
		Token: r.Header.Get("I-Twilio-Idempotency-Token"), Header: r.Header.Clone()}
	h.got = append(h.got, rec)
	n, respond := len(h.got), h.respond
	h.mu.Unlock()
	status, body := http.StatusOK, ""
	if respond != nil {
		status, body = respond(n, rec)
	}
	if strings.HasPrefix(body, "<") {
		w.Header().Set("Content-Type", "application/xml; charset=utf-8")
	}
	w.WriteHeader(status)
	_, _ = io.WriteString(w, body)
}

func (h *herald) received() []received {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]received(nil), h.got...)
}

// statuses lists the MessageStatus of every status callback received for sid, in order.
func (h *herald) statuses(sid string) []string {
	var out []string
	for _, r := range h.received() {
		if r.Path == "/webhooks/twilio/status" && r.Form.Get("MessageSid") == sid {
			out = append(out, r.Form.Get("MessageStatus"))
		}
	}
	return out
}

func (h *herald) callbackURL(messageID string, attempt int) string {
	return h.public + "/webhooks/twilio/status?message_id=" + messageID + "&attempt=" + strconv.Itoa(attempt)
}

// apiResult is one answer of the Messages API.
type apiResult struct {
	Status int
	Header http.Header
	JSON   map[string]any
}

func (r apiResult) code() int {
	c, _ := r.JSON["code"].(float64)
	return int(c)
}

// call makes one API request with the test credentials (or those given).
func call(t *testing.T, method, rawURL string, form url.Values, creds ...string) apiResult {
	t.Helper()
	var body io.Reader
	if form != nil {
		body = strings.NewReader(form.Encode())
	}
	req, err := http.NewRequest(method, rawURL, body)
	require.NoError(t, err)
	if form != nil {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	user, pass := testSID, testToken
	if len(creds) == 2 {
		user, pass = creds[0], creds[1]
	}
	if len(creds) != 1 { // one empty argument: no auth at all
		req.SetBasicAuth(user, pass)
	}
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	res := apiResult{Status: resp.StatusCode, Header: resp.Header}
	raw, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	if len(raw) > 0 {
		require.NoError(t, json.Unmarshal(raw, &res.JSON), "body: %s", raw)
	}
	return res
}

func messagesURL(base string) string {
	return base + "/2010-04-01/Accounts/" + testSID + "/Messages.json"
}

func messageURL(base, sid string) string {
	return base + "/2010-04-01/Accounts/" + testSID + "/Messages/" + sid + ".json"
}

// textForm is a valid create form for a free-form message.
func textForm(to, callback string) url.Values {
	f := url.Values{"To": {to}, "From": {testSender}, "Body": {"Hola"}}
	if callback != "" {
		f.Set("StatusCallback", callback)
	}
	return f
}

// create makes a create that must succeed and returns the SID.
func create(t *testing.T, base string, form url.Values) string {
	t.Helper()
	res := call(t, http.MethodPost, messagesURL(base), form)
	require.Equal(t, http.StatusCreated, res.Status, "%v", res.JSON)
	sid, _ := res.JSON["sid"].(string)
	require.NotEmpty(t, sid)
	return sid
}
