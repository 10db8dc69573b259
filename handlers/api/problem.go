package api

import (
	"encoding/json"
	"net/http"
)

// Problem is an RFC 9457 problem document. Errors names each field at fault and why.
type Problem struct {
	Type     string       `json:"type"`
	Title    string       `json:"title"`
	Status   int          `json:"status"`
	Detail   string       `json:"detail,omitempty"`
	Instance string       `json:"instance,omitempty"`
	Errors   []FieldError `json:"errors,omitempty"`
	// Position is where a command's events landed when the answer is 202 (applied later).
	Position string `json:"position,omitempty"`
}

// FieldError is one problem with one field of a request: a JSON path ("variants.es-PE.body",
// "rule.and[2].op"), a query parameter or a header, and the reason.
type FieldError struct {
	Field  string `json:"field"`
	Reason string `json:"reason"`
}

// problemError is an error that knows its HTTP problem; handlers return them and writeError
// maps everything else to a generic 500 (details only in the log).
type problemError struct {
	status int
	detail string
	fields []FieldError
}

func (e *problemError) Error() string {
	msg := http.StatusText(e.status)
	if e.detail != "" {
		msg += ": " + e.detail
	}
	for _, f := range e.fields {
		msg += "; " + f.Field + ": " + f.Reason
	}
	return msg
}

func errStatus(status int, detail string) error { return &problemError{status: status, detail: detail} }

// invalid is a 422 naming the fields at fault.
func invalid(fields ...FieldError) error {
	return &problemError{status: http.StatusUnprocessableEntity, detail: "the request is not valid", fields: fields}
}

func badRequest(field, reason string) error {
	return &problemError{status: http.StatusBadRequest, detail: "the request is malformed", fields: []FieldError{{field, reason}}}
}

func notFound(what string) error { return errStatus(http.StatusNotFound, what+" not found") }

func writeProblem(w http.ResponseWriter, r *http.Request, p Problem) {
	if p.Type == "" {
		p.Type = "about:blank"
	}
	if p.Title == "" {
		p.Title = http.StatusText(p.Status)
	}
	p.Instance = r.URL.Path
	w.Header().Set("Content-Type", "application/problem+json")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(p.Status)
	_ = json.NewEncoder(w).Encode(p)
}
