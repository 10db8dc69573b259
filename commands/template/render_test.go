package template

import (
	"encoding/json"
	"errors"
	"math"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestBodyRender(t *testing.T) {
	t.Parallel()
	data := Data{
		Phone:   "+51987654321",
		Locale:  "es-PE",
		Country: "PE",
		Attributes: map[string]any{
			"first_name": "Ana",
			"empty":      "",
			"null":       nil,
			"phone":      "+10000000000", // a built-in wins over an attribute of the same name
			"api_key":    "secret",
			"injection1": "{api_key}",
			"injection2": "{{.Tenant}}",
			"injection3": "{{",
			"injection4": "}{phone}{",
			"accented":   "José Ñandú",
			"emoji":      "🎉👍🏽",
			"int":        42,
			"int64":      int64(-7),
			"uint8":      uint8(200),
			"float":      3.5,
			"big":        1e21,
			"small":      0.000001,
			"whole":      float64(1234567),
			"float32":    float32(0.1),
			"nan":        math.NaN(),
			"true":       true,
			"false":      false,
			"number":     json.Number("1.5e3"),
			"number2":    json.Number("12"),
			"map":        map[string]any{"b": 1, "a": "<x>"},
			"list":       []any{"a", 2.5, nil},
			"emptylist":  []any{},
			"time":       time.Date(2026, 11, 27, 0, 1, 2, 0, time.UTC),
		},
		Event: map[string]any{
			"order_id": "A-1",
			"orderId":  "camel",
			"product":  map[string]any{"name": "Café", "price": 19.9, "tags": []any{"x", map[string]any{"k": "v"}}},
			"items":    []any{map[string]any{"sku": "S1"}, map[string]any{"sku": "S2"}},
			"total":    float64(1500),
			"0":        "zero key",
		},
	}
	cases := []struct {
		name    string
		body    string
		want    string
		missing []string
	}{
		{"literal", "Hola", "Hola", nil},
		{"attribute", "Hola {first_name}!", "Hola Ana!", nil},
		{"default unused", "Hola {first_name|amigo}", "Hola Ana", nil},
		{"default for absent", "Hola {last_name|amigo}", "Hola amigo", nil},
		{"default for empty", "Hola {empty|amigo}", "Hola amigo", nil},
		{"default for null", "Hola {null|amigo}", "Hola amigo", nil},
		{"empty default", "Hola{last_name|}!", "Hola!", nil},
		{"default keeps bars", "{last_name|a|b}", "a|b", nil},
		{"default is not a name", "{last_name|phone}", "phone", nil},
		{"builtins", "{phone} {locale} {country}", "+51987654321 es-PE PE", nil},
		{"missing", "Hola {last_name}, {first_name}", "Hola {last_name}, Ana", []string{"last_name"}},
		{"missing listed once", "{a}{b}{a}{c|x}", "{a}{b}{a}x", []string{"a", "b"}},
		{"escapes", "{{first_name}} = {first_name}", "{first_name} = Ana", nil},
		{"injection: placeholder text", "{injection1}", "{api_key}", nil},
		{"injection: go template", "{injection2}", "{{.Tenant}}", nil},
		{"injection: escape", "{injection3}", "{{", nil},
		{"injection: braces", "{injection4}", "}{phone}{", nil},
		{"unicode", "¡Hola {accented}! {emoji}", "¡Hola José Ñandú! 🎉👍🏽", nil},
		{"int", "{int} {int64} {uint8}", "42 -7 200", nil},
		{"float without exponent", "{float} {big} {small} {whole} {float32}", "3.5 1000000000000000000000 0.000001 1234567 0.1", nil},
		{"nan", "{nan}", "NaN", nil},
		{"booleans", "{true} {false}", "true false", nil},
		{"json.Number", "{number} {number2}", "1500 12", nil},
		{"nested as JSON", "{map} {list} {emptylist}", `{"a":"<x>","b":1} ["a",2.5,null] []`, nil},
		{"text marshaler", "{time}", "2026-11-27T00:01:02Z", nil},
		{"event field", "{event.order_id} {event.orderId}", "A-1 camel", nil},
		{"event path", "{event.product.name} {event.product.price}", "Café 19.9", nil},
		{"event array", "{event.items.1.sku} {event.product.tags.1.k}", "S2 v", nil},
		{"event numeric key on a map", "{event.0}", "zero key", nil},
		{"event number", "{event.total}", "1500", nil},
		{"event nested as JSON", "{event.items}", `[{"sku":"S1"},{"sku":"S2"}]`, nil},
		{"event missing", "{event.nope} {event.items.5.sku} {event.order_id.x} {event.items.x|d}",
			"{event.nope} {event.items.5.sku} {event.order_id.x} d",
			[]string{"event.nope", "event.items.5.sku", "event.order_id.x"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			b, err := Parse(tc.body)
			require.NoError(t, err)
			text, missing := b.Render(data)
			assert.Equal(t, tc.want, text)
			assert.Equal(t, tc.missing, missing)
		})
	}
}

func TestBodyRenderNoData(t *testing.T) {
	t.Parallel()
	b, err := Parse("{first_name|x} {event.a.b|y} {phone|z}")
	require.NoError(t, err)
	text, missing := b.Render(Data{})
	assert.Equal(t, "x y z", text)
	assert.Nil(t, missing)
}

func TestBodyRenderManyPlaceholders(t *testing.T) {
	t.Parallel()
	src := strings.Repeat("{a}-", 40) + "{b|end}"
	b, err := Parse(src)
	require.NoError(t, err)
	text, missing := b.Render(Data{Attributes: map[string]any{"a": "x"}})
	assert.Equal(t, strings.Repeat("x-", 40)+"end", text)
	assert.Nil(t, missing)
}

func TestCompiledRender(t *testing.T) {
	t.Parallel()
	c, err := validTemplate().Compile()
	require.NoError(t, err)
	cases := []struct {
		name string
		data Data
		want Result
	}{
		{"exact locale", Data{Locale: "es-PE", Attributes: map[string]any{"first_name": "Ana"}},
			Result{Locale: "es-PE", Text: "Hola Ana", Chars: 8}},
		{"language fallback, default value", Data{Locale: "es_MX"},
			Result{Locale: "es", Text: "Hola amigo", Chars: 10}},
		{"default locale", Data{Locale: "fr-FR", Attributes: map[string]any{"first_name": "Zoë"}},
			Result{Locale: "en", Text: "Hi Zoë", Chars: 6}},
		{"content variables", Data{Locale: "pt-br", Attributes: map[string]any{"first_name": `Jo"ão <b>`}},
			Result{Locale: "pt-BR", Text: `Olá Jo"ão <b>`, Chars: 13, ContentSID: sid,
				ContentVariables:     map[string]string{"1": `Jo"ão <b>`},
				ContentVariablesJSON: `{"1":"Jo\"ão <b>"}`}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got, err := c.Render(tc.data)
			require.NoError(t, err)
			assert.Equal(t, tc.want, got)
		})
	}
	assert.Equal(t, "welcome", c.Name())
	assert.Equal(t, []string{"en", "es", "es-PE", "pt-BR"}, c.Locales())
}

func TestRenderMissing(t *testing.T) {
	t.Parallel()
	tmpl := Template{Name: "order", Channel: ChannelWhatsApp, DefaultLocale: "es",
		Variants: map[string]Variant{"es": {
			Body:       "Hola {first_name}, tu pedido {event.order_id} está listo",
			ContentSID: sid,
			ContentVariables: map[string]string{
				"10": "{event.eta|pronto}", "2": "{event.order_id}", "1": "{first_name} {last_name}"},
		}}}
	got, err := tmpl.Render(Data{Event: map[string]any{"order_id": 77}})
	require.Error(t, err)
	assert.True(t, errors.Is(err, ErrMissingValue))
	assert.False(t, errors.Is(err, ErrTooLong))
	var me *MissingError
	require.True(t, errors.As(err, &me))
	assert.Equal(t, []string{"first_name", "last_name"}, me.Placeholders)
	assert.Equal(t, "no value for {first_name}, {last_name}", err.Error())
	assert.Equal(t, Result{
		Locale:               "es",
		Text:                 "Hola {first_name}, tu pedido 77 está listo",
		Chars:                42,
		ContentSID:           sid,
		ContentVariables:     map[string]string{"1": "{first_name} {last_name}", "2": "77", "10": "pronto"},
		ContentVariablesJSON: `{"1":"{first_name} {last_name}","2":"77","10":"pronto"}`,
		Missing:              []string{"first_name", "last_name"},
	}, got)
}

func TestRenderLengthCap(t *testing.T) {
	t.Parallel()
	tmpl := func(body string) Template {
		return Template{Name: "x", Channel: ChannelWhatsApp, DefaultLocale: "en",
			Variants: map[string]Variant{"en": {Body: body, ContentSID: sid, ContentVariables: map[string]string{"1": "{v|ok}"}}}}
	}
	cases := []struct {
		name    string
		body    string
		attrs   map[string]any
		chars   int
		tooLong []string // fields
	}{
		{"ascii at the limit", strings.Repeat("a", 1590) + "{x}", map[string]any{"x": "0123456789"}, 1600, nil},
		{"ascii over the limit", strings.Repeat("a", 1590) + "{x}", map[string]any{"x": "01234567890"}, 1601, []string{"body"}},
		// Characters, not bytes: 1600 two-byte letters and 1600 four-byte emoji fit.
		{"accents at the limit", strings.Repeat("ñ", 1599) + "{x}", map[string]any{"x": "é"}, 1600, nil},
		{"emoji at the limit", "{x}", map[string]any{"x": strings.Repeat("🎉", 1600)}, 1600, nil},
		{"emoji over the limit", "🎉{x}", map[string]any{"x": strings.Repeat("🎉", 1600)}, 1601, []string{"body"}},
		{"content variable over the limit", "short", map[string]any{"v": strings.Repeat("é", 1601)}, 5,
			[]string{"content_variables.1"}},
		{"both over the limit", "{v}", map[string]any{"v": strings.Repeat("x", 1601)}, 1601,
			[]string{"body", "content_variables.1"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got, err := tmpl(tc.body).Render(Data{Attributes: tc.attrs})
			assert.Equal(t, tc.chars, got.Chars)
			assert.Equal(t, tc.tooLong != nil, got.TooLong)
			if tc.tooLong == nil {
				require.NoError(t, err)
				return
			}
			require.Error(t, err)
			assert.True(t, errors.Is(err, ErrTooLong))
			assert.False(t, errors.Is(err, ErrMissingValue))
			var fields []string
			for _, e := range unwrapAll(err) {
				var tl *TooLongError
				if errors.As(e, &tl) {
					fields = append(fields, tl.Field)
					assert.Equal(t, MaxChars, tl.Limit)
				}
			}
			assert.Equal(t, tc.tooLong, fields)
		})
	}
}

func TestRenderMissingAndTooLong(t *testing.T) {
	t.Parallel()
	tmpl := Template{Name: "x", Channel: ChannelWhatsApp, DefaultLocale: "en",
		Variants: map[string]Variant{"en": {Body: "{a}{b}"}}}
	got, err := tmpl.Render(Data{Attributes: map[string]any{"a": strings.Repeat("x", 1600)}})
	assert.True(t, errors.Is(err, ErrMissingValue))
	assert.True(t, errors.Is(err, ErrTooLong))
	var tl *TooLongError
	require.True(t, errors.As(err, &tl))
	assert.Equal(t, "body is 1603 characters after rendering; WhatsApp allows 1600", tl.Error())
	assert.Equal(t, []string{"b"}, got.Missing)
	assert.True(t, got.TooLong)
}

func TestTemplateRenderInvalid(t *testing.T) {
	t.Parallel()
	_, err := Template{Name: "x"}.Render(Data{})
	var ve *ValidationError
	require.True(t, errors.As(err, &ve))
	assert.False(t, errors.Is(err, ErrMissingValue))
}

func unwrapAll(err error) []error {
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		return j.Unwrap()
	}
	return []error{err}
}
