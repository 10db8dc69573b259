package ingest

import (
	"encoding/json"
	"slices"
	"strings"

	"github.com/google/uuid"

	"herald/events"
	"herald/internal/jsonstr"
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
	dst = jsonstr.Append(dst, c.Phone, true)
	dst = append(dst, `,"attributes":`...)
	if c.Attributes == nil {
		dst = append(dst, "null"...)
	} else {
		dst = append(dst, '{')
		for i, kv := range attrs {
			if i > 0 {
				dst = append(dst, ',')
			}
			dst = jsonstr.Append(dst, kv[0], true)
			dst = append(dst, ':')
			dst = jsonstr.Append(dst, kv[1], true)
		}
		dst = append(dst, '}')
	}
	if c.Locale != "" {
		dst = append(dst, `,"locale":`...)
		dst = jsonstr.Append(dst, c.Locale, true)
	}
	if c.Timezone != "" {
		dst = append(dst, `,"timezone":`...)
		dst = jsonstr.Append(dst, c.Timezone, true)
	}
	dst = append(dst, `,"consent":`...)
	dst = jsonstr.Append(dst, c.Consent, true)
	dst = append(dst, `,"source":`...)
	dst = jsonstr.Append(dst, c.Source, true)
	return append(dst, '}'), true
}
