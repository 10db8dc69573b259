package api_test

import (
	"context"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"herald/events"
)

func TestReplyFollowsTheWhatsAppWindow(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.ready()
	now := time.Now().UTC()
	const (
		inWindow  = "+51987650001" // wrote an hour ago
		stale     = "+51987650002" // wrote 25 hours ago
		never     = "+51987650003" // never wrote
		optedOut  = "+51987650004" // wrote an hour ago, then STOP
		stranger  = "+51987650099" // not a user
		sid       = "HX0123456789abcdef0123456789abcdef"
		orderBody = "Your order {event.order_id} has shipped"
	)
	for _, p := range []string{inWindow, stale, never, optedOut} {
		e.consent(p, events.ConsentOptIn)
	}
	e.inbound(inWindow, "hola", "", "", now.Add(-time.Hour))
	e.inbound(stale, "hola", "", "", now.Add(-25*time.Hour))
	e.inbound(optedOut, "hola", "", "", now.Add(-time.Hour))
	e.consent(optedOut, events.ConsentOptOut)
	approved := createTemplate(t, e, map[string]any{"name": "shipped", "default_locale": "en", "variants": map[string]any{
		"en": map[string]any{"body": orderBody, "content_sid": sid, "content_variables": map[string]any{"1": "{event.order_id}"}}}})
	plain := createTemplate(t, e, map[string]any{"name": "plain", "default_locale": "en", "variants": map[string]any{
		"en": map[string]any{"body": "Thanks for writing!"}}})

	for _, tt := range []struct {
		name   string
		phone  string
		body   map[string]any
		status int
		field  string // the field a 422 names
		reason string // a phrase of its reason
	}{
		{"free text inside the window", inWindow, map[string]any{"body": "Abrimos a las 9."}, http.StatusCreated, "", ""},
		{"a plain template inside the window", inWindow, map[string]any{"template_id": plain}, http.StatusCreated, "", ""},
		{"free text outside the window", stale, map[string]any{"body": "Abrimos a las 9."}, http.StatusUnprocessableEntity, "body", "within 24 hours"},
		{"free text to a user who never wrote", never, map[string]any{"body": "Hola"}, http.StatusUnprocessableEntity, "body", "never written"},
		{"a template without content_sid outside the window", stale, map[string]any{"template_id": plain}, http.StatusUnprocessableEntity, "template_id", "no content_sid"},
		{"an approved template outside the window", stale, map[string]any{"template_id": approved, "payload": map[string]any{"order_id": "A-1"}}, http.StatusCreated, "", ""},
		{"an approved template to a user who never wrote", never, map[string]any{"template_id": approved, "payload": map[string]any{"order_id": "A-2"}}, http.StatusCreated, "", ""},
		{"an approved template missing a value", stale, map[string]any{"template_id": approved}, http.StatusUnprocessableEntity, "payload", "event.order_id"},
		{"a user who opted out", optedOut, map[string]any{"body": "Hola"}, http.StatusUnprocessableEntity, "phone", "opted out"},
		{"body and template", inWindow, map[string]any{"body": "x", "template_id": plain}, http.StatusUnprocessableEntity, "template_id", "not both"},
		{"neither", inWindow, map[string]any{}, http.StatusUnprocessableEntity, "body", "required"},
		{"a blank body", inWindow, map[string]any{"body": "  "}, http.StatusUnprocessableEntity, "body", "required"},
		{"payload without a template", inWindow, map[string]any{"body": "x", "payload": map[string]any{"a": 1}}, http.StatusUnprocessableEntity, "payload", "template_id"},
		{"an unknown template", inWindow, map[string]any{"template_id": "nope"}, http.StatusUnprocessableEntity, "template_id", "no template"},
		{"a body over 1600 characters", inWindow, map[string]any{"body": strings.Repeat("a", 1601)}, http.StatusUnprocessableEntity, "body", "1600"},
		{"an unknown field", inWindow, map[string]any{"body": "x", "kind": "campaign"}, http.StatusUnprocessableEntity, "kind", ""},
		{"a user who does not exist", stranger, map[string]any{"body": "Hola"}, http.StatusNotFound, "", ""},
	} {
		t.Run(tt.name, func(t *testing.T) {
			res := e.admin(http.MethodPost, "/v1/conversations/"+tt.phone+"/messages", tt.body)
			require.Equal(t, tt.status, res.status, string(res.raw))
			if tt.status == http.StatusUnprocessableEntity {
				require.Equal(t, []string{tt.field}, res.problemFields(), string(res.raw))
				assert.Contains(t, string(res.raw), tt.reason)
				return
			}
			if tt.status != http.StatusCreated {
				return
			}
			// The reply is a message of its own, queued for the saga, with its trail.
			id := res.body["id"].(string)
			assert.Equal(t, "/v1/messages/"+id, res.header.Get("Location"))
			assert.Equal(t, events.MessageKindReply, res.body["kind"])
			assert.Equal(t, "queued", res.body["state"])
			assert.Equal(t, tt.phone, res.body["phone"])
			msg := e.call(http.MethodGet, res.header.Get("Location"), readKey, nil)
			require.Equal(t, http.StatusOK, msg.status, string(msg.raw))
			trail := msg.body["trail"].([]any)
			require.Len(t, trail, 1)
			queued := trail[0].(map[string]any)
			assert.Equal(t, events.TypeMessageQueued, queued["type"])
			data := queued["data"].(map[string]any)
			assert.Equal(t, events.MessageKindReply, data["kind"])
			assert.Equal(t, id, data["message_id"])
			assert.Equal(t, tt.body["body"], data["body"])
			assert.Equal(t, tt.body["template_id"], data["template_id"])
			assert.Equal(t, tt.body["payload"], data["payload"])
			due, err := time.Parse(time.RFC3339Nano, data["due_at"].(string))
			require.NoError(t, err)
			assert.WithinDuration(t, time.Now(), due, time.Minute, "due now")
		})
	}
}

func TestReplyIsIdempotent(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.ready()
	e.consent("+51987650001", events.ConsentOptIn)
	e.inbound("+51987650001", "hola", "", "", time.Now().UTC().Add(-time.Minute))
	body := map[string]any{"body": "Abrimos a las 9."}

	first := e.admin(http.MethodPost, "/v1/conversations/987650001/messages", body, "Idempotency-Key", "reply-1")
	require.Equal(t, http.StatusCreated, first.status, string(first.raw))
	again := e.admin(http.MethodPost, "/v1/conversations/987650001/messages", body, "Idempotency-Key", "reply-1")
	assert.Equal(t, http.StatusCreated, again.status)
	assert.Equal(t, "true", again.header.Get("Idempotent-Replayed"))
	assert.Equal(t, first.header.Get("Location"), again.header.Get("Location"))

	// The stored answer is gone (as after a 5xx, which is forgotten): the key still names the
	// message already queued, so the retry finds it instead of queuing a second reply.
	_, err := e.db.Pool.Exec(context.Background(), `DELETE FROM idempotency_keys`)
	require.NoError(t, err)
	retry := e.admin(http.MethodPost, "/v1/conversations/987650001/messages", body, "Idempotency-Key", "reply-1")
	require.Equal(t, http.StatusOK, retry.status, string(retry.raw))
	assert.Equal(t, first.body["id"], retry.body["id"])

	other := e.admin(http.MethodPost, "/v1/conversations/987650001/messages", body, "Idempotency-Key", "reply-2")
	require.Equal(t, http.StatusCreated, other.status, string(other.raw))
	assert.NotEqual(t, first.body["id"], other.body["id"])

	var replies int
	require.NoError(t, e.db.Pool.QueryRow(context.Background(), `SELECT count(*) FROM messages WHERE kind = 'reply'`).Scan(&replies))
	assert.Equal(t, 2, replies)
}
