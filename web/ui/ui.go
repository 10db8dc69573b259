// Package ui is Herald's web UI: server-rendered html/template pages behind a login with an
// API key. Every page and action goes through the /v1 API in-process (the same http.Handler,
// with the session's key), so the key's role governs the UI exactly as it governs the API;
// the package runs no SQL. Pages carry a strict Content-Security-Policy (no inline script),
// and every state-changing request passes Go's cross-origin protection.
package ui

import (
	"bytes"
	"context"
	"embed"
	"errors"
	"fmt"
	"html/template"
	"io/fs"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/gorilla/mux"
	"github.com/rs/zerolog"
)

//go:embed templates/*.html
var templateFS embed.FS

//go:embed static
var staticFS embed.FS

const (
	roleAdmin = "admin"
	roleRead  = "read"
)

// CSP is the Content-Security-Policy of every UI response: scripts, styles and fetches from
// Herald only, no inline script or style, no framing, forms post only to Herald.
const CSP = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; " +
	"form-action 'self'; frame-ancestors 'none'; base-uri 'none'; object-src 'none'"

// Config configures the UI.
type Config struct {
	// API is the handler that serves /v1 (Herald's router); the UI calls it in-process.
	API http.Handler
	// SessionSecret seals session cookies; processes that share it share sessions. Empty: a
	// random secret, so a restart logs everyone out.
	SessionSecret []byte
	// SessionTTL is how long a login lasts (default 12 h).
	SessionTTL time.Duration
	// Secure marks cookies Secure even when TLS ends at a proxy (set it when PUBLIC_BASE_URL is
	// https). Cookies are always Secure on a TLS request.
	Secure bool
	// Now is the clock (tests).
	Now func() time.Time
}

// UI serves the pages.
type UI struct {
	cfg    Config
	sealer *sealer
	pages  map[string]*template.Template
	log    zerolog.Logger
	cop    *http.CrossOriginProtection
}

// New parses the templates and builds the UI.
func New(cfg Config, log zerolog.Logger) (*UI, error) {
	if cfg.API == nil {
		return nil, errors.New("ui: Config.API is required")
	}
	if cfg.SessionTTL == 0 {
		cfg.SessionTTL = 12 * time.Hour
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	s, err := newSealer(cfg.SessionSecret)
	if err != nil {
		return nil, err
	}
	pages, err := parsePages()
	if err != nil {
		return nil, err
	}
	cop := http.NewCrossOriginProtection()
	cop.SetDenyHandler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		securityHeaders(w)
		http.Error(w, "cross-origin request refused: this form must be sent from Herald's own pages", http.StatusForbidden)
	}))
	return &UI{cfg: cfg, sealer: s, pages: pages, log: log, cop: cop}, nil
}

func parsePages() (map[string]*template.Template, error) {
	layout, err := template.New("layout.html").Funcs(funcs).ParseFS(templateFS, "templates/layout.html")
	if err != nil {
		return nil, err
	}
	names, err := fs.Glob(templateFS, "templates/*.html")
	if err != nil {
		return nil, err
	}
	pages := map[string]*template.Template{}
	for _, n := range names {
		base := strings.TrimSuffix(strings.TrimPrefix(n, "templates/"), ".html")
		if base == "layout" {
			continue
		}
		t, err := template.Must(layout.Clone()).ParseFS(templateFS, n)
		if err != nil {
			return nil, fmt.Errorf("ui: %s: %w", n, err)
		}
		pages[base] = t
	}
	return pages, nil
}

// handler is a page handler: it gets the request's session and API client.
type handler func(w http.ResponseWriter, r *http.Request, s session, c client) error

// Register mounts the UI's routes on r (explicit paths: /v1, the webhooks and /metrics stay
// as they are).
func (u *UI) Register(r *mux.Router) {
	static, _ := fs.Sub(staticFS, "static")
	fileServer := http.StripPrefix("/static/", http.FileServerFS(static))
	r.PathPrefix("/static/").Handler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		securityHeaders(w)
		w.Header().Set("Cache-Control", "public, max-age=300")
		fileServer.ServeHTTP(w, r)
	})).Methods(http.MethodGet, http.MethodHead)

	open := func(path string, h http.HandlerFunc, methods ...string) {
		r.Handle(path, u.cop.Handler(h)).Methods(methods...)
	}
	open("/login", u.loginPage, http.MethodGet)
	open("/login", u.login, http.MethodPost)
	open("/logout", u.logout, http.MethodPost)

	for _, rt := range u.routes() {
		r.Handle(rt.path, u.cop.Handler(u.authed(rt.handle))).Methods(rt.method)
	}
}

type uiRoute struct {
	method string
	path   string
	handle handler
}

func (u *UI) routes() []uiRoute {
	get, post := http.MethodGet, http.MethodPost
	return []uiRoute{
		{get, "/", u.dashboard},
		{post, "/settings/zone", u.setZone},

		{get, "/campaigns", u.campaignList},
		{get, "/campaigns/new", u.campaignNew},
		{post, "/campaigns", u.campaignSave},
		{get, "/campaigns/{id}", u.campaignShow},
		{post, "/campaigns/{id}/preview", u.campaignPreview},
		{post, "/campaigns/{id}/{action:launch|pause|resume|cancel}", u.campaignAction},
		{get, "/campaigns/{id}/edit", u.campaignEdit},
		{post, "/campaigns/{id}", u.campaignSave},
		{post, "/campaigns/{id}/delete", u.remove("campaign", "/v1/campaigns/", "/campaigns")},
		{get, "/campaigns/{id}/stats.json", u.campaignStatsJSON},
		{get, "/campaigns/{id}/timeline.json", u.campaignTimelineJSON},
		{get, "/live/campaigns/{id}", u.live(u.campaignSnapshot)},
		{get, "/live/dashboard", u.live(u.dashboardSnapshot)},
		{get, "/live/inbox", u.live(u.inboxSnapshot)},
		{get, "/live/inbox/{phone}", u.live(u.inboxSnapshot)},
		{get, "/live/imports/{id}", u.live(u.importSnapshot)},
		{get, "/messages/{id}", u.messageShow},

		{get, "/users", u.userList},
		{get, "/users/{phone}", u.userShow},

		{get, "/inbox", u.inbox},
		{get, "/inbox/{phone}", u.conversation},
		{post, "/inbox/{phone}/reply", u.reply},

		{get, "/imports/new", u.importNew},
		{post, "/imports", u.importCreate},
		{get, "/imports/{id}", u.importShow},
		{get, "/imports/{id}/rejections.csv", u.importRejections},

		{get, "/segments", u.segmentList},
		{get, "/segments/new", u.segmentNew},
		{post, "/segments", u.segmentSave},
		{post, "/segments/count.json", u.segmentCountJSON},
		{get, "/segments/{id}/edit", u.segmentEdit},
		{post, "/segments/{id}", u.segmentSave},
		{post, "/segments/{id}/delete", u.remove("segment", "/v1/segments/", "/segments")},

		{get, "/templates", u.templateList},
		{get, "/templates/new", u.templateNew},
		{post, "/templates", u.templateSave},
		{post, "/templates/draft.json", u.templateDraftJSON},
		{get, "/templates/{id}", u.templateShow},
		{get, "/templates/{id}/edit", u.templateEdit},
		{post, "/templates/{id}", u.templateSave},
		{post, "/templates/{id}/delete", u.remove("template", "/v1/templates/", "/templates")},
		{post, "/templates/{id}/preview", u.templatePreview},
	}
}

// authed opens the session (or sends the browser to the login page) and runs h with a client
// that carries the session's key. An API 401 (the key was removed) ends the session.
func (u *UI) authed(h handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s, ok := u.session(r)
		if !ok {
			if r.Method == http.MethodGet && !strings.HasSuffix(r.URL.Path, ".json") && !strings.HasPrefix(r.URL.Path, "/live/") {
				http.Redirect(w, r, "/login?next="+url.QueryEscape(r.URL.RequestURI()), http.StatusSeeOther)
				return
			}
			securityHeaders(w)
			http.Error(w, "your session has ended; log in again", http.StatusUnauthorized)
			return
		}
		c := client{api: u.cfg.API, key: s.Key}
		err := h(w, r, s, c)
		if err == nil {
			return
		}
		var ae *apiError
		if errors.As(err, &ae) && ae.Status == http.StatusUnauthorized {
			u.clearSession(w, r)
			http.Redirect(w, r, "/login?expired=1", http.StatusSeeOther)
			return
		}
		u.renderError(w, r, s, err)
	})
}

func (u *UI) session(r *http.Request) (session, bool) {
	ck, err := r.Cookie(cookieName)
	if err != nil {
		return session{}, false
	}
	s, err := u.sealer.open(ck.Value, u.cfg.Now())
	return s, err == nil
}

// page is what every template gets.
type page struct {
	Title  string
	Nav    string
	Path   string
	S      session
	Loc    *time.Location
	Notice string
	Error  string
	Fields []fieldError
	Query  url.Values
	Data   any
	// Live is the page's Server-Sent Events stream ("" for a page that does not change).
	Live string
}

func (u *UI) newPage(r *http.Request, s session, title, nav string, data any) *page {
	loc := time.UTC
	if s.Zone != "" {
		if l, err := time.LoadLocation(s.Zone); err == nil {
			loc = l
		}
	}
	return &page{Title: title, Nav: nav, Path: r.URL.RequestURI(), S: s, Loc: loc, Query: r.URL.Query(), Data: data,
		Notice: r.URL.Query().Get("notice")}
}

// withErr puts an API error (detail and field reasons) on the page.
func (p *page) withErr(err error) *page {
	var ae *apiError
	if errors.As(err, &ae) {
		p.Error, p.Fields = ae.Detail, ae.Fields
		switch {
		case ae.Status == http.StatusForbidden:
			p.Error = "Your API key is read-only: this action needs an admin key."
		case ae.Status == http.StatusConflict && hasField(ae.Fields, "If-Match") != "":
			p.Error = "Someone changed this since you opened it, so your change was not saved (nothing was overwritten). " +
				"Open it again to see the current version, then make your change there."
			p.Fields = nil
		}
	} else if err != nil {
		p.Error = "Something went wrong; the details are in Herald's log."
	}
	return p
}

func securityHeaders(w http.ResponseWriter) {
	h := w.Header()
	h.Set("Content-Security-Policy", CSP)
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("X-Frame-Options", "DENY")
	h.Set("Referrer-Policy", "same-origin")
}

func (u *UI) render(w http.ResponseWriter, r *http.Request, status int, name string, p *page) {
	t, ok := u.pages[name]
	if !ok {
		panic("ui: no page " + name)
	}
	var buf bytes.Buffer
	if err := t.ExecuteTemplate(&buf, "layout.html", p); err != nil {
		zerolog.Ctx(r.Context()).Error().Err(err).Str("page", name).Msg("ui: template failed")
		securityHeaders(w)
		http.Error(w, "this page could not be shown; the details are in Herald's log", http.StatusInternalServerError)
		return
	}
	securityHeaders(w)
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_, _ = w.Write(buf.Bytes())
}

func (u *UI) renderError(w http.ResponseWriter, r *http.Request, s session, err error) {
	status := http.StatusInternalServerError
	var ae *apiError
	if errors.As(err, &ae) {
		status = ae.Status
	} else if !errors.Is(err, context.Canceled) {
		zerolog.Ctx(r.Context()).Error().Err(err).Str("path", r.URL.Path).Msg("ui: page failed")
	}
	p := u.newPage(r, s, "Problem", "", nil).withErr(err)
	if status == http.StatusNotFound {
		p.Error = "There is nothing here: it may have been deleted, or the link is wrong."
	}
	u.render(w, r, status, "error", p)
}

// back redirects after a POST (post/redirect/get), with a notice to show.
func back(w http.ResponseWriter, r *http.Request, path, notice string) {
	if notice != "" {
		sep := "?"
		if strings.Contains(path, "?") {
			sep = "&"
		}
		path += sep + "notice=" + url.QueryEscape(notice)
	}
	http.Redirect(w, r, path, http.StatusSeeOther)
}

func vars(r *http.Request, name string) string { return mux.Vars(r)[name] }
