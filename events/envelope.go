// Package events is Herald's vocabulary: the stored event envelope, the catalogue of event types
// (explicit, stable strings with schema versions), the registry that decodes them, and upcasters
// for old versions. It has no I/O; the Postgres store lives in events/store.
package events

import (
	"encoding/json"
	"fmt"
	"time"

	"github.com/google/uuid"
)

// Event is implemented by every payload type. EventType returns the stable type string stored in
// the log, never derived from the Go type name; SchemaVersion the version of the payload's shape.
type Event interface {
	EventType() string
	SchemaVersion() int
}

// Metadata travels with every event: who caused it and how it relates to other events.
type Metadata struct {
	CorrelationID string `json:"correlation_id,omitempty"`
	CausationID   string `json:"causation_id,omitempty"`
	Actor         string `json:"actor,omitempty"`
	Source        string `json:"source,omitempty"`
}

// Record is an event about to be appended: its identity, its stream and its encoded payload.
type Record struct {
	EventID       uuid.UUID
	StreamID      string
	Type          string
	SchemaVersion int
	Data          json.RawMessage
	Metadata      Metadata
}

// NewRecord encodes e for stream streamID. A zero id gets a random one; writers that need
// idempotency pass a deterministic id (see DeterministicID).
func NewRecord(id uuid.UUID, streamID string, e Event, md Metadata) (Record, error) {
	data, err := json.Marshal(e)
	if err != nil {
		return Record{}, fmt.Errorf("encode %s: %w", e.EventType(), err)
	}
	if id == uuid.Nil {
		id = uuid.New()
	}
	return Record{
		EventID:       id,
		StreamID:      streamID,
		Type:          e.EventType(),
		SchemaVersion: e.SchemaVersion(),
		Data:          data,
		Metadata:      md,
	}, nil
}

// Envelope is an event as stored: the record plus where and when the log put it.
type Envelope struct {
	GlobalPosition int64
	TransactionID  uint64
	EventID        uuid.UUID
	StreamID       string
	StreamVersion  int
	Type           string
	SchemaVersion  int
	Data           json.RawMessage
	Metadata       Metadata
	RecordedAt     time.Time
}

// namespace is the UUIDv5 namespace of Herald's deterministic event ids. Never change it:
// every stored idempotency key depends on it.
var namespace = uuid.MustParse("6f1c1c8e-3b8a-4c55-9d0e-6a6f2d1e8b10")

// DeterministicID derives an event id from a natural key (a Twilio MessageSid and status, an
// import id and row number, …) so that a retried write is recognised as the same event.
func DeterministicID(kind string, parts ...string) uuid.UUID {
	key := kind
	for _, p := range parts {
		key += "\x1f" + p
	}
	return uuid.NewSHA1(namespace, []byte(key))
}
