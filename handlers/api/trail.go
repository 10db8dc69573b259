package api

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"time"

	"github.com/jackc/pgx/v5"

	"herald/commands"
	"herald/events"
	"herald/handlers/twilio/sender"
)

// MessageDetail is a message with its decision trail: every event of its stream (each
// decision with its inputs) and every status callback Twilio sent for it, in time order. It
// answers "why did, or didn't, this person get this message".
type MessageDetail struct {
	Message
	// Error explains ErrorCode: what it means and what to do about it.
	Error *ErrorInfo   `json:"error,omitempty"`
	Trail []TrailEntry `json:"trail"`
}

// ErrorInfo is a Twilio error code in plain language (handlers/twilio/sender's table).
type ErrorInfo struct {
	Code     int    `json:"code"`
	Known    bool   `json:"known"`
	Meaning  string `json:"meaning"`
	Remedy   string `json:"remedy"`
	MoreInfo string `json:"more_info"`
}

func errorInfo(code int) ErrorInfo {
	c := sender.LookupCode(code)
	return ErrorInfo{Code: code, Known: c.Known, Meaning: c.Meaning, Remedy: c.Remedy, MoreInfo: c.MoreInfo}
}

// Sources of trail entries.
const (
	trailEvent    = "event"           // an event of the message's stream
	trailCallback = "status_callback" // a Twilio status callback for one of its SIDs
)

// TrailEntry is one step of a message's history.
type TrailEntry struct {
	At     time.Time `json:"at"`
	Source string    `json:"source"`
	Type   string    `json:"type"`
	// Version is the event's place in the message stream (events only).
	Version int `json:"version,omitempty"`
	// Position is the event's position in the log (events only).
	Position int64           `json:"position,omitempty"`
	Data     json.RawMessage `json:"data"`
}

func (a *API) messageDetail(ctx context.Context, m Message) (MessageDetail, error) {
	d := MessageDetail{Message: m, Trail: []TrailEntry{}}
	if m.ErrorCode != nil {
		info := errorInfo(*m.ErrorCode)
		d.Error = &info
	}
	rows, err := a.pool.Query(ctx, `SELECT global_position, stream_version, type, data, recorded_at
FROM events WHERE stream_id = $1 ORDER BY stream_version`, events.MessageStream(m.ID))
	if err != nil {
		return d, fmt.Errorf("read message stream: %w", err)
	}
	evs, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (TrailEntry, error) {
		e := TrailEntry{Source: trailEvent}
		err := row.Scan(&e.Position, &e.Version, &e.Type, &e.Data, &e.At)
		return e, err
	})
	if err != nil {
		return d, fmt.Errorf("read message stream: %w", err)
	}
	d.Trail = append(d.Trail, evs...)

	// The SIDs Twilio gave the message's attempts: the one the read model holds, any accepted
	// event's, and any a callback names this message for (a callback can arrive before the
	// acceptance is recorded, or for an attempt whose outcome was unknown).
	sids := map[string]bool{}
	if m.ProviderSID != nil {
		sids[*m.ProviderSID] = true
	}
	for _, e := range evs {
		if e.Type != events.TypeMessageAccepted {
			continue
		}
		var acc events.MessageAccepted
		if json.Unmarshal(e.Data, &acc) == nil && acc.SID != "" {
			sids[acc.SID] = true
		}
	}
	rows, err = a.pool.Query(ctx, `SELECT message_sid FROM message_provider_status WHERE phone = $1 AND message_id = $2`, m.Phone, m.ID)
	if err != nil {
		return d, fmt.Errorf("read provider statuses: %w", err)
	}
	more, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return d, fmt.Errorf("read provider statuses: %w", err)
	}
	for _, sid := range more {
		sids[sid] = true
	}
	if len(sids) > 0 {
		list := make([]string, 0, len(sids))
		for sid := range sids {
			list = append(list, sid)
		}
		rows, err := a.pool.Query(ctx, `SELECT status, normalized, received_at FROM delivery_receipts
WHERE message_sid = ANY($1) ORDER BY received_at, event_id`, list)
		if err != nil {
			return d, fmt.Errorf("read status callbacks: %w", err)
		}
		callbacks, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (TrailEntry, error) {
			e := TrailEntry{Source: trailCallback}
			var status string
			err := row.Scan(&status, &e.Data, &e.At)
			e.Type = events.TypeMessageStatusReceived + ":" + status
			return e, err
		})
		if err != nil {
			return d, fmt.Errorf("read status callbacks: %w", err)
		}
		d.Trail = append(d.Trail, callbacks...)
	}
	// Time order; the message's own events keep their stream order among themselves.
	sort.SliceStable(d.Trail, func(i, j int) bool { return d.Trail[i].At.Before(d.Trail[j].At) })
	return d, nil
}

// filterPhone reads a phone filter in any common format; a bad one is added to errs.
func (a *API) filterPhone(errs *fieldErrors, field, v string) string {
	phone, err := commands.NormalizePhone(v, a.cfg.DefaultRegion)
	if err != nil {
		var pe *commands.PhoneError
		if errors.As(err, &pe) {
			errs.add(field, "%s", pe.Reason)
		} else {
			errs.add(field, "is not a phone number")
		}
	}
	return phone
}
