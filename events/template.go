package events

// TemplateStream is the stream of one message template.
func TemplateStream(id string) string { return CategoryTemplate + "-" + id }

// Event types of the template stream.
const (
	TypeTemplateSaved   = "template.saved"
	TypeTemplateDeleted = "template.deleted"
)

// TemplateVariant is a template's text in one locale: a body with {placeholders}, and
// optionally the approved WhatsApp template (ContentSID) with its variables, each a
// placeholder expression keyed by the variable's number ("1", "2", …).
type TemplateVariant struct {
	Body             string            `json:"body"`
	ContentSID       string            `json:"content_sid,omitempty"`
	ContentVariables map[string]string `json:"content_variables,omitempty"`
}

// TemplateSaved is the whole template after a create or an update.
type TemplateSaved struct {
	ID            string                     `json:"id"`
	Name          string                     `json:"name"`
	Channel       string                     `json:"channel"`
	DefaultLocale string                     `json:"default_locale"`
	Variants      map[string]TemplateVariant `json:"variants"`
}

func (TemplateSaved) EventType() string  { return TypeTemplateSaved }
func (TemplateSaved) SchemaVersion() int { return 1 }

// TemplateDeleted removes a template.
type TemplateDeleted struct {
	ID string `json:"id"`
}

func (TemplateDeleted) EventType() string  { return TypeTemplateDeleted }
func (TemplateDeleted) SchemaVersion() int { return 1 }
