package twiliosim

import (
	"context"
	"errors"
	"net/http"
	"net/url"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	twilio "github.com/twilio/twilio-go"
	twclient "github.com/twilio/twilio-go/client"
	api "github.com/twilio/twilio-go/rest/api/v2010"

	"herald/handlers/twilio/sender"
)

// rewriteTransport is reference/twilio.md §5.2's transport: the SDK builds
// https://api.twilio.com/…, the transport sends it to the simulator.
type rewriteTransport struct {
	base *url.URL
	next http.RoundTripper
}

func (t rewriteTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	r = r.Clone(r.Context())
	r.URL.Scheme, r.URL.Host, r.Host = t.base.Scheme, t.base.Host, t.base.Host
	return t.next.RoundTrip(r)
}

func newTwilioGo(t *testing.T, simURL string) *twilio.RestClient {
	t.Helper()
	base, err := url.Parse(simURL)
	require.NoError(t, err)
	c := &twclient.Client{
		Credentials: twclient.NewCredentials(testSID, testToken),
		HTTPClient: &http.Client{
			Timeout:   10 * time.Second,
			Transport: rewriteTransport{base: base, next: http.DefaultTransport},
		},
	}
	c.SetAccountSid(testSID)
	return twilio.NewRestClientWithParams(twilio.ClientParams{Client: c})
}

func TestTwilioGoAgainstTheSimulator(t *testing.T) {
	t.Parallel()
	h := newHerald(t)
	sim, base := newSim(t)
	rc := newTwilioGo(t, base)

	p := &api.CreateMessageParams{}
	p.SetTo(testTo)
	p.SetFrom(testSender)
	p.SetContentSid(validContentSID)
	p.SetContentVariables(`{"1":"Ana"}`)
	p.SetStatusCallback(h.callbackURL("m1", 1))
	m, err := rc.Api.CreateMessage(p)
	require.NoError(t, err)
	require.NotNil(t, m.Sid)
	assert.Regexp(t, sidRe, *m.Sid)
	assert.Equal(t, "queued", *m.Status)
	assert.Equal(t, testTo, *m.To)
	assert.Equal(t, "1", *m.NumSegments)
	assert.Nil(t, m.ErrorCode)

	reqs := sim.Requests()
	require.Len(t, reqs, 1)
	assert.Equal(t, `{"1":"Ana"}`, reqs[0].Form.Get("ContentVariables"), "what twilio-go sent")
	assert.Equal(t, "/2010-04-01/Accounts/"+testSID+"/Messages.json", reqs[0].Path)

	waitIdle(t, sim)
	f, err := rc.Api.FetchMessage(*m.Sid, nil)
	require.NoError(t, err)
	assert.Equal(t, "read", *f.Status)
	require.NotNil(t, f.DateSent)
	_, err = time.Parse(time.RFC1123Z, *f.DateSent)
	assert.NoError(t, err)

	// List through the SDK: its DateSent is RFC 3339 midnight, its paging follows
	// next_page_uri through the same rewritten host.
	for range 2 {
		create(t, base, textForm(testTo, ""))
	}
	waitIdle(t, sim)
	lp := &api.ListMessageParams{}
	lp.SetTo(testTo)
	lp.SetDateSent(time.Now().UTC())
	lp.SetPageSize(1)
	lp.SetLimit(10)
	listed, err := rc.Api.ListMessage(lp)
	require.NoError(t, err)
	assert.Len(t, listed, 3, "three pages of one")

	_, err = rc.Api.FetchMessage("SM00000000000000000000000000000000", nil)
	var notFound *twclient.TwilioRestError
	require.ErrorAs(t, err, &notFound)
	assert.Equal(t, 20404, notFound.Code)
	assert.Equal(t, 404, notFound.Status)
}

func TestTwilioGoErrors(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		to     string
		mutate func(*Config)
		code   int
		status int
	}{
		{"magic number opted out", "whatsapp:+15005550004", nil, 21610, 400},
		{"magic number invalid", "whatsapp:+15005550001", nil, 21211, 400},
		{"429", testTo, func(c *Config) { c.RateLimit429 = 1 }, 20429, 429},
		{"500", testTo, func(c *Config) { c.ServerErrorRate = 1 }, 20500, 500},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			var mutate []func(*Config)
			if tc.mutate != nil {
				mutate = append(mutate, tc.mutate)
			}
			_, base := newSim(t, mutate...)
			p := &api.CreateMessageParams{}
			p.SetTo(tc.to)
			p.SetFrom(testSender)
			p.SetBody("Hola")
			_, err := newTwilioGo(t, base).Api.CreateMessage(p)
			var te *twclient.TwilioRestError
			require.True(t, errors.As(err, &te), "a *client.TwilioRestError: %v", err)
			assert.Equal(t, tc.code, te.Code)
			assert.Equal(t, tc.status, te.Status)
			assert.Equal(t, MoreInfo(tc.code), te.MoreInfo)
		})
	}
	t.Run("wrong token", func(t *testing.T) {
		t.Parallel()
		_, base := newSim(t, func(c *Config) { c.AuthToken = "othertoken" })
		p := &api.CreateMessageParams{}
		p.SetTo(testTo)
		p.SetFrom(testSender)
		p.SetBody("Hola")
		_, err := newTwilioGo(t, base).Api.CreateMessage(p)
		var te *twclient.TwilioRestError
		require.ErrorAs(t, err, &te)
		assert.Equal(t, 20003, te.Code)
		assert.Equal(t, 401, te.Status)
	})
}

// TestHeraldSender runs Herald's own Twilio client (handlers/twilio/sender) against the
// simulator: the compatibility that matters.
func TestHeraldSender(t *testing.T) {
	t.Parallel()
	h := newHerald(t)
	sim, base := newSim(t)
	s, err := sender.New(sender.Config{AccountSID: testSID, AuthToken: testToken, From: testSender, APIURL: base,
		PublicBaseURL: h.public, Timeout: 2 * time.Second})
	require.NoError(t, err)
	t.Cleanup(s.Close)
	ctx := context.Background()
	id := uuid.New()

	acc, err := s.Send(ctx, sender.Message{MessageID: id, Attempt: 1, To: "+51987654321", Body: "Hola"})
	require.NoError(t, err)
	assert.Regexp(t, sidRe, acc.SID)
	assert.Equal(t, 1, sim.CreatesForMessage(id.String()))
	waitIdle(t, sim)
	assert.Equal(t, []string{"sent", "delivered", "read"}, h.statuses(acc.SID))
	for _, r := range h.received() {
		assert.True(t, r.Valid)
		assert.Equal(t, id.String(), r.Query.Get("message_id"))
	}

	info, err := s.Fetch(ctx, acc.SID)
	require.NoError(t, err)
	assert.Equal(t, "read", info.Status)
	assert.False(t, info.DateSent.IsZero())

	listed, err := s.List(ctx, sender.ListFilter{To: "+51987654321", DateSent: time.Now()})
	require.NoError(t, err)
	require.Len(t, listed, 1)
	assert.Equal(t, acc.SID, listed[0].SID)

	t.Run("429 is rate limited with Retry-After", func(t *testing.T) {
		require.NoError(t, sim.QueueFaults(FaultRateLimit))
		_, err := s.Send(ctx, sender.Message{MessageID: uuid.New(), Attempt: 1, To: "+51987654321", Body: "x"})
		var se *sender.SendError
		require.ErrorAs(t, err, &se)
		assert.Equal(t, sender.KindRateLimited, se.Kind)
		assert.Equal(t, time.Second, se.RetryAfter)
	})
	t.Run("a magic opted-out number is permanent", func(t *testing.T) {
		_, err := s.Send(ctx, sender.Message{MessageID: uuid.New(), Attempt: 1, To: "+15005550004", Body: "x"})
		var se *sender.SendError
		require.ErrorAs(t, err, &se)
		assert.Equal(t, sender.KindPermanent, se.Kind)
		assert.Equal(t, 21610, se.Code)
	})
	t.Run("accept then stall is ambiguous, and the message exists", func(t *testing.T) {
		impatient, err := sender.New(sender.Config{AccountSID: testSID, AuthToken: testToken, From: testSender,
			APIURL: base, PublicBaseURL: h.public, Timeout: 300 * time.Millisecond})
		require.NoError(t, err)
		defer impatient.Close()
		require.NoError(t, sim.QueueFaults(FaultStall))
		stalled := uuid.New()
		_, err = impatient.Send(ctx, sender.Message{MessageID: stalled, Attempt: 1, To: "+51912345678", Body: "x"})
		var se *sender.SendError
		require.ErrorAs(t, err, &se)
		assert.Equal(t, sender.KindAmbiguous, se.Kind)
		found, err := s.List(ctx, sender.ListFilter{To: "+51912345678"})
		require.NoError(t, err)
		assert.Len(t, found, 1, "reconciliation finds the stalled message")
	})
}
