package commands

import (
	"context"
	"errors"
	"fmt"

	"github.com/google/uuid"

	"herald/events"
	"herald/events/store"
)

// ReceiveInbound records an inbound WhatsApp message and what its keyword changes.
type ReceiveInbound struct {
	Message  events.UserMessageReceived
	Metadata events.Metadata
}

// InboundResult says what was recorded and what to answer.
type InboundResult struct {
	// Reply is the confirmation to send back in the TwiML ("" for none).
	Reply string
	// Duplicate is true when this MessageSid was already recorded (a webhook retry).
	Duplicate bool
	// Checkpoint is where the events landed, for read-your-writes.
	Checkpoint store.Checkpoint
}

// ReceiveInboundHandler handles ReceiveInbound.
type ReceiveInboundHandler struct {
	store    *store.Store
	registry *events.Registry
	replies  Replies
	reads    *userReads
	cache    *userCache
}

// NewReceiveInboundHandler wires the handler.
func NewReceiveInboundHandler(s *store.Store, registry *events.Registry, replies Replies) *ReceiveInboundHandler {
	return &ReceiveInboundHandler{store: s, registry: registry, replies: replies.withDefaults(),
		reads: newUserReads(s.Pool()), cache: newUserCache(maxCachedUsers)}
}

// maxConflictRetries bounds how often a command decides again after a concurrent write.
const maxConflictRetries = 10

// InboundEventID is the idempotency key of an inbound message: its MessageSid.
func InboundEventID(messageSID string) uuid.UUID {
	return inboundEventID(messageSID, keyMessage)
}

// inboundEventID derives the id of each event an inbound message causes from its MessageSid.
func inboundEventID(messageSID, key string) uuid.UUID {
	return events.DeterministicID("twilio-inbound", messageSID, key)
}

// Keys of the events an inbound message can cause.
const (
	keyCreated      = "created"
	keyMessage      = "message"
	keyConsent      = "consent"
	keySubscribed   = "subscribed"
	keyUnsubscribed = "unsubscribed"
)

// Handle appends, in one atomic append to the sender's stream: the user's creation if the
// number is new (consent as the keyword leaves it: a plain message opts nobody in), the message
// itself, and the consent and subscription changes its keyword asks for. A MessageSid already
// recorded is a duplicate: nothing is appended and the same reply is given. The user's state
// comes from the batched read, or from the cache when the user was written to recently and the
// keyword changes their state (userCache); a stale entry fails the append, which reads again.
func (h *ReceiveInboundHandler) Handle(ctx context.Context, cmd ReceiveInbound) (InboundResult, error) {
	msg := cmd.Message
	kw := Keyword{Command: msg.Command, Word: msg.Keyword, Topic: msg.Topic}
	inboundID := InboundEventID(msg.MessageSID)
	stream := events.UserStream(msg.Phone)
	if res, done, err := h.appendToKnownUser(ctx, cmd, kw, inboundID); done || err != nil {
		return res, err
	}
	for attempt := 0; attempt < maxConflictRetries; attempt++ {
		st, cached := h.cache.get(msg.Phone)
		if !cached || !st.trusted(kw) {
			var dup bool
			var err error
			st, dup, err = h.reads.load(ctx, h.registry, msg.Phone, inboundID)
			if err != nil {
				return InboundResult{}, err
			}
			if dup {
				return InboundResult{Duplicate: true, Reply: h.replies.For(kw, msg.OptOutType)}, nil
			}
		}
		decided := decideInbound(st, msg, kw)
		recs := make([]events.Record, 0, len(decided))
		for _, d := range decided {
			rec, err := events.NewRecord(inboundEventID(msg.MessageSID, d.key), stream, d.event, cmd.Metadata)
			if err != nil {
				return InboundResult{}, err
			}
			recs = append(recs, rec)
		}
		res, err := h.store.Append(ctx, stream, st.version, recs...)
		switch {
		case err == nil:
			if !res.Duplicate {
				h.cache.put(msg.Phone, st.after(decided, res.StreamVersion))
			}
			return InboundResult{Reply: h.replies.For(kw, msg.OptOutType), Checkpoint: res.Checkpoint, Duplicate: res.Duplicate}, nil
		case errors.Is(err, store.ErrConcurrency), errors.Is(err, store.ErrEventIDReused):
			// Another write to this user, or a concurrent delivery of the same message with
			// another receive time: look again.
			h.cache.forget(msg.Phone)
			continue
		default:
			return InboundResult{}, fmt.Errorf("record inbound %s: %w", msg.MessageSID, err)
		}
	}
	return InboundResult{}, fmt.Errorf("record inbound %s: %w after %d attempts", msg.MessageSID, store.ErrConcurrency, maxConflictRetries)
}

// appendToKnownUser records a message whose effect does not depend on the user's state — a
// conversation message or HELP: from a known user it is just the message — without reading the
// stream: the store appends it at the head provided the user exists. done is false when the
// user is new (or the message is not of that kind), and the caller decides from the stream.
func (h *ReceiveInboundHandler) appendToKnownUser(ctx context.Context, cmd ReceiveInbound, kw Keyword, inboundID uuid.UUID) (InboundResult, bool, error) {
	if kw.Command != "" && kw.Command != events.CommandHelp {
		return InboundResult{}, false, nil
	}
	msg := cmd.Message
	if msg.Raw == nil {
		msg.Raw = map[string][]string{}
	}
	rec, err := events.NewRecord(inboundID, events.UserStream(msg.Phone), msg, cmd.Metadata)
	if err != nil {
		return InboundResult{}, false, err
	}
	reply := h.replies.For(kw, msg.OptOutType)
	res, err := h.store.AppendExisting(ctx, events.UserStream(msg.Phone), rec)
	switch {
	case err == nil:
		if !res.Duplicate {
			h.cache.advance(msg.Phone, res.StreamVersion-1, res.StreamVersion)
		}
		return InboundResult{Reply: reply, Checkpoint: res.Checkpoint, Duplicate: res.Duplicate}, true, nil
	case errors.Is(err, store.ErrEventIDReused):
		// This MessageSid is stored: a retry, received at another time.
		return InboundResult{Duplicate: true, Reply: reply}, true, nil
	case errors.Is(err, store.ErrStreamEmpty):
		h.cache.forget(msg.Phone)          // an erased user writing again
		return InboundResult{}, false, nil // a new user: created with the message below
	default:
		return InboundResult{}, false, fmt.Errorf("record inbound %s: %w", msg.MessageSID, err)
	}
}

// decision is one event to append and the key its id derives from.
type decision struct {
	key   string
	event events.Event
}

// decideInbound is the pure decision: what an inbound message does to a user.
func decideInbound(st userState, msg events.UserMessageReceived, kw Keyword) []decision {
	var out []decision
	consent := st.consent
	if !st.exists {
		attrs := map[string]any{}
		if msg.ProfileName != "" {
			attrs["profile_name"] = msg.ProfileName
		}
		out = append(out, decision{keyCreated, events.UserCreated{Phone: msg.Phone, Attributes: attrs,
			Consent: events.ConsentOptOut, Source: "inbound"}})
		consent = events.ConsentOptOut
	}
	if msg.Raw == nil {
		msg.Raw = map[string][]string{}
	}
	out = append(out, decision{keyMessage, msg})

	setConsent := func(to, reason string) {
		if consent == to {
			return
		}
		out = append(out, decision{keyConsent, events.UserConsentChanged{Phone: msg.Phone, Consent: to,
			Source: "inbound", Reason: reason}})
		consent = to
	}
	reason := fmt.Sprintf("keyword %s in %s", kw.Word, msg.MessageSID)
	switch kw.Command {
	case events.CommandStop:
		setConsent(events.ConsentOptOut, reason)
	case events.CommandStart:
		setConsent(events.ConsentOptIn, reason)
	case events.CommandSubscribe:
		if !st.topics[kw.Topic] {
			out = append(out, decision{keySubscribed, events.UserSubscribed{Phone: msg.Phone, Topic: kw.Topic, Source: "inbound"}})
		}
		// Asking for a topic is an explicit request to receive messages.
		setConsent(events.ConsentOptIn, fmt.Sprintf("SUBSCRIBE %s in %s", kw.Topic, msg.MessageSID))
	case events.CommandUnsubscribe:
		if st.topics[kw.Topic] {
			out = append(out, decision{keyUnsubscribed, events.UserUnsubscribed{Phone: msg.Phone, Topic: kw.Topic, Source: "inbound"}})
		}
	}
	return out
}
