package api

import (
	"context"
	"encoding/csv"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"mime/multipart"
	"net/http"
	"regexp"
	"strings"
	"time"

	"github.com/google/uuid"
	"github.com/gorilla/mux"
	"github.com/jackc/pgx/v5"

	"herald/commands"
	"herald/commands/ingest"
	"herald/events"
)

// An upload is stored in Postgres (import_uploads, 1 MiB chunks) while the request body is
// read, then the API answers 202 with the import's id and a worker goroutine imports it from
// there. The job row (import_jobs) is claimed with a lease the worker keeps renewing: if the
// process dies, the import is resumed — from its first batch not recorded — by whichever API
// process next receives an upload or is asked for that import.
const (
	maxUploadBytes = 1 << 30 // 1 GiB per file
	uploadChunk    = 1 << 20
	importLease    = 2 * time.Minute
	importIssues   = 100 // issues of each kind shown by GET /v1/imports/{id}
)

// importSpec is the job's stored spec.
type importSpec struct {
	Format string `json:"format"`
	Mode   string `json:"mode"`
	Region string `json:"region"`
	Source string `json:"source"`
	Actor  string `json:"actor"`
}

// formatOf maps a media type to an import format ("" to sniff).
func formatOf(mediaType string) (string, bool) {
	switch mediaType {
	case "text/csv", "application/csv", "text/tab-separated-values":
		return ingest.FormatCSV, true
	case "application/x-ndjson", "application/ndjson", "application/jsonl", "application/x-jsonlines":
		return ingest.FormatNDJSON, true
	case "application/json", "text/plain", "application/octet-stream", "":
		return "", true // sniffed: JSON array, NDJSON or CSV
	}
	return "", false
}

func (a *API) createImport(w http.ResponseWriter, r *http.Request) error {
	q := r.URL.Query()
	spec := ingest.Spec{Mode: q.Get("mode"), Region: q.Get("region"), Format: q.Get("format"), Source: q.Get("source"), Metadata: metadata(r)}
	body := io.Reader(http.MaxBytesReader(w, r.Body, maxUploadBytes))
	mt, params, _ := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if mt == "multipart/form-data" {
		part, err := filePart(multipart.NewReader(body, params["boundary"]), &spec)
		if err != nil {
			return err
		}
		body = part
		pmt, _, _ := mime.ParseMediaType(part.Header.Get("Content-Type"))
		mt = pmt
	}
	sniffed, ok := formatOf(mt)
	if !ok {
		return errStatus(http.StatusUnsupportedMediaType, "send text/csv, application/json (an array) or application/x-ndjson, as the body or as the file of a multipart/form-data upload")
	}
	if spec.Format == "" {
		spec.Format = sniffed
	}
	if err := spec.Check(ingest.Config{DefaultRegion: a.cfg.DefaultRegion}); err != nil {
		var se *ingest.SpecError
		if errors.As(err, &se) {
			return invalid(FieldError{Field: se.Field, Reason: se.Reason})
		}
		return err
	}
	ctx := r.Context()
	id := spec.ID
	// The body is read into Postgres first; the request's own timeout does not apply to it.
	up := context.WithoutCancel(ctx)
	first, size, err := a.storeUpload(up, id, body)
	if err != nil {
		return err
	}
	if spec.Format == "" {
		spec.Format = ingest.SniffFormat(first)
	}
	js := importSpec{Format: spec.Format, Mode: spec.Mode, Region: spec.Region, Source: spec.Source, Actor: spec.Metadata.Actor}
	raw, _ := json.Marshal(js)
	if _, err := a.pool.Exec(up, `UPDATE import_jobs SET spec = $2, received = true, bytes = $3 WHERE import_id = $1`, id, raw, size); err != nil {
		return fmt.Errorf("import %s: %w", id, err)
	}
	im, err := ingest.NewImporter(a.store, a.registry, ingest.Config{DefaultRegion: a.cfg.DefaultRegion})
	if err != nil {
		return err
	}
	cp, err := im.Start(up, spec, spec.Format)
	if err != nil {
		return err
	}
	a.kickImport(id)
	a.resumeStaleImports(up)
	_, _ = a.applied(ctx, commands.Written{Checkpoint: cp}, "imports")
	w.Header().Set("Location", "/v1/imports/"+id)
	writeJSON(w, http.StatusAccepted, map[string]any{"id": id, "status": "processing", "bytes": size, "format": spec.Format,
		"report": "/v1/imports/" + id, "rejections": "/v1/imports/" + id + "/rejections.csv"})
	return nil
}

// filePart finds the multipart part named file; fields mode, region and format before it set
// the spec.
func filePart(mr *multipart.Reader, spec *ingest.Spec) (*multipart.Part, error) {
	for {
		part, err := mr.NextPart()
		if errors.Is(err, io.EOF) {
			return nil, badRequest("file", "the multipart body has no part named file")
		}
		if err != nil {
			return nil, badRequest("body", "is not valid multipart/form-data: "+err.Error())
		}
		switch part.FormName() {
		case "file":
			if spec.Source == "" {
				spec.Source = part.FileName()
			}
			return part, nil
		case "mode", "region", "format":
			v, _ := io.ReadAll(io.LimitReader(part, 64))
			switch part.FormName() {
			case "mode":
				spec.Mode = string(v)
			case "region":
				spec.Region = string(v)
			case "format":
				spec.Format = string(v)
			}
		}
	}
}

// storeUpload reads body into import_uploads; it returns the first bytes (to sniff the
// format) and the size.
func (a *API) storeUpload(ctx context.Context, id string, body io.Reader) ([]byte, int64, error) {
	if _, err := a.pool.Exec(ctx, `INSERT INTO import_jobs (import_id, spec) VALUES ($1, '{}')`, id); err != nil {
		return nil, 0, fmt.Errorf("import %s: %w", id, err)
	}
	buf := make([]byte, uploadChunk)
	var (
		first []byte
		size  int64
		seq   int
	)
	for {
		n, err := io.ReadFull(body, buf)
		if n > 0 {
			if first == nil {
				first = append([]byte(nil), buf[:min(n, 4096)]...)
			}
			if _, err := a.pool.Exec(ctx, `INSERT INTO import_uploads (import_id, seq, data) VALUES ($1, $2, $3)`, id, seq, buf[:n]); err != nil {
				return nil, 0, fmt.Errorf("import %s: store chunk %d: %w", id, seq, err)
			}
			seq++
			size += int64(n)
		}
		if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
			return first, size, nil
		}
		if err != nil {
			_, _ = a.pool.Exec(ctx, `DELETE FROM import_uploads WHERE import_id = $1`, id)
			_, _ = a.pool.Exec(ctx, `DELETE FROM import_jobs WHERE import_id = $1`, id)
			var tooBig *http.MaxBytesError
			if errors.As(err, &tooBig) {
				return nil, 0, errStatus(http.StatusRequestEntityTooLarge, fmt.Sprintf("an import file is at most %d bytes", int64(maxUploadBytes)))
			}
			return nil, 0, badRequest("body", "could not be read: "+err.Error())
		}
	}
}

// uploadReader reads a stored upload chunk by chunk.
type uploadReader struct {
	ctx  context.Context
	a    *API
	id   string
	seq  int
	data []byte
	done bool
}

func (u *uploadReader) Read(p []byte) (int, error) {
	for len(u.data) == 0 {
		if u.done {
			return 0, io.EOF
		}
		err := u.a.pool.QueryRow(u.ctx, `SELECT data FROM import_uploads WHERE import_id = $1 AND seq = $2`, u.id, u.seq).Scan(&u.data)
		if errors.Is(err, pgx.ErrNoRows) {
			u.done = true
			continue
		}
		if err != nil {
			return 0, err
		}
		u.seq++
	}
	n := copy(p, u.data)
	u.data = u.data[n:]
	return n, nil
}

// kickImport runs a stored import in the background if no live worker holds it.
func (a *API) kickImport(id string) {
	go func() {
		ctx := context.Background()
		var raw []byte
		err := a.pool.QueryRow(ctx, `UPDATE import_jobs SET claimed_until = now() + $2::interval, attempts = attempts + 1
WHERE import_id = $1 AND received AND NOT done AND (claimed_until IS NULL OR claimed_until < now()) RETURNING spec`,
			id, importLease.String()).Scan(&raw)
		if errors.Is(err, pgx.ErrNoRows) {
			return // done, or another worker holds it
		}
		if err != nil {
			a.log.Error().Err(err).Str("import", id).Msg("claim import")
			return
		}
		var js importSpec
		_ = json.Unmarshal(raw, &js)
		ctx, cancel := context.WithCancel(ctx)
		defer cancel()
		go func() { // keep the lease while the import runs
			t := time.NewTicker(importLease / 4)
			defer t.Stop()
			for {
				select {
				case <-ctx.Done():
					return
				case <-t.C:
					_, _ = a.pool.Exec(ctx, `UPDATE import_jobs SET claimed_until = now() + $2::interval WHERE import_id = $1`, id, importLease.String())
				}
			}
		}()
		im, err := ingest.NewImporter(a.store, a.registry, ingest.Config{DefaultRegion: a.cfg.DefaultRegion})
		if err != nil {
			a.log.Error().Err(err).Msg("importer")
			return
		}
		spec := ingest.Spec{ID: id, Format: js.Format, Mode: js.Mode, Region: js.Region, Source: js.Source,
			Metadata: events.Metadata{Actor: js.Actor, Source: "api"}}
		rep, err := im.Run(ctx, spec, &uploadReader{ctx: ctx, a: a, id: id}, nil)
		if err != nil {
			a.log.Error().Err(err).Str("import", id).Msg("import failed; it is resumed when it is next asked for")
			_, _ = a.pool.Exec(context.Background(), `UPDATE import_jobs SET claimed_until = now() WHERE import_id = $1`, id)
			return
		}
		if _, err := a.pool.Exec(ctx, `UPDATE import_jobs SET done = true, claimed_until = NULL WHERE import_id = $1`, id); err == nil {
			_, _ = a.pool.Exec(ctx, `DELETE FROM import_uploads WHERE import_id = $1`, id)
		}
		a.log.Info().Str("import", id).Str("status", rep.Status).Int("rows", rep.Totals.RowsRead).
			Float64("rows_per_s", rep.RowsPerSecond()).Msg("import finished")
	}()
}

// resumeStaleImports restarts imports whose worker stopped renewing its lease.
func (a *API) resumeStaleImports(ctx context.Context) {
	rows, err := a.pool.Query(ctx, `SELECT import_id::text FROM import_jobs WHERE received AND NOT done AND claimed_until < now() LIMIT 10`)
	if err != nil {
		return
	}
	ids, _ := pgx.CollectRows(rows, pgx.RowTo[string])
	for _, id := range ids {
		a.kickImport(id)
	}
}

// ImportReport is GET /v1/imports/{id}.
type ImportReport struct {
	ID               string            `json:"id"`
	Kind             string            `json:"kind"`
	Status           string            `json:"status"`
	Error            string            `json:"error,omitempty"`
	Format           string            `json:"format"`
	Mode             string            `json:"mode"`
	Region           string            `json:"region"`
	Source           string            `json:"source"`
	Bytes            int64             `json:"bytes"`
	Totals           map[string]int    `json:"totals"`
	RejectedBy       map[string]int    `json:"rejected_by"`
	WarningsBy       map[string]int    `json:"warnings_by"`
	Countries        map[string]int    `json:"countries"`
	Columns          map[string]string `json:"columns,omitempty"`
	Rejections       []ImportIssue     `json:"rejections"`
	Warnings         []ImportIssue     `json:"warnings"`
	Merges           []ImportIssue     `json:"merges"`
	StartedAt        time.Time         `json:"started_at"`
	UpdatedAt        time.Time         `json:"updated_at"`
	FinishedAt       *time.Time        `json:"finished_at"`
	DurationMs       *int64            `json:"duration_ms"`
	RowsPerSecond    float64           `json:"rows_per_second"`
	RejectionsCSV    string            `json:"rejections_csv"`
	IssuesTruncated  bool              `json:"issues_truncated"`
	ProcessedThrough int               `json:"processed_through_row"`
}

// ImportIssue is one row's rejection, warning or merge.
type ImportIssue struct {
	Row    int    `json:"row"`
	Code   string `json:"code"`
	Value  string `json:"value,omitempty"`
	Detail string `json:"detail,omitempty"`
	Into   *int   `json:"into,omitempty"`
}

func importIDParam(r *http.Request) (string, error) {
	id := mux.Vars(r)["id"]
	if _, err := uuid.Parse(id); err != nil {
		return "", notFound("import")
	}
	return id, nil
}

func (a *API) getImport(w http.ResponseWriter, r *http.Request) error {
	id, err := importIDParam(r)
	if err != nil {
		return err
	}
	ctx := r.Context()
	rep := ImportReport{ID: id, RejectionsCSV: "/v1/imports/" + id + "/rejections.csv", Totals: map[string]int{},
		RejectedBy: map[string]int{}, WarningsBy: map[string]int{}, Countries: map[string]int{}}
	var (
		rowsRead, blank, accepted, rejected, created, updated, unchanged, merged, warnings, conflicts int
		columns                                                                                       []byte
	)
	err = a.pool.QueryRow(ctx, `SELECT i.kind, i.status, i.error, i.format, i.mode, i.region, i.source, i.rows_read, i.blank_rows,
    i.accepted, i.rejected, i.created, i.updated, i.unchanged, i.merged, i.warnings, i.consent_conflicts, i.columns, i.started_at,
    i.updated_at, i.finished_at, i.duration_ms, i.last_row, coalesce((SELECT j.bytes FROM import_jobs j WHERE j.import_id::text = i.id), 0)
FROM imports i WHERE i.id = $1`, id).Scan(&rep.Kind, &rep.Status, &rep.Error, &rep.Format, &rep.Mode, &rep.Region, &rep.Source,
		&rowsRead, &blank, &accepted, &rejected, &created, &updated, &unchanged, &merged, &warnings, &conflicts, &columns,
		&rep.StartedAt, &rep.UpdatedAt, &rep.FinishedAt, &rep.DurationMs, &rep.ProcessedThrough, &rep.Bytes)
	if errors.Is(err, pgx.ErrNoRows) {
		return notFound("import")
	}
	if err != nil {
		return err
	}
	if rep.Status == "processing" {
		a.resumeIfStale(ctx, id)
	}
	rep.Totals = map[string]int{"rows_read": rowsRead, "blank_rows": blank, "accepted": accepted, "rejected": rejected, "created": created,
		"updated": updated, "unchanged": unchanged, "merged": merged, "warnings": warnings, "consent_conflicts": conflicts}
	if columns != nil {
		_ = json.Unmarshal(columns, &rep.Columns)
	}
	end := rep.UpdatedAt
	if rep.FinishedAt != nil {
		end = *rep.FinishedAt
	}
	if d := end.Sub(rep.StartedAt).Seconds(); d > 0 {
		rep.RowsPerSecond = float64(rowsRead) / d
	}
	if rep.DurationMs != nil && *rep.DurationMs > 0 {
		rep.RowsPerSecond = float64(rowsRead) / (float64(*rep.DurationMs) / 1000)
	}
	rows, err := a.pool.Query(ctx, `SELECT dim, key, n FROM import_counts WHERE import_id = $1`, id)
	if err != nil {
		return err
	}
	for rows.Next() {
		var (
			dim, key string
			n        int
		)
		if err := rows.Scan(&dim, &key, &n); err != nil {
			rows.Close()
			return err
		}
		map[string]map[string]int{"rejected": rep.RejectedBy, "warning": rep.WarningsBy, "country": rep.Countries}[dim][key] = n
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return err
	}
	for kind, dst := range map[string]*[]ImportIssue{"rejection": &rep.Rejections, "warning": &rep.Warnings, "merge": &rep.Merges} {
		rows, err := a.pool.Query(ctx, `SELECT row, code, value, detail, into_row FROM import_issues WHERE import_id = $1 AND kind = $2
ORDER BY row, seq LIMIT $3`, id, kind, importIssues+1)
		if err != nil {
			return err
		}
		list, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (ImportIssue, error) {
			var is ImportIssue
			err := row.Scan(&is.Row, &is.Code, &is.Value, &is.Detail, &is.Into)
			return is, err
		})
		if err != nil {
			return err
		}
		if len(list) > importIssues {
			list, rep.IssuesTruncated = list[:importIssues], true
		}
		if list == nil {
			list = []ImportIssue{}
		}
		*dst = list
	}
	writeJSON(w, http.StatusOK, rep)
	return nil
}

// resumeIfStale restarts an import whose worker stopped renewing its lease.
func (a *API) resumeIfStale(ctx context.Context, id string) {
	var stale bool
	if err := a.pool.QueryRow(ctx, `SELECT received AND NOT done AND claimed_until < now() FROM import_jobs WHERE import_id = $1`, id).Scan(&stale); err == nil && stale {
		a.kickImport(id)
	}
}

var e164Cell = regexp.MustCompile(`^\+[1-9][0-9]{6,14}$`)

// importCell defuses a cell a spreadsheet would read as a formula (= + - @ tab CR at the start)
// with a leading '. A valid E.164 number in the value column is left as it is.
func importCell(cell string, phoneColumn bool) string {
	if cell == "" || !strings.ContainsRune("=+-@\t\r", rune(cell[0])) {
		return cell
	}
	if phoneColumn && e164Cell.MatchString(cell) {
		return cell
	}
	return "'" + cell
}

func (a *API) importRejections(w http.ResponseWriter, r *http.Request) error {
	id, err := importIDParam(r)
	if err != nil {
		return err
	}
	ctx := r.Context()
	var exists bool
	if err := a.pool.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM imports WHERE id = $1)`, id).Scan(&exists); err != nil {
		return err
	}
	if !exists {
		return notFound("import")
	}
	rows, err := a.pool.Query(ctx, `SELECT row, code, value, detail FROM import_issues WHERE import_id = $1 AND kind = 'rejection' ORDER BY row, seq`, id)
	if err != nil {
		return err
	}
	defer rows.Close()
	w.Header().Set("Content-Type", "text/csv; charset=utf-8")
	w.Header().Set("Content-Disposition", `attachment; filename="import-`+id+`-rejections.csv"`)
	w.Header().Set("X-Content-Type-Options", "nosniff")
	cw := csv.NewWriter(w)
	_ = cw.Write([]string{"row", "reason", "value", "detail"})
	for rows.Next() {
		var (
			row                 int
			code, value, detail string
		)
		if err := rows.Scan(&row, &code, &value, &detail); err != nil {
			return err
		}
		_ = cw.Write([]string{itoa(row), importCell(code, false), importCell(value, true), importCell(detail, false)})
	}
	cw.Flush()
	return rows.Err()
}

// ImportSummary is one import in GET /v1/imports.
type ImportSummary struct {
	ID         string     `json:"id"`
	Kind       string     `json:"kind"`
	Status     string     `json:"status"`
	Source     string     `json:"source"`
	RowsRead   int        `json:"rows_read"`
	Accepted   int        `json:"accepted"`
	Rejected   int        `json:"rejected"`
	Created    int        `json:"created"`
	Updated    int        `json:"updated"`
	StartedAt  time.Time  `json:"started_at"`
	FinishedAt *time.Time `json:"finished_at"`
}

type importCursor struct {
	StartedAt time.Time `json:"s"`
	ID        string    `json:"i"`
}

// listImports lists imports, newest first.
func (a *API) listImports(w http.ResponseWriter, r *http.Request) error {
	var after importCursor
	limit, err := pageParams(r, &after)
	if err != nil {
		return err
	}
	for key := range r.URL.Query() {
		if key != "limit" && key != "cursor" {
			return invalid(FieldError{Field: key, Reason: "is not a parameter of this list (limit, cursor)"})
		}
	}
	sql := `SELECT id, kind, status, source, rows_read, accepted, rejected, created, updated, started_at, finished_at FROM imports`
	args := []any{limit + 1}
	if after.ID != "" {
		sql += ` WHERE (started_at, id) < ($2, $3)`
		args = append(args, after.StartedAt, after.ID)
	}
	rows, err := a.pool.Query(r.Context(), sql+` ORDER BY started_at DESC, id DESC LIMIT $1`, args...)
	if err != nil {
		return err
	}
	items, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (ImportSummary, error) {
		var s ImportSummary
		err := row.Scan(&s.ID, &s.Kind, &s.Status, &s.Source, &s.RowsRead, &s.Accepted, &s.Rejected, &s.Created, &s.Updated, &s.StartedAt, &s.FinishedAt)
		return s, err
	})
	if err != nil {
		return err
	}
	page := Page[ImportSummary]{Items: items}
	if len(items) > limit {
		page.Items = items[:limit]
		last := items[limit-1]
		page.NextCursor = encodeCursor(importCursor{StartedAt: last.StartedAt, ID: last.ID})
	}
	if page.Items == nil {
		page.Items = []ImportSummary{}
	}
	writeJSON(w, http.StatusOK, page)
	return nil
}
