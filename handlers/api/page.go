package api

import (
	"encoding/base64"
	"encoding/json"
	"net/http"
	"strconv"
)

// Page limits.
const (
	defaultLimit = 50
	maxLimit     = 1000
)

// Page is a list answer: the items and, when more follow, the cursor that fetches them.
type Page[T any] struct {
	Items      []T    `json:"items"`
	NextCursor string `json:"next_cursor,omitempty"`
}

// pageParams reads limit and cursor. A cursor is opaque to clients: base64url of the sort key
// of the last item returned.
func pageParams(r *http.Request, after any) (limit int, err error) {
	limit = defaultLimit
	if s := r.URL.Query().Get("limit"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 || n > maxLimit {
			return 0, invalid(FieldError{Field: "limit", Reason: "must be an integer from 1 to 1000"})
		}
		limit = n
	}
	if c := r.URL.Query().Get("cursor"); c != "" {
		raw, err := base64.RawURLEncoding.DecodeString(c)
		if err != nil || json.Unmarshal(raw, after) != nil {
			return 0, invalid(FieldError{Field: "cursor", Reason: "is not a cursor this API returned"})
		}
	}
	return limit, nil
}

func encodeCursor(v any) string {
	b, _ := json.Marshal(v)
	return base64.RawURLEncoding.EncodeToString(b)
}
