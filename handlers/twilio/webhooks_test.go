package twilio_test

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/gorilla/mux"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/rs/zerolog"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"herald/commands"
	"herald/events"
	"herald/events/store"
	"herald/handlers/twilio"
	"herald/projections"
	"herald/schema/schematest"
)

// Twilio calls the public URL; a proxy in front of Herald strips "/hooks". The signature is
// over the public URL, whatever Host the request arrives with.
const (
	publicBase = "https://herald.example.com/hooks"
	authToken  = "testtoken123"
)

type edge struct {
	t      *testing.T
	pool   *pgxpool.Pool
	router *mux.Router
	runner *projections.Runner
}

func newEdge(t *testing.T) *edge {
	db := schematest.New(t)
	return newEdgeOn(t, db.Pool)
}

func newEdgeOn(t *testing.T, pool *pgxpool.Pool) *edge {
	s, err := store.New(pool, store.Config{})
	require.NoError(t, err)
	t.Cleanup(s.Close)
	reg := events.DefaultRegistry()
	wh, err := twilio.New(twilio.Config{PublicBaseURL: publicBase, AuthToken: authToken},
		commands.NewReceiveInboundHandler(s, reg, commands.Replies{}), commands.NewRecordStatusHandler(s, reg), nil)
	require.NoError(t, err)
	r := mux.NewRouter()
	wh.Register(r)
	runner, err := projections.NewRunner(projections.Config{}, pool, reg, nil, projections.All(), zerolog.Nop(), nil)
	require.NoError(t, err)
	return &edge{t: t, pool: pool, router: r, runner: runner}
}

// request builds a signed webhook request; tamper may change it after signing.
func request(path string, form url.Values, tamper func(r *http.Request, form url.Values) string) *http.Request {
	sig := twilio.Sign(authToken, publicBase+path, form)
	body := form.Encode()
	if tamper != nil {
		if b := tamper(nil, form); b != "" {
			body = b
		}
	}
	r := httptest.NewRequest(http.MethodPost, "http://10.0.0.7:8080"+path, strings.NewReader(body))
	r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	r.Header.Set(twilio.SignatureHeader, sig)
	return r
}

func (e *edge) serve(r *http.Request) *httptest.ResponseRecorder {
	rec := httptest.NewRecorder()
	e.router.ServeHTTP(rec, r)
	return rec
}

func (e *edge) post(path string, form url.Values) *httptest.ResponseRecorder {
	return e.serve(request(path, form, nil))
}

func (e *edge) catchUp() {
	require.NoError(e.t, e.runner.CatchUp(context.Background(), ""))
}

func (e *edge) count(query string, args ...any) int {
	var n int
	require.NoError(e.t, e.pool.QueryRow(context.Background(), query, args...).Scan(&n))
	return n
}

func fixture(t *testing.T, name string) url.Values {
	raw, err := os.ReadFile("testdata/" + name)
	require.NoError(t, err)
	form, err := url.ParseQuery(strings.TrimSpace(string(raw)))
	require.NoError(t, err)
	return form
}

func inbound(sid, from, body string) url.Values {
	return url.Values{"MessageSid": {sid}, "SmsSid": {sid}, "AccountSid": {"ACtest"}, "From": {"whatsapp:" + from},
		"To": {"whatsapp:+14155238886"}, "Body": {body}, "NumMedia": {"0"}, "WaId": {strings.TrimPrefix(from, "+")}}
}

func sid(n int) string { return fmt.Sprintf("SM%032d", n) }

func TestSignatures(t *testing.T) {
	t.Parallel()
	e := newEdge(t)
	base := fixture(t, "inbound_text.form")
	cases := []struct {
		name   string
		build  func() *http.Request
		status int
	}{
		{"valid, behind a proxy that rewrites host and path", func() *http.Request {
			return request(twilio.InboundPath, base, nil)
		}, http.StatusOK},
		{"wrong token", func() *http.Request {
			r := request(twilio.InboundPath, base, nil)
			r.Header.Set(twilio.SignatureHeader, twilio.Sign("othertoken", publicBase+twilio.InboundPath, base))
			return r
		}, http.StatusForbidden},
		{"parameter changed", func() *http.Request {
			return request(twilio.InboundPath, base, func(_ *http.Request, f url.Values) string {
				g := cloneForm(f)
				g.Set("Body", "STOP")
				return g.Encode()
			})
		}, http.StatusForbidden},
		{"parameter added", func() *http.Request {
			return request(twilio.InboundPath, base, func(_ *http.Request, f url.Values) string {
				g := cloneForm(f)
				g.Set("Extra", "1")
				return g.Encode()
			})
		}, http.StatusForbidden},
		{"parameter removed", func() *http.Request {
			return request(twilio.InboundPath, base, func(_ *http.Request, f url.Values) string {
				g := cloneForm(f)
				g.Del("ProfileName")
				return g.Encode()
			})
		}, http.StatusForbidden},
		{"query changed", func() *http.Request {
			r := request(twilio.InboundPath, base, nil)
			r.URL.RawQuery = "x=1"
			return r
		}, http.StatusForbidden},
		{"header missing", func() *http.Request {
			r := request(twilio.InboundPath, base, nil)
			r.Header.Del(twilio.SignatureHeader)
			return r
		}, http.StatusForbidden},
		{"signed for the Host Herald sees, not the public URL", func() *http.Request {
			r := request(twilio.InboundPath, base, nil)
			r.Header.Set(twilio.SignatureHeader, twilio.Sign(authToken, "http://10.0.0.7:8080"+twilio.InboundPath, base))
			return r
		}, http.StatusForbidden},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			rec := e.serve(tc.build())
			assert.Equal(t, tc.status, rec.Code, rec.Body.String())
		})
	}
	assert.Equal(t, 1, e.count(`SELECT count(*) FROM events WHERE type = $1`, events.TypeUserMessageReceived),
		"only the valid request stored anything")
}

func cloneForm(f url.Values) url.Values {
	g := url.Values{}
	for k, v := range f {
		g[k] = append([]string(nil), v...)
	}
	return g
}

func TestBadRequestsStoreNothing(t *testing.T) {
	t.Parallel()
	e := newEdge(t)
	form := inbound(sid(1), "+51987654321", "hi")
	cases := []struct {
		name   string
		build  func() *http.Request
		status int
		reason string
	}{
		{"json body", func() *http.Request {
			r := request(twilio.InboundPath, form, nil)
			r.Header.Set("Content-Type", "application/json")
			return r
		}, http.StatusUnsupportedMediaType, "Content-Type"},
		{"too large", func() *http.Request {
			big := cloneForm(form)
			big.Set("Body", strings.Repeat("x", 70<<10))
			return request(twilio.InboundPath, big, nil)
		}, http.StatusRequestEntityTooLarge, "limit"},
		{"malformed form", func() *http.Request {
			r := request(twilio.InboundPath, url.Values{"a": {"b"}}, nil)
			r.Body = http.NoBody
			bad := "MessageSid=%zz"
			r = httptest.NewRequest(http.MethodPost, "http://x"+twilio.InboundPath, strings.NewReader(bad))
			r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
			r.Header.Set(twilio.SignatureHeader, signRaw(twilio.InboundPath, bad))
			return r
		}, http.StatusBadRequest, "malformed"},
		{"missing MessageSid", func() *http.Request {
			f := cloneForm(form)
			f.Del("MessageSid")
			return request(twilio.InboundPath, f, nil)
		}, http.StatusBadRequest, "MessageSid"},
		{"From is not a phone", func() *http.Request {
			f := cloneForm(form)
			f.Set("From", "whatsapp:+1")
			return request(twilio.InboundPath, f, nil)
		}, http.StatusBadRequest, "From"},
		{"unknown status", func() *http.Request {
			return request(twilio.StatusPath, url.Values{"MessageSid": {sid(2)}, "MessageStatus": {"exploded"}}, nil)
		}, http.StatusBadRequest, "MessageStatus"},
		{"error code not a number", func() *http.Request {
			return request(twilio.StatusPath, url.Values{"MessageSid": {sid(2)}, "MessageStatus": {"failed"}, "ErrorCode": {"abc"}}, nil)
		}, http.StatusBadRequest, "ErrorCode"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			rec := e.serve(tc.build())
			assert.Equal(t, tc.status, rec.Code)
			assert.Contains(t, rec.Body.String(), tc.reason)
		})
	}
	assert.Zero(t, e.count(`SELECT count(*) FROM events`))
}

// signRaw signs a body that url.Values cannot represent (a malformed one) the way Twilio's
// algorithm would if it had sent it: over the parameters as parsed leniently.
func signRaw(path, body string) string {
	form := url.Values{}
	for _, kv := range strings.Split(body, "&") {
		k, v, _ := strings.Cut(kv, "=")
		form.Add(k, v)
	}
	return twilio.Sign(authToken, publicBase+path, form)
}

func TestInboundIsStoredRawAndNormalized(t *testing.T) {
	t.Parallel()
	e := newEdge(t)
	for _, name := range []string{"inbound_text.form", "inbound_media.form", "inbound_button.form"} {
		rec := e.post(twilio.InboundPath, fixture(t, name))
		require.Equal(t, http.StatusOK, rec.Code, rec.Body.String())
		assert.Contains(t, rec.Header().Get("Content-Type"), "xml")
		assert.Contains(t, rec.Body.String(), "<Response")
	}
	e.catchUp()
	var (
		phone, body, profile, command string
		raw, normalized               map[string]any
	)
	require.NoError(t, e.pool.QueryRow(context.Background(), `SELECT phone, body, profile_name, command, raw, normalized
FROM events_inbound WHERE message_sid = 'SMaa11bb22cc33dd44ee55ff6677889900'`).Scan(&phone, &body, &profile, &command, &raw, &normalized))
	assert.Equal(t, "+51987654321", phone)
	assert.Equal(t, "Hola, ¿tienen envío a Lima?", body)
	assert.Equal(t, "Ana Quispe", profile)
	assert.Empty(t, command)
	assert.Equal(t, []any{"text"}, raw["MessageType"], "unknown keys are kept in the raw form")
	assert.Equal(t, events.TimestampFromServer, normalized["timestamp_source"])

	require.NoError(t, e.pool.QueryRow(context.Background(), `SELECT normalized FROM events_inbound WHERE message_sid LIKE 'MMbb%'`).Scan(&normalized))
	assert.Len(t, normalized["media"], 2)

	// The button tap carried STOP: the Mexican sender (written +52 1 … by WhatsApp) is
	// created under today's number and opted out.
	var consent string
	require.NoError(t, e.pool.QueryRow(context.Background(), `SELECT consent FROM users WHERE phone = '+525512345678'`).Scan(&consent))
	assert.Equal(t, events.ConsentOptOut, consent)
	var last *time.Time
	require.NoError(t, e.pool.QueryRow(context.Background(), `SELECT last_inbound_at FROM users WHERE phone = '+51987654321'`).Scan(&last))
	assert.NotNil(t, last, "the 24-hour window starts at the last inbound message")
}

func TestCommands(t *testing.T) {
	t.Parallel()
	e := newEdge(t)
	cases := []struct {
		body        string
		wantConsent string // after a START first, so STOPs have something to change
		wantTopic   string
		subscribed  bool
		reply       string
	}{
		{"STOP", events.ConsentOptOut, "", false, "opted out"},
		{"  stop  ", events.ConsentOptOut, "", false, "opted out"},
		{"Stop!", events.ConsentOptOut, "", false, "opted out"},
		{"stóp", events.ConsentOptOut, "", false, "opted out"},
		{"StopAll", events.ConsentOptOut, "", false, "opted out"},
		{"stop all", events.ConsentOptOut, "", false, "opted out"},
		{"unsubscribe", events.ConsentOptOut, "", false, "opted out"},
		{"Cancel.", events.ConsentOptOut, "", false, "opted out"},
		{"END", events.ConsentOptOut, "", false, "opted out"},
		{"quit", events.ConsentOptOut, "", false, "opted out"},
		{"opt-out", events.ConsentOptOut, "", false, "opted out"},
		{"OPT OUT", events.ConsentOptOut, "", false, "opted out"},
		{"revoke", events.ConsentOptOut, "", false, "opted out"},
		{"start", events.ConsentOptIn, "", false, "opted in"},
		{"Yes", events.ConsentOptIn, "", false, "opted in"},
		{"UNSTOP", events.ConsentOptIn, "", false, "opted in"},
		{"SUBSCRIBE Black Friday Deals!", events.ConsentOptIn, "black-friday-deals", true, "subscribed to black-friday-deals"},
		{"subscribe  Ofertas de Año Nuevo", events.ConsentOptIn, "ofertas-de-ano-nuevo", true, "subscribed to ofertas-de-ano-nuevo"},
		{"help", events.ConsentOptIn, "", false, "Reply STOP"},
		{"INFO?", events.ConsentOptIn, "", false, "Reply STOP"},
		{"Hello there, stop by later", events.ConsentOptIn, "", false, ""},
	}
	for i, tc := range cases {
		t.Run(tc.body, func(t *testing.T) {
			phone := fmt.Sprintf("+1415555%04d", 100+i)
			require.Equal(t, http.StatusOK, e.post(twilio.InboundPath, inbound(sid(1000+2*i), phone, "START")).Code)
			rec := e.post(twilio.InboundPath, inbound(sid(1001+2*i), phone, tc.body))
			require.Equal(t, http.StatusOK, rec.Code)
			if tc.reply == "" {
				assert.Contains(t, rec.Body.String(), "<Response/>")
			} else {
				assert.Contains(t, rec.Body.String(), tc.reply)
			}
			e.catchUp()
			var consent string
			require.NoError(t, e.pool.QueryRow(context.Background(), `SELECT consent FROM users WHERE phone = $1`, phone).Scan(&consent))
			assert.Equal(t, tc.wantConsent, consent)
			if tc.wantTopic != "" {
				assert.Equal(t, 1, e.count(`SELECT count(*) FROM subscriptions WHERE phone = $1 AND topic = $2 AND subscribed`, phone, tc.wantTopic))
			}
		})
	}

	t.Run("unsubscribe from one topic keeps consent", func(t *testing.T) {
		phone := "+14155559999"
		e.post(twilio.InboundPath, inbound(sid(5001), phone, "SUBSCRIBE deals"))
		e.post(twilio.InboundPath, inbound(sid(5002), phone, "SUBSCRIBE news"))
		rec := e.post(twilio.InboundPath, inbound(sid(5003), phone, "unsubscribe DEALS"))
		assert.Contains(t, rec.Body.String(), "unsubscribed from deals")
		e.catchUp()
		assert.Equal(t, 1, e.count(`SELECT count(*) FROM subscriptions WHERE phone = $1 AND subscribed`, phone))
		assert.Equal(t, 1, e.count(`SELECT count(*) FROM users WHERE phone = $1 AND consent = 'OPT_IN' AND consent_source = 'inbound'`, phone))
	})

	t.Run("a plain message from an unknown number creates the user, opted out", func(t *testing.T) {
		phone := "+14155558888"
		rec := e.post(twilio.InboundPath, inbound(sid(6001), phone, "hi! what's this?"))
		assert.Contains(t, rec.Body.String(), "<Response/>")
		e.catchUp()
		assert.Equal(t, 1, e.count(`SELECT count(*) FROM users WHERE phone = $1 AND consent = 'OPT_OUT'`, phone))
	})

	t.Run("the user's stream holds the whole history", func(t *testing.T) {
		phone := "+14155557777"
		for i, body := range []string{"SUBSCRIBE deals", "STOP", "START"} {
			e.post(twilio.InboundPath, inbound(sid(7000+i), phone, body))
		}
		evs, err := store.ReadStream(context.Background(), e.pool, events.UserStream(phone), 0)
		require.NoError(t, err)
		var types []string
		for _, ev := range evs {
			types = append(types, ev.Type)
		}
		assert.Equal(t, []string{events.TypeUserCreated, events.TypeUserMessageReceived, events.TypeUserSubscribed,
			events.TypeUserConsentChanged, events.TypeUserMessageReceived, events.TypeUserConsentChanged,
			events.TypeUserMessageReceived, events.TypeUserConsentChanged}, types)
	})
}

func TestDuplicateAndConcurrentDeliveriesAreStoredOnce(t *testing.T) {
	t.Parallel()
	e := newEdge(t)
	form := inbound(sid(42), "+51987650000", "SUBSCRIBE deals")
	status := url.Values{"MessageSid": {sid(43)}, "MessageStatus": {"delivered"}, "To": {"whatsapp:+51987650000"}}
	var wg sync.WaitGroup
	codes := make(chan int, 40)
	for i := 0; i < 20; i++ {
		wg.Add(2)
		go func() {
			defer wg.Done()
			codes <- e.post(twilio.InboundPath, form).Code
		}()
		go func() { defer wg.Done(); codes <- e.post(twilio.StatusPath, status).Code }()
	}
	wg.Wait()
	close(codes)
	for c := range codes {
		assert.Equal(t, http.StatusOK, c)
	}
	// A day later, Twilio retries once more.
	assert.Equal(t, http.StatusOK, e.post(twilio.InboundPath, form).Code)
	assert.Equal(t, http.StatusOK, e.post(twilio.StatusPath, status).Code)

	assert.Equal(t, 1, e.count(`SELECT count(*) FROM events WHERE type = $1`, events.TypeUserMessageReceived))
	assert.Equal(t, 1, e.count(`SELECT count(*) FROM events WHERE type = $1`, events.TypeUserSubscribed))
	assert.Equal(t, 1, e.count(`SELECT count(*) FROM events WHERE type = $1`, events.TypeMessageStatusReceived))
	e.catchUp()
	assert.Equal(t, 1, e.count(`SELECT callbacks FROM message_provider_status WHERE message_sid = $1`, sid(43)))
}

// TestConversationMessagesAreStoredOnce: a conversation message (or HELP) from a known user is
// appended without reading the user's stream; from a new user it creates the user. Concurrent and
// late deliveries of either are stored once and answered 200 with the same reply.
func TestConversationMessagesAreStoredOnce(t *testing.T) {
	t.Parallel()
	e := newEdge(t)
	const phone = "+51987650001"
	first := inbound(sid(50), phone, "hola")     // creates the user
	known := inbound(sid(51), phone, "¿precio?") // a known user
	help := inbound(sid(52), phone, "help")      // HELP: a reply, no state change
	for _, form := range []url.Values{first, known, help} {
		var wg sync.WaitGroup
		replies := make(chan string, 10)
		for range 10 {
			wg.Go(func() {
				rec := e.post(twilio.InboundPath, form)
				assert.Equal(t, http.StatusOK, rec.Code, rec.Body.String())
				replies <- rec.Body.String()
			})
		}
		wg.Wait()
		close(replies)
		want := e.post(twilio.InboundPath, form) // a late retry
		assert.Equal(t, http.StatusOK, want.Code)
		for r := range replies {
			assert.Equal(t, want.Body.String(), r)
		}
	}
	assert.Contains(t, e.post(twilio.InboundPath, help).Body.String(), "Reply STOP")
	assert.Equal(t, 1, e.count(`SELECT count(*) FROM events WHERE type = $1`, events.TypeUserCreated))
	assert.Equal(t, 3, e.count(`SELECT count(*) FROM events WHERE type = $1`, events.TypeUserMessageReceived))
	assert.Equal(t, 4, e.count(`SELECT count(*) FROM events WHERE stream_id = $1`, events.UserStream(phone)))
	assert.Equal(t, 4, e.count(`SELECT max(stream_version) FROM events WHERE stream_id = $1`, events.UserStream(phone)))
	assert.Zero(t, e.count(`SELECT count(*) FROM events WHERE type = $1`, events.TypeUserConsentChanged), "nobody opted in")
}

// TestKeywordsAfterOtherWritersAndLateRetries: the inbound handler remembers the state it wrote
// and appends the next keyword from that user without reading, expecting the version it wrote.
// A write from elsewhere in between (the API, another process) or a late retry of an earlier
// message must still be decided from the stream as it is.
func TestKeywordsAfterOtherWritersAndLateRetries(t *testing.T) {
	t.Parallel()
	db := schematest.New(t)
	e := newEdgeOn(t, db.Pool)
	s, err := store.New(db.Pool, store.Config{})
	require.NoError(t, err)
	t.Cleanup(s.Close)
	ctx := context.Background()
	history := func(phone string) []string {
		evs, err := store.ReadStream(ctx, e.pool, events.UserStream(phone), 0)
		require.NoError(t, err)
		var out []string
		for _, ev := range evs {
			out = append(out, ev.Type)
		}
		return out
	}
	foreign := func(phone string, ev events.Event) {
		rec, err := events.NewRecord(uuid.New(), events.UserStream(phone), ev, events.Metadata{Actor: "api"})
		require.NoError(t, err)
		_, err = s.Append(ctx, events.UserStream(phone), store.AnyVersion, rec)
		require.NoError(t, err)
	}
	const (
		created  = events.TypeUserCreated
		message  = events.TypeUserMessageReceived
		consent  = events.TypeUserConsentChanged
		subbed   = events.TypeUserSubscribed
		unsubbed = events.TypeUserUnsubscribed
	)
	for i, tc := range []struct {
		name  string
		steps func(phone string)
		want  []string
		opted string
	}{
		{
			name: "an opt-out through the API before STOP",
			steps: func(phone string) {
				e.post(twilio.InboundPath, inbound(sid(8100), phone, "START"))
				foreign(phone, events.UserConsentChanged{Phone: phone, Consent: events.ConsentOptOut, Source: "api"})
				e.post(twilio.InboundPath, inbound(sid(8101), phone, "STOP")) // nothing left to change
			},
			want:  []string{created, message, consent, consent, message},
			opted: events.ConsentOptOut,
		},
		{
			name: "a subscription through the API before UNSUBSCRIBE",
			steps: func(phone string) {
				e.post(twilio.InboundPath, inbound(sid(8200), phone, "hola"))
				foreign(phone, events.UserSubscribed{Phone: phone, Topic: "news", Source: "api"})
				e.post(twilio.InboundPath, inbound(sid(8201), phone, "UNSUBSCRIBE news"))
			},
			want:  []string{created, message, subbed, message, unsubbed},
			opted: events.ConsentOptOut,
		},
		{
			name: "conversation messages between keywords",
			steps: func(phone string) {
				e.post(twilio.InboundPath, inbound(sid(8300), phone, "SUBSCRIBE deals"))
				e.post(twilio.InboundPath, inbound(sid(8301), phone, "gracias"))
				e.post(twilio.InboundPath, inbound(sid(8302), phone, "STOP"))
				e.post(twilio.InboundPath, inbound(sid(8303), phone, "help"))
				e.post(twilio.InboundPath, inbound(sid(8304), phone, "START"))
			},
			want:  []string{created, message, subbed, consent, message, message, consent, message, message, consent},
			opted: events.ConsentOptIn,
		},
		{
			name: "a late retry of STOP after START",
			steps: func(phone string) {
				e.post(twilio.InboundPath, inbound(sid(8400), phone, "STOP"))
				e.post(twilio.InboundPath, inbound(sid(8401), phone, "START"))
				rec := e.post(twilio.InboundPath, inbound(sid(8400), phone, "STOP")) // stored once, answered again
				assert.Equal(t, http.StatusOK, rec.Code)
				assert.Contains(t, rec.Body.String(), "opted out")
			},
			want:  []string{created, message, message, consent},
			opted: events.ConsentOptIn,
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			phone := fmt.Sprintf("+1415556%04d", i)
			tc.steps(phone)
			assert.Equal(t, tc.want, history(phone))
			e.catchUp()
			assert.Equal(t, 1, e.count(`SELECT count(*) FROM users WHERE phone = $1 AND consent = $2`, phone, tc.opted))
		})
	}
}

// permutations returns every ordering of items.
func permutations(items []string) [][]string {
	if len(items) <= 1 {
		return [][]string{append([]string(nil), items...)}
	}
	var out [][]string
	for i := range items {
		rest := append(append([]string(nil), items[:i]...), items[i+1:]...)
		for _, p := range permutations(rest) {
			out = append(out, append([]string{items[i]}, p...))
		}
	}
	return out
}

func TestDerivedStatusIsOrderIndependent(t *testing.T) {
	t.Parallel()
	e := newEdge(t)
	sets := []struct {
		statuses []string
		want     string
		wantCode *int
	}{
		{[]string{"queued", "sent", "delivered", "read", "failed"}, "read", nil},
		{[]string{"sent", "undelivered", "delivered"}, "delivered", nil},
		{[]string{"queued", "sent", "failed"}, "failed", intp(30008)},
	}
	n := 0
	var sids [][]string
	for si, set := range sets {
		var these []string
		for pi, order := range permutations(set.statuses) {
			s := fmt.Sprintf("SM%02d%030d", si, pi)
			these = append(these, s)
			// Each status once, then a duplicate of one of them.
			order = append(order, order[pi%len(order)])
			for _, st := range order {
				form := url.Values{"MessageSid": {s}, "MessageStatus": {st}, "To": {"whatsapp:+51987654321"}}
				if st == "failed" || st == "undelivered" {
					form.Set("ErrorCode", "30008")
				}
				require.Equal(t, http.StatusOK, e.post(twilio.StatusPath, form).Code)
				n++
			}
		}
		sids = append(sids, these)
	}
	require.Len(t, sids[0], 120)
	e.catchUp()
	for si, set := range sets {
		for _, s := range sids[si] {
			var status string
			var code *int
			require.NoError(t, e.pool.QueryRow(context.Background(),
				`SELECT status, error_code FROM message_provider_status WHERE message_sid = $1`, s).Scan(&status, &code))
			assert.Equal(t, set.want, status, s)
			assert.Equal(t, set.wantCode, code, s)
		}
	}
	assert.Equal(t, n-len(sids[0])-len(sids[1])-len(sids[2]), e.count(`SELECT count(*) FROM delivery_receipts`),
		"every callback but the duplicates is kept raw")
}

func intp(n int) *int { return &n }

func TestErrorCode21610OptsTheUserOut(t *testing.T) {
	t.Parallel()
	e := newEdge(t)
	phone := "+51987651111"
	require.Equal(t, http.StatusOK, e.post(twilio.InboundPath, inbound(sid(1), phone, "START")).Code)
	form := url.Values{"MessageSid": {sid(2)}, "MessageStatus": {"failed"}, "ErrorCode": {"21610"}, "To": {"whatsapp:" + phone}}
	require.Equal(t, http.StatusOK, e.post(twilio.StatusPath, form).Code)
	require.Equal(t, http.StatusOK, e.post(twilio.StatusPath, form).Code)
	e.catchUp()
	var consent, source string
	require.NoError(t, e.pool.QueryRow(context.Background(), `SELECT consent, consent_source FROM users WHERE phone = $1`, phone).Scan(&consent, &source))
	assert.Equal(t, events.ConsentOptOut, consent)
	assert.Equal(t, "twilio", source)
	assert.Equal(t, 1, e.count(`SELECT count(*) FROM events WHERE stream_id = $1 AND type = $2 AND data->>'consent' = 'OPT_OUT'`,
		events.UserStream(phone), events.TypeUserConsentChanged))
}

func TestACallbackAheadOfTheSendIsKept(t *testing.T) {
	t.Parallel()
	e := newEdge(t)
	form := fixture(t, "status_undelivered.form")
	rec := e.serve(request(twilio.StatusPath+"?message_id=6f9c1c2e-1111-4c55-9d0e-6a6f2d1e8b10&attempt=2", form, nil))
	require.Equal(t, http.StatusOK, rec.Code, rec.Body.String())
	e.catchUp()
	var status, messageID, errMsg string
	var code int
	require.NoError(t, e.pool.QueryRow(context.Background(), `SELECT status, error_code, error_message, message_id FROM message_provider_status
WHERE message_sid = 'SMff11bb22cc33dd44ee55ff6677889900'`).Scan(&status, &code, &errMsg, &messageID))
	assert.Equal(t, "undelivered", status)
	assert.Equal(t, 63016, code)
	assert.Contains(t, errMsg, "outside the allowed window")
	assert.Equal(t, "6f9c1c2e-1111-4c55-9d0e-6a6f2d1e8b10", messageID)
}

func TestPostgresDownAnswers503SoTwilioRetries(t *testing.T) {
	t.Parallel()
	pool, err := pgxpool.New(context.Background(), "postgres://postgres@127.0.0.1:1/none?sslmode=disable&connect_timeout=1")
	require.NoError(t, err)
	t.Cleanup(pool.Close)
	e := newEdgeOn(t, pool)
	rec := e.post(twilio.InboundPath, inbound(sid(1), "+51987654321", "STOP"))
	assert.Equal(t, http.StatusServiceUnavailable, rec.Code)
	rec = e.post(twilio.StatusPath, url.Values{"MessageSid": {sid(2)}, "MessageStatus": {"sent"}})
	assert.Equal(t, http.StatusServiceUnavailable, rec.Code)
}
