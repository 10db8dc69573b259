package api

import (
	"errors"
	"fmt"
	"net/http"
	"sort"
	"strings"
	"unicode/utf8"

	"github.com/google/uuid"

	"herald/commands"
	"herald/commands/template"
	"herald/events"
)

// replyBody is POST /v1/conversations/{phone}/messages: free text, or a template with the
// values of its {event.…} placeholders.
type replyBody struct {
	Body       string         `json:"body"`
	TemplateID string         `json:"template_id"`
	Payload    map[string]any `json:"payload"`
}

func (b replyBody) check() error {
	var errs fieldErrors
	switch {
	case b.Body != "" && b.TemplateID != "":
		errs.add("template_id", "give body or template_id, not both")
	case strings.TrimSpace(b.Body) == "" && b.TemplateID == "":
		errs.add("body", "is required (free text), unless template_id is given")
	case utf8.RuneCountInString(b.Body) > template.MaxChars:
		errs.add("body", "is %d characters; WhatsApp's limit is %d", utf8.RuneCountInString(b.Body), template.MaxChars)
	}
	if b.Payload != nil && b.TemplateID == "" {
		errs.add("payload", "fills a template's {event.…} placeholders; give template_id with it")
	}
	return errs.err()
}

// replyToUser serves POST /v1/conversations/{phone}/messages: it queues a reply, a message of
// kind reply that the send saga delivers (and records) like any other. Inside WhatsApp's
// 24-hour window any reply may go; outside it only a template whose variant for the user has
// an approved content_sid; anything else is 422 with the reason.
func (a *API) replyToUser(w http.ResponseWriter, r *http.Request) error {
	ctx := r.Context()
	phone, err := a.phoneParam(r)
	if err != nil {
		return err
	}
	var b replyBody
	if err := a.decode(w, r, &b); err != nil {
		return err
	}
	if err := b.check(); err != nil {
		return err
	}
	u, err := a.readUser(ctx, phone)
	if err != nil {
		return err
	}
	facts := commands.ReplyFacts{Now: a.now().UTC(), UserExists: true, Consent: u.Consent, LastInboundAt: u.LastInboundAt}
	if b.TemplateID != "" {
		if facts.ContentSID, err = a.renderReply(r, u, b); err != nil {
			return err
		}
	}
	id := replyMessageID(r)
	written, err := commands.NewConversations(a.store).Reply(ctx, commands.Reply{MessageID: id, Phone: phone, Body: b.Body,
		TemplateID: b.TemplateID, Payload: b.Payload, Facts: facts, Metadata: metadata(r)})
	var refused *commands.ReplyRefusedError
	switch {
	case errors.As(err, &refused):
		return &problemError{status: http.StatusUnprocessableEntity, detail: "this reply cannot be sent now",
			fields: []FieldError{{Field: refused.Field, Reason: refused.Reason}}}
	case errors.Is(err, commands.ErrReplyExists):
		// The same request again (its Idempotency-Key names the message): answer with it.
		return a.answerReply(w, r, http.StatusOK, id, commands.Written{})
	case err != nil:
		return err
	}
	return a.answerReply(w, r, http.StatusCreated, id, written)
}

// renderReply renders the template for the user as the saga will, and returns the approved
// content_sid of the variant the user gets ("" for none).
func (a *API) renderReply(r *http.Request, u User, b replyBody) (string, error) {
	t, err := a.templates.read(r.Context(), b.TemplateID)
	if err != nil {
		return "", invalid(FieldError{Field: "template_id", Reason: "no template has this id"})
	}
	compiled, err := t.Template.Compile()
	if err != nil {
		return "", fmt.Errorf("compile template %s: %w", t.ID, err)
	}
	res, err := compiled.Render(template.Data{Phone: u.Phone, Locale: u.Locale, Country: u.Country, Attributes: u.Attributes, Event: b.Payload})
	var missing *template.MissingError
	switch {
	case errors.As(err, &missing):
		names := append([]string(nil), missing.Placeholders...)
		sort.Strings(names)
		return "", invalid(FieldError{Field: "payload", Reason: "the template needs a value for " + strings.Join(names, ", ") +
			" (payload gives {event.…}; the user's attributes give the rest)"})
	case errors.Is(err, template.ErrTooLong):
		return "", invalid(FieldError{Field: "template_id", Reason: err.Error()})
	case err != nil:
		return "", fmt.Errorf("render template %s: %w", t.ID, err)
	}
	return res.ContentSID, nil
}

// replyMessageID is the new message's id: derived from the Idempotency-Key when there is one,
// so a retry after a lost answer finds the message it already queued instead of queuing it
// twice (even after a 5xx, which the idempotency records forget).
func replyMessageID(r *http.Request) string {
	if key := r.Header.Get(IdempotencyHeader); key != "" {
		return events.DeterministicID("reply-request", principalFrom(r.Context()).KeyID, key).String()
	}
	return uuid.NewString()
}

// answerReply answers with the message once the messages read model shows it, else 202.
func (a *API) answerReply(w http.ResponseWriter, r *http.Request, status int, id string, written commands.Written) error {
	location := "/v1/messages/" + id
	ok, err := a.applied(r.Context(), written, "messages")
	if err != nil {
		return err
	}
	var m Message
	if ok {
		m, err = a.readMessage(r.Context(), id)
		var pe *problemError
		if errors.As(err, &pe) && pe.status == http.StatusNotFound {
			ok = false // a replayed request whose message is not applied yet
		} else if err != nil {
			return err
		}
	}
	w.Header().Set("Location", location)
	if !ok {
		writeJSON(w, http.StatusAccepted, map[string]any{
			"id":       id,
			"status":   "accepted",
			"detail":   "queued; the messages read model has not applied it yet",
			"position": fmt.Sprintf("%d:%d", written.Checkpoint.TxID, written.Checkpoint.Position),
		})
		return nil
	}
	setETag(w, m.Version)
	writeJSON(w, status, m)
	return nil
}
