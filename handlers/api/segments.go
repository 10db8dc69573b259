package api

import (
	"encoding/json"
	"errors"
	"net/http"
	"time"

	"github.com/google/uuid"
	"github.com/gorilla/mux"
	"github.com/jackc/pgx/v5"

	"herald/events"
	"herald/events/store"
	"herald/projections/segment"
)

// Segment is a saved rule.
type Segment struct {
	ID          string          `json:"id"`
	Name        string          `json:"name"`
	Description string          `json:"description"`
	Rule        json.RawMessage `json:"rule"`
	CreatedAt   time.Time       `json:"created_at"`
	UpdatedAt   time.Time       `json:"updated_at"`
	Version     int             `json:"version"`
}

type segmentBody struct {
	Name        string          `json:"name"`
	Description string          `json:"description"`
	Rule        json.RawMessage `json:"rule"`
}

// parseRule validates a rule, naming the place in it at fault ("rule.and[2].op").
func parseRule(field string, raw json.RawMessage) (segment.Rule, []FieldError) {
	if len(raw) == 0 || string(raw) == "null" {
		return segment.Rule{}, []FieldError{{Field: field, Reason: "is required"}}
	}
	rule, err := segment.Parse(raw)
	if err != nil {
		var ve *segment.ValidationError
		if errors.As(err, &ve) {
			path := field
			if ve.Path != "" {
				path += "." + ve.Path
			}
			return rule, []FieldError{{Field: path, Reason: ve.Reason}}
		}
		return rule, []FieldError{{Field: field, Reason: err.Error()}}
	}
	return rule, nil
}

func (b *segmentBody) check() (json.RawMessage, error) {
	var errs fieldErrors
	checkName(&errs, "name", b.Name)
	if len(b.Description) > 2000 {
		errs.add("description", "is longer than 2000 characters")
	}
	_, ruleErrs := parseRule("rule", b.Rule)
	errs = append(errs, ruleErrs...)
	if err := errs.err(); err != nil {
		return nil, err
	}
	var compact json.RawMessage
	compact, _ = compactJSON(b.Rule)
	return compact, nil
}

func compactJSON(raw json.RawMessage) (json.RawMessage, error) {
	var v any
	if err := json.Unmarshal(raw, &v); err != nil {
		return nil, err
	}
	return json.Marshal(v)
}

func (a *API) createSegment(w http.ResponseWriter, r *http.Request) error {
	return a.saveSegment(w, r, true)
}

func (a *API) replaceSegment(w http.ResponseWriter, r *http.Request) error {
	return a.saveSegment(w, r, false)
}

func (a *API) saveSegment(w http.ResponseWriter, r *http.Request, create bool) error {
	id, expected, status, err := saveTarget(r, create)
	if err != nil {
		return err
	}
	var body segmentBody
	if err := a.decode(w, r, &body); err != nil {
		return err
	}
	rule, err := body.check()
	if err != nil {
		return err
	}
	written, err := a.catalog.SaveSegment(r.Context(), events.SegmentSaved{ID: id, Name: body.Name, Description: body.Description, Rule: rule},
		create, expected, metadata(r))
	if err != nil {
		return err
	}
	return a.segments.answer(a, w, r, status, id, written)
}

const segmentColumns = `id, name, description, rule, created_at, updated_at, version`

func scanSegment(row pgx.Row) (Segment, error) {
	var s Segment
	err := row.Scan(&s.ID, &s.Name, &s.Description, &s.Rule, &s.CreatedAt, &s.UpdatedAt, &s.Version)
	return s, err
}

func (a *API) getSegment(w http.ResponseWriter, r *http.Request) error { return a.segments.get(w, r) }

func (a *API) listSegments(w http.ResponseWriter, r *http.Request) error {
	return a.segments.list(w, r, "")
}

// saveTarget is what a create or a replace writes to: a new id, at no particular version,
// answered 201; or the path's id at the If-Match version, answered 200.
func saveTarget(r *http.Request, create bool) (id string, expected, status int, err error) {
	if create {
		return uuid.NewString(), store.AnyVersion, http.StatusCreated, nil
	}
	id, expected, err = target(r)
	return id, expected, http.StatusOK, err
}

// target reads the resource a write is about ({id}) and If-Match.
func target(r *http.Request) (id string, expected int, err error) {
	if id, err = idParam(r); err != nil {
		return "", 0, err
	}
	expected, err = ifMatch(r)
	return id, expected, err
}

func idParam(r *http.Request) (string, error) {
	id := mux.Vars(r)["id"]
	if !resourceIDRegex.MatchString(id) {
		return "", notFound("resource")
	}
	return id, nil
}

// previewBody asks for a segment's size and a sample. Event fills {"$event": …} values.
type previewBody struct {
	Rule   json.RawMessage `json:"rule"`
	Event  map[string]any  `json:"event"`
	Sample *int            `json:"sample"`
}

// SegmentPreview is the answer to a preview.
type SegmentPreview struct {
	Count  int64  `json:"count"`
	Sample []User `json:"sample"`
}

const maxSample = 100

func (a *API) previewRule(w http.ResponseWriter, r *http.Request) error {
	var b previewBody
	if err := a.decode(w, r, &b); err != nil {
		return err
	}
	rule, errs := parseRule("rule", b.Rule)
	if len(errs) > 0 {
		return invalid(errs...)
	}
	return a.preview(w, r, rule, b)
}

func (a *API) previewSegment(w http.ResponseWriter, r *http.Request) error {
	id, err := idParam(r)
	if err != nil {
		return err
	}
	var b previewBody
	if r.ContentLength != 0 {
		if err := a.decode(w, r, &b); err != nil {
			return err
		}
	}
	if len(b.Rule) > 0 {
		return invalid(FieldError{Field: "rule", Reason: "a saved segment's preview uses its own rule; use POST /v1/segments/preview for another"})
	}
	s, err := a.segments.read(r.Context(), id)
	if err != nil {
		return err
	}
	rule, errs := parseRule("rule", s.Rule)
	if len(errs) > 0 {
		return invalid(errs...)
	}
	return a.preview(w, r, rule, b)
}

func (a *API) preview(w http.ResponseWriter, r *http.Request, rule segment.Rule, b previewBody) error {
	sample := 20
	if b.Sample != nil {
		if *b.Sample < 0 || *b.Sample > maxSample {
			return invalid(FieldError{Field: "sample", Reason: "must be from 0 to 100"})
		}
		sample = *b.Sample
	}
	where, args, err := segment.Compile(rule, segment.Params{Event: b.Event, Now: a.now()})
	if err != nil {
		return ruleError(err)
	}
	var out SegmentPreview
	if err := a.pool.QueryRow(r.Context(), `SELECT count(*) FROM users u WHERE `+where, args...).Scan(&out.Count); err != nil {
		return err
	}
	rows, err := a.pool.Query(r.Context(), `SELECT `+userColumns+` FROM users u WHERE `+where+
		` ORDER BY u.phone LIMIT `+itoa(sample), args...)
	if err != nil {
		return err
	}
	out.Sample, err = pgx.CollectRows(rows, func(row pgx.CollectableRow) (User, error) { return scanUser(row) })
	if err != nil {
		return err
	}
	if out.Sample == nil {
		out.Sample = []User{}
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}

// ruleError maps a rule that fails when its values are bound (an $event field the event lacks).
func ruleError(err error) error {
	var ve *segment.ValidationError
	if errors.As(err, &ve) {
		field := "rule"
		if ve.Path != "" {
			field += "." + ve.Path
		}
		if errors.Is(err, segment.ErrEventField) {
			field = "event"
		}
		return invalid(FieldError{Field: field, Reason: ve.Reason})
	}
	return err
}
