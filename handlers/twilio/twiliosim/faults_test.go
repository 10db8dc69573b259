package twiliosim

import (
	"errors"
	"net"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestRateLimit429(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name       string
		retryAfter time.Duration
		want       string
	}{
		{"default Retry-After", 0, "1"},
		{"Retry-After rounded up to whole seconds", 1500 * time.Millisecond, "2"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			sim, base := newSim(t, func(c *Config) { c.RateLimit429, c.RetryAfter = 1, tc.retryAfter })
			for range 3 {
				res := call(t, http.MethodPost, messagesURL(base), textForm(testTo, ""))
				require.Equal(t, http.StatusTooManyRequests, res.Status)
				assert.Equal(t, 20429, res.code())
				assert.Equal(t, float64(429), res.JSON["status"])
				assert.Equal(t, tc.want, res.Header.Get("Retry-After"))
			}
			assert.Empty(t, sim.Messages(), "a 429 creates nothing")
			assert.Equal(t, 3, sim.CreatesFor(testTo))
			for _, r := range sim.Requests() {
				assert.Equal(t, FaultRateLimit, r.Fault)
				assert.Equal(t, http.StatusTooManyRequests, r.Status)
			}
		})
	}
}

func TestRateLimitBurst(t *testing.T) {
	t.Parallel()
	sim, base := newSim(t, func(c *Config) { c.RateLimit429, c.RateLimitBurst = 1, 3 })
	first := call(t, http.MethodPost, messagesURL(base), textForm(testTo, ""))
	require.Equal(t, http.StatusTooManyRequests, first.Status)
	// The rate drops to 0, but the burst that started goes on for two more creates.
	_, err := sim.Update(SettingsPatch{RateLimit429: Rate(0)})
	require.NoError(t, err)
	var statuses []int
	for range 3 {
		statuses = append(statuses, call(t, http.MethodPost, messagesURL(base), textForm(testTo, "")).Status)
	}
	assert.Equal(t, []int{429, 429, 201}, statuses)
}

func TestRateLimitComesBeforeValidation(t *testing.T) {
	t.Parallel()
	_, base := newSim(t, func(c *Config) { c.RateLimit429 = 1 })
	res := call(t, http.MethodPost, messagesURL(base), url.Values{"To": {"nope"}})
	assert.Equal(t, http.StatusTooManyRequests, res.Status, "Twilio refuses the request before reading it")
}

func TestServerErrorCreatesNothing(t *testing.T) {
	t.Parallel()
	h := newHerald(t)
	sim, base := newSim(t, func(c *Config) { c.ServerErrorRate = 1 })
	res := call(t, http.MethodPost, messagesURL(base), textForm(testTo, h.callbackURL("m", 1)))
	require.Equal(t, http.StatusInternalServerError, res.Status)
	assert.Equal(t, 20500, res.code())
	waitIdle(t, sim)
	assert.Empty(t, sim.Messages())
	assert.Empty(t, h.received(), "no message, no callbacks")
	// A malformed create is refused for what it is, not with a 500.
	bad := call(t, http.MethodPost, messagesURL(base), url.Values{"To": {testTo}, "From": {testSender}})
	assert.Equal(t, 21602, bad.code())
}

func TestAcceptThenStall(t *testing.T) {
	t.Parallel()
	t.Run("the client times out, the message exists and its callbacks come", func(t *testing.T) {
		t.Parallel()
		h := newHerald(t)
		sim, base := newSim(t, func(c *Config) { c.AcceptThenStallRate = 1 })
		form := textForm(testTo, h.callbackURL("m-stall", 1))
		client := &http.Client{Timeout: 200 * time.Millisecond}
		req, err := http.NewRequest(http.MethodPost, messagesURL(base), strings.NewReader(form.Encode()))
		require.NoError(t, err)
		req.SetBasicAuth(testSID, testToken)
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		_, err = client.Do(req)
		var ne net.Error
		require.True(t, errors.As(err, &ne) && ne.Timeout(), "the client saw a timeout: %v", err)

		waitIdle(t, sim)
		msgs := sim.Messages()
		require.Len(t, msgs, 1, "the message was created")
		assert.True(t, msgs[0].Stalled)
		assert.Equal(t, []string{"sent", "delivered", "read"}, h.statuses(msgs[0].SID),
			"the lifecycle runs: a callback is how Herald learns the SID of an ambiguous send")
		reqs := sim.Requests()
		require.Len(t, reqs, 1)
		assert.Equal(t, FaultStall, reqs[0].Fault)
		assert.Equal(t, msgs[0].SID, reqs[0].MessageSID)
		assert.Zero(t, reqs[0].Status, "never answered")
		assert.Equal(t, 1, sim.CreatesForMessage("m-stall"))
	})
	t.Run("with StallDuration the answer comes late", func(t *testing.T) {
		t.Parallel()
		sim, base := newSim(t, func(c *Config) { c.AcceptThenStallRate, c.StallDuration = 1, 50*time.Millisecond })
		sid := create(t, base, textForm(testTo, ""))
		m, ok := sim.Message(sid)
		require.True(t, ok)
		assert.True(t, m.Stalled)
		assert.Equal(t, http.StatusCreated, sim.Requests()[0].Status)
	})
	t.Run("Close hangs up on a stalled create", func(t *testing.T) {
		t.Parallel()
		sim, base := newSim(t, func(c *Config) { c.AcceptThenStallRate = 1 })
		errc := make(chan error, 1)
		go func() {
			req, _ := http.NewRequest(http.MethodPost, messagesURL(base), strings.NewReader(textForm(testTo, "").Encode()))
			req.SetBasicAuth(testSID, testToken)
			req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
			resp, err := http.DefaultClient.Do(req)
			if err == nil {
				resp.Body.Close()
			}
			errc <- err
		}()
		for len(sim.Messages()) == 0 {
			time.Sleep(time.Millisecond) // until the create is stored and stalled
		}
		sim.Close()
		select {
		case err := <-errc:
			assert.Error(t, err, "the connection was closed without an answer")
		case <-time.After(waitLimit):
			t.Fatal("the stalled request was not released")
		}
	})
}

func TestScriptedFaults(t *testing.T) {
	t.Parallel()
	sim, base := newSim(t, func(c *Config) { c.RateLimit429 = 1 })
	require.NoError(t, sim.QueueFaults(FaultNone, FaultServerError, FaultRateLimit))
	var statuses []int
	for range 4 {
		statuses = append(statuses, call(t, http.MethodPost, messagesURL(base), textForm(testTo, "")).Status)
	}
	assert.Equal(t, []int{201, 500, 429, 429}, statuses, "scripted faults first (none overrides the 429 rate), then the rates")
	assert.Len(t, sim.Messages(), 1)
	assert.Error(t, sim.QueueFaults("explode"))
}
