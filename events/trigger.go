package events

import (
	"encoding/json"
	"time"
)

// CategoryTrigger holds one stream per trigger event, named by the sender's event_id: the
// stream existing is what makes a resent event a duplicate, across files and requests.
const CategoryTrigger = "trigger"

// TriggerStream is the stream of the trigger event the sender named eventID.
func TriggerStream(eventID string) string { return CategoryTrigger + "-" + eventID }

// TypeTriggerAccepted records a product event accepted for sending.
const TypeTriggerAccepted = "trigger.accepted"

// TriggerAccepted is a validated trigger event with its audience resolved: the users
// subscribed to Topic, opted in, and matching the rule (Segment, or the segment SegmentID had
// when it was accepted, with {"$event": …} values taken from Payload). Recipients is how many
// matched when it was accepted; the runner resolves them again when it sends.
type TriggerAccepted struct {
	EventID    string          `json:"event_id"`
	Type       string          `json:"type"`
	OccurredAt time.Time       `json:"occurred_at"`
	Payload    map[string]any  `json:"payload"`
	Segment    json.RawMessage `json:"segment,omitempty"`
	SegmentID  string          `json:"segment_id,omitempty"`
	TemplateID string          `json:"template_id"`
	Topic      string          `json:"topic"`
	Recipients int64           `json:"recipients"`
	ResolvedAt time.Time       `json:"resolved_at"`
	Source     string          `json:"source"`
}

func (TriggerAccepted) EventType() string  { return TypeTriggerAccepted }
func (TriggerAccepted) SchemaVersion() int { return 1 }
