package sender

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestParseRetryAfter(t *testing.T) {
	t.Parallel()
	now := time.Date(2015, 10, 21, 7, 28, 0, 0, time.UTC)
	tests := []struct {
		in     string
		want   time.Duration
		wantOK bool
	}{
		{"", 0, false},
		{"0", 0, true},
		{"7", 7 * time.Second, true},
		{" 120 ", 2 * time.Minute, true},
		{"86400", 24 * time.Hour, true},
		{"86401", maxRetryAfter, true},
		{"99999999999999999999999", maxRetryAfter, true}, // overflows int64: capped, not wrapped
		{"-5", 0, false},
		{"1.5", 0, false},
		{"5s", 0, false},
		{"soon", 0, false},
		{"Wed, 21 Oct 2015 07:28:30 GMT", 30 * time.Second, true}, // IMF-fixdate
		{"Wednesday, 21-Oct-15 07:29:00 GMT", time.Minute, true},  // RFC 850
		{"Wed Oct 21 07:30:00 2015", 2 * time.Minute, true},       // asctime
		{"Wed, 21 Oct 2015 07:00:00 GMT", 0, true},                // in the past: now
		{"Thu, 21 Oct 2027 07:28:00 GMT", maxRetryAfter, true},    // far future: capped
		{"Wed, 21 Oct 2015 07:28:30 +0200", 0, false},             // not an HTTP date
	}
	for _, tc := range tests {
		t.Run(tc.in, func(t *testing.T) {
			t.Parallel()
			got, ok := ParseRetryAfter(tc.in, now)
			assert.Equal(t, tc.wantOK, ok)
			assert.Equal(t, tc.want, got)
		})
	}
}

func FuzzParseRetryAfter(f *testing.F) {
	for _, s := range []string{"", "0", "7", "120", "-1", "1e3", "Wed, 21 Oct 2015 07:28:00 GMT", "Wed Oct 21 07:28:00 2015", "99999999999999999999"} {
		f.Add(s)
	}
	now := time.Date(2015, 10, 21, 7, 28, 0, 0, time.UTC)
	f.Fuzz(func(t *testing.T, s string) {
		d, ok := ParseRetryAfter(s, now)
		if d < 0 || d > maxRetryAfter {
			t.Fatalf("ParseRetryAfter(%q) = %s, outside [0, %s]", s, d, maxRetryAfter)
		}
		if !ok && d != 0 {
			t.Fatalf("ParseRetryAfter(%q) = %s with ok=false", s, d)
		}
	})
}

func TestKindText(t *testing.T) {
	t.Parallel()
	for _, k := range []Kind{KindPermanent, KindRetryable, KindRateLimited, KindAmbiguous} {
		b, err := json.Marshal(k)
		require.NoError(t, err)
		var back Kind
		require.NoError(t, json.Unmarshal(b, &back))
		assert.Equal(t, k, back)
	}
	var k Kind
	assert.Error(t, k.UnmarshalText([]byte("maybe")))
	assert.Equal(t, "kind(0)", Kind(0).String())
}

func TestSendErrorError(t *testing.T) {
	t.Parallel()
	se := &SendError{Kind: KindRateLimited, Code: 20429, HTTPStatus: 429, Message: "Too Many Requests", RetryAfter: 3 * time.Second}
	assert.Equal(t, "twilio: rate limited (not sent): HTTP 429, code 20429 [Too many concurrent requests to Twilio's API; the request was never processed]: Too Many Requests; retry after 3s", se.Error())
	assert.True(t, se.Retryable())
	assert.False(t, se.Ambiguous())
	assert.NotErrorIs(t, se, ErrNotFound)
	assert.ErrorIs(t, &SendError{Kind: KindPermanent, HTTPStatus: 404}, ErrNotFound)
}
