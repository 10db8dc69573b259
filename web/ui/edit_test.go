package ui_test

import (
	"net/http"
	"net/url"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// editCase is one kind of saved thing the UI edits and deletes.
type editCase struct {
	name    string
	api     string // the /v1 collection
	create  any    // its body
	edit    func(id string) string
	save    url.Values // a valid edit (the form's fields, without version)
	changed string     // what the list shows after the edit
	list    string
}

// TestEditAndDelete: every edit page shows the saved thing with its version; a save at that
// version replaces it; a save or delete at a stale version (someone else saved meanwhile) is
// refused with a clear message and overwrites nothing; a delete at the current version removes it.
func TestEditAndDelete(t *testing.T) {
	t.Parallel()
	w := newWorld(t, false)
	b := w.browser(t)
	b.login(adminKey)

	tpl := w.api(http.MethodPost, "/v1/templates", map[string]any{"name": "for campaigns", "default_locale": "es",
		"variants": map[string]any{"es": map[string]any{"body": "Hola"}}})["id"].(string)
	for _, tc := range []editCase{
		{
			name: "segment", api: "/v1/segments",
			create: map[string]any{"name": "Lima", "rule": map[string]any{"attr": "city", "op": "eq", "value": "Lima"}},
			edit:   func(id string) string { return "/segments/" + id + "/edit" },
			save: url.Values{"name": {"Lima and Cusco"}, "description": {"south"},
				"rule": {`{"or":[{"attr":"city","op":"eq","value":"Lima"},{"attr":"city","op":"eq","value":"Cusco"}]}`}},
			changed: "Lima and Cusco", list: "/segments",
		},
		{
			name: "template", api: "/v1/templates",
			create: map[string]any{"name": "Deals", "default_locale": "es", "variants": map[string]any{"es": map[string]any{"body": "Hola"}}},
			edit:   func(id string) string { return "/templates/" + id + "/edit" },
			save: url.Values{"name": {"Weekend deals"}, "locale": {"es", "en", ""}, "body": {"Hola {first_name}", "Hi {first_name}", ""},
				"content_sid": {"", "", ""}},
			changed: "Weekend deals", list: "/templates",
		},
		{
			name: "campaign", api: "/v1/campaigns",
			create: map[string]any{"name": "Spring", "topic": "deals", "template_id": tpl,
				"quiet_hours": map[string]any{"start": "21:00", "end": "08:00", "timezone_fallback": "America/Lima"}},
			edit: func(id string) string { return "/campaigns/" + id + "/edit" },
			save: url.Values{"name": {"Spring sale"}, "topic": {"deals"}, "template_id": {tpl}, "schedule": {"at"},
				"at": {"2030-03-01T09:30"}, "per_second": {"5"}, "quiet_start": {"21:00"}, "quiet_end": {"08:00"}},
			changed: "Spring sale", list: "/campaigns",
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			created := w.api(http.MethodPost, tc.api, tc.create)
			id := created["id"].(string)
			edit := tc.edit(id)
			p := b.get(edit)
			require.Equal(t, http.StatusOK, p.status, p.body)
			assert.Contains(t, p.body, `name="version" value="1"`)
			if tc.name == "campaign" {
				assert.Contains(t, p.body, `value="21:00"`, "the saved quiet hours are on the form")
			}
			form := url.Values{"version": {"1"}}
			for k, v := range tc.save {
				form[k] = v
			}
			action := edit[:len(edit)-len("/edit")]

			// Someone else saves first: this save is stale and is refused readably.
			w.api(http.MethodPut, tc.api+"/"+id, tc.create)
			p = b.post(action, form)
			assert.Equal(t, http.StatusUnprocessableEntity, p.status)
			assert.Contains(t, p.body, "Someone changed this since you opened it")
			assert.NotContains(t, b.get(tc.list).body, tc.changed)
			p = b.post(action+"/delete", url.Values{"version": {"1"}})
			assert.Equal(t, http.StatusConflict, p.status)
			assert.Contains(t, p.body, "Someone changed this since you opened it")

			// At the current version the save goes through.
			form.Set("version", "2")
			p = b.post(action, form)
			require.Equal(t, http.StatusSeeOther, p.status, p.body)
			assert.Contains(t, b.get(tc.list).body, tc.changed)
			if tc.name == "campaign" {
				cp := w.api(http.MethodGet, tc.api+"/"+id, nil)
				assert.Equal(t, "2030-03-01T14:30:00Z", cp["schedule"].(map[string]any)["at"], "09:30 in the operator's zone (Lima)")
			}

			p = b.post(action+"/delete", url.Values{"version": {"3"}})
			require.Equal(t, http.StatusSeeOther, p.status, p.body)
			assert.Contains(t, p.header.Get("Location"), "deleted")
			assert.Equal(t, http.StatusNotFound, b.get(edit).status)
		})
	}
}

// TestTemplateDraftJSON: the template editor's preview as you type renders the form's draft
// for a chosen user, lists what that user lacks, and names the locale of a broken body.
func TestTemplateDraftJSON(t *testing.T) {
	t.Parallel()
	w := newWorld(t, false)
	b := w.browser(t)
	b.login(readKey)
	w.api(http.MethodPost, "/v1/users", map[string]any{"phone": "+51987650001", "attributes": map[string]any{"first_name": "Ana"}})

	form := url.Values{"name": {""}, "locale": {"es", "en"}, "body": {"Hola {first_name}, {tier}", "Hi {first_name"},
		"content_sid": {"", ""}, "preview_phone": {"987650001"}}
	p := b.post("/templates/draft.json", form)
	assert.Equal(t, http.StatusUnprocessableEntity, p.status, p.body)
	assert.Contains(t, p.body, `"field":"template.variants.en.body"`)

	form["body"] = []string{"Hola {first_name}, {tier}", "Hi {first_name}"}
	p = b.post("/templates/draft.json", form)
	require.Equal(t, http.StatusOK, p.status, p.body)
	assert.Contains(t, p.body, `"text":"Hola Ana, `)
	assert.Contains(t, p.body, `"missing":["tier"]`)
	assert.Equal(t, "application/json", p.header.Get("Content-Type"))
}
