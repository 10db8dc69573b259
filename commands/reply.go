package commands

import (
	"context"
	"errors"
	"fmt"
	"time"

	"herald/events"
	"herald/events/store"
)

// WhatsAppWindow is WhatsApp's customer service window: for this long after a user's last
// message, free-form text may be sent to them; afterwards only an approved template.
const WhatsAppWindow = 24 * time.Hour

// ReplyFacts are what decides whether an operator's reply to a user may be queued now.
type ReplyFacts struct {
	Now           time.Time
	UserExists    bool
	Consent       string     // OPT_IN or OPT_OUT
	LastInboundAt *time.Time // the user's last inbound message; nil: never wrote
	// FreeText is a reply written by the operator (a body, no template).
	FreeText bool
	// ContentSID is the approved WhatsApp template (HX…) of the template variant the user would
	// get; "" when the reply is free text or the variant has none.
	ContentSID string
}

// ReplyRefusedError says why a reply cannot be sent now, for the operator to act on.
type ReplyRefusedError struct {
	Field  string // the request field the refusal is about: "body", "template_id", "phone"
	Reason string
}

func (e *ReplyRefusedError) Error() string { return "reply refused: " + e.Field + ": " + e.Reason }

// InWindow reports whether the user wrote within WhatsApp's 24-hour window before now.
func InWindow(now time.Time, lastInbound *time.Time) bool {
	return lastInbound != nil && now.Sub(*lastInbound) < WhatsAppWindow
}

// DecideReply applies the rules of a reply: the user exists and has not opted out (Twilio
// refuses messages to numbers that sent STOP, error 21610); inside the 24-hour window any
// reply may go; outside it only a template with an approved content_sid. The error is a
// *ReplyRefusedError, or ErrNotFound for a user that does not exist.
func DecideReply(f ReplyFacts) error {
	if !f.UserExists {
		return fmt.Errorf("user: %w", ErrNotFound)
	}
	if f.Consent != events.ConsentOptIn {
		return &ReplyRefusedError{Field: "phone", Reason: "the user has opted out (STOP or consent set to OPT_OUT); WhatsApp messages to them are refused until they opt in again (START)"}
	}
	if InWindow(f.Now, f.LastInboundAt) {
		return nil
	}
	since := "the user has never written to this number"
	if f.LastInboundAt != nil {
		since = fmt.Sprintf("the user last wrote at %s, %s ago", f.LastInboundAt.UTC().Format(time.RFC3339),
			f.Now.Sub(*f.LastInboundAt).Truncate(time.Minute))
	}
	if f.FreeText {
		return &ReplyRefusedError{Field: "body", Reason: "free text is allowed only within 24 hours of the user's last message and " + since +
			"; send a template with an approved content_sid instead (template_id)"}
	}
	if f.ContentSID == "" {
		return &ReplyRefusedError{Field: "template_id", Reason: "outside the 24-hour window (" + since +
			") only an approved WhatsApp template can be sent, and the template's variant for this user has no content_sid"}
	}
	return nil
}

// Conversations queues operators' replies to users. A reply is a message of its own (stream
// message-<id>, kind reply) that the send saga takes through the same decisions, attempts and
// trail as a campaign message.
type Conversations struct {
	store *store.Store
}

// NewConversations wires the reply command.
func NewConversations(s *store.Store) *Conversations { return &Conversations{store: s} }

// Reply is one reply to a user: Body (free text) or TemplateID with Payload (the {event.…}
// values of the template).
type Reply struct {
	// MessageID is the new message's id (a UUID). A caller that retries the same request must
	// pass the same id: the reply is then recognised instead of queued twice.
	MessageID  string
	Phone      string
	Body       string
	TemplateID string
	Payload    map[string]any
	Facts      ReplyFacts
	Metadata   events.Metadata
}

// ErrReplyExists is returned when a message with the reply's id is already queued (the same
// request, retried).
var ErrReplyExists = errors.New("reply already queued")

// Reply decides and queues the reply: message.queued, due now, as the first event of a new
// message stream.
func (c *Conversations) Reply(ctx context.Context, cmd Reply) (Written, error) {
	cmd.Facts.FreeText = cmd.TemplateID == ""
	if err := DecideReply(cmd.Facts); err != nil {
		return Written{}, err
	}
	stream := events.MessageStream(cmd.MessageID)
	e := events.MessageQueued{MessageID: cmd.MessageID, Kind: events.MessageKindReply, Phone: cmd.Phone,
		TemplateID: cmd.TemplateID, Body: cmd.Body, Payload: cmd.Payload, DueAt: cmd.Facts.Now.UTC()}
	rec, err := events.NewRecord(events.DeterministicID("reply", cmd.MessageID), stream, e, cmd.Metadata)
	if err != nil {
		return Written{}, err
	}
	res, err := c.store.Append(ctx, stream, 0, rec)
	switch {
	case errors.Is(err, store.ErrConcurrency), errors.Is(err, store.ErrEventIDReused):
		return Written{}, fmt.Errorf("%s: %w", stream, ErrReplyExists)
	case err != nil:
		return Written{}, fmt.Errorf("queue reply %s: %w", stream, err)
	}
	return Written{Created: true, Changed: true, Version: res.StreamVersion, Checkpoint: res.Checkpoint}, nil
}
