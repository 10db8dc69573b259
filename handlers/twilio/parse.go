package twilio

import (
	"errors"
	"fmt"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/nyaruka/phonenumbers"

	"herald/commands"
	"herald/events"
)

// ChannelPrefix is how Twilio writes WhatsApp addresses: whatsapp:+E164.
const ChannelPrefix = "whatsapp:"

// e164 is the syntax of an E.164 number.
var e164 = regexp.MustCompile(`^\+[1-9][0-9]{6,14}$`)

// maxSIDLength bounds a MessageSid (Twilio's are 34 characters).
const maxSIDLength = 64

// normalized caches NormalizeAddress's successes: libphonenumber's parse and validation cost
// more than the rest of an inbound webhook, and a conversation repeats its sender's address. It
// is emptied when it reaches maxNormalized entries.
var (
	normalizedMu  sync.RWMutex
	normalized    = map[string]string{}
	maxNormalized = 100_000
)

// NormalizeAddress turns "whatsapp:+14155550123" (or a bare "+14155550123") into E.164.
func NormalizeAddress(addr string) (string, error) {
	normalizedMu.RLock()
	e164, ok := normalized[addr]
	normalizedMu.RUnlock()
	if ok {
		return e164, nil
	}
	e164, err := normalizeAddress(addr)
	if err != nil {
		return "", err
	}
	normalizedMu.Lock()
	if len(normalized) >= maxNormalized {
		clear(normalized)
	}
	normalized[addr] = e164
	normalizedMu.Unlock()
	return e164, nil
}

func normalizeAddress(addr string) (string, error) {
	number := strings.TrimSpace(strings.TrimPrefix(strings.TrimSpace(addr), ChannelPrefix))
	if !strings.HasPrefix(number, "+") {
		return "", fmt.Errorf("%q is not a whatsapp:+E.164 address", addr)
	}
	// WhatsApp still writes Mexican mobiles with the "1" Mexico dropped from its numbering
	// in 2019 (+52 1 55 …); the number today is +52 55 ….
	if strings.HasPrefix(number, "+521") && len(number) == 14 {
		number = "+52" + number[4:]
	}
	parsed, err := phonenumbers.Parse(number, "")
	if err != nil {
		return "", fmt.Errorf("%q is not a phone number: %v", addr, err)
	}
	if !phonenumbers.IsValidNumber(parsed) {
		return "", fmt.Errorf("%q is not a valid phone number", addr)
	}
	return phonenumbers.Format(parsed, phonenumbers.E164), nil
}

func validSID(sid string) bool {
	if len(sid) < 2 || len(sid) > maxSIDLength {
		return false
	}
	for _, r := range sid {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9') {
			return false
		}
	}
	return true
}

// receivedAt takes Twilio's Timestamp when one is sent (it normally is not) and the server's
// receive time otherwise, saying which.
func receivedAt(form url.Values, now time.Time) (time.Time, string, error) {
	ts := form.Get("Timestamp")
	if ts == "" {
		return now.UTC(), events.TimestampFromServer, nil
	}
	for _, layout := range []string{time.RFC3339Nano, time.RFC1123Z, time.RFC1123} {
		if t, err := time.Parse(layout, ts); err == nil {
			return t.UTC(), events.TimestampFromTwilio, nil
		}
	}
	if secs, err := strconv.ParseInt(ts, 10, 64); err == nil {
		return time.Unix(secs, 0).UTC(), events.TimestampFromTwilio, nil
	}
	return time.Time{}, "", fmt.Errorf("Timestamp: %q is not RFC 3339, RFC 1123 or Unix seconds", ts)
}

// ParseInbound validates an inbound webhook form and normalizes it. Unknown keys are kept in
// the raw form.
func ParseInbound(form url.Values, now time.Time) (events.UserMessageReceived, error) {
	var errs []error
	sid := form.Get("MessageSid")
	if !validSID(sid) {
		errs = append(errs, fmt.Errorf("MessageSid: %q is missing or not a Twilio SID", sid))
	}
	phone, err := NormalizeAddress(form.Get("From"))
	if err != nil {
		errs = append(errs, fmt.Errorf("From: %w", err))
	}
	at, source, err := receivedAt(form, now)
	if err != nil {
		errs = append(errs, err)
	}
	numMedia := 0
	if n := form.Get("NumMedia"); n != "" {
		numMedia, err = strconv.Atoi(n)
		if err != nil || numMedia < 0 || numMedia > 10 {
			errs = append(errs, fmt.Errorf("NumMedia: %q is not a count from 0 to 10", n))
			numMedia = 0
		}
	}
	if err := errors.Join(errs...); err != nil {
		return events.UserMessageReceived{}, err
	}
	msg := events.UserMessageReceived{
		Phone: phone, MessageSID: sid, AccountSID: form.Get("AccountSid"), To: form.Get("To"),
		Body: form.Get("Body"), ProfileName: form.Get("ProfileName"), WaID: form.Get("WaId"),
		ButtonPayload: form.Get("ButtonPayload"), ButtonText: form.Get("ButtonText"),
		OptOutType: form.Get("OptOutType"), ReceivedAt: at, TimestampSource: source, Raw: map[string][]string(form),
	}
	for i := 0; i < numMedia; i++ {
		msg.Media = append(msg.Media, events.Media{URL: form.Get(fmt.Sprintf("MediaUrl%d", i)),
			ContentType: form.Get(fmt.Sprintf("MediaContentType%d", i))})
	}
	text := msg.Body
	if text == "" {
		text = msg.ButtonPayload // a tapped quick-reply button can carry a keyword
	}
	kw := commands.ParseKeyword(text)
	if kw.Command == "" && msg.OptOutType != "" {
		// Twilio's Advanced Opt-Out matched a keyword Herald does not know (a custom one).
		kw = commands.ParseKeyword(msg.OptOutType)
	}
	msg.Command, msg.Keyword, msg.Topic = kw.Command, kw.Word, kw.Topic
	return msg, nil
}

// knownStatuses are the MessageStatus values a status callback may carry.
var knownStatuses = map[string]bool{
	events.StatusAccepted: true, events.StatusScheduled: true, events.StatusQueued: true, events.StatusSending: true,
	events.StatusSent: true, events.StatusDelivered: true, events.StatusRead: true, events.StatusFailed: true,
	events.StatusUndelivered: true, events.StatusCanceled: true,
	"partially_delivered": true, // deprecated by Twilio; kept, ranked like an unknown status
}

// ParseStatus validates a status callback. query is the callback URL's query, which carries
// Herald's message id and attempt when Herald sent the message.
func ParseStatus(form url.Values, query url.Values, idempotencyToken string, now time.Time) (events.MessageStatusReceived, error) {
	var errs []error
	sid := form.Get("MessageSid")
	if !validSID(sid) {
		errs = append(errs, fmt.Errorf("MessageSid: %q is missing or not a Twilio SID", sid))
	}
	status := strings.ToLower(strings.TrimSpace(form.Get("MessageStatus")))
	if status == "" {
		status = strings.ToLower(strings.TrimSpace(form.Get("SmsStatus")))
	}
	if !knownStatuses[status] {
		errs = append(errs, fmt.Errorf("MessageStatus: %q is not a Twilio message status", status))
	}
	var code *int
	if c := strings.TrimSpace(form.Get("ErrorCode")); c != "" {
		n, err := strconv.Atoi(c)
		if err != nil || n < 0 {
			errs = append(errs, fmt.Errorf("ErrorCode: %q is not a number", c))
		} else {
			code = &n
		}
	}
	attempt := 0
	if a := query.Get("attempt"); a != "" {
		n, err := strconv.Atoi(a)
		if err != nil || n < 1 {
			errs = append(errs, fmt.Errorf("attempt: %q in the callback URL is not a positive number", a))
		}
		attempt = n
	}
	at, source, err := receivedAt(form, now)
	if err != nil {
		errs = append(errs, err)
	}
	if err := errors.Join(errs...); err != nil {
		return events.MessageStatusReceived{}, err
	}
	// The recipient is a number Herald sent to, so a syntactic E.164 check is enough here (the
	// full libphonenumber validation costs more than the rest of the callback).
	phone := strings.TrimPrefix(strings.TrimSpace(form.Get("To")), ChannelPrefix)
	if !e164.MatchString(phone) {
		phone = "" // informative only: a callback is kept even without it
	}
	msg := form.Get("ErrorMessage")
	if msg == "" {
		msg = form.Get("ChannelStatusMessage")
	}
	return events.MessageStatusReceived{
		MessageSID: sid, Status: status, ErrorCode: code, ErrorMessage: msg, Phone: phone, From: form.Get("From"),
		AccountSID: form.Get("AccountSid"), MessageID: query.Get("message_id"), Attempt: attempt,
		ChannelEvent: form.Get("EventType"), IdempotencyToken: idempotencyToken,
		ReceivedAt: at, TimestampSource: source, Raw: map[string][]string(form),
	}, nil
}
