// Package twiliosim is a Twilio simulator: a test double of Twilio at the HTTP boundary only.
// Herald's own client code (twilio-go with a transport that rewrites the host) talks to it
// exactly as it talks to https://api.twilio.com.
//
// It serves the Messages API — create, fetch, list with To/From/DateSent filters and Twilio's
// paging — behind HTTP Basic auth, validates creates as Twilio does (error bodies and codes,
// Twilio's magic test numbers), then walks every created message through its lifecycle
// (queued → sent → delivered → read, or failed / undelivered with realistic codes), posting a
// status callback signed with X-Twilio-Signature for each step to the message's
// StatusCallback. Faults are knobs: 429 bursts with Retry-After, 500s after which nothing was
// created, "accept then stall" (the message exists but the response never comes in time),
// duplicated, shuffled and dropped callbacks. It injects signed inbound WhatsApp messages into
// Herald's webhook, and records every request and callback so tests can count creates.
//
// In-process use from a test:
//
//	sim, err := twiliosim.New(twiliosim.Config{AccountSID: "ACtest", AuthToken: "secret"})
//	base, err := sim.Start(ctx, "127.0.0.1:0") // or httptest.NewServer(sim.Handler())
//	defer sim.Close()
//
// Endpoints (all under one handler):
//
//	POST /2010-04-01/Accounts/{AccountSid}/Messages.json         create (form)
//	GET  /2010-04-01/Accounts/{AccountSid}/Messages/{Sid}.json   fetch
//	GET  /2010-04-01/Accounts/{AccountSid}/Messages.json         list: To, From, DateSent, DateSent<, DateSent>, PageSize, Page, PageToken
//	POST /sim/inbound    inject an inbound message (JSON or form); answers with Herald's status and body
//	GET  /sim/requests   recorded API requests (JSON)
//	GET  /sim/messages   every message with its status history (JSON)
//	GET  /sim/creates    messages created per Herald message id and per recipient, with the ids created twice (JSON)
//	GET  /sim/callbacks  every callback and inbound delivery attempt (JSON)
//	GET  /sim/config     current fault and lifecycle settings; POST /sim/config patches them (JSON)
//	POST /sim/faults     {"faults":["rate_limit","server_error","stall","none"]}: script the next creates
//	POST /sim/reset      forget messages, requests, callbacks and scripted faults; restore the settings
//	GET  /sim/healthz    200 once serving
//
// The /sim endpoints have no authentication: the simulator is a local test double.
package twiliosim

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/rs/zerolog"
)

// Server is a running (or ready to run) simulator. It is safe for concurrent use.
type Server struct {
	initial Config // the configuration New resolved; Reset returns to it
	client  *http.Client
	log     zerolog.Logger
	mux     *http.ServeMux
	// channelInstallSID is the XE… SID of the simulated WhatsApp sender, constant per server.
	channelInstallSID string

	mu        sync.Mutex
	cfg       Config // current settings (changed by Update and Reset)
	rng       *rand.Rand
	messages  map[string]*Message
	order     []string // SIDs in creation order
	requests  []*RecordedRequest
	callbacks []RecordedCallback
	faults    []Fault // scripted faults for the next creates
	burstLeft int     // 429s still owed by the current burst
	seq       int     // request and callback sequence numbers

	// Lifecycles: every background goroutine runs under lifeCtx (cancelled by Reset and Close)
	// and is counted in wg (waited for by Close) and in lifecycles (WaitIdle).
	lifeCtx    context.Context
	lifeCancel context.CancelFunc
	lifecycles activity
	wg         sync.WaitGroup
	closed     bool

	closing   chan struct{} // closed by Close: releases stalled responses
	closeOnce sync.Once
	httpSrv   *http.Server
	serveErr  chan error
	handlers  activity // requests being answered by the server Start runs
}

// New validates cfg, applies defaults and returns a simulator. Nothing listens until Start
// (or until Handler is mounted somewhere).
func New(cfg Config) (*Server, error) {
	cfg = cfg.withDefaults()
	if err := cfg.validate(); err != nil {
		return nil, fmt.Errorf("twilio simulator: %w", err)
	}
	seed := cfg.Seed
	if seed == 0 {
		seed = time.Now().UnixNano()
	}
	log := zerolog.Nop()
	if cfg.Logger != nil {
		log = cfg.Logger.With().Str("component", "twilio-sim").Logger()
	}
	client := cfg.HTTPClient
	if client == nil {
		client = &http.Client{
			Timeout:       cfg.CallbackTimeout,
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		}
	}
	s := &Server{
		initial: cfg, cfg: cfg, client: client, log: log,
		rng:      rand.New(rand.NewPCG(uint64(seed), uint64(seed)^0x9e3779b97f4a7c15)),
		messages: map[string]*Message{},
		closing:  make(chan struct{}),
	}
	s.channelInstallSID = "XE" + s.hexID()
	s.lifeCtx, s.lifeCancel = context.WithCancel(context.Background())
	s.mux = s.routes()
	s.log.Info().Str("account_sid", cfg.AccountSID).Int64("seed", seed).Str("sender", cfg.Sender).
		Str("webhook_base_url", cfg.WebhookBaseURL).Msg("twilio simulator configured")
	return s, nil
}

// Handler serves the Messages API and the /sim endpoints.
func (s *Server) Handler() http.Handler { return s.mux }

// AccountSID is the account the simulator accepts.
func (s *Server) AccountSID() string { return s.initial.AccountSID }

// AuthToken is the token the simulator accepts and signs with.
func (s *Server) AuthToken() string { return s.initial.AuthToken }

// Start listens on addr ("127.0.0.1:0" for any free port) and serves until ctx ends or Close
// is called. It returns the base URL, e.g. "http://127.0.0.1:41234", to use as Herald's
// TWILIO_API_URL.
func (s *Server) Start(ctx context.Context, addr string) (string, error) {
	ln, err := (&net.ListenConfig{}).Listen(ctx, "tcp", addr)
	if err != nil {
		return "", fmt.Errorf("twilio simulator: listen on %s: %w", addr, err)
	}
	s.mu.Lock()
	if s.closed || s.httpSrv != nil {
		s.mu.Unlock()
		ln.Close()
		return "", errors.New("twilio simulator: already started or closed")
	}
	s.httpSrv = &http.Server{ReadHeaderTimeout: 10 * time.Second, Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.handlers.enter()
		defer s.handlers.leave()
		s.mux.ServeHTTP(w, r)
	})}
	s.serveErr = make(chan error, 1)
	srv := s.httpSrv
	s.mu.Unlock()
	go func() { s.serveErr <- srv.Serve(ln) }()
	go func() {
		select {
		case <-ctx.Done():
			s.Close()
		case <-s.closing:
		}
	}()
	base := "http://" + ln.Addr().String()
	s.log.Info().Str("url", base).Msg("twilio simulator listening")
	return base, nil
}

// Close releases stalled responses, stops the lifecycle goroutines (callbacks not yet sent
// are not sent), shuts the listener started by Start down and waits for all of it. It is
// idempotent.
func (s *Server) Close() {
	s.closeOnce.Do(func() {
		close(s.closing)
		s.mu.Lock()
		s.closed = true
		s.lifeCancel()
		srv := s.httpSrv
		s.mu.Unlock()
		if srv != nil {
			// Let requests being answered finish (stalled ones were just released), then close
			// the listener and every connection. http.Server.Shutdown would also wait up to 5 s
			// for connections a client opened but never used.
			select {
			case <-s.handlers.idle():
			case <-time.After(5 * time.Second):
			}
			_ = srv.Close()
			if err := <-s.serveErr; err != nil && !errors.Is(err, http.ErrServerClosed) {
				s.log.Error().Err(err).Msg("twilio simulator: serve")
			}
		}
		s.wg.Wait()
		s.log.Info().Msg("twilio simulator closed")
	})
}

// WaitIdle blocks until no message has lifecycle steps or callbacks outstanding (every
// callback has been delivered, retried, or given up), or ctx ends.
func (s *Server) WaitIdle(ctx context.Context) error {
	select {
	case <-s.lifecycles.idle():
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Settings returns the current fault and lifecycle settings.
func (s *Server) Settings() Settings {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.cfg.settings()
}

// Update changes settings at runtime (fault tests turn 429s or failures on and off). The
// patch is validated as a whole; on error nothing changes. Messages already created keep the
// lifecycle drawn for them.
func (s *Server) Update(p SettingsPatch) (Settings, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	next := s.cfg.apply(p)
	next.WebhookBaseURL = strings.TrimRight(next.WebhookBaseURL, "/")
	next.DeliveryBaseURL = strings.TrimRight(next.DeliveryBaseURL, "/")
	if err := next.validate(); err != nil {
		return s.cfg.settings(), err
	}
	s.cfg = next
	s.log.Info().Interface("settings", next.settings()).Msg("settings changed")
	return next.settings(), nil
}

// Fault scripts the outcome of one future create (QueueFaults, POST /sim/faults).
type Fault string

// Scriptable faults.
const (
	// FaultNone: the create is handled normally (no random fault drawn either).
	FaultNone Fault = "none"
	// FaultRateLimit: 429, code 20429, Retry-After; nothing created.
	FaultRateLimit Fault = "rate_limit"
	// FaultServerError: 500, code 20500; nothing created.
	FaultServerError Fault = "server_error"
	// FaultStall: created (lifecycle runs), response held as with AcceptThenStallRate.
	FaultStall Fault = "stall"
)

func (f Fault) valid() bool {
	switch f {
	case FaultNone, FaultRateLimit, FaultServerError, FaultStall:
		return true
	}
	return false
}

// QueueFaults scripts the next creates, one fault each, in order; they take precedence over
// the random rates. A scripted fault is consumed by the next create that passes
// authentication, whether or not its form is valid.
func (s *Server) QueueFaults(faults ...Fault) error {
	for _, f := range faults {
		if !f.valid() {
			return fmt.Errorf("twilio simulator: unknown fault %q (none, rate_limit, server_error, stall)", f)
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.faults = append(s.faults, faults...)
	return nil
}

// Reset forgets every message, request, callback and scripted fault, cancels the lifecycles
// in flight (their remaining callbacks are not sent) and restores the settings New started
// with. The random source is not reseeded.
func (s *Server) Reset() {
	s.mu.Lock()
	s.lifeCancel()
	if !s.closed {
		s.lifeCtx, s.lifeCancel = context.WithCancel(context.Background())
	}
	s.cfg = s.initial
	s.messages = map[string]*Message{}
	s.order = nil
	s.requests = nil
	s.callbacks = nil
	s.faults = nil
	s.burstLeft = 0
	s.mu.Unlock()
	s.log.Info().Msg("reset")
}

// RecordedRequest is one request to the Messages API, as received and as answered.
type RecordedRequest struct {
	// Seq orders requests and callbacks (RecordedCallback.Seq) together, by arrival.
	Seq    int        `json:"seq"`
	Time   time.Time  `json:"time"`
	Method string     `json:"method"`
	Path   string     `json:"path"`
	Query  url.Values `json:"query,omitempty"`
	Form   url.Values `json:"form,omitempty"` // POST body
	// Username is the Basic-auth user ("" when there was none).
	Username string `json:"username,omitempty"`
	// Status is the HTTP status answered; 0 while a stalled response is held, or when the
	// client went away before it was answered.
	Status int `json:"status"`
	// ErrorCode is the Twilio error code of an error answer.
	ErrorCode int `json:"error_code,omitempty"`
	// MessageSID is the message created or fetched.
	MessageSID string `json:"message_sid,omitempty"`
	// Fault is the injected fault: rate_limit, server_error, stall ("" for none).
	Fault Fault `json:"fault,omitempty"`
}

// IsCreate reports whether the request was a message create (whatever its outcome).
func (r RecordedRequest) IsCreate() bool {
	return r.Method == http.MethodPost && strings.HasSuffix(r.Path, "/Messages.json")
}

// Requests returns every Messages API request received so far, oldest first.
func (s *Server) Requests() []RecordedRequest {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]RecordedRequest, len(s.requests))
	for i, r := range s.requests {
		out[i] = r.clone()
	}
	return out
}

// Creates returns every create request whose To is the number to (with or without the
// whatsapp: prefix; "" for all), whatever its outcome.
func (s *Server) Creates(to string) []RecordedRequest {
	var out []RecordedRequest
	for _, r := range s.Requests() {
		if r.IsCreate() && (to == "" || sameNumber(r.Form.Get("To"), to)) {
			out = append(out, r)
		}
	}
	return out
}

// CreatesFor counts create requests to the number to (with or without the whatsapp:
// prefix), whatever their outcome: a test of "no double sends" expects exactly one per
// message (plus the retries it allows).
func (s *Server) CreatesFor(to string) int { return len(s.Creates(to)) }

// CreatesForMessage counts create requests whose StatusCallback carries Herald's
// message_id=id query parameter, whatever their outcome.
func (s *Server) CreatesForMessage(id string) int {
	n := 0
	for _, r := range s.Creates("") {
		if u, err := url.Parse(r.Form.Get("StatusCallback")); err == nil && u.Query().Get("message_id") == id {
			n++
		}
	}
	return n
}

// Messages returns every message (outbound created through the API and inbound injected),
// in creation order, with their current status.
func (s *Server) Messages() []Message {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]Message, 0, len(s.order))
	for _, sid := range s.order {
		if m, ok := s.messages[sid]; ok {
			out = append(out, m.clone())
		}
	}
	return out
}

// Message returns one message by SID.
func (s *Server) Message(sid string) (Message, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	m, ok := s.messages[sid]
	if !ok {
		return Message{}, false
	}
	return m.clone(), true
}

// RecordedCallback is one attempt to deliver a status callback or an inbound webhook to
// Herald.
type RecordedCallback struct {
	// Seq orders callbacks and requests (RecordedRequest.Seq) together.
	Seq  int       `json:"seq"`
	Time time.Time `json:"time"`
	// Kind is "status" or "inbound".
	Kind       string `json:"kind"`
	MessageSID string `json:"message_sid"`
	// Status is the MessageStatus sent ("received" for inbound).
	Status    string `json:"status"`
	ErrorCode int    `json:"error_code,omitempty"`
	// URL is the URL that was signed (the StatusCallback without its fragment); Target is
	// where the request went (different only with DeliveryBaseURL).
	URL       string     `json:"url"`
	Target    string     `json:"target"`
	Form      url.Values `json:"form"`
	Signature string     `json:"signature"`
	// IdempotencyToken is the I-Twilio-Idempotency-Token header: the same on retries and
	// duplicates of one event.
	IdempotencyToken string `json:"idempotency_token,omitempty"`
	// Attempt is 1 for the first try, 2… for retries.
	Attempt int `json:"attempt"`
	// Duplicate marks the second delivery of a callback (DuplicateRate).
	Duplicate bool `json:"duplicate,omitempty"`
	// ResponseStatus is Herald's answer (0 if none); Err the transport error, if any.
	ResponseStatus int    `json:"response_status"`
	ResponseBody   string `json:"response_body,omitempty"`
	Err            string `json:"error,omitempty"`
}

// Callbacks returns every callback and inbound delivery attempt so far, oldest first.
func (s *Server) Callbacks() []RecordedCallback {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]RecordedCallback, len(s.callbacks))
	for i, c := range s.callbacks {
		c.Form = cloneValues(c.Form)
		out[i] = c
	}
	return out
}

func (r *RecordedRequest) clone() RecordedRequest {
	c := *r
	c.Query = cloneValues(r.Query)
	c.Form = cloneValues(r.Form)
	return c
}

func cloneValues(v url.Values) url.Values {
	if v == nil {
		return nil
	}
	out := make(url.Values, len(v))
	for k, vs := range v {
		out[k] = append([]string(nil), vs...)
	}
	return out
}

// hexID returns 32 random lowercase hex digits from the seeded source.
func (s *Server) hexID() string {
	var b [16]byte
	for i := 0; i < len(b); i += 8 {
		v := s.rng.Uint64()
		for j := 0; j < 8; j++ {
			b[i+j] = byte(v >> (8 * j))
		}
	}
	return hex.EncodeToString(b[:])
}

// newSIDLocked returns an unused message SID with prefix (SM, or MM with media).
func (s *Server) newSIDLocked(prefix string) string {
	for {
		sid := prefix + s.hexID()
		if _, taken := s.messages[sid]; !taken {
			return sid
		}
	}
}

// goLifecycleLocked runs f in a goroutine that Close and WaitIdle wait for, unless the
// server is closed. Called with s.mu held.
func (s *Server) goLifecycleLocked(f func(ctx context.Context)) {
	if s.closed {
		return
	}
	ctx := s.lifeCtx
	s.wg.Add(1)
	s.lifecycles.enter()
	go func() {
		defer s.wg.Done()
		defer s.lifecycles.leave()
		f(ctx)
	}()
}

// sleep waits d or until ctx ends (false).
func sleep(ctx context.Context, d time.Duration) bool {
	if d <= 0 {
		return ctx.Err() == nil
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}

// activity counts things in progress and says when there are none.
type activity struct {
	mu   sync.Mutex
	n    int
	zero chan struct{} // closed when n drops to 0
}

func (a *activity) enter() {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.n == 0 {
		a.zero = make(chan struct{})
	}
	a.n++
}

func (a *activity) leave() {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.n--
	if a.n == 0 {
		close(a.zero)
	}
}

// idle returns a channel closed once nothing is in progress.
func (a *activity) idle() <-chan struct{} {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.n == 0 {
		c := make(chan struct{})
		close(c)
		return c
	}
	return a.zero
}
