package ui

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"net/http"
	"time"
)

const cookieName = "herald_session"

// session is what the cookie carries, sealed with AES-GCM: the API key (the browser never
// sees it in clear, and script cannot read the HttpOnly cookie), the key's role as the API
// reported it at login, the operator's time zone and the expiry.
type session struct {
	Key     string `json:"k"`
	Role    string `json:"r"`
	Zone    string `json:"z,omitempty"`
	Expires int64  `json:"e"`
}

func (s session) Admin() bool { return s.Role == roleAdmin }

type sealer struct{ aead cipher.AEAD }

// newSealer derives the cookie key from secret (empty: a random key, so sessions last as long
// as the process).
func newSealer(secret []byte) (*sealer, error) {
	if len(secret) == 0 {
		secret = make([]byte, 32)
		if _, err := rand.Read(secret); err != nil {
			return nil, err
		}
	}
	k := sha256.Sum256(append([]byte("herald-ui-session\x00"), secret...))
	block, err := aes.NewCipher(k[:])
	if err != nil {
		return nil, err
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		return nil, err
	}
	return &sealer{aead: aead}, nil
}

func (s *sealer) seal(v session) (string, error) {
	plain, err := json.Marshal(v)
	if err != nil {
		return "", err
	}
	nonce := make([]byte, s.aead.NonceSize())
	if _, err := rand.Read(nonce); err != nil {
		return "", err
	}
	return base64.RawURLEncoding.EncodeToString(s.aead.Seal(nonce, nonce, plain, []byte(cookieName))), nil
}

func (s *sealer) open(value string, now time.Time) (session, error) {
	var v session
	raw, err := base64.RawURLEncoding.DecodeString(value)
	if err != nil || len(raw) < s.aead.NonceSize() {
		return v, errors.New("malformed session")
	}
	plain, err := s.aead.Open(nil, raw[:s.aead.NonceSize()], raw[s.aead.NonceSize():], []byte(cookieName))
	if err != nil {
		return v, errors.New("session does not open")
	}
	if err := json.Unmarshal(plain, &v); err != nil {
		return v, err
	}
	if now.Unix() > v.Expires || v.Key == "" {
		return v, errors.New("session expired")
	}
	return v, nil
}

func (u *UI) setSession(w http.ResponseWriter, r *http.Request, s session) error {
	value, err := u.sealer.seal(s)
	if err != nil {
		return err
	}
	http.SetCookie(w, &http.Cookie{Name: cookieName, Value: value, Path: "/", HttpOnly: true,
		SameSite: http.SameSiteLaxMode, Secure: u.secure(r), Expires: time.Unix(s.Expires, 0)})
	return nil
}

func (u *UI) clearSession(w http.ResponseWriter, r *http.Request) {
	http.SetCookie(w, &http.Cookie{Name: cookieName, Value: "", Path: "/", HttpOnly: true,
		SameSite: http.SameSiteLaxMode, Secure: u.secure(r), MaxAge: -1})
}

// secure says whether the page was served over HTTPS (directly or behind a proxy that says so).
func (u *UI) secure(r *http.Request) bool {
	return u.cfg.Secure || r.TLS != nil
}
