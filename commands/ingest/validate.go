package ingest

import (
	"fmt"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/text/language"

	"herald/commands"
	"herald/events"
)

// Rejection reasons besides the phone ones (commands.Phone*).
const (
	ReasonMalformedRow     = "malformed_row"
	ReasonInvalidConsent   = "invalid_consent"
	ReasonInvalidTopic     = "invalid_topic"
	ReasonInvalidAttribute = "invalid_attribute"
)

// Warning codes: the row is imported, but not all of it, or it deserves a look.
const (
	WarnNotMobile         = commands.PhoneNotMobile
	WarnInvalidTimezone   = "invalid_timezone"
	WarnUnknownLocale     = "unknown_locale"
	WarnAttributeType     = "attribute_type_changed"
	WarnConsentConflict   = "consent_conflict"
	WarnTimezoneAmbiguous = "timezone_ambiguous"
	codeMergedInto        = "merged_into"
)

// Limits on one row's values (the same as the API's).
const (
	maxAttributes   = 200
	maxAttributeKey = 64
	maxTopics       = 100
)

var attrKeyPattern = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_.-]*$`)

// candidate is a valid row, normalized.
type candidate struct {
	num      int
	phone    string // E.164
	region   string
	attrs    map[string]any
	locale   string // "" when not given (or not usable)
	timezone string
	consent  string // OPT_IN, OPT_OUT or ""
	topics   []string
	// multiZone: the number's country keeps several clocks, so it needs a time zone.
	multiZone bool
}

// zoneCache remembers time.LoadLocation answers (it reads the zone database each call), and
// what else validation asks again and again: attribute keys, topic slugs. phones classifies
// phone numbers (nil: commands.ClassifyPhone, the same answers slower).
type zoneCache struct {
	mu      sync.Mutex
	zones   map[string]bool
	differs map[string]bool
	keys    sync.Map // attribute key → valid
	nkeys   atomic.Int64
	slugs   sync.Map // topic → its slug
	nslugs  atomic.Int64
	locales sync.Map // locale → known
	nlocs   atomic.Int64
	phones  *commands.PhoneClassifier
}

func (z *zoneCache) classify(phone, region string) commands.PhoneCheck {
	if z.phones == nil {
		return commands.ClassifyPhone(phone, region)
	}
	return z.phones.Classify(phone, region)
}

// knownLocale reports whether language.Parse reads the locale, remembered.
func (z *zoneCache) knownLocale(locale string) bool {
	if ok, seen := z.locales.Load(locale); seen {
		return ok.(bool)
	}
	_, err := language.Parse(locale)
	ok := err == nil && len(locale) <= 35
	if z.nlocs.Add(1) <= 10000 {
		z.locales.Store(locale, ok)
	}
	return ok
}

// slug is commands.Slug, remembered (it allocates a Unicode normalizer per call).
func (z *zoneCache) slug(topic string) string {
	if s, seen := z.slugs.Load(topic); seen {
		return s.(string)
	}
	s := commands.Slug(topic)
	if z.nslugs.Add(1) <= 10000 {
		z.slugs.Store(topic, s)
	}
	return s
}

func (z *zoneCache) valid(name string) bool {
	z.mu.Lock()
	defer z.mu.Unlock()
	if ok, seen := z.zones[name]; seen {
		return ok
	}
	if z.zones == nil {
		z.zones = map[string]bool{}
	}
	_, err := time.LoadLocation(name)
	ok := err == nil && name != "Local" && name != ""
	if len(z.zones) < 10000 {
		z.zones[name] = ok
	}
	return ok
}

// multiZoneCountries keep clocks at different offsets in places a phone number does not tell
// apart (mobile ranges are national). The phone metadata gives one zone for most mobile
// prefixes (Moscow for every Russian mobile), so the country decides.
var multiZoneCountries = map[string]bool{
	"AU": true, "BR": true, "CA": true, "CD": true, "CL": true, "EC": true, "ES": true, "FM": true, "ID": true,
	"KI": true, "KZ": true, "MN": true, "MX": true, "NZ": true, "PF": true, "PT": true, "RU": true, "US": true,
}

func regionName(region string) string {
	if region == "" {
		return "the number's region"
	}
	return region
}

// validKey checks an attribute key, remembering the answer (a file repeats its keys; the
// validating goroutines read the map without a lock).
func (z *zoneCache) validKey(k string) bool {
	if ok, seen := z.keys.Load(k); seen {
		return ok.(bool)
	}
	ok := len(k) <= maxAttributeKey && attrKeyPattern.MatchString(k)
	if z.nkeys.Add(1) <= 10000 {
		z.keys.Store(k, ok)
	}
	return ok
}

// offsetProbes are the instants at which zones are compared: a winter and a summer day.
var offsetProbes = []time.Time{time.Date(2026, 1, 15, 12, 0, 0, 0, time.UTC), time.Date(2026, 7, 15, 12, 0, 0, 0, time.UTC)}

// differ reports whether the zones keep different clocks (London and Guernsey do not).
func (z *zoneCache) differ(names []string) bool {
	key := strings.Join(names, ",")
	z.mu.Lock()
	defer z.mu.Unlock()
	if d, seen := z.differs[key]; seen {
		return d
	}
	if z.differs == nil {
		z.differs = map[string]bool{}
	}
	d := false
	var first []int
	for i, name := range names {
		loc, err := time.LoadLocation(name)
		if err != nil {
			continue
		}
		var offs []int
		for _, at := range offsetProbes {
			_, off := at.In(loc).Zone()
			offs = append(offs, off)
		}
		if i == 0 || first == nil {
			first = offs
		} else if offs[0] != first[0] || offs[1] != first[1] {
			d = true
		}
	}
	if len(z.differs) < 10000 {
		z.differs[key] = d
	}
	return d
}

// consentValues are the spellings of consent a spreadsheet uses.
var consentValues = map[string]string{
	"opt_in": events.ConsentOptIn, "optin": events.ConsentOptIn, "opt-in": events.ConsentOptIn, "opted_in": events.ConsentOptIn,
	"yes": events.ConsentOptIn, "y": events.ConsentOptIn, "true": events.ConsentOptIn, "1": events.ConsentOptIn, "subscribed": events.ConsentOptIn,
	"opt_out": events.ConsentOptOut, "optout": events.ConsentOptOut, "opt-out": events.ConsentOptOut, "opted_out": events.ConsentOptOut,
	"no": events.ConsentOptOut, "n": events.ConsentOptOut, "false": events.ConsentOptOut, "0": events.ConsentOptOut, "unsubscribed": events.ConsentOptOut,
}

// validate checks a row: a candidate, or the rejection; warnings either way.
func validate(row Row, region string, zones *zoneCache) (candidate, *events.ImportIssue, []events.ImportIssue) {
	reject := func(code, value, detail string) (candidate, *events.ImportIssue, []events.ImportIssue) {
		return candidate{}, &events.ImportIssue{Row: row.Num, Code: code, Value: cut(value, 200), Detail: detail}, nil
	}
	if row.Malformed != "" {
		return reject(ReasonMalformedRow, row.Raw, row.Malformed)
	}
	pc := zones.classify(row.Phone, region)
	if pc.Reason != "" {
		return reject(pc.Reason, row.Phone, pc.Detail)
	}
	c := candidate{num: row.Num, phone: pc.E164, region: pc.Region}
	if row.Consent != "" {
		v, ok := consentValues[strings.ToLower(row.Consent)]
		if !ok {
			return reject(ReasonInvalidConsent, row.Consent, "consent is OPT_IN or OPT_OUT (or yes/no, true/false, 1/0)")
		}
		c.consent = v
	}
	if len(row.Topics) > maxTopics {
		return reject(ReasonInvalidTopic, strings.Join(row.Topics, ";"), fmt.Sprintf("at most %d topics", maxTopics))
	}
	for _, t := range row.Topics {
		slug := zones.slug(t)
		if slug == "" || slug != strings.ToLower(t) {
			return reject(ReasonInvalidTopic, t, fmt.Sprintf("topics are slugs (lower case letters, digits and -); did you mean %q?", slug))
		}
		c.topics = append(c.topics, slug)
	}
	if len(row.Attrs) > maxAttributes {
		return reject(ReasonInvalidAttribute, "", fmt.Sprintf("%d attributes; at most %d", len(row.Attrs), maxAttributes))
	}
	for k := range row.Attrs {
		if !zones.validKey(k) {
			return reject(ReasonInvalidAttribute, k, "attribute keys are letters, digits, _ . - (starting with a letter or _), at most 64 characters")
		}
	}
	c.attrs = row.Attrs
	var warnings []events.ImportIssue
	warn := func(code, value, detail string) {
		warnings = append(warnings, events.ImportIssue{Row: row.Num, Code: code, Value: cut(value, 200), Detail: detail})
	}
	if pc.Warning != "" {
		warn(pc.Warning, row.Phone, "the number is a fixed line; WhatsApp may not reach it")
	}
	if row.Locale != "" {
		if !zones.knownLocale(row.Locale) {
			warn(WarnUnknownLocale, row.Locale, "not a known locale like es or es-PE; the locale was not set")
		} else {
			c.locale = row.Locale
		}
	}
	if row.Timezone != "" {
		if zones.valid(row.Timezone) {
			c.timezone = row.Timezone
		} else {
			warn(WarnInvalidTimezone, row.Timezone, "not an IANA time zone like America/Lima; the time zone was not set")
		}
	}
	// Whether the row's time zone is missing is decided once duplicates are merged (decide).
	c.multiZone = multiZoneCountries[pc.Region] || len(pc.Zones) > 1 && zones.differ(pc.Zones)
	return c, nil, warnings
}

// merge folds a later row for the same phone into c: later non-empty values win.
func (c *candidate) merge(o candidate) {
	if len(o.attrs) > 0 {
		if c.attrs == nil {
			c.attrs = make(map[string]any, len(o.attrs))
		}
		for k, v := range o.attrs {
			c.attrs[k] = v
		}
	}
	if o.locale != "" {
		c.locale = o.locale
	}
	if o.timezone != "" {
		c.timezone = o.timezone
	}
	if o.consent != "" {
		c.consent = o.consent
	}
	c.multiZone = c.multiZone || o.multiZone
	for _, t := range o.topics {
		dup := false
		for _, have := range c.topics {
			dup = dup || have == t
		}
		if !dup {
			c.topics = append(c.topics, t)
		}
	}
}
