package ingest

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"unicode"
	"unicode/utf8"
)

// File formats.
const (
	FormatCSV    = "csv"
	FormatJSON   = "json"   // one array of row objects
	FormatNDJSON = "ndjson" // one row object per line
)

// Row is one row of an import file as read, before it is validated. Num is the row's number:
// its line in a CSV or NDJSON file (the header is line 1), its position in a JSON array.
type Row struct {
	Num      int
	Phone    string
	Attrs    map[string]any // only the values given (empty CSV cells are left out)
	Locale   string
	Timezone string
	Consent  string
	Topics   []string
	// Blank rows (no value at all) are counted and skipped.
	Blank bool
	// Malformed says why the row could not be read; Raw then holds it (cut to 200 bytes).
	Malformed string
	Raw       string
}

// RowReader reads rows one at a time; memory does not grow with the file.
type RowReader interface {
	// Next returns the next row, or io.EOF after the last. Any other error ends the file (a
	// reader error, or a JSON array broken beyond the row).
	Next() (Row, error)
	// Columns maps each header of a CSV file to what it was read as ("phone", "locale", …, or
	// the attribute key); nil for JSON.
	Columns() map[string]string
}

// HeaderError means the file cannot be read as an import at all (no header, no phone
// column, two columns with one name, UTF-16). Nothing of it is imported.
type HeaderError struct{ Reason string }

func (e *HeaderError) Error() string { return "import file: " + e.Reason }

// NewRowReader opens r as format ("" sniffs it: [ is JSON, { is NDJSON, else CSV).
func NewRowReader(r io.Reader, format string) (RowReader, string, error) {
	br := bufio.NewReaderSize(r, 256<<10)
	head, _ := br.Peek(4)
	switch {
	case bytes.HasPrefix(head, []byte{0xEF, 0xBB, 0xBF}):
		_, _ = br.Discard(3)
	case bytes.HasPrefix(head, []byte{0xFF, 0xFE}), bytes.HasPrefix(head, []byte{0xFE, 0xFF}):
		return nil, "", &HeaderError{Reason: "the file is UTF-16; save it as UTF-8"}
	}
	if format == "" {
		format = sniffFormat(br)
	}
	switch format {
	case FormatCSV:
		rr, err := newCSVRows(br)
		return rr, format, err
	case FormatJSON:
		rr, err := newJSONRows(br)
		return rr, format, err
	case FormatNDJSON:
		return &ndjsonRows{r: br}, format, nil
	}
	return nil, "", fmt.Errorf("unknown format %q (csv, json or ndjson)", format)
}

func sniffFormat(br *bufio.Reader) string {
	peek, _ := br.Peek(4096)
	return SniffFormat(peek)
}

// SniffFormat tells the format of a file from its first bytes: [ is JSON, { is NDJSON, else CSV.
func SniffFormat(head []byte) string {
	trimmed := bytes.TrimLeftFunc(bytes.TrimPrefix(head, []byte{0xEF, 0xBB, 0xBF}), unicode.IsSpace)
	switch {
	case len(trimmed) > 0 && trimmed[0] == '[':
		return FormatJSON
	case len(trimmed) > 0 && trimmed[0] == '{':
		return FormatNDJSON
	}
	return FormatCSV
}

func cut(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n] + "…"
}

// Column kinds.
const (
	colAttr = iota
	colPhone
	colLocale
	colTimezone
	colConsent
	colTopics
	colIgnore
)

var typedColumns = map[string]int{
	"phone": colPhone, "phone_number": colPhone, "msisdn": colPhone, "whatsapp": colPhone, "mobile": colPhone,
	"whatsapp_number": colPhone, "mobile_number": colPhone,
	"locale": colLocale, "language": colLocale,
	"timezone": colTimezone, "time_zone": colTimezone, "tz": colTimezone,
	"consent": colConsent,
	"topics":  colTopics,
}

// typedNames is what a typed column is shown as in Columns.
var typedNames = map[int]string{colPhone: "phone", colLocale: "locale", colTimezone: "timezone", colConsent: "consent", colTopics: "topics"}

// headerKey turns a header into an attribute key: lower case, runs of anything but letters
// and digits become one _, trimmed ("First Name" → first_name, "E-mail" → e_mail).
func headerKey(h string) string {
	var b strings.Builder
	under := false
	for _, r := range strings.ToLower(strings.TrimSpace(h)) {
		if unicode.IsLetter(r) || unicode.IsDigit(r) {
			if under && b.Len() > 0 {
				b.WriteByte('_')
			}
			under = false
			b.WriteRune(r)
			continue
		}
		under = true
	}
	k := b.String()
	if k != "" && unicode.IsDigit(rune(k[0])) {
		k = "_" + k
	}
	return k
}

type column struct {
	kind int
	key  string
}

// mapHeader reads a header row. Columns without a name are ignored.
func mapHeader(fields []string) ([]column, map[string]string, error) {
	cols := make([]column, len(fields))
	mapping := map[string]string{}
	seen := map[string]string{}
	phone := false
	for i, h := range fields {
		key := headerKey(h)
		name := strings.TrimSpace(h)
		if key == "" {
			cols[i] = column{kind: colIgnore}
			mapping[fmt.Sprintf("(column %d)", i+1)] = "(ignored: no name)"
			continue
		}
		kind, typed := typedColumns[key]
		if !typed {
			kind = colAttr
		}
		shown := key
		if typed {
			shown = typedNames[kind]
		}
		if len(shown) > 64 {
			return nil, nil, &HeaderError{Reason: fmt.Sprintf("column %d (%q): names are at most 64 characters", i+1, cut(name, 64))}
		}
		if prev, dup := seen[shown]; dup {
			return nil, nil, &HeaderError{Reason: fmt.Sprintf("columns %q and %q are both read as %q", prev, name, shown)}
		}
		seen[shown] = name
		phone = phone || kind == colPhone
		cols[i] = column{kind: kind, key: shown}
		mapping[name] = shown
	}
	if !phone {
		return nil, nil, &HeaderError{Reason: "no phone column: the header needs one named phone, phone_number, msisdn, whatsapp or mobile"}
	}
	return cols, mapping, nil
}

type csvRows struct {
	s       *csvScanner
	cols    []column
	columns map[string]string
}

func newCSVRows(br *bufio.Reader) (*csvRows, error) {
	first, _ := br.Peek(MaxRecordBytes)
	s := newCSVScanner(br, sniffDelimiter(first))
	for {
		rec, err := s.next()
		if errors.Is(err, io.EOF) {
			return nil, &HeaderError{Reason: "the file is empty: a header row naming the columns is required"}
		}
		if err != nil {
			return nil, err
		}
		if rec.Err != "" {
			return nil, &HeaderError{Reason: "the header row cannot be read: " + rec.Err}
		}
		if blankFields(rec.Fields) {
			continue
		}
		cols, mapping, err := mapHeader(rec.Fields)
		if err != nil {
			return nil, err
		}
		return &csvRows{s: s, cols: cols, columns: mapping}, nil
	}
}

func blankFields(fields []string) bool {
	for _, f := range fields {
		if strings.TrimSpace(f) != "" {
			return false
		}
	}
	return true
}

func (c *csvRows) Columns() map[string]string { return c.columns }

func (c *csvRows) Next() (Row, error) {
	rec, err := c.s.next()
	if err != nil {
		return Row{}, err
	}
	row := Row{Num: rec.Line}
	switch {
	case rec.Err != "":
		row.Malformed, row.Raw = rec.Err, cut(string(rec.Raw), 200)
		return row, nil
	case blankFields(rec.Fields):
		row.Blank = true
		return row, nil
	case len(rec.Fields) != len(c.cols):
		row.Malformed, row.Raw = fmt.Sprintf("%d fields where the header has %d", len(rec.Fields), len(c.cols)), cut(string(rec.Raw), 200)
		return row, nil
	}
	for i, f := range rec.Fields {
		f = strings.TrimSpace(f)
		col := c.cols[i]
		switch col.kind {
		case colPhone:
			row.Phone = f
		case colLocale:
			row.Locale = f
		case colTimezone:
			row.Timezone = f
		case colConsent:
			row.Consent = f
		case colTopics:
			for _, t := range strings.Split(f, ";") {
				if t = strings.TrimSpace(t); t != "" {
					row.Topics = append(row.Topics, t)
				}
			}
		case colAttr:
			if f != "" {
				if row.Attrs == nil {
					row.Attrs = make(map[string]any, len(c.cols))
				}
				row.Attrs[col.key] = f
			}
		}
	}
	return row, nil
}

// jsonRow is one row of a JSON or NDJSON file.
type jsonRow struct {
	Phone      json.RawMessage `json:"phone"`
	Attributes map[string]any  `json:"attributes"`
	Consent    string          `json:"consent"`
	Topics     []string        `json:"topics"`
	Locale     string          `json:"locale"`
	Timezone   string          `json:"timezone"`
}

// parseJSONRow reads one row object; a problem makes the row malformed, never the file.
func parseJSONRow(num int, raw []byte) Row {
	row := Row{Num: num}
	trimmed := bytes.TrimSpace(raw)
	if len(trimmed) == 0 {
		row.Blank = true
		return row
	}
	malformed := func(why string) Row {
		return Row{Num: num, Malformed: why, Raw: cut(string(trimmed), 200)}
	}
	if !utf8.Valid(trimmed) {
		return malformed("not UTF-8 text")
	}
	dec := json.NewDecoder(bytes.NewReader(trimmed))
	dec.DisallowUnknownFields()
	dec.UseNumber()
	var jr jsonRow
	if err := dec.Decode(&jr); err != nil {
		return malformed("not a row object: " + strings.TrimPrefix(err.Error(), "json: "))
	}
	if dec.More() {
		return malformed("more than one JSON value")
	}
	switch p := bytes.TrimSpace(jr.Phone); {
	case len(p) == 0 || string(p) == "null":
	case p[0] == '"':
		var s string
		if err := json.Unmarshal(p, &s); err != nil {
			return malformed("phone is not a string")
		}
		row.Phone = strings.TrimSpace(s)
	case p[0] >= '0' && p[0] <= '9':
		row.Phone = string(p)
	default:
		return malformed("phone must be a string")
	}
	for k, v := range jr.Attributes {
		if v == nil {
			continue // null means not given
		}
		if row.Attrs == nil {
			row.Attrs = make(map[string]any, len(jr.Attributes))
		}
		row.Attrs[k] = v
	}
	row.Consent, row.Locale, row.Timezone = strings.TrimSpace(jr.Consent), strings.TrimSpace(jr.Locale), strings.TrimSpace(jr.Timezone)
	for _, t := range jr.Topics {
		if t = strings.TrimSpace(t); t != "" {
			row.Topics = append(row.Topics, t)
		}
	}
	return row
}

type ndjsonRows struct {
	r    *bufio.Reader
	line int
	long []byte
}

func (n *ndjsonRows) Columns() map[string]string { return nil }

func (n *ndjsonRows) Next() (Row, error) {
	line, err := readLine(n.r, &n.long)
	if err != nil {
		return Row{}, err
	}
	n.line++
	if line == nil {
		return Row{Num: n.line, Malformed: "the line is longer than 64 KiB"}, nil
	}
	return parseJSONRow(n.line, line), nil
}

// readLine returns the next line without its line end, or nil (and skips it) when it is
// longer than MaxRecordBytes. io.EOF only when nothing is left.
func readLine(r *bufio.Reader, buf *[]byte) ([]byte, error) {
	*buf = (*buf)[:0]
	tooLong := false
	for {
		chunk, err := r.ReadSlice('\n')
		if !tooLong {
			*buf = append(*buf, chunk...)
			if len(*buf) > MaxRecordBytes {
				tooLong = true
			}
		}
		switch {
		case errors.Is(err, bufio.ErrBufferFull):
			continue
		case errors.Is(err, io.EOF):
			if len(*buf) == 0 && !tooLong {
				return nil, io.EOF
			}
		case err != nil:
			return nil, err
		}
		if tooLong {
			return nil, nil
		}
		return bytes.TrimRight(*buf, "\r\n"), nil
	}
}

type jsonRows struct {
	dec *json.Decoder
	n   int
	end bool
}

func newJSONRows(br *bufio.Reader) (*jsonRows, error) {
	dec := json.NewDecoder(br)
	tok, err := dec.Token()
	if err != nil {
		return nil, &HeaderError{Reason: "not a JSON array of rows: " + err.Error()}
	}
	if d, ok := tok.(json.Delim); !ok || d != '[' {
		return nil, &HeaderError{Reason: "a JSON file must be one array of row objects"}
	}
	return &jsonRows{dec: dec}, nil
}

func (j *jsonRows) Columns() map[string]string { return nil }

// ErrBrokenJSON ends a JSON array that is not valid JSON: the rows before it were read.
var ErrBrokenJSON = errors.New("the JSON array is broken")

func (j *jsonRows) Next() (Row, error) {
	if j.end {
		return Row{}, io.EOF
	}
	if !j.dec.More() {
		j.end = true
		if _, err := j.dec.Token(); err != nil {
			return Row{}, fmt.Errorf("%w after row %d: %v", ErrBrokenJSON, j.n, err)
		}
		return Row{}, io.EOF
	}
	var raw json.RawMessage
	if err := j.dec.Decode(&raw); err != nil {
		j.end = true
		return Row{}, fmt.Errorf("%w after row %d: %v", ErrBrokenJSON, j.n, err)
	}
	j.n++
	if len(raw) > MaxRecordBytes {
		return Row{Num: j.n, Malformed: "the row is longer than 64 KiB", Raw: cut(string(raw), 200)}, nil
	}
	return parseJSONRow(j.n, raw), nil
}
