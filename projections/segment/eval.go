package segment

import (
	"encoding/json"
	"slices"
	"strings"
	"time"
)

// User is what Eval reads: the users row and the user's subscribed topics.
type User struct {
	Phone    string
	Country  string // ISO 3166-1 alpha-2 region of the phone, "" when unknown
	Consent  string // OPT_IN or OPT_OUT
	Locale   string
	Timezone string
	// Topics are the topics the user is subscribed to (subscriptions rows with subscribed).
	Topics    []string
	CreatedAt time.Time
	// LastInboundAt is zero until the first inbound message (NULL in users).
	LastInboundAt time.Time
	// Attributes as stored (users.attributes): values as encoding/json decodes them; other Go
	// types are read as their JSON encoding.
	Attributes map[string]any
}

// Eval reports whether the user matches the rule. It agrees with Compile's SQL given the same
// Params (Now included) for every user; it fails exactly when Compile would.
func Eval(r Rule, u User, p Params) (bool, error) {
	b, now, err := bind(r, p)
	if err != nil {
		return false, err
	}
	return b.eval(&u, now), nil
}

func (n *bnode) eval(u *User, now time.Time) bool {
	switch n.kind {
	case kindAnd:
		for _, k := range n.kids {
			if !k.eval(u, now) {
				return false
			}
		}
		return true
	case kindOr:
		for _, k := range n.kids {
			if k.eval(u, now) {
				return true
			}
		}
		return false
	case kindNot:
		return !n.kids[0].eval(u, now)
	}
	l, v := n.leaf, n.val
	if l.field == nil {
		return evalAttr(l.op, jsonOf(u.Attributes, l.attr), v)
	}
	switch l.field.typ {
	case typeTopic:
		return evalTopic(l.op, u.Topics, v)
	case typeTime:
		var t time.Time
		if l.field.name == "created_at" {
			t = u.CreatedAt
		} else {
			t = u.LastInboundAt
		}
		return evalTime(l.op, t, v, now)
	}
	var s string
	switch l.field.name {
	case "phone":
		s = u.Phone
	case "country":
		s = u.Country
	case "consent":
		s = u.Consent
	case "locale":
		s = u.Locale
	case "timezone":
		s = u.Timezone
	}
	return evalText(l.op, s, v)
}

func evalText(op Op, s string, v operand) bool {
	switch op {
	case OpEq:
		return s == v.one.s
	case OpNe:
		return s != v.one.s
	case OpIn:
		return slices.ContainsFunc(v.list, func(x scalar) bool { return x.s == s })
	case OpNotIn:
		return !slices.ContainsFunc(v.list, func(x scalar) bool { return x.s == s })
	case OpStartsWith:
		return strings.HasPrefix(s, v.one.s)
	case OpExists:
		return s != ""
	case OpNotExists:
		return s == ""
	}
	return false
}

func evalTopic(op Op, topics []string, v operand) bool {
	switch op {
	case OpEq:
		return slices.Contains(topics, v.one.s)
	case OpNe:
		return !slices.Contains(topics, v.one.s)
	case OpIn:
		return slices.ContainsFunc(v.list, func(x scalar) bool { return slices.Contains(topics, x.s) })
	case OpNotIn:
		return !slices.ContainsFunc(v.list, func(x scalar) bool { return slices.Contains(topics, x.s) })
	case OpExists:
		return len(topics) > 0
	case OpNotExists:
		return len(topics) == 0
	}
	return false
}

// evalTime compares at timestamptz precision; a zero t is NULL: every comparison is false.
func evalTime(op Op, t time.Time, v operand, now time.Time) bool {
	switch op {
	case OpExists:
		return !t.IsZero()
	case OpNotExists:
		return t.IsZero()
	}
	if t.IsZero() {
		return false
	}
	t = t.UTC().Truncate(time.Microsecond)
	switch op {
	case OpGt:
		return t.After(v.one.t)
	case OpGte:
		return !t.Before(v.one.t)
	case OpLt:
		return t.Before(v.one.t)
	case OpLte:
		return !t.After(v.one.t)
	case OpBetween:
		return !t.Before(v.list[0].t) && !t.After(v.list[1].t)
	case OpWithinLast:
		return !t.Before(cutoff(now, v.one.d))
	}
	return false
}

type jkind uint8

const (
	jMissing jkind = iota
	jNull
	jString
	jNumber
	jBool
	jArray
	jObject
)

// jval is an attribute value classified as jsonb sees it.
type jval struct {
	kind jkind
	s    string
	n    float64
	b    bool
	arr  []any
}

func jsonOf(attrs map[string]any, key string) jval {
	x, ok := attrs[key]
	if !ok {
		return jval{kind: jMissing}
	}
	return classify(x, true)
}

func classify(x any, normalize bool) jval {
	switch x := x.(type) {
	case nil:
		return jval{kind: jNull}
	case string:
		return jval{kind: jString, s: x}
	case bool:
		return jval{kind: jBool, b: x}
	case []any:
		return jval{kind: jArray, arr: x}
	case map[string]any:
		return jval{kind: jObject}
	}
	if f, ok := toFloat(x); ok {
		return jval{kind: jNumber, n: f}
	}
	if normalize {
		// Any other Go value is stored as its JSON encoding; read it the same way.
		if b, err := json.Marshal(x); err == nil {
			var y any
			if json.Unmarshal(b, &y) == nil {
				return classify(y, false)
			}
		}
	}
	return jval{kind: jObject}
}

// equal is jsonb equality of an attribute value and a scalar: same type and same value (numbers
// numerically).
func (j jval) equal(s scalar) bool {
	switch s.kind {
	case kString:
		return j.kind == jString && j.s == s.s
	case kNumber:
		return j.kind == jNumber && j.n == s.n
	case kBool:
		return j.kind == jBool && j.b == s.b
	}
	return false
}

func evalAttr(op Op, j jval, v operand) bool {
	switch op {
	case OpEq:
		return j.equal(v.one)
	case OpNe:
		return !j.equal(v.one)
	case OpIn:
		return slices.ContainsFunc(v.list, j.equal)
	case OpNotIn:
		return !slices.ContainsFunc(v.list, j.equal)
	case OpExists:
		return j.kind != jMissing && j.kind != jNull
	case OpNotExists:
		return j.kind == jMissing || j.kind == jNull
	case OpContains:
		if j.kind == jString && v.one.kind == kString && strings.Contains(j.s, v.one.s) {
			return true
		}
		if j.kind == jArray {
			for _, item := range j.arr {
				if classify(item, true).equal(v.one) {
					return true
				}
			}
		}
		return false
	case OpStartsWith:
		return j.kind == jString && strings.HasPrefix(j.s, v.one.s)
	case OpGt, OpGte, OpLt, OpLte:
		c, ok := j.compare(v.one)
		if !ok {
			return false
		}
		switch op {
		case OpGt:
			return c > 0
		case OpGte:
			return c >= 0
		case OpLt:
			return c < 0
		}
		return c <= 0
	case OpBetween:
		lo, ok := j.compare(v.list[0])
		if !ok {
			return false
		}
		hi, _ := j.compare(v.list[1])
		return lo >= 0 && hi <= 0
	}
	return false
}

// compare orders an attribute value against a number or a string; ok is false when the types
// differ (the comparison is then false, whatever the operator).
func (j jval) compare(s scalar) (int, bool) {
	switch {
	case s.kind == kNumber && j.kind == jNumber:
		return compare(scalar{kind: kNumber, n: j.n}, s), true
	case s.kind == kString && j.kind == jString:
		return strings.Compare(j.s, s.s), true
	}
	return 0, false
}
