// Package twilio is Herald's Twilio edge: signed webhooks for inbound WhatsApp messages and
// status callbacks. Every accepted webhook becomes events; nothing forged or malformed gets in.
package twilio

import (
	"crypto/hmac"
	"crypto/sha1" //nolint:gosec // Twilio's signature scheme is HMAC-SHA1
	"crypto/subtle"
	"encoding/base64"
	"hash"
	"io"
	"net/url"
	"sort"
	"strings"
	"sync"

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

// Verifier checks X-Twilio-Signature the way twilio-go's validator does — HMAC-SHA1 over the
// URL and the first value of each parameter, names sorted, accepting the URL with and without
// an explicit default port (Twilio is inconsistent about it) — without its per-request
// allocations: the form is parsed once (by the caller), the parameters are written straight into
// a pooled HMAC. Bodies signed by hash (a bodySHA256 query parameter) go to twilio-go itself.
type Verifier struct {
	key       []byte
	validator twclient.RequestValidator
	macs      sync.Pool
}

// NewVerifier returns a verifier for authToken.
func NewVerifier(authToken string) *Verifier {
	v := &Verifier{key: []byte(authToken), validator: twclient.NewRequestValidator(authToken)}
	v.macs.New = func() any { return hmac.New(sha1.New, v.key) }
	return v
}

// Verify reports whether signature is Twilio's signature of the raw form body posted to
// fullURL (the configured public URL, path and query; never the Host header).
func (v *Verifier) Verify(fullURL string, rawBody []byte, signature string) bool {
	form, err := url.ParseQuery(string(rawBody))
	if err != nil {
		return false
	}
	return v.VerifyForm(fullURL, rawBody, form, signature)
}

// VerifyForm is Verify for a body already parsed into form.
func (v *Verifier) VerifyForm(fullURL string, rawBody []byte, form url.Values, signature string) bool {
	if signature == "" {
		return false
	}
	parsed, err := url.Parse(fullURL)
	if err != nil {
		return false
	}
	if strings.Contains(parsed.RawQuery, "bodySHA256") && parsed.Query().Get("bodySHA256") != "" {
		return v.validator.ValidateBody(fullURL, rawBody, signature)
	}
	keys := make([]string, 0, 16)
	for k, vals := range form {
		if len(vals) > 0 {
			keys = append(keys, k)
		}
	}
	sort.Strings(keys)
	withPort, withoutPort := portVariants(fullURL, parsed)
	return v.matches(withPort, keys, form, signature) || v.matches(withoutPort, keys, form, signature)
}

// matches computes the signature of u plus the first value of each key and compares it in
// constant time.
func (v *Verifier) matches(u string, keys []string, form url.Values, signature string) bool {
	mac := v.macs.Get().(hash.Hash)
	defer v.macs.Put(mac)
	mac.Reset()
	io.WriteString(mac, u) //nolint:errcheck // a hash never fails
	for _, k := range keys {
		io.WriteString(mac, k)          //nolint:errcheck
		io.WriteString(mac, form[k][0]) //nolint:errcheck
	}
	var sum [sha1.Size]byte
	var enc [28]byte // base64 of 20 bytes
	base64.StdEncoding.Encode(enc[:], mac.Sum(sum[:0]))
	return subtle.ConstantTimeCompare(enc[:], []byte(signature)) == 1
}

// portVariants returns fullURL with the scheme's default port made explicit and with any port
// removed, exactly as twilio-go rewrites them (re-serialized when changed).
func portVariants(fullURL string, parsed *url.URL) (withPort, withoutPort string) {
	if parsed.Port() != "" {
		stripped := *parsed
		stripped.Host = strings.Split(parsed.Host, ":")[0]
		return fullURL, stripped.String()
	}
	port := "80"
	if parsed.Scheme == "https" {
		port = "443"
	}
	ported := *parsed
	ported.Host = parsed.Host + ":" + port
	return ported.String(), fullURL
}
