package events

import "time"

// CategoryReceipt holds the status callbacks of one provider message, keyed by its SID, so a
// callback that races ahead of the send result is kept and joins the message once the SID is
// known.
const CategoryReceipt = "receipt"

// ReceiptStream is the stream of status callbacks for one Twilio MessageSid.
func ReceiptStream(messageSID string) string { return CategoryReceipt + "-" + messageSID }

// TypeMessageStatusReceived is one status callback, raw and normalized.
const TypeMessageStatusReceived = "message.status_received"

// MessageStatusReceived is a Twilio status callback.
type MessageStatusReceived struct {
	MessageSID       string              `json:"message_sid"`
	Status           string              `json:"status"`
	ErrorCode        *int                `json:"error_code,omitempty"`
	ErrorMessage     string              `json:"error_message,omitempty"`
	Phone            string              `json:"phone,omitempty"` // the recipient, E.164, when To parses
	From             string              `json:"from,omitempty"`
	AccountSID       string              `json:"account_sid,omitempty"`
	MessageID        string              `json:"message_id,omitempty"`    // Herald's message id, from the callback URL
	Attempt          int                 `json:"attempt,omitempty"`       // Herald's attempt number, from the callback URL
	ChannelEvent     string              `json:"channel_event,omitempty"` // Twilio's EventType (e.g. READ)
	IdempotencyToken string              `json:"idempotency_token,omitempty"`
	ReceivedAt       time.Time           `json:"received_at"`
	TimestampSource  string              `json:"timestamp_source"`
	Raw              map[string][]string `json:"raw"`
}

func (MessageStatusReceived) EventType() string  { return TypeMessageStatusReceived }
func (MessageStatusReceived) SchemaVersion() int { return 1 }

// Provider statuses, as Twilio names them.
const (
	StatusAccepted    = "accepted"
	StatusScheduled   = "scheduled"
	StatusQueued      = "queued"
	StatusSending     = "sending"
	StatusSent        = "sent"
	StatusDelivered   = "delivered"
	StatusRead        = "read"
	StatusFailed      = "failed"
	StatusUndelivered = "undelivered"
	StatusCanceled    = "canceled"
)

// statusRank orders statuses so that the derived status of a message is the maximum of every
// callback received, whatever order they came in: read > delivered > failed/undelivered/canceled
// > sent > sending > queued > accepted/scheduled. A message can be reported failed after it was
// sent, but never sent after it was delivered.
var statusRank = map[string]int{
	StatusAccepted: 1, StatusScheduled: 1,
	StatusQueued:  2,
	StatusSending: 3,
	StatusSent:    4,
	StatusFailed:  5, StatusUndelivered: 5, StatusCanceled: 5,
	StatusDelivered: 6,
	StatusRead:      7,
}

// StatusRank returns a status's precedence, 0 for an unknown status.
func StatusRank(status string) int { return statusRank[status] }

// StatusWins reports whether callback (status a, error code ca) takes precedence over (b, cb).
// It is a strict total order — rank, then status name, then error code — so the maximum of a
// set of callbacks does not depend on their arrival order.
func StatusWins(a string, ca int, b string, cb int) bool {
	if ra, rb := StatusRank(a), StatusRank(b); ra != rb {
		return ra > rb
	}
	if a != b {
		return a > b
	}
	return ca > cb
}
