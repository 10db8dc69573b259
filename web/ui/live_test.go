package ui_test

import (
	"bufio"
	"context"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"herald/handlers/twilio/twiliosim"
)

// stream opens a live page's Server-Sent Events stream and returns its data lines (and the
// "end" event as "event: end") as they arrive.
func (b *browser) stream(ctx context.Context, path string) (<-chan string, *http.Response) {
	b.t.Helper()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, b.w.srv.URL+path, nil)
	require.NoError(b.t, err)
	req.Header.Set("Accept", "text/event-stream")
	res, err := b.c.Do(req)
	require.NoError(b.t, err)
	b.t.Cleanup(func() { _ = res.Body.Close() })
	lines := make(chan string, 64)
	go func() {
		defer close(lines)
		sc := bufio.NewScanner(res.Body)
		sc.Buffer(make([]byte, 1<<20), 1<<20)
		for sc.Scan() {
			if l := sc.Text(); strings.HasPrefix(l, "data: ") || strings.HasPrefix(l, "event: ") {
				lines <- l
			}
		}
	}()
	return lines, res
}

// until reads lines until one contains want; it fails when the stream ends first.
func until(t *testing.T, lines <-chan string, want string) string {
	t.Helper()
	for l := range lines {
		if strings.Contains(l, want) {
			return l
		}
	}
	t.Fatalf("the stream ended without %q", want)
	return ""
}

// TestLiveStreams: the live pages name their Server-Sent Events stream, and the streams send a
// snapshot at once and another when the data changes (a new inbound message, a finished
// import, a campaign's status).
func TestLiveStreams(t *testing.T) {
	t.Parallel()
	w := newWorld(t, false)
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()

	anon := w.browser(t)
	_, res := anon.stream(ctx, "/live/inbox")
	assert.Equal(t, http.StatusUnauthorized, res.StatusCode, "a stream without a session is refused, not redirected to the login page")

	b := w.browser(t)
	b.login(adminKey)
	phone := "+51987650001"
	w.api(http.MethodPost, "/v1/users", map[string]any{"phone": phone, "consent": "OPT_IN"})

	for path, live := range map[string]string{
		"/":                               "/live/dashboard",
		"/inbox":                          "/live/inbox",
		"/inbox?command=stop":             "/live/inbox?command=stop",
		"/inbox/" + url.PathEscape(phone): "/live/inbox/&#43;51987650001",
	} {
		p := b.get(path)
		require.Equal(t, http.StatusOK, p.status, path)
		assert.Contains(t, p.body, `data-live="`+live+`"`, path)
	}

	inbox, res := b.stream(ctx, "/live/inbox")
	require.Equal(t, http.StatusOK, res.StatusCode)
	assert.Equal(t, "text/event-stream", res.Header.Get("Content-Type"))
	conv, _ := b.stream(ctx, "/live/inbox/"+url.PathEscape(phone))
	dash, _ := b.stream(ctx, "/live/dashboard")
	until(t, inbox, "data: ")
	until(t, conv, "data: ")
	until(t, dash, "data: ")
	_, err := w.sim.Inject(ctx, twiliosim.Inbound{From: phone, Body: "hello, live inbox"})
	require.NoError(t, err)
	until(t, inbox, "hello, live inbox")
	until(t, conv, "hello, live inbox")
	until(t, dash, "hello, live inbox")

	// A campaign's stream: counters at once, a new status when it changes.
	tpl := w.api(http.MethodPost, "/v1/templates", map[string]any{"name": "t", "default_locale": "es",
		"variants": map[string]any{"es": map[string]any{"body": "Hola"}}})
	cmp := w.api(http.MethodPost, "/v1/campaigns", map[string]any{"name": "c", "topic": "deals", "template_id": tpl["id"],
		"schedule": map[string]any{"kind": "at", "at": time.Now().Add(time.Hour).UTC().Format(time.RFC3339)}})
	cid := cmp["id"].(string)
	assert.Contains(t, b.get("/campaigns/"+cid).body, `data-live="/live/campaigns/`+cid+`"`)
	cs, _ := b.stream(ctx, "/live/campaigns/"+cid)
	first := until(t, cs, "data: ")
	assert.Contains(t, first, `"status":"draft"`)
	assert.Contains(t, first, `"queued":0`)
	w.api(http.MethodPost, "/v1/campaigns/"+cid+"/cancel", map[string]any{"reason": "test"})
	until(t, cs, `"status":"cancelled"`)

	// An import's stream ends once the import has.
	imp := b.upload("/imports", "users.csv", "phone,first_name\n+51987650002,Ana\n")
	require.Equal(t, 303, imp.status, imp.body)
	id := strings.TrimPrefix(imp.header.Get("Location"), "/imports/")
	is, _ := b.stream(ctx, "/live/imports/"+id)
	until(t, is, "event: end")
	for range is {
	}
	assert.NotContains(t, b.get("/imports/"+id).body, "data-live", "a finished import is not live")
}
