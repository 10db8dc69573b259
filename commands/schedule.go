package commands

import (
	"fmt"
	"time"

	"github.com/robfig/cron/v3"

	"herald/events"
)

// Schedule is a validated campaign schedule.
type Schedule struct {
	Kind string
	At   time.Time     // ScheduleAt
	cron cron.Schedule // ScheduleCron
	loc  *time.Location
}

// cronParser reads standard five-field cron expressions (minute hour day-of-month month
// day-of-week) and the @daily family.
var cronParser = cron.NewParser(cron.Minute | cron.Hour | cron.Dom | cron.Month | cron.Dow | cron.Descriptor)

// ParseSchedule validates a schedule: now; at an RFC 3339 time (with offset, or local to
// Timezone when it has none); or a cron expression evaluated in Timezone (UTC by default).
func ParseSchedule(s events.Schedule) (Schedule, []FieldProblem) {
	var probs []FieldProblem
	out := Schedule{Kind: s.Kind, loc: time.UTC}
	if s.Timezone != "" {
		loc, err := time.LoadLocation(s.Timezone)
		if err != nil || s.Timezone == "Local" {
			probs = append(probs, FieldProblem{"schedule.timezone", fmt.Sprintf("%q is not an IANA time zone like America/Lima", s.Timezone)})
		} else {
			out.loc = loc
		}
	}
	switch s.Kind {
	case events.ScheduleNow:
		if s.At != "" || s.Cron != "" {
			probs = append(probs, FieldProblem{"schedule", "now takes neither at nor cron"})
		}
	case events.ScheduleAt:
		at, err := time.Parse(time.RFC3339, s.At)
		if err != nil {
			at, err = time.ParseInLocation("2006-01-02T15:04:05", s.At, out.loc)
		}
		if err != nil {
			probs = append(probs, FieldProblem{"schedule.at", fmt.Sprintf("%q is not a time like 2026-11-27T09:00:00-05:00", s.At)})
		}
		out.At = at.UTC()
		if s.Cron != "" {
			probs = append(probs, FieldProblem{"schedule.cron", "is only for kind cron"})
		}
	case events.ScheduleCron:
		c, err := cronParser.Parse(s.Cron)
		if err != nil {
			probs = append(probs, FieldProblem{"schedule.cron", fmt.Sprintf("%q is not a cron expression: %v", s.Cron, err)})
		}
		out.cron = c
		if s.At != "" {
			probs = append(probs, FieldProblem{"schedule.at", "is only for kind at"})
		}
	default:
		probs = append(probs, FieldProblem{"schedule.kind", "must be now, at or cron"})
	}
	return out, probs
}

// Next is the first send time after t (t itself for now; zero when an at-time has passed).
func (s Schedule) Next(t time.Time) time.Time {
	switch s.Kind {
	case events.ScheduleNow:
		return t
	case events.ScheduleAt:
		if s.At.Before(t) {
			return time.Time{}
		}
		return s.At
	case events.ScheduleCron:
		return s.cron.Next(t.In(s.loc)).UTC()
	}
	return time.Time{}
}
