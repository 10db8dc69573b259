package commands

import (
	"testing"
	"unicode/utf8"

	"github.com/stretchr/testify/assert"

	"herald/events"
)

func TestParseKeyword(t *testing.T) {
	t.Parallel()
	cases := []struct {
		body string
		want Keyword
	}{
		{"STOP", Keyword{events.CommandStop, "STOP", ""}},
		{" stop\n", Keyword{events.CommandStop, "STOP", ""}},
		{"Stop.", Keyword{events.CommandStop, "STOP", ""}},
		{"ŞTÖP", Keyword{events.CommandStop, "STOP", ""}},
		{"s.t.o.p", Keyword{events.CommandStop, "STOP", ""}},
		{"stopall", Keyword{events.CommandStop, "STOPALL", ""}},
		{"Stop All", Keyword{events.CommandStop, "STOPALL", ""}},
		{"UNSUBSCRIBE", Keyword{events.CommandStop, "UNSUBSCRIBE", ""}},
		{"unsubscribe !!!", Keyword{events.CommandStop, "UNSUBSCRIBE", ""}},
		{"cancel", Keyword{events.CommandStop, "CANCEL", ""}},
		{"end", Keyword{events.CommandStop, "END", ""}},
		{"QUIT", Keyword{events.CommandStop, "QUIT", ""}},
		{"optout", Keyword{events.CommandStop, "OPTOUT", ""}},
		{"opt out", Keyword{events.CommandStop, "OPTOUT", ""}},
		{"Revoke", Keyword{events.CommandStop, "REVOKE", ""}},
		{"start", Keyword{events.CommandStart, "START", ""}},
		{"YES!", Keyword{events.CommandStart, "YES", ""}},
		{"unstop", Keyword{events.CommandStart, "UNSTOP", ""}},
		{"subscribe", Keyword{events.CommandStart, "SUBSCRIBE", ""}},
		{"SUBSCRIBE deals", Keyword{events.CommandSubscribe, "SUBSCRIBE", "deals"}},
		{"Subscribe  Black   Friday!", Keyword{events.CommandSubscribe, "SUBSCRIBE", "black-friday"}},
		{"subscribe Años Nuevos", Keyword{events.CommandSubscribe, "SUBSCRIBE", "anos-nuevos"}},
		{"UNSUBSCRIBE Deals", Keyword{events.CommandUnsubscribe, "UNSUBSCRIBE", "deals"}},
		{"help", Keyword{events.CommandHelp, "HELP", ""}},
		{"Info?", Keyword{events.CommandHelp, "INFO", ""}},
		{"", Keyword{}},
		{"   ", Keyword{}},
		{"stop sending me this", Keyword{}},
		{"yes please", Keyword{}},
		{"hola", Keyword{}},
		{"stopping", Keyword{}},
	}
	for _, tc := range cases {
		assert.Equal(t, tc.want, ParseKeyword(tc.body), "%q", tc.body)
	}
}

func TestSlug(t *testing.T) {
	t.Parallel()
	cases := map[string]string{
		"Back In Stock":         "back-in-stock",
		"  --price_drop!! ":     "price-drop",
		"Ñandú Ofertas":         "nandu-ofertas",
		"":                      "",
		"!!!":                   "",
		"über-DEALS/2026":       "uber-deals-2026",
		string(make([]byte, 3)): "",
	}
	for in, want := range cases {
		assert.Equal(t, want, Slug(in), "%q", in)
	}
	long := Slug("a b c d e f g h i j k l m n o p q r s t u v w x y z a b c d e f g h i j k l m n o p")
	assert.LessOrEqual(t, utf8.RuneCountInString(long), maxSlug)
	assert.NotEqual(t, '-', rune(long[len(long)-1]))
}

// FuzzParseKeyword: never panics, and what it recognises is stable and well-formed.
func FuzzParseKeyword(f *testing.F) {
	for _, s := range []string{"STOP", "subscribe Black Friday", "unsubscribe deals", "ŞTÖP", "s.t.o.p", "", "\xff\xfe", "opt out"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, body string) {
		kw := ParseKeyword(body)
		switch kw.Command {
		case "":
			assert.Empty(t, kw.Topic)
		case events.CommandSubscribe, events.CommandUnsubscribe:
			assert.NotEmpty(t, kw.Topic)
			assert.Equal(t, kw.Topic, Slug(kw.Topic), "a topic is already a slug")
		default:
			assert.Empty(t, kw.Topic)
			assert.NotEmpty(t, kw.Word)
		}
		assert.Equal(t, kw, ParseKeyword(body), "deterministic")
	})
}
