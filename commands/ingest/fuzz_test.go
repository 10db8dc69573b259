package ingest_test

import (
	"bytes"
	"errors"
	"io"
	"os"
	"path/filepath"
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
		}
	})
}
