package saga

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"hash/fnv"
	"time"

	"github.com/jackc/pgx/v5"

	"herald/commands"
	"herald/events"
	"herald/events/store"
	"herald/projections/segment"
)

// onceRun is the run id of a campaign that sends once (schedule now or at).
const onceRun = "once"

// StartDue starts the runs that are due: a running campaign scheduled "now" without a run, a
// scheduled campaign whose time has come (it becomes running), and each due occurrence of a
// recurring campaign. Run ids are deterministic, so processes racing to start the same run
// append the same event once.
func (s *Saga) StartDue(ctx context.Context) error {
	now := s.now()
	rows, err := s.pool.Query(ctx, `SELECT c.id, c.status, c.schedule, c.updated_at,
    (SELECT max(r.occurrence) FROM campaign_runs r WHERE r.campaign_id = c.id)
FROM campaigns c WHERE c.status IN ('running', 'scheduled')`)
	if err != nil {
		return fmt.Errorf("find due campaigns: %w", err)
	}
	type due struct {
		id, status string
		schedule   events.Schedule
		since      time.Time
		lastRun    *time.Time
	}
	list, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (due, error) {
		var d due
		err := r.Scan(&d.id, &d.status, &d.schedule, &d.since, &d.lastRun)
		return d, err
	})
	if err != nil {
		return fmt.Errorf("find due campaigns: %w", err)
	}
	var errs []error
	for _, d := range list {
		sched, probs := commands.ParseSchedule(d.schedule)
		if len(probs) > 0 {
			continue
		}
		switch {
		case d.schedule.Kind == events.ScheduleNow && d.status == events.CampaignRunning && d.lastRun == nil:
			errs = append(errs, s.startRun(ctx, d.id, onceRun, d.since))
		case d.schedule.Kind == events.ScheduleAt && d.status == events.CampaignScheduled && !sched.At.After(now):
			errs = append(errs, s.startRun(ctx, d.id, onceRun, sched.At))
			_, err := s.catalog().ChangeCampaignStatus(ctx, d.id, events.CampaignRunning, "scheduled time reached", store.AnyVersion, s.metadata())
			errs = append(errs, err)
		case d.schedule.Kind == events.ScheduleCron && d.status == events.CampaignScheduled:
			from := d.since
			if d.lastRun != nil {
				from = *d.lastRun
			}
			if next := sched.Next(from); !next.IsZero() && !next.After(now) {
				errs = append(errs, s.startRun(ctx, d.id, next.UTC().Format(time.RFC3339), next))
			}
		}
	}
	return errors.Join(errs...)
}

func (s *Saga) catalog() *commands.Catalog { return commands.NewCatalog(s.store, s.registry) }

func (s *Saga) metadata() events.Metadata { return events.Metadata{Source: "saga", Actor: s.cfg.Owner} }

func (s *Saga) startRun(ctx context.Context, campaignID, runID string, occurrence time.Time) error {
	stream := events.CampaignStream(campaignID)
	rec, err := events.NewRecord(events.DeterministicID("campaign-run", campaignID, runID), stream,
		events.CampaignRunStarted{ID: campaignID, RunID: runID, Occurrence: occurrence.UTC()}, s.metadata())
	if err != nil {
		return err
	}
	if _, err := s.store.Append(ctx, stream, store.AnyVersion, rec); errors.Is(err, store.ErrEventIDReused) {
		return nil // started already, by another process or an earlier round, with other inputs
	} else if err != nil {
		return fmt.Errorf("start run %s of campaign %s: %w", runID, campaignID, err)
	}
	s.log.Info().Str("campaign_id", campaignID).Str("run_id", runID).Msg("campaign run started")
	return nil
}

// MaterializePending queues the messages of every started run that has none yet.
func (s *Saga) MaterializePending(ctx context.Context) error {
	rows, err := s.pool.Query(ctx, `SELECT campaign_id, run_id FROM campaign_runs WHERE materialized_at IS NULL ORDER BY started_at LIMIT 10`)
	if err != nil {
		return fmt.Errorf("find runs to materialize: %w", err)
	}
	type run struct{ campaign, id string }
	runs, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (run, error) {
		var x run
		err := r.Scan(&x.campaign, &x.id)
		return x, err
	})
	if err != nil {
		return fmt.Errorf("find runs to materialize: %w", err)
	}
	for _, r := range runs {
		if err := s.materializeLocked(ctx, r.campaign, r.id); err != nil {
			return err
		}
	}
	return nil
}

// materializeLocked materializes a run under a session advisory lock, so two processes do not
// both do the work (if they did, the deterministic ids would still make it happen once).
func (s *Saga) materializeLocked(ctx context.Context, campaignID, runID string) error {
	conn, err := s.pool.Acquire(ctx)
	if err != nil {
		return err
	}
	defer conn.Release()
	h := fnv.New64a()
	h.Write([]byte("herald.materialize." + campaignID + "." + runID))
	key := int64(h.Sum64() >> 1)
	var got bool
	if err := conn.QueryRow(ctx, `SELECT pg_try_advisory_lock($1)`, key).Scan(&got); err != nil || !got {
		return err
	}
	defer func() { _, _ = conn.Exec(context.WithoutCancel(ctx), `SELECT pg_advisory_unlock($1)`, key) }()
	n, err := s.Materialize(ctx, campaignID, runID)
	if err != nil {
		return err
	}
	s.log.Info().Str("campaign_id", campaignID).Str("run_id", runID).Int("recipients", n).Msg("campaign run materialized")
	return nil
}

// materializeChunk is how many messages one bulk append queues.
const materializeChunk = 10_000

// Materialize queues one message per recipient of a run — subscribed to the campaign's topic
// and matching its segment — in bulk, with ids derived from the run and the phone, then records
// how many. Consent is not filtered here but decided at send time, so a subscriber who opted
// out has a message whose trail says "skipped: consent" rather than no trace at all, and a STOP
// that arrives after materialization still wins. Running it again appends nothing new.
func (s *Saga) Materialize(ctx context.Context, campaignID, runID string) (int, error) {
	var (
		topic, templateID, segmentID string
		ruleJSON                     []byte
		rate                         events.RateLimit
	)
	err := s.pool.QueryRow(ctx, `SELECT topic, template_id, segment_id, segment_rule, rate_limit FROM campaigns WHERE id = $1`, campaignID).
		Scan(&topic, &templateID, &segmentID, &ruleJSON, &rate)
	if errors.Is(err, pgx.ErrNoRows) {
		return 0, s.recordMaterialized(ctx, campaignID, runID, 0) // deleted meanwhile: an empty run
	}
	if err != nil {
		return 0, fmt.Errorf("materialize %s: %w", campaignID, err)
	}
	if segmentID != "" {
		if err := s.pool.QueryRow(ctx, `SELECT rule FROM segments WHERE id = $1`, segmentID).Scan(&ruleJSON); err != nil {
			return 0, fmt.Errorf("materialize %s: segment %s: %w", campaignID, segmentID, err)
		}
	}
	where, args := "true", []any{topic}
	if len(ruleJSON) > 0 && string(ruleJSON) != "null" {
		rule, err := segment.Parse(json.RawMessage(ruleJSON))
		if err != nil {
			return 0, fmt.Errorf("materialize %s: %w", campaignID, err)
		}
		where, args, err = segment.Compile(rule, segment.Params{Now: s.now(), ArgOffset: 1})
		if err != nil {
			return 0, fmt.Errorf("materialize %s: %w", campaignID, err)
		}
		args = append([]any{topic}, args...)
	}
	n, err := s.queue(ctx, where, args, func(phone string) events.MessageQueued {
		return events.MessageQueued{Kind: events.MessageKindCampaign, CampaignID: campaignID, RunID: runID, Phone: phone,
			Topic: topic, TemplateID: templateID}
	}, runKey(campaignID, runID), pace(rate))
	if err != nil {
		return 0, fmt.Errorf("materialize %s: %w", campaignID, err)
	}
	return n, s.recordMaterialized(ctx, campaignID, runID, n)
}

// dueAhead is how long before its place in a paced run a message falls due: the claim that
// takes it is late by up to Poll and the work before the reservation (more on a loaded
// machine), and a slot reserved late would push every later slot back (a rate schedule never
// moves earlier). The message waits the difference for its slot instead (within slotHorizon).
const dueAhead = time.Second

// queue appends one message.queued per user subscribed to the topic ($1) and matching where,
// in bulk chunks; message ids derive from run and phone. With a pace (a rate-limited campaign),
// the opted-in recipients' messages fall due one pace apart (dueAhead early), as the rate limit
// will send them: the limiter still holds the rate, but a claim then finds about as many of the
// campaign's messages due as it can send, not its whole audience. The others (opted out now,
// to be skipped) are due at once: they take no slot.
func (s *Saga) queue(ctx context.Context, where string, args []any, message func(phone string) events.MessageQueued, run string,
	pace time.Duration) (int, error) {
	rows, err := s.pool.Query(ctx, `SELECT u.phone, u.consent = 'OPT_IN' FROM users u
WHERE EXISTS (SELECT 1 FROM subscriptions s WHERE s.topic = $1 AND s.subscribed AND s.phone = u.phone)
  AND (`+where+`) ORDER BY u.phone`, args...)
	if err != nil {
		return 0, err
	}
	type member struct {
		phone string
		optIn bool
	}
	members, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (member, error) {
		var m member
		return m, r.Scan(&m.phone, &m.optIn)
	})
	if err != nil {
		return 0, err
	}
	now := s.now().UTC()
	paced := 0
	for from := 0; from < len(members); from += materializeChunk {
		chunk := members[from:min(from+materializeChunk, len(members))]
		recs := make([]events.Record, len(chunk))
		for i, m := range chunk {
			id := MessageID(run, m.phone)
			q := message(m.phone)
			q.MessageID, q.DueAt = id, now
			if pace > 0 && m.optIn {
				if at := now.Add(time.Duration(paced)*pace - dueAhead); at.After(now) {
					q.DueAt = at
				}
				paced++
			}
			recs[i], err = events.NewRecord(events.DeterministicID("message-queued", id), events.MessageStream(id), q, s.metadata())
			if err != nil {
				return 0, err
			}
		}
		if _, err := s.store.AppendBulk(ctx, recs); err != nil {
			return 0, err
		}
	}
	if len(members) > 0 {
		s.metrics.queued(message(members[0].phone).Kind, len(members))
	}
	return len(members), nil
}

func runKey(campaignID, runID string) string { return campaignID + "/" + runID }

// MessageID is the id of the message of a run (or trigger) to a phone: the same inputs always
// give the same message, so materializing twice never doubles one.
func MessageID(run, phone string) string {
	return events.DeterministicID("message", run, phone).String()
}

func (s *Saga) recordMaterialized(ctx context.Context, campaignID, runID string, n int) error {
	stream := events.CampaignStream(campaignID)
	rec, err := events.NewRecord(events.DeterministicID("campaign-run-materialized", campaignID, runID), stream,
		events.CampaignRunMaterialized{ID: campaignID, RunID: runID, Recipients: n}, s.metadata())
	if err != nil {
		return err
	}
	if _, err = s.store.Append(ctx, stream, store.AnyVersion, rec); errors.Is(err, store.ErrEventIDReused) {
		return nil // recorded already (another process counted a moment earlier)
	}
	return err
}

// CompleteFinished marks running one-off campaigns completed once every run is materialized
// and every message has reached an end (accepted, skipped, failed or cancelled).
func (s *Saga) CompleteFinished(ctx context.Context) error {
	rows, err := s.pool.Query(ctx, `SELECT c.id FROM campaigns c
WHERE c.status = 'running' AND c.schedule->>'kind' IN ('now', 'at')
  AND EXISTS (SELECT 1 FROM campaign_runs r WHERE r.campaign_id = c.id)
  AND NOT EXISTS (SELECT 1 FROM campaign_runs r WHERE r.campaign_id = c.id AND r.materialized_at IS NULL)
  AND NOT EXISTS (SELECT 1 FROM messages m WHERE m.campaign_id = c.id
                  AND m.state IN ('queued', 'deferred', 'attempted', 'unknown', 'retrying'))`)
	if err != nil {
		return fmt.Errorf("find finished campaigns: %w", err)
	}
	ids, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return fmt.Errorf("find finished campaigns: %w", err)
	}
	var errs []error
	for _, id := range ids {
		_, err := s.catalog().ChangeCampaignStatus(ctx, id, events.CampaignCompleted, "every message reached an end", store.AnyVersion, s.metadata())
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}
