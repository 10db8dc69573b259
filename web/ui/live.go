package ui

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"time"
)

// Live pages (dashboard, campaign monitor, import progress, inbox, conversation) hold a
// Server-Sent Events stream from /live/…: every liveEvery the stream takes the page's snapshot
// again through the API and sends it when it changed. The script (static/app.js) updates the
// counters it names and fetches the page again to swap its live regions, so new rows appear
// within about a second, under the strict CSP (no inline script, connect-src 'self').
const (
	liveEvery = time.Second
	// liveMaxAge ends a stream now and then (the browser's EventSource reconnects after the
	// retry interval), so a stream never outlives its session for long or holds a shutdown.
	liveMaxAge = 2 * time.Minute
)

// snapshot is what a live stream sends; done ends the stream after this one (an import that
// finished).
type snapshot func(r *http.Request, s session, c client) (v any, done bool, err error)

// live streams a snapshot as Server-Sent Events.
func (u *UI) live(snap snapshot) handler {
	return func(w http.ResponseWriter, r *http.Request, s session, c client) error {
		v, done, err := snap(r, s, c)
		if err != nil {
			return jsonErr(w, err)
		}
		rc := http.NewResponseController(w)
		securityHeaders(w)
		h := w.Header()
		h.Set("Content-Type", "text/event-stream")
		h.Set("Cache-Control", "no-store")
		h.Set("X-Accel-Buffering", "no")
		w.WriteHeader(http.StatusOK)
		if _, err := fmt.Fprint(w, "retry: 1000\n\n"); err != nil {
			return nil
		}
		last := ""
		tick := time.NewTicker(liveEvery)
		defer tick.Stop()
		end := time.After(liveMaxAge)
		for {
			b, err := json.Marshal(v)
			if err != nil {
				return err
			}
			if string(b) != last {
				last = string(b)
				if _, err := fmt.Fprintf(w, "data: %s\n\n", b); err != nil {
					return nil
				}
			}
			if done {
				_, _ = fmt.Fprint(w, "event: end\ndata: {}\n\n")
			}
			if err := rc.Flush(); err != nil || done {
				return nil
			}
			select {
			case <-r.Context().Done():
				return nil
			case <-end:
				return nil
			case <-tick.C:
			}
			v, done, err = snap(r, s, c)
			if err != nil {
				// The session's key was removed, the thing was deleted, or the API failed: the
				// page says so on its next load.
				var ae *apiError
				if errors.As(err, &ae) {
					_, _ = fmt.Fprint(w, "event: end\ndata: {}\n\n")
					_ = rc.Flush()
					return nil
				}
				return nil
			}
		}
	}
}

// campaignSnapshot is the campaign monitor's live counters.
func (u *UI) campaignSnapshot(r *http.Request, s session, c client) (any, bool, error) {
	var st stats
	if err := c.get(r.Context(), "/v1/campaigns/"+esc(vars(r, "id"))+"/stats", nil, &st); err != nil {
		return nil, false, err
	}
	var cp campaign
	if err := c.get(r.Context(), "/v1/campaigns/"+esc(vars(r, "id")), nil, &cp); err != nil {
		return nil, false, err
	}
	failed := 0
	for _, f := range st.Failures {
		failed += f.Count
	}
	return map[string]any{
		"status": cp.Status, "total": st.Total, "queued": st.ByState["queued"], "sent": st.Sent, "delivered": st.Delivered,
		"read": st.Read, "failed": failed, "skipped": st.ByState["skipped"], "deferred": st.ByState["deferred"],
		"delivery_rate": pct(st.DeliveryRate), "read_rate": pct(st.ReadRate),
		"remaining": st.Progress.Remaining, "per_second": st.Progress.PerSecond, "eta": eta(st.Progress.ETASeconds),
		"opt_outs": st.OptOuts["during"] + st.OptOuts["after"], "at": when(loadZone(s.Zone), st.At),
	}, false, nil
}

// dashboardSnapshot changes when the day's totals, a recent campaign or the inbox change.
func (u *UI) dashboardSnapshot(r *http.Request, s session, c client) (any, bool, error) {
	d, err := u.loadDashboard(r, c)
	if err != nil {
		return nil, false, err
	}
	d.Stats.At = "" // the stats' own clock is not a change
	for k, st := range d.Progress {
		st.At = ""
		d.Progress[k] = st
	}
	return d, false, nil
}

// inboxSnapshot is the newest inbound message the page's filters select.
func (u *UI) inboxSnapshot(r *http.Request, s session, c client) (any, bool, error) {
	q := pick(r.URL.Query(), "q", "command", "phone")
	if p := vars(r, "phone"); p != "" {
		q.Set("phone", p)
	}
	q.Set("limit", "1")
	var in list[inbound]
	if err := c.get(r.Context(), "/v1/inbound", q, &in); err != nil {
		return nil, false, err
	}
	snap := map[string]any{"inbound": in.Items}
	if p := vars(r, "phone"); p != "" {
		// A conversation also changes with its replies' states and the user's window.
		var out list[message]
		if err := c.get(r.Context(), "/v1/users/"+esc(p)+"/messages", url.Values{"limit": {"5"}}, &out); err != nil {
			return nil, false, err
		}
		snap["outbound"] = out.Items
	}
	return snap, false, nil
}

// importSnapshot is an import's report; the stream ends once the import has.
func (u *UI) importSnapshot(r *http.Request, s session, c client) (any, bool, error) {
	var rep importReport
	if err := c.get(r.Context(), "/v1/imports/"+esc(vars(r, "id")), nil, &rep); err != nil {
		return nil, false, err
	}
	return map[string]any{"status": rep.Status, "totals": rep.Totals}, rep.Status != "processing", nil
}
