package twiliosim

import (
	"encoding/json"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// testClock is a settable clock.
type testClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *testClock) now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *testClock) set(t time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = t
}

func listSIDs(t *testing.T, base string, q url.Values) []string {
	t.Helper()
	res := call(t, http.MethodGet, messagesURL(base)+"?"+q.Encode(), nil)
	require.Equal(t, http.StatusOK, res.Status, "%v", res.JSON)
	var sids []string
	for _, m := range res.JSON["messages"].([]any) {
		sids = append(sids, m.(map[string]any)["sid"].(string))
	}
	return sids
}

func TestListFilters(t *testing.T) {
	t.Parallel()
	clock := &testClock{t: time.Date(2026, 5, 1, 23, 59, 0, 0, time.UTC)}
	sim, base := newSim(t, func(c *Config) { c.Now = clock.now })
	const ana, luis = "whatsapp:+51987654321", "whatsapp:+51912345678"

	may1Ana := create(t, base, textForm(ana, ""))
	may1Luis := create(t, base, textForm(luis, ""))
	waitIdle(t, sim) // sent (date_sent) on May 1st
	clock.set(time.Date(2026, 5, 2, 8, 0, 0, 0, time.UTC))
	may2Ana := create(t, base, textForm(ana, ""))
	waitIdle(t, sim)
	// A message that is never sent: it must match no DateSent filter.
	_, err := sim.Update(SettingsPatch{CallbackLatency: ptr(Duration(time.Hour))})
	require.NoError(t, err)
	queuedAna := create(t, base, textForm(ana, ""))

	tests := []struct {
		name  string
		query url.Values
		want  []string // newest first
	}{
		{"all", url.Values{}, []string{queuedAna, may2Ana, may1Luis, may1Ana}},
		{"To", url.Values{"To": {ana}}, []string{queuedAna, may2Ana, may1Ana}},
		{"To without the whatsapp: prefix matches nothing (Twilio matches the address)", url.Values{"To": {"+51987654321"}}, nil},
		{"To and From", url.Values{"To": {luis}, "From": {testSender}}, []string{may1Luis}},
		{"From of another sender", url.Values{"From": {"whatsapp:+15005550006"}}, nil},
		{"DateSent as a date", url.Values{"To": {ana}, "DateSent": {"2026-05-01"}}, []string{may1Ana}},
		{"DateSent as twilio-go sends it (RFC 3339 midnight)", url.Values{"To": {ana}, "DateSent": {"2026-05-02T00:00:00Z"}}, []string{may2Ana}},
		{"DateSent< (on or before) a date", url.Values{"DateSent<": {"2026-05-01"}}, []string{may1Luis, may1Ana}},
		{"DateSent<= key", url.Values{"DateSent<=": {"2026-05-01"}}, []string{may1Luis, may1Ana}},
		{"DateSent> (on or after) a date", url.Values{"To": {ana}, "DateSent>": {"2026-05-02"}}, []string{may2Ana}},
		{"DateSent>= key", url.Values{"To": {ana}, "DateSent>=": {"2026-05-02"}}, []string{may2Ana}},
		{"DateSent> a time", url.Values{"DateSent>": {"2026-05-01T23:59:00Z"}}, []string{may2Ana, may1Luis, may1Ana}},
		{"DateSent< a time", url.Values{"DateSent<": {"2026-05-01T23:58:59Z"}}, nil},
		{"a DateSent range", url.Values{"DateSent>": {"2026-04-30"}, "DateSent<": {"2026-05-03"}, "To": {ana}}, []string{may2Ana, may1Ana}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			assert.Equal(t, tc.want, listSIDs(t, base, tc.query))
		})
	}
	t.Run("a malformed DateSent is refused", func(t *testing.T) {
		t.Parallel()
		res := call(t, http.MethodGet, messagesURL(base)+"?DateSent=yesterday", nil)
		assert.Equal(t, http.StatusBadRequest, res.Status)
	})
	t.Run("list reflects the current status", func(t *testing.T) {
		t.Parallel()
		res := call(t, http.MethodGet, messagesURL(base)+"?"+url.Values{"To": {luis}}.Encode(), nil)
		m := res.JSON["messages"].([]any)[0].(map[string]any)
		assert.Equal(t, "read", m["status"])
	})
}

func ptr[T any](v T) *T { return &v }

func TestListPaging(t *testing.T) {
	t.Parallel()
	sim, base := newSim(t)
	var created []string
	for range 5 {
		created = append(created, create(t, base, textForm(testTo, "")))
	}
	waitIdle(t, sim)

	var seen []string
	next := messagesURL(base) + "?" + url.Values{"To": {testTo}, "PageSize": {"2"}}.Encode()
	for page := 0; next != ""; page++ {
		res := call(t, http.MethodGet, next, nil)
		require.Equal(t, http.StatusOK, res.Status)
		assert.Equal(t, float64(page), res.JSON["page"])
		assert.Equal(t, float64(2), res.JSON["page_size"])
		assert.Contains(t, res.JSON["first_page_uri"], "PageSize=2")
		for _, m := range res.JSON["messages"].([]any) {
			seen = append(seen, m.(map[string]any)["sid"].(string))
		}
		next = ""
		if uri, ok := res.JSON["next_page_uri"].(string); ok {
			assert.True(t, strings.HasPrefix(uri, "/2010-04-01/Accounts/"+testSID+"/Messages.json?"), uri)
			assert.Contains(t, uri, "To=whatsapp%3A%2B51987654321", "filters are kept")
			next = base + uri
		}
		require.Less(t, page, 5)
	}
	want := make([]string, 0, len(created))
	for i := len(created) - 1; i >= 0; i-- {
		want = append(want, created[i])
	}
	assert.Equal(t, want, seen, "every message once, newest first")

	empty := call(t, http.MethodGet, messagesURL(base)+"?To=whatsapp%3A%2B10000000000", nil)
	assert.Equal(t, []any{}, empty.JSON["messages"], "an empty page has an empty list, not null")
	assert.Nil(t, empty.JSON["next_page_uri"])
}

func TestRecordedRequests(t *testing.T) {
	t.Parallel()
	sim, base := newSim(t)
	h := newHerald(t)
	sid := create(t, base, textForm(testTo, h.callbackURL("msg-1", 1)))
	require.NoError(t, sim.QueueFaults(FaultRateLimit))
	call(t, http.MethodPost, messagesURL(base), textForm(testTo, h.callbackURL("msg-1", 2)))
	create(t, base, textForm(testTo, h.callbackURL("msg-1", 3)))
	call(t, http.MethodPost, messagesURL(base), textForm("+51912345678", "")) // 21910: channels differ
	call(t, http.MethodPost, messagesURL(base), textForm("whatsapp:+51912345678", ""), testSID, "wrong")
	call(t, http.MethodGet, messageURL(base, sid), nil)
	call(t, http.MethodGet, messagesURL(base)+"?To=x", nil)

	assert.Equal(t, 3, sim.CreatesFor(testTo), "every create attempt, whatever its outcome")
	assert.Equal(t, 3, sim.CreatesFor("+51987654321"), "with or without the whatsapp: prefix")
	assert.Equal(t, 2, sim.CreatesFor("+51912345678"), "including the refused and the unauthenticated one")
	assert.Equal(t, 3, sim.CreatesForMessage("msg-1"))
	assert.Equal(t, 0, sim.CreatesForMessage("msg-2"))

	reqs := sim.Requests()
	require.Len(t, reqs, 7)
	for i, r := range reqs {
		if i > 0 {
			assert.Greater(t, r.Seq, reqs[i-1].Seq, "sequence numbers in arrival order")
		}
		assert.False(t, r.Time.IsZero())
	}
	assert.Equal(t, sid, reqs[0].MessageSID)
	assert.Equal(t, http.StatusCreated, reqs[0].Status)
	assert.Equal(t, testSID, reqs[0].Username)
	assert.Equal(t, "Hola", reqs[0].Form.Get("Body"))
	assert.Equal(t, FaultRateLimit, reqs[1].Fault)
	assert.Equal(t, 20429, reqs[1].ErrorCode)
	assert.Equal(t, http.StatusUnauthorized, reqs[4].Status)
	assert.Equal(t, http.MethodGet, reqs[5].Method)
	assert.Equal(t, sid, reqs[5].MessageSID)
	assert.Equal(t, "x", reqs[6].Query.Get("To"))

	// The same over HTTP.
	resp, err := http.Get(base + "/sim/requests")
	require.NoError(t, err)
	defer resp.Body.Close()
	var overHTTP []RecordedRequest
	require.NoError(t, json.NewDecoder(resp.Body).Decode(&overHTTP))
	require.Len(t, overHTTP, 7)
	assert.Equal(t, reqs[1].Form, overHTTP[1].Form)
	assert.Equal(t, FaultRateLimit, overHTTP[1].Fault)

	// Returned records are copies.
	reqs[0].Form.Set("Body", "changed")
	assert.Equal(t, "Hola", sim.Requests()[0].Form.Get("Body"))
}
