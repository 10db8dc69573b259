package twilio

import (
	"net/url"
	"testing"

	"github.com/stretchr/testify/assert"
	twclient "github.com/twilio/twilio-go/client"
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

// TestVerifierAgreesWithTwilioGo: the verifier answers exactly as twilio-go's validator, for
// signatures made over every URL form Twilio may use (explicit default port or not, a query,
// repeated parameters, where only the first value counts) and for forged ones.
func TestVerifierAgreesWithTwilioGo(t *testing.T) {
	t.Parallel()
	const token = "12345"
	ref := twclient.NewRequestValidator(token)
	v := NewVerifier(token)
	urls := []string{
		"https://example.com/hooks/status", "https://example.com:443/hooks/status", "http://example.com/s",
		"http://example.com:80/s", "https://example.com:8443/s?message_id=m1&attempt=2", "https://example.com/s?a=%41&b=c d",
		"https://example.com/s?bodySHA256=abc",
	}
	forms := []url.Values{
		{},
		{"MessageSid": {"SM1"}, "MessageStatus": {"delivered"}},
		{"Body": {"hola ¿qué?", "second value"}, "From": {"whatsapp:+14155550123"}, "Empty": {""}},
	}
	for _, u := range urls {
		for _, f := range forms {
			body := []byte(f.Encode())
			var sigs []string
			for _, signed := range urls {
				sigs = append(sigs, Sign(token, signed, f), Sign("other", signed, f))
				first := url.Values{}
				for k, vals := range f {
					first[k] = vals[:1]
				}
				sigs = append(sigs, Sign(token, signed, first))
			}
			sigs = append(sigs, "", "not base64", Sign(token, u, f)+"x")
			for _, sig := range sigs {
				want := ref.ValidateBody(u, body, sig)
				assert.Equal(t, want, v.Verify(u, body, sig), "url %s form %v sig %q", u, f, sig)
			}
		}
	}
}
