package twiliosim

import (
	"context"
	"crypto/subtle"
	"encoding/json"
	"fmt"
	"math"
	"net/http"
	"net/url"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"time"
)

// APIVersion is the only version of the Messages API there is.
const APIVersion = "2010-04-01"

const apiPrefix = "/" + APIVersion + "/Accounts/"

// Message is the simulator's record of one message, outbound (created through the API) or
// inbound (injected).
type Message struct {
	SID                 string `json:"sid"`
	AccountSID          string `json:"account_sid"`
	MessagingServiceSID string `json:"messaging_service_sid,omitempty"`
	// Direction is outbound-api or inbound.
	Direction string `json:"direction"`
	// From and To are kept exactly as given (whatsapp:+E164 or +E164).
	From             string   `json:"from"`
	To               string   `json:"to"`
	Body             string   `json:"body"`
	ContentSID       string   `json:"content_sid,omitempty"`
	ContentVariables string   `json:"content_variables,omitempty"`
	MediaURLs        []string `json:"media_urls,omitempty"`
	StatusCallback   string   `json:"status_callback,omitempty"`
	// Status is the current status: accepted/queued → sent → delivered → read, or failed /
	// undelivered; received for inbound.
	Status       string    `json:"status"`
	ErrorCode    int       `json:"error_code,omitempty"`
	ErrorMessage string    `json:"error_message,omitempty"`
	DateCreated  time.Time `json:"date_created"`
	// DateSent is zero until the message is sent (or fails), as with Twilio: a queued
	// message matches no DateSent filter.
	DateSent    time.Time `json:"date_sent"`
	DateUpdated time.Time `json:"date_updated"`
	// Stalled: the create's HTTP response was held (accept-then-stall).
	Stalled bool `json:"stalled,omitempty"`
	// History lists every status the message had, in order.
	History []StatusChange `json:"history"`
}

// StatusChange is one step of a message's lifecycle.
type StatusChange struct {
	Status    string    `json:"status"`
	ErrorCode int       `json:"error_code,omitempty"`
	At        time.Time `json:"at"`
}

func (m *Message) clone() Message {
	c := *m
	c.MediaURLs = append([]string(nil), m.MediaURLs...)
	c.History = append([]StatusChange(nil), m.History...)
	return c
}

// resource is Twilio's Message resource JSON.
type resource struct {
	AccountSID          string            `json:"account_sid"`
	APIVersion          string            `json:"api_version"`
	Body                string            `json:"body"`
	DateCreated         string            `json:"date_created"`
	DateSent            *string           `json:"date_sent"`
	DateUpdated         string            `json:"date_updated"`
	Direction           string            `json:"direction"`
	ErrorCode           *int              `json:"error_code"`
	ErrorMessage        *string           `json:"error_message"`
	From                *string           `json:"from"`
	MessagingServiceSID *string           `json:"messaging_service_sid"`
	NumMedia            string            `json:"num_media"`
	NumSegments         string            `json:"num_segments"`
	Price               *string           `json:"price"`
	PriceUnit           string            `json:"price_unit"`
	SID                 string            `json:"sid"`
	Status              string            `json:"status"`
	SubresourceURIs     map[string]string `json:"subresource_uris"`
	To                  string            `json:"to"`
	URI                 string            `json:"uri"`
}

// TwilioTime formats t as Twilio's Message resource does (RFC 2822, GMT):
// "Thu, 24 Aug 2023 05:01:45 +0000".
func TwilioTime(t time.Time) string { return t.UTC().Format(time.RFC1123Z) }

func (m *Message) resource() resource {
	base := apiPrefix + m.AccountSID + "/Messages/" + m.SID
	r := resource{
		AccountSID: m.AccountSID, APIVersion: APIVersion, Body: m.Body,
		DateCreated: TwilioTime(m.DateCreated), DateUpdated: TwilioTime(m.DateUpdated),
		Direction: m.Direction, NumMedia: strconv.Itoa(len(m.MediaURLs)), NumSegments: "1",
		PriceUnit: "USD", SID: m.SID, Status: m.Status, To: m.To, URI: base + ".json",
		SubresourceURIs: map[string]string{"media": base + "/Media.json", "feedback": base + "/Feedback.json"},
	}
	if !m.DateSent.IsZero() {
		d := TwilioTime(m.DateSent)
		r.DateSent = &d
	}
	if m.ErrorCode != 0 {
		code, msg := m.ErrorCode, m.ErrorMessage
		r.ErrorCode, r.ErrorMessage = &code, &msg
	}
	if m.From != "" {
		from := m.From
		r.From = &from
	}
	if m.MessagingServiceSID != "" {
		ms := m.MessagingServiceSID
		r.MessagingServiceSID = &ms
	}
	return r
}

// apiError is a Twilio error answer.
type apiError struct {
	Status  int
	Code    int
	Message string
}

// errorBody is Twilio's error JSON; twilio-go decodes it into *client.TwilioRestError.
type errorBody struct {
	Code     int    `json:"code"`
	Message  string `json:"message"`
	MoreInfo string `json:"more_info"`
	Status   int    `json:"status"`
}

// MoreInfo is Twilio's documentation page for an error code.
func MoreInfo(code int) string { return fmt.Sprintf("https://www.twilio.com/docs/errors/%d", code) }

func badRequest(code int, format string, args ...any) *apiError {
	return &apiError{Status: http.StatusBadRequest, Code: code, Message: fmt.Sprintf(format, args...)}
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false)
	_ = enc.Encode(v) // the client went away
}

func (s *Server) routes() *http.ServeMux {
	mux := http.NewServeMux()
	mux.HandleFunc("POST "+apiPrefix+"{account}/Messages.json", s.handleCreate)
	mux.HandleFunc("GET "+apiPrefix+"{account}/Messages.json", s.handleList)
	mux.HandleFunc("GET "+apiPrefix+"{account}/Messages/{sid}", s.handleFetch)
	mux.HandleFunc("/"+APIVersion+"/", s.handleUnknown)
	mux.HandleFunc("POST /sim/inbound", s.handleInbound)
	mux.HandleFunc("GET /sim/requests", func(w http.ResponseWriter, _ *http.Request) {
		writeJSON(w, http.StatusOK, s.Requests())
	})
	mux.HandleFunc("GET /sim/messages", func(w http.ResponseWriter, _ *http.Request) {
		writeJSON(w, http.StatusOK, s.Messages())
	})
	mux.HandleFunc("GET /sim/creates", s.handleCreates)
	mux.HandleFunc("GET /sim/callbacks", func(w http.ResponseWriter, _ *http.Request) {
		writeJSON(w, http.StatusOK, s.Callbacks())
	})
	mux.HandleFunc("GET /sim/config", func(w http.ResponseWriter, _ *http.Request) {
		writeJSON(w, http.StatusOK, s.Settings())
	})
	mux.HandleFunc("POST /sim/config", s.handleConfig)
	mux.HandleFunc("POST /sim/faults", s.handleFaults)
	mux.HandleFunc("POST /sim/reset", func(w http.ResponseWriter, _ *http.Request) {
		s.Reset()
		w.WriteHeader(http.StatusNoContent)
	})
	mux.HandleFunc("GET /sim/healthz", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		_, _ = w.Write([]byte("ok\n"))
	})
	return mux
}

// begin records an API request (its form parsed for a POST) before anything else happens.
func (s *Server) begin(w http.ResponseWriter, r *http.Request) (*RecordedRequest, *apiError) {
	rec := &RecordedRequest{Method: r.Method, Path: r.URL.Path, Query: r.URL.Query()}
	rec.Username, _, _ = r.BasicAuth()
	var perr *apiError
	if r.Method == http.MethodPost {
		r.Body = http.MaxBytesReader(w, r.Body, maxRequestBody)
		if err := r.ParseForm(); err != nil {
			perr = badRequest(20001, "Unable to parse the request body: %v", err)
		}
		rec.Form = cloneValues(r.PostForm)
	}
	if len(rec.Query) == 0 {
		rec.Query = nil
	}
	s.mu.Lock()
	s.seq++
	rec.Seq = s.seq
	rec.Time = s.cfg.Now().UTC()
	s.requests = append(s.requests, rec)
	s.mu.Unlock()
	return rec, perr
}

// answer writes v with status and completes the record.
func (s *Server) answer(w http.ResponseWriter, rec *RecordedRequest, status int, v any) {
	s.mu.Lock()
	rec.Status = status
	s.mu.Unlock()
	writeJSON(w, status, v)
}

// fail writes Twilio's error body and completes the record.
func (s *Server) fail(w http.ResponseWriter, rec *RecordedRequest, e *apiError) {
	s.mu.Lock()
	rec.Status, rec.ErrorCode = e.Status, e.Code
	s.mu.Unlock()
	writeJSON(w, e.Status, errorBody{Code: e.Code, Message: e.Message, MoreInfo: MoreInfo(e.Code), Status: e.Status})
}

// authenticate checks Basic auth against the configured account SID and token.
func (s *Server) authenticate(w http.ResponseWriter, r *http.Request) *apiError {
	user, pass, ok := r.BasicAuth()
	if !ok || subtle.ConstantTimeCompare([]byte(user), []byte(s.initial.AccountSID)) != 1 ||
		subtle.ConstantTimeCompare([]byte(pass), []byte(s.initial.AuthToken)) != 1 {
		w.Header().Set("WWW-Authenticate", `Basic realm="Twilio API"`)
		return &apiError{Status: http.StatusUnauthorized, Code: CodeAuthenticationFailed, Message: "Authenticate"}
	}
	return nil
}

// authorize checks Basic auth and the account in the path.
func (s *Server) authorize(w http.ResponseWriter, r *http.Request) *apiError {
	if e := s.authenticate(w, r); e != nil {
		return e
	}
	if r.PathValue("account") != s.initial.AccountSID {
		return notFound(r.URL.Path)
	}
	return nil
}

func notFound(path string) *apiError {
	return &apiError{Status: http.StatusNotFound, Code: CodeNotFound,
		Message: fmt.Sprintf("The requested resource %s was not found", path)}
}

// messagePathRe matches the Messages API paths the simulator serves (with any method).
var messagePathRe = regexp.MustCompile(`^/2010-04-01/Accounts/[^/]+/Messages(/[^/]+)?\.json$`)

// handleUnknown answers what no route matched: 401 without valid credentials, 405 for a
// served path with another method (e.g. a message update), 404 otherwise.
func (s *Server) handleUnknown(w http.ResponseWriter, r *http.Request) {
	rec, _ := s.begin(w, r)
	if e := s.authenticate(w, r); e != nil {
		s.fail(w, rec, e)
		return
	}
	if messagePathRe.MatchString(r.URL.Path) {
		s.fail(w, rec, &apiError{Status: http.StatusMethodNotAllowed, Code: 20004, Message: "Method not allowed"})
		return
	}
	s.fail(w, rec, notFound(r.URL.Path))
}

func (s *Server) handleFetch(w http.ResponseWriter, r *http.Request) {
	rec, _ := s.begin(w, r)
	if e := s.authorize(w, r); e != nil {
		s.fail(w, rec, e)
		return
	}
	sid, ok := strings.CutSuffix(r.PathValue("sid"), ".json")
	if !ok {
		s.fail(w, rec, notFound(r.URL.Path))
		return
	}
	s.mu.Lock()
	m, found := s.messages[sid]
	var res resource
	if found {
		res = m.resource()
		rec.MessageSID = sid
	}
	s.mu.Unlock()
	if !found {
		s.fail(w, rec, notFound(r.URL.Path))
		return
	}
	s.answer(w, rec, http.StatusOK, res)
}

// listPage is Twilio's paging envelope.
type listPage struct {
	Messages        []resource `json:"messages"`
	End             int        `json:"end"`
	FirstPageURI    string     `json:"first_page_uri"`
	NextPageURI     *string    `json:"next_page_uri"`
	Page            int        `json:"page"`
	PageSize        int        `json:"page_size"`
	PreviousPageURI *string    `json:"previous_page_uri"`
	Start           int        `json:"start"`
	URI             string     `json:"uri"`
}

// dateFilter is one DateSent bound.
type dateFilter struct {
	op string // "=", "<", ">"
	t  time.Time
	// day: the value was a date (YYYY-MM-DD) or, for "=", any time (its UTC day).
	day bool
}

func (f dateFilter) match(sent time.Time) bool {
	if sent.IsZero() {
		return false // not sent yet: matches no DateSent filter
	}
	sent = sent.UTC()
	switch f.op {
	case "=":
		y1, m1, d1 := sent.Date()
		y2, m2, d2 := f.t.Date()
		return y1 == y2 && m1 == m2 && d1 == d2
	case "<": // on or before
		if f.day {
			return sent.Before(f.t.AddDate(0, 0, 1))
		}
		return !sent.After(f.t)
	default: // ">": on or after
		return !sent.Before(f.t)
	}
}

func parseDateValue(v string) (time.Time, bool, error) {
	v = strings.TrimSpace(v)
	if t, err := time.Parse("2006-01-02", v); err == nil {
		return t, true, nil
	}
	if t, err := time.Parse(time.RFC3339, v); err == nil {
		return t.UTC(), false, nil
	}
	return time.Time{}, false, fmt.Errorf("%q is not YYYY-MM-DD or RFC 3339", v)
}

// parseDateFilters reads DateSent, DateSent< / DateSent<= (on or before) and DateSent> /
// DateSent>= (on or after). "DateSent<=2026-05-01" in Twilio's docs is, on the wire, the key
// "DateSent<" with the value "2026-05-01" (twilio-go sends exactly that key); a key that
// really ends in "<=" or ">=" is accepted too.
func parseDateFilters(q url.Values) ([]dateFilter, *apiError) {
	keys := map[string]string{
		"DateSent": "=", "DateSent<": "<", "DateSent<=": "<", "DateSent>": ">", "DateSent>=": ">",
	}
	var out []dateFilter
	for key, op := range keys {
		for _, v := range q[key] {
			t, day, err := parseDateValue(v)
			if err != nil {
				return nil, badRequest(20001, "Invalid %s: %v", key, err)
			}
			out = append(out, dateFilter{op: op, t: t, day: day || op == "="})
		}
	}
	return out, nil
}

func (s *Server) handleList(w http.ResponseWriter, r *http.Request) {
	rec, _ := s.begin(w, r)
	if e := s.authorize(w, r); e != nil {
		s.fail(w, rec, e)
		return
	}
	q := r.URL.Query()
	dates, e := parseDateFilters(q)
	if e != nil {
		s.fail(w, rec, e)
		return
	}
	pageSize := defaultPageSize
	if v := q.Get("PageSize"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 {
			s.fail(w, rec, badRequest(20001, "Invalid PageSize %q", v))
			return
		}
		pageSize = min(n, maxPageSize)
	}
	page := 0
	if v := q.Get("Page"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 0 {
			s.fail(w, rec, badRequest(20001, "Invalid Page %q", v))
			return
		}
		page = n
	}
	to, from := q.Get("To"), q.Get("From")

	s.mu.Lock()
	var matched []*Message
	for i := len(s.order) - 1; i >= 0; i-- { // newest first, as Twilio lists
		m := s.messages[s.order[i]]
		if (to != "" && m.To != to) || (from != "" && m.From != from) {
			continue
		}
		ok := true
		for _, f := range dates {
			ok = ok && f.match(m.DateSent)
		}
		if ok {
			matched = append(matched, m)
		}
	}
	// Newest first also when a test clock does not follow creation order.
	sort.SliceStable(matched, func(i, j int) bool { return matched[i].DateCreated.After(matched[j].DateCreated) })
	start := page * pageSize
	// A PageToken (PA + the SID of the previous page's last message) pins the page to where
	// the previous one ended, so messages created meanwhile do not shift it.
	if tok := q.Get("PageToken"); strings.HasPrefix(tok, "PA") {
		for i, m := range matched {
			if m.SID == tok[2:] {
				start = i + 1
				break
			}
		}
	}
	start = min(start, len(matched))
	end := min(start+pageSize, len(matched))
	res := listPage{Messages: []resource{}, Page: page, PageSize: pageSize, Start: start}
	for _, m := range matched[start:end] {
		res.Messages = append(res.Messages, m.resource())
	}
	res.End = max(end-1, start)
	filters := url.Values{}
	for _, k := range []string{"To", "From", "DateSent", "DateSent<", "DateSent<=", "DateSent>", "DateSent>="} {
		if vs, ok := q[k]; ok {
			filters[k] = vs
		}
	}
	pageURI := func(p int, token string) string {
		v := cloneValues(filters)
		v.Set("PageSize", strconv.Itoa(pageSize))
		v.Set("Page", strconv.Itoa(p))
		if token != "" {
			v.Set("PageToken", token)
		}
		return apiPrefix + s.initial.AccountSID + "/Messages.json?" + v.Encode()
	}
	res.URI = r.URL.RequestURI()
	res.FirstPageURI = pageURI(0, "")
	if end < len(matched) {
		next := pageURI(page+1, "PA"+matched[end-1].SID)
		res.NextPageURI = &next
	}
	if page > 0 {
		prev := pageURI(page-1, "")
		res.PreviousPageURI = &prev
	}
	s.mu.Unlock()
	s.answer(w, rec, http.StatusOK, res)
}

func (s *Server) handleCreate(w http.ResponseWriter, r *http.Request) {
	rec, perr := s.begin(w, r)
	if e := s.authorize(w, r); e != nil {
		s.fail(w, rec, e)
		return
	}
	if perr != nil {
		s.fail(w, rec, perr)
		return
	}
	s.mu.Lock()
	fault := s.drawFaultLocked()
	cfg := s.cfg
	s.mu.Unlock()

	if fault == FaultRateLimit {
		s.mu.Lock()
		rec.Fault = fault
		s.mu.Unlock()
		secs := int(math.Ceil(cfg.RetryAfter.Seconds()))
		w.Header().Set("Retry-After", strconv.Itoa(secs))
		s.fail(w, rec, &apiError{Status: http.StatusTooManyRequests, Code: CodeRateLimited, Message: "Too Many Requests"})
		s.log.Info().Str("to", r.PostForm.Get("To")).Msg("create answered 429 (injected)")
		return
	}
	req, e := validateCreate(r.PostForm, cfg.Sender)
	if e != nil {
		s.fail(w, rec, e)
		s.log.Info().Str("to", r.PostForm.Get("To")).Int("code", e.Code).Msg("create refused")
		return
	}
	if fault == FaultServerError {
		s.mu.Lock()
		rec.Fault = fault
		s.mu.Unlock()
		s.fail(w, rec, &apiError{Status: http.StatusInternalServerError, Code: CodeInternalError, Message: "Internal Server Error"})
		s.log.Info().Str("to", req.To).Msg("create answered 500, nothing created (injected)")
		return
	}

	res := s.store(req, cfg, rec, fault)
	s.log.Info().Str("sid", res.SID).Str("to", res.To).Str("status", res.Status).Bool("stall", fault == FaultStall).
		Msg("message created")

	if fault == FaultStall {
		s.stall(w, r, rec, res, cfg.StallDuration)
		return
	}
	s.answer(w, rec, http.StatusCreated, res)
}

// stall holds a create's response: the message exists, the client waits. The record keeps
// status 0 unless the response is eventually written.
func (s *Server) stall(w http.ResponseWriter, r *http.Request, rec *RecordedRequest, res resource, d time.Duration) {
	var timeout <-chan time.Time
	if d > 0 {
		t := time.NewTimer(d)
		defer t.Stop()
		timeout = t.C
	}
	select {
	case <-timeout:
		s.answer(w, rec, http.StatusCreated, res)
	case <-r.Context().Done():
		s.log.Info().Str("sid", res.SID).Msg("stalled create: the client gave up")
		panic(http.ErrAbortHandler) // nobody to answer; close the connection quietly
	case <-s.closing:
		panic(http.ErrAbortHandler) // hang up without an answer
	}
}

// drawFaultLocked picks the create's fault: a scripted one, an ongoing 429 burst, or random
// draws (429, then 500, then stall).
func (s *Server) drawFaultLocked() Fault {
	if len(s.faults) > 0 {
		f := s.faults[0]
		s.faults = s.faults[1:]
		if f == FaultNone {
			return ""
		}
		return f
	}
	if s.burstLeft > 0 {
		s.burstLeft--
		return FaultRateLimit
	}
	c := s.cfg
	switch {
	case s.rng.Float64() < c.RateLimit429:
		s.burstLeft = c.RateLimitBurst - 1
		return FaultRateLimit
	case s.rng.Float64() < c.ServerErrorRate:
		return FaultServerError
	case s.rng.Float64() < c.AcceptThenStallRate:
		return FaultStall
	}
	return ""
}

// store creates the message, records it on rec, draws its lifecycle and starts it. The
// resource is taken before the lifecycle can move the status on.
func (s *Server) store(req createRequest, cfg Config, rec *RecordedRequest, fault Fault) resource {
	s.mu.Lock()
	defer s.mu.Unlock()
	prefix := "SM"
	if len(req.MediaURLs) > 0 {
		prefix = "MM"
	}
	now := cfg.Now().UTC()
	status := "queued"
	if req.MessagingServiceSID != "" {
		status = "accepted"
	}
	m := &Message{
		SID: s.newSIDLocked(prefix), AccountSID: s.initial.AccountSID, MessagingServiceSID: req.MessagingServiceSID,
		Direction: "outbound-api", From: req.From, To: req.To, Body: req.Body, ContentSID: req.ContentSID,
		ContentVariables: req.ContentVariables, MediaURLs: req.MediaURLs, StatusCallback: req.StatusCallback,
		Status: status, DateCreated: now, DateUpdated: now, Stalled: fault == FaultStall,
		History: []StatusChange{{Status: status, At: now}},
	}
	s.messages[m.SID] = m
	s.order = append(s.order, m.SID)
	rec.MessageSID = m.SID
	if fault == FaultStall {
		rec.Fault = fault
	}
	res := m.resource()
	p := s.planLocked(m, cfg)
	s.goLifecycleLocked(func(ctx context.Context) { s.runLifecycle(ctx, m.SID, p) })
	return res
}
