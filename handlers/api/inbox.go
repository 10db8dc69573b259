package api

import (
	"encoding/json"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"herald/events"
)

// InboundMessage is a message a user sent, as the inbox shows it.
type InboundMessage struct {
	EventID     string    `json:"event_id"`
	MessageSID  string    `json:"message_sid"`
	Phone       string    `json:"phone"`
	Body        string    `json:"body"`
	Command     string    `json:"command"` // STOP, START, SUBSCRIBE, UNSUBSCRIBE, HELP; "" for conversation
	Topic       string    `json:"topic,omitempty"`
	ProfileName string    `json:"profile_name,omitempty"`
	ReceivedAt  time.Time `json:"received_at"`
	// Normalized is the whole normalized record (media, buttons, keyword, opt-out type…).
	Normalized json.RawMessage `json:"normalized"`
}

// inboxCursor is the sort key of the last message of a page: newest first.
type inboxCursor struct {
	At time.Time `json:"at"`
	ID string    `json:"id"`
}

// inboxCommands are the values of ?command=; "none" selects conversation messages.
var inboxCommands = []string{events.CommandStop, events.CommandStart, events.CommandSubscribe, events.CommandUnsubscribe,
	events.CommandHelp, "none"}

// maxInboxQuery bounds ?q=.
const maxInboxQuery = 200

// listInbound serves GET /v1/inbound: inbound messages newest first, filtered by phone,
// command, topic, since/until (received_at) and q (text in the body, case-insensitive).
func (a *API) listInbound(w http.ResponseWriter, r *http.Request) error {
	var cur inboxCursor
	limit, err := pageParams(r, &cur)
	if err != nil {
		return err
	}
	var (
		errs  fieldErrors
		where []string
		args  []any
	)
	arg := func(v any) string {
		args = append(args, v)
		return "$" + itoa(len(args))
	}
	for key, values := range r.URL.Query() {
		v := values[0]
		switch key {
		case "limit", "cursor":
		case "phone":
			where = append(where, "phone = "+arg(a.filterPhone(&errs, key, v)))
		case "command":
			c := strings.ToUpper(v)
			if c == "NONE" {
				c = ""
			} else if !slices.Contains(inboxCommands, c) {
				errs.add(key, "must be one of %s", strings.Join(inboxCommands, ", "))
			}
			where = append(where, "command = "+arg(c))
		case "topic":
			where = append(where, "topic = "+arg(checkTopic(&errs, key, v)))
		case "since":
			where = append(where, "received_at >= "+arg(parseTimeParam(&errs, v, key, time.Time{})))
		case "until":
			where = append(where, "received_at < "+arg(parseTimeParam(&errs, v, key, time.Time{})))
		case "q":
			if len(v) > maxInboxQuery {
				errs.add(key, "is longer than %d characters", maxInboxQuery)
			}
			where = append(where, "strpos(lower(body), lower("+arg(v)+")) > 0")
		default:
			errs.add(key, "is not a filter (phone, command, topic, since, until, q, limit, cursor)")
		}
	}
	if cur.ID != "" {
		if _, err := uuid.Parse(cur.ID); err != nil {
			errs.add("cursor", "is not a cursor this API returned")
		}
		where = append(where, "(received_at, event_id) < ("+arg(cur.At)+", "+arg(cur.ID)+"::uuid)")
	}
	if err := errs.err(); err != nil {
		return err
	}
	sql := `SELECT event_id::text, message_sid, phone, body, command, topic, profile_name, received_at, normalized FROM events_inbound`
	if len(where) > 0 {
		sql += " WHERE " + strings.Join(where, " AND ")
	}
	sql += " ORDER BY received_at DESC, event_id DESC LIMIT " + arg(limit+1)
	rows, err := a.pool.Query(r.Context(), sql, args...)
	if err != nil {
		return err
	}
	items, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (InboundMessage, error) {
		var m InboundMessage
		err := row.Scan(&m.EventID, &m.MessageSID, &m.Phone, &m.Body, &m.Command, &m.Topic, &m.ProfileName, &m.ReceivedAt, &m.Normalized)
		return m, err
	})
	if err != nil {
		return err
	}
	page := Page[InboundMessage]{Items: items}
	if len(items) > limit {
		page.Items = items[:limit]
		last := items[limit-1]
		page.NextCursor = encodeCursor(inboxCursor{At: last.ReceivedAt, ID: last.EventID})
	}
	if page.Items == nil {
		page.Items = []InboundMessage{}
	}
	writeJSON(w, http.StatusOK, page)
	return nil
}
