package ingest_test

import (
	"bytes"
	"encoding/csv"
	"errors"
	"io"
	"os"
	"path/filepath"
	"reflect"
	"sort"
	"strings"
	"testing"

	"herald/commands/ingest"
)

func seedFiles(f *testing.F, names ...string) {
	for _, name := range names {
		b, err := os.ReadFile(filepath.Join("testdata", name))
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
}

// FuzzCSVRows: whatever the bytes, the CSV reader ends, never panics, numbers rows in file
// order, and keeps every value it reports within its bounds.
func FuzzCSVRows(f *testing.F) {
	seedFiles(f, "bom_semicolon.csv", "comma_lf.csv", "tabs.tsv")
	f.Add([]byte("phone\n\"+51 987\n654 321\"\n"))
	f.Add([]byte("phone;x\r\n\"unterminated;1\r\n+51987654321;2"))
	f.Add([]byte("phone,x\n\"a\"b,1\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		rows, _, err := ingest.NewRowReader(bytes.NewReader(data), ingest.FormatCSV)
		if err != nil {
			var he *ingest.HeaderError
			if !errors.As(err, &he) {
				t.Fatalf("open: %v", err)
			}
			return
		}
		last := 1
		lines := bytes.Count(data, []byte("\n")) + bytes.Count(data, []byte("\r")) + 1
		for n := 0; ; n++ {
			if n > len(data)+1 {
				t.Fatalf("more rows than bytes")
			}
			row, err := rows.Next()
			if errors.Is(err, io.EOF) {
				return
			}
			if err != nil {
				t.Fatalf("next: %v", err)
			}
			if row.Num <= last || row.Num > lines {
				t.Fatalf("row number %d after %d (file has at most %d lines)", row.Num, last, lines)
			}
			last = row.Num
			if len(row.Raw) > 204 {
				t.Fatalf("raw value of %d bytes", len(row.Raw))
			}
			if row.Malformed == "" && !row.Blank && strings.TrimSpace(row.Phone) != row.Phone {
				t.Fatalf("phone not trimmed: %q", row.Phone)
			}
			if row.Malformed == "" && !row.Blank {
				csvRoundTrip(t, row)
			}
		}
	})
}

// csvRoundTrip: a row read fine, written again as CSV (encoding/csv's quoting) under a header
// of its own columns, reads back the same.
func csvRoundTrip(t *testing.T, row ingest.Row) {
	t.Helper()
	if row.Phone == "" && row.Locale == "" && row.Timezone == "" && row.Consent == "" && len(row.Topics) == 0 && len(row.Attrs) == 0 {
		return // its only values were in ignored columns: written again it is blank
	}
	header := []string{"phone", "locale", "timezone", "consent", "topics"}
	record := []string{row.Phone, row.Locale, row.Timezone, row.Consent, strings.Join(row.Topics, ";")}
	keys := make([]string, 0, len(row.Attrs))
	for k := range row.Attrs {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		header = append(header, k)
		record = append(record, row.Attrs[k].(string))
	}
	var buf bytes.Buffer
	w := csv.NewWriter(&buf)
	if err := w.WriteAll([][]string{header, record}); err != nil {
		t.Fatalf("write: %v", err)
	}
	written := buf.String()
	rows, _, err := ingest.NewRowReader(&buf, ingest.FormatCSV)
	if err != nil {
		t.Fatalf("%v reading back %q", err, written)
	}
	again, err := rows.Next()
	if err != nil {
		t.Fatalf("%v reading back %q", err, written)
	}
	again.Num = row.Num
	if !reflect.DeepEqual(row, again) {
		t.Fatalf("row %+v\nwritten as %q\nreads back as %+v", row, written, again)
	}
}

// FuzzTriggerLine: any line is either a trigger whose fields are all valid or an issue naming
// a known code; never a panic.
func FuzzTriggerLine(f *testing.F) {
	f.Add([]byte(`{"event_id":"e1","type":"price_drop","occurred_at":"2026-11-27T10:00:00Z","payload":{"product_id":"sku-1"},"segment":{"attr":"watchlist","op":"contains","value":{"$event":"product_id"}},"template_id":"price-drop","topic":"deals"}`))
	f.Add([]byte(`{"event_id":"e2","type":"x","occurred_at":"2026-11-27T10:00:00+05:00","segment_id":"vip","template_id":"t","topic":"news","payload":null}`))
	f.Add([]byte(`{"event_id":"e3","type":"x","occurred_at":"2026-11-27T10:00:00Z","template_id":"t","topic":"deals","segment":{"and":[{"attr":"a","op":"in","value":[{"$event":"a"}]}]},"payload":{"a":1}}`))
	f.Add([]byte(`{"event_id":1}`))
	f.Add([]byte(`null`))
	codes := map[string]bool{ingest.TriggerMalformed: true, ingest.TriggerMissingField: true, ingest.TriggerInvalidField: true}
	f.Fuzz(func(t *testing.T, line []byte) {
		tl, issue := ingest.ParseTriggerLine(line)
		if issue != nil {
			if !codes[issue.Code] || issue.Detail == "" {
				t.Fatalf("issue %+v", issue)
			}
			return
		}
		if tl.EventID == "" || tl.Type == "" || tl.TemplateID == "" || tl.Topic == "" || tl.OccurredAt.IsZero() || tl.Payload == nil {
			t.Fatalf("accepted an incomplete trigger: %+v", tl)
		}
		if tl.Segment != nil && tl.SegmentID != "" {
			t.Fatalf("both segment and segment_id")
		}
		if len(tl.EventID) > 200 || strings.ContainsAny(tl.EventID, " \t\n\r") {
			t.Fatalf("event id %q", tl.EventID)
		}
	})
}
