package ingest_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"herald/commands/ingest"
)

// FuzzNDJSONRows: whatever the bytes, the NDJSON reader ends, never panics, gives exactly one
// row per line numbered 1, 2, 3 …, keeps every row it reads within the row invariants, and a
// row read fine reads back the same after re-encoding it as a row object.
func FuzzNDJSONRows(f *testing.F) {
	seedFiles(f, "users.ndjson")
	for _, s := range []string{
		"",
		"\n\n",
		`{"phone":51987654341}`,
		`{"phone":"  +51 987 654 321 ","attributes":{"a":null,"b":[1,{"c":1e999}]},"topics":[" x ",""]}` + "\r\n",
		`{"phone":true}`,
		`{"phone":"+51987654321"} {"phone":"+51987654322"}`,
		`{"unknown":1}`,
		"{\"phone\":\"\xff\"}",
		`{"phone":"\ud800"}`,
		`null`,
		"\xef\xbb\xbf{\"phone\":\"+1\"}",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		rows, _, err := ingest.NewRowReader(bytes.NewReader(data), ingest.FormatNDJSON)
		if err != nil {
			var he *ingest.HeaderError
			require.True(t, errors.As(err, &he), "open: %v", err)
			return
		}
		got := readAll(t, rows, len(data))
		body := bytes.TrimPrefix(data, []byte{0xEF, 0xBB, 0xBF})
		lines := bytes.Count(body, []byte("\n"))
		if len(body) > 0 && body[len(body)-1] != '\n' {
			lines++
		}
		require.Len(t, got, lines, "one row per line")
		for i, row := range got {
			require.Equal(t, i+1, row.Num)
			checkRow(t, row)
		}
	})
}

// FuzzJSONRows: whatever the bytes, the JSON array reader ends (after the last row, or with
// ErrBrokenJSON and nothing more), numbers rows 1, 2, 3 … in array order, keeps every row
// within the row invariants, re-encoded rows read back the same, and an array read to its end
// gives the same rows as the same objects written one per line as NDJSON.
func FuzzJSONRows(f *testing.F) {
	seedFiles(f, "users.json")
	for _, s := range []string{
		"[]",
		"[",
		"[{}]",
		`[{"phone":"+51987654321"},`,
		`[{"phone":51987654341},{"phone":"+1 415 555 2671","attributes":{"n":1.50,"s":"\u00e9"}},null]`,
		`[{"phone":"x","topics":[" a ","a",""]}] trailing`,
		`[1,"a",[]]`,
		`{"phone":"+51987654321"}`,
		"[{\"phone\":\"\xff\"}]",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		rows, _, err := ingest.NewRowReader(bytes.NewReader(data), ingest.FormatJSON)
		if err != nil {
			var he *ingest.HeaderError
			require.True(t, errors.As(err, &he), "open: %v", err)
			return
		}
		var got []ingest.Row
		broken := false
		for {
			row, err := rows.Next()
			if errors.Is(err, io.EOF) {
				break
			}
			if err != nil {
				require.ErrorIs(t, err, ingest.ErrBrokenJSON)
				_, err = rows.Next()
				require.ErrorIs(t, err, io.EOF, "nothing after a broken array")
				broken = true
				break
			}
			require.Equal(t, len(got)+1, row.Num)
			require.False(t, row.Blank, "an array element is never blank")
			require.LessOrEqual(t, len(got), len(data))
			checkRow(t, row)
			got = append(got, row)
		}
		if broken || len(got) == 0 {
			return
		}
		// The same elements, compacted one per line, read as NDJSON give the same rows.
		var elems []json.RawMessage
		if json.Unmarshal(data, &elems) != nil {
			return // a valid prefix with trailing bytes after the array
		}
		var nd bytes.Buffer
		for _, e := range elems {
			var line bytes.Buffer
			if json.Compact(&line, e) != nil || len(e) > ingest.MaxRecordBytes {
				return
			}
			nd.Write(line.Bytes())
			nd.WriteByte('\n')
		}
		size := nd.Len()
		again, _, err := ingest.NewRowReader(&nd, ingest.FormatNDJSON)
		require.NoError(t, err)
		assert.Equal(t, normalizeMalformed(got), normalizeMalformed(readAll(t, again, size)))
	})
}

// readAll reads every row, failing on any error other than the end.
func readAll(t *testing.T, rows ingest.RowReader, size int) []ingest.Row {
	var out []ingest.Row
	for {
		row, err := rows.Next()
		if errors.Is(err, io.EOF) {
			return out
		}
		require.NoError(t, err)
		out = append(out, row)
		require.LessOrEqual(t, len(out), size+1, "more rows than bytes")
	}
}

// checkRow asserts what every row satisfies, and that a row read fine round-trips.
func checkRow(t *testing.T, row ingest.Row) {
	t.Helper()
	if row.Malformed != "" {
		require.False(t, row.Blank)
		require.LessOrEqual(t, len(row.Raw), 200+len("…"))
		return
	}
	require.Empty(t, row.Raw)
	if row.Blank {
		require.Equal(t, ingest.Row{Num: row.Num, Blank: true}, row)
		return
	}
	for _, s := range []string{row.Phone, row.Consent, row.Locale, row.Timezone} {
		require.Equal(t, strings.TrimSpace(s), s, "value not trimmed")
	}
	for _, topic := range row.Topics {
		require.NotEmpty(t, topic)
		require.Equal(t, strings.TrimSpace(topic), topic)
	}
	for k, v := range row.Attrs {
		require.NotNil(t, v, "attribute %q is null: null means not given", k)
	}
	// Round trip: the row as a row object reads back the same.
	obj := map[string]any{"phone": row.Phone, "attributes": row.Attrs, "consent": row.Consent,
		"topics": row.Topics, "locale": row.Locale, "timezone": row.Timezone}
	b, err := json.Marshal(obj)
	require.NoError(t, err)
	rows, _, err := ingest.NewRowReader(bytes.NewReader(b), ingest.FormatNDJSON)
	require.NoError(t, err)
	again := readAll(t, rows, len(b))
	require.Len(t, again, 1)
	again[0].Num = row.Num
	require.Equal(t, row, again[0], "re-encoded as %s", b)
}

// normalizeMalformed drops what may differ between the two readers for a malformed row: the
// raw text (indented in the array, compacted on its line).
func normalizeMalformed(rows []ingest.Row) []ingest.Row {
	out := make([]ingest.Row, len(rows))
	for i, r := range rows {
		if r.Malformed != "" {
			r.Raw = ""
		}
		out[i] = r
	}
	return out
}
