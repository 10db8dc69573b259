package projections

import (
	"context"
	"encoding/json"
	"fmt"

	"herald/events"
)

// Imports is the data-quality report of every import: its progress and totals (imports), its
// counts by reason, warning and country (import_counts), and every rejected row, warning and
// merged duplicate (import_issues).
type Imports struct{}

func (Imports) Name() string { return "imports" }
func (Imports) Tables() []string {
	return []string{"imports", "import_counts", "import_issues"}
}
func (Imports) Handles() []string {
	return []string{events.TypeImportStarted, events.TypeImportBatchProcessed, events.TypeImportFinished}
}

const (
	sqlImportStart = `INSERT INTO imports (id, kind, status, format, mode, region, source, started_at, updated_at, version)
VALUES ($1, $2, 'processing', $3, $4, $5, $6, $7, $7, $8)
ON CONFLICT (id) DO NOTHING`

	sqlImportBatch = `UPDATE imports SET rows_read = rows_read + $2, blank_rows = blank_rows + $3, accepted = accepted + $4,
    rejected = rejected + $5, created = created + $6, updated = updated + $7, unchanged = unchanged + $8, merged = merged + $9,
    warnings = warnings + $10, consent_conflicts = consent_conflicts + $11, batches = batches + 1,
    last_row = greatest(last_row, $12), updated_at = $13, version = $14
WHERE id = $1`

	sqlImportCounts = `INSERT INTO import_counts (import_id, dim, key, n)
SELECT $1, dim, key, n FROM unnest($2::text[], $3::text[], $4::int[]) AS r(dim, key, n)
ON CONFLICT (import_id, dim, key) DO UPDATE SET n = import_counts.n + excluded.n`

	sqlImportIssues = `INSERT INTO import_issues (import_id, kind, row, seq, code, value, detail, into_row)
SELECT $1, kind, row, seq, code, value, detail, nullif(into_row, 0)
FROM unnest($2::text[], $3::int[], $4::int[], $5::text[], $6::text[], $7::text[], $8::int[]) AS r(kind, row, seq, code, value, detail, into_row)
ON CONFLICT DO NOTHING`

	// The finished event's totals are authoritative (they are the sum of the batches).
	sqlImportFinish = `UPDATE imports SET status = $2, error = $3, rows_read = $4, blank_rows = $5, accepted = $6, rejected = $7,
    created = $8, updated = $9, unchanged = $10, merged = $11, warnings = $12, consent_conflicts = $13, columns = $14,
    duration_ms = $15, finished_at = $16, updated_at = $16, version = $17
WHERE id = $1`
)

func (Imports) Apply(_ context.Context, tx Tx, env events.Envelope, e events.Event) error {
	switch e := e.(type) {
	case *events.ImportStarted:
		tx.Queue(sqlImportStart, e.ID, e.Kind, e.Format, e.Mode, e.Region, e.Source, env.RecordedAt, env.StreamVersion)
	case *events.ImportBatchProcessed:
		c := e.Counts
		tx.Queue(sqlImportBatch, e.ID, c.RowsRead, c.BlankRows, c.Accepted, c.Rejected, c.Created, c.Updated, c.Unchanged, c.Merged,
			c.Warnings, c.ConsentConflicts, e.LastRow, env.RecordedAt, env.StreamVersion)
		queueCounts(tx, e.ID, c)
		var (
			kinds, codes, values, details []string
			rows, seqs, into              []int
		)
		for _, list := range []struct {
			kind   string
			issues []events.ImportIssue
		}{{"rejection", e.Rejections}, {"warning", e.Warnings}, {"merge", e.Merges}} {
			for i, is := range list.issues {
				kinds, codes, values, details = append(kinds, list.kind), append(codes, is.Code), append(values, is.Value), append(details, is.Detail)
				rows, seqs, into = append(rows, is.Row), append(seqs, i), append(into, is.Into)
			}
		}
		if len(kinds) > 0 {
			tx.Queue(sqlImportIssues, e.ID, kinds, rows, seqs, codes, values, details, into)
		}
	case *events.ImportFinished:
		t := e.Totals
		var columns *string
		if e.Columns != nil {
			b, err := json.Marshal(e.Columns)
			if err != nil {
				return Poison(err)
			}
			s := string(b)
			columns = &s
		}
		tx.Queue(sqlImportFinish, e.ID, e.Status, e.Error, t.RowsRead, t.BlankRows, t.Accepted, t.Rejected, t.Created, t.Updated,
			t.Unchanged, t.Merged, t.Warnings, t.ConsentConflicts, columns, e.DurationMs, env.RecordedAt, env.StreamVersion)
		tx.Queue(`DELETE FROM import_counts WHERE import_id = $1`, e.ID)
		queueCounts(tx, e.ID, t)
	default:
		return Poison(fmt.Errorf("imports: unexpected %T", e))
	}
	return nil
}

func queueCounts(tx Tx, id string, c events.ImportCounts) {
	var dims, keys []string
	var ns []int
	for _, d := range []struct {
		dim string
		m   map[string]int
	}{{"rejected", c.RejectedBy}, {"warning", c.WarningsBy}, {"country", c.Countries}} {
		for k, n := range d.m {
			dims, keys, ns = append(dims, d.dim), append(keys, k), append(ns, n)
		}
	}
	if len(dims) > 0 {
		tx.Queue(sqlImportCounts, id, dims, keys, ns)
	}
}
