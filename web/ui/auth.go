package ui

import (
	"errors"
	"net/http"
	"net/url"
	"strings"
	"time"
)

type loginData struct {
	Next    string
	Expired bool
}

func (u *UI) loginPage(w http.ResponseWriter, r *http.Request) {
	if _, ok := u.session(r); ok {
		http.Redirect(w, r, "/", http.StatusSeeOther)
		return
	}
	p := u.newPage(r, session{}, "Log in", "", loginData{Next: safeNext(r.URL.Query().Get("next")),
		Expired: r.URL.Query().Get("expired") != ""})
	u.render(w, r, http.StatusOK, "login", p)
}

// login checks the key against the API (any read route answers 401 to a wrong key) and asks
// the API for its role (an admin-only route answers 403 to a read key).
func (u *UI) login(w http.ResponseWriter, r *http.Request) {
	key := strings.TrimSpace(r.PostFormValue("key"))
	next := safeNext(r.PostFormValue("next"))
	fail := func(status int, msg string) {
		p := u.newPage(r, session{}, "Log in", "", loginData{Next: next})
		p.Error = msg
		u.render(w, r, status, "login", p)
	}
	if key == "" {
		fail(http.StatusUnprocessableEntity, "Enter your API key.")
		return
	}
	c := client{api: u.cfg.API, key: key}
	var probe list[map[string]any]
	if err := c.get(r.Context(), "/v1/campaigns", url.Values{"limit": {"1"}}, &probe); err != nil {
		var ae *apiError
		if errors.As(err, &ae) && ae.Status == http.StatusUnauthorized {
			fail(http.StatusUnauthorized, "That API key is not valid. Keys are set in HERALD_API_KEYS.")
			return
		}
		fail(http.StatusBadGateway, "Herald could not check the key: "+err.Error())
		return
	}
	role := roleAdmin
	if err := c.get(r.Context(), "/v1/events", url.Values{"limit": {"1"}}, &probe); err != nil {
		role = roleRead
	}
	zone := r.PostFormValue("zone")
	if _, err := time.LoadLocation(zone); err != nil || zone == "" {
		zone = "UTC"
	}
	s := session{Key: key, Role: role, Zone: zone, Expires: u.cfg.Now().Add(u.cfg.SessionTTL).Unix()}
	if err := u.setSession(w, r, s); err != nil {
		fail(http.StatusInternalServerError, "Could not start a session.")
		return
	}
	http.Redirect(w, r, next, http.StatusSeeOther)
}

func (u *UI) logout(w http.ResponseWriter, r *http.Request) {
	u.clearSession(w, r)
	http.Redirect(w, r, "/login", http.StatusSeeOther)
}

// setZone changes the zone times are shown in.
func (u *UI) setZone(w http.ResponseWriter, r *http.Request, s session, _ client) error {
	zone := r.PostFormValue("zone")
	if _, err := time.LoadLocation(zone); err != nil || zone == "" {
		back(w, r, "/", "Unknown time zone; times stay in "+s.Zone)
		return nil
	}
	s.Zone = zone
	if err := u.setSession(w, r, s); err != nil {
		return err
	}
	back(w, r, safeNext(r.PostFormValue("next")), "Times are now shown in "+zone)
	return nil
}

// safeNext keeps a redirect target on this site.
func safeNext(next string) string {
	if next == "" || !strings.HasPrefix(next, "/") || strings.HasPrefix(next, "//") || strings.HasPrefix(next, "/\\") {
		return "/"
	}
	return next
}
