package ui

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
)

// client calls the /v1 API in-process: every request goes through the same http.Handler
// (router, authentication, roles, validation) as an external client's, with the session's
// API key in Authorization. The UI has no other way to the data.
type client struct {
	api http.Handler
	key string
}

// apiError is a non-2xx answer: the problem document's detail and field errors, ready to show.
type apiError struct {
	Status int
	Detail string
	Fields []fieldError
}

type fieldError struct {
	Field  string `json:"field"`
	Reason string `json:"reason"`
}

func (e *apiError) Error() string {
	if len(e.Fields) == 0 {
		return e.Detail
	}
	var parts []string
	for _, f := range e.Fields {
		parts = append(parts, f.Field+": "+f.Reason)
	}
	return e.Detail + " (" + strings.Join(parts, "; ") + ")"
}

// recorder is the smallest ResponseWriter that keeps an answer in memory.
type recorder struct {
	header http.Header
	status int
	body   bytes.Buffer
}

func (r *recorder) Header() http.Header { return r.header }
func (r *recorder) WriteHeader(status int) {
	if r.status == 0 {
		r.status = status
	}
}
func (r *recorder) Write(p []byte) (int, error) {
	if r.status == 0 {
		r.status = http.StatusOK
	}
	return r.body.Write(p)
}

// do sends one request and returns the raw answer; a non-2xx answer is an *apiError.
func (c client) do(ctx context.Context, method, path string, body io.Reader, contentType string, headers ...string) (*recorder, error) {
	req, err := http.NewRequestWithContext(ctx, method, path, body)
	if err != nil {
		return nil, err
	}
	req.RemoteAddr = "127.0.0.1:0"
	req.RequestURI = path
	req.Header.Set("Authorization", "Bearer "+c.key)
	req.Header.Set("Accept", "application/json")
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	for i := 0; i+1 < len(headers); i += 2 {
		req.Header.Set(headers[i], headers[i+1])
	}
	rec := &recorder{header: http.Header{}}
	c.api.ServeHTTP(rec, req)
	if rec.status == 0 {
		rec.status = http.StatusOK
	}
	if rec.status >= 300 {
		e := &apiError{Status: rec.status}
		var p struct {
			Title  string       `json:"title"`
			Detail string       `json:"detail"`
			Errors []fieldError `json:"errors"`
		}
		if json.Unmarshal(rec.body.Bytes(), &p) == nil {
			e.Detail, e.Fields = p.Detail, p.Errors
			if e.Detail == "" {
				e.Detail = p.Title
			}
		}
		if e.Detail == "" {
			e.Detail = http.StatusText(rec.status)
		}
		return rec, e
	}
	return rec, nil
}

// get decodes a GET answer into out.
func (c client) get(ctx context.Context, path string, q url.Values, out any) error {
	if len(q) > 0 {
		path += "?" + q.Encode()
	}
	rec, err := c.do(ctx, http.MethodGet, path, nil, "")
	if err != nil {
		return err
	}
	return decode(rec, out)
}

// send sends in as JSON and decodes the answer into out (when not nil).
func (c client) send(ctx context.Context, method, path string, in, out any, headers ...string) error {
	var body io.Reader
	if in != nil {
		buf, err := json.Marshal(in)
		if err != nil {
			return err
		}
		body = bytes.NewReader(buf)
	}
	rec, err := c.do(ctx, method, path, body, "application/json", headers...)
	if err != nil {
		return err
	}
	if out == nil {
		return nil
	}
	return decode(rec, out)
}

func decode(rec *recorder, out any) error {
	if err := json.Unmarshal(rec.body.Bytes(), out); err != nil {
		return fmt.Errorf("the API answered something unreadable: %w", err)
	}
	return nil
}

// esc escapes one path segment.
func esc(s string) string { return url.PathEscape(s) }
