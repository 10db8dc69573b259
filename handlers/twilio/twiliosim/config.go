package twiliosim

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/rs/zerolog"
)

// Defaults applied by New to zero fields.
const (
	DefaultAccountSID      = "ACsimulator00000000000000000000000" // 34 characters, letters and digits only (twilio-go refuses others)
	DefaultAuthToken       = "simtoken"
	DefaultSender          = "whatsapp:+14155238886" // Twilio's WhatsApp sandbox number
	DefaultCallbackLatency = 50 * time.Millisecond
	DefaultCallbackTimeout = 15 * time.Second // Twilio's read timeout (rt) for webhooks
	DefaultRetryAfter      = time.Second
	DefaultCallbackRetries = 1    // Twilio's rc default
	DefaultRetryPolicy     = "ct" // Twilio's rp default: retry only when the connection failed
	maxBodyChars           = 1600 // Twilio's limit on Body
	maxMediaURLs           = 10   // Twilio's limit on MediaUrl
	maxPageSize            = 1000 // Twilio's cap on PageSize
	defaultPageSize        = 50   // Twilio's default PageSize
	maxCallbackRetries     = 5    // Twilio's cap on rc
	maxRequestBody         = 1 << 20
)

// Default asynchronous error codes (reference/twilio.md §4.4).
var (
	// DefaultFailedCodes are drawn for a message that ends "failed" without ever being sent.
	DefaultFailedCodes = []int{63016, 63024, 63003, 30008}
	// DefaultUndeliveredCodes are drawn for a message that was sent and then "undelivered".
	DefaultUndeliveredCodes = []int{30003, 30005, 63032}
)

// Config configures a simulator. Probabilities are in [0, 1]; each is drawn independently per
// create (the fault rates) or per message (the lifecycle rates) from one random source seeded
// with Seed, so a run with the same seed and the same sequence of requests behaves the same.
type Config struct {
	// AccountSID and AuthToken are the only credentials the Messages API accepts (HTTP Basic
	// auth), and AuthToken signs every callback and inbound webhook.
	AccountSID string
	AuthToken  string

	// Sender is Herald's WhatsApp sender ("whatsapp:+E164"): the To of injected inbound
	// messages and the From of a message created with a MessagingServiceSid and no From.
	Sender string

	// WebhookBaseURL is Herald's PUBLIC_BASE_URL. Inbound messages are posted to
	// WebhookBaseURL + "/webhooks/twilio/inbound" and signed with exactly that URL. Empty:
	// inbound injection fails with an error (status callbacks do not need it; they go to each
	// message's StatusCallback).
	WebhookBaseURL string
	// DeliveryBaseURL, when set, is where callbacks and inbound webhooks are actually sent:
	// its scheme and host replace the signed URL's, the path and query stay. It models a
	// reverse proxy in front of Herald (Herald must verify against PUBLIC_BASE_URL, never the
	// Host header).
	DeliveryBaseURL string

	// CallbackLatency is the time between two lifecycle steps (queued→sent→delivered→read),
	// jittered uniformly in [½, 1½]×. Zero means DefaultCallbackLatency; use a negative
	// value for no delay at all.
	CallbackLatency time.Duration
	// CallbackTimeout bounds one callback or inbound POST (DefaultCallbackTimeout if 0).
	CallbackTimeout time.Duration
	// CallbackRetries is how often a failed callback is retried (Twilio's rc; 0 means
	// DefaultCallbackRetries, negative means none) and CallbackRetryPolicy when (Twilio's rp:
	// a comma list of ct, rt, 4xx, 5xx, all; DefaultRetryPolicy if empty). A StatusCallback
	// URL's fragment (#rc=3&rp=ct,5xx) overrides both for its message, as with Twilio.
	CallbackRetries     int
	CallbackRetryPolicy string

	// FailRate: probability that a created message goes queued → failed (one of FailedCodes).
	FailRate float64
	// UndeliveredRate: probability that a sent message goes sent → undelivered (one of
	// UndeliveredCodes) instead of delivered.
	UndeliveredRate float64
	// ReadRate: probability that a delivered message is read. Nil means 1 (set it with
	// Rate(0) to stop at delivered).
	ReadRate *float64
	// FailedCodes and UndeliveredCodes are the codes drawn from (defaults above).
	FailedCodes      []int
	UndeliveredCodes []int

	// RateLimit429 is the probability that a create is answered 429 (code 20429, with a
	// Retry-After header of RetryAfter, rounded up to whole seconds); the message is not
	// created. RateLimitBurst extends each drawn 429 to that many consecutive creates (0/1:
	// each create draws on its own).
	RateLimit429   float64
	RateLimitBurst int
	RetryAfter     time.Duration
	// ServerErrorRate is the probability that a valid create is answered 500 (code 20500)
	// and the message is NOT created.
	ServerErrorRate float64
	// AcceptThenStallRate is the probability that a valid create IS stored (and goes through
	// its lifecycle, callbacks included) but its HTTP response is held: for StallDuration,
	// then answered 201, or until the client gives up or the simulator closes when
	// StallDuration is 0. The client sees a timeout: an ambiguous send.
	AcceptThenStallRate float64
	StallDuration       time.Duration

	// DuplicateRate is the probability that a callback is delivered twice (same parameters,
	// same I-Twilio-Idempotency-Token). ShuffleCallbacks sends a message's callbacks in a
	// random order that is never the true one (when there are two or more); the stored status
	// still moves in the true order. DropCallbackRate is the probability that a callback is
	// never sent (the status still moves, so only Fetch/List shows it).
	DuplicateRate    float64
	ShuffleCallbacks bool
	DropCallbackRate float64

	// Seed seeds the random source (0: a seed from the clock, logged at start).
	Seed int64

	// HTTPClient sends callbacks and inbound webhooks (default: a client with CallbackTimeout
	// that does not follow redirects).
	HTTPClient *http.Client
	// Logger receives structured logs (nil: none).
	Logger *zerolog.Logger
	// Now is the clock (nil: time.Now); dates on messages come from it.
	Now func() time.Time
}

// Rate returns a pointer to p, for Config.ReadRate.
func Rate(p float64) *float64 { return &p }

// withDefaults fills zero fields.
func (c Config) withDefaults() Config {
	if c.AccountSID == "" {
		c.AccountSID = DefaultAccountSID
	}
	if c.AuthToken == "" {
		c.AuthToken = DefaultAuthToken
	}
	if c.Sender == "" {
		c.Sender = DefaultSender
	}
	c.WebhookBaseURL = strings.TrimRight(c.WebhookBaseURL, "/")
	c.DeliveryBaseURL = strings.TrimRight(c.DeliveryBaseURL, "/")
	if c.CallbackLatency == 0 {
		c.CallbackLatency = DefaultCallbackLatency
	} else if c.CallbackLatency < 0 {
		c.CallbackLatency = 0
	}
	if c.CallbackTimeout == 0 {
		c.CallbackTimeout = DefaultCallbackTimeout
	}
	if c.CallbackRetries == 0 {
		c.CallbackRetries = DefaultCallbackRetries
	} else if c.CallbackRetries < 0 {
		c.CallbackRetries = 0
	}
	if c.CallbackRetryPolicy == "" {
		c.CallbackRetryPolicy = DefaultRetryPolicy
	}
	if c.ReadRate == nil {
		c.ReadRate = Rate(1)
	}
	if len(c.FailedCodes) == 0 {
		c.FailedCodes = append([]int(nil), DefaultFailedCodes...)
	}
	if len(c.UndeliveredCodes) == 0 {
		c.UndeliveredCodes = append([]int(nil), DefaultUndeliveredCodes...)
	}
	if c.RateLimitBurst < 1 {
		c.RateLimitBurst = 1
	}
	if c.RetryAfter == 0 {
		c.RetryAfter = DefaultRetryAfter
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	return c
}

// Validate lists every problem with the configuration (after defaults) at once. The auth
// token is never echoed.
func (c Config) Validate() error { return c.withDefaults().validate() }

// validate checks a configuration whose defaults were applied.
func (c Config) validate() error {
	var errs []error
	add := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }
	switch {
	case !strings.HasPrefix(c.AccountSID, "AC"):
		add("AccountSID: %q does not start with AC", c.AccountSID)
	case !alphanumeric(c.AccountSID):
		add("AccountSID: %q must contain only letters and digits (twilio-go refuses others)", c.AccountSID)
	}
	if !alphanumeric(c.AuthToken) {
		add("AuthToken: must contain only letters and digits (twilio-go refuses others)")
	}
	if _, ok := parseAddress(c.Sender); !ok {
		add("Sender: %q is not whatsapp:+E164 or +E164", c.Sender)
	}
	for name, u := range map[string]string{"WebhookBaseURL": c.WebhookBaseURL, "DeliveryBaseURL": c.DeliveryBaseURL} {
		if u == "" {
			continue
		}
		p, err := url.Parse(u)
		switch {
		case err != nil || (p.Scheme != "http" && p.Scheme != "https") || p.Host == "":
			add("%s: %q is not an absolute http(s) URL", name, u)
		case p.RawQuery != "" || p.Fragment != "" || p.User != nil:
			add("%s: %q must not carry a query, fragment or user info", name, u)
		}
	}
	if c.CallbackTimeout < 0 {
		add("CallbackTimeout: %s is negative", c.CallbackTimeout)
	}
	if c.CallbackRetries > maxCallbackRetries {
		add("CallbackRetries: %d is above Twilio's maximum of %d", c.CallbackRetries, maxCallbackRetries)
	}
	if _, err := parseRetryPolicy(c.CallbackRetryPolicy); err != nil {
		add("CallbackRetryPolicy: %v", err)
	}
	for name, p := range map[string]float64{
		"FailRate": c.FailRate, "UndeliveredRate": c.UndeliveredRate, "ReadRate": *c.ReadRate,
		"RateLimit429": c.RateLimit429, "ServerErrorRate": c.ServerErrorRate,
		"AcceptThenStallRate": c.AcceptThenStallRate, "DuplicateRate": c.DuplicateRate,
		"DropCallbackRate": c.DropCallbackRate,
	} {
		if !(p >= 0 && p <= 1) { // also catches NaN
			add("%s: %v is not a probability in [0, 1]", name, p)
		}
	}
	for _, code := range c.FailedCodes {
		if code <= 0 {
			add("FailedCodes: %d is not a Twilio error code", code)
		}
	}
	for _, code := range c.UndeliveredCodes {
		if code <= 0 {
			add("UndeliveredCodes: %d is not a Twilio error code", code)
		}
	}
	if c.RetryAfter < 0 {
		add("RetryAfter: %s is negative", c.RetryAfter)
	}
	if c.StallDuration < 0 {
		add("StallDuration: %s is negative", c.StallDuration)
	}
	return errors.Join(errs...)
}

// Settings are the knobs that can change while the simulator runs (POST /sim/config,
// Server.Update). JSON durations are Go duration strings ("150ms").
type Settings struct {
	CallbackLatency     Duration `json:"callback_latency"`
	FailRate            float64  `json:"fail_rate"`
	UndeliveredRate     float64  `json:"undelivered_rate"`
	ReadRate            float64  `json:"read_rate"`
	FailedCodes         []int    `json:"failed_codes"`
	UndeliveredCodes    []int    `json:"undelivered_codes"`
	RateLimit429        float64  `json:"rate_limit_429"`
	RateLimitBurst      int      `json:"rate_limit_burst"`
	RetryAfter          Duration `json:"retry_after"`
	ServerErrorRate     float64  `json:"server_error_rate"`
	AcceptThenStallRate float64  `json:"accept_then_stall_rate"`
	StallDuration       Duration `json:"stall_duration"`
	DuplicateRate       float64  `json:"duplicate_rate"`
	ShuffleCallbacks    bool     `json:"shuffle_callbacks"`
	DropCallbackRate    float64  `json:"drop_callback_rate"`
	WebhookBaseURL      string   `json:"webhook_base_url"`
	DeliveryBaseURL     string   `json:"delivery_base_url"`
}

// SettingsPatch changes the fields that are present (JSON) or not nil (Go). Unlike in
// Config, a CallbackLatency of 0 here means no delay (defaults were applied by New).
type SettingsPatch struct {
	CallbackLatency     *Duration `json:"callback_latency,omitempty"`
	FailRate            *float64  `json:"fail_rate,omitempty"`
	UndeliveredRate     *float64  `json:"undelivered_rate,omitempty"`
	ReadRate            *float64  `json:"read_rate,omitempty"`
	FailedCodes         []int     `json:"failed_codes,omitempty"`
	UndeliveredCodes    []int     `json:"undelivered_codes,omitempty"`
	RateLimit429        *float64  `json:"rate_limit_429,omitempty"`
	RateLimitBurst      *int      `json:"rate_limit_burst,omitempty"`
	RetryAfter          *Duration `json:"retry_after,omitempty"`
	ServerErrorRate     *float64  `json:"server_error_rate,omitempty"`
	AcceptThenStallRate *float64  `json:"accept_then_stall_rate,omitempty"`
	StallDuration       *Duration `json:"stall_duration,omitempty"`
	DuplicateRate       *float64  `json:"duplicate_rate,omitempty"`
	ShuffleCallbacks    *bool     `json:"shuffle_callbacks,omitempty"`
	DropCallbackRate    *float64  `json:"drop_callback_rate,omitempty"`
	WebhookBaseURL      *string   `json:"webhook_base_url,omitempty"`
	DeliveryBaseURL     *string   `json:"delivery_base_url,omitempty"`
}

func (c Config) settings() Settings {
	return Settings{
		CallbackLatency: Duration(c.CallbackLatency), FailRate: c.FailRate, UndeliveredRate: c.UndeliveredRate,
		ReadRate: *c.ReadRate, FailedCodes: append([]int(nil), c.FailedCodes...),
		UndeliveredCodes: append([]int(nil), c.UndeliveredCodes...), RateLimit429: c.RateLimit429,
		RateLimitBurst: c.RateLimitBurst, RetryAfter: Duration(c.RetryAfter), ServerErrorRate: c.ServerErrorRate,
		AcceptThenStallRate: c.AcceptThenStallRate, StallDuration: Duration(c.StallDuration),
		DuplicateRate: c.DuplicateRate, ShuffleCallbacks: c.ShuffleCallbacks, DropCallbackRate: c.DropCallbackRate,
		WebhookBaseURL: c.WebhookBaseURL, DeliveryBaseURL: c.DeliveryBaseURL,
	}
}

// apply returns c (defaults applied) changed by p; the caller validates the result.
func (c Config) apply(p SettingsPatch) Config {
	setF := func(dst *float64, src *float64) {
		if src != nil {
			*dst = *src
		}
	}
	setD := func(dst *time.Duration, src *Duration) {
		if src != nil {
			*dst = time.Duration(*src)
		}
	}
	if p.CallbackLatency != nil {
		// Defaults were applied at start: here 0 means no delay.
		c.CallbackLatency = max(time.Duration(*p.CallbackLatency), 0)
	}
	setF(&c.FailRate, p.FailRate)
	setF(&c.UndeliveredRate, p.UndeliveredRate)
	if p.ReadRate != nil {
		c.ReadRate = Rate(*p.ReadRate)
	}
	if p.FailedCodes != nil {
		c.FailedCodes = append([]int(nil), p.FailedCodes...)
	}
	if p.UndeliveredCodes != nil {
		c.UndeliveredCodes = append([]int(nil), p.UndeliveredCodes...)
	}
	setF(&c.RateLimit429, p.RateLimit429)
	if p.RateLimitBurst != nil {
		c.RateLimitBurst = max(*p.RateLimitBurst, 1)
	}
	setD(&c.RetryAfter, p.RetryAfter)
	setF(&c.ServerErrorRate, p.ServerErrorRate)
	setF(&c.AcceptThenStallRate, p.AcceptThenStallRate)
	setD(&c.StallDuration, p.StallDuration)
	setF(&c.DuplicateRate, p.DuplicateRate)
	if p.ShuffleCallbacks != nil {
		c.ShuffleCallbacks = *p.ShuffleCallbacks
	}
	setF(&c.DropCallbackRate, p.DropCallbackRate)
	if p.WebhookBaseURL != nil {
		c.WebhookBaseURL = *p.WebhookBaseURL
	}
	if p.DeliveryBaseURL != nil {
		c.DeliveryBaseURL = *p.DeliveryBaseURL
	}
	return c
}

// Duration is a time.Duration that reads and writes JSON as a Go duration string ("150ms");
// a JSON number is read as nanoseconds.
type Duration time.Duration

// MarshalJSON writes the duration as "150ms".
func (d Duration) MarshalJSON() ([]byte, error) { return json.Marshal(time.Duration(d).String()) }

// UnmarshalJSON reads "150ms" or a number of nanoseconds.
func (d *Duration) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		var n int64
		if err := json.Unmarshal(b, &n); err != nil {
			return fmt.Errorf("%s is not a duration like \"150ms\"", b)
		}
		*d = Duration(n)
		return nil
	}
	v, err := time.ParseDuration(strings.TrimSpace(s))
	if err != nil {
		return fmt.Errorf("%q is not a duration like \"150ms\"", s)
	}
	*d = Duration(v)
	return nil
}

func alphanumeric(s string) bool {
	if s == "" {
		return false
	}
	for _, r := range s {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9') {
			return false
		}
	}
	return true
}

// retryPolicy is a parsed rp value.
type retryPolicy struct{ connect, readTimeout, status4xx, status5xx bool }

func parseRetryPolicy(s string) (retryPolicy, error) {
	var p retryPolicy
	for _, part := range strings.Split(s, ",") {
		switch strings.ToLower(strings.TrimSpace(part)) {
		case "ct":
			p.connect = true
		case "rt":
			p.readTimeout = true
		case "4xx":
			p.status4xx = true
		case "5xx":
			p.status5xx = true
		case "all":
			p = retryPolicy{true, true, true, true}
		case "":
		default:
			return p, fmt.Errorf("%q is not one of ct, rt, 4xx, 5xx, all", part)
		}
	}
	return p, nil
}
