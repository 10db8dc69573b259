package segment

import (
	"errors"
	"testing"
	"time"
)

// FuzzParse: Parse never panics; what it accepts compiles (or, with $event values, fails with a
// ValidationError exactly when Eval does); the SQL text depends only on the rule's shape, so no
// byte the user wrote reaches it.
func FuzzParse(f *testing.F) {
	for _, seed := range []string{
		`{"attr":"city","op":"eq","value":"Lima"}`,
		`{"and":[{"field":"consent","op":"eq","value":"OPT_IN"},{"or":[{"attr":"age","op":"gte","value":18},{"not":{"attr":"vip","op":"exists"}}]}]}`,
		`{"field":"created_at","op":"between","value":["2026-01-01","2026-02-01T00:00:00Z"]}`,
		`{"field":"last_inbound_at","op":"within_last","value":"7d"}`,
		`{"attr":"tags","op":"contains","value":{"$event":"tag"}}`,
		`{"attr":"x' OR 1=1 --","op":"in","value":["'; DROP TABLE users; --", 1, true]}`,
		`{"field":"topic","op":"not_in","value":[{"$event":"t"},"news"]}`,
		`{"not":{"not":{"attr":"a","op":"between","value":["a","b"]}}}`,
		`{"attr":"a","op":"eq","value":1e999}`,
		`[`,
	} {
		f.Add([]byte(seed))
	}
	now := time.Date(2026, 6, 1, 0, 0, 0, 0, time.UTC)
	user := User{Phone: "+51987654321", Country: "PE", Consent: "OPT_IN", Topics: []string{"news"}, CreatedAt: now,
		Attributes: map[string]any{"city": "Lima", "age": 30.0, "tags": []any{"a", 1.0}}}
	f.Fuzz(func(t *testing.T, data []byte) {
		rule, err := Parse(data)
		if err != nil {
			var ve *ValidationError
			if !errors.As(err, &ve) {
				t.Fatalf("Parse error is not a ValidationError: %v", err)
			}
			return
		}
		event := map[string]any{}
		for _, name := range rule.EventFields() {
			event[name] = "x"
		}
		p := Params{Now: now, Event: event}
		sql, _, cerr := Compile(rule, p)
		_, eerr := Eval(rule, user, p)
		if (cerr == nil) != (eerr == nil) {
			t.Fatalf("Compile error %v, Eval error %v", cerr, eerr)
		}
		if cerr != nil {
			var ve *ValidationError
			if len(rule.EventFields()) == 0 || !errors.As(cerr, &ve) {
				t.Fatalf("an accepted rule without $event values does not compile: %v", cerr)
			}
			return
		}
		if shape := shapeSQL(t, rule, p); shape != sql {
			t.Fatalf("the SQL depends on the rule's values:\n%s\n%s", sql, shape)
		}
	})
}
