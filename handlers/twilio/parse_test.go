package twilio

import (
	"fmt"
	"net/url"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"herald/events"
)

func TestNormalizeAddress(t *testing.T) {
	t.Parallel()
	cases := []struct {
		in, want string
		ok       bool
	}{
		{"whatsapp:+51987654321", "+51987654321", true},
		{"+14155552671", "+14155552671", true},
		{" whatsapp:+44 20 7946 0958 ", "+442079460958", true},
		{"whatsapp:+5215512345678", "+525512345678", true}, // WhatsApp's legacy Mexican mobile form
		{"whatsapp:+5491123456789", "+5491123456789", true},
		{"whatsapp:51987654321", "", false},
		{"whatsapp:+1", "", false},
		{"whatsapp:+99912345678", "", false},
		{"", "", false},
		{"messenger:12345", "", false},
	}
	for range 2 { // the second round answers the valid ones from the cache
		for _, tc := range cases {
			got, err := NormalizeAddress(tc.in)
			if !tc.ok {
				assert.Error(t, err, tc.in)
				continue
			}
			require.NoError(t, err, tc.in)
			assert.Equal(t, tc.want, got)
		}
	}
}

// TestNormalizeAddressCacheIsBounded: the cache of normalized addresses is emptied when full.
func TestNormalizeAddressCacheIsBounded(t *testing.T) {
	normalizedMu.Lock()
	saved := maxNormalized
	maxNormalized = 3
	normalizedMu.Unlock()
	t.Cleanup(func() {
		normalizedMu.Lock()
		maxNormalized = saved
		normalizedMu.Unlock()
	})
	for i := range 10 {
		got, err := NormalizeAddress(fmt.Sprintf("whatsapp:+1415555%04d", i))
		require.NoError(t, err)
		assert.Equal(t, fmt.Sprintf("+1415555%04d", i), got)
		normalizedMu.RLock()
		assert.LessOrEqual(t, len(normalized), 3)
		normalizedMu.RUnlock()
	}
}

func TestReceivedAt(t *testing.T) {
	t.Parallel()
	now := time.Date(2026, 11, 26, 20, 0, 0, 0, time.UTC)
	at, src, err := receivedAt(url.Values{}, now)
	require.NoError(t, err)
	assert.Equal(t, now, at)
	assert.Equal(t, events.TimestampFromServer, src)
	at, src, err = receivedAt(url.Values{"Timestamp": {"2026-11-26T19:59:58Z"}}, now)
	require.NoError(t, err)
	assert.Equal(t, now.Add(-2*time.Second), at)
	assert.Equal(t, events.TimestampFromTwilio, src)
	_, _, err = receivedAt(url.Values{"Timestamp": {"yesterday"}}, now)
	assert.ErrorContains(t, err, "Timestamp")
}

// FuzzParseWebhookForms: any body either parses into a consistent record or is refused with
// an error; nothing panics.
func FuzzParseWebhookForms(f *testing.F) {
	for _, s := range []string{
		"MessageSid=SM123&From=whatsapp%3A%2B51987654321&Body=STOP",
		"MessageSid=SM1&From=whatsapp%3A%2B14155552671&NumMedia=2&MediaUrl0=x&MediaContentType0=image%2Fjpeg",
		"MessageSid=SM1&MessageStatus=failed&ErrorCode=21610&To=whatsapp%3A%2B14155552671",
		"MessageSid=&From=&Body=%zz", "NumMedia=-1", "Timestamp=1700000000&MessageSid=SMx&From=whatsapp%3A%2B14155552671",
	} {
		f.Add(s)
	}
	now := time.Date(2026, 11, 26, 20, 0, 0, 0, time.UTC)
	f.Fuzz(func(t *testing.T, body string) {
		form, err := url.ParseQuery(body)
		if err != nil {
			return // refused with 400 before parsing
		}
		if msg, err := ParseInbound(form, now); err == nil {
			assert.True(t, validSID(msg.MessageSID))
			assert.Regexp(t, `^\+[1-9][0-9]{6,14}$`, msg.Phone)
			assert.LessOrEqual(t, len(msg.Media), 10)
			assert.NotEmpty(t, msg.TimestampSource)
		}
		if st, err := ParseStatus(form, url.Values{}, "", now); err == nil {
			assert.True(t, knownStatuses[st.Status])
			assert.True(t, validSID(st.MessageSID))
		}
	})
}
