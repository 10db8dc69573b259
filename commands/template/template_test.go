package template

import (
	"errors"
	"strconv"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

const sid = "HX0123456789abcdef0123456789abcdef"

func validTemplate() Template {
	return Template{
		Name:          "welcome",
		Channel:       ChannelWhatsApp,
		DefaultLocale: "en",
		Variants: map[string]Variant{
			"en":    {Body: "Hi {first_name|there}"},
			"es":    {Body: "Hola {first_name|amigo}"},
			"es-PE": {Body: "Hola {first_name|causa}"},
			"pt_BR": {Body: "Olá {first_name}", ContentSID: sid, ContentVariables: map[string]string{"1": "{first_name}"}},
		},
	}
}

func TestValidateAcceptsValidTemplate(t *testing.T) {
	t.Parallel()
	require.NoError(t, validTemplate().Validate())
	onlySID := Template{Name: "x", Channel: ChannelWhatsApp, DefaultLocale: "EN",
		Variants: map[string]Variant{"en": {ContentSID: sid}}}
	require.NoError(t, onlySID.Validate())
}

func TestValidateReportsEveryProblem(t *testing.T) {
	t.Parallel()
	tmpl := Template{
		Name:          " ",
		Channel:       "sms",
		DefaultLocale: "fr",
		Variants: map[string]Variant{
			"es-PE": {Body: "Hola {first_name, tu pedido"},
			"es_pe": {Body: "duplicate"},
			"e":     {Body: "x"},
			"en":    {Body: "Hi } there", ContentVariables: map[string]string{"1": "{a}"}},
			"pt":    {},
			"de": {Body: strings.Repeat("x", MaxChars+1) + "{a}", ContentSID: "HXnothex",
				ContentVariables: map[string]string{"0": "{a}", "01": "{a}", "x": "{a}", "2": "", "3": "{A}", "1": "{a|b}"}},
		},
	}
	err := tmpl.Validate()
	var ve *ValidationError
	require.True(t, errors.As(err, &ve), "error %v", err)
	got := make([]string, len(ve.Problems))
	for i, p := range ve.Problems {
		got[i] = p.Error()
	}
	assert.Equal(t, []string{
		`name: required`,
		`channel: must be "whatsapp", got "sms"`,
		`variants.de.body: 1601 characters of fixed text; WhatsApp allows 1600`,
		`variants.de.content_sid: "HXnothex" is not a Content template SID (HX and 32 hex digits)`,
		`variants.de.content_variables.0: the key must be a variable number: 1, 2, …`,
		`variants.de.content_variables.01: the key must be a variable number: 1, 2, …`,
		`variants.de.content_variables.2: empty expression`,
		`variants.de.content_variables.3: invalid character 'A' in placeholder name (names are lowercase) at 1`,
		`variants.de.content_variables.x: the key must be a variable number: 1, 2, …`,
		`variants.e: locale "e": the language must be 2 or 3 letters`,
		`variants.en.body: stray "}" (write "}}" for a literal brace) at 3`,
		`variants.en.content_variables: needs a content_sid`,
		`variants.es-PE.body: unclosed "{" at 5`,
		`variants.es_pe: same locale as "es-PE"`,
		`variants.pt.body: required (or a content_sid)`,
		`default_locale: no variant for "fr"`,
	}, got)

	// Body problems carry the *SyntaxError for the API to point at the position.
	var se *SyntaxError
	require.True(t, errors.As(err, &se))
	assert.Equal(t, 1, se.Offset)
	assert.Contains(t, err.Error(), `variants.es-PE.body: unclosed "{" at 5`)
}

func TestValidateTemplateLevel(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name   string
		modify func(*Template)
		want   []string
	}{
		{"no variants", func(t *Template) { t.Variants = nil }, []string{
			"variants: at least one variant is required", `default_locale: no variant for "en"`}},
		{"no default locale", func(t *Template) { t.DefaultLocale = "" }, []string{"default_locale: required"}},
		{"bad default locale", func(t *Template) { t.DefaultLocale = "english" }, []string{
			`default_locale: locale "english": the language must be 2 or 3 letters`}},
		{"default locale in another form", func(t *Template) { t.DefaultLocale = "ES_pe" }, nil},
		{"long name", func(t *Template) { t.Name = strings.Repeat("ñ", MaxNameChars+1) }, []string{
			"name: 201 characters; the limit is 200"}},
		{"name at the limit", func(t *Template) { t.Name = strings.Repeat("ñ", MaxNameChars) }, nil},
		{"too many variables", func(t *Template) {
			vars := map[string]string{}
			for i := 1; i <= MaxContentVariables+1; i++ {
				vars[strconv.Itoa(i)] = "{a}"
			}
			t.Variants = map[string]Variant{"en": {ContentSID: sid, ContentVariables: vars}}
		}, []string{"variants.en.content_variables: 101 variables; Twilio allows 100"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			tmpl := validTemplate()
			tc.modify(&tmpl)
			err := tmpl.Validate()
			if tc.want == nil {
				require.NoError(t, err)
				return
			}
			var ve *ValidationError
			require.True(t, errors.As(err, &ve), "error %v", err)
			got := make([]string, len(ve.Problems))
			for i, p := range ve.Problems {
				got[i] = p.Error()
			}
			assert.Equal(t, tc.want, got)
		})
	}
}

func TestVariantFallback(t *testing.T) {
	t.Parallel()
	tmpl := validTemplate()
	cases := []struct {
		user string
		want string
	}{
		{"es-PE", "es-PE"},    // exact
		{"es_pe", "es-PE"},    // case-insensitive, "_" = "-"
		{"ES-pe", "es-PE"},    // case-insensitive
		{"es-MX", "es"},       // language
		{"es", "es"},          // exact language
		{"es_AR.UTF-8", "es"}, // POSIX form: language
		{"pt-BR", "pt_BR"},    // key as written in Variants
		{"pt-PT", "en"},       // no "pt": default
		{"pt", "en"},          // a region variant does not serve the bare language
		{"fr", "en"},          // default
		{"", "en"},            // no locale: default
		{"garbage!", "en"},    // default
	}
	for _, tc := range cases {
		t.Run(tc.user, func(t *testing.T) {
			key, v := tmpl.Variant(tc.user)
			assert.Equal(t, tc.want, key)
			assert.Equal(t, tmpl.Variants[tc.want], v)
		})
	}
	none := Template{DefaultLocale: "en", Variants: map[string]Variant{"es": {Body: "x"}}}
	key, v := none.Variant("fr")
	assert.Equal(t, "", key)
	assert.Equal(t, Variant{}, v)
}

func TestCanonicalLocale(t *testing.T) {
	t.Parallel()
	cases := []struct{ in, want, err string }{
		{"es", "es", ""},
		{"ES", "es", ""},
		{"es_pe", "es-PE", ""},
		{"es-PE", "es-PE", ""},
		{"es-419", "es-419", ""},
		{"zh_hant_tw", "zh-Hant-TW", ""},
		{"fil", "fil", ""},
		{"", "", "empty locale"},
		{"e", "", `locale "e": the language must be 2 or 3 letters`},
		{"12", "", `locale "12": the language must be 2 or 3 letters`},
		{"es--PE", "", `locale "es--PE": empty subtag`},
		{"es-", "", `locale "es-": empty subtag`},
		{"es PE", "", `locale "es PE": invalid character ' '`},
		{"es-abcdefghi", "", `locale "es-abcdefghi": subtag "abcdefghi" is longer than 8 characters`},
	}
	for _, tc := range cases {
		t.Run(tc.in, func(t *testing.T) {
			got, err := CanonicalLocale(tc.in)
			if tc.err != "" {
				require.EqualError(t, err, tc.err)
				return
			}
			require.NoError(t, err)
			assert.Equal(t, tc.want, got)
		})
	}
}

func TestNormalized(t *testing.T) {
	t.Parallel()
	tmpl := Template{Name: "x", Channel: ChannelWhatsApp, DefaultLocale: "ES_pe",
		Variants: map[string]Variant{"es_pe": {Body: "a"}, "EN": {Body: "b"}, "bad key": {Body: "c"}}}
	n := tmpl.Normalized()
	assert.Equal(t, "es-PE", n.DefaultLocale)
	assert.Equal(t, map[string]Variant{"es-PE": {Body: "a"}, "en": {Body: "b"}, "bad key": {Body: "c"}}, n.Variants)
	assert.Equal(t, "ES_pe", tmpl.DefaultLocale, "the original is unchanged")
	assert.Contains(t, tmpl.Variants, "es_pe")
}
