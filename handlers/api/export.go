package api

import (
	"context"
	"encoding/csv"
	"fmt"
	"net/http"
	"regexp"
	"strconv"
	"time"
)

// exportChunk is how many messages one query of a CSV export reads. Each chunk is its own
// keyset query under the statement timeout, so an export of a million rows is never one
// long-running statement, and it stops at the first write the client no longer reads.
const exportChunk = 5000

// exportTimeout bounds a whole export.
const exportTimeout = 15 * time.Minute

var csvHeader = []string{"id", "phone", "kind", "run_id", "state", "reason", "detail", "status", "error_code", "error_meaning",
	"error_message", "attempts", "provider_sid", "locale", "body", "queued_at", "attempted_at", "status_at", "updated_at"}

// e164 is a phone number that cannot hold a formula, so its leading + stays.
var e164 = regexp.MustCompile(`^\+[1-9][0-9]{6,14}$`)

// csvSafe neutralises a cell a spreadsheet would evaluate: one starting with = + - @, tab or
// CR gets a leading ' (reliability.md §4.10, OWASP CSV injection). Quoting (RFC 4180) does
// not stop evaluation, so every cell goes through this; csv.Writer quotes afterwards.
func csvSafe(s string) string {
	if s == "" {
		return s
	}
	switch s[0] {
	case '=', '+', '-', '@', '\t', '\r':
		return "'" + s
	}
	return s
}

// csvPhone keeps an E.164 number as it is and treats anything else as text.
func csvPhone(s string) string {
	if e164.MatchString(s) {
		return s
	}
	return csvSafe(s)
}

func csvTime(t *time.Time) string {
	if t == nil {
		return ""
	}
	return t.UTC().Format(time.RFC3339Nano)
}

func messageRecord(m Message) []string {
	code, meaning, sid := "", "", ""
	if m.ErrorCode != nil {
		code, meaning = strconv.Itoa(*m.ErrorCode), errorInfo(*m.ErrorCode).Meaning
	}
	if m.ProviderSID != nil {
		sid = *m.ProviderSID
	}
	rec := []string{m.ID, m.Phone, m.Kind, m.RunID, m.State, m.Reason, m.Detail, m.Status, code, meaning,
		m.ErrorMessage, strconv.Itoa(m.Attempts), sid, m.Locale, m.Body, csvTime(&m.QueuedAt), csvTime(m.AttemptedAt),
		csvTime(m.StatusAt), csvTime(&m.UpdatedAt)}
	for i, cell := range rec {
		if i == 1 {
			rec[i] = csvPhone(cell)
		} else {
			rec[i] = csvSafe(cell)
		}
	}
	return rec
}

// exportMessages streams the campaign's filtered messages as CSV, in id order.
func (a *API) exportMessages(w http.ResponseWriter, r *http.Request, campaignID string, f messageFilter) error {
	// The export outlives the request's statement timeout (which bounds each chunk instead);
	// a client that goes away fails the next write and ends it.
	ctx, cancel := context.WithTimeout(context.WithoutCancel(r.Context()), exportTimeout)
	defer cancel()
	first, err := a.exportChunk(ctx, f, "")
	if err != nil {
		return err
	}
	w.Header().Set("Content-Type", "text/csv; charset=utf-8")
	w.Header().Set("Content-Disposition", fmt.Sprintf(`attachment; filename="campaign-%s-messages.csv"`, campaignID))
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(http.StatusOK)
	out := csv.NewWriter(w)
	if err := out.Write(csvHeader); err != nil {
		return nil // the client went away; the status is already sent
	}
	for chunk := first; ; {
		for _, m := range chunk {
			if err := out.Write(messageRecord(m)); err != nil {
				return nil
			}
		}
		out.Flush()
		if out.Error() != nil || len(chunk) < exportChunk {
			return nil
		}
		if chunk, err = a.exportChunk(ctx, f, chunk[len(chunk)-1].ID); err != nil {
			// Too late for a problem document: end the CSV short; the log says why.
			a.log.Warn().Err(err).Str("campaign", campaignID).Msg("CSV export ended early")
			return nil
		}
	}
}

func (a *API) exportChunk(ctx context.Context, f messageFilter, after string) ([]Message, error) {
	ctx, cancel := context.WithTimeout(ctx, a.cfg.StatementTimeout)
	defer cancel()
	return a.listMessages(ctx, f, after, exportChunk)
}
