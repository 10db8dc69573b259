package api_test

import (
	"bytes"
	"context"
	"encoding/json"
	"mime/multipart"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"herald/events"
	"herald/events/store"
)

// waitImport polls GET /v1/imports/{id} until the import is no longer processing.
func (e *env) waitImport(id string) response {
	e.t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		res := e.admin(http.MethodGet, "/v1/imports/"+id, nil)
		if res.status == http.StatusOK && res.body["status"] != "processing" {
			return res
		}
		require.True(e.t, time.Now().Before(deadline), "import %s still processing: %s", id, res.raw)
		time.Sleep(100 * time.Millisecond)
	}
}

// waitUser polls GET /v1/users/{phone} until the users read model has applied the import (the
// imports read model may report the import finished first).
func (e *env) waitUser(phone string, ready func(response) bool) response {
	e.t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		res := e.admin(http.MethodGet, "/v1/users/"+phone, nil)
		if res.status == http.StatusOK && ready(res) {
			return res
		}
		require.True(e.t, time.Now().Before(deadline), "user %s: %s", phone, res.raw)
		time.Sleep(50 * time.Millisecond)
	}
}

func (e *env) upload(contentType, path string, body []byte) response {
	e.t.Helper()
	return e.call(http.MethodPost, path, adminKey, string(body), "Content-Type", contentType)
}

const importCSV = "Phone;Name;City;consent\r\n" +
	"+51 987 654 321;Ana;Lima;yes\r\n" +
	"=HYPERLINK(\"x\");Evil;;\r\n" +
	"+51 98;Short;;\r\n" +
	"51987654321;Ana María;;\r\n" +
	"-1234567;Minus;;\r\n"

func TestImportUsersThroughTheAPI(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	res := e.upload("text/csv", "/v1/imports?source=customers.csv", []byte(importCSV))
	require.Equal(t, http.StatusAccepted, res.status, string(res.raw))
	id := res.body["id"].(string)
	assert.Equal(t, "/v1/imports/"+id, res.header.Get("Location"))

	rep := e.waitImport(id)
	assert.Equal(t, "completed", rep.body["status"])
	assert.Equal(t, "customers.csv", rep.body["source"])
	totals := rep.body["totals"].(map[string]any)
	assert.EqualValues(t, 5, totals["rows_read"])
	assert.EqualValues(t, 1, totals["created"])
	assert.EqualValues(t, 1, totals["merged"])
	assert.EqualValues(t, 3, totals["rejected"])
	assert.Equal(t, map[string]any{"PE": 1.0}, rep.body["countries"])
	assert.Len(t, rep.body["rejections"], 3)

	user := e.waitUser("+51987654321", func(res response) bool { return res.body["consent"] == "OPT_IN" })
	assert.Equal(t, "Ana María", user.body["attributes"].(map[string]any)["name"])
	assert.Equal(t, "OPT_IN", user.body["consent"])

	csvRes := e.call(http.MethodGet, "/v1/imports/"+id+"/rejections.csv", readKey, nil)
	require.Equal(t, http.StatusOK, csvRes.status)
	assert.Equal(t, "text/csv; charset=utf-8", csvRes.header.Get("Content-Type"))
	lines := strings.Split(strings.TrimSpace(string(csvRes.raw)), "\n")
	require.Len(t, lines, 4, string(csvRes.raw))
	assert.Equal(t, "row,reason,value,detail", lines[0])
	assert.True(t, strings.HasPrefix(lines[1], `3,unparseable,"'=HYPERLINK(""x"")"`), lines[1])
	assert.True(t, strings.HasPrefix(lines[2], "4,too_short,'+51 98,"), lines[2])
	assert.True(t, strings.HasPrefix(lines[3], "6,"), lines[3])
	assert.Contains(t, lines[3], ",'-1234567,")

	list := e.call(http.MethodGet, "/v1/imports?limit=1", readKey, nil)
	require.Equal(t, http.StatusOK, list.status, string(list.raw))
	assert.Equal(t, id, list.body["items"].([]any)[0].(map[string]any)["id"])

	// The same file again: nothing changes, the report says so.
	again := e.upload("text/csv", "/v1/imports", []byte(importCSV))
	require.Equal(t, http.StatusAccepted, again.status)
	rep2 := e.waitImport(again.body["id"].(string))
	list = e.call(http.MethodGet, "/v1/imports?limit=1", readKey, nil)
	assert.Equal(t, again.body["id"], list.body["items"].([]any)[0].(map[string]any)["id"], "newest first")
	next := e.call(http.MethodGet, "/v1/imports?limit=1&cursor="+list.body["next_cursor"].(string), readKey, nil)
	assert.Equal(t, id, next.body["items"].([]any)[0].(map[string]any)["id"])
	assert.EqualValues(t, 1, rep2.body["totals"].(map[string]any)["unchanged"])
	assert.EqualValues(t, 0, rep2.body["totals"].(map[string]any)["created"])
}

func TestImportMultipartAndJSON(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	var buf bytes.Buffer
	mw := multipart.NewWriter(&buf)
	require.NoError(t, mw.WriteField("mode", "merge"))
	fw, err := mw.CreateFormFile("file", "people.ndjson")
	require.NoError(t, err)
	_, _ = fw.Write([]byte(`{"phone":"+51987654322","attributes":{"tier":"gold"},"topics":["deals"]}` + "\n" + `{"phone":"x"}` + "\n"))
	require.NoError(t, mw.Close())
	res := e.upload(mw.FormDataContentType(), "/v1/imports", buf.Bytes())
	require.Equal(t, http.StatusAccepted, res.status, string(res.raw))
	assert.Equal(t, "ndjson", res.body["format"])
	rep := e.waitImport(res.body["id"].(string))
	assert.Equal(t, "people.ndjson", rep.body["source"])
	assert.EqualValues(t, 1, rep.body["totals"].(map[string]any)["created"])

	rows, _ := json.Marshal([]map[string]any{{"phone": "+51987654323", "attributes": map[string]any{"age": 30}}})
	res = e.upload("application/json", "/v1/imports", rows)
	require.Equal(t, http.StatusAccepted, res.status)
	assert.Equal(t, "json", res.body["format"])
	rep = e.waitImport(res.body["id"].(string))
	assert.EqualValues(t, 1, rep.body["totals"].(map[string]any)["created"])
	user := e.waitUser("+51987654323", func(response) bool { return true })
	assert.EqualValues(t, 30, user.body["attributes"].(map[string]any)["age"])
}

func TestImportProblems(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	res := e.upload("text/csv", "/v1/imports?mode=overwrite", []byte(importCSV))
	assert.Equal(t, http.StatusUnprocessableEntity, res.status)
	assert.Equal(t, []string{"mode"}, res.problemFields())
	res = e.upload("text/csv", "/v1/imports?region=XX", []byte(importCSV))
	assert.Equal(t, []string{"region"}, res.problemFields())
	res = e.upload("image/png", "/v1/imports", []byte("x"))
	assert.Equal(t, http.StatusUnsupportedMediaType, res.status)
	res = e.upload("text/csv", "/v1/imports", []byte("name\nAna\n"))
	require.Equal(t, http.StatusAccepted, res.status)
	rep := e.waitImport(res.body["id"].(string))
	assert.Equal(t, "failed", rep.body["status"])
	assert.Contains(t, rep.body["error"], "no phone column")
	assert.Equal(t, http.StatusNotFound, e.admin(http.MethodGet, "/v1/imports/00000000-0000-4000-8000-000000000000", nil).status)
	assert.Equal(t, http.StatusNotFound, e.admin(http.MethodGet, "/v1/imports/00000000-0000-4000-8000-000000000000/rejections.csv", nil).status)
}

func TestPostTriggers(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	var tpl response
	for try := 0; try < 50; try++ { // the runner creates the checkpoints as it starts: until then a write answers 500
		tpl = e.admin(http.MethodPost, "/v1/templates", map[string]any{"name": "Price drop", "default_locale": "es",
			"variants": map[string]any{"es": map[string]any{"body": "Bajó {event.product}"}}})
		if tpl.status != http.StatusInternalServerError {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	require.Equal(t, http.StatusCreated, tpl.status, string(tpl.raw))
	tplID := tpl.body["id"].(string)
	for _, u := range []map[string]any{
		{"phone": "+51987654331", "consent": "OPT_IN", "topics": []string{"deals"}, "attributes": map[string]any{"watchlist": []string{"sku-1"}}},
		{"phone": "+51987654332", "consent": "OPT_IN", "topics": []string{"deals"}, "attributes": map[string]any{"watchlist": []string{"sku-2"}}},
	} {
		require.Contains(t, []int{http.StatusCreated, http.StatusOK}, e.admin(http.MethodPost, "/v1/users", u).status)
	}
	lines := strings.ReplaceAll(`{"event_id":"t1","type":"price_drop","occurred_at":"2026-11-27T10:00:00Z","payload":{"product_id":"sku-1"},"segment":{"attr":"watchlist","op":"contains","value":{"$event":"product_id"}},"template_id":"price-drop","topic":"deals"}
{"event_id":"t2","type":"price_drop","occurred_at":"2026-11-27T10:00:00Z","payload":{},"segment":{"attr":"watchlist","op":"contains","value":{"$event":"product_id"}},"template_id":"price-drop","topic":"deals"}
{"event_id":"t1","type":"price_drop","occurred_at":"2026-11-27T10:00:00Z","template_id":"price-drop","topic":"deals"}
`, "price-drop", tplID)
	res := e.call(http.MethodPost, "/v1/triggers", adminKey, lines, "Content-Type", "application/x-ndjson")
	require.Equal(t, http.StatusOK, res.status, string(res.raw))
	assert.EqualValues(t, 1, res.body["accepted"])
	assert.EqualValues(t, 1, res.body["rejected"])
	assert.EqualValues(t, 1, res.body["duplicates"])
	assert.EqualValues(t, 1, res.body["recipients"])
	rej := res.body["rejections"].([]any)[0].(map[string]any)
	assert.EqualValues(t, 2, rej["line"])
	assert.Equal(t, "payload.product_id", rej["field"])
	assert.Equal(t, http.StatusForbidden, e.call(http.MethodPost, "/v1/triggers", readKey, lines).status)
}

// TestStaleImportIsResumed: an upload stored by a process that died before importing it (its
// lease lapsed) is imported by the next process asked about it.
func TestStaleImportIsResumed(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ctx := context.Background()
	id := uuid.NewString()
	_, err := e.db.Pool.Exec(ctx, `INSERT INTO import_jobs (import_id, spec, received, bytes, claimed_until, attempts)
VALUES ($1, '{"format":"csv","mode":"merge","region":"PE","source":"lost.csv"}', true, 40, now() - interval '1 minute', 1)`, id)
	require.NoError(t, err)
	body := "phone,name\n+51987654341,Lost\n"
	_, err = e.db.Pool.Exec(ctx, `INSERT INTO import_uploads (import_id, seq, data) VALUES ($1, 0, $2)`, id, []byte(body))
	require.NoError(t, err)
	rec, err := events.NewRecord(events.DeterministicID(events.TypeImportStarted, id), events.ImportStream(id),
		events.ImportStarted{ID: id, Kind: "users", Format: "csv", Mode: "merge", Region: "PE", Source: "lost.csv"}, events.Metadata{})
	require.NoError(t, err)
	_, err = e.store.Append(ctx, events.ImportStream(id), store.AnyVersion, rec)
	require.NoError(t, err)

	rep := e.waitImport(id)
	assert.Equal(t, "completed", rep.body["status"])
	assert.EqualValues(t, 1, rep.body["totals"].(map[string]any)["created"])
	var done bool
	var chunks int
	require.NoError(t, e.db.Pool.QueryRow(ctx, `SELECT done, (SELECT count(*) FROM import_uploads WHERE import_id = $1) FROM import_jobs WHERE import_id = $1`, id).
		Scan(&done, &chunks))
	assert.True(t, done)
	assert.Zero(t, chunks, "the stored upload is deleted once imported")
}
