package events

import "time"

// CategoryMessage is the category of outbound message streams: one stream per message, its
// events the message's state machine and its audit trail.
const CategoryMessage = "message"

// MessageStream is the stream of one outbound message.
func MessageStream(id string) string { return CategoryMessage + "-" + id }

// Event types of a message stream. Every decision carries its inputs, so the stream answers
// "why did (or didn't) this person get this message".
const (
	TypeMessageQueued         = "message.queued"
	TypeMessageDeferred       = "message.deferred"
	TypeMessageSkipped        = "message.skipped"
	TypeMessageSendAttempted  = "message.send_attempted"
	TypeMessageAccepted       = "message.accepted"
	TypeMessageRetryScheduled = "message.retry_scheduled"
	TypeMessageOutcomeUnknown = "message.outcome_unknown"
	TypeMessageFailed         = "message.failed"
	TypeMessageCancelled      = "message.cancelled"
)

// Where a message comes from.
const (
	MessageKindCampaign = "campaign"
	MessageKindTrigger  = "trigger"
	MessageKindReply    = "reply"
)

// MessageQueued creates a message: who gets it, from what, with which template. For a reply,
// Body is the text the operator wrote (and TemplateID may name the approved template used
// outside the 24-hour window).
type MessageQueued struct {
	MessageID  string         `json:"message_id"`
	Kind       string         `json:"kind"`
	CampaignID string         `json:"campaign_id,omitempty"`
	RunID      string         `json:"run_id,omitempty"`
	TriggerID  string         `json:"trigger_id,omitempty"`
	Phone      string         `json:"phone"`
	Topic      string         `json:"topic,omitempty"`
	TemplateID string         `json:"template_id,omitempty"`
	Body       string         `json:"body,omitempty"`
	Payload    map[string]any `json:"payload,omitempty"`
	DueAt      time.Time      `json:"due_at"`
}

func (MessageQueued) EventType() string  { return TypeMessageQueued }
func (MessageQueued) SchemaVersion() int { return 1 }

// Reasons a message waits or is not sent.
const (
	ReasonQuietHours        = "quiet_hours"
	ReasonFrequencyCap      = "frequency_cap"
	ReasonRateLimit         = "rate_limit"
	ReasonConsent           = "consent_opt_out"
	ReasonNotSubscribed     = "not_subscribed"
	ReasonUserDeleted       = "user_deleted"
	ReasonMissingVariable   = "missing_template_variable"
	ReasonTooLong           = "too_long"
	ReasonOutsideWindow     = "outside_session_window"
	ReasonTemplateMissing   = "template_missing"
	ReasonCampaignCancelled = "campaign_cancelled"
	ReasonAttemptsExhausted = "attempts_exhausted"
)

// MessageDeferred holds a message until Until; Detail has the inputs ("local 22:14
// America/Lima (user timezone), window 21:00–08:00").
type MessageDeferred struct {
	Reason string    `json:"reason"`
	Detail string    `json:"detail"`
	Until  time.Time `json:"until"`
}

func (MessageDeferred) EventType() string  { return TypeMessageDeferred }
func (MessageDeferred) SchemaVersion() int { return 1 }

// MessageSkipped ends a message without sending it.
type MessageSkipped struct {
	Reason string `json:"reason"`
	Detail string `json:"detail"`
}

func (MessageSkipped) EventType() string  { return TypeMessageSkipped }
func (MessageSkipped) SchemaVersion() int { return 1 }

// MessageSendAttempted is written, with the expected stream version, before Twilio is called:
// what is about to be sent, and as which attempt. A crash after it leaves the outcome to be
// found by reconciliation, never by sending again blindly.
type MessageSendAttempted struct {
	Attempt          int               `json:"attempt"`
	To               string            `json:"to"`
	From             string            `json:"from"`
	Locale           string            `json:"locale,omitempty"`
	Body             string            `json:"body,omitempty"`
	ContentSID       string            `json:"content_sid,omitempty"`
	ContentVariables map[string]string `json:"content_variables,omitempty"`
	At               time.Time         `json:"at"`
}

func (MessageSendAttempted) EventType() string  { return TypeMessageSendAttempted }
func (MessageSendAttempted) SchemaVersion() int { return 1 }

// How an attempt's acceptance was learnt.
const (
	AcceptedByResponse       = "response"       // Twilio's answer to the create
	AcceptedByCallback       = "callback"       // a status callback for the attempt arrived first
	AcceptedByReconciliation = "reconciliation" // found by listing Twilio's messages
)

// MessageAccepted: Twilio took the attempt and named it SID.
type MessageAccepted struct {
	Attempt int    `json:"attempt"`
	SID     string `json:"sid"`
	Status  string `json:"status,omitempty"`
	Via     string `json:"via"`
}

func (MessageAccepted) EventType() string  { return TypeMessageAccepted }
func (MessageAccepted) SchemaVersion() int { return 1 }

// MessageRetryScheduled: the attempt was definitely not sent (429, a refusal before
// acceptance, or reconciliation found nothing); the next one is due At.
type MessageRetryScheduled struct {
	Attempt int       `json:"attempt"`
	Code    int       `json:"code,omitempty"`
	Reason  string    `json:"reason"`
	At      time.Time `json:"at"`
}

func (MessageRetryScheduled) EventType() string  { return TypeMessageRetryScheduled }
func (MessageRetryScheduled) SchemaVersion() int { return 1 }

// MessageOutcomeUnknown: the attempt may or may not have reached Twilio (timeout, reset, 5xx, or
// a worker that died after recording the attempt). Nothing is resent before CheckAt, when a
// status callback for the attempt or Twilio's message list decides.
type MessageOutcomeUnknown struct {
	Attempt int       `json:"attempt"`
	Reason  string    `json:"reason"`
	CheckAt time.Time `json:"check_at"`
}

func (MessageOutcomeUnknown) EventType() string  { return TypeMessageOutcomeUnknown }
func (MessageOutcomeUnknown) SchemaVersion() int { return 1 }

// MessageFailed ends a message that cannot be sent (a permanent error code, or no attempts left).
type MessageFailed struct {
	Attempt int    `json:"attempt"`
	Code    int    `json:"code,omitempty"`
	Reason  string `json:"reason"`
}

func (MessageFailed) EventType() string  { return TypeMessageFailed }
func (MessageFailed) SchemaVersion() int { return 1 }

// MessageCancelled ends a message whose campaign was cancelled before it was sent.
type MessageCancelled struct {
	Reason string `json:"reason"`
}

func (MessageCancelled) EventType() string  { return TypeMessageCancelled }
func (MessageCancelled) SchemaVersion() int { return 1 }

// Campaign runs: each launch (or each occurrence of a recurring campaign) is a run with its own
// messages.
const (
	TypeCampaignRunStarted      = "campaign.run_started"
	TypeCampaignRunMaterialized = "campaign.run_materialized"
)

// CampaignRunStarted records a run: the campaign's definition version it runs, and when.
type CampaignRunStarted struct {
	ID         string    `json:"id"`
	RunID      string    `json:"run_id"`
	Occurrence time.Time `json:"occurrence"`
}

func (CampaignRunStarted) EventType() string  { return TypeCampaignRunStarted }
func (CampaignRunStarted) SchemaVersion() int { return 1 }

// CampaignRunMaterialized records how many messages a run queued.
type CampaignRunMaterialized struct {
	ID         string `json:"id"`
	RunID      string `json:"run_id"`
	Recipients int    `json:"recipients"`
}

func (CampaignRunMaterialized) EventType() string  { return TypeCampaignRunMaterialized }
func (CampaignRunMaterialized) SchemaVersion() int { return 1 }
