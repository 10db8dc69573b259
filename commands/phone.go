package commands

import (
	"fmt"
	"strings"

	"github.com/nyaruka/phonenumbers"
)

// PhoneError says why a phone number was refused.
type PhoneError struct {
	Input  string
	Reason string
}

func (e *PhoneError) Error() string { return fmt.Sprintf("phone %q: %s", e.Input, e.Reason) }

// NormalizePhone turns a phone number in any common format ("+51 987 654 321", "(415) 555-0123",
// "0044 20 7946 0958", "whatsapp:+14155550123") into E.164. A number without a country code is
// read in defaultRegion (ISO 3166 alpha-2, e.g. "PE"); without one it must start with +.
// Errors are *PhoneError.
func NormalizePhone(raw, defaultRegion string) (string, error) {
	s := strings.TrimSpace(strings.TrimPrefix(strings.TrimSpace(raw), "whatsapp:"))
	if s == "" {
		return "", &PhoneError{Input: raw, Reason: "is empty"}
	}
	if len(s) > 64 {
		return "", &PhoneError{Input: raw[:64] + "…", Reason: "is too long to be a phone number"}
	}
	if strings.HasPrefix(s, "00") {
		s = "+" + s[2:]
	}
	// WhatsApp still writes Mexican mobiles with the "1" Mexico dropped from its numbering in
	// 2019 (+52 1 55 …); the number today is +52 55 ….
	if digits := strings.Map(keepDigitsAndPlus, s); strings.HasPrefix(digits, "+521") && len(digits) == 14 {
		s = "+52" + digits[4:]
	}
	region := strings.ToUpper(defaultRegion)
	if !strings.HasPrefix(s, "+") && region == "" {
		return "", &PhoneError{Input: raw, Reason: "has no country code (start it with +) and no default region is set"}
	}
	parsed, err := phonenumbers.Parse(s, region)
	if err != nil {
		return "", &PhoneError{Input: raw, Reason: "is not a phone number: " + err.Error()}
	}
	if !phonenumbers.IsValidNumber(parsed) {
		return "", &PhoneError{Input: raw, Reason: "is not a valid number for its country"}
	}
	return phonenumbers.Format(parsed, phonenumbers.E164), nil
}

func keepDigitsAndPlus(r rune) rune {
	if (r >= '0' && r <= '9') || r == '+' {
		return r
	}
	return -1
}

// PhoneCountry is the ISO 3166 region of an E.164 number ("" when it has none, e.g. +800).
func PhoneCountry(e164 string) string {
	parsed, err := phonenumbers.Parse(e164, "")
	if err != nil {
		return ""
	}
	region := phonenumbers.GetRegionCodeForNumber(parsed)
	if region == "ZZ" || region == "001" {
		return ""
	}
	return region
}
