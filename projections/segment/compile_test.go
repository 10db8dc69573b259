package segment

import (
	"context"
	"encoding/json"
	"go/ast"
	goparser "go/parser"
	"go/token"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"herald/schema/schematest"
)

func mustParse(t testing.TB, doc string) Rule {
	t.Helper()
	r, err := Parse([]byte(doc))
	require.NoError(t, err, doc)
	return r
}

func TestCompile(t *testing.T) {
	now := time.Date(2026, 6, 1, 12, 0, 0, 0, time.UTC)
	for _, tc := range []struct {
		doc  string
		sql  string
		args []any
	}{
		{`{"attr":"city","op":"eq","value":"Lima"}`, `(u.attributes @> $1::text::jsonb)`, []any{`{"city":"Lima"}`}},
		{`{"attr":"n","op":"in","value":[1,"1",true]}`, `(u.attributes @> ANY ($1::text[]::jsonb[]))`, []any{[]string{`{"n":1}`, `{"n":"1"}`, `{"n":true}`}}},
		{`{"attr":"age","op":"gte","value":18}`,
			`(coalesce(jsonb_typeof(u.attributes -> $1::text) = 'number' AND (u.attributes -> $1::text) >= $2::text::jsonb, false))`,
			[]any{"age", "18"}},
		{`{"attr":"name","op":"between","value":["a","m"]}`,
			`(coalesce(jsonb_typeof(u.attributes -> $1::text) = 'string' AND (u.attributes ->> $1::text) COLLATE "C" >= $2::text AND (u.attributes ->> $1::text) COLLATE "C" <= $3::text, false))`,
			[]any{"name", "a", "m"}},
		{`{"attr":"tags","op":"contains","value":"vip"}`,
			`(coalesce(jsonb_typeof(u.attributes -> $1::text) = 'string' AND strpos(u.attributes ->> $1::text, $2::text) > 0, false) OR u.attributes @> $3::text::jsonb)`,
			[]any{"tags", "vip", `{"tags":["vip"]}`}},
		{`{"not":{"attr":"vip","op":"not_exists"}}`, `NOT (NOT coalesce(jsonb_typeof(u.attributes -> $1::text) <> 'null', false))`, []any{"vip"}},
		{`{"and":[{"field":"consent","op":"eq","value":"OPT_IN"},{"field":"country","op":"not_in","value":["PE"]}]}`,
			`((u.consent = ANY ($1::text[])) AND (NOT u.country = ANY ($2::text[])))`, []any{[]string{"OPT_IN"}, []string{"PE"}}},
		// Operands in evaluation order (byWeight): columns, containment, other attribute tests, topics.
		{`{"and":[{"field":"topic","op":"eq","value":"news"},{"attr":"age","op":"gte","value":18},{"attr":"city","op":"eq","value":"Lima"},{"field":"consent","op":"ne","value":"OPT_OUT"}]}`,
			`((NOT u.consent = ANY ($1::text[])) AND (u.attributes @> $2::text::jsonb) AND ` +
				`(coalesce(jsonb_typeof(u.attributes -> $3::text) = 'number' AND (u.attributes -> $3::text) >= $4::text::jsonb, false)) AND ` +
				`(EXISTS (SELECT 1 FROM subscriptions s WHERE s.phone = u.phone AND s.subscribed AND s.topic = $5::text)))`,
			[]any{[]string{"OPT_OUT"}, `{"city":"Lima"}`, "age", "18", "news"}},
		{`{"or":[{"or":[{"attr":"tags","op":"exists"},{"field":"topic","op":"exists"}]},{"not":{"attr":"plan","op":"eq","value":"pro"}},{"field":"created_at","op":"lt","value":"2026-01-01"}]}`,
			`((u.created_at < $1::timestamptz) OR NOT (u.attributes @> $2::text::jsonb) OR ` +
				`((coalesce(jsonb_typeof(u.attributes -> $3::text) <> 'null', false)) OR (EXISTS (SELECT 1 FROM subscriptions s WHERE s.phone = u.phone AND s.subscribed))))`,
			[]any{time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC), `{"plan":"pro"}`, "tags"}},
		{`{"or":[{"field":"topic","op":"eq","value":"news"},{"field":"topic","op":"not_exists"}]}`,
			`((EXISTS (SELECT 1 FROM subscriptions s WHERE s.phone = u.phone AND s.subscribed AND s.topic = $1::text)) OR (NOT EXISTS (SELECT 1 FROM subscriptions s WHERE s.phone = u.phone AND s.subscribed)))`,
			[]any{"news"}},
		{`{"field":"last_inbound_at","op":"within_last","value":"24h"}`,
			`(u.last_inbound_at IS NOT NULL AND u.last_inbound_at >= $1::timestamptz)`, []any{now.Add(-24 * time.Hour)}},
		{`{"field":"created_at","op":"lt","value":"2026-01-01"}`, `(u.created_at < $1::timestamptz)`, []any{time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}},
	} {
		sql, args, err := Compile(mustParse(t, tc.doc), Params{Now: now})
		require.NoError(t, err)
		assert.Equal(t, tc.sql, sql, tc.doc)
		assert.Equal(t, tc.args, args, tc.doc)
	}

	sql, args, err := Compile(mustParse(t, `{"field":"locale","op":"eq","value":"es"}`), Params{ArgOffset: 2})
	require.NoError(t, err)
	assert.Equal(t, `(u.locale = ANY ($3::text[]))`, sql)
	assert.Equal(t, []any{[]string{"es"}}, args)
}

// nasty strings: SQL and JSON-path syntax that must reach Postgres only as data.
var nasty = []string{
	`x' OR '1'='1`, `'; DROP TABLE users; --`, `1; DELETE FROM users`, `' UNION SELECT phone FROM users --`,
	`UNION ALL SELECT`, `a'->>'b`, `$.a ? (@ > 1)`, `$[*] like_regex "x"`, `") OR true --`, `/* comment */`,
	`\'; SELECT pg_sleep(10); --`, `$1; SELECT`, `{"a": 1}`, `?|`, `E'\\x41'`, `$$ body $$`,
	`%_%`, "tab\tnew\nline", `ʼ OR ʼ1ʼ=ʼ1`, `'` + strings.Repeat(`"`, 20),
	// Look-alikes of the package's own fragments: the text contains them anyway, so only the shape
	// and the database checks apply.
	`::jsonb`, `u.attributes`,
}

// nastyRules places s everywhere a rule takes a string: attribute keys, values, list items,
// bounds, prefixes, event field names and event values.
func nastyRules(s string) []string {
	q, _ := json.Marshal(s)
	v := string(q)
	return []string{
		`{"attr":` + v + `,"op":"eq","value":` + v + `}`,
		`{"attr":` + v + `,"op":"ne","value":1}`,
		`{"attr":` + v + `,"op":"in","value":[` + v + `,"x"]}`,
		`{"attr":` + v + `,"op":"not_in","value":[` + v + `]}`,
		`{"attr":` + v + `,"op":"contains","value":` + v + `}`,
		`{"attr":` + v + `,"op":"starts_with","value":` + v + `}`,
		`{"attr":` + v + `,"op":"gt","value":` + v + `}`,
		`{"attr":` + v + `,"op":"between","value":[` + v + `,` + v + `]}`,
		`{"attr":` + v + `,"op":"exists"}`,
		`{"not":{"attr":"k","op":"eq","value":{"$event":` + v + `}}}`,
		`{"field":"phone","op":"starts_with","value":` + v + `}`,
		`{"field":"locale","op":"in","value":[` + v + `]}`,
		`{"field":"timezone","op":"ne","value":` + v + `}`,
		`{"field":"topic","op":"eq","value":` + v + `}`,
		`{"field":"topic","op":"not_in","value":[{"$event":` + v + `}]}`,
	}
}

func TestNoInputInSQL(t *testing.T) {
	db := schematest.New(t)
	ctx := context.Background()
	var users []User
	for i, s := range nasty {
		users = append(users, User{Phone: "+5100000" + string(rune('0'+i/10)) + string(rune('0'+i%10)), Consent: "OPT_IN",
			Locale: s, Timezone: s, Topics: []string{s}, CreatedAt: time.Now(), Attributes: map[string]any{s: s, "k": s}})
	}
	insertUsers(t, db.Pool, users)

	for _, s := range nasty {
		event := map[string]any{s: s}
		p := Params{Event: event}
		for _, doc := range nastyRules(s) {
			rule := mustParse(t, doc)
			sql, args, err := Compile(rule, p)
			require.NoError(t, err, doc)
			if s != `::jsonb` && s != `u.attributes` {
				assert.NotContains(t, sql, s, doc)
			}
			assert.Equal(t, shapeSQL(t, rule, p), sql, "the SQL text depends on more than the rule's shape: %s", doc)
			// And Postgres takes it as data: the statement runs and selects what Eval selects.
			assert.Equal(t, matchEval(t, rule, users, p), matchSQL(t, db.Pool, sql, args), doc)
		}
	}
	var n int
	require.NoError(t, db.Pool.QueryRow(ctx, `SELECT count(*) FROM users`).Scan(&n))
	assert.Equal(t, len(nasty), n)
}

// shapeSQL compiles the rule with every attribute key and value blanked: the SQL text of a rule
// must depend only on its shape (node kinds, fields, operators, value types), never on what the
// user wrote.
func shapeSQL(t testing.TB, r Rule, p Params) string {
	b, now, err := bind(r, p)
	require.NoError(t, err)
	var blank func(n *bnode)
	blank = func(n *bnode) {
		for _, k := range n.kids {
			blank(k)
		}
		if n.leaf == nil {
			return
		}
		l := *n.leaf
		if l.attr != "" {
			l.attr = "k"
		}
		n.leaf = &l
		one := func(s scalar) scalar { return scalar{kind: s.kind} }
		n.val.one = one(n.val.one)
		for i := range n.val.list {
			n.val.list[i] = one(n.val.list[i])
		}
		n.val.list = n.val.list[:min(len(n.val.list), 2)]
	}
	blank(b)
	w := &writer{off: p.ArgOffset}
	require.NoError(t, w.node(b, now))
	return w.b.String()
}

// TestSQLTextOnlyFromConstants checks the structure that keeps input out of the SQL text: the
// package converts to sqlText explicitly only in writer.placeholder, and writes to the builder
// only in writer.frag.
func TestSQLTextOnlyFromConstants(t *testing.T) {
	files, err := filepath.Glob("*.go")
	require.NoError(t, err)
	fset := token.NewFileSet()
	var conversions, writes []string
	for _, name := range files {
		if strings.HasSuffix(name, "_test.go") {
			continue
		}
		src, err := os.ReadFile(name)
		require.NoError(t, err)
		f, err := goparser.ParseFile(fset, name, src, 0)
		require.NoError(t, err)
		for _, d := range f.Decls {
			fn, ok := d.(*ast.FuncDecl)
			if !ok {
				continue
			}
			ast.Inspect(fn, func(n ast.Node) bool {
				call, ok := n.(*ast.CallExpr)
				if !ok {
					return true
				}
				if id, ok := call.Fun.(*ast.Ident); ok && id.Name == "sqlText" {
					conversions = append(conversions, fn.Name.Name)
				}
				if sel, ok := call.Fun.(*ast.SelectorExpr); ok && strings.HasPrefix(sel.Sel.Name, "Write") {
					if inner, ok := sel.X.(*ast.SelectorExpr); ok && inner.Sel.Name == "b" {
						writes = append(writes, fn.Name.Name)
					}
				}
				return true
			})
		}
	}
	assert.Equal(t, []string{"placeholder"}, slices.Compact(conversions))
	assert.Equal(t, []string{"frag"}, slices.Compact(writes))
}
