package twiliosim

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"net/url"
	"strconv"
	"strings"

	twilio "herald/handlers/twilio"
)

// Inbound is a WhatsApp message a user sends to Herald's sender.
type Inbound struct {
	// From is the user's number, +E164 or whatsapp:+E164. Required.
	From string `json:"from"`
	// To defaults to the configured Sender.
	To   string `json:"to,omitempty"`
	Body string `json:"body"`
	// ProfileName is the user's WhatsApp profile name.
	ProfileName string `json:"profile_name,omitempty"`
	// MediaURLs are attached media (MediaUrlN); MediaContentTypes their MIME types
	// (MediaContentTypeN, default image/jpeg).
	MediaURLs         []string `json:"media_urls,omitempty"`
	MediaContentTypes []string `json:"media_content_types,omitempty"`
	// ButtonPayload and ButtonText describe a tapped quick-reply button.
	ButtonPayload string `json:"button_payload,omitempty"`
	ButtonText    string `json:"button_text,omitempty"`
	// MessageSID is the inbound message's SID (default: a fresh SM…/MM…). Reuse one to
	// simulate Twilio redelivering the same message.
	MessageSID string `json:"message_sid,omitempty"`
	// Extra parameters are added as given (e.g. OptOutType, OriginalRepliedMessageSid).
	Extra map[string]string `json:"extra,omitempty"`
}

// InboundResult is Herald's answer to an injected inbound message.
type InboundResult struct {
	MessageSID string     `json:"message_sid"`
	URL        string     `json:"url"` // the URL signed and posted to
	Form       url.Values `json:"form"`
	Status     int        `json:"status"` // Herald's HTTP status
	Body       string     `json:"body"`   // Herald's response body (TwiML)
	// ContentType is Herald's Content-Type header.
	ContentType string `json:"content_type,omitempty"`
}

// InjectInbound posts the message to Herald's inbound webhook (WebhookBaseURL +
// /webhooks/twilio/inbound) as Twilio would: form-encoded, signed, with Twilio's parameters.
// It returns Herald's status and body; err is set when Herald could not be reached (or the
// input is invalid), not for an error status.
func (s *Server) InjectInbound(ctx context.Context, in Inbound) (status int, body string, err error) {
	res, err := s.Inject(ctx, in)
	return res.Status, res.Body, err
}

// Inject is InjectInbound with the details: the SID, the form and Herald's content type.
func (s *Server) Inject(ctx context.Context, in Inbound) (InboundResult, error) {
	s.mu.Lock()
	cfg := s.cfg
	s.mu.Unlock()
	if cfg.WebhookBaseURL == "" {
		return InboundResult{}, errors.New("twilio simulator: WebhookBaseURL (Herald's PUBLIC_BASE_URL) is not set")
	}
	from, ok := parseAddress(strings.TrimSpace(in.From))
	if !ok {
		return InboundResult{}, fmt.Errorf("twilio simulator: inbound from %q is not +E164 or whatsapp:+E164", in.From)
	}
	to := cfg.Sender
	if in.To != "" {
		to = in.To
	}
	toNumber, ok := parseAddress(strings.TrimSpace(to))
	if !ok {
		return InboundResult{}, fmt.Errorf("twilio simulator: inbound to %q is not +E164 or whatsapp:+E164", in.To)
	}
	if len(in.MediaContentTypes) > len(in.MediaURLs) {
		return InboundResult{}, errors.New("twilio simulator: more media content types than media URLs")
	}
	for _, u := range in.MediaURLs {
		if !validURL(u) {
			return InboundResult{}, fmt.Errorf("twilio simulator: media URL %q is not an absolute http(s) URL", u)
		}
	}

	s.mu.Lock()
	sid := in.MessageSID
	if sid == "" {
		prefix := "SM"
		if len(in.MediaURLs) > 0 {
			prefix = "MM"
		}
		sid = s.newSIDLocked(prefix)
	}
	now := cfg.Now().UTC()
	if _, dup := s.messages[sid]; !dup {
		m := &Message{SID: sid, AccountSID: s.initial.AccountSID, Direction: "inbound",
			From: whatsappPrefix + from, To: whatsappPrefix + toNumber, Body: in.Body,
			MediaURLs: append([]string(nil), in.MediaURLs...), Status: "received",
			DateCreated: now, DateSent: now, DateUpdated: now, History: []StatusChange{{Status: "received", At: now}}}
		s.messages[sid] = m
		s.order = append(s.order, sid)
	}
	token := "SIM" + s.hexID()
	s.mu.Unlock()

	form := url.Values{}
	form.Set("MessageSid", sid)
	form.Set("SmsSid", sid)
	form.Set("SmsMessageSid", sid)
	form.Set("AccountSid", s.initial.AccountSID)
	form.Set("From", whatsappPrefix+from)
	form.Set("To", whatsappPrefix+toNumber)
	form.Set("Body", in.Body)
	form.Set("NumMedia", strconv.Itoa(len(in.MediaURLs)))
	form.Set("NumSegments", "1")
	form.Set("WaId", strings.TrimPrefix(from, "+"))
	form.Set("ApiVersion", APIVersion)
	form.Set("SmsStatus", "received")
	form.Set("ReferralNumMedia", "0")
	if in.ProfileName != "" {
		form.Set("ProfileName", in.ProfileName)
	}
	messageType := "text"
	for i, u := range in.MediaURLs {
		ct := "image/jpeg"
		if i < len(in.MediaContentTypes) && in.MediaContentTypes[i] != "" {
			ct = in.MediaContentTypes[i]
		}
		form.Set("MediaUrl"+strconv.Itoa(i), u)
		form.Set("MediaContentType"+strconv.Itoa(i), ct)
		if i == 0 {
			messageType, _, _ = strings.Cut(ct, "/")
		}
	}
	if in.ButtonPayload != "" || in.ButtonText != "" {
		messageType = "button"
		form.Set("ButtonPayload", in.ButtonPayload)
		form.Set("ButtonText", in.ButtonText)
		form.Set("ButtonType", "REPLY")
	}
	form.Set("MessageType", messageType)
	for k, v := range in.Extra {
		form.Set(k, v)
	}

	signed := cfg.WebhookBaseURL + twilio.InboundPath
	s.log.Info().Str("sid", sid).Str("from", from).Str("url", signed).Msg("injecting inbound message")
	// An inbound webhook is not retried here: the caller sees Herald's answer and decides.
	r := s.deliver(ctx, delivery{kind: "inbound", sid: sid, status: "received", signedURL: signed, form: form,
		token: token}, cfg)
	res := InboundResult{MessageSID: sid, URL: signed, Form: form, Status: r.status, Body: r.body, ContentType: r.contentType}
	if r.err != nil {
		return res, fmt.Errorf("twilio simulator: posting the inbound message to %s: %w", signed, r.err)
	}
	return res, nil
}

// handleInbound serves POST /sim/inbound. The input is JSON (Inbound) or a form with from,
// to, body, profile_name, media_url (repeatable), media_content_type (repeatable),
// button_payload, button_text, message_sid. The answer is Herald's: its status, body and
// content type, plus X-Sim-Message-Sid and X-Sim-Herald-Status headers; 502 with a JSON error
// when Herald could not be reached, 400 for invalid input.
func (s *Server) handleInbound(w http.ResponseWriter, r *http.Request) {
	var in Inbound
	mt, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type"))
	r.Body = http.MaxBytesReader(w, r.Body, maxRequestBody)
	if mt == "application/json" {
		raw, err := io.ReadAll(r.Body)
		if err == nil {
			err = json.Unmarshal(raw, &in)
		}
		if err != nil {
			writeJSON(w, http.StatusBadRequest, map[string]string{"error": "invalid JSON: " + err.Error()})
			return
		}
	} else {
		if err := r.ParseForm(); err != nil {
			writeJSON(w, http.StatusBadRequest, map[string]string{"error": "invalid form: " + err.Error()})
			return
		}
		f := r.Form
		in = Inbound{From: f.Get("from"), To: f.Get("to"), Body: f.Get("body"), ProfileName: f.Get("profile_name"),
			MediaURLs: f["media_url"], MediaContentTypes: f["media_content_type"],
			ButtonPayload: f.Get("button_payload"), ButtonText: f.Get("button_text"), MessageSID: f.Get("message_sid")}
	}
	res, err := s.Inject(r.Context(), in)
	if err != nil {
		status := http.StatusBadRequest
		if res.URL != "" {
			status = http.StatusBadGateway // built and signed, but Herald did not answer
		}
		writeJSON(w, status, map[string]string{"error": err.Error(), "message_sid": res.MessageSID})
		return
	}
	w.Header().Set("X-Sim-Message-Sid", res.MessageSID)
	w.Header().Set("X-Sim-Herald-Status", strconv.Itoa(res.Status))
	if res.ContentType != "" {
		w.Header().Set("Content-Type", res.ContentType)
	}
	w.WriteHeader(res.Status)
	_, _ = io.WriteString(w, res.Body)
}

func (s *Server) handleConfig(w http.ResponseWriter, r *http.Request) {
	var p SettingsPatch
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, maxRequestBody))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&p); err != nil {
		writeJSON(w, http.StatusBadRequest, map[string]string{"error": "invalid settings patch: " + err.Error()})
		return
	}
	st, err := s.Update(p)
	if err != nil {
		writeJSON(w, http.StatusBadRequest, map[string]string{"error": err.Error()})
		return
	}
	writeJSON(w, http.StatusOK, st)
}

func (s *Server) handleFaults(w http.ResponseWriter, r *http.Request) {
	var body struct {
		Faults []Fault `json:"faults"`
	}
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, maxRequestBody))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&body); err != nil {
		writeJSON(w, http.StatusBadRequest, map[string]string{"error": "invalid faults: " + err.Error()})
		return
	}
	if err := s.QueueFaults(body.Faults...); err != nil {
		writeJSON(w, http.StatusBadRequest, map[string]string{"error": err.Error()})
		return
	}
	s.mu.Lock()
	n := len(s.faults)
	s.mu.Unlock()
	writeJSON(w, http.StatusOK, map[string]int{"queued": n})
}
