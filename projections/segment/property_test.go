package segment

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"os"
	"slices"
	"sort"
	"strconv"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"

	"herald/schema/schematest"
)

// The vocabulary random users and rules draw from, small enough that rules often match, with
// the cases where SQL and Go could disagree: mixed types under one key, JSON null, nested
// arrays, non-ASCII strings whose byte order differs from a linguistic order, SQL-looking text.
var (
	propNow     = time.Date(2026, 6, 1, 12, 0, 0, 0, time.UTC)
	propStrings = []any{"Lima", "lima", "Cusco", "Łódź", "árbol", "Zeta", "", "a b", "O'Brien", "--;", "pro",
		"pro-plus", "free", "2024-01-15T10:00:00Z", "2025-06-01", "é", "🙂", "%_", "L", "30", "1", "true", "0.1"}
	propNumbers = []any{0, 1, 18, 30, 30.5, 100, -1, 1e2, 12.25, 0.1, 0.30000000000000004, 2.5e-3}
	propKeys    = []string{"city", "plan", "age", "score", "tags", "vip", "nick", "signup", "missing", "a'b"}
	propTopics  = []string{"news", "promos", "alerts"}
	propEvent   = map[string]any{"s": "Lima", "n": 30, "b": true, "list": []any{"Lima", "Cusco", 30}, "t": "2026-01-01T00:00:00Z",
		"topics": []string{"news", "alerts"}, "d": "30d"}
)

func pick[T any](r *rand.Rand, xs []T) T { return xs[r.IntN(len(xs))] }

func propScalar(r *rand.Rand) any {
	switch r.IntN(5) {
	case 0, 1:
		return pick(r, propStrings)
	case 2, 3:
		return pick(r, propNumbers)
	}
	return r.IntN(2) == 0
}

func propAttrValue(r *rand.Rand) any {
	switch r.IntN(12) {
	case 0:
		return nil
	case 1:
		n := r.IntN(4)
		arr := make([]any, n)
		for i := range arr {
			switch r.IntN(6) {
			case 0:
				arr[i] = []any{pick(r, propStrings)}
			case 1:
				arr[i] = map[string]any{"x": 1}
			default:
				arr[i] = propScalar(r)
			}
		}
		return arr
	case 2:
		return map[string]any{"x": propScalar(r)}
	}
	return propScalar(r)
}

func propTime(r *rand.Rand) time.Time {
	// Nanoseconds included: both sides must round to microseconds the same way.
	return propNow.Add(-time.Duration(r.Int64N(int64(800 * 24 * time.Hour))))
}

func propUsers(r *rand.Rand, n int) []User {
	users := make([]User, n)
	for i := range users {
		u := User{
			Phone:      fmt.Sprintf("%s%07d", pick(r, []string{"+51", "+1415", "+44", "+5411"}), i),
			Country:    pick(r, []string{"PE", "US", "GB", "AR", ""}),
			Consent:    pick(r, []string{"OPT_IN", "OPT_OUT"}),
			Locale:     pick(r, []string{"", "es", "es-PE", "en", "en-US"}),
			Timezone:   pick(r, []string{"", "America/Lima", "Europe/London"}),
			CreatedAt:  propTime(r),
			Attributes: map[string]any{},
		}
		if r.IntN(10) < 7 {
			u.LastInboundAt = propTime(r)
		}
		for _, t := range propTopics {
			if r.IntN(3) == 0 {
				u.Topics = append(u.Topics, t)
			}
		}
		for _, k := range propKeys {
			if k != "missing" && r.IntN(3) > 0 {
				u.Attributes[k] = propAttrValue(r)
			}
		}
		users[i] = u
	}
	return users
}

func insertUsers(t testing.TB, pool *pgxpool.Pool, users []User) {
	ctx := context.Background()
	rows := make([][]any, len(users))
	var subs [][]any
	for i, u := range users {
		attrs, err := json.Marshal(u.Attributes)
		require.NoError(t, err)
		var last any
		if !u.LastInboundAt.IsZero() {
			last = u.LastInboundAt
		}
		rows[i] = []any{u.Phone, string(attrs), u.Consent, u.Locale, u.Timezone, last, u.CreatedAt, u.CreatedAt, 1, u.Country}
		for _, topic := range u.Topics {
			subs = append(subs, []any{u.Phone, topic, true, u.CreatedAt})
		}
		for _, topic := range propTopics {
			if !slices.Contains(u.Topics, topic) && i%4 == 0 {
				subs = append(subs, []any{u.Phone, topic, false, u.CreatedAt}) // unsubscribed: must not count
			}
		}
	}
	_, err := pool.CopyFrom(ctx, pgx.Identifier{"users"},
		[]string{"phone", "attributes", "consent", "locale", "timezone", "last_inbound_at", "created_at", "updated_at", "version", "country"},
		pgx.CopyFromRows(rows))
	require.NoError(t, err)
	_, err = pool.CopyFrom(ctx, pgx.Identifier{"subscriptions"}, []string{"phone", "topic", "subscribed", "updated_at"}, pgx.CopyFromRows(subs))
	require.NoError(t, err)
	_, err = pool.Exec(ctx, "ANALYZE users; ANALYZE subscriptions")
	require.NoError(t, err)
}

// propRule builds a random rule as JSON-ready data; it may be invalid (Parse decides).
func propRule(r *rand.Rand, users []User, depth int) any {
	if depth < 4 && r.IntN(10) < 4 {
		switch r.IntN(3) {
		case 0:
			return map[string]any{"not": propRule(r, users, depth+1)}
		default:
			kids := make([]any, 1+r.IntN(3))
			for i := range kids {
				kids[i] = propRule(r, users, depth+1)
			}
			return map[string]any{pick(r, []string{"and", "or"}): kids}
		}
	}
	return propLeaf(r, users)
}

func maybeRef(r *rand.Rand, v any, ref string) any {
	if r.IntN(10) == 0 {
		return map[string]any{"$event": ref}
	}
	return v
}

func propLeaf(r *rand.Rand, users []User) map[string]any {
	if r.IntN(2) == 0 {
		op := pick(r, []Op{OpEq, OpNe, OpIn, OpNotIn, OpGt, OpGte, OpLt, OpLte, OpContains, OpStartsWith, OpExists, OpNotExists, OpBetween})
		leaf := map[string]any{"attr": pick(r, propKeys), "op": string(op)}
		switch op {
		case OpExists, OpNotExists:
		case OpIn, OpNotIn:
			list := make([]any, 1+r.IntN(3))
			for i := range list {
				list[i] = propScalar(r)
			}
			leaf["value"] = maybeRef(r, list, "list")
		case OpBetween:
			if r.IntN(2) == 0 {
				a, b := pick(r, propNumbers), pick(r, propNumbers)
				leaf["value"] = []any{a, b}
			} else {
				a, b := pick(r, propStrings), pick(r, propStrings)
				leaf["value"] = []any{a, b}
			}
		case OpStartsWith:
			s := pick(r, propStrings).(string)
			if len(s) > 1 && r.IntN(2) == 0 {
				s = s[:1+r.IntN(len(s)-1)]
			}
			leaf["value"] = s
		default:
			leaf["value"] = maybeRef(r, propScalar(r), pick(r, []string{"s", "n", "b"}))
		}
		return leaf
	}
	name := pick(r, fieldNames())
	f := fields[name]
	op := pick(r, f.ops)
	leaf := map[string]any{"field": name, "op": string(op)}
	text := func() any {
		switch name {
		case "phone":
			if r.IntN(2) == 0 {
				return pick(r, []string{"+51", "+1", "+44", "+541", "+1415"})
			}
			return pick(r, users).Phone
		case "country":
			return pick(r, []string{"PE", "US", "GB", "AR", "MX"})
		case "consent":
			return pick(r, []string{"OPT_IN", "OPT_OUT"})
		case "locale":
			return pick(r, []string{"", "es", "es-PE", "en", "e"})
		case "timezone":
			return pick(r, []string{"", "America/Lima", "Europe/London", "America"})
		case "topic":
			return pick(r, append(propTopics, "sports"))
		}
		return propTime(r).Format(time.RFC3339Nano)
	}
	switch op {
	case OpExists, OpNotExists:
	case OpIn, OpNotIn:
		list := make([]any, 1+r.IntN(3))
		for i := range list {
			list[i] = text()
		}
		v := any(list)
		if name == "topic" {
			v = maybeRef(r, v, "topics")
		}
		leaf["value"] = v
	case OpBetween:
		a, b := propTime(r), propTime(r)
		if a.After(b) {
			a, b = b, a
		}
		leaf["value"] = []any{a.Format(time.RFC3339Nano), b.Format(time.DateOnly)}
	case OpWithinLast:
		leaf["value"] = maybeRef(r, pick(r, []string{"30m", "12h", "1d", "7d", "30d", "365d", "2w", "90s"}), "d")
	default:
		v := text()
		if f.typ == typeTime {
			v = maybeRef(r, v, "t")
		}
		leaf["value"] = v
	}
	return leaf
}

func matchSQL(t testing.TB, pool *pgxpool.Pool, sql string, args []any) []string {
	rows, err := pool.Query(context.Background(), "SELECT u.phone FROM users u WHERE "+sql, args...)
	require.NoError(t, err)
	phones, err := pgx.CollectRows(rows, pgx.RowTo[string])
	require.NoError(t, err, sql)
	sort.Strings(phones)
	return phones
}

func matchEval(t testing.TB, rule Rule, users []User, p Params) []string {
	phones := []string{}
	for _, u := range users {
		ok, err := Eval(rule, u, p)
		require.NoError(t, err)
		if ok {
			phones = append(phones, u.Phone)
		}
	}
	sort.Strings(phones)
	return phones
}

// TestSQLAgreesWithEval is the property that makes Eval usable in place of the SQL: for random
// users in a real users table and random rules, the users the SQL selects are exactly those Eval
// accepts. SEGMENT_PROP_RULES and SEGMENT_PROP_SEED widen or vary the run.
func TestSQLAgreesWithEval(t *testing.T) {
	seed, nRules, nUsers := uint64(20261127), 300, 500
	if s := os.Getenv("SEGMENT_PROP_SEED"); s != "" {
		seed, _ = strconv.ParseUint(s, 10, 64)
	}
	if s := os.Getenv("SEGMENT_PROP_RULES"); s != "" {
		nRules, _ = strconv.Atoi(s)
	}
	if testing.Short() {
		nRules = 50
	}
	r := rand.New(rand.NewPCG(seed, 1))
	db := schematest.New(t)
	users := propUsers(r, nUsers)
	insertUsers(t, db.Pool, users)

	// The same users as the campaign runner and triggers see them: read back from Postgres.
	loaded := make([]User, len(users))
	for i, u := range users {
		var found bool
		var err error
		loaded[i], found, err = LoadUser(context.Background(), db.Pool, u.Phone)
		require.NoError(t, err)
		require.True(t, found)
	}

	p := Params{Now: propNow, Event: propEvent}
	var tried, some, leaves int
	for checked := 0; checked < nRules; tried++ {
		require.Less(t, tried, nRules*10, "the generator makes too few valid rules")
		doc, err := json.Marshal(propRule(r, users, 1))
		require.NoError(t, err)
		rule, err := Parse(doc)
		if err != nil {
			continue
		}
		sql, args, err := Compile(rule, p)
		if err != nil {
			_, evalErr := Eval(rule, users[0], p)
			require.Error(t, evalErr, "Compile failed but Eval did not: %s", doc)
			continue
		}
		checked++
		got, want := matchSQL(t, db.Pool, sql, args), matchEval(t, rule, users, p)
		if !slices.Equal(got, want) {
			sqlOnly, evalOnly := diff(got, want), diff(want, got)
			u := users[slices.IndexFunc(users, func(u User) bool {
				return u.Phone == first(sqlOnly, evalOnly)
			})]
			require.Failf(t, "SQL and Eval disagree", "rule %s\nsql %s\nargs %v\nonly SQL: %v\nonly Eval: %v\nfirst such user: %+v",
				doc, sql, args, sqlOnly, evalOnly, u)
		}
		require.Equal(t, want, matchEval(t, rule, loaded, p), "Eval of the users read back differs: %s", doc)
		if len(got) > 0 && len(got) < len(users) {
			some++
		}
		leaves += countLeaves(rule.root)
	}
	t.Logf("seed %d: %d rules checked (%d generated), %d leaves, %d selected some but not all of %d users",
		seed, nRules, tried, leaves, some, nUsers)
	require.Greater(t, some, nRules/3, "too few rules discriminate between users")
}

func countLeaves(n *node) int {
	if n.kind == kindLeaf {
		return 1
	}
	c := 0
	for _, k := range n.kids {
		c += countLeaves(k)
	}
	return c
}

func diff(a, b []string) []string {
	var out []string
	for _, x := range a {
		if _, found := slices.BinarySearch(b, x); !found {
			out = append(out, x)
		}
	}
	return out
}

func first(a, b []string) string {
	if len(a) > 0 {
		return a[0]
	}
	return b[0]
}
