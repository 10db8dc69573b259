package commands

import (
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"

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
	e164 := phonenumbers.Format(parsed, phonenumbers.E164)
	if beyondE164(e164) {
		return "", &PhoneError{Input: raw, Reason: "is longer than the 15 digits E.164 allows"}
	}
	return e164, nil
}

// beyondE164 reports a number libphonenumber calls valid that has more digits than E.164's 15
// (some Japanese 0066… service numbers): WhatsApp addresses are E.164, so Herald refuses them.
func beyondE164(e164 string) bool { return len(e164) > 1+15 }

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
// PhoneClassifier gives the same answers faster, for bulk use.
func ClassifyPhone(raw, defaultRegion string) PhoneCheck {
	s, region, early, done := preparePhone(raw, defaultRegion)
	if done {
		return early
	}
	return classifyParsed(s, region)
}

// preparePhone does ClassifyPhone's checks before libphonenumber: the value to parse and the
// default region, or (done) the verdict already.
func preparePhone(raw, defaultRegion string) (s, region string, verdict PhoneCheck, done bool) {
	s = strings.TrimSpace(raw)
	for _, prefix := range []string{"whatsapp:", "tel:"} {
		if len(s) >= len(prefix) && strings.EqualFold(s[:len(prefix)], prefix) {
			s = strings.TrimSpace(s[len(prefix):])
		}
	}
	switch {
	case s == "":
		return "", "", PhoneCheck{Reason: PhoneMissing, Detail: "no phone number"}, true
	case len(s) > 64:
		return "", "", PhoneCheck{Reason: PhoneTooLong, Detail: "too long to be a phone number"}, true
	}
	for _, r := range s {
		if !(r >= '0' && r <= '9') && !strings.ContainsRune("+-.() /\u00a0", r) {
			return "", "", PhoneCheck{Reason: PhoneUnparseable, Detail: fmt.Sprintf("%q is not allowed in a phone number", r)}, true
		}
	}
	if strings.HasPrefix(s, "00") {
		s = "+" + s[2:]
	}
	digits := strings.Map(keepDigitsAndPlus, s)
	if strings.Count(digits, "+") > 1 || strings.LastIndex(digits, "+") > 0 {
		return "", "", PhoneCheck{Reason: PhoneUnparseable, Detail: "+ may only start the number"}, true
	}
	if strings.HasPrefix(digits, "+521") && len(digits) == 14 {
		s = "+52" + digits[4:]
	}
	region = strings.ToUpper(defaultRegion)
	if !strings.HasPrefix(s, "+") && region == "" {
		return "", "", PhoneCheck{Reason: PhoneUnparseable, Detail: "no country code (start it with +) and no default region"}, true
	}
	return s, region, PhoneCheck{}, false
}

// classifyParsed is ClassifyPhone past preparePhone: libphonenumber's parse and checks.
func classifyParsed(s, region string) PhoneCheck {
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
		return invalidPhone(parsed)
	}
	out := PhoneCheck{E164: phonenumbers.Format(parsed, phonenumbers.E164)}
	r := ""
	if regions := phonenumbers.GetRegionCodesForCountryCode(int(parsed.GetCountryCode())); len(regions) == 1 {
		r = regions[0]
	} else {
		r = phonenumbers.GetRegionCodeForNumber(parsed)
	}
	return finishPhone(out, r, typ)
}

// invalidPhone says why a parsed number that is not valid is not.
func invalidPhone(parsed *phonenumbers.PhoneNumber) PhoneCheck {
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

// finishPhone adds a valid number's region, time zones and warning.
func finishPhone(out PhoneCheck, region string, typ phonenumbers.PhoneNumberType) PhoneCheck {
	if beyondE164(out.E164) {
		return PhoneCheck{Reason: PhoneTooLong, Detail: "longer than the 15 digits E.164 allows"}
	}
	if len(region) == 2 && region != phonenumbers.UNKNOWN_REGION {
		out.Region = region
	}
	if zones, err := phonenumbers.GetTimezonesForPrefix(out.E164); err == nil && !(len(zones) == 1 && zones[0] == phonenumbers.UNKNOWN_TIMEZONE) {
		out.Zones = zones
	}
	if typ == phonenumbers.FIXED_LINE {
		out.Warning = PhoneNotMobile
	}
	return out
}

// PhoneClassifier answers exactly as ClassifyPhone, several times faster for a number written
// in international form ("+51987654321", "0051 987 654 321"): it reads the country code and the
// national number without libphonenumber's general parser (extension, IDD and alphabetic
// handling a number of digits cannot need) and matches the national number against the
// region's patterns compiled once, each pattern once (libphonenumber rebuilds every pattern's
// key and runs each matching pattern twice). Whatever the fast path is not certain to read as
// libphonenumber does — a national prefix that parsing could strip, an Italian leading zero, a
// non-geographic code — goes the way of ClassifyPhone; an invalid number read the same way
// gets ClassifyPhone's reason from the same checks. Safe for concurrent use.
type PhoneClassifier struct {
	metadata map[string]*phonenumbers.PhoneMetadata // by region
	tables   sync.Map                               // region → *phoneRegion, built on first use
}

// NewPhoneClassifier reads libphonenumber's metadata.
func NewPhoneClassifier() (*PhoneClassifier, error) {
	coll, err := phoneMetadata()
	if err != nil {
		return nil, fmt.Errorf("phone metadata: %w", err)
	}
	p := &PhoneClassifier{metadata: map[string]*phonenumbers.PhoneMetadata{}}
	for _, m := range coll.GetMetadata() {
		if id := m.GetId(); id != "" && id != phonenumbers.REGION_CODE_FOR_NON_GEO_ENTITY {
			p.metadata[id] = m
		}
	}
	return p, nil
}

// phoneMetadata parses libphonenumber's embedded metadata once (MetadataCollection is not safe
// for concurrent first calls).
var phoneMetadata = sync.OnceValues(phonenumbers.MetadataCollection)

// phoneDesc is one number type's pattern, anchored, with its possible lengths.
type phoneDesc struct {
	lengths []int32
	re      *regexp.Regexp
}

func newPhoneDesc(d *phonenumbers.PhoneNumberDesc) (phoneDesc, error) {
	re, err := regexp.Compile("^(?:" + d.GetNationalNumberPattern() + ")$")
	if d == nil {
		return phoneDesc{re: re}, err
	}
	return phoneDesc{lengths: d.PossibleLength, re: re}, err
}

// match is libphonenumber's isNumberMatchingDesc.
func (d phoneDesc) match(nsn string) bool {
	if len(d.lengths) > 0 && !slices.Contains(d.lengths, int32(len(nsn))) {
		return false
	}
	return d.re.MatchString(nsn)
}

// phoneRegion is a region's metadata compiled. descs are in getNumberTypeHelper's order.
type phoneRegion struct {
	general        phoneDesc
	typed          [8]phoneDesc // premium rate … voicemail: each makes a number valid, not fixed
	fixed, mobile  phoneDesc
	sameFixed      bool
	nationalPrefix *regexp.Regexp // national prefix for parsing, at the start; nil when none
	leading        *regexp.Regexp // leading digits; nil when none
}

var typedNumbers = [8]phonenumbers.PhoneNumberType{phonenumbers.PREMIUM_RATE, phonenumbers.TOLL_FREE, phonenumbers.SHARED_COST,
	phonenumbers.VOIP, phonenumbers.PERSONAL_NUMBER, phonenumbers.PAGER, phonenumbers.UAN, phonenumbers.VOICEMAIL}

func (p *PhoneClassifier) region(id string) *phoneRegion {
	if t, ok := p.tables.Load(id); ok {
		return t.(*phoneRegion)
	}
	m := p.metadata[id]
	if m == nil {
		return nil
	}
	t := &phoneRegion{sameFixed: m.GetSameMobileAndFixedLinePattern()}
	var errs []error
	add := func(d *phonenumbers.PhoneNumberDesc) phoneDesc {
		pd, err := newPhoneDesc(d)
		errs = append(errs, err)
		return pd
	}
	t.general = add(m.GetGeneralDesc())
	for i, d := range []*phonenumbers.PhoneNumberDesc{m.GetPremiumRate(), m.GetTollFree(), m.GetSharedCost(), m.GetVoip(),
		m.GetPersonalNumber(), m.GetPager(), m.GetUan(), m.GetVoicemail()} {
		t.typed[i] = add(d)
	}
	t.fixed, t.mobile = add(m.GetFixedLine()), add(m.GetMobile())
	if np := m.GetNationalPrefixForParsing(); np != "" {
		re, err := regexp.Compile("^(?:" + np + ")")
		errs = append(errs, err)
		t.nationalPrefix = re
	}
	if ld := m.GetLeadingDigits(); ld != "" {
		re, err := regexp.Compile("^(?:" + ld + ")")
		errs = append(errs, err)
		t.leading = re
	}
	if errors.Join(errs...) != nil {
		return nil // a pattern Go cannot compile: libphonenumber would panic; the slow path decides
	}
	actual, _ := p.tables.LoadOrStore(id, t)
	return actual.(*phoneRegion)
}

// numberType is libphonenumber's getNumberTypeHelper.
func (t *phoneRegion) numberType(nsn string) phonenumbers.PhoneNumberType {
	if !t.general.match(nsn) {
		return phonenumbers.UNKNOWN
	}
	for i, d := range t.typed {
		if d.match(nsn) {
			return typedNumbers[i]
		}
	}
	if t.fixed.match(nsn) {
		if t.sameFixed || t.mobile.match(nsn) {
			return phonenumbers.FIXED_LINE_OR_MOBILE
		}
		return phonenumbers.FIXED_LINE
	}
	if !t.sameFixed && t.mobile.match(nsn) {
		return phonenumbers.MOBILE
	}
	return phonenumbers.UNKNOWN
}

// Classify is ClassifyPhone.
func (p *PhoneClassifier) Classify(raw, defaultRegion string) PhoneCheck {
	s, region, early, done := preparePhone(raw, defaultRegion)
	if done {
		return early
	}
	if out, ok := p.fast(s); ok {
		return out
	}
	return classifyParsed(s, region)
}

// fast classifies a number written as + and digits (spaces allowed), reading it as
// libphonenumber's Parse does; ok is false when it cannot be sure to.
func (p *PhoneClassifier) fast(s string) (PhoneCheck, bool) {
	if len(s) < 8 || s[0] != '+' {
		return PhoneCheck{}, false
	}
	var buf [24]byte
	digits := buf[:0]
	for i := 1; i < len(s); i++ {
		switch c := s[i]; {
		case c >= '0' && c <= '9':
			if len(digits) == len(buf) {
				return PhoneCheck{}, false
			}
			digits = append(digits, c)
		case c != ' ':
			return PhoneCheck{}, false
		}
	}
	// At least 7 digits, no leading 0: Parse reads a viable number with a country code.
	if len(digits) < 7 || digits[0] == '0' {
		return PhoneCheck{}, false
	}
	// The country code: the shortest prefix that is one (extractCountryCode).
	cc, regions := 0, []string(nil)
	for i := 1; i <= 3; i++ {
		cc = cc*10 + int(digits[i-1]-'0')
		if regions = phonenumbers.GetRegionCodesForCountryCode(cc); len(regions) > 0 {
			digits = digits[i:]
			break
		}
	}
	// Parse reads the national number against the main region's metadata; an Italian
	// leading zero, or a national prefix it could strip, is left to it.
	if len(regions) == 0 || len(digits) < 2 || len(digits) > 17 || digits[0] == '0' {
		return PhoneCheck{}, false
	}
	main := p.region(regions[0])
	if main == nil {
		return PhoneCheck{}, false // a non-geographic code (001)
	}
	nsn := string(digits)
	if main.nationalPrefix != nil && main.nationalPrefix.MatchString(nsn) {
		return PhoneCheck{}, false
	}
	// GetRegionCodeForNumber, then GetNumberType in that region.
	where := regions[0]
	if len(regions) > 1 {
		where = ""
		for _, id := range regions {
			t := p.region(id)
			if t == nil {
				return PhoneCheck{}, false
			}
			if t.leading != nil {
				if t.leading.MatchString(nsn) {
					where = id
					break
				}
			} else if t.numberType(nsn) != phonenumbers.UNKNOWN {
				where = id
				break
			}
		}
	}
	typ := phonenumbers.UNKNOWN
	if where != "" {
		t := p.region(where)
		if t == nil {
			return PhoneCheck{}, false
		}
		typ = t.numberType(nsn)
	}
	if typ == phonenumbers.UNKNOWN {
		// Not valid: what Parse would have returned, for ClassifyPhone's reasons.
		code, n := int32(cc), uint64(0)
		n, _ = strconv.ParseUint(nsn, 10, 64)
		return invalidPhone(&phonenumbers.PhoneNumber{CountryCode: &code, NationalNumber: &n}), true
	}
	return finishPhone(PhoneCheck{E164: "+" + strconv.Itoa(cc) + nsn}, where, typ), true
}
