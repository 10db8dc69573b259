package api

import (
	"errors"
	"net/http"
	"time"

	"github.com/jackc/pgx/v5"

	"herald/commands"
	"herald/commands/template"
	"herald/events"
)

// Template is a saved message template.
type Template struct {
	ID string `json:"id"`
	template.Template
	CreatedAt time.Time `json:"created_at"`
	UpdatedAt time.Time `json:"updated_at"`
	Version   int       `json:"version"`
}

// checkTemplate validates a template and returns it in canonical form (locales as es-PE).
func checkTemplate(t template.Template) (template.Template, error) {
	if t.Channel == "" {
		t.Channel = "whatsapp"
	}
	if err := t.Validate(); err != nil {
		var ve *template.ValidationError
		if errors.As(err, &ve) {
			fields := make([]FieldError, len(ve.Problems))
			for i, p := range ve.Problems {
				fields[i] = FieldError{Field: p.Path, Reason: p.Reason}
			}
			return t, invalid(fields...)
		}
		return t, err
	}
	return t.Normalized(), nil
}

func templateEvent(id string, t template.Template) events.TemplateSaved {
	variants := make(map[string]events.TemplateVariant, len(t.Variants))
	for k, v := range t.Variants {
		variants[k] = events.TemplateVariant(v)
	}
	return events.TemplateSaved{ID: id, Name: t.Name, Channel: t.Channel, DefaultLocale: t.DefaultLocale, Variants: variants}
}

func (a *API) createTemplate(w http.ResponseWriter, r *http.Request) error {
	return a.saveTemplate(w, r, true)
}

func (a *API) replaceTemplate(w http.ResponseWriter, r *http.Request) error {
	return a.saveTemplate(w, r, false)
}

func (a *API) saveTemplate(w http.ResponseWriter, r *http.Request, create bool) error {
	id, expected, status, err := saveTarget(r, create)
	if err != nil {
		return err
	}
	var body template.Template
	if err := a.decode(w, r, &body); err != nil {
		return err
	}
	t, err := checkTemplate(body)
	if err != nil {
		return err
	}
	written, err := a.catalog.SaveTemplate(r.Context(), templateEvent(id, t), create, expected, metadata(r))
	if err != nil {
		return err
	}
	return a.templates.answer(a, w, r, status, id, written)
}

const templateColumns = `id, name, channel, default_locale, variants, created_at, updated_at, version`

func scanTemplate(row pgx.Row) (Template, error) {
	var t Template
	err := row.Scan(&t.ID, &t.Name, &t.Channel, &t.DefaultLocale, &t.Variants, &t.CreatedAt, &t.UpdatedAt, &t.Version)
	return t, err
}

func (a *API) getTemplate(w http.ResponseWriter, r *http.Request) error { return a.templates.get(w, r) }

func (a *API) listTemplates(w http.ResponseWriter, r *http.Request) error {
	return a.templates.list(w, r, "")
}

// Rendered is a template rendered for one recipient.
type Rendered struct {
	Locale           string            `json:"locale"`
	Text             string            `json:"text"`
	Chars            int               `json:"chars"`
	TooLong          bool              `json:"too_long"`
	ContentSID       string            `json:"content_sid,omitempty"`
	ContentVariables map[string]string `json:"content_variables,omitempty"`
	Missing          []string          `json:"missing"`
}

func rendered(res template.Result) Rendered {
	out := Rendered{Locale: res.Locale, Text: res.Text, Chars: res.Chars, TooLong: res.TooLong, ContentSID: res.ContentSID,
		ContentVariables: res.ContentVariables, Missing: res.Missing}
	if out.Missing == nil {
		out.Missing = []string{}
	}
	return out
}

// templatePreviewBody is what a template is rendered for: a user (phone) or ad-hoc attributes.
type templatePreviewBody struct {
	Phone      string         `json:"phone"`
	Attributes map[string]any `json:"attributes"`
	Locale     string         `json:"locale"`
	Country    string         `json:"country"`
	Event      map[string]any `json:"event"`
}

// previewTemplate renders a saved template for a user (phone) or for ad-hoc attributes.
func (a *API) previewTemplate(w http.ResponseWriter, r *http.Request) error {
	id, err := idParam(r)
	if err != nil {
		return err
	}
	var b templatePreviewBody
	if err := a.decode(w, r, &b); err != nil {
		return err
	}
	t, err := a.templates.read(r.Context(), id)
	if err != nil {
		return err
	}
	return a.renderPreview(w, r, t.Template, b)
}

// previewDraft serves POST /v1/templates/preview: a template that is not saved (an editor's
// text as the operator types) validated and rendered like a saved one; its problems name
// paths under "template." (template.variants.es.body).
func (a *API) previewDraft(w http.ResponseWriter, r *http.Request) error {
	var b struct {
		Template template.Template `json:"template"`
		templatePreviewBody
	}
	if err := a.decode(w, r, &b); err != nil {
		return err
	}
	if b.Template.Name == "" {
		b.Template.Name = "preview"
	}
	t, err := checkTemplate(b.Template)
	if err != nil {
		var pe *problemError
		if errors.As(err, &pe) {
			for i := range pe.fields {
				pe.fields[i].Field = "template." + pe.fields[i].Field
			}
		}
		return err
	}
	return a.renderPreview(w, r, t, b.templatePreviewBody)
}

func (a *API) renderPreview(w http.ResponseWriter, r *http.Request, t template.Template, b templatePreviewBody) error {
	data := template.Data{Attributes: b.Attributes, Locale: b.Locale, Country: b.Country, Event: b.Event}
	if b.Phone != "" {
		phone, err := commands.NormalizePhone(b.Phone, a.cfg.DefaultRegion)
		if err != nil {
			return err
		}
		u, err := a.readUser(r.Context(), phone)
		if err != nil {
			return invalid(FieldError{Field: "phone", Reason: "no user has this number"})
		}
		data.Phone, data.Country, data.Locale, data.Attributes = u.Phone, u.Country, u.Locale, u.Attributes
		if b.Locale != "" {
			data.Locale = b.Locale
		}
	}
	res, err := t.Render(data)
	if err != nil && !errors.Is(err, template.ErrMissingValue) && !errors.Is(err, template.ErrTooLong) {
		return err
	}
	writeJSON(w, http.StatusOK, rendered(res))
	return nil
}
