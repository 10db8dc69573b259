package ui

import (
	"encoding/json"
	"fmt"
	"html/template"
	"sort"
	"strings"
	"time"
)

var funcs = template.FuncMap{
	"when":     when,
	"whenIn":   whenIn,
	"ago":      ago,
	"pct":      pct,
	"pretty":   pretty,
	"sortedKV": sortedKV,
	"join":     strings.Join,
	"eta":      eta,
	"hasField": hasField,
	"history":  history,
	"orDone":   orDone,
	"inc":      func(i int) int { return i + 1 },
	"at":       at,
	"deferredTotal": func(buckets []struct {
		Until string `json:"until"`
		Count int    `json:"count"`
	}) int {
		n := 0
		for _, b := range buckets {
			n += b.Count
		}
		return n
	},
	"skippedTotal": func(m map[string]int) int {
		n := 0
		for _, v := range m {
			n += v
		}
		return n
	},
	"skipMeaning": skipMeaning,
}

// skipMeaning explains a skip reason of the dry run and of the saga in a sentence.
func skipMeaning(reason string) string {
	switch reason {
	case "consent", "consent_opt_out":
		return "They have not opted in (or opted out): Herald never messages them."
	case "topic", "not_subscribed":
		return "They are not subscribed to the campaign's topic."
	case "missing_template_variable":
		return "The template needs a value they do not have; give the placeholder a default ({name|default})."
	case "too_long":
		return "The rendered text is longer than WhatsApp allows."
	case "outside_24h_window_without_approved_template", "outside_session_window":
		return "They have not written in 24 hours, so only an approved template (a content SID) may go; add one to the template."
	case "user_deleted":
		return "The user was erased."
	case "template_missing":
		return "The campaign's template was deleted."
	case "frequency_cap":
		return "They already got as many messages as the frequency cap allows."
	case "rate_limit":
		return "The rate limiter could not be reached; the message is tried again in seconds."
	}
	return ""
}

// at is list[i], or "" past its end.
func at(list []string, i int) string {
	if i < len(list) {
		return list[i]
	}
	return ""
}

// history says in a sentence what a consent or subscription event of a user's stream did;
// other events get their type only ("" when the map is not an event).
func history(ev map[string]any) string {
	d, _ := ev["data"].(map[string]any)
	str := func(k string) string { v, _ := d[k].(string); return v }
	by := ""
	if src := str("source"); src != "" {
		by = " (" + src + ")"
	}
	switch ev["type"] {
	case "user.consent_changed":
		line := "Consent set to " + str("consent") + by
		if r := str("reason"); r != "" {
			line += ": " + r
		}
		return line
	case "user.subscribed":
		return "Subscribed to " + str("topic") + by
	case "user.unsubscribed":
		return "Unsubscribed from " + str("topic") + by
	case "user.created":
		return "Created" + by
	case "user.attributes_changed":
		return "Profile changed" + by
	}
	t, _ := ev["type"].(string)
	return t
}

// orDone is a timeline cursor for the next page's link: the side's next cursor, or "done"
// when that side has no more.
func orDone(cursor string) string {
	if cursor == "" {
		return "done"
	}
	return cursor
}

// parseTime reads the API's RFC 3339 strings (and nil or empty as "no time").
func parseTime(v any) (time.Time, bool) {
	switch t := v.(type) {
	case time.Time:
		return t, !t.IsZero()
	case *time.Time:
		if t == nil {
			return time.Time{}, false
		}
		return *t, !t.IsZero()
	case string:
		p, err := time.Parse(time.RFC3339Nano, t)
		return p, err == nil
	case *string:
		if t == nil {
			return time.Time{}, false
		}
		return parseTime(*t)
	}
	return time.Time{}, false
}

// when shows a time in the operator's zone, with the zone's name.
func when(loc *time.Location, v any) string {
	t, ok := parseTime(v)
	if !ok {
		return "—"
	}
	return t.In(loc).Format("2006-01-02 15:04:05 MST")
}

// whenIn shows a time in a named zone (a recipient's), or "" when the zone is unknown.
func whenIn(zone string, v any) string {
	t, ok := parseTime(v)
	loc, err := time.LoadLocation(zone)
	if !ok || zone == "" || err != nil {
		return ""
	}
	return t.In(loc).Format("15:04 MST")
}

func ago(v any) string {
	t, ok := parseTime(v)
	if !ok {
		return ""
	}
	d := time.Since(t).Round(time.Second)
	switch {
	case d < 0:
		return "in " + (-d).String()
	case d < time.Minute:
		return fmt.Sprintf("%ds ago", int(d.Seconds()))
	case d < time.Hour:
		return fmt.Sprintf("%dm ago", int(d.Minutes()))
	case d < 48*time.Hour:
		return fmt.Sprintf("%dh ago", int(d.Hours()))
	}
	return fmt.Sprintf("%dd ago", int(d.Hours()/24))
}

func pct(v *float64) string {
	if v == nil {
		return "—"
	}
	return fmt.Sprintf("%.1f%%", *v*100)
}

func eta(seconds float64) string {
	if seconds <= 0 {
		return "—"
	}
	return (time.Duration(seconds) * time.Second).Round(time.Second).String()
}

// pretty shows a JSON value indented (as text: the template escapes it).
func pretty(v any) string {
	if v == nil {
		return ""
	}
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return fmt.Sprint(v)
	}
	return string(b)
}

type kv struct {
	K string
	V any
}

// sortedKV lists a map's entries by key.
func sortedKV(m any) []kv {
	var out []kv
	switch mm := m.(type) {
	case map[string]int:
		for k, v := range mm {
			out = append(out, kv{k, v})
		}
	case map[string]any:
		for k, v := range mm {
			out = append(out, kv{k, v})
		}
	case map[string]string:
		for k, v := range mm {
			out = append(out, kv{k, v})
		}
	case map[string]variant:
		for k, v := range mm {
			out = append(out, kv{k, v})
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].K < out[j].K })
	return out
}

func hasField(fields []fieldError, name string) string {
	for _, f := range fields {
		if f.Field == name || strings.HasPrefix(f.Field, name+".") || strings.HasPrefix(f.Field, name+"[") {
			return f.Reason
		}
	}
	return ""
}
