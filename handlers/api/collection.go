package api

import (
	"context"
	"errors"
	"net/http"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"herald/commands"
	"herald/events"
)

// collection is a catalog read model the API serves by id: segments, templates, campaigns.
type collection[T any] struct {
	noun       string // "segment": in paths (plural) and problems
	table      string
	columns    string
	projection string
	pool       *pgxpool.Pool
	scan       func(pgx.Row) (T, error)
	id         func(T) string
	version    func(T) int
}

func (c collection[T]) location(id string) string { return "/v1/" + c.noun + "s/" + id }

func (c collection[T]) read(ctx context.Context, id string) (T, error) {
	v, err := c.scan(c.pool.QueryRow(ctx, `SELECT `+c.columns+` FROM `+c.table+` WHERE id = $1`, id))
	if errors.Is(err, pgx.ErrNoRows) {
		return v, notFound(c.noun + " " + id)
	}
	return v, err
}

// get serves GET /v1/<nouns>/{id}.
func (c collection[T]) get(w http.ResponseWriter, r *http.Request) error {
	id, err := idParam(r)
	if err != nil {
		return err
	}
	v, err := c.read(r.Context(), id)
	if err != nil {
		return err
	}
	setETag(w, c.version(v))
	writeJSON(w, http.StatusOK, v)
	return nil
}

// list serves GET /v1/<nouns>, paged by id. filter is an extra SQL condition on its own
// arguments, which follow the cursor ($1) and the limit ($2).
func (c collection[T]) list(w http.ResponseWriter, r *http.Request, filter string, args ...any) error {
	var after string
	limit, err := pageParams(r, &after)
	if err != nil {
		return err
	}
	for key := range r.URL.Query() {
		if key != "limit" && key != "cursor" {
			return invalid(FieldError{Field: key, Reason: "is not a parameter of this list (limit, cursor)"})
		}
	}
	sql := `SELECT ` + c.columns + ` FROM ` + c.table + ` WHERE id > $1 ` + filter + ` ORDER BY id LIMIT $2`
	rows, err := c.pool.Query(r.Context(), sql, append([]any{after, limit + 1}, args...)...)
	if err != nil {
		return err
	}
	items, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (T, error) { return c.scan(row) })
	if err != nil {
		return err
	}
	page := Page[T]{Items: items}
	if len(items) > limit {
		page.Items = items[:limit]
		page.NextCursor = encodeCursor(c.id(items[limit-1]))
	}
	if page.Items == nil {
		page.Items = []T{}
	}
	writeJSON(w, http.StatusOK, page)
	return nil
}

// answer answers a write once the read model shows it: the resource as it now reads, or 202.
func (c collection[T]) answer(a *API, w http.ResponseWriter, r *http.Request, status int, id string, written commands.Written) error {
	ok, err := a.applied(r.Context(), written, c.projection)
	if err != nil {
		return err
	}
	if !ok {
		return accepted(w, r, c.location(id), id, written)
	}
	v, err := c.read(r.Context(), id)
	if err != nil {
		return err
	}
	if status == http.StatusCreated {
		w.Header().Set("Location", c.location(id))
	}
	setETag(w, c.version(v))
	writeJSON(w, status, v)
	return nil
}

// remove serves DELETE /v1/<nouns>/{id} with the command del.
func (c collection[T]) remove(a *API, del func(context.Context, string, int, events.Metadata) (commands.Written, error)) handlerFunc {
	return func(w http.ResponseWriter, r *http.Request) error {
		id, expected, err := target(r)
		if err != nil {
			return err
		}
		written, err := del(r.Context(), id, expected, metadata(r))
		if err != nil {
			return err
		}
		return c.answerDeleted(a, w, r, written)
	}
}

// answerDeleted answers 204 once the read model no longer shows the resource, or 202.
func (c collection[T]) answerDeleted(a *API, w http.ResponseWriter, r *http.Request, written commands.Written) error {
	return a.answerNoContent(w, r, written, c.projection)
}
