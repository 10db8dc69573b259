// Package template renders Herald's message templates: bodies with {placeholders}, per-locale
// variants with a fallback, and the variables of approved WhatsApp templates (ContentSid).
//
// It is deliberately tiny and pure (no I/O, no text/template): a body is parsed once into
// literal and placeholder parts, and rendering inserts each value exactly once, literally.
// A contact whose first name is "{api_key}" or "{{.Tenant}}" gets exactly that text.
//
// Syntax of a body:
//
//	{name}           a value; a missing one is reported (Render's *MissingError)
//	{name|default}   a value, or the default text when it is missing or empty
//	{{  and  }}      a literal "{" and "}"
//
// Names are user attributes (`[a-z_][a-z0-9_]*`, e.g. {first_name}), the built-ins {phone},
// {locale} and {country} (these win over attributes of the same name), and fields of the
// trigger event: {event.order_id}, {event.product.name}, {event.items.0.sku}. Event paths are
// dot-separated keys `[A-Za-z0-9_]+`, case-sensitive because they name the payload's own
// JSON keys; an all-digit segment also indexes an array. A default is any text without "{"
// or "}"; it may be empty ({middle_name|}) and may contain "|".
//
// Positions in a *SyntaxError: Offset counts bytes, Char counts characters (runes, from 0),
// and the message shows Char. Lengths (the 1,600 limit) are counted in characters (runes).
package template

import (
	"fmt"
	"strconv"
	"strings"
	"unicode/utf8"
)

// SyntaxError is a body that cannot be parsed: Reason at a position in the source.
type SyntaxError struct {
	Offset int    // byte offset in the body, from 0
	Char   int    // character (rune) offset in the body, from 0; shown by Error
	Reason string // e.g. `unclosed "{"`
}

func (e *SyntaxError) Error() string { return fmt.Sprintf("%s at %d", e.Reason, e.Char) }

// Body is a parsed body: a slice of literal and placeholder parts, ready to render.
type Body struct {
	parts        []part
	placeholders int // number of placeholder parts
	literalChars int // runes of literal text: a floor for the rendered length
}

type kind uint8

const (
	kindLiteral kind = iota
	kindAttribute
	kindEvent
	kindPhone
	kindLocale
	kindCountry
)

// builtins are the placeholders Herald fills itself; they take precedence over attributes.
var builtins = map[string]kind{"phone": kindPhone, "locale": kindLocale, "country": kindCountry}

// eventPrefix starts a placeholder that reads the trigger event's payload.
const eventPrefix = "event."

type part struct {
	kind       kind
	text       string // literal text (unescaped) or the placeholder's name
	def        string
	hasDefault bool
	path       []segment // kindEvent: the path after "event."
}

type segment struct {
	key   string
	index int // the key as an array index, or -1
}

// Parse compiles a body. The error is a *SyntaxError.
func Parse(src string) (*Body, error) {
	if !utf8.ValidString(src) {
		off := 0
		for off < len(src) {
			r, size := utf8.DecodeRuneInString(src[off:])
			if r == utf8.RuneError && size == 1 {
				break
			}
			off += size
		}
		return nil, syntaxError(src, off, "invalid UTF-8")
	}
	b := &Body{}
	var lit strings.Builder
	flush := func() {
		if lit.Len() > 0 {
			s := lit.String()
			b.parts = append(b.parts, part{kind: kindLiteral, text: s})
			b.literalChars += utf8.RuneCountInString(s)
			lit = strings.Builder{}
		}
	}
	for i := 0; i < len(src); {
		switch src[i] {
		case '{':
			if i+1 < len(src) && src[i+1] == '{' {
				lit.WriteByte('{')
				i += 2
				continue
			}
			p, next, err := parsePlaceholder(src, i)
			if err != nil {
				return nil, err
			}
			flush()
			b.parts = append(b.parts, p)
			b.placeholders++
			i = next
		case '}':
			if i+1 < len(src) && src[i+1] == '}' {
				lit.WriteByte('}')
				i += 2
				continue
			}
			return nil, syntaxError(src, i, `stray "}" (write "}}" for a literal brace)`)
		default:
			j := strings.IndexAny(src[i:], "{}")
			if j < 0 {
				j = len(src) - i
			}
			lit.WriteString(src[i : i+j])
			i += j
		}
	}
	flush()
	return b, nil
}

// parsePlaceholder reads the placeholder whose "{" is at start; next is the offset after "}".
func parsePlaceholder(src string, start int) (p part, next int, err error) {
	i := start + 1
	nameEnd, bar := -1, -1
	for ; i < len(src); i++ {
		switch src[i] {
		case '{':
			return part{}, 0, syntaxError(src, i, `nested "{" (write "{{" for a literal brace)`)
		case '|':
			if bar < 0 {
				bar = i
			}
			continue
		case '}':
			nameEnd = i
			if bar >= 0 {
				nameEnd = bar
			}
		default:
			continue
		}
		break
	}
	if i == len(src) {
		return part{}, 0, syntaxError(src, start, `unclosed "{"`)
	}
	name := src[start+1 : nameEnd]
	p, err = placeholder(src, start, name)
	if err != nil {
		return part{}, 0, err
	}
	if bar >= 0 {
		p.hasDefault = true
		p.def = src[bar+1 : i]
	}
	return p, i + 1, nil
}

// placeholder checks a placeholder's name (starting at start+1 in src) and classifies it.
func placeholder(src string, start int, name string) (part, error) {
	at := start + 1
	if name == "" {
		return part{}, syntaxError(src, start, "empty placeholder name")
	}
	if k, ok := builtins[name]; ok {
		return part{kind: k, text: name}, nil
	}
	if name == "event" || strings.HasPrefix(name, eventPrefix) {
		return eventPlaceholder(src, at, name)
	}
	for j := 0; j < len(name); {
		r, size := utf8.DecodeRuneInString(name[j:])
		switch {
		case r == '_' || r >= 'a' && r <= 'z':
		case r >= '0' && r <= '9' && j > 0:
		case r >= '0' && r <= '9':
			return part{}, syntaxError(src, at+j, `placeholder name must start with a letter or "_"`)
		case r >= 'A' && r <= 'Z':
			return part{}, syntaxError(src, at+j, fmt.Sprintf("invalid character %q in placeholder name (names are lowercase)", r))
		case r == '.':
			return part{}, syntaxError(src, at+j, `invalid character '.' in placeholder name (only {event.…} paths have dots)`)
		default:
			return part{}, syntaxError(src, at+j, fmt.Sprintf("invalid character %q in placeholder name", r))
		}
		j += size
	}
	return part{kind: kindAttribute, text: name}, nil
}

func eventPlaceholder(src string, at int, name string) (part, error) {
	if name == "event" || name == eventPrefix {
		return part{}, syntaxError(src, at, "{event} needs a field, e.g. {event.order_id}")
	}
	p := part{kind: kindEvent, text: name}
	off := len(eventPrefix)
	for _, key := range strings.Split(name[off:], ".") {
		if key == "" {
			return part{}, syntaxError(src, at+off, "empty field in event path")
		}
		for j := 0; j < len(key); {
			r, size := utf8.DecodeRuneInString(key[j:])
			if !(r == '_' || r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9') {
				return part{}, syntaxError(src, at+off+j, fmt.Sprintf("invalid character %q in event path", r))
			}
			j += size
		}
		index := -1
		if n, err := strconv.Atoi(key); err == nil && n >= 0 {
			index = n
		}
		p.path = append(p.path, segment{key: key, index: index})
		off += len(key) + 1
	}
	return p, nil
}

func syntaxError(src string, off int, reason string) *SyntaxError {
	return &SyntaxError{Offset: off, Char: utf8.RuneCountInString(src[:off]), Reason: reason}
}

// String is the body's source in canonical form: parsing it gives the same parts.
func (b *Body) String() string {
	var s strings.Builder
	for _, p := range b.parts {
		if p.kind == kindLiteral {
			for i := 0; i < len(p.text); i++ {
				c := p.text[i]
				if c == '{' || c == '}' {
					s.WriteByte(c)
				}
				s.WriteByte(c)
			}
			continue
		}
		s.WriteByte('{')
		s.WriteString(p.text)
		if p.hasDefault {
			s.WriteByte('|')
			s.WriteString(p.def)
		}
		s.WriteByte('}')
	}
	return s.String()
}

// Placeholders lists the placeholder names the body uses, each once, in order of appearance.
func (b *Body) Placeholders() []string {
	var names []string
	for _, p := range b.parts {
		if p.kind != kindLiteral {
			names = appendOnce(names, p.text)
		}
	}
	return names
}

// LiteralChars is the number of characters of fixed text: the least the body renders to.
func (b *Body) LiteralChars() int { return b.literalChars }

func appendOnce(list []string, s string) []string {
	for _, x := range list {
		if x == s {
			return list
		}
	}
	return append(list, s)
}
