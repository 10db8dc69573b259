package saga_test

import (
	"context"
	"encoding/json"
	"fmt"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"herald/commands/saga"
	"herald/events"
	"herald/events/store"
	"herald/handlers/twilio/twiliosim"
)

// TestCampaignSendsToWhoMayReceiveItAndSaysWhyNotToTheOthers: one campaign, five subscribers:
// the one who may receive it gets exactly one message with the rendered text, followed to
// read; the others are skipped, each with the rule and its inputs on record.
func TestCampaignSendsToWhoMayReceiveItAndSaysWhyNotToTheOthers(t *testing.T) {
	t.Parallel()
	w := newWorld(t, twiliosim.Config{CallbackLatency: 10 * time.Millisecond}, saga.Config{})
	recent := time.Now().Add(-time.Hour)
	w.user("+51987650001", map[string]any{"first_name": "Ana"}, events.ConsentOptIn, recent, "deals")
	w.user("+51987650002", map[string]any{"first_name": "Beto"}, events.ConsentOptOut, recent, "deals")      // sent STOP
	w.user("+51987650003", map[string]any{"first_name": "Carla"}, events.ConsentOptIn, time.Time{}, "deals") // never wrote: no window
	w.user("+51987650004", map[string]any{}, events.ConsentOptIn, recent, "deals")                           // no first_name
	w.user("+51987650005", map[string]any{"first_name": "Eva"}, events.ConsentOptIn, recent)                 // not subscribed
	cmp := w.campaign("Hola {first_name}, 20% hoy.", events.RateLimit{}, nil)

	w.eventually(20*time.Second, func() bool {
		state, _, _ := w.messageState(cmp, "+51987650001")
		return state == "accepted" && w.count(`SELECT count(*) FROM messages WHERE campaign_id = $1 AND state IN ('skipped', 'accepted')`, cmp) == 4
	}, "the campaign's messages reach an end")
	for phone, want := range map[string]string{
		"+51987650002": events.ReasonConsent,
		"+51987650003": events.ReasonOutsideWindow,
		"+51987650004": events.ReasonMissingVariable,
	} {
		state, reason, detail := w.messageState(cmp, phone)
		assert.Equal(t, "skipped", state, phone)
		assert.Equal(t, want, reason, phone)
		assert.NotEmpty(t, detail, phone)
	}
	assert.Zero(t, w.count(`SELECT count(*) FROM messages WHERE phone = '+51987650005'`), "not subscribed: not a recipient")

	id := saga.MessageID(cmp+"/once", "+51987650001")
	assert.Equal(t, 1, w.createdFor(id), "exactly one create for the message")
	creates := w.sim.Creates("whatsapp:+51987650001")
	require.Len(t, creates, 1)
	assert.Equal(t, "Hola Ana, 20% hoy.", creates[0].Form.Get("Body"))
	assert.Len(t, w.sim.Creates(""), 1, "nobody else got anything")

	w.eventually(20*time.Second, func() bool {
		return w.count(`SELECT count(*) FROM messages m JOIN message_provider_status p ON p.message_sid = m.provider_sid
WHERE m.id = $1 AND p.status = 'read'`, id) == 1
	}, "the status callbacks take the message to read")
	w.eventually(20*time.Second, func() bool {
		return w.count(`SELECT count(*) FROM campaigns WHERE id = $1 AND status = 'completed'`, cmp) == 1
	}, "the campaign completes")
}

// TestFaultsNeverDoubleASend: the simulator answers the first creates with a 429, a 500 (not
// created), a stalled response (created, answer too late) and a normal one; every message ends
// accepted with exactly one message created for it.
func TestFaultsNeverDoubleASend(t *testing.T) {
	t.Parallel()
	w := newWorld(t, twiliosim.Config{CallbackLatency: 10 * time.Millisecond, RetryAfter: time.Second}, saga.Config{Workers: 1})
	require.NoError(t, w.sim.QueueFaults(twiliosim.FaultRateLimit, twiliosim.FaultServerError, twiliosim.FaultStall))
	recent := time.Now().Add(-time.Hour)
	phones := []string{"+51987650011", "+51987650012", "+51987650013", "+51987650014"}
	for _, p := range phones {
		w.user(p, map[string]any{"first_name": "X"}, events.ConsentOptIn, recent, "deals")
	}
	cmp := w.campaign("Hola {first_name}", events.RateLimit{}, nil)
	w.eventually(60*time.Second, func() bool {
		return w.count(`SELECT count(*) FROM messages WHERE campaign_id = $1 AND state = 'accepted'`, cmp) == len(phones)
	}, "every message accepted despite the faults")
	for _, p := range phones {
		assert.Equal(t, 1, w.createdFor(saga.MessageID(cmp+"/once", p)), "one message created for %s", p)
	}
	var vias []string
	rows, err := w.db.Pool.Query(context.Background(), `SELECT data->>'via' FROM events WHERE type = 'message.accepted' ORDER BY 1`)
	require.NoError(t, err)
	for rows.Next() {
		var v string
		require.NoError(t, rows.Scan(&v))
		vias = append(vias, v)
	}
	assert.Subset(t, []string{events.AcceptedByCallback, events.AcceptedByReconciliation, events.AcceptedByResponse}, vias)
	assert.NotEqual(t, []string{"response", "response", "response", "response"}, vias,
		"the stalled create was settled by its callback or by listing, not sent again")
	assert.Equal(t, 2, w.count(`SELECT count(*) FROM events WHERE type = 'message.outcome_unknown'`), "the 500 and the stall were ambiguous")
	assert.Equal(t, 2, w.count(`SELECT count(*) FROM events WHERE type = 'message.retry_scheduled'`),
		"the 429 was retried, and so was the 500 once listing showed nothing had been created")
}

// TestTriggerReachesItsAudienceWithItsPayload: an accepted price-drop trigger whose rule reads
// its payload reaches the subscriber watching the product, rendered with the payload, and
// nobody else; seen twice, it queues nothing new.
func TestTriggerReachesItsAudienceWithItsPayload(t *testing.T) {
	t.Parallel()
	w := newWorld(t, twiliosim.Config{CallbackLatency: -1}, saga.Config{})
	recent := time.Now().Add(-time.Hour)
	w.user("+51987661001", map[string]any{"watchlist": []any{"sku-1", "sku-9"}}, events.ConsentOptIn, recent, "price-drops")
	w.user("+51987661002", map[string]any{"watchlist": []any{"sku-2"}}, events.ConsentOptIn, recent, "price-drops")
	tpl := uuid.NewString()
	_, err := w.catalog.SaveTemplate(w.ctx, events.TemplateSaved{ID: tpl, Name: "drop", Channel: "whatsapp", DefaultLocale: "es",
		Variants: map[string]events.TemplateVariant{"es": {Body: "Bajó {event.product}: S/ {event.price}"}}}, true, store.AnyVersion, events.Metadata{})
	require.NoError(t, err)
	w.eventually(10*time.Second, func() bool { return w.count(`SELECT count(*) FROM templates WHERE id = $1`, tpl) == 1 }, "template")
	trigger := events.TriggerAccepted{EventID: "evt-1", Type: "price_drop", OccurredAt: time.Now(), Topic: "price-drops", TemplateID: tpl,
		Payload: map[string]any{"product_id": "sku-1", "product": "Zapatillas", "price": 199.9},
		Segment: json.RawMessage(`{"attr":"watchlist","op":"contains","value":{"$event":"product_id"}}`)}
	for range 2 {
		rec, err := events.NewRecord(events.DeterministicID("test-trigger", "evt-1"), events.TriggerStream("evt-1"), trigger, events.Metadata{})
		require.NoError(t, err)
		_, err = w.store.Append(w.ctx, events.TriggerStream("evt-1"), store.AnyVersion, rec)
		require.NoError(t, err)
	}
	w.eventually(20*time.Second, func() bool {
		return w.count(`SELECT count(*) FROM messages WHERE trigger_id = 'evt-1' AND state = 'accepted'`) == 1
	}, "the watcher's message accepted")
	creates := w.sim.Creates("")
	require.Len(t, creates, 1)
	assert.Equal(t, "whatsapp:+51987661001", creates[0].Form.Get("To"))
	assert.Equal(t, "Bajó Zapatillas: S/ 199.9", creates[0].Form.Get("Body"))
	assert.Equal(t, 1, w.count(`SELECT count(*) FROM messages WHERE trigger_id = 'evt-1'`))
}

// TestPauseTakesEffectWithinASecond: a campaign sending at 2/s is paused mid-way; a second
// later nothing more reaches the simulator (messages waiting for a rate slot are not sent);
// resumed, every message is sent once.
func TestPauseTakesEffectWithinASecond(t *testing.T) {
	t.Parallel()
	w := newWorld(t, twiliosim.Config{CallbackLatency: -1}, saga.Config{Workers: 8})
	recent := time.Now().Add(-time.Hour)
	const n = 10
	for i := 0; i < n; i++ {
		w.user(fmt.Sprintf("+5198768%04d", i), map[string]any{"first_name": "X"}, events.ConsentOptIn, recent, "deals")
	}
	cmp := w.campaign("Hola {first_name}", events.RateLimit{PerSecond: 2}, nil)
	w.eventually(30*time.Second, func() bool { return len(w.sim.Creates("")) >= 2 }, "the first sends")
	_, err := w.catalog.ChangeCampaignStatus(w.ctx, cmp, events.CampaignPaused, "test", store.AnyVersion, events.Metadata{})
	require.NoError(t, err)
	time.Sleep(time.Second + 100*time.Millisecond) // status reads are at most 250 ms old; a send in flight finishes
	atPause := len(w.sim.Creates(""))
	time.Sleep(2 * time.Second)
	assert.Equal(t, atPause, len(w.sim.Creates("")), "nothing sent more than a second after the pause")
	assert.Less(t, atPause, n)

	_, err = w.catalog.ChangeCampaignStatus(w.ctx, cmp, events.CampaignRunning, "test", store.AnyVersion, events.Metadata{})
	require.NoError(t, err)
	w.eventually(60*time.Second, func() bool {
		return w.count(`SELECT count(*) FROM messages WHERE campaign_id = $1 AND state = 'accepted'`, cmp) == n
	}, "every message accepted after the resume")
	for i := 0; i < n; i++ {
		assert.Equal(t, 1, w.createdFor(saga.MessageID(cmp+"/once", fmt.Sprintf("+5198768%04d", i))))
	}
}
