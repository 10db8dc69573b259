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

// inbound records a WhatsApp message from phone, as the inbound webhook does.
func (e *env) inbound(phone, body, command, topic string, at time.Time) string {
	e.t.Helper()
	sid := "SM" + uuid.NewString()[:8]
	e.seed(events.UserStream(phone), &events.UserMessageReceived{Phone: phone, MessageSID: sid, To: "whatsapp:+14155238886",
		Body: body, Command: command, Topic: topic, ReceivedAt: at, TimestampSource: "test",
		Raw: map[string][]string{"Body": {body}}})
	return sid
}

func TestInbound(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.ready()
	e.consent("+51987650001", events.ConsentOptIn)
	e.consent("+51987650002", events.ConsentOptIn)
	base := time.Now().UTC().Add(-time.Hour).Truncate(time.Second)
	sids := []string{ // oldest first
		e.inbound("+51987650001", "SUBSCRIBE deals", events.CommandSubscribe, "deals", base),
		e.inbound("+51987650001", "Hola, ¿a qué hora abren?", "", "", base.Add(time.Minute)),
		e.inbound("+51987650002", "STOP", events.CommandStop, "", base.Add(2*time.Minute)),
		e.inbound("+51987650002", "¿Tienen la oferta en Cusco?", "", "", base.Add(3*time.Minute)),
		e.inbound("+51987650001", "Gracias, ¡HOLA de nuevo!", "", "", base.Add(4*time.Minute)),
	}
	got := func(res response) []string {
		var out []string
		for _, it := range res.body["items"].([]any) {
			out = append(out, it.(map[string]any)["message_sid"].(string))
		}
		return out
	}
	at := func(m time.Duration) string { return url.QueryEscape(base.Add(m * time.Minute).Format(time.RFC3339)) }

	for _, tt := range []struct {
		query string
		want  []int // indexes into sids, newest first
	}{
		{"", []int{4, 3, 2, 1, 0}},
		{"phone=987650001", []int{4, 1, 0}},
		{"phone=%2B51987650002", []int{3, 2}},
		{"command=STOP", []int{2}},
		{"command=subscribe", []int{0}},
		{"command=none", []int{4, 3, 1}},
		{"topic=deals", []int{0}},
		{"q=hola", []int{4, 1}},
		{"since=" + at(2), []int{4, 3, 2}},
		{"until=" + at(2), []int{1, 0}},
		{"since=" + at(1) + "&until=" + at(4) + "&phone=987650001", []int{1}},
	} {
		t.Run(tt.query, func(t *testing.T) {
			res := e.call(http.MethodGet, "/v1/inbound?"+tt.query, readKey, nil)
			require.Equal(t, http.StatusOK, res.status, string(res.raw))
			var want []string
			for _, i := range tt.want {
				want = append(want, sids[i])
			}
			assert.Equal(t, want, got(res))
		})
	}

	res := e.call(http.MethodGet, "/v1/inbound?limit=1", readKey, nil)
	require.Equal(t, http.StatusOK, res.status)
	item := res.body["items"].([]any)[0].(map[string]any)
	assert.Equal(t, "Gracias, ¡HOLA de nuevo!", item["body"])
	assert.Equal(t, "+51987650001", item["phone"])
	assert.NotEmpty(t, item["normalized"])

	// Newest first across pages of two, each message once.
	var paged []string
	path := "/v1/inbound?limit=2"
	for pages := 0; ; pages++ {
		require.Less(t, pages, 4)
		res := e.call(http.MethodGet, path, readKey, nil)
		require.Equal(t, http.StatusOK, res.status, string(res.raw))
		paged = append(paged, got(res)...)
		next, _ := res.body["next_cursor"].(string)
		if next == "" {
			break
		}
		path = "/v1/inbound?limit=2&cursor=" + url.QueryEscape(next)
	}
	assert.Equal(t, []string{sids[4], sids[3], sids[2], sids[1], sids[0]}, paged)

	for _, tt := range []struct{ query, field string }{
		{"command=PLEASE", "command"},
		{"phone=abc", "phone"},
		{"since=yesterday", "since"},
		{"topic=Big Deals", "topic"},
		{"sort=asc", "sort"},
		{"cursor=xyz", "cursor"},
	} {
		res := e.call(http.MethodGet, "/v1/inbound?"+url.PathEscape(tt.query), readKey, nil)
		assert.Contains(t, []int{http.StatusBadRequest, http.StatusUnprocessableEntity}, res.status, tt.query)
		assert.Contains(t, res.problemFields(), tt.field, tt.query)
	}
}
