package projections

import (
	"context"
	"fmt"
	"time"

	"github.com/google/uuid"

	"herald/events"
)

// Messages is the outbound messages read model: one row per message with its state, the
// reason of its last decision, its provider SID, and when work on it is next due (the send
// saga's durable timers: workers claim rows whose due_at has passed).
type Messages struct{}

// StaleAttempt is how long after a recorded attempt without an outcome the message is due
// again: its worker died between recording the attempt and recording the result, and the
// outcome must be reconciled.
const StaleAttempt = 2 * time.Minute

func (Messages) Name() string     { return "messages" }
func (Messages) Tables() []string { return []string{"messages"} }
func (Messages) Handles() []string {
	return []string{events.TypeMessageQueued, events.TypeMessageDeferred, events.TypeMessageSkipped, events.TypeMessageSendAttempted,
		events.TypeMessageAccepted, events.TypeMessageRetryScheduled, events.TypeMessageOutcomeUnknown, events.TypeMessageFailed,
		events.TypeMessageCancelled}
}

// Message states in the read model.
const (
	MessageQueued    = "queued"
	MessageDeferred  = "deferred"
	MessageAttempted = "attempted"
	MessageAccepted  = "accepted"
	MessageUnknown   = "unknown"
	MessageRetrying  = "retrying"
	MessageSkipped   = "skipped"
	MessageFailed    = "failed"
	MessageCancelled = "cancelled"
)

const (
	sqlMessagesQueued = `INSERT INTO messages (id, kind, campaign_id, run_id, trigger_id, phone, state, due_at, queued_at, updated_at, version)
SELECT id, kind, campaign_id, run_id, trigger_id, phone, 'queued', due_at, at, at, version
FROM unnest($1::uuid[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[], $7::timestamptz[], $8::timestamptz[], $9::int[])
    AS r(id, kind, campaign_id, run_id, trigger_id, phone, due_at, at, version)
ON CONFLICT (id) DO NOTHING`

	// A decision: state, reason, detail, due_at; everything else stays.
	sqlMessageDecision = `UPDATE messages SET state = $2, reason = $3, detail = $4, due_at = $5, error_code = coalesce($6, error_code),
    updated_at = $7, version = $8 WHERE id = $1`

	sqlMessageAttempted = `UPDATE messages SET state = 'attempted', reason = '', detail = '', attempts = $2, attempted_at = $3,
    locale = $4, body = $5, due_at = $6, updated_at = $7, version = $8 WHERE id = $1`

	sqlMessageAccepted = `UPDATE messages SET state = 'accepted', reason = $2, detail = '', provider_sid = $3, due_at = NULL,
    updated_at = $4, version = $5 WHERE id = $1`
)

func messageID(env events.Envelope) (uuid.UUID, error) {
	id, err := uuid.Parse(env.StreamID[len(events.CategoryMessage)+1:])
	if err != nil {
		return uuid.Nil, Poison(fmt.Errorf("messages: stream %s is not message-<uuid>", env.StreamID))
	}
	return id, nil
}

func (Messages) Apply(_ context.Context, tx Tx, env events.Envelope, e events.Event) error {
	id, err := messageID(env)
	if err != nil {
		return err
	}
	at, v := env.RecordedAt, env.StreamVersion
	switch e := e.(type) {
	case *events.MessageQueued:
		tx.Queue(sqlMessagesQueued, []uuid.UUID{id}, []string{e.Kind}, []string{e.CampaignID}, []string{e.RunID}, []string{e.TriggerID},
			[]string{e.Phone}, []time.Time{e.DueAt}, []time.Time{at}, []int{v})
	case *events.MessageDeferred:
		tx.Queue(sqlMessageDecision, id, MessageDeferred, e.Reason, e.Detail, e.Until, nil, at, v)
	case *events.MessageSkipped:
		tx.Queue(sqlMessageDecision, id, MessageSkipped, e.Reason, e.Detail, nil, nil, at, v)
	case *events.MessageSendAttempted:
		tx.Queue(sqlMessageAttempted, id, e.Attempt, e.At, e.Locale, e.Body, e.At.Add(StaleAttempt), at, v)
	case *events.MessageAccepted:
		tx.Queue(sqlMessageAccepted, id, e.Via, e.SID, at, v)
	case *events.MessageRetryScheduled:
		tx.Queue(sqlMessageDecision, id, MessageRetrying, "retry", e.Reason, e.At, codeOrNil(e.Code), at, v)
	case *events.MessageOutcomeUnknown:
		tx.Queue(sqlMessageDecision, id, MessageUnknown, "outcome_unknown", e.Reason, e.CheckAt, nil, at, v)
	case *events.MessageFailed:
		tx.Queue(sqlMessageDecision, id, MessageFailed, "failed", e.Reason, nil, codeOrNil(e.Code), at, v)
	case *events.MessageCancelled:
		tx.Queue(sqlMessageDecision, id, MessageCancelled, "cancelled", e.Reason, nil, nil, at, v)
	default:
		return Poison(fmt.Errorf("messages: unexpected %T", e))
	}
	return nil
}

func codeOrNil(code int) *int {
	if code == 0 {
		return nil
	}
	return &code
}

// ApplyBatch inserts runs of queued messages (a campaign's materialization: up to a million
// in a row) with one statement each, and applies the other decisions one by one.
func (m Messages) ApplyBatch(ctx context.Context, tx Tx, envs []events.Envelope, evs []events.Event) error {
	queued := func(i int) int {
		if _, ok := evs[i].(*events.MessageQueued); ok {
			return 0
		}
		return 1 + i // every other event is a run of its own
	}
	return eachRun(len(evs), queued, func(i int) string { return envs[i].StreamID }, func(from, to int) error {
		if _, ok := evs[from].(*events.MessageQueued); !ok {
			return m.Apply(ctx, tx, envs[from], evs[from])
		}
		n := to - from
		ids := make([]uuid.UUID, 0, n)
		var kinds, campaigns, runs, triggers, phones []string
		due, at := make([]time.Time, 0, n), make([]time.Time, 0, n)
		versions := make([]int, 0, n)
		for i := from; i < to; i++ {
			id, err := messageID(envs[i])
			if err != nil {
				return err
			}
			q := evs[i].(*events.MessageQueued)
			ids = append(ids, id)
			kinds, campaigns, runs = append(kinds, q.Kind), append(campaigns, q.CampaignID), append(runs, q.RunID)
			triggers, phones = append(triggers, q.TriggerID), append(phones, q.Phone)
			due, at, versions = append(due, q.DueAt), append(at, envs[i].RecordedAt), append(versions, envs[i].StreamVersion)
		}
		tx.Queue(sqlMessagesQueued, ids, kinds, campaigns, runs, triggers, phones, due, at, versions)
		return nil
	})
}
