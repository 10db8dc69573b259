package events

import "time"

// TypeUserMessageReceived is an inbound WhatsApp message, kept on the sender's user stream so
// that a user's stream is their whole history: what they wrote and what it changed.
const TypeUserMessageReceived = "user.message_received"

// Where a received_at came from.
const (
	TimestampFromTwilio = "twilio" // the webhook carried a Timestamp
	TimestampFromServer = "server" // Herald's receive time (Twilio sends none)
)

// Inbound commands, as normalized.
const (
	CommandStop        = "STOP"
	CommandStart       = "START"
	CommandSubscribe   = "SUBSCRIBE"
	CommandUnsubscribe = "UNSUBSCRIBE"
	CommandHelp        = "HELP"
)

// Media is one attachment of an inbound message.
type Media struct {
	URL         string `json:"url"`
	ContentType string `json:"content_type,omitempty"`
}

// UserMessageReceived is the normalized inbound message plus the raw form exactly as posted.
type UserMessageReceived struct {
	Phone           string              `json:"phone"`
	MessageSID      string              `json:"message_sid"`
	AccountSID      string              `json:"account_sid,omitempty"`
	To              string              `json:"to"`
	Body            string              `json:"body"`
	ProfileName     string              `json:"profile_name,omitempty"`
	WaID            string              `json:"wa_id,omitempty"`
	Media           []Media             `json:"media,omitempty"`
	ButtonPayload   string              `json:"button_payload,omitempty"`
	ButtonText      string              `json:"button_text,omitempty"`
	Command         string              `json:"command,omitempty"` // STOP, START, SUBSCRIBE, UNSUBSCRIBE, HELP; empty for conversation
	Keyword         string              `json:"keyword,omitempty"` // the keyword as written, normalized (e.g. "STOPALL")
	Topic           string              `json:"topic,omitempty"`
	OptOutType      string              `json:"opt_out_type,omitempty"` // set when Twilio's Advanced Opt-Out already answered
	ReceivedAt      time.Time           `json:"received_at"`
	TimestampSource string              `json:"timestamp_source"`
	Raw             map[string][]string `json:"raw"`
}

func (UserMessageReceived) EventType() string  { return TypeUserMessageReceived }
func (UserMessageReceived) SchemaVersion() int { return 1 }
