package events

import (
	"encoding/json"
	"errors"
	"fmt"
	"sort"
)

// ErrUnknownEventType is returned for a type string the registry does not know.
var ErrUnknownEventType = errors.New("unknown event type")

// DecodeError says which stored event could not be turned into its Go type, and why.
type DecodeError struct {
	Type          string
	SchemaVersion int
	Err           error
}

func (e *DecodeError) Error() string {
	return fmt.Sprintf("decode %s v%d: %v", e.Type, e.SchemaVersion, e.Err)
}

func (e *DecodeError) Unwrap() error { return e.Err }

// Upcaster turns the JSON payload of one schema version into the next version's shape.
type Upcaster func(data json.RawMessage) (json.RawMessage, error)

// Definition describes one event type: its stable name, current schema version, a constructor
// for its payload, and upcasters keyed by the version they upgrade from.
type Definition struct {
	Type      string
	Version   int
	New       func() Event
	Upcasters map[int]Upcaster
}

// Catalogue lists every event type Herald stores. It is a plain list: adding an event type is
// adding a line here (and a golden file in testdata/).
func Catalogue() []Definition {
	return []Definition{
		{Type: TypeUserCreated, Version: 1, New: func() Event { return &UserCreated{} }},
		{Type: TypeUserAttributesChanged, Version: 1, New: func() Event { return &UserAttributesChanged{} }},
		{Type: TypeUserConsentChanged, Version: 1, New: func() Event { return &UserConsentChanged{} }},
		{Type: TypeUserSubscribed, Version: 1, New: func() Event { return &UserSubscribed{} }},
		{Type: TypeUserUnsubscribed, Version: 1, New: func() Event { return &UserUnsubscribed{} }},
		{Type: TypeUserMessageReceived, Version: 1, New: func() Event { return &UserMessageReceived{} }},
		{Type: TypeMessageStatusReceived, Version: 1, New: func() Event { return &MessageStatusReceived{} }},
		{Type: TypeUserDeleted, Version: 1, New: func() Event { return &UserDeleted{} }},
		{Type: TypeEventErased, Version: 1, New: func() Event { return &EventErased{} }},
		{Type: TypeSegmentSaved, Version: 1, New: func() Event { return &SegmentSaved{} }},
		{Type: TypeSegmentDeleted, Version: 1, New: func() Event { return &SegmentDeleted{} }},
		{Type: TypeTemplateSaved, Version: 1, New: func() Event { return &TemplateSaved{} }},
		{Type: TypeTemplateDeleted, Version: 1, New: func() Event { return &TemplateDeleted{} }},
		{Type: TypeCampaignSaved, Version: 1, New: func() Event { return &CampaignSaved{} }},
		{Type: TypeCampaignStatusChanged, Version: 1, New: func() Event { return &CampaignStatusChanged{} }},
		{Type: TypeCampaignDeleted, Version: 1, New: func() Event { return &CampaignDeleted{} }},
		{Type: TypeCampaignRunStarted, Version: 1, New: func() Event { return &CampaignRunStarted{} }},
		{Type: TypeCampaignRunMaterialized, Version: 1, New: func() Event { return &CampaignRunMaterialized{} }},
		{Type: TypeMessageQueued, Version: 1, New: func() Event { return &MessageQueued{} }},
		{Type: TypeMessageDeferred, Version: 1, New: func() Event { return &MessageDeferred{} }},
		{Type: TypeMessageSkipped, Version: 1, New: func() Event { return &MessageSkipped{} }},
		{Type: TypeMessageSendAttempted, Version: 1, New: func() Event { return &MessageSendAttempted{} }},
		{Type: TypeMessageAccepted, Version: 1, New: func() Event { return &MessageAccepted{} }},
		{Type: TypeMessageRetryScheduled, Version: 1, New: func() Event { return &MessageRetryScheduled{} }},
		{Type: TypeMessageOutcomeUnknown, Version: 1, New: func() Event { return &MessageOutcomeUnknown{} }},
		{Type: TypeMessageFailed, Version: 1, New: func() Event { return &MessageFailed{} }},
		{Type: TypeMessageCancelled, Version: 1, New: func() Event { return &MessageCancelled{} }},
		{Type: TypeImportStarted, Version: 1, New: func() Event { return &ImportStarted{} }},
		{Type: TypeImportBatchProcessed, Version: 1, New: func() Event { return &ImportBatchProcessed{} }},
		{Type: TypeImportFinished, Version: 1, New: func() Event { return &ImportFinished{} }},
		{Type: TypeTriggerAccepted, Version: 1, New: func() Event { return &TriggerAccepted{} }},
	}
}

// Registry decodes stored envelopes into payload types. It is built explicitly (no init()
// side effects) and is read-only after construction, so it is safe for concurrent use.
type Registry struct {
	defs map[string]Definition
}

// NewRegistry builds a registry from definitions, rejecting duplicates and incomplete entries.
func NewRegistry(defs []Definition) (*Registry, error) {
	r := &Registry{defs: make(map[string]Definition, len(defs))}
	for _, d := range defs {
		switch {
		case d.Type == "":
			return nil, errors.New("registry: definition without a type")
		case d.Version < 1:
			return nil, fmt.Errorf("registry: %s: version must be ≥ 1", d.Type)
		case d.New == nil:
			return nil, fmt.Errorf("registry: %s: no constructor", d.Type)
		}
		if _, dup := r.defs[d.Type]; dup {
			return nil, fmt.Errorf("registry: %s registered twice", d.Type)
		}
		if got := d.New().EventType(); got != d.Type {
			return nil, fmt.Errorf("registry: %s: constructor returns a %s", d.Type, got)
		}
		for v := 1; v < d.Version; v++ {
			if d.Upcasters[v] == nil {
				return nil, fmt.Errorf("registry: %s: no upcaster from v%d", d.Type, v)
			}
		}
		r.defs[d.Type] = d
	}
	return r, nil
}

// DefaultRegistry is the registry of the Catalogue.
func DefaultRegistry() *Registry {
	r, err := NewRegistry(Catalogue())
	if err != nil {
		panic(err) // the catalogue is a constant; a test proves it builds
	}
	return r
}

// Known reports whether eventType is registered.
func (r *Registry) Known(eventType string) bool {
	_, ok := r.defs[eventType]
	return ok
}

// Types returns the registered type strings, sorted.
func (r *Registry) Types() []string {
	out := make([]string, 0, len(r.defs))
	for t := range r.defs {
		out = append(out, t)
	}
	sort.Strings(out)
	return out
}

// Decode returns the payload of env as its Go type, upcasting old schema versions first.
// Errors are *DecodeError (wrapping ErrUnknownEventType for an unknown type).
func (r *Registry) Decode(env Envelope) (Event, error) {
	return r.DecodeData(env.Type, env.SchemaVersion, env.Data)
}

// DecodeData is Decode for a bare payload.
func (r *Registry) DecodeData(eventType string, version int, data json.RawMessage) (Event, error) {
	d, ok := r.defs[eventType]
	if !ok {
		return nil, &DecodeError{Type: eventType, SchemaVersion: version, Err: ErrUnknownEventType}
	}
	if version < 1 || version > d.Version {
		return nil, &DecodeError{Type: eventType, SchemaVersion: version,
			Err: fmt.Errorf("schema version not in 1..%d", d.Version)}
	}
	for v := version; v < d.Version; v++ {
		up, err := d.Upcasters[v](data)
		if err != nil {
			return nil, &DecodeError{Type: eventType, SchemaVersion: version, Err: fmt.Errorf("upcast from v%d: %w", v, err)}
		}
		data = up
	}
	e := d.New()
	if err := json.Unmarshal(data, e); err != nil {
		return nil, &DecodeError{Type: eventType, SchemaVersion: version, Err: err}
	}
	return e, nil
}
