package commands

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"herald/events"
)

func TestParseSchedule(t *testing.T) {
	t.Parallel()
	now := time.Date(2026, 11, 26, 23, 0, 0, 0, time.UTC)
	tests := []struct {
		name     string
		in       events.Schedule
		next     time.Time
		problems []string
	}{
		{"now", events.Schedule{Kind: "now"}, now, nil},
		{"at with offset", events.Schedule{Kind: "at", At: "2026-11-27T09:00:00-05:00"}, time.Date(2026, 11, 27, 14, 0, 0, 0, time.UTC), nil},
		{"at local to timezone", events.Schedule{Kind: "at", At: "2026-11-27T09:00:00", Timezone: "America/Lima"}, time.Date(2026, 11, 27, 14, 0, 0, 0, time.UTC), nil},
		{"at in the past", events.Schedule{Kind: "at", At: "2026-11-01T09:00:00Z"}, time.Time{}, nil},
		{"cron in Lima", events.Schedule{Kind: "cron", Cron: "0 9 * * *", Timezone: "America/Lima"}, time.Date(2026, 11, 27, 14, 0, 0, 0, time.UTC), nil},
		{"cron descriptor", events.Schedule{Kind: "cron", Cron: "@daily"}, time.Date(2026, 11, 27, 0, 0, 0, 0, time.UTC), nil},
		{"bad kind", events.Schedule{Kind: "soon"}, time.Time{}, []string{"schedule.kind"}},
		{"bad at", events.Schedule{Kind: "at", At: "tomorrow"}, time.Time{}, []string{"schedule.at"}},
		{"bad cron", events.Schedule{Kind: "cron", Cron: "61 * * * *"}, time.Time{}, []string{"schedule.cron"}},
		{"bad zone", events.Schedule{Kind: "cron", Cron: "@daily", Timezone: "Moon/Base"}, time.Time{}, []string{"schedule.timezone"}},
		{"now with cron", events.Schedule{Kind: "now", Cron: "@daily"}, time.Time{}, []string{"schedule"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, probs := ParseSchedule(tt.in)
			var fields []string
			for _, p := range probs {
				fields = append(fields, p.Field)
			}
			require.Equal(t, tt.problems, fields)
			if len(probs) == 0 {
				assert.Equal(t, tt.next, s.Next(now))
			}
		})
	}
}
