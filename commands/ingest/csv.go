package ingest

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"unicode/utf8"
)

// MaxRecordBytes bounds one CSV record (or JSON row). A quoted field still open past it is a
// broken quote: its row is rejected and reading resumes on the line after the row's first.
const MaxRecordBytes = 64 << 10

// csvRecord is one record of a CSV file: its fields, the line it starts on, and its raw
// bytes (for the report; valid until the scanner's next call). Err is set when the record is
// malformed (the fields are then not reliable).
type csvRecord struct {
	Fields []string
	Line   int
	Raw    []byte
	Err    string
}

// csvScanner reads RFC 4180 records leniently: a quote inside an unquoted field is a literal
// character; CRLF, LF and lone CR end records; a quoted field may hold newlines (CRLF inside
// is read as LF). A broken quote costs one row, never the rest of the file.
type csvScanner struct {
	r       *bufio.Reader
	pending []byte // bytes given back after a broken record, read before r
	delim   byte
	line    int // line of the next byte
	raw     []byte
	field   []byte
	text    []byte // the record's fields, one after another
	ends    []int  // where each field ends in text
	// lastPending says whether the last byte read came from pending (unread puts it back there)
	// or from r (unread uses r.UnreadByte).
	lastPending bool
}

func newCSVScanner(r *bufio.Reader, delim byte) *csvScanner {
	return &csvScanner{r: r, delim: delim, line: 1}
}

var errEOF = io.EOF

func (s *csvScanner) readByte() (byte, error) {
	if len(s.pending) > 0 {
		b := s.pending[0]
		s.pending = s.pending[1:]
		s.lastPending = true
		return b, nil
	}
	s.lastPending = false
	return s.r.ReadByte()
}

// unread gives back the byte readByte just returned.
func (s *csvScanner) unread(b byte) {
	if !s.lastPending && s.r.UnreadByte() == nil {
		return
	}
	s.pending = append([]byte{b}, s.pending...)
}

// next returns the next record, or io.EOF. Other errors are the reader's.
func (s *csvScanner) next() (csvRecord, error) {
	s.raw = s.raw[:0]
	s.text, s.ends = s.text[:0], s.ends[:0]
	start := s.line
	if len(s.pending) == 0 {
		if _, err := s.r.Peek(1); err != nil {
			return csvRecord{}, err
		}
	}
	for {
		end, broken, err := s.readField()
		if err != nil && !errors.Is(err, errEOF) {
			return csvRecord{}, err
		}
		if broken != "" {
			return s.brokenRecord(start, broken), nil
		}
		s.text = append(s.text, s.field...)
		s.ends = append(s.ends, len(s.text))
		if end || err != nil {
			break
		}
	}
	// One string for the record, its fields slices of it: two allocations a row, not one a field.
	text := string(s.text)
	fields := make([]string, len(s.ends))
	from := 0
	for i, end := range s.ends {
		fields[i] = text[from:end]
		from = end
	}
	rec := csvRecord{Fields: fields, Line: start, Raw: bytes.TrimRight(s.raw, "\r\n")}
	if !utf8.Valid(rec.Raw) {
		rec.Err = "not UTF-8 text (save the file as UTF-8)"
	}
	return rec, nil
}

// brokenRecord rejects the record that started on line start and gives back every byte after
// its first line, so the rows after a stray quote are read as rows.
func (s *csvScanner) brokenRecord(start int, why string) csvRecord {
	raw := s.raw
	first := raw
	if i := bytes.IndexAny(raw, "\r\n"); i >= 0 {
		first = raw[:i]
		rest := raw[i+1:]
		if raw[i] == '\r' && len(rest) > 0 && rest[0] == '\n' {
			rest = rest[1:]
		}
		s.pending = append(append([]byte(nil), rest...), s.pending...)
		s.line = start + 1
		return csvRecord{Line: start, Raw: append([]byte(nil), first...), Err: why}
	}
	// The record broke on its first line: the rest of that line belongs to it.
	out := append([]byte(nil), first...)
	for {
		b, err := s.readByte()
		if err != nil {
			break
		}
		if b == '\n' || b == '\r' {
			if b == '\r' {
				if nb, err := s.readByte(); err == nil && nb != '\n' {
					s.unread(nb)
				}
			}
			break
		}
		if len(out) < MaxRecordBytes {
			out = append(out, b)
		}
	}
	s.line = start + 1
	return csvRecord{Line: start, Raw: out, Err: why}
}

// readField reads one field into s.field. end reports the end of the record; broken, a reason
// the record cannot be read.
func (s *csvScanner) readField() (end bool, broken string, err error) {
	s.field = s.field[:0]
	b, err := s.readByte()
	if err != nil {
		return true, "", err
	}
	s.raw = append(s.raw, b)
	if b == '"' {
		return s.quoted()
	}
	for {
		switch b {
		case s.delim:
			return false, "", nil
		case '\n':
			s.line++
			return true, "", nil
		case '\r':
			s.line++
			if nb, err := s.readByte(); err == nil {
				if nb == '\n' {
					s.raw = append(s.raw, nb)
				} else {
					s.unread(nb)
				}
			}
			return true, "", nil
		}
		s.field = append(s.field, b)
		if len(s.raw) > MaxRecordBytes {
			return true, "the row is longer than 64 KiB", nil
		}
		if b, err = s.readByte(); err != nil {
			return true, "", err
		}
		s.raw = append(s.raw, b)
	}
}

func (s *csvScanner) quoted() (end bool, broken string, err error) {
	for {
		b, err := s.readByte()
		if err != nil {
			if errors.Is(err, errEOF) {
				return true, "a quoted field is never closed (a stray \")", nil
			}
			return true, "", err
		}
		s.raw = append(s.raw, b)
		if len(s.raw) > MaxRecordBytes {
			return true, "a quoted field is never closed (a stray \")", nil
		}
		switch b {
		case '"':
			nb, err := s.readByte()
			if err != nil {
				return true, "", err
			}
			s.raw = append(s.raw, nb)
			switch nb {
			case '"':
				s.field = append(s.field, '"')
			case s.delim:
				return false, "", nil
			case '\n':
				s.line++
				return true, "", nil
			case '\r':
				s.line++
				if nb2, err := s.readByte(); err == nil {
					if nb2 == '\n' {
						s.raw = append(s.raw, nb2)
					} else {
						s.unread(nb2)
					}
				}
				return true, "", nil
			default:
				return true, "text after a closing quote (a stray \")", nil
			}
		case '\r':
			nb, err := s.readByte()
			if err == nil && nb == '\n' {
				s.raw = append(s.raw, nb)
			} else if err == nil {
				s.unread(nb)
			}
			s.field = append(s.field, '\n')
			s.line++
		case '\n':
			s.field = append(s.field, '\n')
			s.line++
		default:
			s.field = append(s.field, b)
		}
	}
}

// sniffDelimiter picks , ; or tab: the one that occurs most often outside quotes in the first
// line (ties go to ,).
func sniffDelimiter(first []byte) byte {
	counts := map[byte]int{}
	inQuote := false
	for _, b := range first {
		switch {
		case b == '"':
			inQuote = !inQuote
		case b == '\n' && !inQuote:
			goto done
		case !inQuote && (b == ',' || b == ';' || b == '\t'):
			counts[b]++
		}
	}
done:
	best := byte(',')
	for _, d := range []byte{';', '\t'} {
		if counts[d] > counts[best] {
			best = d
		}
	}
	return best
}
