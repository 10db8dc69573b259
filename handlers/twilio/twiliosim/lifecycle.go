package twiliosim

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	twilio "herald/handlers/twilio"
)

// errorMessages are the texts Twilio puts in ChannelStatusMessage / error_message for the
// asynchronous codes the simulator draws.
var errorMessages = map[int]string{
	30003: "Unreachable destination handset",
	30005: "Unknown destination handset",
	30008: "Unknown error",
	63003: "Channel could not find To address",
	63016: "Failed to send freeform message because you are outside the allowed window. If you are using WhatsApp, please use a Message Template.",
	63024: "Invalid message recipient",
	63032: "WhatsApp could not deliver the message (WhatsApp error 472)",
}

func errorMessage(code int) string {
	if m, ok := errorMessages[code]; ok {
		return m
	}
	return "Message delivery failed (error " + strconv.Itoa(code) + ")"
}

// step is one lifecycle transition and its callback deliveries.
type step struct {
	status    string
	code      int
	delay     time.Duration // before the transition
	drop      bool          // no callback for it
	duplicate bool          // its callback is sent twice
	token     string        // its I-Twilio-Idempotency-Token
}

// plan is a message's lifecycle, drawn whole at creation so that a seeded run is
// reproducible whatever the goroutines' timing.
type plan struct {
	steps []step
	// order, when not nil, is the order in which the callbacks are sent (ShuffleCallbacks):
	// all after the last transition, never in the true order.
	order []int
}

func (s *Server) planLocked(m *Message, cfg Config) plan {
	var p plan
	jitter := func() time.Duration {
		if cfg.CallbackLatency <= 0 {
			return 0
		}
		return time.Duration(float64(cfg.CallbackLatency) * (0.5 + s.rng.Float64()))
	}
	add := func(status string, code int) {
		p.steps = append(p.steps, step{status: status, code: code, delay: jitter(),
			drop: s.rng.Float64() < cfg.DropCallbackRate, duplicate: s.rng.Float64() < cfg.DuplicateRate,
			token: "SIM" + s.hexID()})
	}
	pick := func(codes []int) int { return codes[s.rng.IntN(len(codes))] }
	if m.Status == "accepted" {
		add("queued", 0) // a Messaging Service send reports queued once a sender is picked
	}
	switch {
	case s.rng.Float64() < cfg.FailRate:
		add("failed", pick(cfg.FailedCodes))
	default:
		add("sent", 0)
		if s.rng.Float64() < cfg.UndeliveredRate {
			add("undelivered", pick(cfg.UndeliveredCodes))
			break
		}
		add("delivered", 0)
		if s.rng.Float64() < *cfg.ReadRate {
			add("read", 0)
		}
	}
	if cfg.ShuffleCallbacks && len(p.steps) > 1 {
		p.order = s.permutationLocked(len(p.steps))
	}
	return p
}

// runLifecycle walks a message through its plan, posting callbacks.
func (s *Server) runLifecycle(ctx context.Context, sid string, p plan) {
	held := make([]*callback, len(p.steps)) // callbacks held back for a shuffled delivery
	for i, st := range p.steps {
		if !sleep(ctx, st.delay) {
			return
		}
		cb, ok := s.transition(sid, st)
		if !ok {
			return // reset meanwhile
		}
		if cb.rawURL == "" || st.drop {
			continue
		}
		if p.order != nil {
			held[i] = &cb
			continue
		}
		s.deliverStatus(ctx, cb, st.duplicate)
	}
	for _, i := range p.order {
		if held[i] != nil && ctx.Err() == nil {
			s.deliverStatus(ctx, *held[i], p.steps[i].duplicate)
		}
	}
}

// permutationLocked returns a random permutation of 0..n-1 that is not the identity (n ≥ 2).
func (s *Server) permutationLocked(n int) []int {
	for {
		p := s.rng.Perm(n)
		for i, v := range p {
			if i != v {
				return p
			}
		}
	}
}

// callback is one status callback ready to send.
type callback struct {
	sid, status string
	code        int
	rawURL      string // StatusCallback as given (may carry a #fragment)
	form        url.Values
	token       string // I-Twilio-Idempotency-Token
}

// transition applies a step to the stored message and builds its callback.
func (s *Server) transition(sid string, st step) (callback, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	m, ok := s.messages[sid]
	if !ok {
		return callback{}, false
	}
	now := s.cfg.Now().UTC()
	m.Status = st.status
	m.DateUpdated = now
	if (st.status == "sent" || st.status == "failed") && m.DateSent.IsZero() {
		m.DateSent = now
	}
	if st.code != 0 {
		m.ErrorCode, m.ErrorMessage = st.code, errorMessage(st.code)
	}
	m.History = append(m.History, StatusChange{Status: st.status, ErrorCode: st.code, At: now})

	form := url.Values{}
	form.Set("MessageSid", m.SID)
	form.Set("SmsSid", m.SID)
	form.Set("MessageStatus", st.status)
	form.Set("SmsStatus", st.status)
	form.Set("AccountSid", m.AccountSID)
	form.Set("From", m.From)
	form.Set("To", m.To)
	form.Set("ApiVersion", APIVersion)
	if m.MessagingServiceSID != "" {
		form.Set("MessagingServiceSid", m.MessagingServiceSID)
	}
	if strings.HasPrefix(m.To, whatsappPrefix) {
		form.Set("ChannelPrefix", "whatsapp")
		form.Set("ChannelInstallSid", s.channelInstallSID)
		form.Set("ChannelToAddress", strings.TrimPrefix(m.To, whatsappPrefix))
		form.Set("StructuredMessage", "false")
	}
	if st.status == "read" {
		form.Set("EventType", "READ")
	}
	if st.code != 0 {
		form.Set("ErrorCode", strconv.Itoa(st.code))
		form.Set("ChannelStatusMessage", m.ErrorMessage)
	}
	return callback{sid: m.SID, status: st.status, code: st.code, rawURL: m.StatusCallback, form: form,
		token: st.token}, true
}

// deliverStatus sends one status callback (twice when duplicate).
func (s *Server) deliverStatus(ctx context.Context, cb callback, duplicate bool) {
	signed, fragment, _ := strings.Cut(cb.rawURL, "#")
	s.mu.Lock()
	cfg := s.cfg
	s.mu.Unlock()
	retries, policy := connectionOverrides(fragment, cfg)
	d := delivery{kind: "status", sid: cb.sid, status: cb.status, code: cb.code, signedURL: signed,
		form: cb.form, token: cb.token, retries: retries, policy: policy}
	s.deliver(ctx, d, cfg)
	if duplicate {
		d.duplicate = true
		s.deliver(ctx, d, cfg)
	}
}

// connectionOverrides reads Twilio's rc/rp URL-fragment overrides (reference §2.5).
func connectionOverrides(fragment string, cfg Config) (int, retryPolicy) {
	retries := cfg.CallbackRetries
	policy, _ := parseRetryPolicy(cfg.CallbackRetryPolicy)
	if fragment == "" {
		return retries, policy
	}
	v, err := url.ParseQuery(fragment)
	if err != nil {
		return retries, policy
	}
	if rc, err := strconv.Atoi(v.Get("rc")); err == nil && rc >= 0 && rc <= maxCallbackRetries {
		retries = rc
	}
	if rp := v.Get("rp"); rp != "" {
		if p, err := parseRetryPolicy(rp); err == nil {
			policy = p
		}
	}
	return retries, policy
}

// delivery is a signed POST to Herald with its retry rules.
type delivery struct {
	kind, sid, status string
	code              int
	signedURL         string
	form              url.Values
	token             string
	retries           int
	policy            retryPolicy
	duplicate         bool
}

// deliveryResult is the last attempt's outcome.
type deliveryResult struct {
	status      int
	contentType string
	body        string
	err         error
}

// retryPause separates two attempts of one delivery.
const retryPause = 20 * time.Millisecond

// maxRecordedBody caps the response body kept in a RecordedCallback (and returned by an
// inbound injection).
const maxRecordedBody = 64 << 10

// deliver POSTs d, signed, retrying per its policy; every attempt is recorded.
func (s *Server) deliver(ctx context.Context, d delivery, cfg Config) deliveryResult {
	target := rewriteBase(d.signedURL, cfg.DeliveryBaseURL)
	sig := twilio.Sign(s.initial.AuthToken, d.signedURL, d.form)
	body := d.form.Encode()
	var res deliveryResult
	for attempt := 1; attempt <= 1+d.retries; attempt++ {
		if attempt > 1 && !sleep(ctx, retryPause) {
			return res
		}
		res = s.post(ctx, target, body, sig, d.token, cfg)
		rec := RecordedCallback{Kind: d.kind, MessageSID: d.sid, Status: d.status, ErrorCode: d.code,
			URL: d.signedURL, Target: target, Form: cloneValues(d.form), Signature: sig, IdempotencyToken: d.token,
			Attempt: attempt, Duplicate: d.duplicate, ResponseStatus: res.status, ResponseBody: res.body}
		if res.err != nil {
			rec.Err = res.err.Error()
		}
		s.mu.Lock()
		s.seq++
		rec.Seq = s.seq
		rec.Time = s.cfg.Now().UTC()
		s.callbacks = append(s.callbacks, rec)
		s.mu.Unlock()
		ev := s.log.Debug()
		if res.err != nil || res.status >= 300 {
			ev = s.log.Warn()
		}
		ev.Str("kind", d.kind).Str("sid", d.sid).Str("status", d.status).Int("attempt", attempt).
			Int("response_status", res.status).AnErr("error", res.err).Str("url", d.signedURL).Msg("webhook attempt")
		if !d.policy.retry(res) || ctx.Err() != nil {
			return res
		}
	}
	return res
}

// retry reports whether an attempt's outcome calls for another under the policy.
func (p retryPolicy) retry(r deliveryResult) bool {
	switch {
	case r.err != nil:
		var op *net.OpError
		if errors.As(r.err, &op) && op.Op == "dial" {
			return p.connect
		}
		var ne net.Error
		if errors.As(r.err, &ne) && ne.Timeout() {
			return p.readTimeout
		}
		return false // a partial exchange is never retried (reference §2.5)
	case r.status >= 500:
		return p.status5xx
	case r.status >= 400:
		return p.status4xx
	}
	return false
}

// post sends one signed form POST.
func (s *Server) post(ctx context.Context, target, body, sig, token string, cfg Config) deliveryResult {
	ctx, cancel := context.WithTimeout(ctx, cfg.CallbackTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, target, strings.NewReader(body))
	if err != nil {
		return deliveryResult{err: err}
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set(twilio.SignatureHeader, sig)
	req.Header.Set("User-Agent", "TwilioProxy/1.1")
	if token != "" {
		req.Header.Set("I-Twilio-Idempotency-Token", token)
	}
	resp, err := s.client.Do(req)
	if err != nil {
		return deliveryResult{err: err}
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, maxRecordedBody))
	return deliveryResult{status: resp.StatusCode, contentType: resp.Header.Get("Content-Type"), body: string(b), err: err}
}

// rewriteBase replaces signed's scheme and host with base's (when base is set).
func rewriteBase(signed, base string) string {
	if base == "" {
		return signed
	}
	u, err := url.Parse(signed)
	b, berr := url.Parse(base)
	if err != nil || berr != nil {
		return signed
	}
	u.Scheme, u.Host = b.Scheme, b.Host
	return u.String()
}
