package api

import (
	"context"
	"errors"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/google/uuid"
	"github.com/gorilla/mux"
	"github.com/jackc/pgx/v5"

	"herald/events"
	"herald/projections"
)

// Message is an outbound message as the API shows it: the saga's state from the messages
// read model and the provider's delivery status from the status callbacks for its SID.
type Message struct {
	ID           string     `json:"id"`
	Kind         string     `json:"kind"`
	CampaignID   string     `json:"campaign_id,omitempty"`
	RunID        string     `json:"run_id,omitempty"`
	TriggerID    string     `json:"trigger_id,omitempty"`
	Phone        string     `json:"phone"`
	State        string     `json:"state"`
	Reason       string     `json:"reason,omitempty"`
	Detail       string     `json:"detail,omitempty"`
	ProviderSID  *string    `json:"provider_sid"`
	Status       string     `json:"status"` // the provider's status; "none" before the first callback
	ErrorCode    *int       `json:"error_code"`
	ErrorMessage string     `json:"error_message,omitempty"`
	Attempts     int        `json:"attempts"`
	Locale       string     `json:"locale,omitempty"`
	Body         string     `json:"body,omitempty"`
	DueAt        *time.Time `json:"due_at"`
	QueuedAt     time.Time  `json:"queued_at"`
	AttemptedAt  *time.Time `json:"attempted_at"`
	StatusAt     *time.Time `json:"status_at"`
	UpdatedAt    time.Time  `json:"updated_at"`
	Version      int        `json:"version"`
}

// statusNone is the status of a message no callback has reported on.
const statusNone = "none"

// errorCodeExpr is a message's error code: the provider's once a callback reported on it,
// else the one a failure or a retry recorded (an accepted message keeps the code of an earlier
// refused attempt in the read model; it is not the message's error).
const errorCodeExpr = `CASE WHEN p.message_sid IS NOT NULL THEN p.error_code WHEN m.state IN ('failed', 'retrying') THEN m.error_code END`

const messageSelect = `SELECT m.id::text, m.kind, m.campaign_id, m.run_id, m.trigger_id, m.phone, m.state, m.reason, m.detail,
    m.provider_sid, coalesce(p.status, 'none'), ` + errorCodeExpr + `, coalesce(p.error_message, ''), m.attempts, m.locale, m.body,
    m.due_at, m.queued_at, m.attempted_at, p.updated_at, m.updated_at, m.version
FROM messages m LEFT JOIN message_provider_status p ON p.message_sid = m.provider_sid`

func scanMessage(row pgx.Row) (Message, error) {
	var m Message
	err := row.Scan(&m.ID, &m.Kind, &m.CampaignID, &m.RunID, &m.TriggerID, &m.Phone, &m.State, &m.Reason, &m.Detail,
		&m.ProviderSID, &m.Status, &m.ErrorCode, &m.ErrorMessage, &m.Attempts, &m.Locale, &m.Body,
		&m.DueAt, &m.QueuedAt, &m.AttemptedAt, &m.StatusAt, &m.UpdatedAt, &m.Version)
	return m, err
}

func (a *API) readMessage(ctx context.Context, id string) (Message, error) {
	if _, err := uuid.Parse(id); err != nil {
		return Message{}, notFound("message " + id)
	}
	m, err := scanMessage(a.pool.QueryRow(ctx, messageSelect+` WHERE m.id = $1`, id))
	if errors.Is(err, pgx.ErrNoRows) {
		return m, notFound("message " + id)
	}
	return m, err
}

// Values the message filters accept.
var (
	messageStates    = []string{projections.MessageQueued, projections.MessageDeferred, projections.MessageAttempted, projections.MessageAccepted, projections.MessageUnknown, projections.MessageRetrying, projections.MessageSkipped, projections.MessageFailed, projections.MessageCancelled}
	providerStatuses = []string{statusNone, events.StatusAccepted, events.StatusScheduled, events.StatusQueued, events.StatusSending, events.StatusSent, events.StatusDelivered, events.StatusRead, events.StatusFailed, events.StatusUndelivered, events.StatusCanceled}
)

// messageFilter is a campaign's message list query: its conditions and their arguments.
type messageFilter struct {
	where []string
	args  []any
}

func (f *messageFilter) arg(v any) string {
	f.args = append(f.args, v)
	return "$" + strconv.Itoa(len(f.args))
}

// listFilter reads the filters of GET /v1/campaigns/{id}/messages: state and status (each a
// comma-separated list), error_code, run_id, phone.
func (a *API) listFilter(r *http.Request, campaignID string) (messageFilter, error) {
	f := messageFilter{}
	f.where = append(f.where, "m.campaign_id = "+f.arg(campaignID))
	var errs fieldErrors
	for key, values := range r.URL.Query() {
		v := values[0]
		switch key {
		case "limit", "cursor", "format":
		case "state":
			f.states(key, v, &errs)
		case "status":
			list := strings.Split(v, ",")
			for _, s := range list {
				if !slices.Contains(providerStatuses, s) {
					errs.add(key, "%q is not a provider status (%s)", s, strings.Join(providerStatuses, ", "))
				}
			}
			f.where = append(f.where, "coalesce(p.status, 'none') = ANY("+f.arg(list)+")")
		case "error_code":
			code, err := strconv.Atoi(v)
			if err != nil || code <= 0 {
				errs.add(key, "must be a Twilio error code, like 63016")
			}
			f.where = append(f.where, "("+errorCodeExpr+") = "+f.arg(code))
		case "run_id":
			f.where = append(f.where, "m.run_id = "+f.arg(v))
		case "phone":
			phone := a.filterPhone(&errs, key, v)
			f.where = append(f.where, "m.phone = "+f.arg(phone))
		default:
			errs.add(key, "is not a filter (state, status, error_code, run_id, phone, format, limit, cursor)")
		}
	}
	return f, errs.err()
}

// query returns the page of messages after the id `after`, at most limit of them.
func (f messageFilter) query(after string, limit int) (string, []any) {
	g := messageFilter{where: slices.Clone(f.where), args: slices.Clone(f.args)}
	if after != "" {
		g.where = append(g.where, "m.id > "+g.arg(after)+"::uuid")
	}
	return messageSelect + " WHERE " + strings.Join(g.where, " AND ") + " ORDER BY m.id LIMIT " + g.arg(limit), g.args
}

func (a *API) listMessages(ctx context.Context, f messageFilter, after string, limit int) ([]Message, error) {
	sql, args := f.query(after, limit)
	rows, err := a.pool.Query(ctx, sql, args...)
	if err != nil {
		return nil, err
	}
	return pgx.CollectRows(rows, func(row pgx.CollectableRow) (Message, error) { return scanMessage(row) })
}

// campaignMessages serves GET /v1/campaigns/{id}/messages: JSON pages by id, or the whole
// filtered list as CSV (?format=csv or Accept: text/csv).
func (a *API) campaignMessages(w http.ResponseWriter, r *http.Request) error {
	id, err := idParam(r)
	if err != nil {
		return err
	}
	var after string
	limit, err := pageParams(r, &after)
	if err != nil {
		return err
	}
	if after != "" {
		if _, err := uuid.Parse(after); err != nil {
			return invalid(FieldError{Field: "cursor", Reason: "is not a cursor this API returned"})
		}
	}
	csv, err := wantsCSV(r)
	if err != nil {
		return err
	}
	f, err := a.listFilter(r, id)
	if err != nil {
		return err
	}
	if err := a.campaignExists(r.Context(), id); err != nil {
		return err
	}
	if csv {
		return a.exportMessages(w, r, id, f)
	}
	items, err := a.listMessages(r.Context(), f, after, limit+1)
	if err != nil {
		return err
	}
	page := Page[Message]{Items: items}
	if len(items) > limit {
		page.Items = items[:limit]
		page.NextCursor = encodeCursor(items[limit-1].ID)
	}
	if page.Items == nil {
		page.Items = []Message{}
	}
	writeJSON(w, http.StatusOK, page)
	return nil
}

// campaignExists is nil for a campaign that exists or once existed (it has messages).
func (a *API) campaignExists(ctx context.Context, id string) error {
	var ok bool
	err := a.pool.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM campaigns WHERE id = $1)
    OR EXISTS (SELECT 1 FROM messages WHERE campaign_id = $1)`, id).Scan(&ok)
	if err != nil {
		return err
	}
	if !ok {
		return notFound("campaign " + id)
	}
	return nil
}

// wantsCSV reads ?format= (json, csv) and, without it, whether Accept asks for text/csv.
func wantsCSV(r *http.Request) (bool, error) {
	switch r.URL.Query().Get("format") {
	case "csv":
		return true, nil
	case "json":
		return false, nil
	case "":
		return strings.Contains(r.Header.Get("Accept"), "text/csv"), nil
	}
	return false, invalid(FieldError{Field: "format", Reason: "must be json or csv"})
}

// getMessage serves GET /v1/messages/{id}: the message and its whole trail.
func (a *API) getMessage(w http.ResponseWriter, r *http.Request) error {
	m, err := a.readMessage(r.Context(), mux.Vars(r)["id"])
	if err != nil {
		return err
	}
	d, err := a.messageDetail(r.Context(), m)
	if err != nil {
		return err
	}
	setETag(w, m.Version)
	writeJSON(w, http.StatusOK, d)
	return nil
}

// userMessageCursor is the sort key of the last message of a user's page: newest first.
type userMessageCursor struct {
	At time.Time `json:"at"`
	ID string    `json:"id"`
}

// userMessages serves GET /v1/users/{phone}/messages: every outbound message to the user —
// campaigns, triggers and replies — newest first (by queued_at, on the (phone, queued_at)
// index), keyset-paged, filtered by state and campaign_id.
func (a *API) userMessages(w http.ResponseWriter, r *http.Request) error {
	phone, err := a.phoneParam(r)
	if err != nil {
		return err
	}
	var cur userMessageCursor
	limit, err := pageParams(r, &cur)
	if err != nil {
		return err
	}
	f := messageFilter{}
	f.where = append(f.where, "m.phone = "+f.arg(phone))
	var errs fieldErrors
	for key, values := range r.URL.Query() {
		v := values[0]
		switch key {
		case "limit", "cursor":
		case "state":
			f.states(key, v, &errs)
		case "campaign_id":
			f.where = append(f.where, "m.campaign_id = "+f.arg(v))
		default:
			errs.add(key, "is not a filter (state, campaign_id, limit, cursor)")
		}
	}
	if cur.ID != "" {
		if _, err := uuid.Parse(cur.ID); err != nil {
			errs.add("cursor", "is not a cursor this API returned")
		}
		f.where = append(f.where, "(m.queued_at, m.id) < ("+f.arg(cur.At)+", "+f.arg(cur.ID)+"::uuid)")
	}
	if err := errs.err(); err != nil {
		return err
	}
	sql := messageSelect + " WHERE " + strings.Join(f.where, " AND ") + " ORDER BY m.queued_at DESC, m.id DESC LIMIT " + f.arg(limit+1)
	rows, err := a.pool.Query(r.Context(), sql, f.args...)
	if err != nil {
		return err
	}
	items, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (Message, error) { return scanMessage(row) })
	if err != nil {
		return err
	}
	page := Page[Message]{Items: items}
	if len(items) > limit {
		page.Items = items[:limit]
		last := items[limit-1]
		page.NextCursor = encodeCursor(userMessageCursor{At: last.QueuedAt, ID: last.ID})
	}
	if page.Items == nil {
		page.Items = []Message{}
	}
	writeJSON(w, http.StatusOK, page)
	return nil
}

// states adds a filter on the saga states of a comma-separated list, each checked.
func (f *messageFilter) states(key, v string, errs *fieldErrors) {
	list := strings.Split(v, ",")
	for _, s := range list {
		if !slices.Contains(messageStates, s) {
			errs.add(key, "%q is not a state (%s)", s, strings.Join(messageStates, ", "))
		}
	}
	f.where = append(f.where, "m.state = ANY("+f.arg(list)+")")
}
