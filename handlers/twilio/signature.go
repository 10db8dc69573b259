// Package twilio is Herald's Twilio edge: signed webhooks for inbound WhatsApp messages and
// status callbacks. Every accepted webhook becomes events; nothing forged or malformed gets in.
package twilio

import (
	"crypto/hmac"
	"crypto/sha1" //nolint:gosec // Twilio's signature scheme is HMAC-SHA1
	"encoding/base64"
	"net/url"
	"sort"
	"strings"

	twclient "github.com/twilio/twilio-go/client"
)

// SignatureHeader is the header Twilio signs requests with.
const SignatureHeader = "X-Twilio-Signature"

// Sign computes Twilio's signature of a form POST to fullURL: HMAC-SHA1 keyed by the auth
// token over the URL followed by every parameter name and value, names sorted byte-wise,
// base64-encoded. The simulator and tests sign with it; Herald verifies with Verifier.
func Sign(authToken, fullURL string, form url.Values) string {
	keys := make([]string, 0, len(form))
	for k := range form {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var b strings.Builder
	b.WriteString(fullURL)
	for _, k := range keys {
		for _, v := range form[k] {
			b.WriteString(k)
			b.WriteString(v)
		}
	}
	mac := hmac.New(sha1.New, []byte(authToken))
	mac.Write([]byte(b.String()))
	return base64.StdEncoding.EncodeToString(mac.Sum(nil))
}

// Verifier checks X-Twilio-Signature with twilio-go's validator, which also accepts the URL
// with and without an explicit default port (Twilio is inconsistent about it).
type Verifier struct {
	validator twclient.RequestValidator
}

// NewVerifier returns a verifier for authToken.
func NewVerifier(authToken string) *Verifier {
	return &Verifier{validator: twclient.NewRequestValidator(authToken)}
}

// Verify reports whether signature is Twilio's signature of the raw form body posted to
// fullURL (the configured public URL, path and query; never the Host header).
func (v *Verifier) Verify(fullURL string, rawBody []byte, signature string) bool {
	if signature == "" {
		return false
	}
	return v.validator.ValidateBody(fullURL, rawBody, signature)
}
