package saga

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"herald/events"
	"herald/events/store"
	"herald/projections/segment"
)

// triggerCheckpoint is where the saga has got to in the log's trigger.accepted events.
const triggerCheckpoint = "saga:triggers"

// triggerPage bounds the log rows one round reads.
const triggerPage = 5_000

// MaterializeTriggers queues the messages of accepted triggers: it reads trigger.accepted
// events gap-safely after its checkpoint, materializes each like a campaign run (the trigger's
// rule with its payload, topic and template), and moves the checkpoint. Message ids derive from
// the trigger's event id and the phone, so a repeated round queues nothing twice. It reports
// whether more may be waiting.
func (s *Saga) MaterializeTriggers(ctx context.Context) (bool, error) {
	if _, err := s.pool.Exec(ctx, `INSERT INTO checkpoints (name) VALUES ($1) ON CONFLICT DO NOTHING`, triggerCheckpoint); err != nil {
		return false, fmt.Errorf("trigger checkpoint: %w", err)
	}
	var cp store.Checkpoint
	if err := s.pool.QueryRow(ctx, `SELECT last_tx, last_position FROM checkpoints WHERE name = $1`, triggerCheckpoint).
		Scan(&cp.TxID, &cp.Position); err != nil {
		return false, fmt.Errorf("trigger checkpoint: %w", err)
	}
	page, err := store.ReadAfter(ctx, s.pool, cp, triggerPage, []string{events.TypeTriggerAccepted})
	if err != nil {
		return false, err
	}
	for _, env := range page.Events {
		e, err := s.registry.Decode(env)
		if err != nil {
			return false, fmt.Errorf("trigger %s: %w", env.EventID, err)
		}
		t := e.(*events.TriggerAccepted)
		n, err := s.materializeTrigger(ctx, *t)
		if err != nil {
			return false, err
		}
		s.log.Info().Str("trigger", t.EventID).Str("type", t.Type).Int("recipients", n).Msg("trigger materialized")
	}
	if page.Next != cp {
		if _, err := s.pool.Exec(ctx, `UPDATE checkpoints SET last_tx = $2, last_position = $3, updated_at = now() WHERE name = $1`,
			triggerCheckpoint, page.Next.TxID, page.Next.Position); err != nil {
			return false, fmt.Errorf("trigger checkpoint: %w", err)
		}
	}
	return !page.CaughtUp, nil
}

func (s *Saga) materializeTrigger(ctx context.Context, t events.TriggerAccepted) (int, error) {
	rule := []byte(t.Segment)
	if t.SegmentID != "" && len(rule) == 0 {
		err := s.pool.QueryRow(ctx, `SELECT rule FROM segments WHERE id = $1`, t.SegmentID).Scan(&rule)
		if err != nil {
			return 0, fmt.Errorf("trigger %s: segment %s: %w", t.EventID, t.SegmentID, err)
		}
	}
	where, args := "true", []any{t.Topic}
	if len(rule) > 0 && string(rule) != "null" {
		r, err := segment.Parse(json.RawMessage(rule))
		if err == nil {
			where, args, err = segment.Compile(r, segment.Params{Now: s.now(), Event: t.Payload, ArgOffset: 1})
			args = append([]any{t.Topic}, args...)
		}
		var ve *segment.ValidationError
		if errors.As(err, &ve) {
			// Accepted triggers were validated; a rule that no longer binds reaches nobody.
			s.log.Warn().Err(err).Str("trigger", t.EventID).Msg("trigger rule does not apply; no recipients")
			return 0, nil
		}
		if err != nil {
			return 0, fmt.Errorf("trigger %s: %w", t.EventID, err)
		}
	}
	return s.queue(ctx, where, args, func(phone string) events.MessageQueued {
		return events.MessageQueued{Kind: events.MessageKindTrigger, TriggerID: t.EventID, Phone: phone, Topic: t.Topic,
			TemplateID: t.TemplateID, Payload: t.Payload}
	}, "trigger/"+t.EventID, 0)
}
