package segment

import (
	"sort"
)

type fieldType uint8

const (
	typeText  fieldType = iota + 1 // a NOT NULL text column; "" means unset
	typeTime                       // a timestamptz column
	typeTopic                      // membership in subscriptions (phone, topic) WHERE subscribed
)

// field is a built-in field: the allow-list that maps a name to a column and the operators it
// takes.
type field struct {
	name     string
	typ      fieldType
	col      sqlText // the column over users u; empty for topic
	nullable bool    // last_inbound_at: NULL until the first inbound message
	ops      []Op
	check    func(string) string // extra check of a text value: the reason, or ""
}

var (
	textOps = []Op{OpEq, OpNe, OpIn, OpNotIn, OpStartsWith, OpExists, OpNotExists}
	timeOps = []Op{OpGt, OpGte, OpLt, OpLte, OpBetween, OpWithinLast}
)

var fields = map[string]*field{
	"phone":           {name: "phone", typ: typeText, col: "u.phone", ops: []Op{OpEq, OpNe, OpIn, OpNotIn, OpStartsWith}},
	"country":         {name: "country", typ: typeText, col: "u.country", ops: []Op{OpEq, OpNe, OpIn, OpNotIn, OpExists, OpNotExists}, check: checkCountry},
	"consent":         {name: "consent", typ: typeText, col: "u.consent", ops: []Op{OpEq, OpNe, OpIn, OpNotIn}, check: checkConsent},
	"locale":          {name: "locale", typ: typeText, col: "u.locale", ops: textOps},
	"timezone":        {name: "timezone", typ: typeText, col: "u.timezone", ops: textOps},
	"topic":           {name: "topic", typ: typeTopic, ops: []Op{OpEq, OpNe, OpIn, OpNotIn, OpExists, OpNotExists}},
	"created_at":      {name: "created_at", typ: typeTime, col: "u.created_at", ops: timeOps},
	"last_inbound_at": {name: "last_inbound_at", typ: typeTime, col: "u.last_inbound_at", nullable: true, ops: append(timeOps[:len(timeOps):len(timeOps)], OpExists, OpNotExists)},
}

func fieldNames() []string {
	names := make([]string, 0, len(fields))
	for n := range fields {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

func checkCountry(s string) string {
	if len(s) == 2 && s[0] >= 'A' && s[0] <= 'Z' && s[1] >= 'A' && s[1] <= 'Z' {
		return ""
	}
	return "expected an ISO 3166-1 alpha-2 code in upper case, like \"PE\""
}

func checkConsent(s string) string {
	if s == "OPT_IN" || s == "OPT_OUT" {
		return ""
	}
	return "expected \"OPT_IN\" or \"OPT_OUT\""
}
