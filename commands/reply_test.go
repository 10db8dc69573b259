package commands

import (
	"errors"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"herald/events"
)

func TestDecideReply(t *testing.T) {
	now := time.Date(2026, 11, 27, 12, 0, 0, 0, time.UTC)
	ago := func(d time.Duration) *time.Time { t := now.Add(-d); return &t }
	const sid = "HX0123456789abcdef0123456789abcdef"
	for _, tt := range []struct {
		name  string
		facts ReplyFacts
		field string // "" allowed; "-" ErrNotFound
	}{
		{"free text a minute after the user wrote", ReplyFacts{LastInboundAt: ago(time.Minute), FreeText: true}, ""},
		{"free text just inside 24 h", ReplyFacts{LastInboundAt: ago(WhatsAppWindow - time.Second), FreeText: true}, ""},
		{"free text at exactly 24 h", ReplyFacts{LastInboundAt: ago(WhatsAppWindow), FreeText: true}, "body"},
		{"free text to a user who never wrote", ReplyFacts{FreeText: true}, "body"},
		{"a template without content_sid inside the window", ReplyFacts{LastInboundAt: ago(time.Hour)}, ""},
		{"a template without content_sid outside the window", ReplyFacts{LastInboundAt: ago(48 * time.Hour)}, "template_id"},
		{"an approved template outside the window", ReplyFacts{LastInboundAt: ago(48 * time.Hour), ContentSID: sid}, ""},
		{"an approved template to a user who never wrote", ReplyFacts{ContentSID: sid}, ""},
		{"an opted-out user inside the window", ReplyFacts{Consent: events.ConsentOptOut, LastInboundAt: ago(time.Minute), FreeText: true}, "phone"},
		{"a user who does not exist", ReplyFacts{UserExists: false}, "-"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			f := tt.facts
			f.Now = now
			if tt.field != "-" {
				f.UserExists = true
				if f.Consent == "" {
					f.Consent = events.ConsentOptIn
				}
			}
			err := DecideReply(f)
			var refused *ReplyRefusedError
			switch tt.field {
			case "":
				assert.NoError(t, err)
			case "-":
				assert.ErrorIs(t, err, ErrNotFound)
			default:
				require.True(t, errors.As(err, &refused), "%v", err)
				assert.Equal(t, tt.field, refused.Field)
				assert.NotEmpty(t, refused.Reason)
			}
		})
	}
}
