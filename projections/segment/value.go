package segment

import (
	"encoding/json"
	"fmt"
	"math"
	"reflect"
	"regexp"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"
)

// Params is what a rule is compiled or evaluated with.
type Params struct {
	// Now is the reference time of within_last; zero means time.Now(). Compile and Eval given the
	// same Now agree exactly.
	Now time.Time
	// Event is the trigger event's payload, for {"$event": "field"} values (top-level fields).
	Event map[string]any
	// ArgOffset shifts the placeholders of Compile: the first is $ArgOffset+1, so a caller can
	// put its own arguments first.
	ArgOffset int
}

func (p Params) now() time.Time {
	if p.Now.IsZero() {
		return time.Now()
	}
	return p.Now
}

type kind uint8

const (
	kString kind = iota + 1
	kNumber
	kBool
	kTime
	kDuration
)

// scalar is a checked value of a known kind.
type scalar struct {
	kind kind
	s    string
	n    float64
	b    bool
	t    time.Time     // kTime, truncated to microseconds like timestamptz
	d    time.Duration // kDuration
}

// operand is a leaf's resolved, checked value: one scalar, or a list for in, not_in, between.
type operand struct {
	one  scalar
	list []scalar
}

// resolve replaces {"$event": …} references by the event's values and checks the result.
func (l *leaf) resolve(p Params) (operand, error) {
	if l.val == nil {
		return operand{}, nil
	}
	vpath := join(l.path, "value")
	v := *l.val
	if v.hasRef() {
		var err error
		if v, err = resolveValue(v, p.Event, vpath, true); err != nil {
			return operand{}, err
		}
	}
	return l.operand(v, vpath)
}

func resolveValue(v value, event map[string]any, path string, top bool) (value, error) {
	if v.isList {
		out := value{isList: true, list: make([]value, len(v.list))}
		for i, item := range v.list {
			r, err := resolveValue(item, event, index(path, i), false)
			if err != nil {
				return value{}, err
			}
			out.list[i] = r
		}
		return out, nil
	}
	if v.ref == "" {
		return v, nil
	}
	raw, ok := event[v.ref]
	if !ok {
		return value{}, &ValidationError{Path: join(path, "$event"), Reason: fmt.Sprintf("the event has no field %s", quoteShort(v.ref)), Err: ErrEventField}
	}
	r, err := fromGo(raw, top)
	if err != nil {
		return value{}, invalid(join(path, "$event"), "event field %s: %v", quoteShort(v.ref), err)
	}
	return r, nil
}

// fromGo turns an event payload value into a value as if it had been written in the rule.
func fromGo(x any, top bool) (value, error) {
	switch x := x.(type) {
	case nil:
		return value{}, fmt.Errorf("is null")
	case string:
		return value{lit: x}, nil
	case bool:
		return value{lit: x}, nil
	case json.Number:
		return value{lit: x}, nil
	case time.Time:
		return value{lit: x.Format(time.RFC3339Nano)}, nil
	case []any:
		if !top {
			return value{}, fmt.Errorf("lists do not nest")
		}
		if len(x) > MaxListLen {
			return value{}, fmt.Errorf("the list has %d values, more than the limit of %d", len(x), MaxListLen)
		}
		out := value{isList: true, list: make([]value, len(x))}
		for i, item := range x {
			v, err := fromGo(item, false)
			if err != nil {
				return value{}, fmt.Errorf("[%d] %w", i, err)
			}
			out.list[i] = v
		}
		return out, nil
	}
	if f, ok := toFloat(x); ok {
		return value{lit: json.Number(strconv.FormatFloat(f, 'g', -1, 64))}, nil
	}
	if rv := reflect.ValueOf(x); top && (rv.Kind() == reflect.Slice || rv.Kind() == reflect.Array) {
		items := make([]any, rv.Len())
		for i := range items {
			items[i] = rv.Index(i).Interface()
		}
		return fromGo(items, true)
	}
	return value{}, fmt.Errorf("holds a %T, not a string, number, boolean or list", x)
}

// toFloat reads Go's number types (and json.Number) as a float64.
func toFloat(x any) (float64, bool) {
	switch x := x.(type) {
	case float64:
		return x, true
	case float32:
		return float64(x), true
	case int:
		return float64(x), true
	case int8:
		return float64(x), true
	case int16:
		return float64(x), true
	case int32:
		return float64(x), true
	case int64:
		return float64(x), true
	case uint:
		return float64(x), true
	case uint8:
		return float64(x), true
	case uint16:
		return float64(x), true
	case uint32:
		return float64(x), true
	case uint64:
		return float64(x), true
	case json.Number:
		f, err := strconv.ParseFloat(string(x), 64)
		return f, err == nil
	}
	return 0, false
}

// operand checks a resolved value against the leaf's field or attribute and operator.
func (l *leaf) operand(v value, path string) (operand, error) {
	switch l.op {
	case OpIn, OpNotIn, OpBetween:
		if !v.isList {
			if l.op == OpBetween {
				return operand{}, invalid(path, "between takes a list [low, high]")
			}
			return operand{}, invalid(path, "%s takes a list of values", l.op)
		}
		if l.op == OpBetween && len(v.list) != 2 {
			return operand{}, invalid(path, "between takes a list [low, high] of two values, not %d", len(v.list))
		}
		if len(v.list) == 0 {
			return operand{}, invalid(path, "%s takes at least one value", l.op)
		}
		out := operand{list: make([]scalar, len(v.list))}
		for i, item := range v.list {
			s, err := l.scalar(item, index(path, i))
			if err != nil {
				return operand{}, err
			}
			out.list[i] = s
		}
		if l.op == OpBetween {
			lo, hi := out.list[0], out.list[1]
			if lo.kind != hi.kind {
				return operand{}, invalid(path, "between takes two values of the same type")
			}
			if compare(lo, hi) > 0 {
				return operand{}, invalid(path, "the low bound is above the high bound")
			}
		}
		return out, nil
	}
	if v.isList {
		return operand{}, invalid(path, "%s takes one value, not a list", l.op)
	}
	s, err := l.scalar(v, path)
	if err != nil {
		return operand{}, err
	}
	return operand{one: s}, nil
}

// scalar checks one value of a leaf.
func (l *leaf) scalar(v value, path string) (scalar, error) {
	var s scalar
	switch x := v.lit.(type) {
	case string:
		if len(x) > MaxStringLen {
			return s, invalid(path, "the string is %d bytes, more than the limit of %d", len(x), MaxStringLen)
		}
		if !utf8.ValidString(x) {
			return s, invalid(path, "the string is not valid UTF-8")
		}
		if strings.ContainsRune(x, 0) {
			return s, invalid(path, "the string contains NUL")
		}
		s = scalar{kind: kString, s: x}
	case json.Number:
		f, err := strconv.ParseFloat(string(x), 64)
		if err != nil || math.IsInf(f, 0) || math.IsNaN(f) {
			return s, invalid(path, "the number %s is out of range", quoteShort(string(x)))
		}
		s = scalar{kind: kNumber, n: f}
	case bool:
		s = scalar{kind: kBool, b: x}
	default:
		return s, invalid(path, "unexpected value")
	}

	if l.field != nil {
		return l.fieldScalar(s, path)
	}
	switch l.op {
	case OpStartsWith:
		if s.kind != kString {
			return s, invalid(path, "starts_with takes a string")
		}
	case OpGt, OpGte, OpLt, OpLte, OpBetween:
		if s.kind == kBool {
			return s, invalid(path, "%s compares numbers or strings, not booleans", l.op)
		}
	}
	return s, nil
}

func (l *leaf) fieldScalar(s scalar, path string) (scalar, error) {
	f := l.field
	if s.kind != kString {
		if f.typ == typeTime {
			if l.op == OpWithinLast {
				return s, invalid(path, `within_last takes a duration like "7d", "24h" or "30m"`)
			}
			return s, invalid(path, "%s takes a time as an RFC 3339 string, like \"2026-01-31T00:00:00Z\" or \"2026-01-31\"", f.name)
		}
		return s, invalid(path, "%s takes a string", f.name)
	}
	switch f.typ {
	case typeTime:
		if l.op == OpWithinLast {
			d, err := parseDuration(s.s)
			if err != nil {
				return s, invalid(path, "%v", err)
			}
			return scalar{kind: kDuration, d: d}, nil
		}
		t, err := parseTime(s.s)
		if err != nil {
			return s, invalid(path, "%v", err)
		}
		return scalar{kind: kTime, t: t}, nil
	default:
		if f.check != nil {
			if reason := f.check(s.s); reason != "" {
				return s, invalid(path, "%s: %s", f.name, reason)
			}
		}
		return s, nil
	}
}

var durationRe = regexp.MustCompile(`^([0-9]{1,9})([smhdw])$`)

// parseDuration reads "30m", "24h", "7d", "2w" (also "45s"): a positive whole number of one unit,
// at most 100 years.
func parseDuration(s string) (time.Duration, error) {
	m := durationRe.FindStringSubmatch(s)
	if m == nil {
		return 0, fmt.Errorf(`expected a duration like "7d", "24h" or "30m" (a whole number and one of s, m, h, d, w), not %s`, quoteShort(s))
	}
	n, _ := strconv.ParseFloat(m[1], 64)
	unit := map[string]float64{"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}[m[2]]
	ns := n * unit * 1e9
	if n <= 0 || ns > maxDurationNs {
		return 0, fmt.Errorf("the duration must be above zero and at most 100 years")
	}
	return time.Duration(ns), nil
}

// parseTime reads an RFC 3339 time ("2026-01-31T12:00:00Z", fractions allowed) or a date
// ("2026-01-31", midnight UTC), at microsecond precision like timestamptz.
func parseTime(s string) (time.Time, error) {
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		t, err = time.Parse(time.DateOnly, s)
	}
	if err != nil {
		return time.Time{}, fmt.Errorf(`expected a time as an RFC 3339 string, like "2026-01-31T00:00:00Z" or "2026-01-31", not %s`, quoteShort(s))
	}
	if y := t.UTC().Year(); y < 1 || y > 9999 {
		return time.Time{}, fmt.Errorf("the time is outside the years 1 to 9999")
	}
	return t.UTC().Truncate(time.Microsecond), nil
}

// compare orders two scalars of the same kind: numbers numerically, strings by bytes (as
// COLLATE "C"), times as instants.
func compare(a, b scalar) int {
	switch a.kind {
	case kNumber:
		switch {
		case a.n < b.n:
			return -1
		case a.n > b.n:
			return 1
		}
		return 0
	case kString:
		return strings.Compare(a.s, b.s)
	case kTime:
		return a.t.Compare(b.t)
	}
	return 0
}
