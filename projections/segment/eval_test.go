package segment

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"herald/schema/schematest"
)

// TestSemantics pins the documented meaning of each operator, in Go and in SQL.
func TestSemantics(t *testing.T) {
	now := time.Date(2026, 6, 1, 12, 0, 0, 0, time.UTC)
	u := User{
		Phone: "+51987654321", Country: "PE", Consent: "OPT_IN", Locale: "es-PE", Timezone: "",
		Topics: []string{"news"}, CreatedAt: now.Add(-48 * time.Hour),
		Attributes: map[string]any{
			"city": "Lima", "age": 30, "score": json.Number("12.5"), "n_str": "30", "vip": true, "nothing": nil,
			"tags": []any{"vip", 2.0, []any{"nested"}, map[string]any{"x": 1}}, "obj": map[string]any{"a": 1},
			"signup": "2025-01-15T10:00:00Z", "when": now, // a time.Time reads as its JSON string
		},
	}
	db := schematest.New(t)
	insertUsers(t, db.Pool, []User{u})
	for _, tc := range []struct {
		rule string
		want bool
	}{
		{`{"attr":"city","op":"eq","value":"Lima"}`, true},
		{`{"attr":"city","op":"eq","value":"lima"}`, false}, // case-sensitive
		{`{"attr":"age","op":"eq","value":30.0}`, true},     // numbers numerically
		{`{"attr":"age","op":"eq","value":"30"}`, false},    // types differ
		{`{"attr":"n_str","op":"eq","value":30}`, false},
		{`{"attr":"missing","op":"eq","value":"x"}`, false},
		{`{"attr":"missing","op":"ne","value":"x"}`, true}, // ne is not eq
		{`{"attr":"age","op":"ne","value":"30"}`, true},
		{`{"attr":"missing","op":"not_in","value":["x"]}`, true},
		{`{"attr":"city","op":"in","value":[1,"Lima"]}`, true},
		{`{"attr":"vip","op":"eq","value":true}`, true},
		{`{"attr":"obj","op":"eq","value":1}`, false},
		{`{"attr":"age","op":"gt","value":29.5}`, true},
		{`{"attr":"n_str","op":"gt","value":3}`, false},   // a string is not a number
		{`{"attr":"n_str","op":"gt","value":"4"}`, false}, // strings compare bytewise: "30" < "4"
		{`{"attr":"city","op":"gt","value":"L"}`, true},
		{`{"attr":"city","op":"lt","value":"a"}`, true}, // bytewise: upper case sorts first
		{`{"attr":"score","op":"between","value":[12.5,13]}`, true},
		{`{"attr":"signup","op":"between","value":["2025-01-01","2025-02-01"]}`, true},
		{`{"attr":"when","op":"starts_with","value":"2026-06-01T12:00:00"}`, true},
		{`{"attr":"city","op":"contains","value":"im"}`, true},
		{`{"attr":"tags","op":"contains","value":"vip"}`, true},
		{`{"attr":"tags","op":"contains","value":2}`, true},
		{`{"attr":"tags","op":"contains","value":"nested"}`, false}, // elements only
		{`{"attr":"tags","op":"contains","value":"vi"}`, false},     // arrays: membership, not substring
		{`{"attr":"age","op":"contains","value":3}`, false},
		{`{"attr":"city","op":"starts_with","value":"Li"}`, true},
		{`{"attr":"nothing","op":"exists"}`, false}, // JSON null is not a value
		{`{"attr":"nothing","op":"not_exists"}`, true},
		{`{"attr":"obj","op":"exists"}`, true},
		{`{"field":"country","op":"in","value":["PE","MX"]}`, true},
		{`{"field":"timezone","op":"not_exists"}`, true},
		{`{"field":"locale","op":"starts_with","value":"es"}`, true},
		{`{"field":"topic","op":"eq","value":"news"}`, true},
		{`{"field":"topic","op":"ne","value":"promos"}`, true},
		{`{"field":"topic","op":"in","value":["promos","alerts"]}`, false},
		{`{"field":"topic","op":"exists"}`, true},
		{`{"field":"created_at","op":"within_last","value":"2d"}`, true},
		{`{"field":"created_at","op":"within_last","value":"47h"}`, false},
		{`{"field":"last_inbound_at","op":"lt","value":"2030-01-01"}`, false}, // NULL: every comparison false
		{`{"not":{"field":"last_inbound_at","op":"lt","value":"2030-01-01"}}`, true},
		{`{"field":"last_inbound_at","op":"not_exists"}`, true},
		{`{"and":[{"field":"consent","op":"eq","value":"OPT_IN"},{"or":[{"attr":"missing","op":"exists"},{"attr":"vip","op":"eq","value":true}]}]}`, true},
	} {
		rule, p := mustParse(t, tc.rule), Params{Now: now}
		ok, err := Eval(rule, u, p)
		require.NoError(t, err, tc.rule)
		assert.Equal(t, tc.want, ok, tc.rule)
		sql, args, err := Compile(rule, p)
		require.NoError(t, err)
		assert.Equal(t, tc.want, len(matchSQL(t, db.Pool, sql, args)) == 1, "SQL: %s", tc.rule)
	}
}
