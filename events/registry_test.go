package events_test

import (
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"sort"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"herald/events"
)

func TestCatalogueBuildsTheDefaultRegistry(t *testing.T) {
	t.Parallel()
	r, err := events.NewRegistry(events.Catalogue())
	require.NoError(t, err)
	require.NotPanics(t, func() { events.DefaultRegistry() })

	var want []string
	for _, d := range events.Catalogue() {
		want = append(want, d.Type)
		assert.True(t, r.Known(d.Type), d.Type)
		e := d.New()
		assert.Equal(t, d.Type, e.EventType(), "constructor of %s", d.Type)
		assert.Equal(t, d.Version, e.SchemaVersion(), "schema version of %s", d.Type)
	}
	sort.Strings(want)
	assert.Equal(t, want, r.Types())
	assert.True(t, sort.StringsAreSorted(events.DefaultRegistry().Types()))
	assert.False(t, r.Known("user.nope"))
}

// widgetV1 is the old shape of a test-only event; widget is the current (v2) shape.
type widget struct {
	Name  string `json:"name"`
	Count int    `json:"count"`
}

func (widget) EventType() string  { return "test.widget" }
func (widget) SchemaVersion() int { return 2 }

// gadget is a test-only event at version 3, to prove upcasters run in order v1→v2→v3.
type gadget struct {
	Steps []string `json:"steps"`
}

func (gadget) EventType() string  { return "test.gadget" }
func (gadget) SchemaVersion() int { return 3 }

// widgetUpcastV1 renames v1's "title" to v2's "name" and defaults count to 1.
func widgetUpcastV1(data json.RawMessage) (json.RawMessage, error) {
	var v1 struct {
		Title string `json:"title"`
	}
	if err := json.Unmarshal(data, &v1); err != nil {
		return nil, err
	}
	if v1.Title == "" {
		return nil, errors.New("v1 widget without a title")
	}
	return json.Marshal(widget{Name: v1.Title, Count: 1})
}

func appendStep(step string) events.Upcaster {
	return func(data json.RawMessage) (json.RawMessage, error) {
		var g gadget
		if err := json.Unmarshal(data, &g); err != nil {
			return nil, err
		}
		g.Steps = append(g.Steps, step)
		return json.Marshal(g)
	}
}

func testDefinitions() []events.Definition {
	return []events.Definition{
		{Type: "test.widget", Version: 2, New: func() events.Event { return &widget{} },
			Upcasters: map[int]events.Upcaster{1: widgetUpcastV1}},
		{Type: "test.gadget", Version: 3, New: func() events.Event { return &gadget{} },
			Upcasters: map[int]events.Upcaster{1: appendStep("v1→v2"), 2: appendStep("v2→v3")}},
	}
}

func TestNewRegistryRejectsBadDefinitions(t *testing.T) {
	t.Parallel()
	good := events.Definition{Type: events.TypeUserCreated, Version: 1, New: func() events.Event { return &events.UserCreated{} }}
	tests := []struct {
		name    string
		defs    []events.Definition
		wantErr string
	}{
		{"duplicate type", []events.Definition{good, good}, "registered twice"},
		{"duplicate among others", append(events.Catalogue(), events.Catalogue()[2]), "registered twice"},
		{"empty type", []events.Definition{{Version: 1, New: good.New}}, "without a type"},
		{"version zero", []events.Definition{{Type: good.Type, New: good.New}}, "version must be"},
		{"no constructor", []events.Definition{{Type: good.Type, Version: 1}}, "no constructor"},
		{"constructor of another type", []events.Definition{{Type: events.TypeUserSubscribed, Version: 1, New: good.New}}, "constructor returns a user.created"},
		{"missing upcaster", []events.Definition{{Type: "test.widget", Version: 2, New: func() events.Event { return &widget{} }}}, "no upcaster from v1"},
		{"missing middle upcaster", []events.Definition{{Type: "test.gadget", Version: 3, New: func() events.Event { return &gadget{} },
			Upcasters: map[int]events.Upcaster{1: appendStep("x")}}}, "no upcaster from v2"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			r, err := events.NewRegistry(tt.defs)
			require.Error(t, err)
			assert.Nil(t, r)
			assert.Contains(t, err.Error(), tt.wantErr)
		})
	}
}

func TestDecodeErrors(t *testing.T) {
	t.Parallel()
	r := events.DefaultRegistry()
	tests := []struct {
		name        string
		eventType   string
		version     int
		data        string
		wantUnknown bool
	}{
		{"unknown type", "user.teleported", 1, `{"phone":"+1"}`, true},
		{"unknown type, empty name", "", 1, `{}`, true},
		{"malformed JSON", events.TypeUserCreated, 1, `{"phone":`, false},
		{"wrong JSON type", events.TypeUserCreated, 1, `{"phone":42}`, false},
		{"not an object", events.TypeUserSubscribed, 1, `[1,2]`, false},
		{"version zero", events.TypeUserSubscribed, 0, `{"phone":"+1","topic":"t"}`, false},
		{"version from the future", events.TypeUserSubscribed, 2, `{"phone":"+1","topic":"t"}`, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			env := events.Envelope{Type: tt.eventType, SchemaVersion: tt.version, Data: json.RawMessage(tt.data)}
			e, err := r.Decode(env)
			require.Error(t, err)
			assert.Nil(t, e)

			var de *events.DecodeError
			require.ErrorAs(t, err, &de)
			assert.Equal(t, tt.eventType, de.Type)
			assert.Equal(t, tt.version, de.SchemaVersion)
			assert.Equal(t, tt.wantUnknown, errors.Is(err, events.ErrUnknownEventType))
			assert.Contains(t, err.Error(), fmt.Sprintf("decode %s v%d", tt.eventType, tt.version))
		})
	}
}

func TestDecodeKnownEvent(t *testing.T) {
	t.Parallel()
	env := events.Envelope{
		Type:          events.TypeUserConsentChanged,
		SchemaVersion: 1,
		Data:          json.RawMessage(`{"phone":"+51987654321","consent":"OPT_OUT","source":"inbound","reason":"STOP"}`),
	}
	e, err := events.DefaultRegistry().Decode(env)
	require.NoError(t, err)
	assert.Equal(t, &events.UserConsentChanged{Phone: "+51987654321", Consent: events.ConsentOptOut, Source: "inbound", Reason: "STOP"}, e)
}

func TestUpcasters(t *testing.T) {
	t.Parallel()
	r, err := events.NewRegistry(testDefinitions())
	require.NoError(t, err)

	tests := []struct {
		name      string
		eventType string
		version   int
		data      string
		want      events.Event
		wantErr   string
	}{
		{"v1 widget is upcast", "test.widget", 1, `{"title":"lamp"}`, &widget{Name: "lamp", Count: 1}, ""},
		{"v2 widget is decoded as is", "test.widget", 2, `{"name":"lamp","count":3}`, &widget{Name: "lamp", Count: 3}, ""},
		{"upcaster failure", "test.widget", 1, `{"colour":"red"}`, nil, "upcast from v1: v1 widget without a title"},
		{"upcaster gets malformed JSON", "test.widget", 1, `{"title":`, nil, "upcast from v1"},
		{"chain runs in order from v1", "test.gadget", 1, `{"steps":[]}`, &gadget{Steps: []string{"v1→v2", "v2→v3"}}, ""},
		{"chain starts at the stored version", "test.gadget", 2, `{"steps":["old"]}`, &gadget{Steps: []string{"old", "v2→v3"}}, ""},
		{"current version needs no upcaster", "test.gadget", 3, `{"steps":["now"]}`, &gadget{Steps: []string{"now"}}, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			e, err := r.DecodeData(tt.eventType, tt.version, json.RawMessage(tt.data))
			if tt.wantErr != "" {
				var de *events.DecodeError
				require.ErrorAs(t, err, &de)
				assert.Equal(t, tt.version, de.SchemaVersion, "the error names the stored version")
				assert.Contains(t, err.Error(), tt.wantErr)
				assert.NotErrorIs(t, err, events.ErrUnknownEventType)
				return
			}
			require.NoError(t, err)
			assert.Equal(t, tt.want, e)
		})
	}
}

func TestNewRecord(t *testing.T) {
	t.Parallel()
	md := events.Metadata{CorrelationID: "c-1", CausationID: "e-0", Actor: "api", Source: "test"}
	e := events.UserSubscribed{Phone: "+1555", Topic: "news", Source: "api"}

	id := events.DeterministicID("test", "1")
	r, err := events.NewRecord(id, events.UserStream("+1555"), e, md)
	require.NoError(t, err)
	assert.Equal(t, id, r.EventID)
	assert.Equal(t, "user-+1555", r.StreamID)
	assert.Equal(t, events.TypeUserSubscribed, r.Type)
	assert.Equal(t, 1, r.SchemaVersion)
	assert.JSONEq(t, `{"phone":"+1555","topic":"news","source":"api"}`, string(r.Data))
	assert.Equal(t, md, r.Metadata)

	r1, err := events.NewRecord([16]byte{}, "s", e, md)
	require.NoError(t, err)
	r2, err := events.NewRecord([16]byte{}, "s", e, md)
	require.NoError(t, err)
	assert.NotZero(t, r1.EventID, "a zero id gets a random one")
	assert.NotEqual(t, r1.EventID, r2.EventID)

	_, err = events.NewRecord(id, "s", events.UserCreated{Attributes: map[string]any{"bad": func() {}}}, md)
	require.Error(t, err)
	assert.Contains(t, err.Error(), "encode user.created")
}

func TestDeterministicID(t *testing.T) {
	t.Parallel()
	// Fixed values: they were computed independently (Python's uuid.uuid5 with the namespace
	// and "\x1f"-joined keys). If this test fails, the namespace or the key derivation changed,
	// and every idempotency key already stored would silently stop matching. Do not "fix" the
	// expected values.
	tests := []struct {
		kind  string
		parts []string
		want  string
	}{
		{"twilio.status", []string{"SM0123456789abcdef0123456789abcdef", "delivered"}, "c104665f-1abc-555f-a6e2-1a75570c9d3a"},
		{"import.row", []string{"imp-42", "7"}, "ccb850cb-1152-58d7-855a-ca5d05a9b692"},
		{"kind", nil, "20407cc6-29a0-5b4e-a14e-fe7c0f94362f"},
	}
	for _, tt := range tests {
		got := events.DeterministicID(tt.kind, tt.parts...)
		assert.Equal(t, tt.want, got.String(), "DeterministicID(%q, %q)", tt.kind, tt.parts)
		assert.EqualValues(t, 5, got.Version())
		assert.Equal(t, got, events.DeterministicID(tt.kind, tt.parts...), "stable across calls")
	}

	ids := []string{
		events.DeterministicID("import.row", "imp-42", "7").String(),
		events.DeterministicID("import.row", "imp-42", "8").String(),
		events.DeterministicID("import.row", "7", "imp-42").String(),
		events.DeterministicID("import.rows", "imp-42", "7").String(),
		events.DeterministicID("import.row", "imp-427").String(),
		events.DeterministicID("import.row", "imp-4", "27").String(),
	}
	slices.Sort(ids)
	assert.Len(t, slices.Compact(ids), 6, "every part and its place count")
}

func TestStreamNames(t *testing.T) {
	t.Parallel()
	assert.Equal(t, "user-+51987654321", events.UserStream("+51987654321"))
}
