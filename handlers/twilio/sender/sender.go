// Package sender is the Twilio client of the send saga: it creates WhatsApp messages through
// the Messages API and says, for every failure, whether the message was created.
//
//	s, err := sender.New(cfg)
//	acc, err := s.Send(ctx, sender.Message{MessageID: id, Attempt: n, To: "+51987654321", Body: "Hola"})
//	var se *sender.SendError
//	switch {
//	case err == nil:              // created: acc.SID, acc.Status (queued/accepted)
//	case errors.As(err, &se) && se.Retryable():  // not created: resend after se.RetryAfter or a backoff
//	case errors.As(err, &se) && se.Ambiguous():  // maybe created: await the callback, reconcile with List
//	default:                      // permanent: end the message with se.Info().Meaning
//	}
//
// Every message carries a StatusCallback URL with Herald's message id and attempt number, so
// a status callback for an ambiguous attempt identifies it. Fetch and List read messages back
// for reconciliation.
//
// The real Twilio is used unless Config.APIURL (TWILIO_API_URL) points elsewhere, e.g. at the
// simulator.
package sender

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/google/uuid"
	twclient "github.com/twilio/twilio-go/client"
	openapi "github.com/twilio/twilio-go/rest/api/v2010"
)

// Sender creates and reads Twilio messages. It is safe for concurrent use.
type Sender struct {
	accountSID, authToken string
	from                  string   // whatsapp:+E164
	callbackBase          string   // PublicBaseURL + StatusPath
	base                  *url.URL // nil: the real Twilio
	timeout               time.Duration
	transport             *http.Transport // shared by every call: pooled connections
	metrics               *metrics
	now                   func() time.Time
}

// New validates cfg and returns a Sender. No request is made.
//
// twilio-go is used as reference/twilio.md §5.2 shows: a caller-made client.Client (with
// SetAccountSid) and its own http.Client, and the host rewritten when APIURL is set. Unlike
// that sketch, the client.Client and http.Client are built per call around one shared
// *http.Transport, and the rewrite wraps the client (BaseClient) rather than the transport;
// transport.go explains why (context, Retry-After, knowing whether anything was written).
func New(cfg Config) (*Sender, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	from, _ := normalizeAddress(cfg.From)
	m, err := newMetrics(cfg.Metrics)
	if err != nil {
		return nil, fmt.Errorf("twilio client metrics: %w", err)
	}
	s := &Sender{
		metrics:      m,
		accountSID:   cfg.AccountSID,
		authToken:    cfg.AuthToken,
		from:         from,
		callbackBase: strings.TrimRight(cfg.PublicBaseURL, "/") + StatusPath,
		timeout:      cfg.Timeout,
		now:          time.Now,
	}
	if s.timeout == 0 {
		s.timeout = DefaultTimeout
	}
	if cfg.APIURL != "" {
		s.base, _ = url.Parse(cfg.APIURL)
	}
	s.transport = http.DefaultTransport.(*http.Transport).Clone()
	// Up to 80 messages/s per WhatsApp sender: keep enough HTTP/1 connections warm (HTTP/2 to
	// api.twilio.com multiplexes anyway).
	s.transport.MaxIdleConnsPerHost = 32
	return s, nil
}

// Close releases idle connections. The Sender stays usable.
func (s *Sender) Close() { s.transport.CloseIdleConnections() }

// From is the sender address every message goes out from ("whatsapp:+E164").
func (s *Sender) From() string { return s.from }

// StatusCallbackURL is the StatusCallback sent with attempt n of message id:
// PublicBaseURL/webhooks/twilio/status?message_id=<uuid>&attempt=<n>. Twilio signs its
// callback with exactly this URL.
func (s *Sender) StatusCallbackURL(id uuid.UUID, attempt int) string {
	return s.callbackBase + "?message_id=" + id.String() + "&attempt=" + strconv.Itoa(attempt) + CallbackRetryFragment
}

// CallbackRetryFragment asks Twilio to retry a status callback on a connect failure, a read
// timeout or a 5xx, up to 3 times. By default Twilio retries once and only on connect
// failures, so a callback Herald answered 503 (Postgres unreachable) would be lost. Twilio
// leaves the fragment out of the signature.
const CallbackRetryFragment = "#rc=3&rp=ct,rt,5xx"

// api builds the twilio-go service for one call; ct records what that call's requests saw.
func (s *Sender) api(ctx context.Context) (*openapi.ApiService, *callTransport) {
	ct := &callTransport{ctx: ctx, timeout: s.timeout, next: s.transport}
	c := &twclient.Client{
		Credentials: twclient.NewCredentials(s.accountSID, s.authToken),
		HTTPClient:  &http.Client{Transport: ct, CheckRedirect: noRedirect},
	}
	// Required: with a caller-made Client, the SDK leaves the path's account SID empty.
	c.SetAccountSid(s.accountSID)
	if s.base == nil {
		return openapi.NewApiServiceWithClient(c), ct
	}
	return openapi.NewApiServiceWithClient(rewritingClient{Client: c, base: s.base}), ct
}

// Message is one attempt to send one Herald message.
type Message struct {
	// MessageID and Attempt identify the attempt in the StatusCallback URL.
	MessageID uuid.UUID
	Attempt   int
	// To is the recipient, +E164 (a whatsapp: prefix is accepted and kept once).
	To string
	// Body is free-form text (only inside the 24-hour window). Exactly one of Body and
	// ContentSID is set.
	Body string
	// ContentSID is an approved template (HX…), with its variables, e.g. {"1": "Ana"}.
	ContentSID       string
	ContentVariables map[string]string
}

// Accepted is Twilio's answer to a created message.
type Accepted struct {
	SID    string // SM… (MM… with media)
	Status string // queued (or accepted with a Messaging Service)
}

// Send creates the message. Errors are always *SendError; see Kind for what each means.
//
// Context: twilio-go's CreateMessage takes no context, but the request runs under ctx anyway
// (see transport.go), bounded by Config.Timeout. If ctx ends before a connection was handed to
// the request, nothing was sent (KindRetryable, wrapping ctx's error). If it ends later, Send
// still returns at once, but the request may already have reached Twilio and the message may
// exist: that is KindAmbiguous, exactly like a timeout, and must be reconciled, not resent.
func (s *Sender) Send(ctx context.Context, m Message) (Accepted, error) {
	params, err := s.createParams(m)
	if err != nil {
		return Accepted{}, err
	}
	if err := ctx.Err(); err != nil {
		return Accepted{}, &SendError{Kind: KindRetryable, Message: "not sent: " + err.Error(), Err: err}
	}
	api, ct := s.api(ctx)
	start := time.Now()
	msg, err := api.CreateMessage(params)
	if err != nil {
		err = classify(err, ct.result(), false, s.now())
		s.metrics.observe(opCreate, start, err)
		return Accepted{}, err
	}
	s.metrics.observe(opCreate, start, nil)
	if msg.Sid == nil || *msg.Sid == "" {
		return Accepted{}, &SendError{Kind: KindAmbiguous, HTTPStatus: ct.result().status,
			Message: "Twilio answered without a message SID", Err: errors.New("no sid in the response")}
	}
	return Accepted{SID: *msg.Sid, Status: deref(msg.Status)}, nil
}

// localError is a request Herald refuses to make: it can never succeed as specified.
func localError(code int, format string, args ...any) *SendError {
	msg := "rejected before calling Twilio: " + fmt.Sprintf(format, args...)
	return &SendError{Kind: KindPermanent, Code: code, Message: msg, Err: errors.New(msg)}
}

func (s *Sender) createParams(m Message) (*openapi.CreateMessageParams, error) {
	if m.MessageID == uuid.Nil {
		return nil, localError(0, "MessageID is empty")
	}
	if m.Attempt < 1 {
		return nil, localError(0, "Attempt must be ≥ 1, got %d", m.Attempt)
	}
	to, err := normalizeAddress(m.To)
	if err != nil {
		return nil, localError(21211, "To: %v", err)
	}
	p := &openapi.CreateMessageParams{}
	p.SetTo(to)
	p.SetFrom(s.from)
	p.SetStatusCallback(s.StatusCallbackURL(m.MessageID, m.Attempt))
	switch {
	case m.Body != "" && m.ContentSID != "":
		return nil, localError(0, "Body and ContentSID are exclusive")
	case m.Body != "":
		if len(m.ContentVariables) > 0 {
			return nil, localError(0, "ContentVariables need a ContentSID")
		}
		p.SetBody(m.Body)
	case m.ContentSID != "":
		if !strings.HasPrefix(m.ContentSID, "HX") || !alphanumeric(m.ContentSID) {
			return nil, localError(0, "ContentSID %q is not a Content template SID (HX…)", m.ContentSID)
		}
		p.SetContentSid(m.ContentSID)
		if len(m.ContentVariables) > 0 {
			vars, err := json.Marshal(m.ContentVariables) // keys sorted: a stable request
			if err != nil {
				return nil, localError(21656, "ContentVariables: %v", err)
			}
			p.SetContentVariables(string(vars))
		}
	default:
		return nil, localError(21602, "neither Body nor ContentSID is set")
	}
	return p, nil
}

// MessageInfo is a Message resource read back from Twilio. Addresses keep Twilio's form
// (whatsapp:+E164). Times are zero when Twilio has none yet (date_sent of a queued message).
type MessageInfo struct {
	SID          string
	To           string
	From         string
	Status       string
	ErrorCode    int // 0: none
	ErrorMessage string
	Body         string
	DateCreated  time.Time
	DateSent     time.Time
	DateUpdated  time.Time
}

// Fetch reads one message by SID. An unknown SID is a *SendError that matches ErrNotFound.
// Reads are idempotent, so a failure that would be ambiguous for Send is KindRetryable here.
func (s *Sender) Fetch(ctx context.Context, sid string) (MessageInfo, error) {
	if len(sid) < 3 || len(sid) > 64 || !alphanumeric(sid) {
		return MessageInfo{}, localError(0, "%q is not a Twilio message SID", sid)
	}
	api, ct := s.api(ctx)
	start := time.Now()
	m, err := api.FetchMessage(sid, nil)
	if err != nil {
		err = classify(err, ct.result(), true, s.now())
		s.metrics.observe(opFetch, start, err)
		return MessageInfo{}, err
	}
	s.metrics.observe(opFetch, start, nil)
	return toInfo(m), nil
}

// DefaultListLimit caps List when ListFilter.Limit is 0.
const DefaultListLimit = 100

// ListFilter selects messages for List.
type ListFilter struct {
	// To is the recipient, +E164 or whatsapp:+E164. Required.
	To string
	// From defaults to the configured sender.
	From string
	// DateSent, when not zero, keeps messages sent on that UTC day (Twilio's DateSent
	// filter; the SDK sends it as RFC 3339 midnight UTC, as Twilio's own samples do).
	// Careful: a message still queued has no date_sent and does not match a DateSent
	// filter, so reconciliation of a recent attempt should list without it and compare
	// DateCreated with the attempt's time instead.
	DateSent time.Time
	// Limit caps the messages returned (DefaultListLimit if 0). Twilio lists newest first.
	Limit int
}

// List reads messages matching f, following Twilio's pages up to f.Limit. Twilio's Message
// resource does not echo the StatusCallback URL, so an ambiguous attempt is recognised by
// To, From and DateCreated (and Body for free-form text).
func (s *Sender) List(ctx context.Context, f ListFilter) ([]MessageInfo, error) {
	to, err := normalizeAddress(f.To)
	if err != nil {
		return nil, localError(0, "ListFilter.To: %v", err)
	}
	from := s.from
	if f.From != "" {
		if from, err = normalizeAddress(f.From); err != nil {
			return nil, localError(0, "ListFilter.From: %v", err)
		}
	}
	limit := f.Limit
	if limit <= 0 {
		limit = DefaultListLimit
	}
	p := &openapi.ListMessageParams{}
	p.SetTo(to)
	p.SetFrom(from)
	p.SetLimit(limit)
	if !f.DateSent.IsZero() {
		y, mo, d := f.DateSent.UTC().Date()
		p.SetDateSent(time.Date(y, mo, d, 0, 0, 0, 0, time.UTC))
	}
	api, ct := s.api(ctx)
	start := time.Now()
	msgs, err := api.ListMessage(p)
	if err != nil {
		err = classify(err, ct.result(), true, s.now())
		s.metrics.observe(opList, start, err)
		return nil, err
	}
	s.metrics.observe(opList, start, nil)
	out := make([]MessageInfo, 0, len(msgs))
	for i := range msgs {
		out = append(out, toInfo(&msgs[i]))
	}
	return out, nil
}

func toInfo(m *openapi.ApiV2010Message) MessageInfo {
	info := MessageInfo{
		SID: deref(m.Sid), To: deref(m.To), From: deref(m.From), Status: deref(m.Status),
		ErrorMessage: deref(m.ErrorMessage), Body: deref(m.Body),
		DateCreated: parseTwilioTime(m.DateCreated), DateSent: parseTwilioTime(m.DateSent),
		DateUpdated: parseTwilioTime(m.DateUpdated),
	}
	if m.ErrorCode != nil {
		info.ErrorCode = *m.ErrorCode
	}
	return info
}

// parseTwilioTime reads the Message resource's RFC 2822 dates ("Thu, 24 Aug 2023 05:01:45
// +0000"); zero when absent or unreadable.
func parseTwilioTime(s *string) time.Time {
	if s == nil || *s == "" {
		return time.Time{}
	}
	for _, layout := range []string{time.RFC1123Z, time.RFC1123, time.RFC3339} {
		if t, err := time.Parse(layout, *s); err == nil {
			return t.UTC()
		}
	}
	return time.Time{}
}

func deref(s *string) string {
	if s == nil {
		return ""
	}
	return *s
}
