package template

import (
	"bytes"
	"encoding"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// MaxChars is WhatsApp's limit on a message body and on one ContentVariables value, in
// characters (runes).
const MaxChars = 1600

// Data is what one message is rendered with.
type Data struct {
	Phone   string // {phone}: E.164
	Locale  string // {locale}; also chooses the variant
	Country string // {country}: ISO 3166 alpha-2
	// Attributes are the user's attributes: {first_name} reads Attributes["first_name"].
	Attributes map[string]any
	// Event is the trigger event's payload: {event.product.name} reads
	// Event["product"].(map[string]any)["name"].
	Event map[string]any
}

// A value is missing when it is absent, nil or the empty string (then the default is used).
// Other values are written as text: strings as they are, numbers without exponent (1e21 is
// "1000000000000000000000"), booleans as true/false, encoding.TextMarshaler values (time.Time)
// by MarshalText, anything else (maps, slices) as compact JSON.

// ErrMissingValue and ErrTooLong classify Render's errors for errors.Is; errors.As gives the
// details (*MissingError, *TooLongError).
var (
	ErrMissingValue = errors.New("missing placeholder value")
	ErrTooLong      = errors.New("rendered text too long")
)

// MissingError lists placeholders that had neither a value nor a default. At send time the
// message is skipped with this reason.
type MissingError struct {
	Placeholders []string // names, each once, in order of appearance
}

func (e *MissingError) Error() string {
	var s strings.Builder
	s.WriteString("no value for ")
	for i, name := range e.Placeholders {
		if i > 0 {
			s.WriteString(", ")
		}
		s.WriteString("{" + name + "}")
	}
	return s.String()
}

func (e *MissingError) Is(target error) bool { return target == ErrMissingValue }

// TooLongError is a rendered text over WhatsApp's limit.
type TooLongError struct {
	Field string // "body" or "content_variables.<n>"
	Chars int    // characters (runes) after rendering
	Limit int
}

func (e *TooLongError) Error() string {
	return fmt.Sprintf("%s is %d characters after rendering; WhatsApp allows %d", e.Field, e.Chars, e.Limit)
}

func (e *TooLongError) Is(target error) bool { return target == ErrTooLong }

// Render renders the body. Missing lists the placeholders without value or default; in the
// text each of them stays as its source ("{first_name}") so a preview shows the gap.
func (b *Body) Render(d Data) (text string, missing []string) {
	return b.render(d, nil)
}

// value is a resolved placeholder: a string, or another value still to be formatted.
type value struct {
	s     string
	other any
	state uint8
}

const (
	valueMissing uint8 = iota
	valueString
	valueOther
)

// render writes the body in two passes over the parts: resolve every placeholder and size the
// output, then write it. One allocation (the text) when the values are strings.
func (b *Body) render(d Data, missing []string) (string, []string) {
	var small [16]value
	vals := small[:0]
	if b.placeholders > len(small) {
		vals = make([]value, 0, b.placeholders)
	}
	size := 0
	for i := range b.parts {
		p := &b.parts[i]
		if p.kind == kindLiteral {
			size += len(p.text)
			continue
		}
		v := p.resolve(d)
		switch {
		case v.state == valueString:
			size += len(v.s)
		case v.state == valueOther:
			size += 24
		case p.hasDefault:
			size += len(p.def)
		default:
			missing = appendOnce(missing, p.text)
			size += len(p.text) + 2
		}
		vals = append(vals, v)
	}
	var out strings.Builder
	out.Grow(size)
	k := 0
	for i := range b.parts {
		p := &b.parts[i]
		if p.kind == kindLiteral {
			out.WriteString(p.text)
			continue
		}
		v := vals[k]
		k++
		switch {
		case v.state == valueString:
			out.WriteString(v.s)
		case v.state == valueOther:
			writeValue(&out, v.other)
		case p.hasDefault:
			out.WriteString(p.def)
		default:
			out.WriteByte('{')
			out.WriteString(p.text)
			out.WriteByte('}')
		}
	}
	return out.String(), missing
}

func (p *part) resolve(d Data) value {
	switch p.kind {
	case kindPhone:
		return stringValue(d.Phone)
	case kindLocale:
		return stringValue(d.Locale)
	case kindCountry:
		return stringValue(d.Country)
	case kindAttribute:
		return anyValue(d.Attributes[p.text])
	case kindEvent:
		var cur any = d.Event
		for _, seg := range p.path {
			switch c := cur.(type) {
			case map[string]any:
				cur = c[seg.key]
			case []any:
				if seg.index < 0 || seg.index >= len(c) {
					return value{}
				}
				cur = c[seg.index]
			default:
				return value{}
			}
		}
		return anyValue(cur)
	}
	return value{}
}

func stringValue(s string) value {
	if s == "" {
		return value{}
	}
	return value{s: s, state: valueString}
}

func anyValue(v any) value {
	switch x := v.(type) {
	case nil:
		return value{}
	case string:
		return stringValue(x)
	}
	return value{other: v, state: valueOther}
}

// writeValue writes a non-string value as text (see Data).
func writeValue(out *strings.Builder, v any) {
	var scratch [64]byte
	switch x := v.(type) {
	case bool:
		out.Write(strconv.AppendBool(scratch[:0], x))
	case float64:
		out.Write(strconv.AppendFloat(scratch[:0], x, 'f', -1, 64))
	case float32:
		out.Write(strconv.AppendFloat(scratch[:0], float64(x), 'f', -1, 32))
	case int:
		out.Write(strconv.AppendInt(scratch[:0], int64(x), 10))
	case int8:
		out.Write(strconv.AppendInt(scratch[:0], int64(x), 10))
	case int16:
		out.Write(strconv.AppendInt(scratch[:0], int64(x), 10))
	case int32:
		out.Write(strconv.AppendInt(scratch[:0], int64(x), 10))
	case int64:
		out.Write(strconv.AppendInt(scratch[:0], x, 10))
	case uint:
		out.Write(strconv.AppendUint(scratch[:0], uint64(x), 10))
	case uint8:
		out.Write(strconv.AppendUint(scratch[:0], uint64(x), 10))
	case uint16:
		out.Write(strconv.AppendUint(scratch[:0], uint64(x), 10))
	case uint32:
		out.Write(strconv.AppendUint(scratch[:0], uint64(x), 10))
	case uint64:
		out.Write(strconv.AppendUint(scratch[:0], x, 10))
	case json.Number:
		if strings.ContainsAny(string(x), "eE") {
			if f, err := x.Float64(); err == nil {
				out.Write(strconv.AppendFloat(scratch[:0], f, 'f', -1, 64))
				return
			}
		}
		out.WriteString(string(x))
	case encoding.TextMarshaler:
		if t, err := x.MarshalText(); err == nil {
			out.Write(t)
			return
		}
		writeJSON(out, v)
	default:
		writeJSON(out, v)
	}
}

func writeJSON(out *strings.Builder, v any) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		out.WriteString(fmt.Sprint(v))
		return
	}
	out.Write(bytes.TrimSuffix(buf.Bytes(), []byte("\n")))
}
