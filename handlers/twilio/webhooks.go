package twilio

import (
	"context"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/gorilla/mux"
	"github.com/rs/zerolog"

	"herald/commands"
	"herald/events"
)

// Paths Twilio posts to.
const (
	InboundPath = "/webhooks/twilio/inbound"
	StatusPath  = "/webhooks/twilio/status"
)

// Config configures the webhooks.
type Config struct {
	// PublicBaseURL is the URL Twilio calls (scheme, host, optional port and path prefix). The
	// signature is checked against it plus the request's path and query, never the Host header,
	// so Herald can sit behind a proxy.
	PublicBaseURL string
	// AuthToken is the account's primary auth token (TWILIO_AUTH_TOKEN).
	AuthToken string
	// MaxBody caps a webhook body; larger requests get 413 before any parsing.
	MaxBody int64
	// Timeout bounds the work behind one webhook, well inside Twilio's 15 s.
	Timeout time.Duration
}

// DefaultMaxBody is the body cap: Twilio's largest messaging webhooks are a few KiB.
const DefaultMaxBody = 64 << 10

func (c Config) withDefaults() Config {
	if c.MaxBody == 0 {
		c.MaxBody = DefaultMaxBody
	}
	if c.Timeout == 0 {
		c.Timeout = 10 * time.Second
	}
	c.PublicBaseURL = strings.TrimRight(c.PublicBaseURL, "/")
	return c
}

// Validate lists every problem.
func (c Config) Validate() error {
	var errs []error
	if u, err := url.Parse(c.PublicBaseURL); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		errs = append(errs, fmt.Errorf("PUBLIC_BASE_URL: %q is not an absolute http(s) URL", c.PublicBaseURL))
	}
	if c.AuthToken == "" {
		errs = append(errs, errors.New("TWILIO_AUTH_TOKEN: required to verify webhook signatures"))
	}
	if c.MaxBody < 1024 {
		errs = append(errs, fmt.Errorf("twilio webhooks: MaxBody must be ≥ 1024, got %d", c.MaxBody))
	}
	return errors.Join(errs...)
}

// Webhooks serves Twilio's inbound and status webhooks.
type Webhooks struct {
	cfg      Config
	verifier *Verifier
	inbound  *commands.ReceiveInboundHandler
	status   *commands.RecordStatusHandler
	now      func() time.Time
	metrics  *Metrics
}

// New builds the webhooks.
func New(cfg Config, inbound *commands.ReceiveInboundHandler, status *commands.RecordStatusHandler, m *Metrics) (*Webhooks, error) {
	cfg = cfg.withDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if m == nil {
		m, _ = NewMetrics(nil)
	}
	return &Webhooks{cfg: cfg, verifier: NewVerifier(cfg.AuthToken), inbound: inbound, status: status,
		now: time.Now, metrics: m}, nil
}

// Register adds the webhook routes.
func (w *Webhooks) Register(r *mux.Router) {
	r.HandleFunc(InboundPath, w.handleInbound).Methods(http.MethodPost)
	r.HandleFunc(StatusPath, w.handleStatus).Methods(http.MethodPost)
}

// webhookError is a refusal with its HTTP status.
type webhookError struct {
	status int
	reason string
}

func (e *webhookError) Error() string { return e.reason }

func refuse(status int, format string, args ...any) error {
	return &webhookError{status: status, reason: fmt.Sprintf(format, args...)}
}

// readSigned enforces the body cap and content type, parses the form and checks the
// signature over the exact raw body. Nothing is stored for a request that fails here.
func (w *Webhooks) readSigned(r *http.Request) (url.Values, error) {
	if r.ContentLength > w.cfg.MaxBody {
		return nil, refuse(http.StatusRequestEntityTooLarge, "body of %d bytes is over the %d byte limit", r.ContentLength, w.cfg.MaxBody)
	}
	mediaType, _, err := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if err != nil || mediaType != "application/x-www-form-urlencoded" {
		return nil, refuse(http.StatusUnsupportedMediaType, "Content-Type must be application/x-www-form-urlencoded, got %q", r.Header.Get("Content-Type"))
	}
	raw, err := io.ReadAll(http.MaxBytesReader(nil, r.Body, w.cfg.MaxBody))
	if err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			return nil, refuse(http.StatusRequestEntityTooLarge, "body is over the %d byte limit", w.cfg.MaxBody)
		}
		return nil, refuse(http.StatusBadRequest, "reading body: %v", err)
	}
	form, err := url.ParseQuery(string(raw))
	if err != nil {
		return nil, refuse(http.StatusBadRequest, "malformed form body: %v", err)
	}
	fullURL := w.cfg.PublicBaseURL + r.URL.RequestURI()
	if !w.verifier.VerifyForm(fullURL, raw, form, r.Header.Get(SignatureHeader)) {
		return nil, refuse(http.StatusForbidden, "missing or invalid %s", SignatureHeader)
	}
	return form, nil
}

func (w *Webhooks) handleInbound(rw http.ResponseWriter, r *http.Request) {
	start := w.now()
	form, err := w.readSigned(r)
	if err != nil {
		w.fail(rw, r, "inbound", err)
		return
	}
	msg, err := ParseInbound(form, start)
	if err != nil {
		w.fail(rw, r, "inbound", refuse(http.StatusBadRequest, "%v", err))
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), w.cfg.Timeout)
	defer cancel()
	res, err := w.inbound.Handle(ctx, commands.ReceiveInbound{Message: msg, Metadata: metadata(r, "twilio-inbound")})
	if err != nil {
		w.fail(rw, r, "inbound", err)
		return
	}
	w.metrics.observe("inbound", http.StatusOK, res.Duplicate, w.now().Sub(start))
	writeTwiML(rw, res.Reply)
}

func (w *Webhooks) handleStatus(rw http.ResponseWriter, r *http.Request) {
	start := w.now()
	form, err := w.readSigned(r)
	if err != nil {
		w.fail(rw, r, "status", err)
		return
	}
	st, err := ParseStatus(form, r.URL.Query(), r.Header.Get("I-Twilio-Idempotency-Token"), start)
	if err != nil {
		w.fail(rw, r, "status", refuse(http.StatusBadRequest, "%v", err))
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), w.cfg.Timeout)
	defer cancel()
	res, err := w.status.Handle(ctx, commands.RecordStatus{Status: st, Metadata: metadata(r, "twilio-status")})
	if err != nil {
		w.fail(rw, r, "status", err)
		return
	}
	w.metrics.observe("status", http.StatusOK, res.Duplicate, w.now().Sub(start))
	rw.WriteHeader(http.StatusOK)
}

// fail answers a refusal with its status, and any other error with 503 so that Twilio retries:
// a webhook is never answered 200 without its event stored.
func (w *Webhooks) fail(rw http.ResponseWriter, r *http.Request, kind string, err error) {
	status := http.StatusServiceUnavailable
	var we *webhookError
	if errors.As(err, &we) {
		status = we.status
	}
	log := zerolog.Ctx(r.Context())
	if status >= 500 {
		log.Error().Err(err).Str("webhook", kind).Msg("webhook not stored; Twilio may retry")
	} else {
		log.Warn().Err(err).Str("webhook", kind).Int("status", status).Msg("webhook refused")
	}
	w.metrics.observe(kind, status, false, 0)
	rw.Header().Set("Content-Type", "text/plain; charset=utf-8")
	rw.WriteHeader(status)
	if status >= 500 {
		fmt.Fprintln(rw, "temporarily unable to store the webhook")
		return
	}
	fmt.Fprintln(rw, err.Error())
}

// metadata carries the request's correlation id into the events.
func metadata(r *http.Request, source string) events.Metadata {
	return events.Metadata{CorrelationID: events.CorrelationID(r.Context()), Actor: "twilio", Source: source}
}

// writeTwiML answers Twilio with an empty <Response/>, or one <Message> confirmation.
func writeTwiML(rw http.ResponseWriter, reply string) {
	rw.Header().Set("Content-Type", "application/xml; charset=utf-8")
	rw.WriteHeader(http.StatusOK)
	io.WriteString(rw, xml.Header) //nolint:errcheck // the client went away
	if reply == "" {
		io.WriteString(rw, "<Response/>") //nolint:errcheck
		return
	}
	io.WriteString(rw, "<Response><Message>")   //nolint:errcheck
	xml.EscapeText(rw, []byte(reply))           //nolint:errcheck
	io.WriteString(rw, "</Message></Response>") //nolint:errcheck
}
