package segment

import (
	"context"
	"fmt"
	"os"
	"slices"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"

	"herald/schema/schematest"
)

// benchRules are typical audiences: the 6-leaf rule the target is set for, and two more shapes.
var benchRules = []struct{ name, doc string }{
	{"six-leaf", `{"and":[
		{"field":"consent","op":"eq","value":"OPT_IN"},
		{"field":"country","op":"in","value":["PE","MX","CO"]},
		{"attr":"plan","op":"in","value":["pro","enterprise"]},
		{"field":"created_at","op":"within_last","value":"365d"},
		{"field":"topic","op":"eq","value":"promos"},
		{"not":{"attr":"city","op":"eq","value":"Lima"}}]}`},
	{"attr-eq", `{"and":[{"field":"consent","op":"eq","value":"OPT_IN"},{"attr":"last_product","op":"eq","value":"p42"}]}`},
	{"range-or", `{"or":[{"attr":"age","op":"between","value":[18,24]},{"attr":"tags","op":"contains","value":"vip"},
		{"field":"last_inbound_at","op":"within_last","value":"7d"}]}`},
}

// loadUsers fills users and subscriptions with n users in one INSERT … SELECT each, values
// derived from hashes of the row number (deterministic, uncorrelated): 70% opted in, seven
// countries, five plans, ten cities, a 500-product catalogue, ages 18-77, a third tagged vip,
// created over two years, 75% with an inbound message in the last 90 days; 30% subscribed to
// promos, 15% to news. The secondary indexes are dropped for the load and built after it, as a
// rebuild does, then the tables are vacuumed and analyzed.
func loadUsers(b testing.TB, pool *pgxpool.Pool, n int) {
	ctx := context.Background()
	type index struct{ name, def string }
	rows, err := pool.Query(ctx, `SELECT indexname, indexdef FROM pg_indexes
WHERE schemaname = current_schema() AND tablename IN ('users', 'subscriptions') AND indexname NOT LIKE '%_pkey'`)
	require.NoError(b, err)
	indexes, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (index, error) {
		var ix index
		return ix, r.Scan(&ix.name, &ix.def)
	})
	require.NoError(b, err)
	for _, ix := range indexes {
		_, err := pool.Exec(ctx, `DROP INDEX `+pgx.Identifier{ix.name}.Sanitize())
		require.NoError(b, err)
	}
	start := time.Now()
	_, err = pool.Exec(ctx, `
INSERT INTO users (phone, attributes, consent, locale, timezone, created_at, updated_at, version, country, last_inbound_at)
SELECT '+1' || (2000000000 + i)::text,
    jsonb_build_object(
        'city', (ARRAY['Lima','Cusco','Arequipa','Bogotá','Medellín','CDMX','Guadalajara','Buenos Aires','Córdoba','Santiago'])[1 + abs(hashint4(i + 1)) % 10],
        'plan', (ARRAY['free','free','free','pro','enterprise'])[1 + abs(hashint4(i + 2)) % 5],
        'age', 18 + abs(hashint4(i + 3)) % 60,
        'score', (abs(hashint4(i + 4)) % 1000) / 10.0,
        'tags', CASE abs(hashint4(i + 5)) % 3 WHEN 0 THEN '["vip","early"]'::jsonb WHEN 1 THEN '["early"]'::jsonb ELSE '[]'::jsonb END,
        'last_product', 'p' || abs(hashint4(i + 6)) % 500,
        'first_name', 'Name' || i),
    CASE WHEN abs(hashint4(i + 7)) % 10 < 7 THEN 'OPT_IN' ELSE 'OPT_OUT' END,
    (ARRAY['es','es-PE','es-MX','en','pt-BR'])[1 + abs(hashint4(i + 8)) % 5],
    (ARRAY['America/Lima','America/Mexico_City','America/Bogota','America/New_York'])[1 + abs(hashint4(i + 9)) % 4],
    $2::timestamptz - (abs(hashint4(i + 10)) % (730 * 86400)) * interval '1 second',
    $2::timestamptz, 1,
    (ARRAY['PE','MX','CO','AR','CL','US','BR'])[1 + abs(hashint4(i + 11)) % 7],
    CASE WHEN abs(hashint4(i + 12)) % 4 = 0 THEN NULL
         ELSE $2::timestamptz - (abs(hashint4(i + 13)) % (90 * 86400)) * interval '1 second' END
FROM generate_series(1, $1::int) AS i`, n, propNow)
	require.NoError(b, err)
	_, err = pool.Exec(ctx, `
INSERT INTO subscriptions (phone, topic, subscribed, updated_at)
SELECT '+1' || (2000000000 + i)::text, t.topic, abs(hashint4(i + t.salt)) % 100 < t.pct, $2::timestamptz
FROM generate_series(1, $1::int) AS i, (VALUES ('promos', 20, 30), ('news', 21, 15)) AS t(topic, salt, pct)
WHERE abs(hashint4(i + t.salt)) % 100 < t.pct + 5`, n, propNow) // a few unsubscribed rows too
	require.NoError(b, err)
	loaded := time.Since(start)
	start = time.Now()
	for _, ix := range indexes {
		_, err := pool.Exec(ctx, ix.def)
		require.NoError(b, err)
	}
	_, err = pool.Exec(ctx, `VACUUM ANALYZE users`)
	require.NoError(b, err)
	_, err = pool.Exec(ctx, `VACUUM ANALYZE subscriptions`)
	require.NoError(b, err)
	b.Logf("loaded %d users in %v, indexes and analyze in %v", n, loaded.Round(time.Millisecond), time.Since(start).Round(time.Millisecond))
}

// BenchmarkSegmentCount1M: count + a 100-row sample (one Preview) over 1,000,000 users with
// HERALD_BENCH_FULL=1, 100,000 otherwise. Reports p50/p95 of the preview and p50 of the count
// alone, in ms. Run with -benchtime=Nx for N previews per rule.
func BenchmarkSegmentCount1M(b *testing.B) {
	n := 100_000
	if os.Getenv("HERALD_BENCH_FULL") == "1" {
		n = 1_000_000
	}
	db := schematest.New(b)
	loadUsers(b, db.Pool, n)
	loadavg := func() string { b, _ := os.ReadFile("/proc/loadavg"); return string(b) }
	b.Logf("load average before: %s", loadavg())
	defer func() { b.Logf("load average after: %s", loadavg()) }()
	c, err := NewCounter(db.Pool, Config{SampleSize: 100})
	require.NoError(b, err)
	ctx := context.Background()
	p := Params{Now: propNow}
	for _, br := range benchRules {
		rule := mustParse(b, br.doc)
		b.Run(fmt.Sprintf("%s/users=%d", br.name, n), func(b *testing.B) {
			var previews, counts []time.Duration
			var last Preview
			for b.Loop() {
				start := time.Now()
				pv, err := c.Preview(ctx, rule, p)
				require.NoError(b, err)
				previews = append(previews, time.Since(start))
				start = time.Now()
				_, err = c.Count(ctx, rule, p)
				require.NoError(b, err)
				counts = append(counts, time.Since(start))
				last = pv
			}
			b.ReportMetric(ms(quantile(previews, 0.5)), "p50_ms")
			b.ReportMetric(ms(quantile(previews, 0.95)), "p95_ms")
			b.ReportMetric(ms(quantile(counts, 0.5)), "count_p50_ms")
			b.ReportMetric(float64(last.Count), "matched")
			b.ReportMetric(0, "ns/op")
		})
	}
	if os.Getenv("SEGMENT_BENCH_EXPLAIN") != "" {
		for _, br := range benchRules {
			sql, args, err := Compile(mustParse(b, br.doc), p)
			require.NoError(b, err)
			rows, err := db.Pool.Query(ctx, "EXPLAIN (ANALYZE, BUFFERS) SELECT count(*) FROM users u WHERE "+sql, args...)
			require.NoError(b, err)
			plan, err := pgx.CollectRows(rows, pgx.RowTo[string])
			require.NoError(b, err)
			b.Logf("%s:\n%s", br.name, joinLines(plan))
		}
	}
}

func quantile(d []time.Duration, q float64) time.Duration {
	if len(d) == 0 {
		return 0
	}
	s := slices.Clone(d)
	slices.Sort(s)
	return s[min(len(s)-1, int(q*float64(len(s))))]
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

func joinLines(lines []string) string {
	out := ""
	for _, l := range lines {
		out += l + "\n"
	}
	return out
}
