package ui_test

import (
	"context"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// BenchmarkListPages renders the list pages over large read models: the users page (plain,
// filtered, searched), a user's profile, and a campaign's page with its recipients table.
// Every list is a keyset page of at most 100 rows, so a page's cost must not grow with the
// table. Rows are written straight into the read models (users, messages): the pages read
// nothing else.
//
//	go test -run '^$' -bench BenchmarkListPages ./web/ui/                      # 20,000 users, 10,000 messages
//	HERALD_BENCH_FULL=1 go test -run '^$' -bench BenchmarkListPages ./web/ui/  # 1,000,000 users, 100,000 messages
func BenchmarkListPages(b *testing.B) {
	users, msgs := 20_000, 10_000
	if os.Getenv("HERALD_BENCH_FULL") != "" {
		users, msgs = 1_000_000, 100_000
	}
	w := newWorld(b, false)
	ctx := context.Background()
	_, err := w.db.Pool.Exec(ctx, `INSERT INTO users (phone, attributes, consent, country, locale, timezone, created_at, updated_at, version)
SELECT '+5198' || lpad(i::text, 7, '0'),
       jsonb_build_object('first_name', 'User ' || i, 'city', CASE WHEN i % 3 = 0 THEN 'Lima' ELSE 'Cusco' END),
       CASE WHEN i % 10 = 0 THEN 'OPT_OUT' ELSE 'OPT_IN' END, 'PE', 'es', 'America/Lima', now(), now(), 1
FROM generate_series(1, $1) i`, users)
	require.NoError(b, err)
	tpl := w.api(http.MethodPost, "/v1/templates", map[string]any{"name": "t", "default_locale": "es",
		"variants": map[string]any{"es": map[string]any{"body": "Hola {first_name}"}}})
	cmp := w.api(http.MethodPost, "/v1/campaigns", map[string]any{"name": "big", "topic": "deals", "template_id": tpl["id"]})
	cid := cmp["id"].(string)
	_, err = w.db.Pool.Exec(ctx, `INSERT INTO messages (id, kind, campaign_id, run_id, phone, state, body, queued_at, updated_at, version)
SELECT gen_random_uuid(), 'campaign', $1, 'run-1', '+5198' || lpad(i::text, 7, '0'),
       CASE WHEN i % 7 = 0 THEN 'skipped' ELSE 'accepted' END, 'Hola User ' || i,
       now() - (i || ' seconds')::interval, now(), 1
FROM generate_series(1, $2) i`, cid, msgs)
	require.NoError(b, err)
	_, err = w.db.Pool.Exec(ctx, `ANALYZE users; ANALYZE messages`)
	require.NoError(b, err)

	jar, _ := cookiejar.New(nil)
	c := &http.Client{Jar: jar, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	req, err := http.NewRequest(http.MethodPost, w.srv.URL+"/login", strings.NewReader(url.Values{"key": {adminKey}, "zone": {"America/Lima"}}.Encode()))
	require.NoError(b, err)
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Sec-Fetch-Site", "same-origin")
	res, err := c.Do(req)
	require.NoError(b, err)
	res.Body.Close()
	require.Equal(b, http.StatusSeeOther, res.StatusCode)

	for _, pg := range []struct{ name, path string }{
		{"users", "/users"},
		{"users filtered", "/users?consent=OPT_IN&country=PE"},
		{"users by phone prefix", "/users?phone_prefix=%2B51980"},
		{"profile", "/users/%2B51980000021"},
		{"campaign with recipients", "/campaigns/" + cid},
		{"campaign recipients skipped", "/campaigns/" + cid + "?state=skipped"},
		// Where the campaign page's time goes: the API calls it makes.
		{"api campaign stats", "/v1/campaigns/" + cid + "/stats"},
		{"api campaign recipients", "/v1/campaigns/" + cid + "/messages?limit=25"},
	} {
		b.Run(pg.name, func(b *testing.B) {
			start := time.Now()
			for b.Loop() {
				req, err := http.NewRequest(http.MethodGet, w.srv.URL+pg.path, nil)
				require.NoError(b, err)
				if strings.HasPrefix(pg.path, "/v1/") {
					req.Header.Set("Authorization", "Bearer "+adminKey)
				}
				res, err := c.Do(req)
				require.NoError(b, err)
				_, _ = io.Copy(io.Discard, res.Body)
				res.Body.Close()
				require.Equal(b, http.StatusOK, res.StatusCode, pg.path)
			}
			b.ReportMetric(float64(time.Since(start).Milliseconds())/float64(b.N), "ms/page")
			b.ReportMetric(float64(users), "users")
			b.ReportMetric(float64(msgs), "messages")
		})
	}
}
