package ui_test

import (
	"encoding/json"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/net/html"

	"herald/handlers/twilio/twiliosim"
	"herald/web/ui"
)

// TestLoginSessionAndRoles: pages need a login; a wrong key is refused; the session cookie is
// HttpOnly and SameSite=Lax and does not carry the key in clear; a read-only key sees no
// write actions and the API refuses its writes; logout ends the session.
func TestLoginSessionAndRoles(t *testing.T) {
	t.Parallel()
	w := newWorld(t, false)
	b := w.browser(t)

	p := b.get("/campaigns")
	require.Equal(t, http.StatusSeeOther, p.status)
	assert.Equal(t, "/login?next=%2Fcampaigns", p.header.Get("Location"))

	p = b.post("/login", url.Values{"key": {"not-a-key-0123456789"}})
	assert.Equal(t, http.StatusUnauthorized, p.status)
	assert.Contains(t, p.body, "That API key is not valid")

	p = b.post("/login", url.Values{"key": {adminKey}, "zone": {"America/Lima"}, "next": {"//evil.example/"}})
	require.Equal(t, http.StatusSeeOther, p.status)
	assert.Equal(t, "/", p.header.Get("Location"), "an off-site next is not followed")
	ck := p.header.Get("Set-Cookie")
	assert.Contains(t, ck, "HttpOnly")
	assert.Contains(t, ck, "SameSite=Lax")
	assert.NotContains(t, ck, adminKey)

	p = b.get("/")
	require.Equal(t, http.StatusOK, p.status, p.body)
	assert.Contains(t, p.body, "Dashboard")
	assert.Contains(t, p.body, "No campaigns yet")
	assert.Equal(t, ui.CSP, p.header.Get("Content-Security-Policy"))
	for _, path := range []string{"/campaigns", "/campaigns/new", "/users", "/inbox", "/imports/new", "/segments", "/segments/new", "/templates", "/templates/new"} {
		p := b.get(path)
		assert.Equal(t, http.StatusOK, p.status, "%s: %s", path, p.body)
	}
	p = b.get("/campaigns/does-not-exist")
	assert.Equal(t, http.StatusNotFound, p.status)
	assert.Contains(t, p.body, "There is nothing here")

	// A read-only key: no write buttons, and a write is refused by the API, shown readably.
	r := w.browser(t)
	r.login(readKey)
	p = r.get("/campaigns")
	require.Equal(t, http.StatusOK, p.status)
	assert.NotContains(t, p.body, "New campaign")
	assert.Contains(t, p.body, "read-only")
	p = r.post("/templates", url.Values{"name": {"x"}, "locale": {"es"}, "body": {"hola"}})
	assert.Equal(t, http.StatusUnprocessableEntity, p.status)
	assert.Contains(t, p.body, "Your API key is read-only")

	// Logout clears the cookie.
	p = b.post("/logout", nil)
	require.Equal(t, http.StatusSeeOther, p.status)
	assert.Equal(t, http.StatusSeeOther, b.get("/").status)
}

// TestCrossOriginPostsAreRefused: a state-changing request from another site (by Fetch
// Metadata or by Origin) gets 403 before any handler runs, even with a valid session cookie.
func TestCrossOriginPostsAreRefused(t *testing.T) {
	t.Parallel()
	w := newWorld(t, false)
	b := w.browser(t)
	b.login(adminKey)
	form := url.Values{"name": {"evil"}, "locale": {"es"}, "body": {"hola"}}
	p := b.do(http.MethodPost, "/templates", form, "Sec-Fetch-Site", "cross-site")
	assert.Equal(t, http.StatusForbidden, p.status, p.body)
	p = b.do(http.MethodPost, "/templates", form, "Origin", "https://evil.example")
	assert.Equal(t, http.StatusForbidden, p.status, p.body)
	p = b.do(http.MethodPost, "/logout", nil, "Sec-Fetch-Site", "cross-site")
	assert.Equal(t, http.StatusForbidden, p.status)
	p = b.do(http.MethodPost, "/login", url.Values{"key": {adminKey}}, "Sec-Fetch-Site", "cross-site")
	assert.Equal(t, http.StatusForbidden, p.status, "login CSRF")
	assert.NotContains(t, w.api(http.MethodGet, "/v1/templates", nil)["items"], "evil")
	// The same form from Herald's own page goes through.
	p = b.post("/templates", form)
	assert.Equal(t, http.StatusSeeOther, p.status, p.body)
}

// xss is a corpus of payloads for every place user data lands: element text, attribute values,
// URLs, JSON in <pre>.
var xss = []string{
	`<script>alert(1)</script>`,
	`"><img src=x onerror=alert(1)>`,
	`'><svg onload=alert(1)>`,
	`javascript:alert(1)`,
	`</textarea><script>alert(1)</script>`,
	`<a href="javascript:alert(1)">x</a>`,
	`{{.S.Key}}`,
	`<iframe srcdoc="<script>alert(1)</script>">`,
}

// TestXSSCorpus seeds hostile strings through the API and the inbound webhook (user
// attributes, profile names, message bodies, template, segment and campaign names, an import's
// file name) and renders every page: no payload survives as markup, and every HTML answer has
// the CSP.
func TestXSSCorpus(t *testing.T) {
	t.Parallel()
	w := newWorld(t, false)
	payload := strings.Join(xss, " ")
	name := xss[0] + xss[1] + xss[3] // names are capped at 200 characters
	phone := "+51987650001"
	attrs := map[string]any{"first_name": payload, "city": xss[1], "tags": xss}
	w.api(http.MethodPost, "/v1/users", map[string]any{"phone": phone, "consent": "OPT_IN", "attributes": attrs, "topics": []string{"deals"}})
	for _, body := range xss {
		_, err := w.sim.Inject(t.Context(), twiliosim.Inbound{From: phone, Body: body, ProfileName: xss[1]})
		require.NoError(t, err)
	}
	tpl := w.api(http.MethodPost, "/v1/templates", map[string]any{"name": name, "default_locale": "es",
		"variants": map[string]any{"es": map[string]any{"body": "Hola {first_name} " + xss[0]}}})
	seg := w.api(http.MethodPost, "/v1/segments", map[string]any{"name": name, "description": payload,
		"rule": map[string]any{"attr": "city", "op": "eq", "value": xss[1]}})
	cmp := w.api(http.MethodPost, "/v1/campaigns", map[string]any{"name": name, "topic": "deals", "template_id": tpl["id"],
		"segment_id": seg["id"], "schedule": map[string]any{"kind": "now"}})

	b := w.browser(t)
	b.login(adminKey)
	// An import whose file name and rows are hostile.
	imp := b.upload("/imports", xss[1]+".csv", "phone,first_name\n"+xss[0]+",x\n+51987650002,"+strings.ReplaceAll(xss[1], `"`, `""`)+"\n")
	require.Equal(t, http.StatusSeeOther, imp.status, imp.body)
	importPath := imp.header.Get("Location")
	require.Eventually(t, func() bool { return !strings.Contains(b.get(importPath).body, "Importing…") }, 15*time.Second, 100*time.Millisecond)

	require.Eventually(t, func() bool {
		return strings.Count(b.get("/inbox/"+url.PathEscape(phone)).body, `class="bubble"`) >= len(xss)
	}, 15*time.Second, 100*time.Millisecond, "inbound messages in the inbox")
	// An outbound reply with a hostile body: the profile's timeline shows it.
	w.api(http.MethodPost, "/v1/conversations/"+url.PathEscape(phone)+"/messages", map[string]any{"body": payload})

	cid := cmp["id"].(string)
	pages := []string{"/", "/campaigns", "/campaigns/" + cid, "/users", "/users?q=" + url.QueryEscape(xss[0]),
		"/users/" + url.PathEscape(phone), "/inbox", "/inbox?q=" + url.QueryEscape(xss[1]), "/inbox/" + url.PathEscape(phone),
		importPath, "/segments", "/templates", "/templates/" + tpl["id"].(string), "/campaigns/new",
		"/segments/" + seg["id"].(string) + "/edit",
		"/templates/" + tpl["id"].(string) + "/edit",
		"/campaigns/" + cid + "/edit",
	}
	posts := map[string]url.Values{
		"/campaigns/" + cid + "/preview":                nil,
		"/templates/" + tpl["id"].(string) + "/preview": {"phone": {phone}},
		"/templates":                                 {"name": {payload}, "locale": {xss[1]}, "body": {"{" + xss[0]}},
		"/segments":                                  {"name": {payload}, "rule": {xss[4]}},
		"/templates/" + tpl["id"].(string):           {"name": {payload}, "version": {"1"}, "locale": {xss[2]}, "body": {xss[5]}},
		"/segments/" + seg["id"].(string):            {"name": {payload}, "version": {"1"}, "rule": {`{"attr": "city", "op": "` + xss[1] + `", "value": 1}`}},
		"/inbox/" + url.PathEscape(phone) + "/reply": {"body": {""}},
		"/campaigns":                                 {"name": {payload}, "topic": {xss[2]}, "template_id": {xss[1]}},
	}
	check := func(what string, p page) {
		t.Helper()
		assert.Equal(t, ui.CSP, p.header.Get("Content-Security-Policy"), what)
		assertNoMarkup(t, what, p.body)
	}
	for _, path := range pages {
		p := b.get(path)
		require.Less(t, p.status, 400, "%s: %s", path, p.body)
		check(path, p)
	}
	anon := w.browser(t)
	check("login", anon.get("/login?next="+url.QueryEscape(`"><script>alert(1)</script>`)))
	for path, form := range posts {
		p := b.post(path, form)
		require.NotEqual(t, http.StatusSeeOther, p.status, "%s should render (an error or a preview), not redirect", path)
		check("POST "+path, p)
	}
	// The payloads are there, as text.
	assert.Contains(t, b.get("/users/"+url.PathEscape(phone)).body, "&lt;script&gt;alert(1)&lt;/script&gt;")
	profile := b.get("/users/" + url.PathEscape(phone)).body
	assert.Contains(t, profile, `<li class="out">`, "the reply is in the profile's timeline")
	assert.Contains(t, profile, `<li class="in">`, "and the messages from them")
	assert.Contains(t, profile, "Consent set to OPT_IN", "the consent history reads as a sentence")
}

// assertNoMarkup parses the page as a browser would and fails on any element or attribute a
// payload could have brought: a script other than Herald's own, an on* handler, a javascript:
// URL, an img/svg/iframe/object element.
func assertNoMarkup(t *testing.T, what, body string) {
	t.Helper()
	z := html.NewTokenizer(strings.NewReader(body))
	for {
		tt := z.Next()
		if tt == html.ErrorToken {
			break
		}
		if tt != html.StartTagToken && tt != html.SelfClosingTagToken {
			continue
		}
		tok := z.Token()
		switch tok.Data {
		case "img", "svg", "iframe", "object", "embed":
			t.Errorf("%s: an injected <%s> survived", what, tok.Data)
		case "script":
			if len(tok.Attr) != 2 || tok.Attr[0].Key != "src" || tok.Attr[0].Val != "/static/app.js" {
				t.Errorf("%s: a <script> survived: %s", what, tok.String())
			}
		}
		for _, a := range tok.Attr {
			if strings.HasPrefix(strings.ToLower(a.Key), "on") {
				t.Errorf("%s: an %s= handler survived on <%s>", what, a.Key, tok.Data)
			}
			v := strings.ToLower(strings.TrimSpace(a.Val))
			if (a.Key == "href" || a.Key == "src" || a.Key == "action" || a.Key == "formaction") && strings.HasPrefix(v, "javascript:") {
				t.Errorf("%s: a javascript: URL survived in %s", what, a.Key)
			}
		}
	}
	assert.NotContains(t, body, adminKey, "%s: the key leaked into the page", what)
}

// TestCampaignTimelineJSON: the monitor's chart reads the campaign's timeline through the UI's
// session (the API key never reaches the browser); without a session it is refused.
func TestCampaignTimelineJSON(t *testing.T) {
	t.Parallel()
	w := newWorld(t, false)
	tpl := w.api(http.MethodPost, "/v1/templates", map[string]any{"name": "t", "default_locale": "es",
		"variants": map[string]any{"es": map[string]any{"body": "Hola"}}})
	cmp := w.api(http.MethodPost, "/v1/campaigns", map[string]any{"name": "c", "topic": "deals", "template_id": tpl["id"]})
	path := "/campaigns/" + cmp["id"].(string) + "/timeline.json"

	anon := w.browser(t)
	assert.NotEqual(t, http.StatusOK, anon.get(path).status, "no session, no timeline")

	b := w.browser(t)
	b.login(adminKey)
	p := b.get(path)
	require.Equal(t, http.StatusOK, p.status, p.body)
	assert.Equal(t, "application/json", p.header.Get("Content-Type"))
	var tl struct {
		CampaignID string `json:"campaign_id"`
		Points     []any  `json:"points"`
	}
	require.NoError(t, json.Unmarshal([]byte(p.body), &tl))
	assert.Equal(t, cmp["id"], tl.CampaignID)
	assert.NotNil(t, tl.Points, "a campaign without messages has an empty timeline, not null")
	assert.Equal(t, http.StatusNotFound, b.get("/campaigns/nope/timeline.json").status)
}
