package ingest

import (
	"encoding/json"
	"slices"
	"strings"
	"unicode/utf8"

	"github.com/google/uuid"

	"herald/events"
)

// encodeEvent is json.Marshal(e), byte for byte, written by hand for the event an import
// appends most — a user.created whose attributes are all strings (every CSV cell is one) —
// and by encoding/json otherwise. encoding/json spends most of an import's encoding time on
// reflection and on sorting the attribute map's keys through reflect values.
func encodeEvent(e events.Event) ([]byte, error) {
	if c, ok := e.(events.UserCreated); ok {
		if data, ok := appendUserCreated(nil, c); ok {
			return data, nil
		}
	}
	return json.Marshal(e)
}

// newRecord is events.NewRecord with encodeEvent.
func newRecord(id uuid.UUID, stream string, e events.Event, md events.Metadata) (events.Record, error) {
	data, err := encodeEvent(e)
	if err != nil {
		return events.Record{}, err
	}
	return events.Record{EventID: id, StreamID: stream, Type: e.EventType(), SchemaVersion: e.SchemaVersion(), Data: data, Metadata: md}, nil
}

// appendUserCreated appends c as encoding/json writes it (the field order and omitempty of
// events.UserCreated, keys sorted, HTML-safe escaping); ok is false when an attribute is not
// a string.
func appendUserCreated(dst []byte, c events.UserCreated) ([]byte, bool) {
	var buf [32][2]string
	attrs := buf[:0]
	size := 96 + len(c.Phone) + len(c.Locale) + len(c.Timezone) + len(c.Consent) + len(c.Source)
	for k, v := range c.Attributes {
		s, ok := v.(string)
		if !ok {
			return nil, false
		}
		attrs = append(attrs, [2]string{k, s})
		size += len(k) + len(s) + 6
	}
	slices.SortFunc(attrs, func(a, b [2]string) int { return strings.Compare(a[0], b[0]) })
	if dst == nil {
		dst = make([]byte, 0, size)
	}
	dst = append(dst, `{"phone":`...)
	dst = appendJSONString(dst, c.Phone)
	dst = append(dst, `,"attributes":`...)
	if c.Attributes == nil {
		dst = append(dst, "null"...)
	} else {
		dst = append(dst, '{')
		for i, kv := range attrs {
			if i > 0 {
				dst = append(dst, ',')
			}
			dst = appendJSONString(dst, kv[0])
			dst = append(dst, ':')
			dst = appendJSONString(dst, kv[1])
		}
		dst = append(dst, '}')
	}
	if c.Locale != "" {
		dst = append(dst, `,"locale":`...)
		dst = appendJSONString(dst, c.Locale)
	}
	if c.Timezone != "" {
		dst = append(dst, `,"timezone":`...)
		dst = appendJSONString(dst, c.Timezone)
	}
	dst = append(dst, `,"consent":`...)
	dst = appendJSONString(dst, c.Consent)
	dst = append(dst, `,"source":`...)
	dst = appendJSONString(dst, c.Source)
	return append(dst, '}'), true
}

const hexDigits = "0123456789abcdef"

// appendJSONString is encoding/json's string encoding with HTML escaping (its default): ", \
// and control characters escaped, < > & as \u003c…, invalid UTF-8 as \ufffd, U+2028 and
// U+2029 escaped.
func appendJSONString(dst []byte, s string) []byte {
	dst = append(dst, '"')
	start := 0
	for i := 0; i < len(s); {
		if b := s[i]; b < utf8.RuneSelf {
			if b >= 0x20 && b != '"' && b != '\\' && b != '<' && b != '>' && b != '&' {
				i++
				continue
			}
			dst = append(dst, s[start:i]...)
			switch b {
			case '\\', '"':
				dst = append(dst, '\\', b)
			case '\b':
				dst = append(dst, '\\', 'b')
			case '\f':
				dst = append(dst, '\\', 'f')
			case '\n':
				dst = append(dst, '\\', 'n')
			case '\r':
				dst = append(dst, '\\', 'r')
			case '\t':
				dst = append(dst, '\\', 't')
			default:
				dst = append(dst, '\\', 'u', '0', '0', hexDigits[b>>4], hexDigits[b&0xF])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			dst = append(dst, s[start:i]...)
			dst = append(dst, `\ufffd`...)
			i += size
			start = i
			continue
		}
		if r == '\u2028' || r == '\u2029' {
			dst = append(dst, s[start:i]...)
			dst = append(dst, '\\', 'u', '2', '0', '2', hexDigits[r&0xF])
			i += size
			start = i
			continue
		}
		i += size
	}
	dst = append(dst, s[start:]...)
	return append(dst, '"')
}
