package segment

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestParseAccepts(t *testing.T) {
	for _, doc := range []string{
		`{"attr":"city","op":"eq","value":"Lima"}`,
		`{"and":[{"field":"consent","op":"eq","value":"OPT_IN"},{"or":[{"attr":"age","op":"gte","value":18},{"not":{"attr":"vip","op":"exists"}}]}]}`,
		`{"field":"country","op":"in","value":["PE","MX"]}`,
		`{"field":"topic","op":"eq","value":"promos"}`,
		`{"field":"created_at","op":"between","value":["2026-01-01","2026-02-01T00:00:00Z"]}`,
		`{"field":"last_inbound_at","op":"within_last","value":"24h"}`,
		`{"field":"last_inbound_at","op":"not_exists"}`,
		`{"attr":"tags","op":"contains","value":"vip"}`,
		`{"attr":"score","op":"between","value":[1.5, 1e2]}`,
		`{"attr":"last_product","op":"eq","value":{"$event":"product_id"}}`,
		`{"attr":"city","op":"in","value":[{"$event":"city"},"Lima"]}`,
		`{"attr":"x","op":"eq","value":true}`,
		` {"attr":"x","op":"eq","value":"y"} ` + "\n",
	} {
		_, err := Parse([]byte(doc))
		assert.NoError(t, err, doc)
	}
}

func TestParseRejects(t *testing.T) {
	deep := strings.Repeat(`{"not":`, MaxDepth) + `{"attr":"a","op":"exists"}` + strings.Repeat(`}`, MaxDepth)
	wide := `{"or":[` + strings.TrimSuffix(strings.Repeat(`{"attr":"a","op":"exists"},`, MaxNodes), ",") + `]}`
	long := `{"attr":"a","op":"eq","value":"` + strings.Repeat("x", MaxStringLen+1) + `"}`
	list := `{"attr":"a","op":"in","value":[` + strings.TrimSuffix(strings.Repeat(`1,`, MaxListLen+1), ",") + `]}`
	for _, tc := range []struct {
		doc, path, reason string
	}{
		{`[]`, "", "expected an object"},
		{`{"attr":"a","op":"eq","value":1} {}`, "", "unexpected data after the rule"},
		{`{"attr":`, "", "not valid JSON"},
		{`{}`, "", `a leaf needs "attr"`},
		{`{"and":[]}`, "and", "at least one rule"},
		{`{"and":{}}`, "and", "expected an array of rules"},
		{`{"and":[{"attr":"a","op":"exists"}],"op":"eq"}`, "op", `unknown key next to "and"`},
		{`{"and":[{"attr":"a","op":"exists"},{"or":[{"attr":"a","op":"exists"},{"attr":"a","op":"eq","value":1,"extra":2}]}]}`, "and[1].or[1].extra", "unknown key"},
		{`{"and":[{"attr":"a","op":"exists"},{"or":[{"attr":"a","op":"nope","value":1}]}]}`, "and[1].or[0].op", `unknown operator "nope"`},
		{`{"attr":"a","field":"phone","op":"eq","value":"x"}`, "field", "either"},
		{`{"field":"name","op":"eq","value":"x"}`, "field", `unknown field "name"`},
		{`{"field":"consent","op":"gt","value":"OPT_IN"}`, "op", "field consent does not take gt; it takes eq, ne, in, not_in"},
		{`{"field":"created_at","op":"eq","value":"2026-01-01"}`, "op", "field created_at does not take eq"},
		{`{"field":"consent","op":"eq","value":"yes"}`, "value", `consent: expected "OPT_IN" or "OPT_OUT"`},
		{`{"field":"country","op":"in","value":["PE","pe"]}`, "value[1]", "ISO 3166-1 alpha-2"},
		{`{"field":"created_at","op":"gt","value":"yesterday"}`, "value", "RFC 3339"},
		{`{"field":"created_at","op":"gt","value":5}`, "value", "RFC 3339"},
		{`{"field":"created_at","op":"within_last","value":"7 days"}`, "value", `duration like "7d"`},
		{`{"field":"created_at","op":"within_last","value":"0d"}`, "value", "above zero"},
		{`{"field":"created_at","op":"between","value":["2026-02-01","2026-01-01"]}`, "value", "low bound is above the high bound"},
		{`{"attr":"a","op":"within_last","value":"7d"}`, "op", "within_last applies to the time fields"},
		{`{"attr":"a","op":"exists","value":1}`, "value", "exists takes no value"},
		{`{"attr":"a","op":"eq"}`, "value", "missing: eq takes a value"},
		{`{"attr":"a","value":1}`, "op", "missing"},
		{`{"attr":"a","op":"eq","value":null}`, "value", "null is not a value"},
		{`{"attr":"a","op":"eq","value":{"x":1}}`, "value", "objects are not values"},
		{`{"attr":"a","op":"eq","value":{"$event":"x","y":1}}`, "value", "objects are not values"},
		{`{"attr":"a","op":"eq","value":{"$event":""}}`, "value.$event", "must not be empty"},
		{`{"attr":"a","op":"eq","value":[1]}`, "value", "eq takes one value, not a list"},
		{`{"attr":"a","op":"in","value":1}`, "value", "in takes a list"},
		{`{"attr":"a","op":"in","value":[]}`, "value", "at least one value"},
		{`{"attr":"a","op":"in","value":[[1]]}`, "value[0]", "lists do not nest"},
		{`{"attr":"a","op":"between","value":[1]}`, "value", "two values, not 1"},
		{`{"attr":"a","op":"between","value":[1,"z"]}`, "value", "same type"},
		{`{"attr":"a","op":"gt","value":true}`, "value", "not booleans"},
		{`{"attr":"a","op":"starts_with","value":1}`, "value", "starts_with takes a string"},
		{`{"attr":"a","op":"eq","value":1e999}`, "value", "out of range"},
		{`{"attr":"","op":"exists"}`, "attr", "must not be empty"},
		{`{"attr":"a\u0000b","op":"exists"}`, "attr", "NUL"},
		{`{"attr":"a","op":"eq","value":"a\u0000"}`, "value", "NUL"},
		{`{"attr":"` + strings.Repeat("k", MaxKeyLen+1) + `","op":"exists"}`, "attr", "longer than 128 bytes"},
		{long, "value", "more than the limit of 1024"},
		{list, "value", "more than the limit of 1000"},
		{deep, strings.TrimSuffix(strings.Repeat("not.", MaxDepth), "."), "deeper than 32"},
		{wide, "or[999]", "more than 1000 nodes"},
		{`"` + strings.Repeat("x", MaxRuleBytes) + `"`, "", "more than the limit of 65536"},
	} {
		_, err := Parse([]byte(tc.doc))
		var ve *ValidationError
		if !assert.ErrorAs(t, err, &ve, short(tc.doc)) {
			continue
		}
		assert.Equal(t, tc.path, ve.Path, short(tc.doc))
		assert.Contains(t, ve.Reason, tc.reason, short(tc.doc))
		assert.True(t, strings.HasPrefix(err.Error(), "segment rule: "), err.Error())
	}
}

func short(s string) string {
	if len(s) > 120 {
		return s[:120] + "…"
	}
	return s
}

func TestEventValues(t *testing.T) {
	rule, err := Parse([]byte(`{"and":[{"attr":"p","op":"eq","value":{"$event":"product_id"}},
		{"field":"created_at","op":"gt","value":{"$event":"since"}},{"attr":"c","op":"in","value":{"$event":"cities"}}]}`))
	require.NoError(t, err)
	assert.Equal(t, []string{"cities", "product_id", "since"}, rule.EventFields())

	u := User{CreatedAt: time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC), Attributes: map[string]any{"p": 42.0, "c": "Lima"}}
	ok, err := Eval(rule, u, Params{Event: map[string]any{"product_id": 42, "since": "2026-01-01", "cities": []string{"Lima", "Cusco"}}})
	require.NoError(t, err)
	assert.True(t, ok)

	for _, tc := range []struct {
		event  map[string]any
		path   string
		reason string
	}{
		{map[string]any{"since": "2026-01-01", "cities": []any{"x"}}, "and[0].value.$event", `the event has no field "product_id"`},
		{map[string]any{"product_id": 1, "since": 3, "cities": []any{"x"}}, "and[1].value", "RFC 3339"},
		{map[string]any{"product_id": map[string]any{}, "since": "2026-01-01", "cities": []any{"x"}}, "and[0].value.$event", "not a string, number, boolean or list"},
		{map[string]any{"product_id": nil, "since": "2026-01-01", "cities": []any{"x"}}, "and[0].value.$event", "is null"},
		{map[string]any{"product_id": 1, "since": "2026-01-01", "cities": "Lima"}, "and[2].value", "in takes a list"},
		{map[string]any{"product_id": 1, "since": "2026-01-01", "cities": []any{}}, "and[2].value", "at least one value"},
	} {
		_, _, cerr := Compile(rule, Params{Event: tc.event})
		_, eerr := Eval(rule, u, Params{Event: tc.event})
		for _, err := range []error{cerr, eerr} {
			var ve *ValidationError
			require.ErrorAs(t, err, &ve)
			assert.Equal(t, tc.path, ve.Path)
			assert.Contains(t, ve.Reason, tc.reason)
		}
	}
	_, _, err = Compile(rule, Params{})
	assert.True(t, errors.Is(err, ErrEventField))

	_, _, err = Compile(Rule{}, Params{})
	assert.Error(t, err)
	_, err = Eval(Rule{}, User{}, Params{})
	assert.Error(t, err)
}
