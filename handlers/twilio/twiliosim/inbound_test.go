package twiliosim

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

const twiml = `<?xml version="1.0" encoding="UTF-8"?>` + "\n<Response><Message>Listo, no recibirás más mensajes.</Message></Response>"

func TestInjectInbound(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name  string
		in    Inbound
		check func(t *testing.T, f url.Values)
	}{
		{"text", Inbound{From: "+51987654321", Body: "STOP", ProfileName: "Ana Quispe"}, func(t *testing.T, f url.Values) {
			assert.Equal(t, "STOP", f.Get("Body"))
			assert.Equal(t, "Ana Quispe", f.Get("ProfileName"))
			assert.Equal(t, "0", f.Get("NumMedia"))
			assert.Equal(t, "text", f.Get("MessageType"))
			assert.Regexp(t, sidRe, f.Get("MessageSid"))
		}},
		{"whatsapp: prefix kept once", Inbound{From: "whatsapp:+51987654321", Body: "hola"}, func(t *testing.T, f url.Values) {
			assert.Equal(t, "whatsapp:+51987654321", f.Get("From"))
		}},
		{"media", Inbound{From: "+51987654321", MediaURLs: []string{"https://example.com/a.jpg", "https://example.com/b.pdf"},
			MediaContentTypes: []string{"", "application/pdf"}}, func(t *testing.T, f url.Values) {
			assert.Regexp(t, mmRe, f.Get("MessageSid"))
			assert.Equal(t, "2", f.Get("NumMedia"))
			assert.Equal(t, "https://example.com/a.jpg", f.Get("MediaUrl0"))
			assert.Equal(t, "image/jpeg", f.Get("MediaContentType0"))
			assert.Equal(t, "https://example.com/b.pdf", f.Get("MediaUrl1"))
			assert.Equal(t, "application/pdf", f.Get("MediaContentType1"))
			assert.Equal(t, "image", f.Get("MessageType"))
			assert.Equal(t, "", f.Get("Body"))
			assert.True(t, f.Has("Body"), "Body is always sent, even empty")
		}},
		{"button", Inbound{From: "+5215512345678", Body: "Stop promotions", ButtonPayload: "STOP", ButtonText: "Stop promotions"},
			func(t *testing.T, f url.Values) {
				assert.Equal(t, "STOP", f.Get("ButtonPayload"))
				assert.Equal(t, "Stop promotions", f.Get("ButtonText"))
				assert.Equal(t, "button", f.Get("MessageType"))
				assert.Equal(t, "5215512345678", f.Get("WaId"))
			}},
		{"redelivery with a given SID and extra parameters", Inbound{From: "+51987654321", Body: "STOP",
			MessageSID: "SM11111111111111111111111111111111", Extra: map[string]string{"OptOutType": "STOP"}},
			func(t *testing.T, f url.Values) {
				assert.Equal(t, "SM11111111111111111111111111111111", f.Get("MessageSid"))
				assert.Equal(t, "STOP", f.Get("OptOutType"))
			}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			h := newHerald(t)
			h.respond = func(int, received) (int, string) { return http.StatusOK, twiml }
			sim, _ := newSim(t, func(c *Config) { c.WebhookBaseURL = h.public })
			status, body, err := sim.InjectInbound(context.Background(), tc.in)
			require.NoError(t, err)
			assert.Equal(t, http.StatusOK, status)
			assert.Equal(t, twiml, body)

			got := h.received()
			require.Len(t, got, 1)
			r := got[0]
			assert.True(t, r.Valid, "signed with WebhookBaseURL + /webhooks/twilio/inbound")
			assert.Equal(t, "/webhooks/twilio/inbound", r.Path)
			f := r.Form
			// Twilio's parameters on every inbound message.
			assert.Equal(t, f.Get("MessageSid"), f.Get("SmsSid"))
			assert.Equal(t, f.Get("MessageSid"), f.Get("SmsMessageSid"))
			assert.Equal(t, testSID, f.Get("AccountSid"))
			assert.True(t, strings.HasPrefix(f.Get("From"), "whatsapp:+"))
			assert.Equal(t, testSender, f.Get("To"), "to the configured sender")
			assert.Equal(t, strings.TrimPrefix(f.Get("From"), "whatsapp:+"), f.Get("WaId"))
			assert.Equal(t, "1", f.Get("NumSegments"))
			assert.Equal(t, "2010-04-01", f.Get("ApiVersion"))
			assert.Equal(t, "received", f.Get("SmsStatus"))
			tc.check(t, f)

			m, ok := sim.Message(f.Get("MessageSid"))
			require.True(t, ok, "the inbound message is kept")
			assert.Equal(t, "inbound", m.Direction)
			assert.Equal(t, "received", m.Status)
			cbs := sim.Callbacks()
			require.Len(t, cbs, 1)
			assert.Equal(t, "inbound", cbs[0].Kind)
			assert.Equal(t, http.StatusOK, cbs[0].ResponseStatus)
		})
	}
}

func TestInjectInboundReturnsHeraldsRefusal(t *testing.T) {
	t.Parallel()
	h := newHerald(t)
	h.public = "https://herald.example.com" // Herald verifies against another URL: signature fails
	h.respond = func(_ int, r received) (int, string) {
		if !r.Valid {
			return http.StatusForbidden, "missing or invalid X-Twilio-Signature\n"
		}
		return http.StatusOK, ""
	}
	sim, _ := newSim(t, func(c *Config) { c.WebhookBaseURL = h.srv.URL })
	status, body, err := sim.InjectInbound(context.Background(), Inbound{From: "+51987654321", Body: "hola"})
	require.NoError(t, err, "an error status is Herald's answer, not an error")
	assert.Equal(t, http.StatusForbidden, status)
	assert.Contains(t, body, "X-Twilio-Signature")
	assert.Len(t, sim.Callbacks(), 1, "an inbound webhook is not retried")
}

func TestInjectInboundErrors(t *testing.T) {
	t.Parallel()
	h := newHerald(t)
	dead := h.srv.URL
	h.srv.Close()
	tests := []struct {
		name    string
		webhook string
		in      Inbound
		want    string
	}{
		{"no WebhookBaseURL", "", Inbound{From: "+51987654321"}, "WebhookBaseURL"},
		{"From not E.164", "https://herald.example.com", Inbound{From: "51987654321"}, "from"},
		{"To not E.164", "https://herald.example.com", Inbound{From: "+51987654321", To: "herald"}, "to"},
		{"media URL relative", "https://herald.example.com", Inbound{From: "+51987654321", MediaURLs: []string{"/a.jpg"}}, "media URL"},
		{"Herald unreachable", dead, Inbound{From: "+51987654321", Body: "hola"}, "posting"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			sim, _ := newSim(t, func(c *Config) { c.WebhookBaseURL = tc.webhook })
			_, _, err := sim.InjectInbound(context.Background(), tc.in)
			require.Error(t, err)
			assert.Contains(t, err.Error(), tc.want)
		})
	}
}

func TestInboundEndpoint(t *testing.T) {
	t.Parallel()
	h := newHerald(t)
	h.respond = func(int, received) (int, string) { return http.StatusOK, twiml }
	_, base := newSim(t, func(c *Config) { c.WebhookBaseURL = h.public })

	post := func(t *testing.T, contentType, body string) (*http.Response, string) {
		t.Helper()
		resp, err := http.Post(base+"/sim/inbound", contentType, strings.NewReader(body))
		require.NoError(t, err)
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		require.NoError(t, err)
		return resp, string(b)
	}

	t.Run("JSON", func(t *testing.T) {
		resp, body := post(t, "application/json",
			`{"from":"+51987654321","body":"STOP","profile_name":"Ana","button_payload":"STOP","button_text":"Stop"}`)
		assert.Equal(t, http.StatusOK, resp.StatusCode)
		assert.Equal(t, twiml, body, "Herald's body")
		assert.Equal(t, "application/xml; charset=utf-8", resp.Header.Get("Content-Type"))
		assert.Equal(t, "200", resp.Header.Get("X-Sim-Herald-Status"))
		assert.Regexp(t, sidRe, resp.Header.Get("X-Sim-Message-Sid"))
	})
	t.Run("form", func(t *testing.T) {
		resp, _ := post(t, "application/x-www-form-urlencoded", url.Values{"from": {"+51987654321"}, "body": {"START"},
			"media_url": {"https://example.com/a.jpg"}}.Encode())
		assert.Equal(t, http.StatusOK, resp.StatusCode)
		assert.Regexp(t, mmRe, resp.Header.Get("X-Sim-Message-Sid"))
	})
	t.Run("invalid input", func(t *testing.T) {
		resp, body := post(t, "application/json", `{"from":"nobody"}`)
		assert.Equal(t, http.StatusBadRequest, resp.StatusCode)
		var e map[string]string
		require.NoError(t, json.Unmarshal([]byte(body), &e))
		assert.Contains(t, e["error"], "nobody")
		resp, _ = post(t, "application/json", `{"from":`)
		assert.Equal(t, http.StatusBadRequest, resp.StatusCode)
	})
	got := h.received()
	require.Len(t, got, 2)
	for _, r := range got {
		assert.True(t, r.Valid)
	}
	assert.Equal(t, "STOP", got[0].Form.Get("ButtonPayload"))
	assert.Equal(t, "https://example.com/a.jpg", got[1].Form.Get("MediaUrl0"))
}

func TestInboundEndpointHeraldDown(t *testing.T) {
	t.Parallel()
	h := newHerald(t)
	h.srv.Close()
	_, base := newSim(t, func(c *Config) { c.WebhookBaseURL = h.srv.URL })
	resp, err := http.Post(base+"/sim/inbound", "application/json", strings.NewReader(`{"from":"+51987654321","body":"hola"}`))
	require.NoError(t, err)
	defer resp.Body.Close()
	assert.Equal(t, http.StatusBadGateway, resp.StatusCode)
}
