package ui

import (
	"net/http"
	"net/http/httptest"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/gorilla/mux"
	"github.com/rs/zerolog"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// listPaths are the /v1 routes that answer a page of a collection.
var listPaths = regexp.MustCompile(`^/v1/(users|campaigns|segments|templates|inbound|events|imports)$|^/v1/campaigns/[^/]+/messages$|^/v1/users/[^/]+/messages$`)

// maxUILimit is the largest page a UI page may ask for: pages stay fast with a million users
// and 100,000-message campaigns only if no list is unbounded.
const maxUILimit = 100

// TestEveryListIsPaged renders every GET page of the UI against a stand-in API that records
// what it is asked: every request for a list carries a limit of at most maxUILimit, so no page
// ever reads a whole table.
func TestEveryListIsPaged(t *testing.T) {
	var (
		mu   sync.Mutex
		seen []string
	)
	api := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		seen = append(seen, r.URL.RequestURI())
		mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		// One answer every page can read: a list page and the fields of a single thing.
		_, _ = w.Write([]byte(`{"items":[],"id":"x1","phone":"+51987650001","status":"completed","name":"n","template_id":"t1",` +
			`"schedule":{"kind":"now"},"rate_limit":{},"variants":{"es":{"body":"Hola"}},"default_locale":"es","totals":{},"by_state":{},"by_status":{}}`))
	})
	u, err := New(Config{API: api, SessionSecret: []byte("limits-test-secret-0123456789")}, zerolog.Nop())
	require.NoError(t, err)
	r := mux.NewRouter()
	u.Register(r)
	cookie, err := u.sealer.seal(session{Key: "k", Role: roleAdmin, Zone: "America/Lima", Expires: u.cfg.Now().Unix() + 3600})
	require.NoError(t, err)

	fill := strings.NewReplacer("{id}", "x1", "{phone}", "+51987650001", "{action:launch|pause|resume|cancel}", "launch")
	pages := 0
	for _, rt := range u.routes() {
		if rt.method != http.MethodGet || strings.HasPrefix(rt.path, "/live/") {
			continue
		}
		path := fill.Replace(rt.path)
		for _, q := range []string{"", "?cursor=abc", "?in=abc&out=abc&ev=abc"} {
			req := httptest.NewRequest(http.MethodGet, path+q, nil)
			req.AddCookie(&http.Cookie{Name: cookieName, Value: cookie})
			res := httptest.NewRecorder()
			r.ServeHTTP(res, req)
			assert.Less(t, res.Code, 500, "%s%s: %s", path, q, res.Body.String())
			pages++
		}
	}
	require.Positive(t, pages)
	lists := 0
	for _, uri := range seen {
		path, query, _ := strings.Cut(uri, "?")
		if !listPaths.MatchString(path) {
			continue
		}
		lists++
		m := regexp.MustCompile(`(?:^|&)limit=(\d+)`).FindStringSubmatch(query)
		if !assert.NotNil(t, m, "%s asks for a list without a limit", uri) {
			continue
		}
		n, _ := strconv.Atoi(m[1])
		assert.LessOrEqual(t, n, maxUILimit, "%s asks for too many rows", uri)
	}
	assert.Greater(t, lists, 20, "the pages asked for lists")
}
