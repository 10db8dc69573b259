package commands

import (
	"fmt"
	"time"

	"github.com/nyaruka/phonenumbers"

	"herald/events"
)

// QuietHours is a campaign's daily no-send window in the recipient's local time. Start and End
// are minutes after midnight; a window with Start > End crosses midnight (21:00–08:00).
type QuietHours struct {
	Start, End int
	Fallback   *time.Location
	raw        events.QuietHours
}

// ParseQuietHours validates a campaign's quiet hours. Problems name the field.
func ParseQuietHours(q events.QuietHours) (QuietHours, []FieldProblem) {
	var probs []FieldProblem
	start, err := parseClock(q.Start)
	if err != nil {
		probs = append(probs, FieldProblem{"quiet_hours.start", err.Error()})
	}
	end, err := parseClock(q.End)
	if err != nil {
		probs = append(probs, FieldProblem{"quiet_hours.end", err.Error()})
	}
	if err == nil && start == end && q.Start != "" {
		probs = append(probs, FieldProblem{"quiet_hours.end", "equals start: the window would be empty"})
	}
	loc, lerr := time.LoadLocation(q.TimezoneFallback)
	if q.TimezoneFallback == "" || q.TimezoneFallback == "Local" || lerr != nil {
		probs = append(probs, FieldProblem{"quiet_hours.timezone_fallback", fmt.Sprintf("%q is not an IANA time zone like America/Lima", q.TimezoneFallback)})
	}
	return QuietHours{Start: start, End: end, Fallback: loc, raw: q}, probs
}

// FieldProblem is one invalid field of a command.
type FieldProblem struct {
	Field  string
	Reason string
}

func parseClock(s string) (int, error) {
	t, err := time.Parse("15:04", s)
	if err != nil {
		return 0, fmt.Errorf("%q is not a time like 21:00", s)
	}
	return t.Hour()*60 + t.Minute(), nil
}

// RecipientZone is the time zone a recipient's local time is read in, and where it came from:
// the user's timezone, else the phone number's zone when its prefix has a single one, else the
// fallback.
func RecipientZone(userTimezone, phone string, fallback *time.Location) (*time.Location, string) {
	if userTimezone != "" {
		if loc, err := time.LoadLocation(userTimezone); err == nil {
			return loc, "user timezone"
		}
	}
	if n, err := phonenumbers.Parse(phone, ""); err == nil {
		if zones, err := phonenumbers.GetTimezonesForNumber(n); err == nil && len(zones) == 1 {
			if loc, err := time.LoadLocation(zones[0]); err == nil {
				return loc, "phone number"
			}
		}
	}
	return fallback, "campaign fallback"
}

// QuietDecision says whether now falls in the quiet window for a recipient, and until when.
type QuietDecision struct {
	Quiet bool
	Until time.Time // UTC, when Quiet
	Local string    // the recipient's local time, "22:14"
	Zone  string    // the zone's name
	From  string    // where the zone came from
}

// Reason is the audit text: "quiet_hours, local 22:14 America/Lima, window 21:00–08:00, until …".
func (d QuietDecision) Reason(q QuietHours) string {
	return fmt.Sprintf("quiet_hours, local %s %s (%s), window %s–%s, until %s", d.Local, d.Zone, d.From,
		q.raw.Start, q.raw.End, d.Until.Format(time.RFC3339))
}

// Decide applies the window to a recipient at now.
func (q QuietHours) Decide(now time.Time, userTimezone, phone string) QuietDecision {
	loc, from := RecipientZone(userTimezone, phone, q.Fallback)
	local := now.In(loc)
	minute := local.Hour()*60 + local.Minute()
	d := QuietDecision{Local: local.Format("15:04"), Zone: loc.String(), From: from}
	var quiet bool
	if q.Start < q.End {
		quiet = minute >= q.Start && minute < q.End
	} else {
		quiet = minute >= q.Start || minute < q.End
	}
	if !quiet {
		return d
	}
	day := local
	if q.Start > q.End && minute >= q.Start {
		day = local.AddDate(0, 0, 1) // the window ends tomorrow morning
	}
	until := time.Date(day.Year(), day.Month(), day.Day(), q.End/60, q.End%60, 0, 0, loc)
	d.Quiet, d.Until = true, until.UTC()
	return d
}
