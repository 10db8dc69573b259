package twiliosim

import (
	"net/http"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestLifecycleCallbacksAreSignedAndInOrder(t *testing.T) {
	t.Parallel()
	h := newHerald(t)
	sim, base := newSim(t)
	cb := h.callbackURL("0190a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b", 2)
	sid := create(t, base, textForm(testTo, cb))
	waitIdle(t, sim)

	got := h.received()
	require.Len(t, got, 3, "sent, delivered, read; no callback for queued")
	for i, want := range []string{"sent", "delivered", "read"} {
		r := got[i]
		assert.True(t, r.Valid, "%s: X-Twilio-Signature verifies against the StatusCallback URL", want)
		assert.Equal(t, "/webhooks/twilio/status", r.Path)
		assert.Equal(t, "0190a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b", r.Query.Get("message_id"), "the query is kept")
		assert.Equal(t, "2", r.Query.Get("attempt"))
		f := r.Form
		assert.Equal(t, want, f.Get("MessageStatus"))
		assert.Equal(t, want, f.Get("SmsStatus"))
		assert.Equal(t, sid, f.Get("MessageSid"))
		assert.Equal(t, sid, f.Get("SmsSid"))
		assert.Equal(t, testSID, f.Get("AccountSid"))
		assert.Equal(t, testSender, f.Get("From"))
		assert.Equal(t, testTo, f.Get("To"))
		assert.Equal(t, "2010-04-01", f.Get("ApiVersion"))
		assert.Equal(t, "whatsapp", f.Get("ChannelPrefix"))
		assert.Regexp(t, `^XE[0-9a-f]{32}$`, f.Get("ChannelInstallSid"))
		assert.False(t, f.Has("ErrorCode"), "no ErrorCode unless failed/undelivered")
		assert.False(t, f.Has("ChannelStatusMessage"))
		assert.Equal(t, "application/x-www-form-urlencoded", r.Header.Get("Content-Type"))
		assert.NotEmpty(t, r.Token, "I-Twilio-Idempotency-Token")
	}
	assert.Equal(t, "READ", got[2].Form.Get("EventType"))

	fetched := call(t, http.MethodGet, messageURL(base, sid), nil)
	assert.Equal(t, "read", fetched.JSON["status"], "fetch reflects the current status")
	assert.Regexp(t, dateRe, fetched.JSON["date_sent"], "date_sent is set once sent")

	m, ok := sim.Message(sid)
	require.True(t, ok)
	var history []string
	for _, c := range m.History {
		history = append(history, c.Status)
	}
	assert.Equal(t, []string{"queued", "sent", "delivered", "read"}, history)
	for _, c := range sim.Callbacks() {
		assert.Equal(t, http.StatusOK, c.ResponseStatus)
		assert.Equal(t, 1, c.Attempt)
		assert.Equal(t, cb, c.URL)
	}
}

func TestLifecycleOutcomes(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name     string
		mutate   func(*Config)
		statuses []string
		codes    []int // the allowed ErrorCode of the last callback (nil: none)
	}{
		{"everything fails", func(c *Config) { c.FailRate = 1 }, []string{"failed"}, DefaultFailedCodes},
		{"everything undelivered", func(c *Config) { c.UndeliveredRate = 1 }, []string{"sent", "undelivered"}, DefaultUndeliveredCodes},
		{"nothing read", func(c *Config) { c.ReadRate = Rate(0) }, []string{"sent", "delivered"}, nil},
		{"custom failed code", func(c *Config) { c.FailRate, c.FailedCodes = 1, []int{63016} }, []string{"failed"}, []int{63016}},
		{"messaging service reports queued first", nil, []string{"queued", "sent", "delivered", "read"}, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			h := newHerald(t)
			var mutate []func(*Config)
			if tc.mutate != nil {
				mutate = append(mutate, tc.mutate)
			}
			sim, base := newSim(t, mutate...)
			form := textForm(testTo, h.callbackURL("m", 1))
			if tc.mutate == nil {
				form.Del("From")
				form.Set("MessagingServiceSid", "MG0123456789abcdef0123456789abcdef")
			}
			sid := create(t, base, form)
			waitIdle(t, sim)

			assert.Equal(t, tc.statuses, h.statuses(sid))
			got := h.received()
			last := got[len(got)-1]
			assert.True(t, last.Valid)
			fetched := call(t, http.MethodGet, messageURL(base, sid), nil)
			assert.Equal(t, tc.statuses[len(tc.statuses)-1], fetched.JSON["status"])
			if tc.codes == nil {
				assert.False(t, last.Form.Has("ErrorCode"))
				assert.Nil(t, fetched.JSON["error_code"])
				return
			}
			code, err := strconv.Atoi(last.Form.Get("ErrorCode"))
			require.NoError(t, err)
			assert.Contains(t, tc.codes, code)
			assert.NotEmpty(t, last.Form.Get("ChannelStatusMessage"))
			assert.Equal(t, float64(code), fetched.JSON["error_code"])
			assert.Equal(t, last.Form.Get("ChannelStatusMessage"), fetched.JSON["error_message"])
			assert.Regexp(t, dateRe, fetched.JSON["date_sent"])
		})
	}
}

func TestNoStatusCallbackNoCallbacks(t *testing.T) {
	t.Parallel()
	sim, base := newSim(t)
	sid := create(t, base, textForm(testTo, ""))
	waitIdle(t, sim)
	assert.Empty(t, sim.Callbacks())
	m, _ := sim.Message(sid)
	assert.Equal(t, "read", m.Status, "the lifecycle runs anyway")
}

func TestShuffledDuplicatedAndDroppedCallbacks(t *testing.T) {
	t.Parallel()
	t.Run("shuffled: never the true order, the stored status still ends at read", func(t *testing.T) {
		t.Parallel()
		h := newHerald(t)
		sim, base := newSim(t, func(c *Config) { c.ShuffleCallbacks = true })
		sid := create(t, base, textForm(testTo, h.callbackURL("m", 1)))
		waitIdle(t, sim)
		got := h.statuses(sid)
		assert.ElementsMatch(t, []string{"sent", "delivered", "read"}, got)
		assert.NotEqual(t, []string{"sent", "delivered", "read"}, got)
		m, _ := sim.Message(sid)
		assert.Equal(t, "read", m.Status)
	})
	t.Run("duplicated: each callback twice with the same idempotency token", func(t *testing.T) {
		t.Parallel()
		h := newHerald(t)
		sim, base := newSim(t, func(c *Config) { c.DuplicateRate = 1 })
		sid := create(t, base, textForm(testTo, h.callbackURL("m", 1)))
		waitIdle(t, sim)
		assert.Equal(t, []string{"sent", "sent", "delivered", "delivered", "read", "read"}, h.statuses(sid))
		got := h.received()
		for i := 0; i < len(got); i += 2 {
			assert.Equal(t, got[i].Token, got[i+1].Token)
			assert.Equal(t, got[i].Raw, got[i+1].Raw)
			assert.True(t, got[i+1].Valid)
		}
		assert.NotEqual(t, got[0].Token, got[2].Token, "different events, different tokens")
		dups := 0
		for _, c := range sim.Callbacks() {
			if c.Duplicate {
				dups++
			}
		}
		assert.Equal(t, 3, dups)
	})
	t.Run("dropped: no callbacks, fetch still shows the status", func(t *testing.T) {
		t.Parallel()
		h := newHerald(t)
		sim, base := newSim(t, func(c *Config) { c.DropCallbackRate = 1 })
		sid := create(t, base, textForm(testTo, h.callbackURL("m", 1)))
		waitIdle(t, sim)
		assert.Empty(t, h.received())
		assert.Equal(t, "read", call(t, http.MethodGet, messageURL(base, sid), nil).JSON["status"])
	})
}

func TestCallbackRetries(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name     string
		fragment string
		mutate   func(*Config)
		attempts int // deliveries of the first (sent) callback
	}{
		{"Twilio's default: a 503 is not retried", "", nil, 1},
		{"#rp=5xx: retried once (rc default 1)", "#rp=5xx", nil, 2},
		{"#rc=3&rp=ct,5xx: retried three times", "#rc=3&rp=ct,5xx", nil, 4},
		{"#rc=0&rp=all: not retried", "#rc=0&rp=all", nil, 1},
		{"config policy 5xx with 2 retries", "", func(c *Config) { c.CallbackRetryPolicy, c.CallbackRetries = "5xx", 2 }, 3},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			h := newHerald(t)
			h.respond = func(_ int, r received) (int, string) {
				if r.Form.Get("MessageStatus") == "sent" {
					return http.StatusServiceUnavailable, "temporarily unable to store the webhook"
				}
				return http.StatusOK, ""
			}
			mutate := []func(*Config){func(c *Config) { c.ReadRate = Rate(0) }}
			if tc.mutate != nil {
				mutate = append(mutate, tc.mutate)
			}
			sim, base := newSim(t, mutate...)
			cb := h.callbackURL("m", 1)
			sid := create(t, base, textForm(testTo, cb+tc.fragment))
			waitIdle(t, sim)
			assert.Equal(t, append(slices.Repeat([]string{"sent"}, tc.attempts), "delivered"), h.statuses(sid))
			for _, r := range h.received() {
				assert.True(t, r.Valid, "signed without the fragment")
			}
			var attempts []int
			for _, c := range sim.Callbacks() {
				assert.Equal(t, cb, c.URL, "the fragment is not part of the signed URL")
				if c.Status == "sent" {
					attempts = append(attempts, c.Attempt)
					assert.Equal(t, http.StatusServiceUnavailable, c.ResponseStatus)
				}
			}
			require.Len(t, attempts, tc.attempts)
			assert.Equal(t, tc.attempts, attempts[len(attempts)-1])
		})
	}
}

func TestCallbackConnectionFailureIsRetriedAndRecorded(t *testing.T) {
	t.Parallel()
	h := newHerald(t)
	dead := h.srv.URL
	h.srv.Close() // nothing listens there any more
	sim, base := newSim(t, func(c *Config) { c.FailRate = 1 })
	create(t, base, textForm(testTo, dead+"/webhooks/twilio/status?message_id=m&attempt=1"))
	waitIdle(t, sim)
	cbs := sim.Callbacks()
	require.Len(t, cbs, 2, "Twilio's default: one retry after a connection failure")
	for i, c := range cbs {
		assert.Equal(t, i+1, c.Attempt)
		assert.NotEmpty(t, c.Err)
		assert.Zero(t, c.ResponseStatus)
		assert.Equal(t, "failed", c.Status)
	}
}

func TestDeliveryBaseURL(t *testing.T) {
	t.Parallel()
	// Herald sits behind a proxy: Twilio signs https://herald.example.com/…, the request
	// arrives at the real server. Herald must verify against its public URL.
	h := newHerald(t)
	h.public = "https://herald.example.com"
	sim, base := newSim(t, func(c *Config) { c.DeliveryBaseURL = h.srv.URL; c.ReadRate = Rate(0) })
	sid := create(t, base, textForm(testTo, h.callbackURL("m", 1)))
	waitIdle(t, sim)
	require.Equal(t, []string{"sent", "delivered"}, h.statuses(sid))
	for _, r := range h.received() {
		assert.True(t, r.Valid)
	}
	for _, c := range sim.Callbacks() {
		assert.Equal(t, "https://herald.example.com/webhooks/twilio/status?message_id=m&attempt=1", c.URL)
		assert.Equal(t, h.srv.URL+"/webhooks/twilio/status?message_id=m&attempt=1", c.Target)
	}
}

func TestSeededRunsAreReproducible(t *testing.T) {
	t.Parallel()
	run := func() (sids []string, outcomes []string) {
		sim, base := newSim(t, func(c *Config) { c.Seed, c.FailRate, c.UndeliveredRate, c.ReadRate = 7, 0.3, 0.3, Rate(0.5) })
		for i := range 12 {
			sids = append(sids, create(t, base, textForm("whatsapp:+5198765432"+strconv.Itoa(i%10), "")))
		}
		waitIdle(t, sim)
		for _, m := range sim.Messages() {
			outcomes = append(outcomes, m.Status+":"+strconv.Itoa(m.ErrorCode))
		}
		return sids, outcomes
	}
	sids1, out1 := run()
	sids2, out2 := run()
	assert.Equal(t, sids1, sids2)
	assert.Equal(t, out1, out2)
	assert.Greater(t, len(uniq(out1)), 1, "a mix of outcomes: %v", out1)
}

func uniq(xs []string) []string {
	s := slices.Clone(xs)
	slices.Sort(s)
	return slices.Compact(s)
}

func TestCloseStopsLifecyclesAndIsIdempotent(t *testing.T) {
	t.Parallel()
	h := newHerald(t)
	cfg := Config{AccountSID: testSID, AuthToken: testToken, CallbackLatency: time.Hour}
	sim, err := New(cfg)
	require.NoError(t, err)
	base, err := sim.Start(t.Context(), "127.0.0.1:0")
	require.NoError(t, err)
	create(t, base, textForm(testTo, h.callbackURL("m", 1)))
	sim.Close() // returns although a lifecycle waits for a very long time
	sim.Close()
	assert.Empty(t, h.received())
	_, err = http.Post(messagesURL(base), "application/x-www-form-urlencoded", nil) //nolint:noctx // test
	assert.Error(t, err, "the listener is closed")
	_, err = sim.Start(t.Context(), "127.0.0.1:0")
	assert.Error(t, err, "a closed simulator does not start again")
}
