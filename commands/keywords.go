// Package commands holds Herald's use cases: each loads the streams it needs from the event
// store, decides with a pure function, and appends the resulting events with the expected
// version, retrying a bounded number of times on a concurrent write.
package commands

import (
	"strings"
	"unicode"
	"unicode/utf8"

	"golang.org/x/text/runes"
	"golang.org/x/text/transform"
	"golang.org/x/text/unicode/norm"

	"herald/events"
)

// Keyword is what an inbound text asks for.
type Keyword struct {
	Command string // events.Command…, or "" for a conversation message
	Word    string // the keyword as recognised, upper case (e.g. "STOPALL")
	Topic   string // for SUBSCRIBE/UNSUBSCRIBE <topic>: a lowercase slug
}

var keywords = map[string]string{
	"STOP": events.CommandStop, "STOPALL": events.CommandStop, "UNSUBSCRIBE": events.CommandStop,
	"CANCEL": events.CommandStop, "END": events.CommandStop, "QUIT": events.CommandStop,
	"OPTOUT": events.CommandStop, "REVOKE": events.CommandStop,
	"START": events.CommandStart, "YES": events.CommandStart, "UNSTOP": events.CommandStart,
	"SUBSCRIBE": events.CommandStart,
	"HELP":      events.CommandHelp, "INFO": events.CommandHelp,
}

// ParseKeyword recognises Herald's commands in an inbound text. Case, surrounding space,
// punctuation and accents are ignored ("  Stop! ", "stóp", "S.T.O.P" are STOP). `UNSUBSCRIBE`
// alone opts out of everything; `SUBSCRIBE <topic>` and `UNSUBSCRIBE <topic>` act on one topic
// (topic names become lowercase slugs). Anything else is a conversation message.
func ParseKeyword(body string) Keyword {
	words := strings.Fields(fold(body))
	if len(words) == 0 {
		return Keyword{}
	}
	// A word may carry punctuation ("stop!", "s.t.o.p", "opt-out").
	first := lettersOnly(words[0])
	if len(words) == 1 {
		if cmd, ok := keywords[first]; ok {
			return Keyword{Command: cmd, Word: first}
		}
		return Keyword{}
	}
	if first == "SUBSCRIBE" || first == "UNSUBSCRIBE" {
		topic := Slug(strings.Join(words[1:], " "))
		if topic == "" {
			if cmd, ok := keywords[first]; ok {
				return Keyword{Command: cmd, Word: first}
			}
		}
		cmd := events.CommandSubscribe
		if first == "UNSUBSCRIBE" {
			cmd = events.CommandUnsubscribe
		}
		return Keyword{Command: cmd, Word: first, Topic: topic}
	}
	// "opt out", "stop all": two words that form one keyword.
	if len(words) == 2 {
		joined := first + lettersOnly(words[1])
		if cmd, ok := keywords[joined]; ok {
			return Keyword{Command: cmd, Word: joined}
		}
	}
	return Keyword{}
}

// fold removes accents and upper-cases.
func fold(s string) string {
	if isASCII(s) {
		return strings.ToUpper(s) // nothing to decompose: skip the normalization's allocations
	}
	t := transform.Chain(norm.NFD, runes.Remove(runes.In(unicode.Mn)), norm.NFC)
	out, _, err := transform.String(t, s)
	if err != nil {
		out = s
	}
	return strings.ToUpper(out)
}

func isASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] >= utf8.RuneSelf {
			return false
		}
	}
	return true
}

func lettersOnly(s string) string {
	return strings.Map(func(r rune) rune {
		if unicode.IsLetter(r) || unicode.IsDigit(r) {
			return r
		}
		return -1
	}, s)
}

// maxSlug bounds a topic slug, in characters.
const maxSlug = 64

// Slug normalizes a topic name: accents removed, lower case, runs of anything but letters and
// digits become one '-', no leading or trailing '-', at most 64 characters.
func Slug(s string) string {
	s = strings.ToLower(fold(s))
	var b strings.Builder
	dash := false
	for _, r := range s {
		if unicode.IsLetter(r) || unicode.IsDigit(r) {
			if dash && b.Len() > 0 {
				b.WriteByte('-')
			}
			b.WriteRune(r)
			dash = false
			continue
		}
		dash = true
	}
	out := []rune(b.String())
	if len(out) > maxSlug {
		out = out[:maxSlug]
	}
	return strings.TrimRight(string(out), "-")
}
