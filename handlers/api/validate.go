package api

import (
	"fmt"
	"regexp"
	"time"

	"github.com/nyaruka/phonenumbers"

	"herald/commands"
	"herald/events"
)

// Limits on user-supplied values.
const (
	maxAttributes   = 200
	maxAttributeKey = 64
	maxName         = 200
	maxTopics       = 100
)

var (
	localePattern   = regexp.MustCompile(`^[a-zA-Z]{2,3}([-_][a-zA-Z0-9]{2,8})*$`)
	attrKeyPattern  = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_.-]*$`)
	resourceIDRegex = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$`)
)

// fieldErrors collects the problems of one request.
type fieldErrors []FieldError

func (f *fieldErrors) add(field, format string, args ...any) {
	*f = append(*f, FieldError{Field: field, Reason: fmt.Sprintf(format, args...)})
}

func (f fieldErrors) err() error {
	if len(f) == 0 {
		return nil
	}
	return invalid(f...)
}

func checkLocale(errs *fieldErrors, field string, v *string) {
	if v != nil && *v != "" && !localePattern.MatchString(*v) {
		errs.add(field, "%q is not a locale like es or es-PE", *v)
	}
}

func checkTimezone(errs *fieldErrors, field string, v *string) {
	if v == nil || *v == "" {
		return
	}
	if _, err := time.LoadLocation(*v); err != nil || *v == "Local" {
		errs.add(field, "%q is not an IANA time zone like America/Lima", *v)
	}
}

func checkConsent(errs *fieldErrors, field, v string, required bool) {
	switch {
	case v == "" && !required:
	case v == events.ConsentOptIn, v == events.ConsentOptOut:
	default:
		errs.add(field, "must be OPT_IN or OPT_OUT")
	}
}

func checkAttributes(errs *fieldErrors, attrs map[string]any) {
	if len(attrs) > maxAttributes {
		errs.add("attributes", "has %d keys; at most %d", len(attrs), maxAttributes)
	}
	for k := range attrs {
		if len(k) > maxAttributeKey || !attrKeyPattern.MatchString(k) {
			errs.add("attributes."+k, "keys are letters, digits, _ . - (starting with a letter or _), at most %d characters", maxAttributeKey)
		}
	}
}

// checkTopic normalizes a topic the way inbound SUBSCRIBE does, refusing one that is not
// already a slug so the API and WhatsApp name topics alike.
func checkTopic(errs *fieldErrors, field, topic string) string {
	slug := commands.Slug(topic)
	if slug == "" || slug != topic {
		errs.add(field, "%q is not a topic slug (lower case letters, digits and -); did you mean %q?", topic, slug)
	}
	return slug
}

func checkName(errs *fieldErrors, field, v string) {
	switch {
	case v == "":
		errs.add(field, "is required")
	case len([]rune(v)) > maxName:
		errs.add(field, "is longer than %d characters", maxName)
	}
}

// exampleNumber is an E.164 example for a region ("" for none), to validate a region code.
func exampleNumber(region string) string {
	n := phonenumbers.GetExampleNumber(region)
	if n == nil {
		return ""
	}
	return phonenumbers.Format(n, phonenumbers.E164)
}
