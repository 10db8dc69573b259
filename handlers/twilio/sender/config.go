package sender

import (
	"errors"
	"fmt"
	"net/url"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// DefaultTimeout bounds one HTTP request to Twilio when Config.Timeout is zero. It matches the
// SDK's own default client.
const DefaultTimeout = 10 * time.Second

// StatusPath is where Herald receives status callbacks (handlers/twilio serves it). It is
// repeated here rather than imported so that this package does not depend on the webhook
// package.
const StatusPath = "/webhooks/twilio/status"

// ChannelPrefix marks a WhatsApp address in Twilio's To and From.
const ChannelPrefix = "whatsapp:"

// Config configures a Sender. Every string comes from the environment variable named in its
// comment; Validate names that variable in each problem it reports.
type Config struct {
	// AccountSID is the Twilio account (TWILIO_ACCOUNT_SID): "AC" and letters or digits.
	AccountSID string
	// AuthToken is the account's auth token (TWILIO_AUTH_TOKEN): letters and digits.
	AuthToken string
	// From is Herald's WhatsApp sender (TWILIO_FROM), "whatsapp:+E164" or a plain "+E164";
	// either way it is sent as "whatsapp:+E164".
	From string
	// APIURL replaces https://api.twilio.com (TWILIO_API_URL), e.g. the simulator's
	// "http://127.0.0.1:8089". Empty means the real Twilio. A path is kept as a prefix.
	APIURL string
	// PublicBaseURL is the URL at which Twilio reaches Herald (PUBLIC_BASE_URL). Each message's
	// StatusCallback is PublicBaseURL + StatusPath + "?message_id=<uuid>&attempt=<n>".
	PublicBaseURL string
	// Timeout bounds each HTTP request to Twilio, response body included (DefaultTimeout if 0).
	Timeout time.Duration
	// Metrics registers the client's metrics (metrics.go); nil: kept but not exported.
	Metrics prometheus.Registerer
}

// Validate lists every problem with the configuration at once, each naming its environment
// variable.
func (c Config) Validate() error {
	var errs []error
	switch {
	case c.AccountSID == "":
		errs = append(errs, errors.New("TWILIO_ACCOUNT_SID: required"))
	case !strings.HasPrefix(c.AccountSID, "AC"):
		errs = append(errs, fmt.Errorf("TWILIO_ACCOUNT_SID: %q does not start with AC", c.AccountSID))
	case !alphanumeric(c.AccountSID):
		// twilio-go refuses such a username locally (error 21222) without calling Twilio.
		errs = append(errs, fmt.Errorf("TWILIO_ACCOUNT_SID: %q must contain only letters and digits", c.AccountSID))
	}
	switch {
	case c.AuthToken == "":
		errs = append(errs, errors.New("TWILIO_AUTH_TOKEN: required"))
	case !alphanumeric(c.AuthToken):
		// twilio-go refuses such a password locally (error 21224). The token is not echoed.
		errs = append(errs, errors.New("TWILIO_AUTH_TOKEN: must contain only letters and digits"))
	}
	if c.From == "" {
		errs = append(errs, errors.New("TWILIO_FROM: required (Herald's WhatsApp sender, whatsapp:+E164)"))
	} else if _, err := normalizeAddress(c.From); err != nil {
		errs = append(errs, fmt.Errorf("TWILIO_FROM: %w", err))
	}
	if c.APIURL != "" {
		u, err := url.Parse(c.APIURL)
		switch {
		case err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "":
			errs = append(errs, fmt.Errorf("TWILIO_API_URL: %q is not an absolute http(s) URL (leave it empty for the real Twilio)", c.APIURL))
		case u.RawQuery != "" || u.Fragment != "" || u.User != nil:
			errs = append(errs, fmt.Errorf("TWILIO_API_URL: %q must not carry a query, fragment or user info", c.APIURL))
		}
	}
	if c.PublicBaseURL == "" {
		errs = append(errs, errors.New("PUBLIC_BASE_URL: required (status callbacks are sent to it)"))
	} else {
		u, err := url.Parse(c.PublicBaseURL)
		switch {
		case err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "":
			errs = append(errs, fmt.Errorf("PUBLIC_BASE_URL: %q is not an absolute http(s) URL", c.PublicBaseURL))
		case u.RawQuery != "" || u.Fragment != "":
			errs = append(errs, fmt.Errorf("PUBLIC_BASE_URL: %q must not carry a query or fragment", c.PublicBaseURL))
		case strings.Contains(u.Hostname(), "_"):
			// Twilio rejects a StatusCallback whose host name has an underscore.
			errs = append(errs, fmt.Errorf("PUBLIC_BASE_URL: host %q contains an underscore, which Twilio refuses in a StatusCallback", u.Hostname()))
		}
	}
	if c.Timeout < 0 {
		errs = append(errs, fmt.Errorf("twilio sender: Timeout must be ≥ 0, got %s", c.Timeout))
	}
	return errors.Join(errs...)
}

// normalizeAddress accepts "+E164" or "whatsapp:+E164" and returns "whatsapp:+E164". The check
// is syntactic (a plus, then 2 to 15 digits, the first not 0); whether the number exists is
// Twilio's answer (21211, 63003).
func normalizeAddress(addr string) (string, error) {
	e164, ok := strings.CutPrefix(strings.TrimSpace(addr), ChannelPrefix)
	if !ok {
		e164 = strings.TrimSpace(addr)
	}
	if !isE164(e164) {
		return "", fmt.Errorf("%q is not +E.164 or whatsapp:+E.164", addr)
	}
	return ChannelPrefix + e164, nil
}

func isE164(s string) bool {
	if len(s) < 3 || len(s) > 16 || s[0] != '+' || s[1] == '0' {
		return false
	}
	for i := 1; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

func alphanumeric(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9') {
			return false
		}
	}
	return true
}
