package api

import (
	"encoding/json"
	"net/http"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
)

// Event is one entry of the audit log, which is the event log.
type Event struct {
	Position      int64           `json:"position"`
	EventID       string          `json:"event_id"`
	Stream        string          `json:"stream"`
	StreamVersion int             `json:"stream_version"`
	Type          string          `json:"type"`
	SchemaVersion int             `json:"schema_version"`
	Data          json.RawMessage `json:"data"`
	Metadata      json.RawMessage `json:"metadata"`
	RecordedAt    time.Time       `json:"recorded_at"`
}

// listEvents pages the log by global position: stream (exact, or a category like "user" for
// every user stream), type, and after (a position).
func (a *API) listEvents(w http.ResponseWriter, r *http.Request) error {
	var after int64
	limit, err := pageParams(r, &after)
	if err != nil {
		return err
	}
	q := r.URL.Query()
	var errs fieldErrors
	for key := range q {
		switch key {
		case "stream", "type", "after", "limit", "cursor":
		default:
			errs.add(key, "is not a filter (stream, type, after, limit, cursor)")
		}
	}
	if s := q.Get("after"); s != "" {
		var n int64
		if err := json.Unmarshal([]byte(s), &n); err != nil || n < 0 {
			errs.add("after", "must be a log position (a non-negative integer)")
		}
		after = max(after, n)
	}
	if err := errs.err(); err != nil {
		return err
	}
	stream, category := q.Get("stream"), ""
	if stream != "" && !strings.Contains(stream, "-") {
		stream, category = "", q.Get("stream")+"-"
	}
	rows, err := a.pool.Query(r.Context(), `SELECT global_position, event_id::text, stream_id, stream_version, type, schema_version,
    data, metadata, recorded_at
FROM events
WHERE global_position > $1 AND ($2 = '' OR stream_id = $2) AND ($3 = '' OR starts_with(stream_id, $3)) AND ($4 = '' OR type = $4)
ORDER BY global_position LIMIT $5`, after, stream, category, q.Get("type"), limit+1)
	if err != nil {
		return err
	}
	list, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (Event, error) {
		var e Event
		err := row.Scan(&e.Position, &e.EventID, &e.Stream, &e.StreamVersion, &e.Type, &e.SchemaVersion, &e.Data, &e.Metadata, &e.RecordedAt)
		return e, err
	})
	if err != nil {
		return err
	}
	page := Page[Event]{Items: list}
	if len(list) > limit {
		page.Items = list[:limit]
		page.NextCursor = encodeCursor(list[limit-1].Position)
	}
	if page.Items == nil {
		page.Items = []Event{}
	}
	writeJSON(w, http.StatusOK, page)
	return nil
}
