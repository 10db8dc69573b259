package sender

import (
	"errors"
	"fmt"
	"net"
	"net/http"
	"strconv"
	"strings"
	"time"

	twclient "github.com/twilio/twilio-go/client"
)

// Kind says what a failed call means for the message: was it created, and may it be sent
// again.
type Kind int

const (
	// KindPermanent: Twilio refused the message, or it can never be sent as specified. Do not
	// resend; end the message with the code's meaning (see CodeInfo for opt-outs, templates and
	// sender problems).
	KindPermanent Kind = iota + 1
	// KindRetryable: definitely not created, and a later attempt may succeed (a connection
	// that failed before a single byte was written, a transient Twilio code). Resend after a
	// backoff.
	KindRetryable
	// KindRateLimited: definitely not created because of a rate limit (HTTP 429, 20429,
	// 63018, …). Resend after RetryAfter when Twilio gave one, else after a backoff with
	// jitter, and slow down.
	KindRateLimited
	// KindAmbiguous: the request may or may not have created a message (timeout or reset
	// after the request was written, EOF, 5xx, an unreadable answer). Do NOT resend blindly:
	// wait for the attempt's status callback, then reconcile with List, and only then resend.
	KindAmbiguous
)

func (k Kind) String() string {
	switch k {
	case KindPermanent:
		return "permanent"
	case KindRetryable:
		return "retryable"
	case KindRateLimited:
		return "rate_limited"
	case KindAmbiguous:
		return "ambiguous"
	}
	return "kind(" + strconv.Itoa(int(k)) + ")"
}

// MarshalText writes the kind's name (for logs, JSON and events).
func (k Kind) MarshalText() ([]byte, error) { return []byte(k.String()), nil }

// UnmarshalText reads a name written by MarshalText.
func (k *Kind) UnmarshalText(b []byte) error {
	for _, c := range []Kind{KindPermanent, KindRetryable, KindRateLimited, KindAmbiguous} {
		if string(b) == c.String() {
			*k = c
			return nil
		}
	}
	return fmt.Errorf("twilio sender: unknown kind %q", b)
}

// ErrNotFound matches (errors.Is) a SendError for an HTTP 404, e.g. Fetch of an unknown SID.
var ErrNotFound = errors.New("twilio: not found")

// SendError is every error returned by Send, Fetch and List. Match it with errors.As.
type SendError struct {
	Kind Kind
	// Code is Twilio's error code (0 when there is none, e.g. a timeout or a 5xx without a
	// JSON body). Checks Herald makes before calling Twilio use the code Twilio would have
	// answered (21211 for a malformed To) or 0.
	Code int
	// HTTPStatus is the response's status (0 when no response arrived).
	HTTPStatus int
	// Message is Twilio's error message, or a description of what went wrong.
	Message string
	// RetryAfter is the server's Retry-After (0 when absent). Meaningful for KindRateLimited;
	// kept for other kinds as a hint.
	RetryAfter time.Duration
	// Err is the underlying error: *client.TwilioRestError, a network error, a context error.
	Err error
}

// Retryable reports whether the message was definitely not created and may be sent again
// (after RetryAfter or a backoff). An ambiguous failure is not retryable: reconcile first.
func (e *SendError) Retryable() bool { return e.Kind == KindRetryable || e.Kind == KindRateLimited }

// Ambiguous reports whether the message may have been created although no answer says so.
func (e *SendError) Ambiguous() bool { return e.Kind == KindAmbiguous }

// Info explains the error's code (CodeInfo for Code; Known=false when Code is 0 or unlisted).
func (e *SendError) Info() CodeInfo { return LookupCode(e.Code) }

func (e *SendError) Error() string {
	var b strings.Builder
	b.WriteString("twilio: ")
	switch e.Kind {
	case KindAmbiguous:
		b.WriteString("ambiguous (the message may have been created; reconcile before resending)")
	case KindRateLimited:
		b.WriteString("rate limited (not sent)")
	case KindRetryable:
		b.WriteString("not sent (retryable)")
	default:
		b.WriteString("permanent failure")
	}
	if e.HTTPStatus != 0 {
		fmt.Fprintf(&b, ": HTTP %d", e.HTTPStatus)
	}
	if e.Code != 0 {
		fmt.Fprintf(&b, ", code %d", e.Code)
		if info := LookupCode(e.Code); info.Known {
			fmt.Fprintf(&b, " [%s]", info.Meaning)
		}
	}
	if e.Message != "" {
		b.WriteString(": ")
		b.WriteString(e.Message)
	}
	if e.RetryAfter > 0 {
		fmt.Fprintf(&b, "; retry after %s", e.RetryAfter)
	}
	return b.String()
}

func (e *SendError) Unwrap() error { return e.Err }

// Is makes errors.Is(err, ErrNotFound) true for a 404.
func (e *SendError) Is(target error) bool {
	return target == ErrNotFound && e.HTTPStatus == http.StatusNotFound
}

// maxRetryAfter caps a server's Retry-After; anything longer is treated as this long.
const maxRetryAfter = 24 * time.Hour

// ParseRetryAfter reads a Retry-After value: delay-seconds ("120") or an HTTP date ("Wed, 21
// Oct 2015 07:28:00 GMT", also RFC 850 and asctime forms), relative to now. A date in the past
// gives 0 ("now"). Values above 24 h are capped at 24 h. ok is false when v is empty or
// unreadable.
func ParseRetryAfter(v string, now time.Time) (d time.Duration, ok bool) {
	v = strings.TrimSpace(v)
	if v == "" {
		return 0, false
	}
	if v[0] >= '0' && v[0] <= '9' {
		for i := 0; i < len(v); i++ {
			if v[i] < '0' || v[i] > '9' {
				return 0, false
			}
		}
		secs, err := strconv.ParseInt(v, 10, 64)
		if err != nil || secs > int64(maxRetryAfter/time.Second) { // overflow or huge: cap
			return maxRetryAfter, true
		}
		return time.Duration(secs) * time.Second, true
	}
	at, err := http.ParseTime(v)
	if err != nil {
		return 0, false
	}
	d = at.Sub(now)
	switch {
	case d < 0:
		return 0, true
	case d > maxRetryAfter:
		return maxRetryAfter, true
	}
	return d, true
}

// classify turns a failed twilio-go call into a SendError. ex is what the call's transport
// saw (nil fields when nothing arrived). idempotent is true for reads: repeating a GET is
// harmless, so what would be ambiguous for a create is simply retryable.
func classify(err error, ex exchangeResult, idempotent bool, now time.Time) *SendError {
	se := &SendError{Err: err, HTTPStatus: ex.status}
	if ex.status != 0 {
		se.RetryAfter, _ = ParseRetryAfter(ex.header.Get("Retry-After"), now)
	}
	ambiguous := KindAmbiguous
	if idempotent {
		ambiguous = KindRetryable
	}

	var rest *twclient.TwilioRestError
	var restV1 *twclient.RestErrorV1
	switch {
	case errors.As(err, &rest) && ex.status == 0:
		// The SDK refused the call locally (21222/21224: credentials with illegal
		// characters); nothing was sent and nothing will change until the config does.
		se.Kind, se.Code, se.Message = KindPermanent, rest.Code, rest.Message
		return se
	case errors.As(err, &rest):
		se.Code, se.Message = rest.Code, rest.Message
	case errors.As(err, &restV1):
		se.Code, se.Message = restV1.Code, restV1.Message
	}

	switch {
	case ex.status == 0:
		// No response. If no connection was ever handed to the request, not one byte of it
		// was written: definitely not sent. A dial error says the same even if tracing
		// missed it. Otherwise the request may have reached Twilio.
		var op *net.OpError
		if !ex.gotConn || (errors.As(err, &op) && op.Op == "dial") {
			se.Kind = KindRetryable
			se.Message = "no connection to Twilio, nothing was sent: " + err.Error()
		} else {
			se.Kind = ambiguous
			se.Message = "no response from Twilio after the request was sent: " + err.Error()
		}
	case ex.status == http.StatusTooManyRequests:
		se.Kind = KindRateLimited
	case ex.status >= 500:
		se.Kind = ambiguous
	case ex.status < 400:
		// A success status whose body could not be read or decoded: the message exists (for a
		// create) but its SID is unknown.
		se.Kind = ambiguous
		se.Message = fmt.Sprintf("unreadable %d response: %v", ex.status, err)
	case se.Code == 0:
		// A 4xx that is not a Twilio error body (a proxy, a wrong TWILIO_API_URL path, a
		// truncated body). Twilio did not say it refused, so treat it as unknown.
		se.Kind = ambiguous
		se.Message = fmt.Sprintf("unreadable %d response: %v", ex.status, err)
	default:
		se.Kind = LookupCode(se.Code).Kind
	}
	if se.Message == "" {
		se.Message = err.Error()
	}
	return se
}
