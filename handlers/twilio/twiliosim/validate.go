package twiliosim

import (
	"encoding/json"
	"net/url"
	"regexp"
	"strings"
	"unicode/utf8"
)

// Error codes of a refused create (reference/twilio.md §4.4, §7; Twilio's error dictionary).
const (
	CodeToRequired           = 21604 // A 'To' phone number is required
	CodeInvalidTo            = 21211 // Invalid 'To' phone number
	CodeFromRequired         = 21603 // A 'From' phone number is required
	CodeInvalidFrom          = 21212 // Invalid 'From' phone number
	CodeChannelMismatch      = 21910 // From and To are not on the same channel
	CodeBodyRequired         = 21602 // Message body is required
	CodeBodyTooLong          = 21617 // Body exceeds 1600 characters
	CodeContentSIDRequired   = 21654 // ContentVariables without ContentSid
	CodeInvalidContentSID    = 21655 // ContentSid is not HX + 32 hex
	CodeInvalidContentVars   = 21656 // ContentVariables is not a JSON object of non-empty strings
	CodeInvalidMediaURL      = 21620 // MediaUrl is not an absolute http(s) URL, or more than 10
	CodeInvalidCallback      = 21609 // StatusCallback is not a valid URL
	CodeCannotRoute          = 21612 // magic To +15005550002
	CodeNoGeoPermission      = 21408 // magic To +15005550003
	CodeOptedOut             = 21610 // magic To +15005550004
	CodeNotMobile            = 21614 // magic To +15005550009
	CodeFromNotOwned         = 21606 // magic From +15005550007
	CodeQueueFull            = 21611 // magic From +15005550008
	CodeRateLimited          = 20429 // HTTP 429
	CodeAuthenticationFailed = 20003 // HTTP 401
	CodeNotFound             = 20404 // HTTP 404
	CodeInternalError        = 20500 // HTTP 500
)

// Twilio's magic test numbers (reference/twilio.md §7). They apply with or without the
// whatsapp: prefix.
const (
	MagicValid          = "+15005550006" // passes every check (as From)
	MagicInvalid        = "+15005550001" // To: 21211, From: 21212
	MagicCannotRoute    = "+15005550002" // To: 21612
	MagicNoPermission   = "+15005550003" // To: 21408
	MagicOptedOut       = "+15005550004" // To: 21610
	MagicFromNotOwned   = "+15005550007" // From: 21606
	MagicFromQueueFull  = "+15005550008" // From: 21611
	MagicNotMobile      = "+15005550009" // To: 21614
	whatsappPrefix      = "whatsapp:"
	contentSIDPattern   = `^HX[0-9a-fA-F]{32}$`
	e164Pattern         = `^\+[1-9][0-9]{6,14}$`
	messagingSIDPattern = `^MG[0-9a-fA-F]{32}$`
)

var (
	e164Re       = regexp.MustCompile(e164Pattern)
	contentSIDRe = regexp.MustCompile(contentSIDPattern)
	msgSvcSIDRe  = regexp.MustCompile(messagingSIDPattern)
)

// parseAddress reads "whatsapp:+E164" or "+E164" and returns the E.164 number.
func parseAddress(addr string) (string, bool) {
	number := strings.TrimPrefix(addr, whatsappPrefix)
	if !e164Re.MatchString(number) {
		return "", false
	}
	return number, true
}

// sameNumber compares two addresses ignoring the whatsapp: prefix and surrounding spaces.
func sameNumber(a, b string) bool {
	norm := func(s string) string { return strings.TrimPrefix(strings.TrimSpace(s), whatsappPrefix) }
	return norm(a) == norm(b)
}

// createRequest is a validated create.
type createRequest struct {
	To, From, MessagingServiceSID string
	Body, ContentSID              string
	ContentVariables              string
	MediaURLs                     []string
	StatusCallback                string
}

// validateCreate checks a create form as Twilio does, in Twilio's order of concern:
// addresses, the magic numbers, then content, then the callback URL.
func validateCreate(form url.Values, sender string) (createRequest, *apiError) {
	req := createRequest{
		To: form.Get("To"), From: form.Get("From"), MessagingServiceSID: form.Get("MessagingServiceSid"),
		Body: form.Get("Body"), ContentSID: form.Get("ContentSid"), ContentVariables: form.Get("ContentVariables"),
		MediaURLs: form["MediaUrl"], StatusCallback: form.Get("StatusCallback"),
	}
	if req.To == "" {
		return req, badRequest(CodeToRequired, "A 'To' phone number is required.")
	}
	to, ok := parseAddress(req.To)
	if !ok {
		return req, badRequest(CodeInvalidTo, "The 'To' number %s is not a valid phone number.", req.To)
	}
	if req.MessagingServiceSID != "" && !msgSvcSIDRe.MatchString(req.MessagingServiceSID) {
		return req, badRequest(20001, "Invalid MessagingServiceSid %q.", req.MessagingServiceSID)
	}
	if req.From == "" {
		if req.MessagingServiceSID == "" {
			return req, badRequest(CodeFromRequired, "A 'From' phone number is required.")
		}
		// The service picks a sender from its pool: here, always the configured one, on the
		// channel of To.
		req.From, _ = parseAddress(sender)
		if strings.HasPrefix(req.To, whatsappPrefix) {
			req.From = whatsappPrefix + req.From
		}
	}
	from, ok := parseAddress(req.From)
	if !ok {
		return req, badRequest(CodeInvalidFrom,
			"The 'From' number %s is not a valid phone number, shortcode, or alphanumeric sender ID.", req.From)
	}
	if strings.HasPrefix(req.To, whatsappPrefix) != strings.HasPrefix(req.From, whatsappPrefix) {
		return req, badRequest(CodeChannelMismatch,
			"Invalid From and To pair. From and To should be of the same channel.")
	}
	switch from {
	case MagicInvalid:
		return req, badRequest(CodeInvalidFrom,
			"The 'From' number %s is not a valid phone number, shortcode, or alphanumeric sender ID.", req.From)
	case MagicFromNotOwned:
		return req, badRequest(CodeFromNotOwned,
			"The From phone number %s is not a valid, SMS-capable inbound phone number or short code for your account.", req.From)
	case MagicFromQueueFull:
		return req, badRequest(CodeQueueFull, "This 'From' number has exceeded the maximum number of queued messages.")
	}
	switch to {
	case MagicInvalid:
		return req, badRequest(CodeInvalidTo, "The 'To' number %s is not a valid phone number.", req.To)
	case MagicCannotRoute:
		return req, badRequest(CodeCannotRoute,
			"The 'To' phone number: %s, is not currently reachable using the 'From' phone number: %s via SMS.", req.To, req.From)
	case MagicNoPermission:
		return req, badRequest(CodeNoGeoPermission,
			"Permission to send an SMS has not been enabled for the region indicated by the 'To' number: %s.", req.To)
	case MagicOptedOut:
		return req, badRequest(CodeOptedOut, "Attempt to send to unsubscribed recipient")
	case MagicNotMobile:
		return req, badRequest(CodeNotMobile, "To number: %s, is not a mobile number", to)
	}
	if req.ContentVariables != "" && req.ContentSID == "" {
		return req, badRequest(CodeContentSIDRequired,
			"A ContentSid must be specified if ContentVariables are provided in the request.")
	}
	if req.ContentSID != "" && !contentSIDRe.MatchString(req.ContentSID) {
		return req, badRequest(CodeInvalidContentSID, "The ContentSid is Invalid.")
	}
	if req.ContentVariables != "" && !validContentVariables(req.ContentVariables) {
		return req, badRequest(CodeInvalidContentVars, "The ContentVariables Parameter is invalid.")
	}
	if req.Body == "" && req.ContentSID == "" && len(req.MediaURLs) == 0 {
		return req, badRequest(CodeBodyRequired, "Message body is required.")
	}
	if utf8.RuneCountInString(req.Body) > maxBodyChars {
		return req, badRequest(CodeBodyTooLong, "The concatenated message body exceeds the %d character limit.", maxBodyChars)
	}
	if len(req.MediaURLs) > maxMediaURLs {
		return req, badRequest(CodeInvalidMediaURL, "Too many media URLs: %d (at most %d).", len(req.MediaURLs), maxMediaURLs)
	}
	for _, m := range req.MediaURLs {
		if !validURL(m) {
			return req, badRequest(CodeInvalidMediaURL, "Invalid media URL(s): %s", m)
		}
	}
	if req.StatusCallback != "" && !validURL(req.StatusCallback) {
		return req, badRequest(CodeInvalidCallback, "The StatusCallback URL %s is not a valid URL.", req.StatusCallback)
	}
	return req, nil
}

// validContentVariables: a JSON object of string values, none empty (Twilio's 21656 page).
func validContentVariables(s string) bool {
	var vars map[string]*string
	if err := json.Unmarshal([]byte(s), &vars); err != nil || vars == nil {
		return false
	}
	for k, v := range vars {
		if k == "" || v == nil || *v == "" {
			return false
		}
	}
	return true
}

// validURL: absolute http(s), a host without underscores (Twilio refuses those in callbacks).
func validURL(s string) bool {
	u, err := url.Parse(s)
	return err == nil && (u.Scheme == "http" || u.Scheme == "https") && u.Host != "" &&
		!strings.Contains(u.Hostname(), "_")
}
