package saga

import (
	"fmt"
	"time"

	"github.com/google/uuid"

	"herald/events"
)

// message is a message stream folded: what was queued and where the saga has got to.
type message struct {
	id      uuid.UUID
	stream  string
	version int
	queued  events.MessageQueued
	state   string
	// attempts is the number of the last attempt recorded; last is that attempt.
	attempts int
	last     *events.MessageSendAttempted
	// due is when the current state asks for work (deferred until, retry at, check at).
	due time.Time
}

// Message states, as the messages read model names them.
const (
	stateQueued    = "queued"
	stateDeferred  = "deferred"
	stateAttempted = "attempted"
	stateAccepted  = "accepted"
	stateUnknown   = "unknown"
	stateRetrying  = "retrying"
	stateSkipped   = "skipped"
	stateFailed    = "failed"
	stateCancelled = "cancelled"
)

func (m *message) terminal() bool {
	switch m.state {
	case stateAccepted, stateSkipped, stateFailed, stateCancelled:
		return true
	}
	return false
}

func foldMessage(registry *events.Registry, id uuid.UUID, envs []events.Envelope) (*message, error) {
	m := &message{id: id, stream: events.MessageStream(id.String())}
	for _, env := range envs {
		e, err := registry.Decode(env)
		if err != nil {
			return nil, fmt.Errorf("message %s: %w", id, err)
		}
		m.version = env.StreamVersion
		switch e := e.(type) {
		case *events.MessageQueued:
			m.queued, m.state, m.due = *e, stateQueued, e.DueAt
		case *events.MessageDeferred:
			m.state, m.due = stateDeferred, e.Until
		case *events.MessageSkipped:
			m.state = stateSkipped
		case *events.MessageSendAttempted:
			m.state, m.attempts, m.last = stateAttempted, e.Attempt, e
		case *events.MessageAccepted:
			m.state = stateAccepted
		case *events.MessageRetryScheduled:
			m.state, m.due = stateRetrying, e.At
		case *events.MessageOutcomeUnknown:
			m.state, m.due = stateUnknown, e.CheckAt
		case *events.MessageFailed:
			m.state = stateFailed
		case *events.MessageCancelled:
			m.state = stateCancelled
		}
	}
	if m.state == "" {
		return nil, fmt.Errorf("message %s: no message.queued", id)
	}
	return m, nil
}
