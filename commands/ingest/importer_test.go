package ingest_test

import (
	"context"
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"herald/commands/ingest"
	"herald/events"
	"herald/events/store"
	"herald/projections"
	"herald/schema/schematest"
)

var update = flag.Bool("update", false, "rewrite the testdata/*.report.json files from what the importer reports")

const importID = "5f0c2b1e-8d3a-4e7b-9c6f-1a2b3c4d5e6f"

type harness struct {
	t      *testing.T
	db     *schematest.Schema
	store  *store.Store
	im     *ingest.Importer
	runner *projections.Runner
}

func newHarness(t *testing.T, cfg ingest.Config) *harness {
	t.Helper()
	db := schematest.New(t)
	s, err := store.New(db.Pool, store.Config{})
	require.NoError(t, err)
	t.Cleanup(s.Close)
	reg := events.DefaultRegistry()
	if cfg.DefaultRegion == "" {
		cfg.DefaultRegion = "PE"
	}
	im, err := ingest.NewImporter(s, reg, cfg)
	require.NoError(t, err)
	runner, err := projections.NewRunner(projections.Config{}, db.Pool, reg, nil, projections.All(), zerolog.Nop(), nil)
	require.NoError(t, err)
	return &harness{t: t, db: db, store: s, im: im, runner: runner}
}

func (h *harness) importFile(name string, spec ingest.Spec) ingest.Report {
	h.t.Helper()
	f, err := os.Open(filepath.Join("testdata", name))
	require.NoError(h.t, err)
	defer f.Close()
	spec.Source = name
	rep, err := h.im.Run(context.Background(), spec, f, nil)
	require.NoError(h.t, err)
	return rep
}

func (h *harness) catchUp() {
	h.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	require.NoError(h.t, h.runner.CatchUp(ctx, ""))
}

// stable is the report without its timing, as the golden files hold it.
func stable(t *testing.T, rep ingest.Report) []byte {
	rep.StartedAt, rep.FinishedAt = time.Time{}, time.Time{}
	b, err := json.MarshalIndent(rep, "", "  ")
	require.NoError(t, err)
	return append(b, '\n')
}

// TestReports imports each messy file of testdata/ into an empty database and compares the whole
// report with testdata/<file>.report.json.
func TestReports(t *testing.T) {
	t.Parallel()
	for _, name := range []string{"bom_semicolon.csv", "comma_lf.csv", "tabs.tsv", "users.json", "users.ndjson"} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			h := newHarness(t, ingest.Config{})
			got := stable(t, h.importFile(name, ingest.Spec{ID: importID}))
			golden := filepath.Join("testdata", name+".report.json")
			if *update {
				require.NoError(t, os.WriteFile(golden, got, 0o644))
			}
			want, err := os.ReadFile(golden)
			require.NoError(t, err)
			assert.Equal(t, string(want), string(got))
		})
	}
}

func (h *harness) eventCount() int {
	h.t.Helper()
	var n int
	require.NoError(h.t, h.db.Pool.QueryRow(context.Background(), `SELECT count(*) FROM events WHERE stream_id LIKE 'user-%'`).Scan(&n))
	return n
}

type userRow struct {
	Attributes map[string]any
	Consent    string
	Source     string
	Locale     string
	Timezone   string
	Topics     []string
}

func (h *harness) user(phone string) userRow {
	h.t.Helper()
	var u userRow
	require.NoError(h.t, h.db.Pool.QueryRow(context.Background(), `SELECT attributes, consent, consent_source, locale, timezone,
    coalesce((SELECT array_agg(topic ORDER BY topic) FROM subscriptions s WHERE s.phone = u.phone AND s.subscribed), '{}')
FROM users u WHERE phone = $1`, phone).Scan(&u.Attributes, &u.Consent, &u.Source, &u.Locale, &u.Timezone, &u.Topics))
	return u
}

// TestImportedUsers checks what the messy CSV leaves in the users read model: duplicates merged
// in file order (later non-empty values win), typed columns, consent with the import's source.
func TestImportedUsers(t *testing.T) {
	t.Parallel()
	h := newHarness(t, ingest.Config{})
	h.importFile("bom_semicolon.csv", ingest.Spec{ID: importID})
	h.catchUp()
	ana := h.user("+51987654321")
	assert.Equal(t, map[string]any{"first_name": "Ana María", "city": "Lima", "notes": `dup of row 2, "quoted"`}, ana.Attributes)
	assert.Equal(t, "OPT_IN", ana.Consent)
	assert.Equal(t, "import:"+importID, ana.Source)
	assert.Equal(t, []string{"deals", "news"}, ana.Topics)
	assert.Equal(t, "es-PE", ana.Locale)
	assert.Equal(t, "America/Lima", ana.Timezone)
	sofia := h.user("+34612345678")
	assert.Equal(t, map[string]any{"first_name": "Sofía", "city": "Barcelona"}, sofia.Attributes)
	assert.Equal(t, "OPT_OUT", sofia.Consent)
	bruno := h.user("+51987654322")
	assert.Equal(t, []string{"deals", "news"}, bruno.Topics)
	assert.Equal(t, "OPT_OUT", bruno.Consent, "no consent column value: a new user is opted out")
	ivan := h.user("+79123456789")
	assert.Equal(t, "", ivan.Timezone, "an invalid time zone is not set")
	assert.Equal(t, "ru", ivan.Locale)
}

// TestReimportIsIdempotent imports the same file twice: the second run appends no user event
// and reports every user unchanged.
func TestReimportIsIdempotent(t *testing.T) {
	t.Parallel()
	for _, name := range []string{"bom_semicolon.csv", "users.json"} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			h := newHarness(t, ingest.Config{})
			first := h.importFile(name, ingest.Spec{})
			n := h.eventCount()
			second := h.importFile(name, ingest.Spec{})
			assert.Equal(t, n, h.eventCount(), "no duplicate events")
			assert.Equal(t, 0, second.Totals.Created)
			assert.Equal(t, 0, second.Totals.Updated)
			assert.Equal(t, first.Totals.Created, second.Totals.Unchanged)
			assert.Equal(t, first.Totals.Rejected, second.Totals.Rejected)
			assert.Equal(t, first.Totals.Merged, second.Totals.Merged)
		})
	}
}

// TestResumedBatchIsIdempotent runs the same import (same id) twice, as a worker does that
// picks up an import whose process died: the events have the same ids, nothing is doubled.
func TestResumedBatchIsIdempotent(t *testing.T) {
	t.Parallel()
	h := newHarness(t, ingest.Config{BatchSize: 3})
	h.importFile("comma_lf.csv", ingest.Spec{ID: importID})
	n := h.eventCount()
	var imp int
	require.NoError(t, h.db.Pool.QueryRow(context.Background(), `SELECT count(*) FROM events WHERE stream_id = $1`, events.ImportStream(importID)).Scan(&imp))
	again := h.importFile("comma_lf.csv", ingest.Spec{ID: importID})
	assert.Equal(t, n, h.eventCount())
	assert.Equal(t, 5, again.Totals.Created, "a finished import answers with its stored totals")

	// A run that died after its first batch: the next run skips the recorded batch.
	tx, err := h.db.Pool.Begin(context.Background())
	require.NoError(t, err)
	_, err = tx.Exec(context.Background(), `SET LOCAL session_replication_role = replica`) // past the immutability trigger
	require.NoError(t, err)
	_, err = tx.Exec(context.Background(), `DELETE FROM events WHERE stream_id = $1 AND (type = $2 OR data->>'batch' <> '1')`,
		events.ImportStream(importID), events.TypeImportFinished)
	require.NoError(t, err)
	require.NoError(t, tx.Commit(context.Background()))
	resumed := h.importFile("comma_lf.csv", ingest.Spec{ID: importID})
	assert.Equal(t, n, h.eventCount(), "nothing is appended twice")
	assert.Equal(t, events.ImportCompleted, resumed.Status)
	assert.Equal(t, 8, resumed.Totals.RowsRead)
	_ = imp
}

func (h *harness) appendUser(phone string, evs ...events.Event) {
	h.t.Helper()
	var recs []events.Record
	for _, e := range evs {
		rec, err := events.NewRecord([16]byte{}, events.UserStream(phone), e, events.Metadata{})
		require.NoError(h.t, err)
		recs = append(recs, rec)
	}
	_, err := h.store.Append(context.Background(), events.UserStream(phone), store.AnyVersion, recs...)
	require.NoError(h.t, err)
}

// TestConsentConflict: an OPT_IN in a file never opts in a user who sent STOP; the report says
// so. An opt-out set through the API is not a STOP, so the file's opt-in applies.
func TestConsentConflict(t *testing.T) {
	t.Parallel()
	h := newHarness(t, ingest.Config{})
	h.appendUser("+51987654301",
		events.UserCreated{Phone: "+51987654301", Attributes: map[string]any{"age": 30.0}, Consent: "OPT_IN", Source: "api"},
		events.UserConsentChanged{Phone: "+51987654301", Consent: "OPT_OUT", Source: "inbound", Reason: "STOP"})
	h.appendUser("+51987654302",
		events.UserCreated{Phone: "+51987654302", Attributes: map[string]any{}, Consent: "OPT_OUT", Source: "api"})
	file := "phone,consent,age\n+51987654301,OPT_IN,31\n+51987654302,OPT_IN,\n"
	rep, err := h.im.Run(context.Background(), ingest.Spec{}, strings.NewReader(file), nil)
	require.NoError(t, err)
	assert.Equal(t, 1, rep.Totals.ConsentConflicts)
	assert.Equal(t, 2, rep.Totals.Updated)
	require.Len(t, rep.Warnings, 2)
	assert.Equal(t, events.ImportIssue{Row: 2, Code: ingest.WarnAttributeType, Value: "age", Detail: "age was a number, the file gives a string"}, rep.Warnings[0])
	assert.Equal(t, ingest.WarnConsentConflict, rep.Warnings[1].Code)
	h.catchUp()
	stopped := h.user("+51987654301")
	assert.Equal(t, "OPT_OUT", stopped.Consent)
	assert.Equal(t, "inbound", stopped.Source)
	assert.Equal(t, "31", stopped.Attributes["age"], "the rest of the row applies")
	assert.Equal(t, "OPT_IN", h.user("+51987654302").Consent)
}

// TestReplaceMode: replace makes the file's attributes the whole set; merge keeps the others.
func TestReplaceMode(t *testing.T) {
	t.Parallel()
	h := newHarness(t, ingest.Config{})
	h.appendUser("+51987654303", events.UserCreated{Phone: "+51987654303", Attributes: map[string]any{"a": "1", "b": "2"}, Consent: "OPT_OUT", Source: "api"})
	h.appendUser("+51987654304", events.UserCreated{Phone: "+51987654304", Attributes: map[string]any{"a": "1", "b": "2"}, Consent: "OPT_OUT", Source: "api"})
	_, err := h.im.Run(context.Background(), ingest.Spec{Mode: "replace"}, strings.NewReader("phone,a\n+51987654303,9\n"), nil)
	require.NoError(t, err)
	rep, err := h.im.Run(context.Background(), ingest.Spec{}, strings.NewReader("phone,a\n+51987654304,9\n+51987654304,\n"), nil)
	require.NoError(t, err)
	assert.Equal(t, 1, rep.Totals.Merged)
	h.catchUp()
	assert.Equal(t, map[string]any{"a": "9"}, h.user("+51987654303").Attributes)
	assert.Equal(t, map[string]any{"a": "9", "b": "2"}, h.user("+51987654304").Attributes)
}

// TestDuplicatesAcrossBatches: a phone's rows merge the same whether they share a batch or not.
func TestDuplicatesAcrossBatches(t *testing.T) {
	t.Parallel()
	h := newHarness(t, ingest.Config{BatchSize: 2})
	file := "phone,a,b\n+51987654305,1,\n+51987654306,x,\n+51987654305,,2\n+51987654305,3,\n"
	rep, err := h.im.Run(context.Background(), ingest.Spec{Mode: "replace"}, strings.NewReader(file), nil)
	require.NoError(t, err)
	assert.Equal(t, 2, rep.Totals.Created)
	assert.Equal(t, 2, rep.Totals.Merged)
	assert.Equal(t, 0, rep.Totals.Updated)
	h.catchUp()
	assert.Equal(t, map[string]any{"a": "3", "b": "2"}, h.user("+51987654305").Attributes)
}

// TestUnreadableFiles end as failed imports with the reason, and import nothing.
func TestUnreadableFiles(t *testing.T) {
	t.Parallel()
	h := newHarness(t, ingest.Config{})
	for file, reason := range map[string]string{
		"":                                       "the file is empty",
		"name,city\nAna,Lima\n":                  "no phone column",
		"phone,Name,name\n1,2,3\n":               `both read as "name"`,
		"\xff\xfep\x00h\x00":                     "UTF-16",
		`[{"phone": "+51987654307"}, {"phone": `: "JSON array is broken",
	} {
		rep, err := h.im.Run(context.Background(), ingest.Spec{}, strings.NewReader(file), nil)
		require.NoError(t, err)
		assert.Equal(t, events.ImportFailed, rep.Status, file)
		assert.Contains(t, rep.Error, reason)
	}
}

// TestReportProjection: the imports read model holds the same report as Run returned.
func TestReportProjection(t *testing.T) {
	t.Parallel()
	h := newHarness(t, ingest.Config{BatchSize: 4})
	rep := h.importFile("bom_semicolon.csv", ingest.Spec{ID: importID})
	h.catchUp()
	ctx := context.Background()
	var (
		status                                    string
		rowsRead, rejected, created, merged, warn int
		batches                                   int
	)
	require.NoError(t, h.db.Pool.QueryRow(ctx, `SELECT status, rows_read, rejected, created, merged, warnings, batches FROM imports WHERE id = $1`, importID).
		Scan(&status, &rowsRead, &rejected, &created, &merged, &warn, &batches))
	assert.Equal(t, "completed", status)
	assert.Equal(t, []int{rep.Totals.RowsRead, rep.Totals.Rejected, rep.Totals.Created, rep.Totals.Merged, rep.Totals.Warnings},
		[]int{rowsRead, rejected, created, merged, warn})
	assert.Greater(t, batches, 1)
	var n int
	require.NoError(t, h.db.Pool.QueryRow(ctx, `SELECT count(*) FROM import_issues WHERE import_id = $1 AND kind = 'rejection'`, importID).Scan(&n))
	assert.Equal(t, rep.Totals.Rejected, n)
	require.NoError(t, h.db.Pool.QueryRow(ctx, `SELECT n FROM import_counts WHERE import_id = $1 AND dim = 'country' AND key = 'PE'`, importID).Scan(&n))
	assert.Equal(t, rep.Totals.Countries["PE"], n)
}
