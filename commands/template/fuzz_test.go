package template

import (
	"errors"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// FuzzParse checks, for any body and any value:
//   - Parse never panics; a syntax error points inside the body, at a character boundary;
//   - a body that parsed re-serializes (String) to a source that parses to the same parts;
//   - rendering with every placeholder set to the value inserts the value once, literally:
//     the text is exactly the literals and the value, never a re-expansion of it.
func FuzzParse(f *testing.F) {
	seeds := []struct{ body, value string }{
		{"", ""},
		{"Hola {first_name|amigo}, tu pedido {event.order_id} llega {event.eta|pronto}.", "Ana"},
		{"{{literal}} {{{a}}}", "{api_key}"},
		{"{phone} {locale} {country}", "{{.Tenant}}"},
		{"{event.items.0.sku}", "{{"},
		{"}}{{", "}"},
		{"{a", "{a}"},
		{"{a{b}}", ""},
		{"{}", "x"},
		{"}", "x"},
		{"{First}", "x"},
		{"{event..a}", "x"},
		{"¡Año 🎉 {x|ñ}!", "🎉"},
		{"\xff{a}", "\xfe"},
		{"{a|b|c}", "{b}"},
	}
	for _, s := range seeds {
		f.Add(s.body, s.value)
	}
	f.Fuzz(func(t *testing.T, body, value string) {
		b, err := Parse(body)
		if err != nil {
			var se *SyntaxError
			require.True(t, errors.As(err, &se))
			require.GreaterOrEqual(t, se.Offset, 0)
			require.LessOrEqual(t, se.Offset, len(body))
			require.Equal(t, utf8.RuneCountInString(body[:se.Offset]), se.Char)
			if utf8.ValidString(body) {
				require.True(t, se.Offset == len(body) || utf8.RuneStart(body[se.Offset]))
			}
			return
		}
		// Round trip.
		src := b.String()
		again, err := Parse(src)
		require.NoError(t, err, "re-serialized %q", src)
		require.Equal(t, b.parts, again.parts)
		require.Equal(t, src, again.String())

		// No re-expansion: every placeholder gets the value (phone, locale and country too).
		d := Data{Phone: value, Locale: value, Country: value,
			Attributes: map[string]any{}, Event: map[string]any{}}
		for _, p := range b.parts {
			switch p.kind {
			case kindAttribute:
				d.Attributes[p.text] = value
			case kindEvent:
				setPath(d.Event, p.path, value)
			}
		}
		if clashingPaths(b) {
			return // {event.a} and {event.a.b} cannot both hold the value
		}
		var want strings.Builder
		for _, p := range b.parts {
			switch {
			case p.kind == kindLiteral:
				want.WriteString(p.text)
			case value != "":
				want.WriteString(value)
			case p.hasDefault:
				want.WriteString(p.def)
			default:
				want.WriteString("{" + p.text + "}")
			}
		}
		text, missing := b.Render(d)
		require.Equal(t, want.String(), text)
		if value != "" {
			require.Empty(t, missing)
		}

		// A fixed body around the value renders the value byte for byte.
		fixed, err := Parse("<{first_name}>")
		require.NoError(t, err)
		text, _ = fixed.Render(Data{Attributes: map[string]any{"first_name": value}})
		if value != "" {
			assert.Equal(t, "<"+value+">", text)
		}
	})
}

// setPath sets a value at an event path, making maps along the way.
func setPath(m map[string]any, path []segment, value string) {
	for i, seg := range path {
		if i == len(path)-1 {
			m[seg.key] = value
			return
		}
		next, ok := m[seg.key].(map[string]any)
		if !ok {
			next = map[string]any{}
			m[seg.key] = next
		}
		m = next
	}
}

// clashingPaths: one event path is a prefix of another.
func clashingPaths(b *Body) bool {
	names := b.Placeholders()
	for _, a := range names {
		for _, c := range names {
			if strings.HasPrefix(c, a+".") {
				return true
			}
		}
	}
	return false
}
