package template

import (
	"errors"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"unicode/utf8"

	"herald/internal/jsonstr"
)

// ChannelWhatsApp is the only channel templates have today.
const ChannelWhatsApp = "whatsapp"

// Limits checked by Validate.
const (
	MaxNameChars        = 200 // a template's name
	MaxContentVariables = 100 // Twilio: at most 100 ContentVariables pairs
)

// Template is a message template as the API stores it. Variants is keyed by locale; keys are
// matched case-insensitively with "_" = "-" (Normalized rewrites them canonically).
type Template struct {
	Name          string             `json:"name"`
	Channel       string             `json:"channel"`
	DefaultLocale string             `json:"default_locale"`
	Variants      map[string]Variant `json:"variants"`
}

// Variant is a template's text in one locale. Body is free-form text with placeholders. An
// approved WhatsApp template is ContentSID (HX + 32 hex digits) with ContentVariables, a map
// from the variable's number ("1", "2", …) to an expression in body syntax ("{first_name}",
// "{first_name|amigo} {last_name|}", "{event.order_id}"). A variant needs a Body, a ContentSID,
// or both (the body then serves inside the 24-hour window and as the preview text).
//
// Variant has the same fields as events.TemplateVariant, so each converts to the other.
type Variant struct {
	Body             string            `json:"body"`
	ContentSID       string            `json:"content_sid,omitempty"`
	ContentVariables map[string]string `json:"content_variables,omitempty"`
}

// Problem is one reason a template is invalid: Path names the field
// ("variants.es-PE.body", "default_locale") with the locale key as given.
type Problem struct {
	Path   string
	Reason string
	Err    error // the cause: a *SyntaxError for body and variable problems, else an error with Reason
}

func (p Problem) Error() string { return p.Path + ": " + p.Reason }

// ValidationError carries every problem Validate found, in a stable order.
type ValidationError struct {
	Problems []Problem
}

func (e *ValidationError) Error() string {
	msgs := make([]string, len(e.Problems))
	for i, p := range e.Problems {
		msgs[i] = p.Error()
	}
	return "invalid template: " + strings.Join(msgs, "; ")
}

// Unwrap gives each problem's cause, so errors.As finds a *SyntaxError.
func (e *ValidationError) Unwrap() []error {
	errs := make([]error, len(e.Problems))
	for i, p := range e.Problems {
		errs[i] = p.Err
	}
	return errs
}

// Validate returns nil or a *ValidationError listing every problem: name, channel, default
// locale, each variant's locale key, body (syntax; fixed text alone over MaxChars),
// ContentSID and each ContentVariables entry.
func (t Template) Validate() error {
	_, err := t.Compile()
	return err
}

// Compile validates the template and prepares it for rendering many messages. The error is a
// *ValidationError.
func (t Template) Compile() (*Compiled, error) {
	var v validator
	c := &Compiled{name: t.Name, defaultIdx: -1}
	switch name := strings.TrimSpace(t.Name); {
	case name == "":
		v.add("name", "required")
	case utf8.RuneCountInString(t.Name) > MaxNameChars:
		v.add("name", fmt.Sprintf("%d characters; the limit is %d", utf8.RuneCountInString(t.Name), MaxNameChars))
	}
	if t.Channel != ChannelWhatsApp {
		v.add("channel", fmt.Sprintf("must be %q, got %q", ChannelWhatsApp, t.Channel))
	}
	if len(t.Variants) == 0 {
		v.add("variants", "at least one variant is required")
	}
	seen := map[string]string{} // canonical locale → key
	for _, key := range sortedKeys(t.Variants) {
		path := "variants." + key
		locale, err := CanonicalLocale(key)
		if err != nil {
			v.add(path, err.Error())
			continue
		}
		if other, dup := seen[locale]; dup {
			v.add(path, fmt.Sprintf("same locale as %q", other))
			continue
		}
		seen[locale] = key
		cv, ok := v.variant(path, t.Variants[key])
		if ok {
			cv.locale = locale
			c.variants = append(c.variants, cv)
		}
	}
	if t.DefaultLocale == "" {
		v.add("default_locale", "required")
	} else if def, err := CanonicalLocale(t.DefaultLocale); err != nil {
		v.add("default_locale", err.Error())
	} else if _, ok := seen[def]; !ok {
		v.add("default_locale", fmt.Sprintf("no variant for %q", t.DefaultLocale))
	} else {
		for i := range c.variants {
			if c.variants[i].locale == def {
				c.defaultIdx = i
			}
		}
	}
	if len(v.problems) > 0 {
		return nil, &ValidationError{Problems: v.problems}
	}
	return c, nil
}

type validator struct{ problems []Problem }

func (v *validator) add(path, reason string) {
	v.problems = append(v.problems, Problem{Path: path, Reason: reason, Err: errors.New(reason)})
}

func (v *validator) syntax(path string, err error) {
	v.problems = append(v.problems, Problem{Path: path, Reason: err.Error(), Err: err})
}

func (v *validator) variant(path string, in Variant) (compiledVariant, bool) {
	n := len(v.problems)
	var out compiledVariant
	if in.Body == "" && in.ContentSID == "" {
		v.add(path+".body", "required (or a content_sid)")
	}
	if in.Body != "" {
		body, err := Parse(in.Body)
		switch {
		case err != nil:
			v.syntax(path+".body", err)
		case body.literalChars > MaxChars:
			v.add(path+".body", fmt.Sprintf("%d characters of fixed text; WhatsApp allows %d", body.literalChars, MaxChars))
		default:
			out.body = body
		}
	}
	if in.ContentSID != "" {
		if !isContentSID(in.ContentSID) {
			v.add(path+".content_sid", fmt.Sprintf("%q is not a Content template SID (HX and 32 hex digits)", in.ContentSID))
		}
		out.contentSID = in.ContentSID
	} else if len(in.ContentVariables) > 0 {
		v.add(path+".content_variables", "needs a content_sid")
	}
	if len(in.ContentVariables) > MaxContentVariables {
		v.add(path+".content_variables", fmt.Sprintf("%d variables; Twilio allows %d", len(in.ContentVariables), MaxContentVariables))
	}
	for _, key := range sortedKeys(in.ContentVariables) {
		vpath := path + ".content_variables." + key
		if n, err := strconv.Atoi(key); err != nil || n < 1 || strconv.Itoa(n) != key {
			v.add(vpath, "the key must be a variable number: 1, 2, …")
			continue
		}
		expr := in.ContentVariables[key]
		if expr == "" {
			v.add(vpath, "empty expression")
			continue
		}
		body, err := Parse(expr)
		if err != nil {
			v.syntax(vpath, err)
			continue
		}
		if body.literalChars > MaxChars {
			v.add(vpath, fmt.Sprintf("%d characters of fixed text; WhatsApp allows %d", body.literalChars, MaxChars))
			continue
		}
		out.vars = append(out.vars, contentVar{key: key, body: body})
	}
	sort.Slice(out.vars, func(i, j int) bool {
		a, _ := strconv.Atoi(out.vars[i].key)
		b, _ := strconv.Atoi(out.vars[j].key)
		return a < b
	})
	return out, len(v.problems) == n
}

func isContentSID(s string) bool {
	if len(s) != 34 || !strings.HasPrefix(s, "HX") {
		return false
	}
	for i := 2; i < len(s); i++ {
		c := s[i]
		if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f' || c >= 'A' && c <= 'F') {
			return false
		}
	}
	return true
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// Variant chooses the variant for a user's locale: the locale exactly ("es-PE"; case-insensitive,
// "es_PE" = "es-PE"), else its language ("es"), else the default locale. It returns the chosen
// map key as written in Variants, or "" and a zero Variant when the template has no variant
// for its default locale either.
func (t Template) Variant(locale string) (string, Variant) {
	keys := sortedKeys(t.Variants)
	def := -1
	for i, k := range keys {
		if sameLocale(k, t.DefaultLocale) {
			def = i
			break
		}
	}
	i := pick(len(keys), func(i int) string { return keys[i] }, locale, def)
	if i < 0 {
		return "", Variant{}
	}
	return keys[i], t.Variants[keys[i]]
}

// Normalized returns the template with its default locale and variant keys in canonical form
// (CanonicalLocale); keys that are not valid locales are kept as they are.
func (t Template) Normalized() Template {
	if l, err := CanonicalLocale(t.DefaultLocale); err == nil {
		t.DefaultLocale = l
	}
	variants := make(map[string]Variant, len(t.Variants))
	for k, v := range t.Variants {
		if l, err := CanonicalLocale(k); err == nil {
			k = l
		}
		variants[k] = v
	}
	t.Variants = variants
	return t
}

// Render compiles the template and renders one message: a convenience for previews. To render
// many messages, Compile once and call Compiled.Render. A *ValidationError means the template
// itself is invalid; otherwise see Compiled.Render.
func (t Template) Render(d Data) (Result, error) {
	c, err := t.Compile()
	if err != nil {
		return Result{}, err
	}
	return c.Render(d)
}

// Compiled is a validated template, parsed once; safe for concurrent use.
type Compiled struct {
	name       string
	variants   []compiledVariant // sorted by locale key
	defaultIdx int
}

type compiledVariant struct {
	locale     string // canonical
	body       *Body  // nil when the variant has only a ContentSID
	contentSID string
	vars       []contentVar // by variable number
}

type contentVar struct {
	key  string
	body *Body
}

// Name is the template's name.
func (c *Compiled) Name() string { return c.name }

// Locales lists the variants' locales in canonical form.
func (c *Compiled) Locales() []string {
	out := make([]string, len(c.variants))
	for i, v := range c.variants {
		out[i] = v.locale
	}
	return out
}

// Result is one rendered message.
type Result struct {
	Locale string // the chosen variant's locale, canonical ("es-PE")
	Text   string // the rendered body; "" for a variant with only a ContentSID
	Chars  int    // characters (runes) in Text
	// TooLong: Text, or a ContentVariables value, is over MaxChars characters.
	TooLong bool
	// ContentSID and ContentVariables (rendered values by number) for an approved template;
	// ContentVariablesJSON is the same map as Twilio's ContentVariables parameter.
	ContentSID           string
	ContentVariables     map[string]string
	ContentVariablesJSON string
	// Missing lists placeholders without value or default (body first, then variables), each
	// once. In Text they stay as their source ("{first_name}").
	Missing []string
}

// Render renders one message for d: the variant for d.Locale (see Template.Variant), its body
// and its ContentVariables. The Result is always filled in (for previews). The error is nil
// when the message can be sent; otherwise a *MissingError, a *TooLongError, or both joined
// (errors.Is with ErrMissingValue / ErrTooLong, errors.As for details).
func (c *Compiled) Render(d Data) (Result, error) {
	i := pick(len(c.variants), func(i int) string { return c.variants[i].locale }, d.Locale, c.defaultIdx)
	v := &c.variants[i]
	r := Result{Locale: v.locale, ContentSID: v.contentSID}
	var errs []error
	if v.body != nil {
		r.Text, r.Missing = v.body.render(d, nil)
		r.Chars = utf8.RuneCountInString(r.Text)
		if r.Chars > MaxChars {
			r.TooLong = true
			errs = append(errs, &TooLongError{Field: "body", Chars: r.Chars, Limit: MaxChars})
		}
	}
	if len(v.vars) > 0 {
		r.ContentVariables = make(map[string]string, len(v.vars))
		for _, cv := range v.vars {
			var text string
			text, r.Missing = cv.body.render(d, r.Missing)
			r.ContentVariables[cv.key] = text
			if n := utf8.RuneCountInString(text); n > MaxChars {
				r.TooLong = true
				errs = append(errs, &TooLongError{Field: "content_variables." + cv.key, Chars: n, Limit: MaxChars})
			}
		}
		r.ContentVariablesJSON = contentJSON(v.vars, r.ContentVariables)
	}
	if len(r.Missing) > 0 {
		errs = append([]error{&MissingError{Placeholders: r.Missing}}, errs...)
	}
	switch len(errs) {
	case 0:
		return r, nil
	case 1:
		return r, errs[0]
	}
	return r, errors.Join(errs...)
}

// contentJSON writes the variables as a JSON object in variable-number order.
func contentJSON(vars []contentVar, values map[string]string) string {
	size := 2
	for _, cv := range vars {
		size += len(cv.key) + len(values[cv.key]) + 6
	}
	buf := make([]byte, 0, size)
	buf = append(buf, '{')
	for i, cv := range vars {
		if i > 0 {
			buf = append(buf, ',')
		}
		buf = jsonstr.Append(buf, cv.key, false)
		buf = append(buf, ':')
		buf = jsonstr.Append(buf, values[cv.key], false)
	}
	buf = append(buf, '}')
	return string(buf)
}
