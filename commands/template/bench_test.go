package template

import (
	"testing"
	"unicode/utf8"

	"github.com/stretchr/testify/require"
)

// benchTemplate is a typical campaign message: about 200 characters, 4 placeholders, two
// locales (the user's is reached through the language fallback).
func benchTemplate(tb testing.TB) (*Compiled, Data) {
	tmpl := Template{Name: "order-ready", Channel: ChannelWhatsApp, DefaultLocale: "en",
		Variants: map[string]Variant{
			"en": {Body: "Hi {first_name|there}, your order {event.order_id} is ready."},
			"es": {Body: "¡Hola {first_name|amigo}! Tu pedido {event.order_id} ya está listo para recoger en " +
				"{event.store.name}. Te esperamos hasta las 21:00. Si tienes preguntas, responde a este " +
				"mensaje o escríbenos al {phone}. ¡Gracias por tu compra!"},
		}}
	c, err := tmpl.Compile()
	require.NoError(tb, err)
	d := Data{Phone: "+51987654321", Locale: "es-PE", Country: "PE",
		Attributes: map[string]any{"first_name": "María José", "last_name": "Quispe", "plan": "gold"},
		Event:      map[string]any{"order_id": "A-100234", "store": map[string]any{"name": "Miraflores"}}}
	return c, d
}

func TestBenchTemplateIsTypical(t *testing.T) {
	c, d := benchTemplate(t)
	r, err := c.Render(d)
	require.NoError(t, err)
	require.Equal(t, "es", r.Locale)
	require.InDelta(t, 200, utf8.RuneCountInString(r.Text), 20)
	require.Equal(t, 1.0, testing.AllocsPerRun(100, func() { _, _ = c.Render(d) }))
}

// BenchmarkRender measures one render of a compiled template: variant choice (fallback from
// es-PE to es), 4 placeholders (attribute with default, event fields, a built-in), length
// check. Run on one core: go test -run '^$' -bench BenchmarkRender -benchmem -cpu 1.
func BenchmarkRender(b *testing.B) {
	c, d := benchTemplate(b)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := c.Render(d); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "renders/s")
}

// BenchmarkRenderContent adds two ContentVariables (a map and its JSON per render).
func BenchmarkRenderContent(b *testing.B) {
	tmpl := Template{Name: "x", Channel: ChannelWhatsApp, DefaultLocale: "es",
		Variants: map[string]Variant{"es": {ContentSID: sid,
			ContentVariables: map[string]string{"1": "{first_name|amigo}", "2": "{event.order_id}"}}}}
	c, err := tmpl.Compile()
	require.NoError(b, err)
	_, d := benchTemplate(b)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := c.Render(d); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "renders/s")
}

func BenchmarkParse(b *testing.B) {
	src := "¡Hola {first_name|amigo}! Tu pedido {event.order_id} ya está listo para recoger en " +
		"{event.store.name}. Te esperamos hasta las 21:00. Escríbenos al {phone}."
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Parse(src); err != nil {
			b.Fatal(err)
		}
	}
}
