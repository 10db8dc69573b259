package commands

import (
	"context"
	"errors"
	"fmt"
	"strconv"

	"github.com/google/uuid"

	"herald/events"
	"herald/events/store"
)

// RecordStatus records a Twilio status callback.
type RecordStatus struct {
	Status   events.MessageStatusReceived
	Metadata events.Metadata
}

// StatusResult says what was recorded.
type StatusResult struct {
	Duplicate  bool
	OptedOut   bool // the callback's error code opted the recipient out (21610)
	Checkpoint store.Checkpoint
}

// RecordStatusHandler handles RecordStatus.
type RecordStatusHandler struct {
	store    *store.Store
	registry *events.Registry
}

// NewRecordStatusHandler wires the handler.
func NewRecordStatusHandler(s *store.Store, registry *events.Registry) *RecordStatusHandler {
	return &RecordStatusHandler{store: s, registry: registry}
}

// ErrorCodeOptedOut is Twilio's "recipient unsubscribed" (STOP) error.
const ErrorCodeOptedOut = 21610

// StatusEventID is the idempotency key of a status callback: MessageSid, status and error code.
func StatusEventID(messageSID, status string, errorCode *int) uuid.UUID {
	code := ""
	if errorCode != nil {
		code = strconv.Itoa(*errorCode)
	}
	return events.DeterministicID("twilio-status", messageSID, status, code)
}

// Handle appends the callback to the message's receipt stream (any version: callbacks are
// independent facts whose order does not matter). The same callback delivered again is a
// duplicate, stored once. Error 21610 also opts the recipient out.
func (h *RecordStatusHandler) Handle(ctx context.Context, cmd RecordStatus) (StatusResult, error) {
	st := cmd.Status
	if st.Raw == nil {
		st.Raw = map[string][]string{}
	}
	id := StatusEventID(st.MessageSID, st.Status, st.ErrorCode)
	stream := events.ReceiptStream(st.MessageSID)
	rec, err := events.NewRecord(id, stream, st, cmd.Metadata)
	if err != nil {
		return StatusResult{}, err
	}
	var res StatusResult
	appended, err := h.store.Append(ctx, stream, store.AnyVersion, rec)
	switch {
	case err == nil:
		res = StatusResult{Duplicate: appended.Duplicate, Checkpoint: appended.Checkpoint}
	case errors.Is(err, store.ErrEventIDReused):
		// The same callback again, received at another time: the first one stands.
		res = StatusResult{Duplicate: true}
	default:
		return StatusResult{}, fmt.Errorf("record status %s %s: %w", st.MessageSID, st.Status, err)
	}
	if st.ErrorCode != nil && *st.ErrorCode == ErrorCodeOptedOut && st.Phone != "" {
		cp, err := h.optOut(ctx, st, cmd.Metadata)
		if err != nil {
			return res, err
		}
		res.OptedOut = true
		if res.Checkpoint.Less(cp) {
			res.Checkpoint = cp
		}
	}
	return res, nil
}

// optOut records that the provider reports the recipient as unsubscribed, unless they are
// already opted out. A recipient Herald does not know is left alone.
func (h *RecordStatusHandler) optOut(ctx context.Context, st events.MessageStatusReceived, md events.Metadata) (store.Checkpoint, error) {
	stream := events.UserStream(st.Phone)
	for attempt := 0; attempt < maxConflictRetries; attempt++ {
		user, err := loadUser(ctx, h.store.Pool(), h.registry, st.Phone)
		if err != nil {
			return store.Checkpoint{}, err
		}
		if !user.exists || user.consent == events.ConsentOptOut {
			return store.Checkpoint{}, nil
		}
		rec, err := events.NewRecord(events.DeterministicID("twilio-status-optout", st.MessageSID),
			stream, events.UserConsentChanged{Phone: st.Phone, Consent: events.ConsentOptOut,
				Source: "twilio", Reason: fmt.Sprintf("error %d on %s", ErrorCodeOptedOut, st.MessageSID)}, md)
		if err != nil {
			return store.Checkpoint{}, err
		}
		res, err := h.store.Append(ctx, stream, user.version, rec)
		if errors.Is(err, store.ErrConcurrency) {
			continue
		}
		if err != nil {
			return store.Checkpoint{}, fmt.Errorf("opt out %s: %w", st.Phone, err)
		}
		return res.Checkpoint, nil
	}
	return store.Checkpoint{}, fmt.Errorf("opt out %s: %w after %d attempts", st.Phone, store.ErrConcurrency, maxConflictRetries)
}
