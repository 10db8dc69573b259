package twilio

import (
	"net/url"
	"testing"

	"github.com/stretchr/testify/assert"
)

func TestSignMatchesTwiliosKnownAnswer(t *testing.T) {
	t.Parallel()
	form := url.Values{"CallSid": {"CA1234567890ABCDE"}, "Caller": {"+14158675310"}, "Digits": {"1234"},
		"From": {"+14158675310"}, "To": {"+18005551212"}}
	const u = "https://example.com/myapp.php?foo=1&bar=2"
	sig := Sign("12345", u, form)
	assert.Equal(t, "L/OH5YylLD5NRKLltdqwSvS0BnU=", sig)
	assert.True(t, NewVerifier("12345").Verify(u, []byte(form.Encode()), sig))
	assert.True(t, NewVerifier("12345").Verify("https://example.com:443/myapp.php?foo=1&bar=2", []byte(form.Encode()), sig))
	assert.False(t, NewVerifier("54321").Verify(u, []byte(form.Encode()), sig))
}
