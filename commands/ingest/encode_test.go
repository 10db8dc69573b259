package ingest

import (
	"encoding/json"
	"math/rand/v2"
	"reflect"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"herald/events"
)

// TestEncodeEventIsJSONMarshal checks the hand-written user.created encoding against
// encoding/json on values with every kind of character JSON escapes, and the fallback.
func TestEncodeEventIsJSONMarshal(t *testing.T) {
	t.Parallel()
	// The encoder knows these fields, in this order: a new field must be added to it.
	var fields []string
	typ := reflect.TypeOf(events.UserCreated{})
	for i := range typ.NumField() {
		fields = append(fields, typ.Field(i).Name+" "+typ.Field(i).Tag.Get("json"))
	}
	require.Equal(t, []string{"Phone phone", "Attributes attributes", "Locale locale,omitempty", "Timezone timezone,omitempty",
		"Consent consent", "Source source"}, fields)

	pieces := []string{"a", "Zoë", "<b>", "&", "\"", "\\", "\n", "\r", "\t", "\b", "\f", "\x00", "\x1f", "\x7f", "\u2028", "\u2029",
		"\xff", "\xe2\x80", "日本", "😀", " ", "é", "/", "'"}
	rng := rand.New(rand.NewPCG(3, 4))
	str := func() string {
		var b strings.Builder
		for range rng.IntN(6) {
			b.WriteString(pieces[rng.IntN(len(pieces))])
		}
		return b.String()
	}
	cases := []events.Event{
		events.UserCreated{Phone: "+51987654321", Attributes: map[string]any{}, Consent: events.ConsentOptOut, Source: "import:x"},
		events.UserCreated{Phone: "+51987654321", Consent: events.ConsentOptIn},
		events.UserCreated{Phone: "+51987654321", Attributes: map[string]any{"n": json.Number("3"), "s": "x"}, Consent: events.ConsentOptIn},
		events.UserSubscribed{Phone: "+51987654321", Topic: "deals", Source: "import:x"},
	}
	for range 2000 {
		attrs := map[string]any{}
		for range rng.IntN(12) {
			attrs[str()] = str()
		}
		cases = append(cases, events.UserCreated{Phone: str(), Attributes: attrs, Locale: str(), Timezone: str(), Consent: str(), Source: str()})
	}
	for _, e := range cases {
		want, err := json.Marshal(e)
		require.NoError(t, err)
		got, err := encodeEvent(e)
		require.NoError(t, err)
		if !assert.Equal(t, string(want), string(got)) {
			return
		}
	}
}

func BenchmarkEncodeUserCreated(b *testing.B) {
	e := events.UserCreated{Phone: "+51987654321", Consent: events.ConsentOptIn, Source: "import:0b9c8f0e-6a7e-4f0e-9a55-3f1c2d4e5f60", Locale: "es-PE",
		Attributes: map[string]any{"first_name": "Name1", "last_name": "Family1", "city": "Lima", "plan": "gold", "signup_date": "2026-01-02",
			"score": "712", "segment": "s3", "referrer": "ref12", "color": "c4", "notes": "note 1, with a comma"}}
	b.Run("json.Marshal", func(b *testing.B) {
		for b.Loop() {
			_, _ = json.Marshal(e)
		}
	})
	b.Run("encodeEvent", func(b *testing.B) {
		for b.Loop() {
			_, _ = encodeEvent(e)
		}
	})
}
