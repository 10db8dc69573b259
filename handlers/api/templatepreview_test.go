package api_test

import (
	"net/http"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestTemplateDraftPreview: a template that is not saved renders like a saved one, for a user
// or ad-hoc attributes, with its missing values listed; its problems name paths under template.
func TestTemplateDraftPreview(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	seedUsers(t, e)
	draft := map[string]any{"default_locale": "es", "variants": map[string]any{
		"es": map[string]any{"body": "Hola {first_name}, tu ciudad: {city}. {event.order_id}"},
		"en": map[string]any{"body": "Hi {first_name|there}"}}}

	for _, tt := range []struct {
		name    string
		body    map[string]any
		text    string
		missing []any
	}{
		{"a user", map[string]any{"template": draft, "phone": "987650001"}, "Hola Ana, tu ciudad: Lima.", []any{"event.order_id"}},
		{"a user without a value", map[string]any{"template": draft, "phone": "+51987650002"}, "tu ciudad: Lima", []any{"first_name", "event.order_id"}},
		{"attributes and a locale", map[string]any{"template": draft, "locale": "en", "attributes": map[string]any{}}, "Hi there", []any{}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			res := e.call(http.MethodPost, "/v1/templates/preview", readKey, tt.body)
			require.Equal(t, http.StatusOK, res.status, string(res.raw))
			assert.Contains(t, res.body["text"], tt.text)
			assert.ElementsMatch(t, tt.missing, res.body["missing"])
		})
	}

	bad := e.call(http.MethodPost, "/v1/templates/preview", readKey, map[string]any{"template": map[string]any{
		"default_locale": "es", "variants": map[string]any{"es": map[string]any{"body": "Hola {first_name"}}}})
	require.Equal(t, http.StatusUnprocessableEntity, bad.status, string(bad.raw))
	fields := bad.problemFields()
	require.NotEmpty(t, fields)
	for _, f := range fields {
		assert.True(t, strings.HasPrefix(f, "template."), f)
	}
	assert.Equal(t, http.StatusUnprocessableEntity, e.call(http.MethodPost, "/v1/templates/preview", readKey,
		map[string]any{"template": draft, "phone": "+51900000000"}).status, "an unknown user")
}
