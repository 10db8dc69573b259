package store

import (
	"errors"
	"fmt"

	"github.com/google/uuid"
)

// ErrConcurrency means the stream's version was not the expected one: another writer appended
// first (or the caller's view is stale). Reload the stream and decide again.
var ErrConcurrency = errors.New("stream version conflict")

// ErrClosed is returned by Append after Close.
var ErrClosed = errors.New("event store closed")

// ConcurrencyError carries the stream and the version the caller expected; it matches
// ErrConcurrency with errors.Is.
type ConcurrencyError struct {
	StreamID string
	Expected int
}

func (e *ConcurrencyError) Error() string {
	return fmt.Sprintf("append to %s: expected version %d: %v", e.StreamID, e.Expected, ErrConcurrency)
}

func (e *ConcurrencyError) Is(target error) bool { return target == ErrConcurrency }

// ErrEventIDReused means an event id is already stored with another stream, type or payload:
// a deterministic id was derived from a key that is not really unique, or a retry changed its body.
var ErrEventIDReused = errors.New("event id already stored with a different payload")

// EventIDReusedError names the offending event ids.
type EventIDReusedError struct {
	EventIDs []uuid.UUID
}

func (e *EventIDReusedError) Error() string {
	return fmt.Sprintf("%v: %v", ErrEventIDReused, e.EventIDs)
}

func (e *EventIDReusedError) Is(target error) bool { return target == ErrEventIDReused }
