package ingest_test

import (
	"context"
	"encoding/json"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"herald/commands/ingest"
	"herald/events"
	"herald/events/store"
)

func TestParseTriggerLine(t *testing.T) {
	t.Parallel()
	ok := `{"event_id":"e1","type":"price_drop","occurred_at":"2026-11-27T10:00:00Z","payload":{"product_id":"sku-1"},"segment":{"attr":"watchlist","op":"contains","value":{"$event":"product_id"}},"template_id":"price-drop","topic":"deals"}`
	line, issue := ingest.ParseTriggerLine([]byte(ok))
	require.Nil(t, issue)
	assert.Equal(t, "e1", line.EventID)
	assert.Equal(t, `{"attr":"watchlist","op":"contains","value":{"$event":"product_id"}}`, string(line.Segment))

	tests := []struct{ line, code, field string }{
		{`not json`, ingest.TriggerMalformed, ""},
		{`{"event_id":"e1"} {}`, ingest.TriggerMalformed, ""},
		{`{"event_id":"e1","extra":1}`, ingest.TriggerMalformed, ""},
		{`{"type":"x"}`, ingest.TriggerMissingField, "event_id"},
		{`{"event_id":"a b","type":"x"}`, ingest.TriggerInvalidField, "event_id"},
		{`{"event_id":"e1","type":"Price Drop"}`, ingest.TriggerInvalidField, "type"},
		{`{"event_id":"e1","type":"x"}`, ingest.TriggerMissingField, "occurred_at"},
		{`{"event_id":"e1","type":"x","occurred_at":"yesterday"}`, ingest.TriggerInvalidField, "occurred_at"},
		{`{"event_id":"e1","type":"x","occurred_at":"2026-11-27T10:00:00Z","payload":[1]}`, ingest.TriggerInvalidField, "payload"},
		{`{"event_id":"e1","type":"x","occurred_at":"2026-11-27T10:00:00Z"}`, ingest.TriggerMissingField, "template_id"},
		{`{"event_id":"e1","type":"x","occurred_at":"2026-11-27T10:00:00Z","template_id":"t"}`, ingest.TriggerMissingField, "topic"},
		{`{"event_id":"e1","type":"x","occurred_at":"2026-11-27T10:00:00Z","template_id":"t","topic":"Deals"}`, ingest.TriggerInvalidField, "topic"},
		{`{"event_id":"e1","type":"x","occurred_at":"2026-11-27T10:00:00Z","template_id":"t","topic":"deals","segment":{"attr":"a","op":"nope","value":1}}`, ingest.TriggerInvalidField, "segment.op"},
		{`{"event_id":"e1","type":"x","occurred_at":"2026-11-27T10:00:00Z","template_id":"t","topic":"deals","segment":{"attr":"a","op":"eq","value":{"$event":"sku"}}}`, ingest.TriggerInvalidField, "payload.sku"},
		{`{"event_id":"e1","type":"x","occurred_at":"2026-11-27T10:00:00Z","template_id":"t","topic":"deals","segment":{"attr":"a","op":"eq","value":1},"segment_id":"s"}`, ingest.TriggerInvalidField, "segment"},
	}
	for _, tt := range tests {
		_, issue := ingest.ParseTriggerLine([]byte(tt.line))
		if assert.NotNil(t, issue, tt.line) {
			assert.Equal(t, tt.code, issue.Code, tt.line)
			assert.Equal(t, tt.field, issue.Field, tt.line)
		}
	}
}

func (h *harness) appendTo(stream string, e events.Event) {
	h.t.Helper()
	rec, err := events.NewRecord([16]byte{}, stream, e, events.Metadata{})
	require.NoError(h.t, err)
	_, err = h.store.Append(context.Background(), stream, store.AnyVersion, rec)
	require.NoError(h.t, err)
}

// TestTriggers: each line on its own; the audience is subscribed AND opted in AND the rule
// with payload values; event_id dedupes within a file and across files.
func TestTriggers(t *testing.T) {
	t.Parallel()
	h := newHarness(t, ingest.Config{})
	h.appendTo(events.TemplateStream("price-drop"), events.TemplateSaved{ID: "price-drop", Name: "p", Channel: "whatsapp", DefaultLocale: "es",
		Variants: map[string]events.TemplateVariant{"es": {Body: "Bajó {product}"}}})
	h.appendTo(events.SegmentStream("vip"), events.SegmentSaved{ID: "vip", Name: "vip", Rule: json.RawMessage(`{"attr":"tier","op":"eq","value":"vip"}`)})
	users := "phone,consent,topics,watchlist,tier\n" +
		"+51987654401,OPT_IN,deals,sku-1,vip\n" + // matches sku-1
		"+51987654402,OPT_IN,deals,sku-1 sku-2,\n" + // matches sku-1 and sku-2 (contains)
		"+51987654403,OPT_OUT,deals,sku-1,vip\n" + // opted out
		"+51987654404,OPT_IN,news,sku-1,vip\n" // not subscribed to deals
	_, err := h.im.Run(context.Background(), ingest.Spec{}, strings.NewReader(users), nil)
	require.NoError(t, err)
	h.catchUp()

	tr, err := ingest.NewTriggers(h.store, events.DefaultRegistry(), ingest.TriggersConfig{BatchSize: 2})
	require.NoError(t, err)
	line := func(id, extra string) string {
		return `{"event_id":"` + id + `","type":"price_drop","occurred_at":"2026-11-27T10:00:00Z","template_id":"price-drop","topic":"deals"` + extra + "}\n"
	}
	file := line("e1", `,"payload":{"product_id":"sku-1"},"segment":{"attr":"watchlist","op":"contains","value":{"$event":"product_id"}}`) +
		line("e2", `,"payload":{"product_id":"sku-2"},"segment":{"attr":"watchlist","op":"contains","value":{"$event":"product_id"}}`) +
		"\n" +
		line("e3", `,"segment_id":"vip"`) +
		line("e4", ``) +
		line("e1", `,"payload":{"product_id":"sku-9"}`) +
		`{"event_id":"e5","type":"price_drop","occurred_at":"2026-11-27T10:00:00Z","template_id":"nope","topic":"deals"}` + "\n" +
		line("e6", `,"segment_id":"missing"`) +
		"garbage\n"
	rep, err := tr.Process(context.Background(), strings.NewReader(file), events.Metadata{Source: "test"})
	require.NoError(t, err)
	assert.Equal(t, 8, rep.Lines)
	assert.Equal(t, 4, rep.Accepted)
	assert.Equal(t, 1, rep.Duplicates)
	assert.Equal(t, 3, rep.Rejected)
	assert.Equal(t, []ingest.TriggerAccepted{{Line: 1, EventID: "e1", Recipients: 2}, {Line: 2, EventID: "e2", Recipients: 1},
		{Line: 4, EventID: "e3", Recipients: 1}, {Line: 5, EventID: "e4", Recipients: 2}}, rep.Items)
	var codes []string
	for _, r := range rep.Rejections {
		codes = append(codes, r.Code)
	}
	assert.Equal(t, []string{ingest.TriggerUnknownTemplate, ingest.TriggerUnknownSegment, ingest.TriggerMalformed}, codes)
	assert.Equal(t, []int{7, 8, 9}, []int{rep.Rejections[0].Line, rep.Rejections[1].Line, rep.Rejections[2].Line})
	require.Len(t, rep.Duplicated, 1)
	assert.Equal(t, ingest.TriggerIssue{Line: 6, EventID: "e1", Code: ingest.TriggerDuplicate, Detail: "line 1 has the same event_id"}, rep.Duplicated[0])

	// The same events again, in another file: all duplicates, nothing appended.
	again, err := tr.Process(context.Background(), strings.NewReader(line("e2", "")+line("e4", "")), events.Metadata{Source: "test"})
	require.NoError(t, err)
	assert.Equal(t, 0, again.Accepted)
	assert.Equal(t, 2, again.Duplicates)
	var n int
	require.NoError(t, h.db.Pool.QueryRow(context.Background(), `SELECT count(*) FROM events WHERE type = $1`, events.TypeTriggerAccepted).Scan(&n))
	assert.Equal(t, 4, n)
}
