package api

import (
	"context"
	"fmt"
	"math"
	"net/http"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"herald/events"
	"herald/projections"
)

// Stats aggregates messages: a campaign's (GET /v1/campaigns/{id}/stats) or those queued in a
// time range (GET /v1/stats). Rates are null when nothing was sent yet.
type Stats struct {
	At         time.Time  `json:"at"`
	CampaignID string     `json:"campaign_id,omitempty"`
	From       *time.Time `json:"from,omitempty"`
	To         *time.Time `json:"to,omitempty"`
	Total      int64      `json:"total"`
	// ByState counts the saga's states (queued, deferred, attempted, accepted, unknown,
	// retrying, skipped, failed, cancelled).
	ByState map[string]int64 `json:"by_state"`
	// ByStatus counts the provider's statuses of accepted messages ("none": no callback yet).
	ByStatus map[string]int64 `json:"by_status"`
	// Sent counts messages whose provider status reached sent or beyond (sent, delivered,
	// read, failed, undelivered, canceled): the denominator of the rates.
	Sent         int64    `json:"sent"`
	Delivered    int64    `json:"delivered"` // delivered or read
	Read         int64    `json:"read"`
	DeliveryRate *float64 `json:"delivery_rate"` // Delivered / Sent
	ReadRate     *float64 `json:"read_rate"`     // Read / Sent
	// Failures are the failed messages (the saga gave up, or Twilio reported failed or
	// undelivered) by error code, most frequent first, each with its meaning and remedy.
	Failures []Failure `json:"failures"`
	// Skipped and Deferred count messages now skipped or deferred, by reason.
	Skipped  map[string]int64 `json:"skipped"`
	Deferred map[string]int64 `json:"deferred"`
	// FirstSendAt and LastSendAt are the earliest and latest attempts recorded.
	FirstSendAt *time.Time `json:"first_send_at"`
	LastSendAt  *time.Time `json:"last_send_at"`
	OptOuts     OptOuts    `json:"opt_outs"`
	// Progress is the throughput and the ETA while messages remain to be sent.
	Progress *Progress `json:"progress,omitempty"`
}

// Failure is a count of failed messages with one error code (0: none was given; Reason then
// says why the saga gave up).
type Failure struct {
	ErrorInfo
	Reason string `json:"reason,omitempty"`
	Count  int64  `json:"count"`
}

// OptOuts counts recipients who opted out (user.consent_changed to OPT_OUT, read from the
// event log) after the campaign's first send: During while it was sending (up to its last
// send, or now while messages remain), After once it was done. Each recipient counts once,
// at their first opt-out. For GET /v1/stats, InRange counts every opt-out in the range.
type OptOuts struct {
	During  int64 `json:"during"`
	After   int64 `json:"after"`
	InRange int64 `json:"in_range,omitempty"`
}

// Progress is how fast messages are going out and when the rest will have gone.
type Progress struct {
	// AcceptedLastMinute counts messages Twilio accepted in the last 60 seconds.
	AcceptedLastMinute int64   `json:"accepted_last_minute"`
	PerSecond          float64 `json:"per_second"`
	// RateSource is "measured" (the last minute) or "configured" (nothing was accepted in the
	// last minute: the campaign's limits and the sender's).
	RateSource string `json:"rate_source"`
	// Remaining counts messages not yet final (queued, deferred, attempted, unknown, retrying);
	// DueNow those of them whose next step is due.
	Remaining  int64      `json:"remaining"`
	DueNow     int64      `json:"due_now"`
	ETASeconds float64    `json:"eta_seconds"`
	FinishesAt time.Time  `json:"finishes_at"`
	LastDueAt  *time.Time `json:"last_due_at"` // the latest deferral or retry
}

// openStates are the states a message leaves by itself.
var openStates = []string{projections.MessageQueued, projections.MessageDeferred, projections.MessageAttempted,
	projections.MessageUnknown, projections.MessageRetrying}

// sqlStats groups the messages under a condition by everything the report needs, in one scan
// joined with the provider statuses. It groups by plain columns, whose statistics tell the
// planner there are a few dozen groups: a hash aggregate in each parallel worker. (Grouping by
// CASE expressions made it estimate a million groups, sort the million rows on disk first, and
// take 40% longer on a million-message campaign.)
const sqlStats = `SELECT m.state, m.reason, p.status, p.status_rank, p.error_code, m.error_code,
    count(*), count(*) FILTER (WHERE m.due_at <= $1), min(m.attempted_at), max(m.attempted_at), max(m.due_at)
FROM messages m LEFT JOIN message_provider_status p ON p.message_sid = m.provider_sid
WHERE %s
GROUP BY 1, 2, 3, 4, 5, 6`

// sqlFailureReasons breaks down failures without an error code by the reason word the saga
// starts its detail with ("attempts_exhausted after 5 attempts"); failed is a sliver of the
// messages, which the (campaign_id, state) index finds.
const sqlFailureReasons = `SELECT split_part(split_part(m.detail, ':', 1), ' ', 1), count(*)
FROM messages m WHERE m.state = 'failed' AND m.error_code IS NULL AND m.updated_at <= $1 AND %s
GROUP BY 1`

// aggregate reads the stats of the messages matching where (arguments from $2; $1 is now).
func (a *API) aggregate(ctx context.Context, now time.Time, where string, args ...any) (Stats, int64, *time.Time, error) {
	s := Stats{At: now, ByState: map[string]int64{}, ByStatus: map[string]int64{}, Skipped: map[string]int64{},
		Deferred: map[string]int64{}, Failures: []Failure{}}
	rows, err := a.pool.Query(ctx, fmt.Sprintf(sqlStats, where), append([]any{now}, args...)...)
	if err != nil {
		return s, 0, nil, fmt.Errorf("stats: %w", err)
	}
	defer rows.Close()
	var (
		dueNow, codeless int64
		lastDue          *time.Time
		failures         = map[Failure]int64{}
		sentRank         = events.StatusRank(events.StatusSent)
		delivRank        = events.StatusRank(events.StatusDelivered)
	)
	for rows.Next() {
		var (
			state, reason       string
			status              *string
			rank, pCode, mCode  *int
			n, due              int64
			first, last, maxDue *time.Time
		)
		if err := rows.Scan(&state, &reason, &status, &rank, &pCode, &mCode, &n, &due, &first, &last, &maxDue); err != nil {
			return s, 0, nil, fmt.Errorf("stats: %w", err)
		}
		s.Total += n
		s.ByState[state] += n
		st := statusNone
		if status != nil {
			st = *status
		}
		if state == projections.MessageAccepted || st != statusNone {
			s.ByStatus[st] += n
		}
		if rank != nil && *rank >= sentRank {
			s.Sent += n
		}
		if rank != nil && *rank >= delivRank {
			s.Delivered += n
		}
		if st == events.StatusRead {
			s.Read += n
		}
		switch state {
		case projections.MessageSkipped:
			s.Skipped[reason] += n
		case projections.MessageDeferred:
			s.Deferred[reason] += n
		}
		// The message's error code as errorCodeExpr has it: the provider's once a callback
		// reported, else that of the failure.
		code := mCode
		if status != nil {
			code = pCode
		}
		switch {
		case st == events.StatusFailed || st == events.StatusUndelivered:
			failures[failure(code, "provider_"+st)] += n
		case state == projections.MessageFailed && code != nil:
			failures[failure(code, "")] += n
		case state == projections.MessageFailed:
			codeless += n
		}
		if slices.Contains(openStates, state) {
			dueNow += due
			lastDue = latest(lastDue, maxDue)
		}
		s.FirstSendAt = earliest(s.FirstSendAt, first)
		s.LastSendAt = latest(s.LastSendAt, last)
	}
	if err := rows.Err(); err != nil {
		return s, 0, nil, fmt.Errorf("stats: %w", err)
	}
	if codeless > 0 {
		rows, err := a.pool.Query(ctx, fmt.Sprintf(sqlFailureReasons, where), append([]any{now}, args...)...)
		if err != nil {
			return s, 0, nil, fmt.Errorf("stats: failures: %w", err)
		}
		reasons, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (Failure, error) {
			var f Failure
			err := row.Scan(&f.Reason, &f.Count)
			return f, err
		})
		if err != nil {
			return s, 0, nil, fmt.Errorf("stats: failures: %w", err)
		}
		for _, f := range reasons {
			failures[Failure{Reason: f.Reason}] += f.Count
		}
	}
	for f, n := range failures {
		f.Count = n
		s.Failures = append(s.Failures, f)
	}
	sort.Slice(s.Failures, func(i, j int) bool {
		if s.Failures[i].Count != s.Failures[j].Count {
			return s.Failures[i].Count > s.Failures[j].Count
		}
		return s.Failures[i].Code < s.Failures[j].Code || (s.Failures[i].Code == s.Failures[j].Code && s.Failures[i].Reason < s.Failures[j].Reason)
	})
	if s.Sent > 0 {
		dr, rr := ratio(s.Delivered, s.Sent), ratio(s.Read, s.Sent)
		s.DeliveryRate, s.ReadRate = &dr, &rr
	}
	return s, dueNow, lastDue, nil
}

// failure is the key of a failure count: its code explained, or the reason it has none.
func failure(code *int, reason string) Failure {
	if code != nil {
		return Failure{ErrorInfo: errorInfo(*code)}
	}
	return Failure{Reason: reason}
}

func (s Stats) remaining() int64 {
	var n int64
	for _, st := range openStates {
		n += s.ByState[st]
	}
	return n
}

// progress measures the throughput and estimates when the remaining messages will have gone:
// those due now at the measured rate (or the configured one), and none before the latest
// deferral or retry.
func progress(s Stats, dueNow int64, lastDue *time.Time, acceptedLastMinute int64, configured float64) *Progress {
	p := &Progress{AcceptedLastMinute: acceptedLastMinute, Remaining: s.remaining(), DueNow: dueNow, LastDueAt: lastDue,
		PerSecond: float64(acceptedLastMinute) / 60, RateSource: "measured"}
	if acceptedLastMinute == 0 {
		p.PerSecond, p.RateSource = configured, "configured"
	}
	p.ETASeconds = math.Ceil(float64(dueNow) / p.PerSecond)
	p.FinishesAt = s.At.Add(time.Duration(p.ETASeconds) * time.Second)
	if lastDue != nil && lastDue.After(p.FinishesAt) {
		p.FinishesAt = *lastDue
		p.ETASeconds = math.Ceil(lastDue.Sub(s.At).Seconds())
	}
	return p
}

func ratio(n, d int64) float64 { return math.Round(float64(n)/float64(d)*10000) / 10000 }

func earliest(a, b *time.Time) *time.Time {
	if a == nil || (b != nil && b.Before(*a)) {
		return b
	}
	return a
}

func latest(a, b *time.Time) *time.Time {
	if a == nil || (b != nil && b.After(*a)) {
		return b
	}
	return a
}

// campaignStats serves GET /v1/campaigns/{id}/stats.
func (a *API) campaignStats(w http.ResponseWriter, r *http.Request) error {
	ctx := r.Context()
	id, err := idParam(r)
	if err != nil {
		return err
	}
	for key := range r.URL.Query() {
		return invalid(FieldError{Field: key, Reason: "campaign stats take no parameters"})
	}
	c, err := a.campaigns.read(ctx, id)
	if err != nil {
		return err
	}
	now := a.now().UTC()
	s, dueNow, lastDue, err := a.aggregate(ctx, now, `m.campaign_id = $2`, id)
	if err != nil {
		return err
	}
	s.CampaignID = id
	if s.FirstSendAt != nil {
		// The campaign is done sending when nothing remains; until then every opt-out is "during".
		var end *time.Time
		if s.remaining() == 0 {
			end = s.LastSendAt
		}
		if s.OptOuts, err = a.campaignOptOuts(ctx, id, *s.FirstSendAt, end); err != nil {
			return err
		}
	}
	if s.remaining() > 0 || c.Status == events.CampaignRunning {
		var accepted int64
		if err := a.pool.QueryRow(ctx, `SELECT count(*) FROM messages
WHERE campaign_id = $1 AND state = 'accepted' AND updated_at > $2`, id, now.Add(-time.Minute)).Scan(&accepted); err != nil {
			return fmt.Errorf("stats: throughput: %w", err)
		}
		s.Progress = progress(s, dueNow, lastDue, accepted, effectiveRate(c.RateLimit))
	}
	writeJSON(w, http.StatusOK, s)
	return nil
}

// sqlOptOuts: each recipient of the campaign who opted out at or after its first send, at
// their first such opt-out. It starts from the opt-out events (a partial index on the log),
// which are few, and probes the campaign's messages by phone.
const sqlOptOuts = `SELECT count(*) FILTER (WHERE $3::timestamptz IS NULL OR o.at <= $3), count(*) FILTER (WHERE o.at > $3)
FROM (
    SELECT e.data->>'phone' AS phone, min(e.recorded_at) AS at
    FROM events e
    WHERE e.type = 'user.consent_changed' AND e.data->>'consent' = 'OPT_OUT' AND e.recorded_at >= $2
    GROUP BY 1
) o
WHERE EXISTS (SELECT 1 FROM messages m WHERE m.phone = o.phone AND m.campaign_id = $1)`

func (a *API) campaignOptOuts(ctx context.Context, id string, firstSend time.Time, end *time.Time) (OptOuts, error) {
	var o OptOuts
	if err := a.pool.QueryRow(ctx, sqlOptOuts, id, firstSend, end).Scan(&o.During, &o.After); err != nil {
		return o, fmt.Errorf("stats: opt-outs: %w", err)
	}
	return o, nil
}

// maxStatsRange bounds GET /v1/stats.
const maxStatsRange = 366 * 24 * time.Hour

// globalStats serves GET /v1/stats?from=&to=: the messages queued in [from, to) (default: the
// last 24 hours), every opt-out in the range, and the throughput across campaigns.
func (a *API) globalStats(w http.ResponseWriter, r *http.Request) error {
	ctx := r.Context()
	now := a.now().UTC()
	q := r.URL.Query()
	var errs fieldErrors
	for key := range q {
		if key != "from" && key != "to" {
			errs.add(key, "is not a parameter (from, to)")
		}
	}
	to := parseTimeParam(&errs, q.Get("to"), "to", now)
	from := parseTimeParam(&errs, q.Get("from"), "from", to.Add(-24*time.Hour))
	if len(errs) == 0 && !from.Before(to) {
		errs.add("from", "must be before to")
	}
	if len(errs) == 0 && to.Sub(from) > maxStatsRange {
		errs.add("from", "the range is at most 366 days")
	}
	if err := errs.err(); err != nil {
		return err
	}
	s, dueNow, lastDue, err := a.aggregate(ctx, now, `m.queued_at >= $2 AND m.queued_at < $3`, from, to)
	if err != nil {
		return err
	}
	s.From, s.To = &from, &to
	if err := a.pool.QueryRow(ctx, `SELECT count(*) FROM events
WHERE type = 'user.consent_changed' AND data->>'consent' = 'OPT_OUT' AND recorded_at >= $1 AND recorded_at < $2`,
		from, to).Scan(&s.OptOuts.InRange); err != nil {
		return fmt.Errorf("stats: opt-outs: %w", err)
	}
	if s.remaining() > 0 {
		var accepted int64
		if err := a.pool.QueryRow(ctx, `SELECT count(*) FROM messages WHERE state = 'accepted' AND updated_at > $1`,
			now.Add(-time.Minute)).Scan(&accepted); err != nil {
			return fmt.Errorf("stats: throughput: %w", err)
		}
		s.Progress = progress(s, dueNow, lastDue, accepted, senderDefaultLimit)
	}
	writeJSON(w, http.StatusOK, s)
	return nil
}

// parseTimeParam reads an RFC 3339 time (or a date, as its midnight UTC); "" is def.
func parseTimeParam(errs *fieldErrors, v, field string, def time.Time) time.Time {
	if v == "" {
		return def
	}
	for _, layout := range []string{time.RFC3339Nano, "2006-01-02"} {
		if t, err := time.Parse(layout, strings.TrimSpace(v)); err == nil {
			return t.UTC()
		}
	}
	errs.add(field, "must be an RFC 3339 time like 2026-11-27T00:00:00Z, or a date like 2026-11-27")
	return def
}
