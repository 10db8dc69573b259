package api

import (
	"errors"
	"mime"
	"net/http"

	"herald/commands/ingest"
)

// maxTriggerBytes caps one POST /v1/triggers body.
const maxTriggerBytes = 256 << 20

// postTriggers accepts an NDJSON body of trigger events and answers with what happened to
// each line: the lines are validated one by one, so one bad line never rejects the others.
func (a *API) postTriggers(w http.ResponseWriter, r *http.Request) error {
	if ct := r.Header.Get("Content-Type"); ct != "" {
		mt, _, err := mime.ParseMediaType(ct)
		if err != nil {
			return errStatus(http.StatusUnsupportedMediaType, "send the trigger events as application/x-ndjson, one per line")
		}
		switch mt {
		case "application/x-ndjson", "application/ndjson", "application/jsonl", "application/json", "text/plain":
		default:
			return errStatus(http.StatusUnsupportedMediaType, "send the trigger events as application/x-ndjson, one per line")
		}
	}
	tr, err := ingest.NewTriggers(a.store, a.registry, ingest.TriggersConfig{})
	if err != nil {
		return err
	}
	rep, err := tr.Process(r.Context(), http.MaxBytesReader(w, r.Body, maxTriggerBytes), metadata(r))
	var tooBig *http.MaxBytesError
	if errors.As(err, &tooBig) {
		return errStatus(http.StatusRequestEntityTooLarge, "a trigger upload is at most 256 MiB; the lines before the limit were processed")
	}
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, rep)
	return nil
}
