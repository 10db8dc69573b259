package api

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"fmt"
	"net/http"
	"strings"
)

// Roles an API key can have.
const (
	RoleAdmin = "admin"
	RoleRead  = "read"
)

// Key is one API key: only its SHA-256 is kept, and a short id derived from it names the
// principal in logs, events and idempotency records (never the key itself).
type Key struct {
	hash [32]byte
	ID   string
	Role string
}

// ParseKeys reads HERALD_API_KEYS: comma-separated `key` (admin) or `key:role` entries.
func ParseKeys(spec string) ([]Key, error) {
	var keys []Key
	for _, entry := range strings.Split(spec, ",") {
		entry = strings.TrimSpace(entry)
		if entry == "" {
			continue
		}
		secret, role, hasRole := strings.Cut(entry, ":")
		if !hasRole {
			role = RoleAdmin
		}
		if secret == "" || (role != RoleAdmin && role != RoleRead) {
			return nil, fmt.Errorf("HERALD_API_KEYS: %q must be key, key:admin or key:read", redact(entry))
		}
		if len(secret) < 16 {
			return nil, fmt.Errorf("HERALD_API_KEYS: key %q is shorter than 16 characters", redact(secret))
		}
		h := sha256.Sum256([]byte(secret))
		keys = append(keys, Key{hash: h, ID: "key_" + hex.EncodeToString(h[:4]), Role: role})
	}
	return keys, nil
}

func redact(s string) string {
	if len(s) <= 4 {
		return "****"
	}
	return s[:4] + "****"
}

type principalKey struct{}

// Principal is the authenticated caller of a request.
type Principal struct {
	KeyID string
	Role  string
}

func principalFrom(ctx context.Context) Principal {
	p, _ := ctx.Value(principalKey{}).(Principal)
	return p
}

// authenticate finds the key of a request's `Authorization: Bearer` header. Every key is
// compared (in constant time) so timing says nothing about which one nearly matched.
func (a *API) authenticate(r *http.Request) (Principal, bool) {
	h := r.Header.Get("Authorization")
	scheme, token, ok := strings.Cut(h, " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") || token == "" {
		return Principal{}, false
	}
	sum := sha256.Sum256([]byte(strings.TrimSpace(token)))
	var found Principal
	for _, k := range a.keys {
		if subtle.ConstantTimeCompare(sum[:], k.hash[:]) == 1 {
			found = Principal{KeyID: k.ID, Role: k.Role}
		}
	}
	return found, found.KeyID != ""
}

// authorize wraps a route: no or a wrong key → 401, a read key on a write route → 403.
func (a *API) authorize(role string, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p, ok := a.authenticate(r)
		if !ok {
			w.Header().Set("WWW-Authenticate", `Bearer realm="herald"`)
			writeProblem(w, r, Problem{Status: http.StatusUnauthorized, Detail: "send an API key as Authorization: Bearer <key>"})
			return
		}
		if role == RoleAdmin && p.Role != RoleAdmin {
			writeProblem(w, r, Problem{Status: http.StatusForbidden, Detail: "this route needs an admin key"})
			return
		}
		next.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), principalKey{}, p)))
	})
}
