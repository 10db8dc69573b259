package events

// Stream ids follow message-db's category-id form, so a category is a prefix.
const CategoryUser = "user"

// UserStream is the stream of every fact about one user, keyed by E.164 phone.
func UserStream(phone string) string { return CategoryUser + "-" + phone }

// Consent values.
const (
	ConsentOptIn  = "OPT_IN"
	ConsentOptOut = "OPT_OUT"
)

// Event types of the user stream. These strings are stored forever: never rename them.
const (
	TypeUserCreated           = "user.created"
	TypeUserAttributesChanged = "user.attributes_changed"
	TypeUserConsentChanged    = "user.consent_changed"
	TypeUserSubscribed        = "user.subscribed"
	TypeUserUnsubscribed      = "user.unsubscribed"
	TypeUserDeleted           = "user.deleted"
)

// UserCreated starts a user's stream.
type UserCreated struct {
	Phone      string         `json:"phone"`
	Attributes map[string]any `json:"attributes"`
	Locale     string         `json:"locale,omitempty"`
	Timezone   string         `json:"timezone,omitempty"`
	Consent    string         `json:"consent"`
	Source     string         `json:"source"`
}

func (UserCreated) EventType() string  { return TypeUserCreated }
func (UserCreated) SchemaVersion() int { return 1 }

// Attribute change modes.
const (
	AttributesMerge   = "merge"   // keys in Attributes overwrite, a null value deletes the key
	AttributesReplace = "replace" // Attributes becomes the whole attribute set
)

// UserAttributesChanged changes a user's attributes, locale or time zone.
type UserAttributesChanged struct {
	Phone      string         `json:"phone"`
	Mode       string         `json:"mode"`
	Attributes map[string]any `json:"attributes"`
	Locale     *string        `json:"locale,omitempty"`
	Timezone   *string        `json:"timezone,omitempty"`
	Source     string         `json:"source"`
}

func (UserAttributesChanged) EventType() string  { return TypeUserAttributesChanged }
func (UserAttributesChanged) SchemaVersion() int { return 1 }

// UserConsentChanged records an opt-in or opt-out with where it came from (an inbound STOP, the
// API, an import) so that "why did this person get a message" has an answer.
type UserConsentChanged struct {
	Phone   string `json:"phone"`
	Consent string `json:"consent"`
	Source  string `json:"source"`
	Reason  string `json:"reason,omitempty"`
}

func (UserConsentChanged) EventType() string  { return TypeUserConsentChanged }
func (UserConsentChanged) SchemaVersion() int { return 1 }

// UserSubscribed turns a topic subscription on.
type UserSubscribed struct {
	Phone  string `json:"phone"`
	Topic  string `json:"topic"`
	Source string `json:"source"`
}

func (UserSubscribed) EventType() string  { return TypeUserSubscribed }
func (UserSubscribed) SchemaVersion() int { return 1 }

// UserUnsubscribed turns a topic subscription off.
type UserUnsubscribed struct {
	Phone  string `json:"phone"`
	Topic  string `json:"topic"`
	Source string `json:"source"`
}

func (UserUnsubscribed) EventType() string  { return TypeUserUnsubscribed }
func (UserUnsubscribed) SchemaVersion() int { return 1 }

// UserDeleted erases a user: the read models drop every row about them. A later event for the
// same phone (an inbound message, an import) starts the user afresh.
type UserDeleted struct {
	Phone  string `json:"phone"`
	Source string `json:"source"`
	Reason string `json:"reason,omitempty"`
}

func (UserDeleted) EventType() string  { return TypeUserDeleted }
func (UserDeleted) SchemaVersion() int { return 1 }
