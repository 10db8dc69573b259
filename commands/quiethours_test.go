package commands

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"herald/events"
)

func TestQuietHoursDecide(t *testing.T) {
	t.Parallel()
	overnight, probs := ParseQuietHours(events.QuietHours{Start: "21:00", End: "08:00", TimezoneFallback: "America/Lima"})
	require.Empty(t, probs)
	daytime, probs := ParseQuietHours(events.QuietHours{Start: "12:00", End: "14:00", TimezoneFallback: "UTC"})
	require.Empty(t, probs)
	utc := func(s string) time.Time { t, _ := time.Parse(time.RFC3339, s); return t }
	tests := []struct {
		name      string
		q         QuietHours
		now       string
		tz, phone string
		quiet     bool
		until     string
		local     string
		from      string
	}{
		// Lima is UTC-5 all year.
		{"evening in Lima", overnight, "2026-11-27T03:14:00Z", "America/Lima", "+51987654321", true, "2026-11-27T13:00:00Z", "22:14", "user timezone"},
		{"after midnight in Lima", overnight, "2026-11-27T07:00:00Z", "", "+51987654321", true, "2026-11-27T13:00:00Z", "02:00", "phone number"},
		{"window ends exactly at 08:00", overnight, "2026-11-27T13:00:00Z", "America/Lima", "", false, "", "08:00", "user timezone"},
		{"afternoon", overnight, "2026-11-27T20:00:00Z", "America/Lima", "", false, "", "15:00", "user timezone"},
		{"starts exactly at 21:00", overnight, "2026-11-28T02:00:00Z", "America/Lima", "", true, "2026-11-28T13:00:00Z", "21:00", "user timezone"},
		{"toll-free number has many zones: fallback", overnight, "2026-11-27T03:14:00Z", "", "+18005550199", true, "2026-11-27T13:00:00Z", "22:14", "campaign fallback"},
		{"bad user zone: phone country", overnight, "2026-11-27T03:14:00Z", "Mars/Olympus", "+51987654321", true, "2026-11-27T13:00:00Z", "22:14", "phone number"},
		{"daytime window", daytime, "2026-11-27T12:30:00Z", "UTC", "", true, "2026-11-27T14:00:00Z", "12:30", "user timezone"},
		{"before daytime window", daytime, "2026-11-27T11:59:00Z", "UTC", "", false, "", "11:59", "user timezone"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := tt.q.Decide(utc(tt.now), tt.tz, tt.phone)
			assert.Equal(t, tt.quiet, d.Quiet)
			assert.Equal(t, tt.local, d.Local)
			assert.Equal(t, tt.from, d.From)
			if tt.quiet {
				assert.Equal(t, utc(tt.until), d.Until)
				assert.Contains(t, d.Reason(tt.q), "quiet_hours, local "+tt.local)
			}
		})
	}
}

func TestParseQuietHoursProblems(t *testing.T) {
	t.Parallel()
	_, probs := ParseQuietHours(events.QuietHours{Start: "25:00", End: "8", TimezoneFallback: "Nowhere/City"})
	fields := map[string]bool{}
	for _, p := range probs {
		fields[p.Field] = true
	}
	assert.Equal(t, map[string]bool{"quiet_hours.start": true, "quiet_hours.end": true, "quiet_hours.timezone_fallback": true}, fields)
	_, probs = ParseQuietHours(events.QuietHours{Start: "09:00", End: "09:00", TimezoneFallback: "UTC"})
	require.Len(t, probs, 1)
	assert.Equal(t, "quiet_hours.end", probs[0].Field)
}
