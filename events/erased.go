package events

// TypeEventErased replaces, in place, every event of a deleted user's stream once the read
// models have applied the deletion (projections.Eraser): the event keeps its id, position and
// stream version, loses its payload, and moves to the stream ErasedStream(deletion id). No
// projection handles it, so a rebuild sees nothing of the user.
const TypeEventErased = "event.erased"

// CategoryErased holds the streams of erased users: one per deletion, named by its event id.
const CategoryErased = "erased"

// ErasedStream is where the events of the user deleted by deletionEventID end up.
func ErasedStream(deletionEventID string) string { return CategoryErased + "-" + deletionEventID }

// EventErased is the payload left of an erased event: the deletion that erased it.
type EventErased struct {
	ErasedBy string `json:"erased_by"`
}

func (EventErased) EventType() string  { return TypeEventErased }
func (EventErased) SchemaVersion() int { return 1 }
