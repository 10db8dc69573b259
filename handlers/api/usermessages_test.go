package api_test

import (
	"net/http"
	"net/url"
	"testing"

	"github.com/google/uuid"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"herald/events"
)

func TestUserMessages(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	f := seedCampaign(t, e)
	// Two later messages to the same user from another campaign: the list is newest first.
	var later []string
	for range 2 {
		id := uuid.NewString()
		e.seed(events.MessageStream(id), &events.MessageQueued{MessageID: id, Kind: events.MessageKindCampaign, CampaignID: "other",
			RunID: "run-2", Phone: "+51987650001", Topic: "deals", TemplateID: "t", DueAt: f.sent})
		later = append([]string{id}, later...)
	}
	newestFirst := append(later, f.ids["read"])
	base := "/v1/users/" + url.PathEscape("+51 987 650 001") + "/messages"

	res := e.call(http.MethodGet, base, readKey, nil)
	require.Equal(t, http.StatusOK, res.status, string(res.raw))
	assert.Equal(t, newestFirst, ids(res))
	first := res.body["items"].([]any)[2].(map[string]any)
	assert.Equal(t, "read", first["status"], "the provider's status is joined as in the campaign list")

	// Keyset pages: every message once, in the same order.
	var paged []string
	path := base + "?limit=1"
	for pages := 0; ; pages++ {
		require.Less(t, pages, 5)
		res := e.call(http.MethodGet, path, readKey, nil)
		require.Equal(t, http.StatusOK, res.status, string(res.raw))
		paged = append(paged, ids(res)...)
		next, _ := res.body["next_cursor"].(string)
		if next == "" {
			break
		}
		path = base + "?limit=1&cursor=" + url.QueryEscape(next)
	}
	assert.Equal(t, newestFirst, paged)

	for _, tt := range []struct {
		query string
		want  []string
	}{
		{"campaign_id=" + f.campaign, []string{f.ids["read"]}},
		{"campaign_id=other&state=queued", later},
		{"state=failed", nil},
	} {
		res := e.call(http.MethodGet, base+"?"+tt.query, readKey, nil)
		require.Equal(t, http.StatusOK, res.status, string(res.raw))
		assert.Equal(t, tt.want, ids(res), tt.query)
	}
	empty := e.call(http.MethodGet, "/v1/users/+51900000000/messages", readKey, nil)
	require.Equal(t, http.StatusOK, empty.status)
	assert.Empty(t, empty.body["items"])

	for _, tt := range []struct{ path, field string }{
		{base + "?state=sent", "state"},
		{base + "?colour=red", "colour"},
		{base + "?cursor=nonsense", "cursor"},
		{"/v1/users/abc/messages", "phone"},
	} {
		res := e.call(http.MethodGet, tt.path, readKey, nil)
		assert.Contains(t, []int{http.StatusBadRequest, http.StatusUnprocessableEntity}, res.status, tt.path)
		assert.Contains(t, res.problemFields(), tt.field, tt.path)
	}
}
