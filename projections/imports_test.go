package projections

import (
	"context"
	"fmt"
	"math/rand/v2"
	"testing"

	"github.com/stretchr/testify/require"

	"herald/events"
	"herald/events/store"
)

// importWorkload records n imports (started, a few batches with issues, finished) for the
// rebuild and batch tests.
func importWorkload(t testing.TB, s *store.Store, n int, rng *rand.Rand) int {
	ctx := context.Background()
	total := 0
	add := func(stream string, e events.Event) {
		_, err := s.Append(ctx, stream, store.AnyVersion, record(t, stream, e))
		require.NoError(t, err)
		total++
	}
	for i := 0; i < n; i++ {
		id := fmt.Sprintf("00000000-0000-4000-8000-%012d", i)
		stream := events.ImportStream(id)
		add(stream, events.ImportStarted{ID: id, Kind: "users", Format: "csv", Mode: events.AttributesMerge, Region: "PE", Source: "f.csv"})
		totals := events.ImportCounts{RejectedBy: map[string]int{}, WarningsBy: map[string]int{}, Countries: map[string]int{}}
		for b := 1; b <= 1+rng.IntN(3); b++ {
			c := events.ImportCounts{RowsRead: 10, Accepted: 8, Rejected: 2, Created: 7, Merged: 1, Warnings: 1,
				RejectedBy: map[string]int{"too_short": 1, "unparseable": 1}, WarningsBy: map[string]int{"not_mobile": 1},
				Countries: map[string]int{"PE": 5, "US": 2}}
			first := (b-1)*10 + 2
			add(stream, events.ImportBatchProcessed{ID: id, Batch: b, FirstRow: first, LastRow: first + 9, Counts: c,
				Rejections: []events.ImportIssue{{Row: first, Code: "too_short", Value: "+51 9"}, {Row: first + 1, Code: "unparseable", Value: "x"}},
				Warnings:   []events.ImportIssue{{Row: first + 2, Code: "not_mobile", Value: "+44 20 7946 0958", Detail: "fixed line"}},
				Merges:     []events.ImportIssue{{Row: first + 3, Code: "merged_into", Into: first}}})
			totals.RowsRead += c.RowsRead
			totals.Accepted += c.Accepted
			totals.Rejected += c.Rejected
			totals.Created += c.Created
			totals.Merged += c.Merged
			totals.Warnings += c.Warnings
			for k, v := range c.RejectedBy {
				totals.RejectedBy[k] += v
			}
			for k, v := range c.Countries {
				totals.Countries[k] += v
			}
			totals.WarningsBy["not_mobile"]++
		}
		if i%3 != 2 { // some are still running
			add(stream, events.ImportFinished{ID: id, Status: events.ImportCompleted, Totals: totals,
				Columns: map[string]string{"Phone": "phone"}, DurationMs: int64(100 + i)})
		}
	}
	return total
}
