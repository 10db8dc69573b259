package commands

import (
	"errors"
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

// Phone rejection reasons (ClassifyPhone), stable codes for reports.
const (
	PhoneMissing          = "missing_phone"
	PhoneUnparseable      = "unparseable"
	PhoneInvalidForRegion = "invalid_for_region"
	PhoneTooShort         = "too_short"
	PhoneTooLong          = "too_long"
)

// PhoneNotMobile is ClassifyPhone's warning for a valid number the metadata says is a fixed
// line only: it is accepted (WhatsApp runs on some landlines) but worth a look.
const PhoneNotMobile = "not_mobile"

// PhoneCheck is what ClassifyPhone found: the E.164 form and, for a rejected number, the
// reason code and a sentence; Warning is PhoneNotMobile or "".
type PhoneCheck struct {
	E164    string
	Reason  string
	Detail  string
	Warning string
	Region  string // ISO 3166 region of the number ("" when it has none)
	// Zones are the IANA time zones the number's prefix spans (none when unknown): with more
	// than one, the number alone may not say its local time.
	Zones []string
}

// ClassifyPhone reads a phone number in the formats NormalizePhone accepts and says why it is
// not a valid number when it is not, with one of the reason codes above. It never guesses: a
// value with letters (a vanity number, a name in the wrong column) is unparseable.
func ClassifyPhone(raw, defaultRegion string) PhoneCheck {
	s := strings.TrimSpace(raw)
	for _, prefix := range []string{"whatsapp:", "tel:"} {
		if len(s) >= len(prefix) && strings.EqualFold(s[:len(prefix)], prefix) {
			s = strings.TrimSpace(s[len(prefix):])
		}
	}
	switch {
	case s == "":
		return PhoneCheck{Reason: PhoneMissing, Detail: "no phone number"}
	case len(s) > 64:
		return PhoneCheck{Reason: PhoneTooLong, Detail: "too long to be a phone number"}
	}
	for _, r := range s {
		if !(r >= '0' && r <= '9') && !strings.ContainsRune("+-.() /\u00a0", r) {
			return PhoneCheck{Reason: PhoneUnparseable, Detail: fmt.Sprintf("%q is not allowed in a phone number", r)}
		}
	}
	if strings.HasPrefix(s, "00") {
		s = "+" + s[2:]
	}
	digits := strings.Map(keepDigitsAndPlus, s)
	if strings.Count(digits, "+") > 1 || strings.LastIndex(digits, "+") > 0 {
		return PhoneCheck{Reason: PhoneUnparseable, Detail: "+ may only start the number"}
	}
	if strings.HasPrefix(digits, "+521") && len(digits) == 14 {
		s = "+52" + digits[4:]
	}
	region := strings.ToUpper(defaultRegion)
	if !strings.HasPrefix(s, "+") && region == "" {
		return PhoneCheck{Reason: PhoneUnparseable, Detail: "no country code (start it with +) and no default region"}
	}
	parsed, err := phonenumbers.Parse(s, region)
	switch {
	case errors.Is(err, phonenumbers.ErrTooShortNSN), errors.Is(err, phonenumbers.ErrTooShortAfterIDD):
		return PhoneCheck{Reason: PhoneTooShort, Detail: "too short to be a phone number"}
	case errors.Is(err, phonenumbers.ErrNumTooLong):
		return PhoneCheck{Reason: PhoneTooLong, Detail: "too long to be a phone number"}
	case err != nil:
		return PhoneCheck{Reason: PhoneUnparseable, Detail: "not a phone number: " + err.Error()}
	}
	// GetNumberType is UNKNOWN exactly when IsValidNumber is false (both match the national
	// number against the region's patterns); calling it alone halves the cost per number.
	typ := phonenumbers.GetNumberType(parsed)
	if typ == phonenumbers.UNKNOWN {
		switch phonenumbers.IsPossibleNumberWithReason(parsed) {
		case phonenumbers.TOO_SHORT:
			return PhoneCheck{Reason: PhoneTooShort, Detail: "too short for its country"}
		case phonenumbers.TOO_LONG:
			return PhoneCheck{Reason: PhoneTooLong, Detail: "too long for its country"}
		case phonenumbers.INVALID_COUNTRY_CODE:
			return PhoneCheck{Reason: PhoneUnparseable, Detail: "unknown country code"}
		}
		where := phonenumbers.GetRegionCodeForCountryCode(int(parsed.GetCountryCode()))
		return PhoneCheck{Reason: PhoneInvalidForRegion, Detail: "not a valid number in " + where}
	}
	out := PhoneCheck{E164: phonenumbers.Format(parsed, phonenumbers.E164)}
	r := ""
	if regions := phonenumbers.GetRegionCodesForCountryCode(int(parsed.GetCountryCode())); len(regions) == 1 {
		r = regions[0]
	} else {
		r = phonenumbers.GetRegionCodeForNumber(parsed)
	}
	if len(r) == 2 && r != phonenumbers.UNKNOWN_REGION {
		out.Region = r
	}
	if zones, err := phonenumbers.GetTimezonesForNumber(parsed); err == nil && !(len(zones) == 1 && zones[0] == phonenumbers.UNKNOWN_TIMEZONE) {
		out.Zones = zones
	}
	if typ == phonenumbers.FIXED_LINE {
		out.Warning = PhoneNotMobile
	}
	return out
}
