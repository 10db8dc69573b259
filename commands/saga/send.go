package saga

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"herald/commands"
	"herald/commands/template"
	"herald/events"
	"herald/events/store"
	"herald/handlers/twilio/sender"
	"herald/internal/failpoint"
)

// sqlClaim leases due messages to this process: due now, not leased by a live lease, not of a
// paused campaign (pausing takes effect at the next claim, within Poll), and not of a campaign
// whose rate schedule this process found booked ($5, bookedCampaigns).
const sqlClaim = `WITH due AS (
    SELECT m.id FROM messages m
    LEFT JOIN campaigns c ON c.id = m.campaign_id AND m.campaign_id <> ''
    WHERE m.due_at <= $1 AND (c.status IS NULL OR c.status <> 'paused')
      AND m.campaign_id <> ALL($5::text[])
      AND NOT EXISTS (SELECT 1 FROM send_leases l WHERE l.message_id = m.id AND l.lease_until > $1)
    ORDER BY m.due_at
    LIMIT $2
    FOR UPDATE OF m SKIP LOCKED)
INSERT INTO send_leases (message_id, owner, lease_until)
SELECT id, $3, $1::timestamptz + $4::interval FROM due
ON CONFLICT (message_id) DO UPDATE SET owner = excluded.owner, lease_until = excluded.lease_until
    WHERE send_leases.lease_until <= $1
RETURNING message_id`

// SendDue claims due messages and hands each, as a worker frees up, to be decided, sent and
// recorded. It returns once every message of the claim is with a worker, not once they are
// done: a message waiting up to slotHorizon for its rate slot must not hold back the next claim
// (that one's reservations would then start after this one's last slot, and every claim would
// push the campaign's schedule back). Wait waits for the workers. It reports whether it found a
// full claim (more may be due).
func (s *Saga) SendDue(ctx context.Context) (bool, error) {
	now := s.now()
	rows, err := s.pool.Query(ctx, sqlClaim, now, s.cfg.Claim, s.cfg.Owner, s.cfg.Lease, s.booked.list(time.Now()))
	if err != nil {
		return false, fmt.Errorf("claim due messages: %w", err)
	}
	ids, err := pgx.CollectRows(rows, pgx.RowTo[uuid.UUID])
	if err != nil {
		return false, fmt.Errorf("claim due messages: %w", err)
	}
	if len(ids) == 0 {
		return false, nil
	}
	b, err := s.load(ctx, ids)
	if err != nil {
		s.releaseLeases(ctx, ids)
		return false, err
	}
	// The claim's leases go when its last message is done (the read model's due_at then says
	// when each is due again); until then a message done early stays out of other claims,
	// which also covers the read model's lag behind its newest event.
	var claim sync.WaitGroup
	defer func() {
		s.inflight.Add(1)
		go func() {
			defer s.inflight.Done()
			claim.Wait()
			s.releaseLeases(ctx, ids)
		}()
	}()
	for _, m := range b.messages {
		select {
		case s.workers <- struct{}{}:
		case <-ctx.Done():
			return false, ctx.Err()
		}
		claim.Add(1)
		s.inflight.Add(1)
		go func() {
			defer func() {
				<-s.workers
				claim.Done()
				s.inflight.Done()
			}()
			if err := s.process(ctx, b, m); err != nil {
				s.log.Error().Err(err).Str("message_id", m.id.String()).Msg("message step failed; it is due again after its lease")
			}
		}()
	}
	return len(ids) == s.cfg.Claim, nil
}

// releaseLeases gives up this process's leases on a claim's messages.
func (s *Saga) releaseLeases(ctx context.Context, ids []uuid.UUID) {
	_, _ = s.pool.Exec(context.WithoutCancel(ctx), `DELETE FROM send_leases WHERE message_id = ANY($1) AND owner = $2`, ids, s.cfg.Owner)
}

// Wait blocks until every message SendDue handed to a worker is done and its claim's leases
// are released.
func (s *Saga) Wait() { s.inflight.Wait() }

// batch is everything a claim's decisions read, loaded in a few round trips.
type batch struct {
	messages   []*message
	campaigns  map[string]*campaign
	templates  map[string]*template.Compiled
	recipients map[string]recipient
	callbacks  map[uuid.UUID]string // SID of a status callback that named the message
}

func (s *Saga) load(ctx context.Context, ids []uuid.UUID) (*batch, error) {
	streams := make([]string, len(ids))
	for i, id := range ids {
		streams[i] = events.MessageStream(id.String())
	}
	byStream, err := store.ReadStreams(ctx, s.pool, streams, nil)
	if err != nil {
		return nil, err
	}
	b := &batch{campaigns: map[string]*campaign{}, templates: map[string]*template.Compiled{}, recipients: map[string]recipient{},
		callbacks: map[uuid.UUID]string{}}
	var phones []string
	seen := map[string]bool{}
	for i, id := range ids {
		m, err := foldMessage(s.registry, id, byStream[streams[i]])
		if err != nil {
			s.log.Error().Err(err).Msg("unreadable message stream")
			continue
		}
		b.messages = append(b.messages, m)
		if !seen[m.queued.Phone] {
			seen[m.queued.Phone] = true
			phones = append(phones, m.queued.Phone)
		}
		if id := m.queued.CampaignID; id != "" && b.campaigns[id] == nil {
			c, err := s.campaign(ctx, id)
			if err != nil {
				return nil, err
			}
			b.campaigns[id] = c
		}
		tplID := m.queued.TemplateID
		if tplID == "" && m.queued.CampaignID != "" && b.campaigns[m.queued.CampaignID] != nil {
			tplID = b.campaigns[m.queued.CampaignID].templateID
		}
		if _, ok := b.templates[tplID]; tplID != "" && !ok {
			if b.templates[tplID], err = s.template(ctx, tplID); err != nil {
				return nil, err
			}
		}
	}
	states, err := commands.LoadUserStates(ctx, s.pool, s.registry, phones)
	if err != nil {
		return nil, err
	}
	for _, p := range phones {
		b.recipients[p] = recipient{state: states[p]}
	}
	rows, err := s.pool.Query(ctx, `SELECT phone, country, locale, timezone, attributes, last_inbound_at FROM users WHERE phone = ANY($1)`, phones)
	if err != nil {
		return nil, fmt.Errorf("load recipients: %w", err)
	}
	for rows.Next() {
		var (
			p string
			r recipient
		)
		if err := rows.Scan(&p, &r.country, &r.locale, &r.timezone, &r.attributes, &r.lastInboundAt); err != nil {
			rows.Close()
			return nil, fmt.Errorf("load recipients: %w", err)
		}
		r.state, r.found = b.recipients[p].state, true
		b.recipients[p] = r
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("load recipients: %w", err)
	}
	// Status callbacks that name an attempted message settle its outcome without asking Twilio.
	var pending []string
	for _, m := range b.messages {
		if m.state == stateAttempted || m.state == stateUnknown {
			pending = append(pending, m.id.String())
		}
	}
	if len(pending) > 0 {
		rows, err := s.pool.Query(ctx, `SELECT message_id, message_sid FROM message_provider_status WHERE message_id = ANY($1)`, pending)
		if err != nil {
			return nil, fmt.Errorf("load callbacks: %w", err)
		}
		for rows.Next() {
			var id, sid string
			if err := rows.Scan(&id, &sid); err != nil {
				rows.Close()
				return nil, err
			}
			if u, err := uuid.Parse(id); err == nil {
				b.callbacks[u] = sid
			}
		}
		rows.Close()
	}
	return b, nil
}

// campaignOf is the message's campaign (nil for triggers and replies).
func (b *batch) campaignOf(m *message) *campaign {
	if m.queued.CampaignID == "" {
		return nil
	}
	return b.campaigns[m.queued.CampaignID]
}

func (s *Saga) campaign(ctx context.Context, id string) (*campaign, error) {
	c := &campaign{id: id}
	var (
		rate  events.RateLimit
		quiet *events.QuietHours
		retry events.RetryPolicy
	)
	err := s.pool.QueryRow(ctx, `SELECT status, topic, template_id, rate_limit, quiet_hours, retry FROM campaigns WHERE id = $1`, id).
		Scan(&c.status, &c.topic, &c.templateID, &rate, &quiet, &retry)
	if errors.Is(err, pgx.ErrNoRows) {
		return &campaign{id: id, status: events.CampaignCancelled}, nil // deleted: nothing more is sent for it
	}
	if err != nil {
		return nil, fmt.Errorf("campaign %s: %w", id, err)
	}
	c.rate, c.retry = rate, retry
	if quiet != nil {
		q, probs := commands.ParseQuietHours(*quiet)
		if len(probs) == 0 {
			c.quiet = &q
		}
	}
	return c, nil
}

// process takes one due message one step further.
func (s *Saga) process(ctx context.Context, b *batch, m *message) error {
	now := s.now()
	if m.terminal() {
		return nil
	}
	if m.due.After(now) && m.state != stateAttempted {
		return nil // the read model had not applied the newer due time yet
	}
	switch m.state {
	case stateAttempted:
		if now.Sub(m.last.At) < staleAttempt {
			return nil // another worker is on it
		}
		if sid, ok := b.callbacks[m.id]; ok {
			_, err := s.appendTo(ctx, m, events.MessageAccepted{Attempt: m.attempts, SID: sid, Via: events.AcceptedByCallback})
			return err
		}
		// Its worker died between recording the attempt and recording the result.
		return s.reconcile(ctx, b, m, "the worker stopped before recording the result")
	case stateUnknown:
		if sid, ok := b.callbacks[m.id]; ok {
			_, err := s.appendTo(ctx, m, events.MessageAccepted{Attempt: m.attempts, SID: sid, Via: events.AcceptedByCallback})
			return err
		}
		return s.reconcile(ctx, b, m, "")
	}

	c := b.campaignOf(m)
	tplID := m.queued.TemplateID
	if tplID == "" && c != nil {
		tplID = c.templateID
	}
	var tpl *template.Compiled
	if tplID != "" {
		tpl = b.templates[tplID]
		if tpl == nil {
			_, err := s.appendTo(ctx, m, events.MessageSkipped{Reason: events.ReasonTemplateMissing, Detail: "template " + tplID + " does not exist"})
			return err
		}
	}
	capReached, err := s.frequencyCap(ctx, m.queued.Phone, now)
	if err != nil {
		return err
	}
	d := decide(m, c, tpl, b.recipients[m.queued.Phone], s.twilio.From(), now, capReached)
	if d.event != nil {
		_, err := s.appendTo(ctx, m, d.event)
		return err
	}
	if c != nil {
		// Pause and cancel take effect within a second, also for a claim being worked on.
		if status, err := s.campaignStatus(ctx, c.id); err != nil {
			return err
		} else if status == events.CampaignPaused {
			return nil // due again when resumed
		} else if status == events.CampaignCancelled {
			_, err := s.appendTo(ctx, m, events.MessageCancelled{Reason: "campaign cancelled"})
			return err
		}
	}
	// The campaign's rate slot is reserved before the attempt is recorded, and only if it is
	// within slotHorizon: a message whose slot is further away is left due, untouched, and the
	// campaign's messages are not claimed here until its schedule has room — a slow campaign
	// must not hold the workers and claims that carry replies and alerts.
	var slot time.Time
	if c != nil && pace(c.rate) > 0 {
		if s.booked.booked(c.id, time.Now()) {
			s.metrics.leftDue.Inc()
			return nil
		}
		wait, reserved, err := s.limits.reserveCampaign(ctx, c.id, c.rate, slotHorizon)
		if err != nil {
			// The limiter (Redis) failed: nothing was recorded or sent, so the message is
			// simply due again soon.
			_, derr := s.appendTo(ctx, m, events.MessageDeferred{Reason: events.ReasonRateLimit,
				Detail: "rate limiter unavailable: " + err.Error(), Until: s.now().Add(limiterRetry)})
			return errors.Join(err, derr)
		}
		if !reserved {
			s.booked.book(c.id, time.Now().Add(wait-slotHorizon/2))
			s.metrics.leftDue.Inc()
			return nil
		}
		slot = time.Now().Add(wait)
	}
	// The lease is renewed while waiting, so no other process takes the message and sends it
	// too; if the lease is lost (Postgres unreachable for a lease), nothing is sent.
	held, release := s.holdLease(ctx, m.id)
	// The attempt is recorded just before the campaign's slot, not before the wait for it: a
	// crash while waiting then leaves a message simply due again, not an attempt to reconcile.
	if err := sleepUntil(held, slot.Add(-slotLead)); err != nil {
		release()
		return nil // shutting down, or the lease lost: nothing recorded, nothing sent
	}
	plan := d.send.attempt
	plan.At = s.now()
	// The attempt is on record before Twilio hears of it: a crash from here on is reconciled.
	if ok, err := s.appendTo(ctx, m, plan); err != nil || !ok {
		release()
		return err
	}
	m.attempts, m.last = plan.Attempt, &plan
	// Then the campaign's slot, and the sender's slot last, so nothing but the HTTP call lies
	// between the slots and Twilio receiving the message: the limits hold where Twilio measures
	// them. An error here (the context ended) leaves the attempt to reconciliation, like a crash
	// would.
	waitErr := sleepUntil(held, slot)
	if waitErr == nil {
		waitErr = s.limits.waitSender(held, s.twilio.From())
	}
	if lost := release(); lost {
		return nil
	}
	if waitErr != nil {
		if ctx.Err() != nil {
			return waitErr // shutting down: reconciliation settles the attempt
		}
		// The limiter (Redis) failed before Twilio heard of the message: the attempt is
		// definitely unsent, so it is retried soon instead of waiting out reconciliation.
		_, err := s.appendTo(ctx, m, events.MessageRetryScheduled{Attempt: plan.Attempt,
			Reason: "rate limiter unavailable: " + waitErr.Error(), At: s.now().Add(limiterRetry)})
		return errors.Join(waitErr, err)
	}
	if c != nil {
		// The wait for a slot may have been long: a pause or a cancel during it still wins.
		// Nothing was sent, so the attempt ends definitely unsent.
		switch status, err := s.campaignStatus(ctx, c.id); {
		case err != nil:
			return err
		case status == events.CampaignCancelled:
			_, err := s.appendTo(ctx, m, events.MessageCancelled{Reason: "campaign cancelled"})
			return err
		case status == events.CampaignPaused:
			_, err := s.appendTo(ctx, m, events.MessageRetryScheduled{Attempt: plan.Attempt, Reason: "campaign paused before the send", At: s.now()})
			return err
		}
	}
	s.cfg.Failpoints.Hit(failpoint.AfterRequestingBeforeHTTP)
	accepted, err := s.twilio.Send(ctx, sender.Message{MessageID: m.id, Attempt: plan.Attempt, To: m.queued.Phone,
		Body: bodyUnlessContent(plan), ContentSID: plan.ContentSID, ContentVariables: plan.ContentVariables})
	if err == nil {
		s.cfg.Failpoints.Hit(failpoint.After201BeforeRecord)
	}
	return s.recordResult(ctx, m, c, accepted, err)
}

// holdLease renews this process's lease on a message every third of Lease until release is
// called. The returned context ends when a renewal finds the lease gone; release reports that.
func (s *Saga) holdLease(ctx context.Context, id uuid.UUID) (context.Context, func() (lost bool)) {
	held, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	var lost bool
	go func() {
		defer close(done)
		t := time.NewTicker(s.cfg.Lease / 3)
		defer t.Stop()
		for {
			select {
			case <-held.Done():
				return
			case <-t.C:
			}
			tag, err := s.pool.Exec(held, `UPDATE send_leases SET lease_until = now() + $3::interval WHERE message_id = $1 AND owner = $2`,
				id, s.cfg.Owner, s.cfg.Lease)
			if held.Err() != nil {
				return
			}
			if err != nil || tag.RowsAffected() == 0 {
				lost = true
				s.log.Warn().Err(err).Str("message_id", id.String()).Msg("send lease lost while waiting for a rate slot; not sending")
				cancel()
				return
			}
		}
	}()
	return held, func() bool {
		cancel()
		<-done
		return lost
	}
}

func bodyUnlessContent(p events.MessageSendAttempted) string {
	if p.ContentSID != "" {
		return ""
	}
	return p.Body
}

// staleAttempt is how long an attempt without a result is left to its worker.
const staleAttempt = 90 * time.Second

// slotHorizon is how far ahead a campaign's rate slot may be for a worker to wait for it.
const slotHorizon = 2 * time.Second

// limiterRetry is how soon an attempt the rate limiter could not clear (Redis unreachable or
// lost) is tried again: nothing was sent, and Redis usually returns within seconds.
const limiterRetry = 2 * time.Second

func (s *Saga) recordResult(ctx context.Context, m *message, c *campaign, accepted sender.Accepted, err error) error {
	if err == nil {
		_, err := s.appendTo(ctx, m, events.MessageAccepted{Attempt: m.attempts, SID: accepted.SID, Status: accepted.Status, Via: events.AcceptedByResponse})
		return err
	}
	var se *sender.SendError
	if !errors.As(err, &se) {
		se = &sender.SendError{Kind: sender.KindAmbiguous, Message: err.Error(), Err: err}
	}
	policy := retryPolicy(c)
	now := s.now()
	switch {
	case se.Kind == sender.KindRateLimited:
		s.limits.slowDown(ctx, s.twilio.From(), max(se.RetryAfter, time.Second))
		fallthrough
	case se.Retryable():
		if m.attempts >= policy.MaxAttempts {
			_, err := s.appendTo(ctx, m, events.MessageFailed{Attempt: m.attempts, Code: se.Code, Reason: events.ReasonAttemptsExhausted + ": " + se.Message})
			return err
		}
		_, err := s.appendTo(ctx, m, events.MessageRetryScheduled{Attempt: m.attempts, Code: se.Code, Reason: se.Message,
			At: now.Add(backoff(policy, m.attempts, se.RetryAfter))})
		return err
	case se.Ambiguous():
		_, err := s.appendTo(ctx, m, events.MessageOutcomeUnknown{Attempt: m.attempts, Reason: se.Message, CheckAt: now.Add(s.cfg.ReconcileAfter)})
		return err
	default:
		reason := se.Message
		if info := se.Info(); info.Meaning != "" {
			reason = info.Meaning
		}
		_, err := s.appendTo(ctx, m, events.MessageFailed{Attempt: m.attempts, Code: se.Code, Reason: reason})
		return err
	}
}

// reconcile settles an attempt whose outcome is unknown by asking Twilio for the messages it
// has for the number since the attempt: found, it was accepted; not found, it was not sent,
// and the next attempt may go (a retry, never a blind resend).
func (s *Saga) reconcile(ctx context.Context, b *batch, m *message, why string) error {
	if why != "" {
		if ok, err := s.appendTo(ctx, m, events.MessageOutcomeUnknown{Attempt: m.attempts, Reason: why, CheckAt: s.now()}); err != nil || !ok {
			return err
		}
	}
	// Twilio filters by the UTC day a message was sent; an attempt just before midnight may
	// have been sent the next day.
	var found []sender.MessageInfo
	for _, day := range reconcileDays(m.last.At) {
		page, err := s.twilio.List(ctx, sender.ListFilter{To: "whatsapp:" + m.queued.Phone, DateSent: day, Limit: 100})
		if err != nil {
			return fmt.Errorf("reconcile %s: %w", m.id, err)
		}
		found = append(found, page...)
	}
	for _, info := range found {
		if info.DateCreated.Before(m.last.At.Add(-time.Minute)) {
			continue
		}
		// A free-text attempt is recognised by its text; a template by being the one created then.
		if info.Body == m.last.Body || m.last.ContentSID != "" {
			_, err := s.appendTo(ctx, m, events.MessageAccepted{Attempt: m.attempts, SID: info.SID, Status: info.Status, Via: events.AcceptedByReconciliation})
			return err
		}
	}
	if m.attempts >= retryPolicy(b.campaignOf(m)).MaxAttempts {
		_, err := s.appendTo(ctx, m, events.MessageFailed{Attempt: m.attempts, Reason: events.ReasonAttemptsExhausted + ": not found at Twilio"})
		return err
	}
	_, err := s.appendTo(ctx, m, events.MessageRetryScheduled{Attempt: m.attempts, Reason: "not found at Twilio after an unknown outcome", At: s.now()})
	return err
}

// statusFresh is how old a campaign status read before a send may be: pause and cancel take
// effect within a second.
const statusFresh = 250 * time.Millisecond

// reconcileDays are the UTC days an attempt made at "at" may have been sent on.
func reconcileDays(at time.Time) []time.Time {
	day := at.UTC().Truncate(24 * time.Hour)
	if next := at.UTC().Add(time.Hour).Truncate(24 * time.Hour); !next.Equal(day) {
		return []time.Time{day, next}
	}
	return []time.Time{day}
}

func (s *Saga) campaignStatus(ctx context.Context, id string) (string, error) {
	s.statusMu.Lock()
	c, ok := s.statuses[id]
	s.statusMu.Unlock()
	if ok && time.Since(c.at) < statusFresh {
		return c.status, nil
	}
	var status string
	err := s.pool.QueryRow(ctx, `SELECT status FROM campaigns WHERE id = $1`, id).Scan(&status)
	if errors.Is(err, pgx.ErrNoRows) {
		status, err = events.CampaignCancelled, nil
	}
	if err != nil {
		return "", err
	}
	s.statusMu.Lock()
	s.statuses[id] = cachedStatus{status: status, at: time.Now()}
	s.statusMu.Unlock()
	return status, nil
}

// frequencyCap says why the user has had enough messages ("" when the cap is off or not reached).
func (s *Saga) frequencyCap(ctx context.Context, phone string, now time.Time) (string, error) {
	fc := s.cfg.FrequencyCap
	if fc.Max <= 0 {
		return "", nil
	}
	var n int
	if err := s.pool.QueryRow(ctx, `SELECT count(*) FROM messages WHERE phone = $1 AND state = 'accepted' AND attempted_at > $2`,
		phone, now.Add(-fc.Per)).Scan(&n); err != nil {
		return "", fmt.Errorf("frequency cap: %w", err)
	}
	if n >= fc.Max {
		return fmt.Sprintf("%d messages in the last %s (cap %d)", n, fc.Per, fc.Max), nil
	}
	return "", nil
}
