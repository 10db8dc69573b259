package ui_test

import (
	"fmt"
	"net/http"
	"net/url"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestCampaignDryRun: the campaign's dry run shows would-send, deferred until when (in the
// operator's zone, and the recipient's own time), skipped by reason with what it means, the
// samples with each recipient's local time, and the ETA.
func TestCampaignDryRun(t *testing.T) {
	t.Parallel()
	w := newWorld(t, false)
	b := w.browser(t)
	b.login(adminKey) // the operator's zone is America/Lima
	for _, u := range []map[string]any{
		{"phone": "+51987650001", "consent": "OPT_IN", "topics": []string{"deals"}, "timezone": "Asia/Tokyo", "attributes": map[string]any{"first_name": "Ana"}},
		{"phone": "+51987650002", "consent": "OPT_IN", "topics": []string{"deals"}, "timezone": "UTC", "attributes": map[string]any{"first_name": "Bruno"}},
		{"phone": "+51987650003", "consent": "OPT_OUT", "topics": []string{"deals"}},
	} {
		w.api(http.MethodPost, "/v1/users", u)
	}
	tpl := w.api(http.MethodPost, "/v1/templates", map[string]any{"name": "t", "default_locale": "es",
		"variants": map[string]any{"es": map[string]any{"body": "Hola {first_name}", "content_sid": "HX0123456789abcdef0123456789abcdef"}}})
	// Quiet hours around now in UTC: Bruno (UTC) is deferred, Ana (Tokyo, 9 hours ahead) is not.
	h := time.Now().UTC().Hour()
	quiet := map[string]any{"start": fmt.Sprintf("%02d:00", (h+23)%24), "end": fmt.Sprintf("%02d:00", (h+2)%24), "timezone_fallback": "UTC"}
	cmp := w.api(http.MethodPost, "/v1/campaigns", map[string]any{"name": "c", "topic": "deals", "template_id": tpl["id"],
		"quiet_hours": quiet, "rate_limit": map[string]any{"per_second": 2}})
	p := b.post("/campaigns/"+cmp["id"].(string)+"/preview", url.Values{})
	require.Equal(t, http.StatusOK, p.status, p.body)
	for _, want := range []string{
		"Would send now", "Deferred by quiet hours", "Skipped, by reason", "They have not opted in",
		"Hola Ana", "Hola Bruno", "Asia/Tokyo", "their time)", "at 2/s", "-05", // Lima's offset: times in the operator's zone
	} {
		assert.Contains(t, p.body, want)
	}
	assert.Contains(t, p.body, "<strong>deferred</strong> until")
	assert.Contains(t, p.body, "<strong>send</strong>")
}
