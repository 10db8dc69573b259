// Package api serves Herald's versioned REST API under /v1: users, segments, templates,
// campaigns and the audit log. Writes are commands (package commands) that append events;
// reads come from the projections; a write answers once its events are applied to the read
// model it changed (or 202 with the log position after WaitTimeout), so a client reads what it
// just wrote.
package api

import (
	"context"
	_ "embed"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/gorilla/mux"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/rs/zerolog"

	"herald/commands"
	"herald/events"
	"herald/events/store"
	"herald/projections"
)

// Config configures the API.
type Config struct {
	// Keys are the accepted API keys (ParseKeys reads HERALD_API_KEYS).
	Keys []Key
	// DefaultRegion reads phone numbers written without a country code (HERALD_DEFAULT_REGION).
	DefaultRegion string
	// MaxBody caps a request body; larger ones get 413.
	MaxBody int64
	// WaitTimeout bounds how long a write waits for its read model before answering 202.
	WaitTimeout time.Duration
	// IdempotencyTTL is how long an Idempotency-Key is remembered.
	IdempotencyTTL time.Duration
	// StatementTimeout bounds every query a request runs (segment previews included).
	StatementTimeout time.Duration
}

func (c Config) withDefaults() Config {
	if c.MaxBody == 0 {
		c.MaxBody = 1 << 20
	}
	if c.WaitTimeout == 0 {
		c.WaitTimeout = 3 * time.Second
	}
	if c.IdempotencyTTL == 0 {
		c.IdempotencyTTL = 24 * time.Hour
	}
	if c.StatementTimeout == 0 {
		c.StatementTimeout = 10 * time.Second
	}
	c.DefaultRegion = strings.ToUpper(c.DefaultRegion)
	return c
}

// Validate lists every problem; zero values stand for their defaults.
func (c Config) Validate() error {
	c = c.withDefaults()
	var errs []error
	if c.MaxBody < 1024 {
		errs = append(errs, fmt.Errorf("api: MaxBody must be ≥ 1024, got %d", c.MaxBody))
	}
	if c.WaitTimeout < 0 || c.IdempotencyTTL < 0 || c.StatementTimeout < 0 {
		errs = append(errs, errors.New("api: timeouts must be ≥ 0"))
	}
	if c.DefaultRegion != "" && projections.Country(exampleNumber(c.DefaultRegion)) == "" {
		errs = append(errs, fmt.Errorf("HERALD_DEFAULT_REGION: %q is not a region with phone numbers (use ISO 3166 alpha-2, e.g. PE)", c.DefaultRegion))
	}
	return errors.Join(errs...)
}

// API is the /v1 surface.
type API struct {
	cfg      Config
	keys     []Key
	pool     *pgxpool.Pool
	store    *store.Store
	registry *events.Registry
	users    *commands.Users
	catalog  *commands.Catalog
	log      zerolog.Logger
	now      func() time.Time

	segments  collection[Segment]
	templates collection[Template]
	campaigns collection[Campaign]
}

// New builds the API.
func New(cfg Config, s *store.Store, registry *events.Registry, log zerolog.Logger) (*API, error) {
	cfg = cfg.withDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	return &API{
		cfg:      cfg,
		keys:     cfg.Keys,
		pool:     s.Pool(),
		store:    s,
		registry: registry,
		users:    commands.NewUsers(s, registry),
		catalog:  commands.NewCatalog(s, registry),
		log:      log,
		now:      time.Now,
		segments: collection[Segment]{noun: "segment", table: "segments", columns: segmentColumns, projection: "segments",
			pool: s.Pool(), scan: scanSegment, id: func(v Segment) string { return v.ID }, version: func(v Segment) int { return v.Version }},
		templates: collection[Template]{noun: "template", table: "templates", columns: templateColumns, projection: "templates",
			pool: s.Pool(), scan: scanTemplate, id: func(v Template) string { return v.ID }, version: func(v Template) int { return v.Version }},
		campaigns: collection[Campaign]{noun: "campaign", table: "campaigns", columns: campaignColumns, projection: "campaigns",
			pool: s.Pool(), scan: scanCampaign, id: func(v Campaign) string { return v.ID }, version: func(v Campaign) int { return v.Version }},
	}, nil
}

// handlerFunc is a route's handler: it writes the answer or returns the error to answer with.
type handlerFunc func(w http.ResponseWriter, r *http.Request) error

// route is one line of the route table: the OpenAPI document and the auth test are checked
// against this table.
type route struct {
	method string
	path   string
	role   string // RoleRead or RoleAdmin; "" is public
	handle handlerFunc
	// idempotent routes honour Idempotency-Key.
	idempotent bool
}

func (a *API) routes() []route {
	return []route{
		{http.MethodGet, "/v1/openapi.json", "", a.openAPI, false},

		{http.MethodGet, "/v1/users", RoleRead, a.listUsers, false},
		{http.MethodPost, "/v1/users", RoleAdmin, a.upsertUser, true},
		{http.MethodGet, "/v1/users/{phone}", RoleRead, a.getUser, false},
		{http.MethodPatch, "/v1/users/{phone}", RoleAdmin, a.patchUser, false},
		{http.MethodDelete, "/v1/users/{phone}", RoleAdmin, a.deleteUser, false},
		{http.MethodPut, "/v1/users/{phone}/consent", RoleAdmin, a.setConsent, false},
		{http.MethodPut, "/v1/users/{phone}/subscriptions/{topic}", RoleAdmin, a.subscribe, false},
		{http.MethodDelete, "/v1/users/{phone}/subscriptions/{topic}", RoleAdmin, a.unsubscribe, false},
		{http.MethodGet, "/v1/users/{phone}/messages", RoleRead, a.userMessages, false},

		{http.MethodGet, "/v1/segments", RoleRead, a.listSegments, false},
		{http.MethodPost, "/v1/segments", RoleAdmin, a.createSegment, true},
		{http.MethodPost, "/v1/segments/preview", RoleRead, a.previewRule, false},
		{http.MethodGet, "/v1/segments/{id}", RoleRead, a.getSegment, false},
		{http.MethodPut, "/v1/segments/{id}", RoleAdmin, a.replaceSegment, false},
		{http.MethodDelete, "/v1/segments/{id}", RoleAdmin, a.segments.remove(a, a.catalog.DeleteSegment), false},
		{http.MethodPost, "/v1/segments/{id}/preview", RoleRead, a.previewSegment, false},

		{http.MethodGet, "/v1/templates", RoleRead, a.listTemplates, false},
		{http.MethodPost, "/v1/templates", RoleAdmin, a.createTemplate, true},
		{http.MethodPost, "/v1/templates/preview", RoleRead, a.previewDraft, false},
		{http.MethodGet, "/v1/templates/{id}", RoleRead, a.getTemplate, false},
		{http.MethodPut, "/v1/templates/{id}", RoleAdmin, a.replaceTemplate, false},
		{http.MethodDelete, "/v1/templates/{id}", RoleAdmin, a.templates.remove(a, a.catalog.DeleteTemplate), false},
		{http.MethodPost, "/v1/templates/{id}/preview", RoleRead, a.previewTemplate, false},

		{http.MethodGet, "/v1/campaigns", RoleRead, a.listCampaigns, false},
		{http.MethodPost, "/v1/campaigns", RoleAdmin, a.createCampaign, true},
		{http.MethodGet, "/v1/campaigns/{id}", RoleRead, a.getCampaign, false},
		{http.MethodPut, "/v1/campaigns/{id}", RoleAdmin, a.replaceCampaign, false},
		{http.MethodDelete, "/v1/campaigns/{id}", RoleAdmin, a.campaigns.remove(a, a.catalog.DeleteCampaign), false},
		{http.MethodPost, "/v1/campaigns/{id}/preview", RoleRead, a.previewCampaign, false},
		{http.MethodPost, "/v1/campaigns/{id}/launch", RoleAdmin, a.campaignAction(actionLaunch), true},
		{http.MethodPost, "/v1/campaigns/{id}/pause", RoleAdmin, a.campaignAction(actionPause), true},
		{http.MethodPost, "/v1/campaigns/{id}/resume", RoleAdmin, a.campaignAction(actionResume), true},
		{http.MethodPost, "/v1/campaigns/{id}/cancel", RoleAdmin, a.campaignAction(actionCancel), true},
		{http.MethodPost, "/v1/campaigns/{id}/schedule", RoleAdmin, a.scheduleCampaign, true},
		{http.MethodGet, "/v1/campaigns/{id}/messages", RoleRead, a.campaignMessages, false},
		{http.MethodGet, "/v1/campaigns/{id}/stats", RoleRead, a.campaignStats, false},
		{http.MethodGet, "/v1/campaigns/{id}/timeline", RoleRead, a.campaignTimeline, false},
		{http.MethodGet, "/v1/messages/{id}", RoleRead, a.getMessage, false},
		{http.MethodGet, "/v1/stats", RoleRead, a.globalStats, false},
		{http.MethodGet, "/v1/inbound", RoleRead, a.listInbound, false},
		{http.MethodPost, "/v1/conversations/{phone}/messages", RoleAdmin, a.replyToUser, true},

		{http.MethodGet, "/v1/events", RoleAdmin, a.listEvents, false},

		{http.MethodGet, "/v1/imports", RoleRead, a.listImports, false},
		{http.MethodPost, "/v1/imports", RoleAdmin, a.createImport, false},
		{http.MethodGet, "/v1/imports/{id}", RoleRead, a.getImport, false},
		{http.MethodGet, "/v1/imports/{id}/rejections.csv", RoleRead, a.importRejections, false},
		{http.MethodPost, "/v1/triggers", RoleAdmin, a.postTriggers, false},
	}
}

// Register mounts every route on r. Unknown /v1 paths and wrong methods answer with problems.
func (a *API) Register(r *mux.Router) {
	sub := r.PathPrefix("/v1").Subrouter()
	allowed := map[string][]string{}
	var paths []string
	for _, rt := range a.routes() {
		h := a.serve(rt)
		if rt.idempotent {
			h = a.idempotency(h)
		}
		var handler http.Handler = h
		if rt.role != "" {
			handler = a.authorize(rt.role, handler)
		}
		path := strings.TrimPrefix(rt.path, "/v1")
		sub.Handle(path, handler).Methods(rt.method)
		if allowed[path] == nil {
			paths = append(paths, path)
		}
		allowed[path] = append(allowed[path], rt.method)
	}
	// A known path with another method: 405 with Allow (after every method-specific route).
	for _, path := range paths {
		allow := strings.Join(allowed[path], ", ")
		sub.Handle(path, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Allow", allow)
			writeProblem(w, r, Problem{Status: http.StatusMethodNotAllowed, Detail: "this route allows " + allow})
		}))
	}
	sub.NotFoundHandler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		writeProblem(w, r, Problem{Status: http.StatusNotFound, Detail: "no such route; see /v1/openapi.json"})
	})
}

// serve runs a handler with the statement timeout and maps its error to a problem.
func (a *API) serve(rt route) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		ctx, cancel := context.WithTimeout(r.Context(), a.cfg.StatementTimeout)
		defer cancel()
		if err := rt.handle(w, r.WithContext(ctx)); err != nil {
			a.writeError(w, r, err)
		}
	}
}

// writeError maps an error to its problem. Anything unexpected is a 500 whose detail stays in
// the log.
func (a *API) writeError(w http.ResponseWriter, r *http.Request, err error) {
	var (
		pe    *problemError
		phone *commands.PhoneError
		state *commands.StateError
	)
	switch {
	case errors.As(err, &pe):
		writeProblem(w, r, Problem{Status: pe.status, Detail: pe.detail, Errors: pe.fields})
	case errors.As(err, &phone):
		writeProblem(w, r, Problem{Status: http.StatusUnprocessableEntity, Detail: "the request is not valid",
			Errors: []FieldError{{Field: "phone", Reason: phone.Reason}}})
	case errors.Is(err, commands.ErrNotFound):
		writeProblem(w, r, Problem{Status: http.StatusNotFound, Detail: "not found"})
	case errors.Is(err, commands.ErrExists):
		writeProblem(w, r, Problem{Status: http.StatusConflict, Detail: err.Error()})
	case errors.As(err, &state):
		writeProblem(w, r, Problem{Status: http.StatusConflict, Detail: state.Error()})
	case errors.Is(err, store.ErrConcurrency):
		writeProblem(w, r, Problem{Status: http.StatusConflict,
			Detail: "the resource changed since the version in If-Match; fetch it again", Errors: []FieldError{{Field: "If-Match", Reason: "is stale"}}})
	case errors.Is(err, commands.ErrContended):
		w.Header().Set("Retry-After", "1")
		writeProblem(w, r, Problem{Status: http.StatusServiceUnavailable, Detail: "too many concurrent writes to this resource; retry"})
	case errors.Is(err, context.DeadlineExceeded):
		writeProblem(w, r, Problem{Status: http.StatusServiceUnavailable, Detail: "the request took too long"})
	default:
		zerolog.Ctx(r.Context()).Error().Err(err).Str("path", r.URL.Path).Msg("api request failed")
		writeProblem(w, r, Problem{Status: http.StatusInternalServerError, Detail: "internal error; the log has the details"})
	}
}

// ifMatch reads If-Match as the expected stream version (store.AnyVersion when absent). ETags
// are the read model's version in quotes.
func ifMatch(r *http.Request) (int, error) {
	h := strings.TrimSpace(r.Header.Get("If-Match"))
	if h == "" || h == "*" {
		return store.AnyVersion, nil
	}
	v, err := strconv.Atoi(strings.Trim(strings.TrimPrefix(h, "W/"), `"`))
	if err != nil || v < 0 {
		return 0, badRequest("If-Match", `must be an ETag this API returned, like "3"`)
	}
	return v, nil
}

func setETag(w http.ResponseWriter, version int) {
	w.Header().Set("ETag", `"`+strconv.Itoa(version)+`"`)
}

// metadata is what every event a request causes carries: who and through what.
func metadata(r *http.Request) events.Metadata {
	return events.Metadata{
		CorrelationID: events.CorrelationID(r.Context()),
		Actor:         principalFrom(r.Context()).KeyID,
		Source:        "api",
	}
}

// applied waits until the projections have applied a write. It returns false when WaitTimeout
// passed first: the write is durable, the read model just has not caught up.
func (a *API) applied(ctx context.Context, written commands.Written, projectionNames ...string) (bool, error) {
	if written.Checkpoint == (store.Checkpoint{}) {
		return true, nil // nothing was written
	}
	ctx, cancel := context.WithTimeout(ctx, a.cfg.WaitTimeout)
	defer cancel()
	for _, name := range projectionNames {
		if err := projections.WaitFor(ctx, a.pool, name, written.Checkpoint); err != nil {
			if errors.Is(err, context.DeadlineExceeded) && ctx.Err() != nil {
				return false, nil
			}
			return false, err
		}
	}
	return true, nil
}

// answerNoContent answers 204 once the projections no longer show what the command removed,
// or 202.
func (a *API) answerNoContent(w http.ResponseWriter, r *http.Request, written commands.Written, projectionNames ...string) error {
	ok, err := a.applied(r.Context(), written, projectionNames...)
	if err != nil {
		return err
	}
	if !ok {
		return accepted(w, r, "", "", written)
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

// accepted answers 202: the command is stored, its read model will show it shortly. id (if
// any) names the resource written, as its Location does: a client that created one learns
// the new id from either.
func accepted(w http.ResponseWriter, r *http.Request, location, id string, written commands.Written) error {
	if location != "" {
		w.Header().Set("Location", location)
	}
	setETag(w, written.Version)
	body := map[string]any{
		"status":   "accepted",
		"detail":   "stored; the read model has not applied it yet",
		"position": fmt.Sprintf("%d:%d", written.Checkpoint.TxID, written.Checkpoint.Position),
		"version":  written.Version,
	}
	if id != "" {
		body["id"] = id
	}
	writeJSON(w, http.StatusAccepted, body)
	return nil
}

func itoa(n int) string { return strconv.Itoa(n) }

//go:embed openapi.json
var openAPIDocument []byte

func (a *API) openAPI(w http.ResponseWriter, _ *http.Request) error {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "public, max-age=300")
	_, err := w.Write(openAPIDocument)
	return err
}
