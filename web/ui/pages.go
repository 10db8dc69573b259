package ui

import (
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/google/uuid"
)

// pageSize is the rows a list page asks for: every list is a cursor page of the API.
const pageSize = "50"

func pick(q url.Values, names ...string) url.Values {
	out := url.Values{}
	for _, n := range names {
		if v := strings.TrimSpace(q.Get(n)); v != "" {
			out.Set(n, v)
		}
	}
	return out
}

// ---- dashboard ----

type dashboardData struct {
	Campaigns []campaign
	// Progress is the stats of the recent campaigns that are running or paused, by id.
	Progress map[string]stats
	Stats    stats
	Inbound  []inbound
	StatsErr string
}

func (u *UI) loadDashboard(r *http.Request, c client) (dashboardData, error) {
	ctx := r.Context()
	d := dashboardData{Progress: map[string]stats{}}
	var cl list[campaign]
	if err := c.get(ctx, "/v1/campaigns", url.Values{"limit": {"10"}}, &cl); err != nil {
		return d, err
	}
	d.Campaigns = cl.Items
	for _, cp := range cl.Items {
		if cp.Status != "running" && cp.Status != "paused" {
			continue
		}
		var st stats
		if err := c.get(ctx, "/v1/campaigns/"+esc(cp.ID)+"/stats", nil, &st); err == nil {
			d.Progress[cp.ID] = st
		}
	}
	now := u.cfg.Now().UTC()
	if err := c.get(ctx, "/v1/stats", url.Values{"from": {now.Add(-24 * time.Hour).Format(time.RFC3339)},
		"to": {now.Format(time.RFC3339)}}, &d.Stats); err != nil {
		d.StatsErr = err.Error()
	}
	var in list[inbound]
	if err := c.get(ctx, "/v1/inbound", url.Values{"limit": {"8"}}, &in); err == nil {
		d.Inbound = in.Items
	}
	return d, nil
}

func (u *UI) dashboard(w http.ResponseWriter, r *http.Request, s session, c client) error {
	d, err := u.loadDashboard(r, c)
	if err != nil {
		return err
	}
	pg := u.newPage(r, s, "Dashboard", "dashboard", d)
	pg.Live = "/live/dashboard"
	u.render(w, r, http.StatusOK, "dashboard", pg)
	return nil
}

// ---- campaigns ----

func (u *UI) campaignList(w http.ResponseWriter, r *http.Request, s session, c client) error {
	q := pick(r.URL.Query(), "status", "cursor")
	q.Set("limit", pageSize)
	var l list[campaign]
	if err := c.get(r.Context(), "/v1/campaigns", q, &l); err != nil {
		return err
	}
	u.render(w, r, http.StatusOK, "campaigns", u.newPage(r, s, "Campaigns", "campaigns", l))
	return nil
}

type campaignForm struct {
	Values    url.Values
	Templates []tmpl
	Segments  []segment
	// ID and Version are set when a saved campaign is edited.
	ID      string
	Version int
}

func (u *UI) campaignFormData(r *http.Request, c client, values url.Values) (campaignForm, error) {
	f := campaignForm{Values: values}
	var tl list[tmpl]
	if err := c.get(r.Context(), "/v1/templates", url.Values{"limit": {"100"}}, &tl); err != nil {
		return f, err
	}
	var sl list[segment]
	if err := c.get(r.Context(), "/v1/segments", url.Values{"limit": {"100"}}, &sl); err != nil {
		return f, err
	}
	f.Templates, f.Segments = tl.Items, sl.Items
	return f, nil
}

func (u *UI) campaignNew(w http.ResponseWriter, r *http.Request, s session, c client) error {
	f, err := u.campaignFormData(r, c, url.Values{"schedule": {"now"}, "per_second": {"10"}})
	if err != nil {
		return err
	}
	u.render(w, r, http.StatusOK, "campaign_new", u.newPage(r, s, "New campaign", "campaigns", f))
	return nil
}

// campaignBody turns the form into the API's campaign input.
func campaignBody(v url.Values, zone string) map[string]any {
	b := map[string]any{"name": v.Get("name"), "topic": v.Get("topic"), "template_id": v.Get("template_id")}
	if id := v.Get("segment_id"); id != "" {
		b["segment_id"] = id
	}
	sched := map[string]any{"kind": v.Get("schedule")}
	switch v.Get("schedule") {
	case "at":
		at := v.Get("at")
		if t, err := time.ParseInLocation("2006-01-02T15:04", at, loadZone(zone)); err == nil {
			at = t.UTC().Format(time.RFC3339)
		}
		sched["at"] = at
	case "cron":
		sched["cron"] = v.Get("cron")
		sched["timezone"] = zone
	default:
		sched["kind"] = "now"
	}
	b["schedule"] = sched
	rl := map[string]any{}
	if n, err := strconv.Atoi(v.Get("per_second")); err == nil && n > 0 {
		rl["per_second"] = n
	}
	if n, err := strconv.Atoi(v.Get("per_minute")); err == nil && n > 0 {
		rl["per_minute"] = n
	}
	b["rate_limit"] = rl
	if v.Get("quiet_start") != "" || v.Get("quiet_end") != "" {
		fb := v.Get("quiet_zone")
		if fb == "" {
			fb = zone
		}
		b["quiet_hours"] = map[string]any{"start": v.Get("quiet_start"), "end": v.Get("quiet_end"), "timezone_fallback": fb}
	}
	return b
}

func loadZone(zone string) *time.Location {
	if l, err := time.LoadLocation(zone); err == nil {
		return l
	}
	return time.UTC
}

// campaignValues is a saved campaign as the form's fields (times in the operator's zone).
func campaignValues(cp campaign, zone string) url.Values {
	v := url.Values{"name": {cp.Name}, "topic": {cp.Topic}, "template_id": {cp.TemplateID}, "segment_id": {cp.SegmentID}}
	str := func(m map[string]any, k string) string {
		switch x := m[k].(type) {
		case string:
			return x
		case float64:
			if x == 0 {
				return ""
			}
			return strconv.FormatFloat(x, 'f', -1, 64)
		}
		return ""
	}
	kind := str(cp.Schedule, "kind")
	if kind == "" {
		kind = "now"
	}
	v.Set("schedule", kind)
	if t, ok := parseTime(str(cp.Schedule, "at")); ok {
		v.Set("at", t.In(loadZone(zone)).Format("2006-01-02T15:04"))
	}
	v.Set("cron", str(cp.Schedule, "cron"))
	v.Set("per_second", str(cp.RateLimit, "per_second"))
	v.Set("per_minute", str(cp.RateLimit, "per_minute"))
	if cp.QuietHours != nil {
		v.Set("quiet_start", str(cp.QuietHours, "start"))
		v.Set("quiet_end", str(cp.QuietHours, "end"))
		v.Set("quiet_zone", str(cp.QuietHours, "timezone_fallback"))
	}
	return v
}

// campaignEdit is the form on a saved campaign (draft, scheduled or paused), at its version.
func (u *UI) campaignEdit(w http.ResponseWriter, r *http.Request, s session, c client) error {
	var cp campaign
	if err := c.get(r.Context(), "/v1/campaigns/"+esc(vars(r, "id")), nil, &cp); err != nil {
		return err
	}
	f, err := u.campaignFormData(r, c, campaignValues(cp, s.Zone))
	if err != nil {
		return err
	}
	f.ID, f.Version = cp.ID, cp.Version
	u.render(w, r, http.StatusOK, "campaign_new", u.newPage(r, s, "Edit "+cp.Name, "campaigns", f))
	return nil
}

// campaignSave creates a draft (POST /campaigns) or replaces a campaign at the version its
// form showed (POST /campaigns/{id}); what the form does not show (an inline segment rule,
// the retry policy) is kept as saved.
func (u *UI) campaignSave(w http.ResponseWriter, r *http.Request, s session, c client) error {
	if err := r.ParseForm(); err != nil {
		return err
	}
	id := vars(r, "id")
	version, _ := strconv.Atoi(r.PostFormValue("version"))
	body := campaignBody(r.PostForm, s.Zone)
	var saved campaign
	var err error
	if id == "" {
		err = c.send(r.Context(), http.MethodPost, "/v1/campaigns", body, &saved, "Idempotency-Key", formToken(r))
	} else {
		var cp campaign
		if err = c.get(r.Context(), "/v1/campaigns/"+esc(id), nil, &cp); err == nil {
			if cp.SegmentRule != nil && body["segment_id"] == nil {
				body["segment_rule"] = cp.SegmentRule
			}
			if cp.Retry != nil {
				body["retry"] = cp.Retry
			}
			err = c.send(r.Context(), http.MethodPut, "/v1/campaigns/"+esc(id), body, &saved, "If-Match", etag(version))
		}
	}
	if err != nil {
		f, ferr := u.campaignFormData(r, c, r.PostForm)
		if ferr != nil {
			return err
		}
		f.ID, f.Version = id, version
		title := "New campaign"
		if id != "" {
			title = "Edit campaign"
		}
		u.render(w, r, http.StatusUnprocessableEntity, "campaign_new", u.newPage(r, s, title, "campaigns", f).withErr(err))
		return nil
	}
	if id != "" {
		back(w, r, "/campaigns/"+esc(saved.ID), "Campaign saved. Preview it again before launching.")
		return nil
	}
	back(w, r, "/campaigns/"+esc(saved.ID), "Campaign created. Preview it, then launch.")
	return nil
}

// formToken is the Idempotency-Key of a form: a hidden field filled once per rendered form,
// so a double submit is one command.
func formToken(r *http.Request) string {
	if t := r.PostFormValue("token"); t != "" && len(t) <= 64 {
		return t
	}
	return uuid.NewString()
}

type campaignData struct {
	C        campaign
	Template *tmpl
	Segment  *segment
	Stats    stats
	Preview  *campaignPreview
	Messages list[message]
	Filter   url.Values
	Token    string
}

func (u *UI) loadCampaign(r *http.Request, c client) (campaignData, error) {
	ctx := r.Context()
	id := vars(r, "id")
	d := campaignData{Token: uuid.NewString()}
	if err := c.get(ctx, "/v1/campaigns/"+esc(id), nil, &d.C); err != nil {
		return d, err
	}
	var t tmpl
	if err := c.get(ctx, "/v1/templates/"+esc(d.C.TemplateID), nil, &t); err == nil {
		d.Template = &t
	}
	if d.C.SegmentID != "" {
		var sg segment
		if err := c.get(ctx, "/v1/segments/"+esc(d.C.SegmentID), nil, &sg); err == nil {
			d.Segment = &sg
		}
	}
	if err := c.get(ctx, "/v1/campaigns/"+esc(id)+"/stats", nil, &d.Stats); err != nil {
		return d, err
	}
	d.Filter = pick(r.URL.Query(), "state", "status", "error_code", "phone", "cursor")
	q := url.Values{}
	for k, v := range d.Filter {
		q[k] = v
	}
	q.Set("limit", "25")
	if err := c.get(ctx, "/v1/campaigns/"+esc(id)+"/messages", q, &d.Messages); err != nil {
		return d, err
	}
	return d, nil
}

func (u *UI) campaignShow(w http.ResponseWriter, r *http.Request, s session, c client) error {
	d, err := u.loadCampaign(r, c)
	if err != nil {
		return err
	}
	pg := u.newPage(r, s, d.C.Name, "campaigns", d)
	pg.Live = "/live/campaigns/" + esc(d.C.ID)
	u.render(w, r, http.StatusOK, "campaign", pg)
	return nil
}

// campaignPreview runs the API's dry run and shows it on the campaign page.
func (u *UI) campaignPreview(w http.ResponseWriter, r *http.Request, s session, c client) error {
	d, err := u.loadCampaign(r, c)
	if err != nil {
		return err
	}
	var p campaignPreview
	perr := c.send(r.Context(), http.MethodPost, "/v1/campaigns/"+esc(d.C.ID)+"/preview", nil, &p)
	pg := u.newPage(r, s, d.C.Name, "campaigns", &d)
	if perr != nil {
		pg.withErr(perr)
	} else {
		d.Preview = &p
	}
	u.render(w, r, http.StatusOK, "campaign", pg)
	return nil
}

func (u *UI) campaignAction(w http.ResponseWriter, r *http.Request, s session, c client) error {
	id, action := vars(r, "id"), vars(r, "action")
	err := c.send(r.Context(), http.MethodPost, "/v1/campaigns/"+esc(id)+"/"+action,
		map[string]any{"reason": "from the web UI"}, nil, "Idempotency-Key", formToken(r))
	if err != nil {
		var ae *apiError
		if errors.As(err, &ae) && ae.Status != http.StatusUnauthorized {
			d, lerr := u.loadCampaign(r, c)
			if lerr != nil {
				return err
			}
			u.render(w, r, ae.Status, "campaign", u.newPage(r, s, d.C.Name, "campaigns", d).withErr(err))
			return nil
		}
		return err
	}
	done := map[string]string{"launch": "Launched.", "pause": "Paused.", "resume": "Resumed.", "cancel": "Cancelled."}[action]
	back(w, r, "/campaigns/"+esc(id), done)
	return nil
}

// campaignStatsJSON is the campaign monitor's counters once (the live stream sends the same).
func (u *UI) campaignStatsJSON(w http.ResponseWriter, r *http.Request, s session, c client) error {
	out, _, err := u.campaignSnapshot(r, s, c)
	if err != nil {
		return jsonErr(w, err)
	}
	securityHeaders(w)
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	return json.NewEncoder(w).Encode(out)
}

// campaignTimelineJSON is the campaign's funnel over its life for the monitor's chart.
func (u *UI) campaignTimelineJSON(w http.ResponseWriter, r *http.Request, s session, c client) error {
	var tl json.RawMessage
	if err := c.get(r.Context(), "/v1/campaigns/"+esc(vars(r, "id"))+"/timeline", url.Values{"buckets": {"120"}}, &tl); err != nil {
		return jsonErr(w, err)
	}
	securityHeaders(w)
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	_, err := w.Write(tl)
	return err
}

func jsonErr(w http.ResponseWriter, err error) error {
	var ae *apiError
	if !errors.As(err, &ae) {
		return err
	}
	securityHeaders(w)
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(ae.Status)
	return json.NewEncoder(w).Encode(map[string]any{"error": ae.Error()})
}

type messageData struct {
	M     map[string]any
	Trail []map[string]any
}

func (u *UI) messageShow(w http.ResponseWriter, r *http.Request, s session, c client) error {
	var m map[string]any
	if err := c.get(r.Context(), "/v1/messages/"+esc(vars(r, "id")), nil, &m); err != nil {
		return err
	}
	d := messageData{M: m}
	if msg, ok := m["message"].(map[string]any); ok {
		d.M = msg
	}
	if t, ok := m["trail"].([]any); ok {
		for _, e := range t {
			if em, ok := e.(map[string]any); ok {
				d.Trail = append(d.Trail, em)
			}
		}
	}
	u.render(w, r, http.StatusOK, "message", u.newPage(r, s, "Message", "campaigns", d))
	return nil
}

// ---- users ----

func (u *UI) userList(w http.ResponseWriter, r *http.Request, s session, c client) error {
	q := pick(r.URL.Query(), "q", "consent", "country", "topic", "phone_prefix", "cursor")
	q.Set("limit", pageSize)
	var l list[user]
	pg := u.newPage(r, s, "Users", "users", &l)
	if err := c.get(r.Context(), "/v1/users", q, &l); err != nil {
		var ae *apiError
		if !errors.As(err, &ae) || ae.Status == http.StatusUnauthorized {
			return err
		}
		pg.withErr(err)
	}
	u.render(w, r, http.StatusOK, "users", pg)
	return nil
}

type userData struct {
	U       user
	Inbound []inbound
	Window  windowState
	// Timeline is a page of the messages from and to the user, interleaved newest first;
	// InNext and OutNext are the cursors of each side's next page.
	Timeline        []timelineItem
	InNext, OutNext string
	Events          []map[string]any
	EventsNext      string
}

// timelineItem is one message of a profile's timeline: inbound (In) or outbound (Out).
type timelineItem struct {
	At  string
	In  *inbound
	Out *message
}

// interleave merges the newest-first inbound and outbound pages into one newest-first list.
func interleave(in []inbound, out []message) []timelineItem {
	items := make([]timelineItem, 0, len(in)+len(out))
	for i := range in {
		items = append(items, timelineItem{At: in[i].ReceivedAt, In: &in[i]})
	}
	for i := range out {
		items = append(items, timelineItem{At: out[i].QueuedAt, Out: &out[i]})
	}
	slices.SortStableFunc(items, func(a, b timelineItem) int {
		ta, _ := parseTime(a.At)
		tb, _ := parseTime(b.At)
		return tb.Compare(ta)
	})
	return items
}

type windowState struct {
	Open   bool
	Closes string
}

func window(u user, now time.Time) windowState {
	t, ok := parseTime(u.LastInboundAt)
	if !ok {
		return windowState{}
	}
	closes := t.Add(24 * time.Hour)
	return windowState{Open: now.Before(closes), Closes: closes.Format(time.RFC3339)}
}

func (u *UI) loadUser(r *http.Request, c client) (userData, error) {
	var d userData
	if err := c.get(r.Context(), "/v1/users/"+esc(vars(r, "phone")), nil, &d.U); err != nil {
		return d, err
	}
	d.Window = window(d.U, u.cfg.Now())
	return d, u.timeline(r, c, &d)
}

// timeline loads a page of the messages from (inbound) and to (outbound) the user into d,
// interleaved: each side pages on its own cursor (?in=, ?out=; "done" when it has no more).
func (u *UI) timeline(r *http.Request, c client, d *userData) error {
	ctx, q := r.Context(), r.URL.Query()
	var in list[inbound]
	if q.Get("in") != "done" {
		iq := url.Values{"phone": {d.U.Phone}, "limit": {timelinePage}}
		if v := q.Get("in"); v != "" {
			iq.Set("cursor", v)
		}
		if err := c.get(ctx, "/v1/inbound", iq, &in); err != nil {
			return err
		}
	}
	var out list[message]
	if q.Get("out") != "done" {
		oq := url.Values{"limit": {timelinePage}}
		if v := q.Get("out"); v != "" {
			oq.Set("cursor", v)
		}
		if err := c.get(ctx, "/v1/users/"+esc(d.U.Phone)+"/messages", oq, &out); err != nil {
			return err
		}
	}
	d.Inbound = in.Items
	d.Timeline = interleave(in.Items, out.Items)
	d.InNext, d.OutNext = in.NextCursor, out.NextCursor
	return nil
}

// timelinePage is how many messages of each direction a profile page shows.
const timelinePage = "25"

func (u *UI) userShow(w http.ResponseWriter, r *http.Request, s session, c client) error {
	ctx := r.Context()
	d, err := u.loadUser(r, c)
	if err != nil {
		return err
	}
	if s.Admin() {
		// The consent and subscription history is the user's event stream (an admin route).
		eq := url.Values{"stream": {"user-" + d.U.Phone}, "limit": {"50"}}
		if v := r.URL.Query().Get("ev"); v != "" {
			eq.Set("cursor", v)
		}
		var ev list[map[string]any]
		if err := c.get(ctx, "/v1/events", eq, &ev); err == nil {
			d.Events, d.EventsNext = ev.Items, ev.NextCursor
		}
	}
	u.render(w, r, http.StatusOK, "user", u.newPage(r, s, d.U.Phone, "users", d))
	return nil
}

// ---- inbox ----

func (u *UI) inbox(w http.ResponseWriter, r *http.Request, s session, c client) error {
	q := pick(r.URL.Query(), "q", "command", "phone", "cursor")
	q.Set("limit", pageSize)
	var l list[inbound]
	pg := u.newPage(r, s, "Inbox", "inbox", &l)
	if err := c.get(r.Context(), "/v1/inbound", q, &l); err != nil {
		var ae *apiError
		if !errors.As(err, &ae) || ae.Status == http.StatusUnauthorized {
			return err
		}
		pg.withErr(err)
	}
	if q.Get("cursor") == "" {
		live := pick(q, "q", "command", "phone")
		pg.Live = "/live/inbox"
		if len(live) > 0 {
			pg.Live += "?" + live.Encode()
		}
	}
	u.render(w, r, http.StatusOK, "inbox", pg)
	return nil
}

type conversationData struct {
	userData
	Templates []tmpl
	Token     string
	Body      string
}

func (u *UI) conversation(w http.ResponseWriter, r *http.Request, s session, c client) error {
	d, err := u.loadConversation(r, c)
	if err != nil {
		return err
	}
	pg := u.newPage(r, s, "Conversation with "+d.U.Phone, "inbox", d)
	if q := r.URL.Query(); q.Get("in") == "" && q.Get("out") == "" {
		pg.Live = "/live/inbox/" + esc(d.U.Phone)
	}
	u.render(w, r, http.StatusOK, "conversation", pg)
	return nil
}

func (u *UI) loadConversation(r *http.Request, c client) (conversationData, error) {
	ud, err := u.loadUser(r, c)
	if err != nil {
		return conversationData{}, err
	}
	d := conversationData{userData: ud, Token: uuid.NewString()}
	var tl list[tmpl]
	if err := c.get(r.Context(), "/v1/templates", url.Values{"limit": {"100"}}, &tl); err == nil {
		d.Templates = tl.Items
	}
	return d, nil
}

func (u *UI) reply(w http.ResponseWriter, r *http.Request, s session, c client) error {
	phone := vars(r, "phone")
	body := map[string]any{}
	if t := r.PostFormValue("template_id"); t != "" {
		body["template_id"] = t
	} else {
		body["body"] = r.PostFormValue("body")
	}
	err := c.send(r.Context(), http.MethodPost, "/v1/conversations/"+esc(phone)+"/messages", body, nil,
		"Idempotency-Key", formToken(r))
	if err != nil {
		var ae *apiError
		if errors.As(err, &ae) && ae.Status != http.StatusUnauthorized && ae.Status != http.StatusNotFound {
			d, lerr := u.loadConversation(r, c)
			if lerr != nil {
				return err
			}
			d.Body = r.PostFormValue("body")
			u.render(w, r, ae.Status, "conversation", u.newPage(r, s, "Conversation with "+d.U.Phone, "inbox", d).withErr(err))
			return nil
		}
		return err
	}
	back(w, r, "/inbox/"+esc(phone), "Reply queued: the send saga delivers it like any message.")
	return nil
}

// ---- imports ----

func (u *UI) importNew(w http.ResponseWriter, r *http.Request, s session, c client) error {
	u.render(w, r, http.StatusOK, "import_new", u.newPage(r, s, "Import users", "imports", nil))
	return nil
}

// importCreate streams the browser's multipart upload to POST /v1/imports unchanged: the
// API reads it into Postgres as it arrives.
func (u *UI) importCreate(w http.ResponseWriter, r *http.Request, s session, c client) error {
	var acc struct {
		ID string `json:"id"`
	}
	rec, err := c.do(r.Context(), http.MethodPost, "/v1/imports", r.Body, r.Header.Get("Content-Type"))
	if err == nil {
		err = decode(rec, &acc)
	}
	if err != nil {
		var ae *apiError
		if errors.As(err, &ae) && ae.Status != http.StatusUnauthorized {
			u.render(w, r, ae.Status, "import_new", u.newPage(r, s, "Import users", "imports", nil).withErr(err))
			return nil
		}
		return err
	}
	back(w, r, "/imports/"+esc(acc.ID), "")
	return nil
}

func (u *UI) importShow(w http.ResponseWriter, r *http.Request, s session, c client) error {
	var rep importReport
	if err := c.get(r.Context(), "/v1/imports/"+esc(vars(r, "id")), nil, &rep); err != nil {
		return err
	}
	pg := u.newPage(r, s, "Import "+rep.Source, "imports", rep)
	if rep.Status == "processing" {
		pg.Live = "/live/imports/" + esc(rep.ID)
	}
	u.render(w, r, http.StatusOK, "import", pg)
	return nil
}

func (u *UI) importRejections(w http.ResponseWriter, r *http.Request, s session, c client) error {
	rec, err := c.do(r.Context(), http.MethodGet, "/v1/imports/"+esc(vars(r, "id"))+"/rejections.csv", nil, "")
	if err != nil {
		return err
	}
	for _, h := range []string{"Content-Type", "Content-Disposition"} {
		if v := rec.header.Get(h); v != "" {
			w.Header().Set(h, v)
		}
	}
	securityHeaders(w)
	_, err = io.Copy(w, &rec.body)
	return err
}

// ---- segments ----

func (u *UI) segmentList(w http.ResponseWriter, r *http.Request, s session, c client) error {
	q := pick(r.URL.Query(), "cursor")
	q.Set("limit", pageSize)
	var l list[segment]
	if err := c.get(r.Context(), "/v1/segments", q, &l); err != nil {
		return err
	}
	u.render(w, r, http.StatusOK, "segments", u.newPage(r, s, "Segments", "segments", l))
	return nil
}

const exampleRule = `{
  "and": [
    {"field": "consent", "op": "eq", "value": "OPT_IN"},
    {"field": "country", "op": "in", "value": ["PE"]}
  ]
}`

type segmentForm struct {
	Values url.Values
	Token  string
	// ID and Version are set when an existing segment is edited.
	ID      string
	Version int
}

func (u *UI) segmentNew(w http.ResponseWriter, r *http.Request, s session, c client) error {
	d := segmentForm{Values: url.Values{"rule": {exampleRule}}, Token: uuid.NewString()}
	u.render(w, r, http.StatusOK, "segment_new", u.newPage(r, s, "New segment", "segments", d))
	return nil
}

// segmentEdit is the editor on a saved segment; its form carries the version it shows, so a
// save over someone else's change is refused (If-Match) instead of overwriting it.
func (u *UI) segmentEdit(w http.ResponseWriter, r *http.Request, s session, c client) error {
	var sg segment
	if err := c.get(r.Context(), "/v1/segments/"+esc(vars(r, "id")), nil, &sg); err != nil {
		return err
	}
	rule, err := json.MarshalIndent(sg.Rule, "", "  ")
	if err != nil {
		return err
	}
	d := segmentForm{Values: url.Values{"name": {sg.Name}, "description": {sg.Description}, "rule": {string(rule)}},
		Token: uuid.NewString(), ID: sg.ID, Version: sg.Version}
	u.render(w, r, http.StatusOK, "segment_new", u.newPage(r, s, "Edit "+sg.Name, "segments", d))
	return nil
}

// segmentSave creates a segment (POST /segments) or replaces one at the version its form
// showed (POST /segments/{id}).
func (u *UI) segmentSave(w http.ResponseWriter, r *http.Request, s session, c client) error {
	if err := r.ParseForm(); err != nil {
		return err
	}
	id := vars(r, "id")
	version, _ := strconv.Atoi(r.PostFormValue("version"))
	fail := func(err error) error {
		d := segmentForm{Values: r.PostForm, Token: uuid.NewString(), ID: id, Version: version}
		title := "New segment"
		if id != "" {
			title = "Edit segment"
		}
		u.render(w, r, http.StatusUnprocessableEntity, "segment_new", u.newPage(r, s, title, "segments", d).withErr(err))
		return nil
	}
	var rule json.RawMessage
	if err := json.Unmarshal([]byte(r.PostFormValue("rule")), &rule); err != nil {
		return fail(&apiError{Status: 422, Detail: "the rule is not valid JSON", Fields: []fieldError{{Field: "rule", Reason: err.Error()}}})
	}
	body := map[string]any{"name": r.PostFormValue("name"), "description": r.PostFormValue("description"), "rule": rule}
	var err error
	if id == "" {
		err = c.send(r.Context(), http.MethodPost, "/v1/segments", body, nil, "Idempotency-Key", formToken(r))
	} else {
		err = c.send(r.Context(), http.MethodPut, "/v1/segments/"+esc(id), body, nil, "If-Match", etag(version))
	}
	if err != nil {
		return fail(err)
	}
	back(w, r, "/segments", "Segment saved.")
	return nil
}

// etag is the If-Match value of a version the page showed.
func etag(version int) string { return `"` + strconv.Itoa(version) + `"` }

// remove deletes what path names at the version the page showed, then goes to list; a
// refusal (stale version, still in use, read-only key) is shown on the page at back.
func (u *UI) remove(noun, api, list string) handler {
	return func(w http.ResponseWriter, r *http.Request, s session, c client) error {
		id := vars(r, "id")
		version, _ := strconv.Atoi(r.PostFormValue("version"))
		err := c.send(r.Context(), http.MethodDelete, api+esc(id), nil, nil, "If-Match", etag(version))
		if err != nil {
			var ae *apiError
			if errors.As(err, &ae) && ae.Status != http.StatusUnauthorized {
				u.renderError(w, r, s, err)
				return nil
			}
			return err
		}
		back(w, r, list, strings.ToUpper(noun[:1])+noun[1:]+" deleted.")
		return nil
	}
}

// segmentCountJSON is what the rule editor calls as the operator types: the API's rule
// preview (count and a sample), or the API's errors at the rule part that is wrong.
func (u *UI) segmentCountJSON(w http.ResponseWriter, r *http.Request, s session, c client) error {
	securityHeaders(w)
	w.Header().Set("Content-Type", "application/json")
	var rule json.RawMessage
	if err := json.Unmarshal([]byte(r.PostFormValue("rule")), &rule); err != nil {
		w.WriteHeader(http.StatusUnprocessableEntity)
		return json.NewEncoder(w).Encode(map[string]any{"error": "the rule is not valid JSON: " + err.Error()})
	}
	var out struct {
		Count  int    `json:"count"`
		Sample []user `json:"sample"`
	}
	err := c.send(r.Context(), http.MethodPost, "/v1/segments/preview", map[string]any{"rule": rule, "sample": 5}, &out)
	if err != nil {
		var ae *apiError
		if !errors.As(err, &ae) {
			return err
		}
		w.WriteHeader(ae.Status)
		return json.NewEncoder(w).Encode(map[string]any{"error": ae.Error(), "fields": ae.Fields})
	}
	phones := make([]string, 0, len(out.Sample))
	for _, x := range out.Sample {
		phones = append(phones, x.Phone)
	}
	return json.NewEncoder(w).Encode(map[string]any{"count": out.Count, "sample": phones})
}

// ---- templates ----

func (u *UI) templateList(w http.ResponseWriter, r *http.Request, s session, c client) error {
	q := pick(r.URL.Query(), "cursor")
	q.Set("limit", pageSize)
	var l list[tmpl]
	if err := c.get(r.Context(), "/v1/templates", q, &l); err != nil {
		return err
	}
	u.render(w, r, http.StatusOK, "templates", u.newPage(r, s, "Templates", "templates", l))
	return nil
}

type templateForm struct {
	Values url.Values
	Token  string
	// ID and Version are set when a saved template is edited.
	ID      string
	Version int
	// Variants is how many locale fieldsets the form shows (the saved ones and a blank one).
	Variants []int
}

func newTemplateForm(values url.Values, id string, version int) templateForm {
	n := max(len(values["locale"])+1, 2)
	f := templateForm{Values: values, Token: uuid.NewString(), ID: id, Version: version}
	for i := range n {
		f.Variants = append(f.Variants, i)
	}
	return f
}

func (u *UI) templateNew(w http.ResponseWriter, r *http.Request, s session, c client) error {
	d := newTemplateForm(url.Values{"locale": {"es"}, "body": {"Hola {first_name|amigo}, "}, "content_sid": {""}}, "", 0)
	u.render(w, r, http.StatusOK, "template_new", u.newPage(r, s, "New template", "templates", d))
	return nil
}

// templateEdit is the editor on a saved template, at the version it shows.
func (u *UI) templateEdit(w http.ResponseWriter, r *http.Request, s session, c client) error {
	var t tmpl
	if err := c.get(r.Context(), "/v1/templates/"+esc(vars(r, "id")), nil, &t); err != nil {
		return err
	}
	v := url.Values{"name": {t.Name}}
	// The default locale first: the form's first variant is the default.
	locales := make([]string, 0, len(t.Variants))
	for l := range t.Variants {
		if l != t.DefaultLocale {
			locales = append(locales, l)
		}
	}
	slices.Sort(locales)
	if _, ok := t.Variants[t.DefaultLocale]; ok {
		locales = append([]string{t.DefaultLocale}, locales...)
	}
	for _, l := range locales {
		v.Add("locale", l)
		v.Add("body", t.Variants[l].Body)
		v.Add("content_sid", t.Variants[l].ContentSID)
	}
	d := newTemplateForm(v, t.ID, t.Version)
	u.render(w, r, http.StatusOK, "template_new", u.newPage(r, s, "Edit "+t.Name, "templates", d))
	return nil
}

// templateFromForm is the API's template input from the editor's fields: the variants in
// the form's order, the first one the default.
func templateFromForm(form url.Values) map[string]any {
	variants := map[string]variant{}
	locales, bodies, sids := form["locale"], form["body"], form["content_sid"]
	defaultLocale := ""
	for i, l := range locales {
		l = strings.TrimSpace(l)
		if l == "" {
			continue
		}
		v := variant{}
		if i < len(bodies) {
			v.Body = bodies[i]
		}
		if i < len(sids) {
			v.ContentSID = strings.TrimSpace(sids[i])
		}
		if v.Body == "" && v.ContentSID == "" {
			continue
		}
		if defaultLocale == "" {
			defaultLocale = l
		}
		variants[l] = v
	}
	return map[string]any{"name": form.Get("name"), "channel": "whatsapp", "default_locale": defaultLocale, "variants": variants}
}

// templateSave creates a template (POST /templates) or replaces one at the version its form
// showed (POST /templates/{id}).
func (u *UI) templateSave(w http.ResponseWriter, r *http.Request, s session, c client) error {
	if err := r.ParseForm(); err != nil {
		return err
	}
	id := vars(r, "id")
	version, _ := strconv.Atoi(r.PostFormValue("version"))
	body := templateFromForm(r.PostForm)
	var t tmpl
	var err error
	if id == "" {
		err = c.send(r.Context(), http.MethodPost, "/v1/templates", body, &t, "Idempotency-Key", formToken(r))
	} else {
		err = c.send(r.Context(), http.MethodPut, "/v1/templates/"+esc(id), body, &t, "If-Match", etag(version))
	}
	if err != nil {
		title := "New template"
		if id != "" {
			title = "Edit template"
		}
		d := newTemplateForm(r.PostForm, id, version)
		u.render(w, r, http.StatusUnprocessableEntity, "template_new", u.newPage(r, s, title, "templates", d).withErr(err))
		return nil
	}
	back(w, r, "/templates/"+esc(t.ID), "Template saved.")
	return nil
}

// templateDraftJSON is what the template editor calls as the operator types: the draft
// rendered for the chosen user (or locale) with its missing values, or the API's problems.
func (u *UI) templateDraftJSON(w http.ResponseWriter, r *http.Request, s session, c client) error {
	if err := r.ParseForm(); err != nil {
		return err
	}
	in := map[string]any{"template": templateFromForm(r.PostForm)}
	if p := strings.TrimSpace(r.PostFormValue("preview_phone")); p != "" {
		in["phone"] = p
	} else {
		in["attributes"] = map[string]any{}
	}
	if l := r.PostFormValue("preview_locale"); l != "" {
		in["locale"] = l
	}
	securityHeaders(w)
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	var out rendered
	if err := c.send(r.Context(), http.MethodPost, "/v1/templates/preview", in, &out); err != nil {
		var ae *apiError
		if !errors.As(err, &ae) {
			return err
		}
		w.WriteHeader(ae.Status)
		return json.NewEncoder(w).Encode(map[string]any{"error": ae.Detail, "fields": ae.Fields})
	}
	return json.NewEncoder(w).Encode(out)
}

type templateData struct {
	T       tmpl
	Phone   string
	Preview *rendered
}

func (u *UI) templateShow(w http.ResponseWriter, r *http.Request, s session, c client) error {
	var d templateData
	if err := c.get(r.Context(), "/v1/templates/"+esc(vars(r, "id")), nil, &d.T); err != nil {
		return err
	}
	u.render(w, r, http.StatusOK, "template", u.newPage(r, s, d.T.Name, "templates", d))
	return nil
}

// templatePreview renders the template for a chosen user (or the sample attributes), with the
// missing variables listed.
func (u *UI) templatePreview(w http.ResponseWriter, r *http.Request, s session, c client) error {
	var d templateData
	if err := c.get(r.Context(), "/v1/templates/"+esc(vars(r, "id")), nil, &d.T); err != nil {
		return err
	}
	d.Phone = strings.TrimSpace(r.PostFormValue("phone"))
	in := map[string]any{}
	if d.Phone != "" {
		in["phone"] = d.Phone
	}
	if l := r.PostFormValue("locale"); l != "" {
		in["locale"] = l
	}
	var out rendered
	pg := u.newPage(r, s, d.T.Name, "templates", &d)
	if err := c.send(r.Context(), http.MethodPost, "/v1/templates/"+esc(d.T.ID)+"/preview", in, &out); err != nil {
		pg.withErr(err)
	} else {
		d.Preview = &out
	}
	u.render(w, r, http.StatusOK, "template", pg)
	return nil
}
