package api

import (
	"context"
	"fmt"
	"net/http"
	"strconv"
	"time"

	"herald/events"
	"herald/projections"
)

// Timeline is a campaign's funnel over its lifetime: cumulative counts at the end of each of
// equal buckets from its first message to its last change (or now, while it runs), so a chart
// can show queued → sent → delivered → read and failures over time from any moment on.
type Timeline struct {
	CampaignID    string          `json:"campaign_id"`
	From          *time.Time      `json:"from"` // the first message queued; null: none yet
	To            *time.Time      `json:"to"`
	BucketSeconds float64         `json:"bucket_seconds"`
	Points        []TimelinePoint `json:"points"`
}

// TimelinePoint holds the cumulative counts at At, with the definitions of Stats: queued counts
// every message materialized so far, sent those whose provider status reached sent (or beyond),
// delivered those that reached delivered or read, read those read, and failed those that ended
// failed or undelivered at Twilio or failed in Herald.
type TimelinePoint struct {
	At        time.Time `json:"at"`
	Queued    int64     `json:"queued"`
	Sent      int64     `json:"sent"`
	Delivered int64     `json:"delivered"`
	Read      int64     `json:"read"`
	Failed    int64     `json:"failed"`
}

const (
	defaultTimelineBuckets = 60
	maxTimelineBuckets     = 600
)

// sqlTimeline counts, per second, when each message of the campaign entered each funnel stage:
// queued at materialization, and the first callback that put its provider status at or past
// sent, delivered and read. A failure counts when the message's final status is failed or
// undelivered (a later delivered outranks it), at its first such callback, or when Herald failed
// it without a provider status. Everything is grouped by second, so the answer is at most a few
// rows per second of the campaign however many messages it has.
const sqlTimeline = `WITH m AS (
    SELECT m.provider_sid, m.state, m.queued_at, m.updated_at, p.status AS final
    FROM messages m LEFT JOIN message_provider_status p ON p.message_sid = m.provider_sid
    WHERE m.campaign_id = $1),
r AS (
    SELECT m.provider_sid, m.final,
        min(r.received_at) FILTER (WHERE r.status = ANY($2)) AS sent_at,
        min(r.received_at) FILTER (WHERE r.status = ANY($3)) AS delivered_at,
        min(r.received_at) FILTER (WHERE r.status = $4) AS read_at,
        min(r.received_at) FILTER (WHERE r.status = ANY($5)) AS failed_at
    FROM m JOIN delivery_receipts r ON r.message_sid = m.provider_sid
    GROUP BY m.provider_sid, m.final),
t (stage, at) AS (
    SELECT 'queued', queued_at FROM m
    UNION ALL SELECT 'sent', sent_at FROM r WHERE sent_at IS NOT NULL
    UNION ALL SELECT 'delivered', delivered_at FROM r WHERE delivered_at IS NOT NULL
    UNION ALL SELECT 'read', read_at FROM r WHERE read_at IS NOT NULL
    UNION ALL SELECT 'failed', failed_at FROM r WHERE failed_at IS NOT NULL AND final = ANY($5)
    UNION ALL SELECT 'failed', updated_at FROM m WHERE state = $6 AND final IS NULL)
SELECT stage, floor(extract(epoch FROM at))::bigint, count(*) FROM t GROUP BY 1, 2`

// campaignTimeline answers GET /v1/campaigns/{id}/timeline?buckets=N.
func (a *API) campaignTimeline(w http.ResponseWriter, r *http.Request) error {
	ctx := r.Context()
	id, err := idParam(r)
	if err != nil {
		return err
	}
	buckets := defaultTimelineBuckets
	for key, vals := range r.URL.Query() {
		if key != "buckets" {
			return invalid(FieldError{Field: key, Reason: "unknown parameter (the timeline takes buckets)"})
		}
		n, err := strconv.Atoi(vals[0])
		if err != nil || n < 1 || n > maxTimelineBuckets {
			return invalid(FieldError{Field: "buckets", Reason: fmt.Sprintf("must be a whole number from 1 to %d", maxTimelineBuckets)})
		}
		buckets = n
	}
	c, err := a.campaigns.read(ctx, id)
	if err != nil {
		return err
	}
	perSecond, err := a.timelineSeconds(ctx, id)
	if err != nil {
		return err
	}
	t := Timeline{CampaignID: id, Points: []TimelinePoint{}}
	if len(perSecond) > 0 {
		end := time.Time{}
		if c.Status == events.CampaignRunning {
			end = a.now().UTC()
		}
		t = timeline(id, perSecond, buckets, end)
	}
	writeJSON(w, http.StatusOK, t)
	return nil
}

// stageSecond is how many messages entered a stage during one second (Unix time).
type stageSecond struct {
	stage  string
	second int64
	n      int64
}

func (a *API) timelineSeconds(ctx context.Context, campaignID string) ([]stageSecond, error) {
	var sent, delivered []string
	for _, st := range providerStatuses {
		if events.StatusRank(st) >= events.StatusRank(events.StatusSent) {
			sent = append(sent, st)
		}
		if events.StatusRank(st) >= events.StatusRank(events.StatusDelivered) {
			delivered = append(delivered, st)
		}
	}
	failed := []string{events.StatusFailed, events.StatusUndelivered}
	rows, err := a.pool.Query(ctx, sqlTimeline, campaignID, sent, delivered, events.StatusRead, failed, projections.MessageFailed)
	if err != nil {
		return nil, fmt.Errorf("timeline: %w", err)
	}
	defer rows.Close()
	var out []stageSecond
	for rows.Next() {
		var s stageSecond
		if err := rows.Scan(&s.stage, &s.second, &s.n); err != nil {
			return nil, fmt.Errorf("timeline: %w", err)
		}
		out = append(out, s)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("timeline: %w", err)
	}
	return out, nil
}

// timeline folds per-second counts into buckets equal parts of [first second, end], end being
// the last second seen unless a later one is given (a running campaign's now), each point the
// cumulative counts at its bucket's end.
func timeline(campaignID string, perSecond []stageSecond, buckets int, end time.Time) Timeline {
	first, last := perSecond[0].second, perSecond[0].second
	for _, s := range perSecond {
		first, last = min(first, s.second), max(last, s.second)
	}
	if !end.IsZero() {
		last = max(last, end.Unix())
	}
	span := last - first + 1 // seconds, both ends included
	width := max(1, (span+int64(buckets)-1)/int64(buckets))
	n := int((span + width - 1) / width)
	points := make([]TimelinePoint, n)
	for _, s := range perSecond {
		p := &points[(s.second-first)/width]
		switch s.stage {
		case "queued":
			p.Queued += s.n
		case "sent":
			p.Sent += s.n
		case "delivered":
			p.Delivered += s.n
		case "read":
			p.Read += s.n
		case "failed":
			p.Failed += s.n
		}
	}
	for i := range points {
		points[i].At = time.Unix(first+int64(i+1)*width, 0).UTC()
		if i > 0 {
			prev := points[i-1]
			points[i].Queued += prev.Queued
			points[i].Sent += prev.Sent
			points[i].Delivered += prev.Delivered
			points[i].Read += prev.Read
			points[i].Failed += prev.Failed
		}
	}
	from, to := time.Unix(first, 0).UTC(), points[n-1].At
	return Timeline{CampaignID: campaignID, From: &from, To: &to, BucketSeconds: float64(width), Points: points}
}
