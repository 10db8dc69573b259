package template

import (
	"errors"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestParse(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name         string
		src          string
		canonical    string // "" = same as src
		placeholders []string
		literalChars int
	}{
		{"empty", "", "", nil, 0},
		{"literal only", "Hola", "", nil, 4},
		{"one placeholder", "Hola {first_name}!", "", []string{"first_name"}, 6},
		{"default", "Hola {first_name|amigo}", "", []string{"first_name"}, 5},
		{"empty default", "{middle_name|}", "", []string{"middle_name"}, 0},
		{"default with bar and spaces", "{a|x | y}", "", []string{"a"}, 0},
		{"builtins", "{phone} {locale} {country}", "", []string{"phone", "locale", "country"}, 2},
		{"event path", "{event.product.name} {event.items.0.sku} {event.orderId}", "",
			[]string{"event.product.name", "event.items.0.sku", "event.orderId"}, 2},
		{"repeated placeholder listed once", "{a}{b}{a}", "", []string{"a", "b"}, 0},
		{"escaped braces", "{{literal}} and {{{a}}}", "", []string{"a"}, 16},
		{"escapes only", "{{}}", "", nil, 2},
		{"underscore name", "{_x1}", "", []string{"_x1"}, 0},
		{"unicode literal", "¡Hola {first_name}! 🎉 Año", "", []string{"first_name"}, 13},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			b, err := Parse(tc.src)
			require.NoError(t, err)
			want := tc.canonical
			if want == "" {
				want = tc.src
			}
			assert.Equal(t, want, b.String())
			assert.Equal(t, tc.placeholders, b.Placeholders())
			assert.Equal(t, tc.literalChars, b.LiteralChars())
		})
	}
}

func TestParseSyntaxErrors(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name   string
		src    string
		offset int // bytes
		char   int // runes
		reason string
	}{
		{"unclosed", "Hola {first_name", 5, 5, `unclosed "{"`},
		{"unclosed with default", "Hola {first_name|amigo", 5, 5, `unclosed "{"`},
		{"unclosed at end", "Hola {", 5, 5, `unclosed "{"`},
		{"empty name", "Hola {}", 5, 5, "empty placeholder name"},
		{"empty name with default", "Hola {|x}", 5, 5, "empty placeholder name"},
		{"stray close", "Hola }", 5, 5, `stray "}" (write "}}" for a literal brace)`},
		{"stray close after escape", "{{first_name}", 12, 12, `stray "}" (write "}}" for a literal brace)`},
		{"stray close after placeholder", "{a}}", 3, 3, `stray "}" (write "}}" for a literal brace)`},
		{"nested", "{a{b}}", 2, 2, `nested "{" (write "{{" for a literal brace)`},
		{"nested in default", "{a|x{y}}", 4, 4, `nested "{" (write "{{" for a literal brace)`},
		{"escape inside placeholder is nested", "{a{{b}", 2, 2, `nested "{" (write "{{" for a literal brace)`},
		{"space", "{first name}", 6, 6, `invalid character ' ' in placeholder name`},
		{"upper case", "{First_name}", 1, 1, `invalid character 'F' in placeholder name (names are lowercase)`},
		{"leading digit", "{1}", 1, 1, `placeholder name must start with a letter or "_"`},
		{"dash", "{first-name}", 6, 6, `invalid character '-' in placeholder name`},
		{"dot outside event", "{user.name}", 5, 5, `invalid character '.' in placeholder name (only {event.…} paths have dots)`},
		{"go template", "{{.Tenant}} {.Tenant}", 13, 13, `invalid character '.' in placeholder name (only {event.…} paths have dots)`},
		{"json object", `{"a": 1}`, 1, 1, `invalid character '"' in placeholder name`},
		{"bare event", "{event}", 1, 1, "{event} needs a field, e.g. {event.order_id}"},
		{"event dot", "{event.}", 1, 1, "{event} needs a field, e.g. {event.order_id}"},
		{"event empty segment", "{event.a..b}", 9, 9, "empty field in event path"},
		{"event trailing dot", "{event.a.}", 9, 9, "empty field in event path"},
		{"event bad char", "{event.a-b}", 8, 8, `invalid character '-' in event path`},
		// Positions: Offset counts bytes, Char (and the message) counts characters.
		{"accents before error", "Año nuevo, señor {first name}", 25, 23, `invalid character ' ' in placeholder name`},
		{"emoji before error", "🎉🎉 {x", 9, 3, `unclosed "{"`},
		{"non-ascii name", "{café}", 4, 4, `invalid character 'é' in placeholder name`},
		{"invalid utf-8", "ok \xff {a}", 3, 3, "invalid UTF-8"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse(tc.src)
			var se *SyntaxError
			require.True(t, errors.As(err, &se), "error %v", err)
			assert.Equal(t, tc.reason, se.Reason)
			assert.Equal(t, tc.offset, se.Offset, "byte offset")
			assert.Equal(t, tc.char, se.Char, "character offset")
			assert.Contains(t, err.Error(), tc.reason)
		})
	}
}

func TestSyntaxErrorMessage(t *testing.T) {
	t.Parallel()
	_, err := Parse("Hola, ¿cómo {first_name")
	require.Error(t, err)
	assert.Equal(t, `unclosed "{" at 12`, err.Error())
}
