package api

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"time"

	"github.com/jackc/pgx/v5"
)

// IdempotencyHeader lets a client retry a POST safely: the same key with the same body gets
// the first answer again; the same key with another body is refused (422); the same key while
// the first request is still running gets 409.
const IdempotencyHeader = "Idempotency-Key"

const maxIdempotencyKey = 255

// recorder keeps what a handler wrote so it can be stored for replays.
type recorder struct {
	http.ResponseWriter
	status int
	body   bytes.Buffer
}

func (r *recorder) WriteHeader(status int) {
	r.status = status
	r.ResponseWriter.WriteHeader(status)
}

func (r *recorder) Write(b []byte) (int, error) {
	if r.status == 0 {
		r.status = http.StatusOK
	}
	r.body.Write(b)
	return r.ResponseWriter.Write(b)
}

// replayedHeaders are the response headers stored with a response.
var replayedHeaders = []string{"Content-Type", "Location", "ETag"}

func (a *API) idempotency(next http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		key := r.Header.Get(IdempotencyHeader)
		if key == "" {
			next(w, r)
			return
		}
		if len(key) > maxIdempotencyKey {
			a.writeError(w, r, badRequest(IdempotencyHeader, "is longer than 255 characters"))
			return
		}
		body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, a.cfg.MaxBody))
		if err != nil {
			a.writeError(w, r, decodeError(err))
			return
		}
		r.Body = io.NopCloser(bytes.NewReader(body))
		sum := sha256.Sum256(body)
		principal := principalFrom(r.Context()).KeyID
		ctx := r.Context()

		claimed, err := a.claimKey(r, principal, key, sum[:])
		if err != nil {
			a.writeError(w, r, err)
			return
		}
		if !claimed {
			a.replay(w, r, principal, key, sum[:])
			return
		}
		rec := &recorder{ResponseWriter: w}
		next(rec, r)
		if rec.status >= 500 || rec.status == 0 {
			// Nothing to remember: let the client retry with the same key.
			_, _ = a.pool.Exec(ctx, `DELETE FROM idempotency_keys WHERE principal = $1 AND key = $2`, principal, key)
			return
		}
		headers := map[string]string{}
		for _, h := range replayedHeaders {
			if v := rec.Header().Get(h); v != "" {
				headers[h] = v
			}
		}
		hj, _ := json.Marshal(headers)
		if _, err := a.pool.Exec(ctx, `UPDATE idempotency_keys SET status = $3, response = $4, headers = $5
WHERE principal = $1 AND key = $2`, principal, key, rec.status, rec.body.Bytes(), hj); err != nil {
			a.log.Warn().Err(err).Msg("remember idempotency key")
		}
	}
}

// claimKey records the key as in flight; false means it is already known (and not expired).
func (a *API) claimKey(r *http.Request, principal, key string, sum []byte) (bool, error) {
	ctx := r.Context()
	expired := a.now().Add(-a.cfg.IdempotencyTTL)
	if _, err := a.pool.Exec(ctx, `DELETE FROM idempotency_keys WHERE principal = $1 AND key = $2 AND created_at < $3`,
		principal, key, expired); err != nil {
		return false, err
	}
	tag, err := a.pool.Exec(ctx, `INSERT INTO idempotency_keys (principal, key, method, path, body_hash, created_at)
VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (principal, key) DO NOTHING`, principal, key, r.Method, r.URL.Path, sum, a.now())
	if err != nil {
		return false, err
	}
	return tag.RowsAffected() == 1, nil
}

func (a *API) replay(w http.ResponseWriter, r *http.Request, principal, key string, sum []byte) {
	var (
		method, path string
		bodyHash     []byte
		status       *int
		response     []byte
		headers      map[string]string
	)
	err := a.pool.QueryRow(r.Context(), `SELECT method, path, body_hash, status, response, headers
FROM idempotency_keys WHERE principal = $1 AND key = $2`, principal, key).Scan(&method, &path, &bodyHash, &status, &response, &headers)
	switch {
	case errors.Is(err, pgx.ErrNoRows):
		// It finished with a 5xx and was forgotten between our insert and this read.
		a.writeError(w, r, errStatus(http.StatusConflict, "a request with this Idempotency-Key just failed; retry"))
		return
	case err != nil:
		a.writeError(w, r, err)
		return
	case method != r.Method || path != r.URL.Path || !bytes.Equal(bodyHash, sum):
		a.writeError(w, r, &problemError{status: http.StatusUnprocessableEntity,
			detail: "this Idempotency-Key was used for another request", fields: []FieldError{{IdempotencyHeader, "was already used with another method, path or body"}}})
		return
	case status == nil:
		a.writeError(w, r, errStatus(http.StatusConflict, "a request with this Idempotency-Key is still in progress"))
		return
	}
	for h, v := range headers {
		w.Header().Set(h, v)
	}
	w.Header().Set("Idempotent-Replayed", "true")
	w.WriteHeader(*status)
	_, _ = w.Write(response)
}

// Run forgets expired Idempotency-Key records every hour until ctx ends.
func (a *API) Run(ctx context.Context) error {
	t := time.NewTicker(time.Hour)
	defer t.Stop()
	for {
		if _, err := a.pool.Exec(ctx, `DELETE FROM idempotency_keys WHERE created_at < $1`, a.now().Add(-a.cfg.IdempotencyTTL)); err != nil && ctx.Err() == nil {
			a.log.Warn().Err(err).Msg("forget expired idempotency keys")
		}
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}
