package segment

import (
	"encoding/json"
	"errors"
	"slices"
	"strconv"
	"strings"
	"time"
)

// sqlText is SQL written in this package. Only untyped constants convert to it implicitly, so
// any user-supplied string reaching the SQL text would need an explicit sqlText(…) conversion;
// writer.placeholder is the one place that has it (it writes "$" and digits), and a test checks
// that no other exists. Values and attribute keys travel only as arguments.
type sqlText string

type writer struct {
	b    strings.Builder
	args []any
	off  int
}

func (w *writer) frag(s ...sqlText) {
	for _, f := range s {
		w.b.WriteString(string(f))
	}
}

// add appends an argument and returns its placeholder number.
func (w *writer) add(v any) int {
	w.args = append(w.args, v)
	return w.off + len(w.args)
}

// placeholder writes $n.
func (w *writer) placeholder(n int) { w.frag("$", sqlText(strconv.Itoa(n))) }

// arg appends an argument and writes its placeholder.
func (w *writer) arg(v any) { w.placeholder(w.add(v)) }

// bnode is a rule node with its leaf's value resolved and checked.
type bnode struct {
	kind nodeKind
	kids []*bnode
	leaf *leaf
	val  operand
}

var errZeroRule = errors.New("segment: the zero Rule is not a rule (use Parse)")

// bind resolves every leaf's value with p, so Compile and Eval see the same values and report the
// same errors.
func bind(r Rule, p Params) (*bnode, time.Time, error) {
	if r.root == nil {
		return nil, time.Time{}, errZeroRule
	}
	var walk func(n *node) (*bnode, error)
	walk = func(n *node) (*bnode, error) {
		b := &bnode{kind: n.kind, leaf: n.leaf}
		if n.kind == kindLeaf {
			v, err := n.leaf.resolve(p)
			if err != nil {
				return nil, err
			}
			b.val = v
			return b, nil
		}
		for _, k := range n.kids {
			bk, err := walk(k)
			if err != nil {
				return nil, err
			}
			b.kids = append(b.kids, bk)
		}
		return b, nil
	}
	b, err := walk(r.root)
	return b, p.now(), err
}

// cutoff is the earliest time within_last d of now accepts, at timestamptz precision.
func cutoff(now time.Time, d time.Duration) time.Time {
	return now.Add(-d).UTC().Truncate(time.Microsecond)
}

// Compile turns a rule into a boolean SQL expression over the users table aliased u, with its
// arguments: `SELECT count(*) FROM users u WHERE <sql>`. The text is made of constant fragments
// only; every value and attribute key is an argument ($1… or from $ArgOffset+1). The expression
// is never NULL.
func Compile(r Rule, p Params) (sql string, args []any, err error) {
	b, now, err := bind(r, p)
	if err != nil {
		return "", nil, err
	}
	w := &writer{off: p.ArgOffset}
	if err := w.node(b, now); err != nil {
		return "", nil, err
	}
	return w.b.String(), w.args, nil
}

func (w *writer) node(n *bnode, now time.Time) error {
	switch n.kind {
	case kindAnd, kindOr:
		var sep sqlText = " AND "
		if n.kind == kindOr {
			sep = " OR "
		}
		w.frag("(")
		for i, k := range byWeight(n.kids) {
			if i > 0 {
				w.frag(sep)
			}
			if err := w.node(k, now); err != nil {
				return err
			}
		}
		w.frag(")")
		return nil
	case kindNot:
		w.frag("NOT ")
		return w.node(n.kids[0], now)
	}
	w.frag("(")
	defer w.frag(")")
	if n.leaf.field == nil {
		return w.attr(n.leaf, n.val)
	}
	switch n.leaf.field.typ {
	case typeText:
		w.text(n.leaf, n.val)
	case typeTopic:
		w.topic(n.leaf, n.val)
	case typeTime:
		w.time(n.leaf, n.val, now)
	}
	return nil
}

// byWeight orders the operands of an and/or for evaluation: built-in columns first, then attribute
// containment, then other attribute tests, then topics (a subquery), keeping the rule's order
// among equals. A scan evaluates an and/or left to right and stops at the first operand that
// decides it, so the cheap leaves (a column compared with a constant: tens of nanoseconds) screen
// the rows the jsonb ones (several times that) then see. The planner sorts the top-level quals of
// a scan by its own cost estimate, which is the same for most of these leaves (one operator each),
// and keeps their order among equals; this order is what it keeps.
func byWeight(kids []*bnode) []*bnode {
	out := slices.Clone(kids)
	slices.SortStableFunc(out, func(a, b *bnode) int { return weight(a) - weight(b) })
	return out
}

// weight is a node's evaluation cost class: its heaviest leaf's.
func weight(n *bnode) int {
	if n.kind != kindLeaf {
		w := 0
		for _, k := range n.kids {
			w = max(w, weight(k))
		}
		return w
	}
	l := n.leaf
	switch {
	case l.field != nil && l.field.typ == typeTopic:
		return 3
	case l.field != nil:
		return 0
	}
	switch l.op {
	case OpEq, OpNe, OpIn, OpNotIn:
		return 1
	}
	return 2
}

func (w *writer) text(l *leaf, v operand) {
	col := l.field.col
	switch l.op {
	case OpEq, OpNe, OpIn, OpNotIn:
		// eq is = ANY of one value, not =: the planner turns `column = constant` into an
		// equivalence class and puts it after every other qual of the scan, and it costs = ANY of
		// one value at half an operator, so the leaf runs first (see byWeight).
		list := v.list
		if l.op == OpEq || l.op == OpNe {
			list = []scalar{v.one}
		}
		if l.op == OpNe || l.op == OpNotIn {
			w.frag("NOT ")
		}
		w.frag(col, " = ANY (")
		w.arg(textValues(list))
		w.frag("::text[])")
	case OpStartsWith:
		w.frag("starts_with(", col, ", ")
		w.arg(v.one.s)
		w.frag("::text)")
	case OpExists:
		w.frag(col, " <> ''")
	case OpNotExists:
		w.frag(col, " = ''")
	}
}

func (w *writer) topic(l *leaf, v operand) {
	const sub sqlText = "EXISTS (SELECT 1 FROM subscriptions s WHERE s.phone = u.phone AND s.subscribed"
	switch l.op {
	case OpNe, OpNotIn, OpNotExists:
		w.frag("NOT ")
	}
	w.frag(sub)
	switch l.op {
	case OpEq, OpNe:
		w.frag(" AND s.topic = ")
		w.arg(v.one.s)
		w.frag("::text")
	case OpIn, OpNotIn:
		w.frag(" AND s.topic = ANY (")
		w.arg(textValues(v.list))
		w.frag("::text[])")
	}
	w.frag(")")
}

func (w *writer) time(l *leaf, v operand, now time.Time) {
	f := l.field
	switch l.op {
	case OpExists:
		w.frag(f.col, " IS NOT NULL")
		return
	case OpNotExists:
		w.frag(f.col, " IS NULL")
		return
	}
	if f.nullable {
		// NULL compares as unknown; the guard makes the leaf false instead, so NOT flips it.
		w.frag(f.col, " IS NOT NULL AND ")
	}
	switch l.op {
	case OpBetween:
		w.frag(f.col, " >= ")
		w.arg(v.list[0].t)
		w.frag("::timestamptz AND ", f.col, " <= ")
		w.arg(v.list[1].t)
		w.frag("::timestamptz")
	case OpWithinLast:
		w.frag(f.col, " >= ")
		w.arg(cutoff(now, v.one.d))
		w.frag("::timestamptz")
	default:
		w.frag(f.col, cmpOps[l.op])
		w.arg(v.one.t)
		w.frag("::timestamptz")
	}
}

var cmpOps = map[Op]sqlText{OpGt: " > ", OpGte: " >= ", OpLt: " < ", OpLte: " <= "}

// attr compiles a leaf over u.attributes. Equality and membership use jsonb containment (@>), which
// the GIN index (jsonb_path_ops) serves; ordering compares a jsonb number with a jsonb number and
// text with text under COLLATE "C" (bytes, as Go compares strings), guarded by jsonb_typeof so
// that a value of another type is false, never an error.
func (w *writer) attr(l *leaf, v operand) error {
	switch l.op {
	case OpEq, OpNe:
		doc, err := containment(l.attr, v.one, false)
		if err != nil {
			return err
		}
		if l.op == OpNe {
			w.frag("NOT ")
		}
		w.frag("u.attributes @> ")
		w.arg(doc)
		w.frag("::text::jsonb")
	case OpIn, OpNotIn:
		docs := make([]string, len(v.list))
		for i, s := range v.list {
			doc, err := containment(l.attr, s, false)
			if err != nil {
				return err
			}
			docs[i] = doc
		}
		if l.op == OpNotIn {
			w.frag("NOT ")
		}
		w.frag("u.attributes @> ANY (")
		w.arg(docs)
		w.frag("::text[]::jsonb[])")
	case OpContains:
		doc, err := containment(l.attr, v.one, true)
		if err != nil {
			return err
		}
		if v.one.kind == kString {
			key := w.add(l.attr)
			w.frag("coalesce(jsonb_typeof(u.attributes -> ")
			w.placeholder(key)
			w.frag("::text) = 'string' AND strpos(u.attributes ->> ")
			w.placeholder(key)
			w.frag("::text, ")
			w.arg(v.one.s)
			w.frag("::text) > 0, false) OR ")
		}
		w.frag("u.attributes @> ")
		w.arg(doc)
		w.frag("::text::jsonb")
	case OpStartsWith:
		key := w.add(l.attr)
		w.frag("coalesce(jsonb_typeof(u.attributes -> ")
		w.placeholder(key)
		w.frag("::text) = 'string' AND starts_with(u.attributes ->> ")
		w.placeholder(key)
		w.frag("::text, ")
		w.arg(v.one.s)
		w.frag("::text), false)")
	case OpExists, OpNotExists:
		if l.op == OpNotExists {
			w.frag("NOT ")
		}
		w.frag("coalesce(jsonb_typeof(u.attributes -> ")
		w.arg(l.attr)
		w.frag("::text) <> 'null', false)")
	case OpGt, OpGte, OpLt, OpLte, OpBetween:
		bounds := []scalar{v.one}
		ops := []sqlText{cmpOps[l.op]}
		if l.op == OpBetween {
			bounds, ops = v.list, []sqlText{" >= ", " <= "}
		}
		key := w.add(l.attr)
		w.frag("coalesce(jsonb_typeof(u.attributes -> ")
		w.placeholder(key)
		if bounds[0].kind == kNumber {
			w.frag("::text) = 'number'")
		} else {
			w.frag("::text) = 'string'")
		}
		for i, b := range bounds {
			if b.kind == kNumber {
				w.frag(" AND (u.attributes -> ")
				w.placeholder(key)
				w.frag("::text)", ops[i])
				w.arg(formatNumber(b.n))
				w.frag("::text::jsonb")
			} else {
				w.frag(" AND (u.attributes ->> ")
				w.placeholder(key)
				w.frag(`::text) COLLATE "C"`, ops[i])
				w.arg(b.s)
				w.frag("::text")
			}
		}
		w.frag(", false)")
	}
	return nil
}

// containment builds {"key": value} (or {"key": [value]} for array membership) as JSON text.
func containment(key string, s scalar, inArray bool) (string, error) {
	var v any
	switch s.kind {
	case kString:
		v = s.s
	case kNumber:
		v = json.Number(formatNumber(s.n))
	case kBool:
		v = s.b
	}
	if inArray {
		v = []any{v}
	}
	b, err := json.Marshal(map[string]any{key: v})
	if err != nil {
		return "", err
	}
	return string(b), nil
}

func formatNumber(f float64) string { return strconv.FormatFloat(f, 'g', -1, 64) }

func textValues(list []scalar) []string {
	out := make([]string, len(list))
	for i, s := range list {
		out[i] = s.s
	}
	return out
}
