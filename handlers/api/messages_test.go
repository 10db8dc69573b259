package api_test

import (
	"bytes"
	"context"
	"encoding/csv"
	"net/http"
	"net/url"
	"regexp"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"herald/events"
	"herald/events/store"
	"herald/projections"
)

// seed appends evs to stream, as the saga, the webhooks or the users' commands would, and
// waits until every projection has applied them.
func (e *env) seed(stream string, evs ...events.Event) {
	e.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	recs := make([]events.Record, len(evs))
	for i, ev := range evs {
		var err error
		recs[i], err = events.NewRecord(uuid.Nil, stream, ev, events.Metadata{Source: "test"})
		require.NoError(e.t, err)
	}
	res, err := e.store.Append(ctx, stream, store.AnyVersion, recs...)
	require.NoError(e.t, err)
	for _, p := range projections.All() {
		require.NoError(e.t, projections.WaitFor(ctx, e.db.Pool, p.Name(), res.Checkpoint), p.Name())
	}
}

// callback records a Twilio status callback for sid, reporting on message id.
func (e *env) callback(sid, id, phone, status string, code int, at time.Time) {
	e.t.Helper()
	cb := &events.MessageStatusReceived{MessageSID: sid, Status: status, Phone: phone, MessageID: id, Attempt: 1,
		ReceivedAt: at, TimestampSource: "test", Raw: map[string][]string{"MessageStatus": {status}}}
	if code != 0 {
		cb.ErrorCode = &code
	}
	e.seed(events.ReceiptStream(sid), cb)
}

// campaignFixture is a campaign whose messages are in every state the saga produces.
type campaignFixture struct {
	campaign string
	run      string
	ids      map[string]string // name → message id
	sent     time.Time         // when the attempts were made
}

// ready waits until the projection runner has created every checkpoint: until then a write
// that waits for its read model fails with "read checkpoint of …: no rows" (projections.WaitFor
// treats a missing checkpoint as an error, and the runner creates them as it starts).
func (e *env) ready() {
	e.t.Helper()
	require.Eventually(e.t, func() bool {
		for _, p := range projections.All() {
			if _, err := projections.Checkpoint(context.Background(), e.db.Pool, p.Name()); err != nil {
				return false
			}
		}
		return true
	}, 10*time.Second, 10*time.Millisecond)
}

func seedCampaign(t *testing.T, e *env) campaignFixture {
	t.Helper()
	e.ready()
	tpl := createTemplate(t, e, map[string]any{"name": "deal", "default_locale": "en", "variants": map[string]any{
		"en": map[string]any{"body": "Hi {first_name}, 20% off today."}}})
	res := e.admin(http.MethodPost, "/v1/campaigns", map[string]any{"name": "Black Friday", "topic": "deals", "template_id": tpl})
	require.Equal(t, http.StatusCreated, res.status, string(res.raw))
	f := campaignFixture{campaign: res.body["id"].(string), run: "run-1", ids: map[string]string{},
		sent: time.Now().UTC().Add(-10 * time.Minute).Truncate(time.Millisecond)}
	queued := func(name, phone string) string {
		id := uuid.NewString()
		f.ids[name] = id
		e.seed(events.MessageStream(id), &events.MessageQueued{MessageID: id, Kind: events.MessageKindCampaign, CampaignID: f.campaign,
			RunID: f.run, Phone: phone, Topic: "deals", TemplateID: tpl, DueAt: f.sent})
		return id
	}
	attempt := &events.MessageSendAttempted{Attempt: 1, To: "whatsapp:+51987650001", From: "whatsapp:+14155238886", Locale: "en",
		Body: "Hi Ana, 20% off today.", At: f.sent}

	// read: accepted, then sent, delivered, read (callbacks out of order).
	id := queued("read", "+51987650001")
	e.seed(events.MessageStream(id), attempt, &events.MessageAccepted{Attempt: 1, SID: "SMread", Status: "queued", Via: events.AcceptedByResponse})
	// Twilio's timestamps of the callbacks (after the events were recorded).
	cb := time.Now().UTC()
	e.callback("SMread", id, "+51987650001", events.StatusRead, 0, cb.Add(3*time.Second))
	e.callback("SMread", id, "+51987650001", events.StatusSent, 0, cb.Add(time.Second))
	e.callback("SMread", id, "+51987650001", events.StatusDelivered, 0, cb.Add(2*time.Second))

	// delivered.
	id = queued("delivered", "+51987650002")
	e.seed(events.MessageStream(id), attempt, &events.MessageAccepted{Attempt: 1, SID: "SMdeliv", Via: events.AcceptedByResponse})
	e.callback("SMdeliv", id, "+51987650002", events.StatusDelivered, 0, cb.Add(2*time.Second))

	// undelivered 30003 after it was sent.
	id = queued("undelivered", "+51987650003")
	e.seed(events.MessageStream(id), attempt, &events.MessageAccepted{Attempt: 1, SID: "SMundel", Via: events.AcceptedByResponse})
	e.callback("SMundel", id, "+51987650003", events.StatusUndelivered, 30003, cb.Add(2*time.Second))

	// accepted, no callback yet.
	id = queued("accepted", "+51987650004")
	e.seed(events.MessageStream(id), attempt, &events.MessageAccepted{Attempt: 1, SID: "SMnone", Via: events.AcceptedByResponse})

	// failed at create time: 63016 outside the window.
	id = queued("failed", "+51987650005")
	e.seed(events.MessageStream(id), attempt, &events.MessageFailed{Attempt: 1, Code: 63016, Reason: "free-form text outside the window"})

	// skipped: the user opted out one second before the send.
	id = queued("skipped", "+51987650006")
	e.seed(events.MessageStream(id), &events.MessageSkipped{Reason: events.ReasonConsent, Detail: "consent is OPT_OUT"})

	// deferred by quiet hours.
	id = queued("deferred", "+51987650007")
	e.seed(events.MessageStream(id), &events.MessageDeferred{Reason: events.ReasonQuietHours,
		Detail: "local 22:14 America/Lima (user timezone), window 21:00–08:00", Until: f.sent.Add(10 * time.Hour)})

	// queued, due now; and its cells carry formulas for the CSV test.
	queued("queued", "=cmd|' /C calc'!A0")
	return f
}

func ids(res response) []string {
	var out []string
	for _, it := range res.body["items"].([]any) {
		out = append(out, it.(map[string]any)["id"].(string))
	}
	return out
}

func TestCampaignMessages(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	f := seedCampaign(t, e)
	base := "/v1/campaigns/" + f.campaign + "/messages"

	all := e.call(http.MethodGet, base, readKey, nil)
	require.Equal(t, http.StatusOK, all.status, string(all.raw))
	require.Len(t, all.body["items"], 8)
	byID := map[string]map[string]any{}
	for _, it := range all.body["items"].([]any) {
		byID[it.(map[string]any)["id"].(string)] = it.(map[string]any)
	}
	read := byID[f.ids["read"]]
	assert.Equal(t, "accepted", read["state"])
	assert.Equal(t, "read", read["status"], "the highest status whatever the order of the callbacks")
	assert.Equal(t, "SMread", read["provider_sid"])
	assert.Nil(t, read["error_code"])
	assert.Equal(t, float64(30003), byID[f.ids["undelivered"]]["error_code"])
	assert.Equal(t, "none", byID[f.ids["accepted"]]["status"])
	assert.Equal(t, float64(63016), byID[f.ids["failed"]]["error_code"])
	assert.Equal(t, events.ReasonConsent, byID[f.ids["skipped"]]["reason"])

	for _, tt := range []struct {
		query string
		want  []string
	}{
		{"state=skipped", []string{"skipped"}},
		{"state=skipped,deferred", []string{"skipped", "deferred"}},
		{"status=read", []string{"read"}},
		{"status=delivered,read", []string{"read", "delivered"}},
		{"status=none", []string{"accepted", "failed", "skipped", "deferred", "queued"}},
		{"error_code=30003", []string{"undelivered"}},
		{"error_code=63016", []string{"failed"}},
		{"run_id=run-1&state=accepted&status=undelivered", []string{"undelivered"}},
		{"run_id=other", nil},
		{"phone=987650002", []string{"delivered"}},
	} {
		t.Run(tt.query, func(t *testing.T) {
			res := e.call(http.MethodGet, base+"?"+tt.query, readKey, nil)
			require.Equal(t, http.StatusOK, res.status, string(res.raw))
			var want []string
			for _, name := range tt.want {
				want = append(want, f.ids[name])
			}
			assert.ElementsMatch(t, want, ids(res))
		})
	}

	for _, tt := range []struct{ query, field string }{
		{"state=sent", "state"},
		{"status=bogus", "status"},
		{"error_code=abc", "error_code"},
		{"phone=abc", "phone"},
		{"colour=red", "colour"},
		{"format=xml", "format"},
		{"limit=0", "limit"},
		{"cursor=nonsense", "cursor"},
	} {
		res := e.call(http.MethodGet, base+"?"+tt.query, readKey, nil)
		assert.Contains(t, []int{http.StatusBadRequest, http.StatusUnprocessableEntity}, res.status, tt.query)
		assert.Contains(t, res.problemFields(), tt.field, tt.query)
	}
	assert.Equal(t, http.StatusNotFound, e.call(http.MethodGet, "/v1/campaigns/nope/messages", readKey, nil).status)

	// Pages by id: every message once, in id order.
	var paged []string
	path := base + "?limit=3"
	for pages := 0; ; pages++ {
		require.Less(t, pages, 5)
		res := e.call(http.MethodGet, path, readKey, nil)
		require.Equal(t, http.StatusOK, res.status, string(res.raw))
		paged = append(paged, ids(res)...)
		next, _ := res.body["next_cursor"].(string)
		if next == "" {
			break
		}
		path = base + "?limit=3&cursor=" + url.QueryEscape(next)
	}
	want := ids(all)
	sort.Strings(want)
	assert.Equal(t, want, paged)
}

func TestCampaignMessagesCSVIsFormulaSafe(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	f := seedCampaign(t, e)
	// Cells a spreadsheet would evaluate, in every free-text column the saga fills.
	for _, tt := range []struct{ reason, detail string }{{"=1+1", "+SUM(A1)"}, {"-2", "@cmd"}, {"\tx", "\rx"}} {
		id := uuid.NewString()
		e.seed(events.MessageStream(id),
			&events.MessageQueued{MessageID: id, Kind: events.MessageKindCampaign, CampaignID: f.campaign, RunID: f.run, Phone: "+51987650009", DueAt: f.sent},
			&events.MessageSkipped{Reason: tt.reason, Detail: tt.detail})
	}
	for _, how := range []struct{ query, accept string }{{"?format=csv", ""}, {"", "text/csv"}} {
		res := e.call(http.MethodGet, "/v1/campaigns/"+f.campaign+"/messages"+how.query, readKey, nil, "Accept", how.accept)
		require.Equal(t, http.StatusOK, res.status, string(res.raw))
		assert.Equal(t, "text/csv; charset=utf-8", res.header.Get("Content-Type"))
		assert.Contains(t, res.header.Get("Content-Disposition"), "attachment")
		rows, err := csv.NewReader(bytes.NewReader(res.raw)).ReadAll()
		require.NoError(t, err)
		require.Len(t, rows, 1+8+3)
		header := rows[0]
		col := func(name string) int {
			for i, h := range header {
				if h == name {
					return i
				}
			}
			t.Fatalf("no column %s", name)
			return -1
		}
		phones, reasons, details := map[string]bool{}, map[string]bool{}, map[string]bool{}
		for _, row := range rows[1:] {
			phones[row[col("phone")]], reasons[row[col("reason")]], details[row[col("detail")]] = true, true, true
			for _, cell := range row {
				if cell == "" || e164.MatchString(cell) {
					continue
				}
				assert.NotContains(t, "=+-@\t\r", cell[:1], "cell %q would be evaluated", cell)
			}
		}
		assert.True(t, phones["+51987650001"], "an E.164 phone keeps its +")
		assert.True(t, phones["'=cmd|' /C calc'!A0"], "a phone that is not E.164 is text")
		for _, want := range []string{"'=1+1", "'-2", "'\tx"} {
			assert.True(t, reasons[want], "reason %q", want)
		}
		for _, want := range []string{"'+SUM(A1)", "'@cmd", "'\rx"} {
			assert.True(t, details[want], "detail %q", want)
		}
		for _, row := range rows[1:] {
			if row[col("id")] == f.ids["failed"] {
				assert.Equal(t, "63016", row[col("error_code")])
				assert.NotEmpty(t, row[col("error_meaning")])
			}
		}
	}
	// Filters apply to the export too.
	res := e.call(http.MethodGet, "/v1/campaigns/"+f.campaign+"/messages?format=csv&status=read", readKey, nil)
	rows, err := csv.NewReader(bytes.NewReader(res.raw)).ReadAll()
	require.NoError(t, err)
	require.Len(t, rows, 2)
	assert.Equal(t, f.ids["read"], rows[1][0])
}

func TestMessageTrail(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	f := seedCampaign(t, e)

	res := e.call(http.MethodGet, "/v1/messages/"+f.ids["read"], readKey, nil)
	require.Equal(t, http.StatusOK, res.status, string(res.raw))
	assert.Equal(t, "read", res.body["status"])
	assert.Equal(t, `"3"`, res.header.Get("ETag"))
	var steps []string
	for _, s := range res.body["trail"].([]any) {
		entry := s.(map[string]any)
		steps = append(steps, entry["source"].(string)+" "+entry["type"].(string))
		assert.NotEmpty(t, entry["data"])
	}
	assert.Equal(t, []string{
		"event message.queued", "event message.send_attempted", "event message.accepted",
		"status_callback message.status_received:sent", "status_callback message.status_received:delivered",
		"status_callback message.status_received:read",
	}, steps, "events and callbacks in time order")

	// Why didn't +51987650006 get it? The trail says: consent.
	res = e.call(http.MethodGet, "/v1/messages/"+f.ids["skipped"], readKey, nil)
	require.Equal(t, http.StatusOK, res.status)
	trail := res.body["trail"].([]any)
	require.Len(t, trail, 2)
	last := trail[1].(map[string]any)
	assert.Equal(t, events.TypeMessageSkipped, last["type"])
	assert.Equal(t, events.ReasonConsent, last["data"].(map[string]any)["reason"])

	// A failure carries its code's meaning and remedy.
	res = e.call(http.MethodGet, "/v1/messages/"+f.ids["failed"], readKey, nil)
	require.Equal(t, http.StatusOK, res.status)
	info := res.body["error"].(map[string]any)
	assert.Equal(t, float64(63016), info["code"])
	assert.Equal(t, true, info["known"])
	assert.NotEmpty(t, info["meaning"])
	assert.NotEmpty(t, info["remedy"])
	res = e.call(http.MethodGet, "/v1/messages/"+f.ids["undelivered"], readKey, nil)
	assert.Equal(t, float64(30003), res.body["error"].(map[string]any)["code"])

	// A callback that names the message before its acceptance was recorded is in the trail.
	id := f.ids["queued"]
	e.callback("SMearly", id, "=cmd|' /C calc'!A0", events.StatusSent, 0, time.Now().UTC())
	res = e.call(http.MethodGet, "/v1/messages/"+id, readKey, nil)
	require.Equal(t, http.StatusOK, res.status)
	require.Len(t, res.body["trail"], 2)
	assert.Equal(t, trailCallbackSent, res.body["trail"].([]any)[1].(map[string]any)["type"])

	for _, missing := range []string{uuid.NewString(), "x1", strings.Repeat("a", 80)} {
		assert.Equal(t, http.StatusNotFound, e.call(http.MethodGet, "/v1/messages/"+missing, readKey, nil).status, missing)
	}
}

const trailCallbackSent = "message.status_received:sent"

// e164 is a phone number a spreadsheet reads as text in spite of its +.
var e164 = regexp.MustCompile(`^\+[1-9][0-9]{6,14}$`)
