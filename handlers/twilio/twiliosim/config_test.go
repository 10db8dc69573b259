package twiliosim

import (
	"encoding/json"
	"io"
	"math"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestConfigValidate(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		mutate func(*Config)
		want   []string // substrings of the error; nil: valid
	}{
		{"zero config: every default", func(*Config) {}, nil},
		{"full config", func(c *Config) {
			c.AccountSID, c.AuthToken, c.WebhookBaseURL = "ACabc123", "tok123", "https://herald.example.com/base/"
			c.FailRate, c.UndeliveredRate, c.ReadRate, c.RateLimit429 = 0.1, 0.1, Rate(0.5), 0.05
			c.CallbackRetryPolicy, c.CallbackRetries = "ct,5xx", 3
		}, nil},
		{"SID without AC", func(c *Config) { c.AccountSID = "MG123" }, []string{"AccountSID", "AC"}},
		{"SID with a dash", func(c *Config) { c.AccountSID = "AC-test" }, []string{"AccountSID", "letters and digits"}},
		{"token with symbols", func(c *Config) { c.AuthToken = "s3cr3t!" }, []string{"AuthToken"}},
		{"sender not E.164", func(c *Config) { c.Sender = "whatsapp:14155238886" }, []string{"Sender"}},
		{"webhook URL relative", func(c *Config) { c.WebhookBaseURL = "herald:8080" }, []string{"WebhookBaseURL"}},
		{"webhook URL with a query", func(c *Config) { c.WebhookBaseURL = "http://h/?x=1" }, []string{"WebhookBaseURL", "query"}},
		{"delivery URL ftp", func(c *Config) { c.DeliveryBaseURL = "ftp://h" }, []string{"DeliveryBaseURL"}},
		{"rate above 1", func(c *Config) { c.FailRate = 1.5 }, []string{"FailRate"}},
		{"negative rate", func(c *Config) { c.RateLimit429 = -0.1 }, []string{"RateLimit429"}},
		{"NaN rate", func(c *Config) { c.DuplicateRate = math.NaN() }, []string{"DuplicateRate"}},
		{"read rate above 1", func(c *Config) { c.ReadRate = Rate(2) }, []string{"ReadRate"}},
		{"unknown retry policy", func(c *Config) { c.CallbackRetryPolicy = "ct,sometimes" }, []string{"CallbackRetryPolicy"}},
		{"too many retries", func(c *Config) { c.CallbackRetries = 6 }, []string{"CallbackRetries"}},
		{"bad codes", func(c *Config) { c.FailedCodes, c.UndeliveredCodes = []int{0}, []int{-1} }, []string{"FailedCodes", "UndeliveredCodes"}},
		{"negative durations", func(c *Config) { c.StallDuration, c.RetryAfter, c.CallbackTimeout = -1, -1, -1 },
			[]string{"StallDuration", "RetryAfter", "CallbackTimeout"}},
		{"every problem at once", func(c *Config) {
			c.AccountSID, c.Sender, c.ServerErrorRate, c.AcceptThenStallRate = "XX", "nope", 2, -1
		}, []string{"AccountSID", "Sender", "ServerErrorRate", "AcceptThenStallRate"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			var c Config
			tc.mutate(&c)
			err := c.Validate()
			_, newErr := New(c)
			if tc.want == nil {
				assert.NoError(t, err)
				assert.NoError(t, newErr)
				return
			}
			require.Error(t, err)
			require.Error(t, newErr, "New validates too")
			for _, w := range tc.want {
				assert.Contains(t, err.Error(), w)
			}
			if c.AuthToken != "" {
				assert.NotContains(t, err.Error(), c.AuthToken, "the token is never echoed")
			}
		})
	}
}

func TestDefaults(t *testing.T) {
	t.Parallel()
	sim, err := New(Config{})
	require.NoError(t, err)
	defer sim.Close()
	assert.Equal(t, DefaultAccountSID, sim.AccountSID())
	assert.Len(t, DefaultAccountSID, 34)
	assert.Equal(t, DefaultAuthToken, sim.AuthToken())
	st := sim.Settings()
	assert.Equal(t, Duration(DefaultCallbackLatency), st.CallbackLatency)
	assert.Equal(t, 1.0, st.ReadRate)
	assert.Equal(t, DefaultFailedCodes, st.FailedCodes)
	assert.Equal(t, DefaultUndeliveredCodes, st.UndeliveredCodes)
	assert.Equal(t, Duration(time.Second), st.RetryAfter)
	assert.Equal(t, 1, st.RateLimitBurst)
}

func TestSimEndpoints(t *testing.T) {
	t.Parallel()
	h := newHerald(t)
	sim, base := newSim(t, func(c *Config) { c.FailRate = 0.25 })
	do := func(t *testing.T, method, path, body string) (int, string) {
		t.Helper()
		req, err := http.NewRequest(method, base+path, strings.NewReader(body))
		require.NoError(t, err)
		req.Header.Set("Content-Type", "application/json")
		resp, err := http.DefaultClient.Do(req)
		require.NoError(t, err)
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		require.NoError(t, err)
		return resp.StatusCode, string(b)
	}

	status, body := do(t, http.MethodGet, "/sim/healthz", "")
	assert.Equal(t, http.StatusOK, status)
	assert.Equal(t, "ok\n", body)

	status, body = do(t, http.MethodPost, "/sim/config", `{"fail_rate":1,"callback_latency":"0s","read_rate":0,"retry_after":"3s"}`)
	require.Equal(t, http.StatusOK, status, body)
	var st Settings
	require.NoError(t, json.Unmarshal([]byte(body), &st))
	assert.Equal(t, 1.0, st.FailRate)
	assert.Equal(t, 0.0, st.ReadRate)
	assert.Equal(t, Duration(3*time.Second), st.RetryAfter)
	assert.Equal(t, sim.Settings(), st)

	for _, bad := range []string{`{"fail_rate":2}`, `{"nope":1}`, `{"callback_latency":"soon"}`, `[`} {
		status, body = do(t, http.MethodPost, "/sim/config", bad)
		assert.Equal(t, http.StatusBadRequest, status, bad)
		assert.Contains(t, body, "error")
	}
	assert.Equal(t, 1.0, sim.Settings().FailRate, "a refused patch changes nothing")

	sid := create(t, base, textForm(testTo, h.callbackURL("m", 1)))
	waitIdle(t, sim)
	assert.Equal(t, []string{"failed"}, h.statuses(sid), "the patched rates apply to new messages")

	status, body = do(t, http.MethodGet, "/sim/messages", "")
	require.Equal(t, http.StatusOK, status)
	var msgs []Message
	require.NoError(t, json.Unmarshal([]byte(body), &msgs))
	require.Len(t, msgs, 1)
	assert.Equal(t, "failed", msgs[0].Status)

	status, body = do(t, http.MethodGet, "/sim/callbacks", "")
	require.Equal(t, http.StatusOK, status)
	var cbs []RecordedCallback
	require.NoError(t, json.Unmarshal([]byte(body), &cbs))
	require.Len(t, cbs, 1)
	assert.NotEmpty(t, cbs[0].Signature)

	status, body = do(t, http.MethodPost, "/sim/faults", `{"faults":["rate_limit","none"]}`)
	require.Equal(t, http.StatusOK, status, body)
	assert.JSONEq(t, `{"queued":2}`, body)
	status, _ = do(t, http.MethodPost, "/sim/faults", `{"faults":["boom"]}`)
	assert.Equal(t, http.StatusBadRequest, status)
	res := call(t, http.MethodPost, messagesURL(base), textForm(testTo, ""))
	assert.Equal(t, http.StatusTooManyRequests, res.Status)
	assert.Equal(t, "3", res.Header.Get("Retry-After"))

	status, _ = do(t, http.MethodPost, "/sim/reset", "")
	assert.Equal(t, http.StatusNoContent, status)
	assert.Empty(t, sim.Messages())
	assert.Empty(t, sim.Requests())
	assert.Empty(t, sim.Callbacks())
	assert.Equal(t, 0.25, sim.Settings().FailRate, "reset restores the settings New started with")
	assert.Equal(t, http.StatusCreated, call(t, http.MethodPost, messagesURL(base), textForm(testTo, "")).Status,
		"the scripted fault left over was forgotten")
}

func TestDurationJSON(t *testing.T) {
	t.Parallel()
	var d Duration
	require.NoError(t, json.Unmarshal([]byte(`"150ms"`), &d))
	assert.Equal(t, Duration(150*time.Millisecond), d)
	require.NoError(t, json.Unmarshal([]byte(`1000`), &d))
	assert.Equal(t, Duration(time.Microsecond), d)
	assert.Error(t, json.Unmarshal([]byte(`"later"`), &d))
	b, err := json.Marshal(Duration(2 * time.Second))
	require.NoError(t, err)
	assert.Equal(t, `"2s"`, string(b))
}

// TestHandlerInHTTPTest mounts the simulator in an httptest server instead of Start.
func TestHandlerInHTTPTest(t *testing.T) {
	t.Parallel()
	sim, err := New(Config{AccountSID: testSID, AuthToken: testToken, CallbackLatency: -1})
	require.NoError(t, err)
	srv := httptest.NewServer(sim.Handler())
	t.Cleanup(srv.Close)
	t.Cleanup(sim.Close) // runs first: releases stalls and stops lifecycles before srv.Close waits
	sid := create(t, srv.URL, textForm(testTo, ""))
	waitIdle(t, sim)
	assert.Equal(t, "read", call(t, http.MethodGet, messageURL(srv.URL, sid), nil).JSON["status"])
}
