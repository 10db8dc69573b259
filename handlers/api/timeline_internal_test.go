package api

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestTimelineBuckets(t *testing.T) {
	const t0 = 1_800_000_000
	at := func(s int64) time.Time { return time.Unix(s, 0).UTC() }
	tests := []struct {
		name      string
		seconds   []stageSecond
		buckets   int
		end       time.Time
		width     float64
		wantAt    []time.Time
		wantQueue []int64
		wantSent  []int64
	}{
		{"one second", []stageSecond{{"queued", t0, 3}, {"sent", t0, 1}}, 60, time.Time{},
			1, []time.Time{at(t0 + 1)}, []int64{3}, []int64{1}},
		{"ten seconds in five buckets, cumulative", []stageSecond{{"queued", t0, 4}, {"sent", t0 + 3, 2}, {"sent", t0 + 9, 1}}, 5, time.Time{},
			2, []time.Time{at(t0 + 2), at(t0 + 4), at(t0 + 6), at(t0 + 8), at(t0 + 10)}, []int64{4, 4, 4, 4, 4}, []int64{0, 2, 2, 2, 3}},
		{"a span that does not divide rounds the width up", []stageSecond{{"queued", t0, 1}, {"queued", t0 + 6, 1}}, 3, time.Time{},
			3, []time.Time{at(t0 + 3), at(t0 + 6), at(t0 + 9)}, []int64{1, 1, 2}, []int64{0, 0, 0}},
		{"a running campaign reaches now", []stageSecond{{"queued", t0, 1}}, 2, at(t0 + 3),
			2, []time.Time{at(t0 + 2), at(t0 + 4)}, []int64{1, 1}, []int64{0, 0}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := timeline("c", tt.seconds, tt.buckets, tt.end)
			require.NotNil(t, got.From)
			assert.Equal(t, at(t0), *got.From)
			assert.Equal(t, tt.width, got.BucketSeconds)
			var ats []time.Time
			var queued, sent []int64
			for _, p := range got.Points {
				ats, queued, sent = append(ats, p.At), append(queued, p.Queued), append(sent, p.Sent)
			}
			assert.Equal(t, tt.wantAt, ats)
			assert.Equal(t, tt.wantQueue, queued)
			assert.Equal(t, tt.wantSent, sent)
			assert.Equal(t, got.Points[len(got.Points)-1].At, *got.To)
			assert.LessOrEqual(t, len(got.Points), tt.buckets)
		})
	}
}
