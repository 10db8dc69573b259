// Package segment is Herald's segment rule language: a JSON rule over a user's built-in fields
// (phone, country, consent, topic, locale, timezone, created_at, last_inbound_at) and free-form
// attributes, parsed and validated once (Parse), then either compiled to a parameterized SQL
// WHERE expression over `users u` (Compile) or evaluated in memory against one user (Eval).
// Both give the same answer for every user: the semantics are two-valued (a leaf is true or
// false, never unknown), so NOT and the negated operators mean exactly "not the positive one".
//
//	{"and": [
//	  {"field": "consent", "op": "eq", "value": "OPT_IN"},
//	  {"attr": "city", "op": "in", "value": ["Lima", "Cusco"]},
//	  {"not": {"field": "last_inbound_at", "op": "within_last", "value": "7d"}},
//	  {"attr": "last_product", "op": "eq", "value": {"$event": "product_id"}}
//	]}
package segment

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
	"sort"
	"strconv"
	"strings"
	"unicode/utf8"
)

// Limits on what Parse accepts. They bound the work of Parse, Compile and the database.
const (
	MaxRuleBytes  = 64 << 10 // the whole JSON document
	MaxDepth      = 32       // nesting of and/or/not; the root is depth 1
	MaxNodes      = 1000     // and, or, not and leaf nodes together
	MaxListLen    = 1000     // values in one in/not_in list
	MaxStringLen  = 1024     // bytes of one string value
	MaxKeyLen     = 128      // bytes of an attribute key or an $event field name
	maxDurationNs = 100 * 365 * 24 * 3600 * 1e9
)

// Op is a leaf operator.
type Op string

// The operators. Which fields accept which is in the fields table (fields.go); attributes accept
// all but within_last.
const (
	OpEq         Op = "eq"
	OpNe         Op = "ne"
	OpIn         Op = "in"
	OpNotIn      Op = "not_in"
	OpGt         Op = "gt"
	OpGte        Op = "gte"
	OpLt         Op = "lt"
	OpLte        Op = "lte"
	OpContains   Op = "contains"
	OpStartsWith Op = "starts_with"
	OpExists     Op = "exists"
	OpNotExists  Op = "not_exists"
	OpBetween    Op = "between"
	OpWithinLast Op = "within_last"
)

var allOps = []Op{OpEq, OpNe, OpIn, OpNotIn, OpGt, OpGte, OpLt, OpLte, OpContains, OpStartsWith,
	OpExists, OpNotExists, OpBetween, OpWithinLast}

// ValidationError says where a rule is wrong and why. Path points into the rule in the form
// `and[2].or[0].op` (empty for the root); Parse, Compile and Eval return it (the last two when a
// {"$event": …} value resolves to something the leaf cannot take). Err, when set, is a sentinel
// such as ErrEventField.
type ValidationError struct {
	Path   string
	Reason string
	Err    error
}

func (e *ValidationError) Error() string {
	if e.Path == "" {
		return "segment rule: " + e.Reason
	}
	return "segment rule: " + e.Path + ": " + e.Reason
}

func (e *ValidationError) Unwrap() error { return e.Err }

// ErrEventField is wrapped by the ValidationError for an {"$event": …} value whose field the
// event does not carry.
var ErrEventField = errors.New("event field missing")

func invalid(path, format string, a ...any) *ValidationError {
	return &ValidationError{Path: path, Reason: fmt.Sprintf(format, a...)}
}

// Rule is a parsed, validated rule. It is immutable, so one Rule may be compiled and evaluated
// from many goroutines. The zero Rule is not a rule: Compile and Eval refuse it.
type Rule struct {
	root   *node
	events []string // the $event fields referenced, sorted, distinct
}

type nodeKind uint8

const (
	kindAnd nodeKind = iota + 1
	kindOr
	kindNot
	kindLeaf
)

type node struct {
	kind nodeKind
	kids []*node // and, or: at least one; not: exactly one
	leaf *leaf
}

// leaf is one comparison. Exactly one of field and attr is set.
type leaf struct {
	path  string // of the leaf node, for errors found when values are resolved
	field *field
	attr  string
	op    Op
	val   *value // nil for exists and not_exists
}

// value is a value as written: a literal, an {"$event": …} reference, or a list of those.
type value struct {
	ref    string // the $event field, when set
	lit    any    // string, json.Number or bool
	list   []value
	isList bool
}

// IsZero reports whether r is the zero Rule (not parsed).
func (r Rule) IsZero() bool { return r.root == nil }

// EventFields lists the {"$event": …} fields the rule references, sorted: a trigger can check
// that its event carries them before saving the rule.
func (r Rule) EventFields() []string { return slices.Clone(r.events) }

// Parse decodes and validates a rule. Every error is a *ValidationError naming the place in the
// rule. Values given as {"$event": …} are checked when they are resolved (Compile, Eval).
func Parse(data []byte) (Rule, error) {
	if len(data) > MaxRuleBytes {
		return Rule{}, invalid("", "the rule is %d bytes, more than the limit of %d", len(data), MaxRuleBytes)
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	var doc any
	if err := dec.Decode(&doc); err != nil {
		return Rule{}, invalid("", "not valid JSON: %v", err)
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return Rule{}, invalid("", "unexpected data after the rule")
	}
	p := parser{refs: map[string]bool{}}
	root, err := p.node(doc, "", 1)
	if err != nil {
		return Rule{}, err
	}
	r := Rule{root: root}
	for f := range p.refs {
		r.events = append(r.events, f)
	}
	sort.Strings(r.events)
	return r, nil
}

type parser struct {
	nodes int
	refs  map[string]bool
}

func join(path, key string) string {
	if path == "" {
		return key
	}
	return path + "." + key
}

func index(path string, i int) string { return path + "[" + strconv.Itoa(i) + "]" }

// sortedKeys returns an object's keys in order, so the first error reported is deterministic.
func sortedKeys(m map[string]any) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

const nodeShapes = `a rule is {"and":[…]}, {"or":[…]}, {"not":{…}} or a leaf {"attr"|"field":…, "op":…, "value":…}`

func (p *parser) node(doc any, path string, depth int) (*node, error) {
	if depth > MaxDepth {
		return nil, invalid(path, "rules nest deeper than %d levels", MaxDepth)
	}
	p.nodes++
	if p.nodes > MaxNodes {
		return nil, invalid(path, "the rule has more than %d nodes", MaxNodes)
	}
	obj, ok := doc.(map[string]any)
	if !ok {
		return nil, invalid(path, "expected an object: %s", nodeShapes)
	}
	for _, k := range []string{"and", "or", "not"} {
		sub, ok := obj[k]
		if !ok {
			continue
		}
		for _, other := range sortedKeys(obj) {
			if other != k {
				return nil, invalid(join(path, other), "unknown key next to %q: %s", k, nodeShapes)
			}
		}
		kpath := join(path, k)
		if k == "not" {
			kid, err := p.node(sub, kpath, depth+1)
			if err != nil {
				return nil, err
			}
			return &node{kind: kindNot, kids: []*node{kid}}, nil
		}
		list, ok := sub.([]any)
		if !ok {
			return nil, invalid(kpath, "expected an array of rules")
		}
		if len(list) == 0 {
			return nil, invalid(kpath, "expected at least one rule")
		}
		n := &node{kind: kindAnd}
		if k == "or" {
			n.kind = kindOr
		}
		for i, item := range list {
			kid, err := p.node(item, index(kpath, i), depth+1)
			if err != nil {
				return nil, err
			}
			n.kids = append(n.kids, kid)
		}
		return n, nil
	}
	l, err := p.leaf(obj, path)
	if err != nil {
		return nil, err
	}
	return &node{kind: kindLeaf, leaf: l}, nil
}

func (p *parser) leaf(obj map[string]any, path string) (*leaf, error) {
	for _, k := range sortedKeys(obj) {
		switch k {
		case "attr", "field", "op", "value":
		default:
			return nil, invalid(join(path, k), "unknown key: %s", nodeShapes)
		}
	}
	l := &leaf{path: path}
	rawAttr, hasAttr := obj["attr"]
	rawField, hasField := obj["field"]
	switch {
	case hasAttr && hasField:
		return nil, invalid(join(path, "field"), `a leaf names either "attr" (a user attribute) or "field" (a built-in field), not both`)
	case hasAttr:
		key, ok := rawAttr.(string)
		if !ok {
			return nil, invalid(join(path, "attr"), "expected a string")
		}
		if err := checkKey(key); err != "" {
			return nil, invalid(join(path, "attr"), "%s", err)
		}
		l.attr = key
	case hasField:
		name, ok := rawField.(string)
		if !ok {
			return nil, invalid(join(path, "field"), "expected a string")
		}
		f, ok := fields[name]
		if !ok {
			return nil, invalid(join(path, "field"), "unknown field %s; the built-in fields are %s (use \"attr\" for user attributes)",
				quoteShort(name), strings.Join(fieldNames(), ", "))
		}
		l.field = f
	default:
		return nil, invalid(path, `a leaf needs "attr" (a user attribute) or "field" (a built-in field); %s`, nodeShapes)
	}

	rawOp, ok := obj["op"]
	if !ok {
		return nil, invalid(join(path, "op"), "missing")
	}
	op, ok := rawOp.(string)
	if !ok {
		return nil, invalid(join(path, "op"), "expected a string")
	}
	l.op = Op(op)
	if !slices.Contains(allOps, l.op) {
		return nil, invalid(join(path, "op"), "unknown operator %s", quoteShort(op))
	}
	if l.field != nil && !slices.Contains(l.field.ops, l.op) {
		return nil, invalid(join(path, "op"), "field %s does not take %s; it takes %s", l.field.name, op, opNames(l.field.ops))
	}
	if l.field == nil && l.op == OpWithinLast {
		return nil, invalid(join(path, "op"), "within_last applies to the time fields created_at and last_inbound_at, not to attributes")
	}

	rawVal, hasVal := obj["value"]
	vpath := join(path, "value")
	if l.op == OpExists || l.op == OpNotExists {
		if hasVal {
			return nil, invalid(vpath, "%s takes no value", op)
		}
		return l, nil
	}
	if !hasVal {
		return nil, invalid(vpath, "missing: %s takes a value", op)
	}
	v, err := p.value(rawVal, vpath, true)
	if err != nil {
		return nil, err
	}
	l.val = &v
	// Literal values are checked now; values holding a reference are checked once resolved.
	if !v.hasRef() {
		if _, err := l.operand(v, vpath); err != nil {
			return nil, err
		}
	}
	return l, nil
}

func (p *parser) value(doc any, path string, top bool) (value, error) {
	switch d := doc.(type) {
	case nil:
		return value{}, invalid(path, "null is not a value (use the exists or not_exists operator)")
	case string, json.Number, bool:
		return value{lit: d}, nil
	case []any:
		if !top {
			return value{}, invalid(path, "lists do not nest")
		}
		if len(d) > MaxListLen {
			return value{}, invalid(path, "the list has %d values, more than the limit of %d", len(d), MaxListLen)
		}
		v := value{isList: true, list: make([]value, 0, len(d))}
		for i, item := range d {
			iv, err := p.value(item, index(path, i), false)
			if err != nil {
				return value{}, err
			}
			v.list = append(v.list, iv)
		}
		return v, nil
	case map[string]any:
		ref, ok := d["$event"]
		if !ok || len(d) != 1 {
			return value{}, invalid(path, `objects are not values; {"$event": "field"} takes a value from the trigger event`)
		}
		name, ok := ref.(string)
		if !ok {
			return value{}, invalid(join(path, "$event"), "expected the name of an event field")
		}
		if err := checkKey(name); err != "" {
			return value{}, invalid(join(path, "$event"), "%s", err)
		}
		p.refs[name] = true
		return value{ref: name}, nil
	}
	return value{}, invalid(path, "unexpected value")
}

func (v value) hasRef() bool {
	if v.ref != "" {
		return true
	}
	for _, item := range v.list {
		if item.ref != "" {
			return true
		}
	}
	return false
}

// checkKey validates an attribute key or an event field name; it returns the reason or "".
func checkKey(k string) string {
	switch {
	case k == "":
		return "must not be empty"
	case len(k) > MaxKeyLen:
		return fmt.Sprintf("longer than %d bytes", MaxKeyLen)
	case !utf8.ValidString(k):
		return "not valid UTF-8"
	case strings.ContainsRune(k, 0):
		return "must not contain NUL"
	}
	return ""
}

// quoteShort quotes user text for an error message, cut to a readable length.
func quoteShort(s string) string {
	if len(s) > 64 {
		s = s[:64] + "…"
	}
	return strconv.Quote(s)
}

func opNames(ops []Op) string {
	s := make([]string, len(ops))
	for i, op := range ops {
		s[i] = string(op)
	}
	return strings.Join(s, ", ")
}
