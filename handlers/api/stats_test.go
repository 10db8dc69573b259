package api_test

import (
	"net/http"
	"net/url"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"herald/events"
)

// consent creates the user (opted in) if needed, then sets their consent through the API.
func (e *env) consent(phone, consent string) {
	e.t.Helper()
	res := e.admin(http.MethodPost, "/v1/users", map[string]any{"phone": phone, "consent": "OPT_IN"})
	require.Contains(e.t, []int{http.StatusOK, http.StatusCreated}, res.status, string(res.raw))
	res = e.admin(http.MethodPut, "/v1/users/"+phone+"/consent", map[string]any{"consent": consent})
	require.Equal(e.t, http.StatusOK, res.status, string(res.raw))
}

func TestCampaignStats(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	f := seedCampaign(t, e)

	// Opt-outs after the first send: a recipient (twice: counted once), and someone the
	// campaign never wrote to (not counted).
	e.consent("+51987650002", events.ConsentOptOut)
	e.consent("+51987650002", events.ConsentOptIn)
	e.consent("+51987650002", events.ConsentOptOut)
	e.consent("+51911111111", events.ConsentOptOut)

	res := e.call(http.MethodGet, "/v1/campaigns/"+f.campaign+"/stats", readKey, nil)
	require.Equal(t, http.StatusOK, res.status, string(res.raw))
	s := res.body
	assert.Equal(t, float64(8), s["total"])
	assert.Equal(t, map[string]any{"accepted": 4.0, "failed": 1.0, "skipped": 1.0, "deferred": 1.0, "queued": 1.0}, s["by_state"])
	assert.Equal(t, map[string]any{"read": 1.0, "delivered": 1.0, "undelivered": 1.0, "none": 1.0}, s["by_status"])
	assert.Equal(t, float64(3), s["sent"], "sent or beyond: read, delivered, undelivered")
	assert.Equal(t, float64(2), s["delivered"])
	assert.Equal(t, float64(1), s["read"])
	assert.Equal(t, 0.6667, s["delivery_rate"])
	assert.Equal(t, 0.3333, s["read_rate"])
	assert.Equal(t, map[string]any{events.ReasonConsent: 1.0}, s["skipped"])
	assert.Equal(t, map[string]any{events.ReasonQuietHours: 1.0}, s["deferred"])

	failures := s["failures"].([]any)
	require.Len(t, failures, 2)
	codes := map[float64]map[string]any{}
	for _, f := range failures {
		codes[f.(map[string]any)["code"].(float64)] = f.(map[string]any)
	}
	require.Contains(t, codes, 63016.0)
	require.Contains(t, codes, 30003.0)
	assert.Equal(t, float64(1), codes[63016]["count"])
	assert.NotEmpty(t, codes[63016]["meaning"])
	assert.NotEmpty(t, codes[30003]["remedy"])

	first, err := time.Parse(time.RFC3339Nano, s["first_send_at"].(string))
	require.NoError(t, err)
	assert.True(t, first.Equal(f.sent))
	assert.Equal(t, map[string]any{"during": 1.0, "after": 0.0}, s["opt_outs"], "messages remain: every opt-out is during")

	p := s["progress"].(map[string]any)
	assert.Equal(t, float64(2), p["remaining"], "queued and deferred")
	assert.Equal(t, float64(1), p["due_now"])
	assert.Equal(t, float64(4), p["accepted_last_minute"])
	assert.Equal(t, "measured", p["rate_source"])
	assert.InDelta(t, 4.0/60, p["per_second"], 1e-9)
	lastDue, err := time.Parse(time.RFC3339Nano, p["last_due_at"].(string))
	require.NoError(t, err)
	assert.True(t, lastDue.Equal(f.sent.Add(10*time.Hour)))
	assert.Equal(t, p["last_due_at"], p["finishes_at"], "nothing finishes before the last deferral")

	assert.Equal(t, http.StatusNotFound, e.call(http.MethodGet, "/v1/campaigns/nope/stats", readKey, nil).status)
	assert.Equal(t, http.StatusUnprocessableEntity, e.call(http.MethodGet, "/v1/campaigns/"+f.campaign+"/stats?x=1", readKey, nil).status)
}

func TestCampaignStatsWhenDone(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.ready()
	tpl := createTemplate(t, e, map[string]any{"name": "t", "default_locale": "en", "variants": map[string]any{"en": map[string]any{"body": "Hi"}}})
	res := e.admin(http.MethodPost, "/v1/campaigns", map[string]any{"name": "done", "topic": "deals", "template_id": tpl})
	require.Equal(t, http.StatusCreated, res.status, string(res.raw))
	campaign := res.body["id"].(string)
	sent := time.Now().UTC().Add(-time.Hour)
	id := uuid.NewString()
	e.seed(events.MessageStream(id),
		&events.MessageQueued{MessageID: id, Kind: events.MessageKindCampaign, CampaignID: campaign, Phone: "+51987650002", DueAt: sent},
		&events.MessageSendAttempted{Attempt: 1, To: "whatsapp:+51987650002", At: sent},
		&events.MessageAccepted{Attempt: 1, SID: "SMdone", Via: events.AcceptedByResponse})
	gaveUp := uuid.NewString()
	e.seed(events.MessageStream(gaveUp),
		&events.MessageQueued{MessageID: gaveUp, Kind: events.MessageKindCampaign, CampaignID: campaign, Phone: "+51987650003", DueAt: sent},
		&events.MessageSendAttempted{Attempt: 3, To: "whatsapp:+51987650003", At: sent.Add(-time.Minute)},
		&events.MessageFailed{Attempt: 3, Reason: events.ReasonAttemptsExhausted + " after 3 attempts"})
	// The message was recorded accepted just now; the send itself was an hour ago.
	e.consent("+51987650002", events.ConsentOptOut)

	res = e.call(http.MethodGet, "/v1/campaigns/"+campaign+"/stats", readKey, nil)
	require.Equal(t, http.StatusOK, res.status, string(res.raw))
	assert.Equal(t, map[string]any{"during": 0.0, "after": 1.0}, res.body["opt_outs"], "the opt-out came after the last send")
	assert.Nil(t, res.body["progress"], "nothing remains and the campaign is a draft")
	assert.Nil(t, res.body["delivery_rate"], "no callback: nothing is known to be sent")
	assert.Equal(t, map[string]any{"none": 1.0}, res.body["by_status"])
	failures := res.body["failures"].([]any)
	require.Len(t, failures, 1)
	assert.Equal(t, events.ReasonAttemptsExhausted, failures[0].(map[string]any)["reason"], "a failure without a code says why")
	assert.Equal(t, float64(1), failures[0].(map[string]any)["count"])
}

func TestGlobalStats(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	seedCampaign(t, e)
	e.consent("+51911111111", events.ConsentOptOut)
	now := time.Now().UTC()

	q := url.Values{"from": {now.Add(-time.Hour).Format(time.RFC3339)}, "to": {now.Add(time.Minute).Format(time.RFC3339)}}
	res := e.call(http.MethodGet, "/v1/stats?"+q.Encode(), readKey, nil)
	require.Equal(t, http.StatusOK, res.status, string(res.raw))
	assert.Equal(t, float64(8), res.body["total"])
	assert.Equal(t, 0.6667, res.body["delivery_rate"])
	assert.Equal(t, float64(1), res.body["opt_outs"].(map[string]any)["in_range"])
	assert.Equal(t, float64(4), res.body["progress"].(map[string]any)["accepted_last_minute"])
	assert.Empty(t, res.body["campaign_id"])

	// The default range is the last 24 hours.
	res = e.call(http.MethodGet, "/v1/stats", readKey, nil)
	require.Equal(t, http.StatusOK, res.status, string(res.raw))
	assert.Equal(t, float64(8), res.body["total"])

	// A range before the campaign holds nothing.
	q = url.Values{"from": {"2020-01-01"}, "to": {"2020-01-02"}}
	res = e.call(http.MethodGet, "/v1/stats?"+q.Encode(), readKey, nil)
	require.Equal(t, http.StatusOK, res.status, string(res.raw))
	assert.Equal(t, float64(0), res.body["total"])
	assert.Nil(t, res.body["progress"])

	for _, tt := range []struct{ query, field string }{
		{"from=yesterday", "from"},
		{"to=2026-13-01", "to"},
		{"from=2026-11-02&to=2026-11-01", "from"},
		{"from=2020-01-01&to=2026-01-01", "from"},
		{"campaign=x", "campaign"},
	} {
		res := e.call(http.MethodGet, "/v1/stats?"+tt.query, readKey, nil)
		assert.Equal(t, http.StatusUnprocessableEntity, res.status, tt.query)
		assert.Contains(t, res.problemFields(), tt.field, tt.query)
	}
}

// TestCampaignTimeline: the funnel over time ends at the campaign's stats (the same
// definitions), never decreases, and refuses a bad bucket count by name.
func TestCampaignTimeline(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	f := seedCampaign(t, e)

	res := e.call(http.MethodGet, "/v1/campaigns/"+f.campaign+"/timeline?buckets=10", readKey, nil)
	require.Equal(t, http.StatusOK, res.status, string(res.raw))
	points := res.body["points"].([]any)
	require.NotEmpty(t, points)
	assert.LessOrEqual(t, len(points), 10)
	stages := []string{"queued", "sent", "delivered", "read", "failed"}
	prev := map[string]float64{}
	for _, p := range points {
		for _, k := range stages {
			v := p.(map[string]any)[k].(float64)
			assert.GreaterOrEqual(t, v, prev[k], "%s never decreases", k)
			prev[k] = v
		}
	}
	assert.Equal(t, map[string]float64{"queued": 8, "sent": 3, "delivered": 2, "read": 1, "failed": 2}, prev,
		"the last point is the stats: read, delivered, undelivered sent; undelivered and 63016 failed")
	assert.Equal(t, points[len(points)-1].(map[string]any)["at"], res.body["to"])

	for _, q := range []string{"buckets=0", "buckets=601", "buckets=many", "from=2026-01-01"} {
		res := e.call(http.MethodGet, "/v1/campaigns/"+f.campaign+"/timeline?"+q, readKey, nil)
		assert.Equal(t, http.StatusUnprocessableEntity, res.status, q)
	}
	assert.Equal(t, http.StatusNotFound, e.call(http.MethodGet, "/v1/campaigns/nope/timeline", readKey, nil).status)
}
