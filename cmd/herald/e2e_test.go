package main

import (
	"encoding/json"
	"net/http"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"herald/commands/saga"
	"herald/events"
	"herald/handlers/api"
	"herald/handlers/twilio/twiliosim"
)

// TestEndToEnd is the whole path with real processes: PostgreSQL, Redis, `herald serve` and
// the Twilio simulator, each Herald and simulator a separate OS process talking HTTP. A signed
// inbound SUBSCRIBE opts a new user in; a campaign on that topic is created, previewed and
// launched through the API; the simulator receives exactly one create, with the rendered text,
// for that user and none for a subscriber who sent STOP; the simulator's signed status
// callbacks take the message to delivered and read, which the API shows; the STOP user's
// message trail says why nothing was sent. SIGTERM stops Herald with exit status 0.
func TestEndToEnd(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs Herald and the simulator as processes")
	}
	t.Parallel()
	s := newStack(t, nil)
	herald := s.startHerald("herald", "api,relay,projections,saga,scheduler", s.addr, nil)

	const ana, beto = "+51987654321", "+51987654322"

	// A new number subscribes by WhatsApp: the webhook is signed by the simulator as by Twilio.
	s.inbound(ana, "SUBSCRIBE deals")
	var u api.User
	eventually(t, 30*time.Second, "the inbound SUBSCRIBE creates an opted-in subscriber", func() bool {
		return s.api(http.MethodGet, "/users/"+pathPhone(ana), nil, &u) == http.StatusOK &&
			u.Consent == events.ConsentOptIn && len(u.Topics) == 1 && u.Topics[0] == "deals"
	})
	s.mustAPI(http.MethodPatch, "/users/"+pathPhone(ana), map[string]any{"attributes": map[string]any{"first_name": "Ana"}}, &u)
	assert.Equal(t, "Ana", u.Attributes["first_name"])

	// A second subscriber changes their mind.
	s.inbound(beto, "SUBSCRIBE deals")
	s.inbound(beto, "STOP")
	eventually(t, 30*time.Second, "the second user is opted out", func() bool {
		var b api.User
		return s.api(http.MethodGet, "/users/"+pathPhone(beto), nil, &b) == http.StatusOK && b.Consent == events.ConsentOptOut
	})

	var tpl, cmp struct {
		ID string `json:"id"`
	}
	s.mustAPI(http.MethodPost, "/templates", map[string]any{"name": "deal", "default_locale": "es",
		"variants": map[string]any{"es": map[string]any{"body": "Hola {first_name}, 20% de descuento hoy."}}}, &tpl)
	s.mustAPI(http.MethodPost, "/campaigns", map[string]any{"name": "Black Friday", "topic": "deals", "template_id": tpl.ID}, &cmp)
	require.NotEmpty(t, cmp.ID)

	var preview struct {
		Matched    int64            `json:"matched"`
		Recipients int64            `json:"recipients"`
		SendNow    int64            `json:"send_now"`
		Skipped    map[string]int64 `json:"skipped"`
		Samples    []struct {
			Phone    string `json:"phone"`
			Decision string `json:"decision"`
			Message  *struct {
				Text string `json:"text"`
			} `json:"message"`
		} `json:"samples"`
	}
	s.mustAPI(http.MethodPost, "/campaigns/"+cmp.ID+"/preview", nil, &preview)
	assert.EqualValues(t, 2, preview.Matched, "both users match (no segment)")
	assert.EqualValues(t, 1, preview.Recipients, "one may receive it")
	assert.EqualValues(t, 1, preview.SendNow, "and would get it now")
	assert.EqualValues(t, 1, preview.Skipped["consent"], "the STOP user is skipped for consent")
	require.Len(t, preview.Samples, 1)
	assert.Equal(t, ana, preview.Samples[0].Phone)
	assert.Equal(t, "send", preview.Samples[0].Decision)
	require.NotNil(t, preview.Samples[0].Message)
	assert.Equal(t, "Hola Ana, 20% de descuento hoy.", preview.Samples[0].Message.Text)

	s.mustAPI(http.MethodPost, "/campaigns/"+cmp.ID+"/launch", nil, nil)

	anaID := saga.MessageID(cmp.ID+"/once", ana)
	betoID := saga.MessageID(cmp.ID+"/once", beto)
	eventually(t, 60*time.Second, "the simulator receives a create for Ana", func() bool { return s.creates() >= 1 })

	// Exactly one create, for Ana, with the rendered text; none for Beto.
	var creates []map[string][]string
	for _, r := range s.simRequests() {
		if r.IsCreate() {
			creates = append(creates, r.Form)
		}
	}
	require.Len(t, creates, 1, "exactly one create at the simulator")
	assert.Equal(t, "whatsapp:"+ana, first(creates[0]["To"]))
	assert.Equal(t, e2eFrom, first(creates[0]["From"]))
	assert.Equal(t, "Hola Ana, 20% de descuento hoy.", first(creates[0]["Body"]))
	assert.Equal(t, anaID, messageIDOf(first(creates[0]["StatusCallback"])), "the create names Herald's message id")

	// The simulator's signed status callbacks take the message to delivered, then read.
	stats := s.campaignStatsAPI(cmp.ID)
	var msg messageView
	eventually(t, 60*time.Second, "the status callbacks take Ana's message to read", func() bool {
		msg = s.message(anaID, stats != nil)
		return msg.State == "accepted" && msg.Status == "read"
	})
	require.NotNil(t, msg.ProviderSID)
	var statuses []string
	for _, m := range s.simMessages() {
		if m.SID == *msg.ProviderSID {
			for _, h := range m.History {
				statuses = append(statuses, h.Status)
			}
		}
	}
	assert.Equal(t, []string{"queued", "sent", "delivered", "read"}, statuses, "the simulator's record of the message")
	// Herald took every signed status callback (a bad signature would be refused with 403).
	var callbacks []twiliosim.RecordedCallback
	s.simGet("/sim/callbacks", &callbacks)
	answered := map[string]int{}
	for _, c := range callbacks {
		if c.Kind == "status" && c.MessageSID == *msg.ProviderSID {
			answered[c.Status] = c.ResponseStatus
		}
	}
	for _, st := range []string{"sent", "delivered", "read"} {
		assert.Contains(t, []int{http.StatusOK, http.StatusNoContent}, answered[st], "Herald accepted the signed %s callback", st)
	}

	// The STOP user's message says why nothing was sent.
	beto1 := s.message(betoID, stats != nil)
	assert.Equal(t, "skipped", beto1.State)
	assert.Equal(t, events.ReasonConsent, beto1.Reason)
	assert.Nil(t, beto1.ProviderSID)
	if stats != nil {
		var skipped bool
		for _, e := range beto1.Trail {
			var d struct {
				Reason string `json:"reason"`
			}
			_ = json.Unmarshal(e.Data, &d)
			skipped = skipped || (e.Type == "message.skipped" && d.Reason == events.ReasonConsent)
		}
		assert.True(t, skipped, "the trail holds the skip and its reason: %+v", beto1.Trail)
	}

	// The campaign's numbers.
	if stats != nil {
		eventually(t, 30*time.Second, "the campaign stats show the read message and the skip", func() bool {
			st := s.campaignStatsAPI(cmp.ID)
			return st.Total == 2 && st.Sent == 1 && st.Delivered == 1 && st.Read == 1 &&
				st.Skipped[events.ReasonConsent] == 1 && st.ByStatus["read"] == 1
		})
	} else {
		// TODO: /v1/campaigns/{id}/stats was not served by this build; read the read model instead.
		assert.Equal(t, 1, s.count(`SELECT count(*) FROM messages m JOIN message_provider_status p ON p.message_sid = m.provider_sid
WHERE m.campaign_id = $1 AND m.state = 'accepted' AND p.status = 'read'`, cmp.ID))
		assert.Equal(t, 1, s.count(`SELECT count(*) FROM messages WHERE campaign_id = $1 AND state = 'skipped' AND reason = $2`,
			cmp.ID, events.ReasonConsent))
	}
	assert.Equal(t, 1, s.creates(), "still exactly one create")

	herald.stop(15 * time.Second)
	s.sim.stop(15 * time.Second)
}

func first(v []string) string {
	if len(v) == 0 {
		return ""
	}
	return v[0]
}

// messageView is a message as GET /v1/messages/{id} shows it (or, without that endpoint, as
// the messages read model holds it).
type messageView struct {
	ID          string  `json:"id"`
	Phone       string  `json:"phone"`
	State       string  `json:"state"`
	Reason      string  `json:"reason"`
	ProviderSID *string `json:"provider_sid"`
	Status      string  `json:"status"`
	Trail       []struct {
		Type string          `json:"type"`
		Data json.RawMessage `json:"data"`
	} `json:"trail"`
}

// message reads one message through the API when it serves messages, else from the read model.
func (s *stack) message(id string, viaAPI bool) messageView {
	s.t.Helper()
	var m messageView
	if viaAPI {
		if s.api(http.MethodGet, "/messages/"+id, nil, &m) != http.StatusOK {
			return messageView{}
		}
		return m
	}
	// TODO: switch to GET /v1/messages/{id} once every build serves it.
	ctx := s.t.Context()
	err := s.db.Pool.QueryRow(ctx, `SELECT m.id::text, m.phone, m.state, m.reason, m.provider_sid, coalesce(p.status, 'none')
FROM messages m LEFT JOIN message_provider_status p ON p.message_sid = m.provider_sid WHERE m.id = $1`, id).
		Scan(&m.ID, &m.Phone, &m.State, &m.Reason, &m.ProviderSID, &m.Status)
	if err != nil {
		return messageView{}
	}
	return m
}

// campaignStats is what GET /v1/campaigns/{id}/stats answers (the fields the tests read).
type campaignStats struct {
	Total     int64            `json:"total"`
	ByState   map[string]int64 `json:"by_state"`
	ByStatus  map[string]int64 `json:"by_status"`
	Sent      int64            `json:"sent"`
	Delivered int64            `json:"delivered"`
	Read      int64            `json:"read"`
	Skipped   map[string]int64 `json:"skipped"`
}

// campaignStatsAPI reads the campaign's stats, or nil when this build does not serve them (404
// for an existing campaign: the route is missing).
func (s *stack) campaignStatsAPI(id string) *campaignStats {
	s.t.Helper()
	var st campaignStats
	status := s.api(http.MethodGet, "/campaigns/"+id+"/stats", nil, &st)
	if status == http.StatusNotFound {
		return nil
	}
	require.Equal(s.t, http.StatusOK, status, "GET /v1/campaigns/%s/stats", id)
	return &st
}
