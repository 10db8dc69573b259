package sender

import (
	"fmt"
	"sort"
)

// CodeInfo explains a Twilio error code for people (the UI and the audit trail show Meaning
// and Remedy) and for the send saga (Kind, OptOut, NeedsTemplate, SenderIssue).
//
// The same table serves both ways a code arrives: synchronously, as the error body of a
// failed create (Send classifies it into a SendError), and asynchronously, as ErrorCode on a
// failed/undelivered status callback or on the fetched Message. For an asynchronous code the
// message was created and then failed, so it is never ambiguous; Kind then says whether a
// new attempt makes sense.
//
// Sources: reference/twilio.md §4.4 and §6 (Twilio's error dictionary pages). Twilio warns
// that the causes behind a code change over time and that logic must not depend on the
// message text; it does not say that about the codes themselves.
type CodeInfo struct {
	Code int `json:"code"`
	// Known is false for codes missing from the table; LookupCode still answers for them.
	Known bool `json:"known"`
	// Meaning is a short statement of what happened.
	Meaning string `json:"meaning"`
	// Remedy says what to do about it.
	Remedy string `json:"remedy"`
	// Kind is how the saga treats a failure with this code (never KindAmbiguous).
	Kind Kind `json:"kind"`
	// Retryable: a new attempt may succeed (KindRetryable or KindRateLimited).
	Retryable bool `json:"retryable"`
	// RetryLimit, for retryable codes, caps how many new attempts are worth making for this
	// cause (0: no specific cap, use the saga's own).
	RetryLimit int `json:"retry_limit,omitempty"`
	// OptOut: the recipient has opted out; suppress them until they opt in again (21610).
	OptOut bool `json:"opt_out,omitempty"`
	// NeedsTemplate: free-form text was refused outside the 24-hour window; only an approved
	// template (ContentSid) can reach this recipient now (63016).
	NeedsTemplate bool `json:"needs_template,omitempty"`
	// SenderIssue: the cause is Herald's account, credentials or sender, not the recipient.
	// Every other message will fail the same way, so the saga should pause the campaign and
	// alert instead of failing recipients one by one.
	SenderIssue bool `json:"sender_issue,omitempty"`
	// MoreInfo is Twilio's page for the code.
	MoreInfo string `json:"more_info"`
}

// LookupCode explains code. An unknown code yields Known=false, a generic meaning, Kind
// KindPermanent (a request Twilio refused with an unexplained code would be refused again)
// and Twilio's page as the remedy.
func LookupCode(code int) CodeInfo {
	info, ok := codeTable[code]
	if !ok {
		info = CodeInfo{
			Meaning: "Twilio error not in Herald's table",
			Remedy:  fmt.Sprintf("Read Twilio's description at %s and add the code to handlers/twilio/sender/codes.go.", moreInfo(code)),
			Kind:    KindPermanent,
		}
	} else {
		info.Known = true
	}
	info.Code = code
	info.Retryable = info.Kind == KindRetryable || info.Kind == KindRateLimited
	info.MoreInfo = moreInfo(code)
	return info
}

// KnownCodes lists the codes in the table, ascending.
func KnownCodes() []int {
	codes := make([]int, 0, len(codeTable))
	for c := range codeTable {
		codes = append(codes, c)
	}
	sort.Ints(codes)
	return codes
}

func moreInfo(code int) string { return fmt.Sprintf("https://www.twilio.com/docs/errors/%d", code) }

// codeTable: Kind decides the saga's reaction; the flags add what the saga must do besides.
//
// Decisions worth stating:
//   - Rate limits (20429, 63017, 63018, 63038) are KindRateLimited: not sent; retry with
//     backoff and jitter, honouring Retry-After when Twilio gives one, and slow the campaign.
//   - KindRetryable holds the transient failures Twilio documents: its own queue overflowing
//     (21611 sync, 30001 async), a message expiring in that queue (30036), and — bounded to
//     one more attempt — an unreachable handset (30003) and "unknown error" (30008).
//   - Everything about the recipient or the content is KindPermanent: resending the same
//     request gets the same answer.
//   - Account and sender problems (20003, 21212, 21606, 63007, 63051) are KindPermanent for
//     the message as sent, flagged SenderIssue so the saga pauses instead.
var codeTable = map[int]CodeInfo{
	// Account, credentials, API.
	20003: {Meaning: "Twilio refused the credentials (authentication failed)",
		Remedy: "Check TWILIO_ACCOUNT_SID and TWILIO_AUTH_TOKEN (the primary token, or a promoted secondary one); resend once fixed.",
		Kind:   KindPermanent, SenderIssue: true},
	20404: {Meaning: "The requested resource does not exist",
		Remedy: "Check the SID and that it belongs to this account.",
		Kind:   KindPermanent},
	20429: {Meaning: "Too many concurrent requests to Twilio's API; the request was never processed",
		Remedy: "Not sent. Retry with exponential backoff and jitter, honour Retry-After, and lower the send concurrency.",
		Kind:   KindRateLimited},

	// Create-time validation.
	21211: {Meaning: "Invalid 'To' phone number",
		Remedy: "Fix the recipient's phone number; do not resend as is.",
		Kind:   KindPermanent},
	21212: {Meaning: "Invalid 'From' phone number",
		Remedy: "Fix TWILIO_FROM (whatsapp:+E164 of a sender on this account).",
		Kind:   KindPermanent, SenderIssue: true},
	21408: {Meaning: "Permission to send to this country or region is not enabled on the account",
		Remedy: "Enable the destination in Twilio's Messaging Geographic Permissions, then resend.",
		Kind:   KindPermanent},
	21602: {Meaning: "Message body is required",
		Remedy: "Send a Body or an approved ContentSid.",
		Kind:   KindPermanent},
	21606: {Meaning: "'From' is not a message-capable number of this account",
		Remedy: "Set TWILIO_FROM to a WhatsApp sender registered on this account.",
		Kind:   KindPermanent, SenderIssue: true},
	21610: {Meaning: "The recipient has opted out (STOP / unsubscribed recipient)",
		Remedy: "Never retry. Suppress the recipient until they opt in again (START).",
		Kind:   KindPermanent, OptOut: true},
	21611: {Meaning: "The sender exceeded Twilio's maximum of queued messages",
		Remedy: "Not sent. Retry later at a lower send rate.",
		Kind:   KindRetryable},
	21612: {Meaning: "Twilio cannot route a message to this number from this sender",
		Remedy: "Do not resend as is; check the destination and the sender's capabilities.",
		Kind:   KindPermanent},
	21614: {Meaning: "'To' is not a valid mobile number",
		Remedy: "Fix the recipient's number; do not resend as is.",
		Kind:   KindPermanent},
	21617: {Meaning: "The message body exceeds the 1600-character limit",
		Remedy: "Shorten the text.",
		Kind:   KindPermanent},
	21656: {Meaning: "ContentVariables is invalid",
		Remedy: "Send a JSON object of string values whose keys match the template's variables.",
		Kind:   KindPermanent},

	// Delivery (mostly asynchronous).
	30001: {Meaning: "Queue overflow: Twilio's queue for the sender was full and the message was not sent",
		Remedy: "Retry later at a lower send rate.",
		Kind:   KindRetryable},
	30003: {Meaning: "Unreachable destination handset (switched off, no signal, …)",
		Remedy: "Retry once later; then give up.",
		Kind:   KindRetryable, RetryLimit: 1},
	30004: {Meaning: "Message blocked (for example the recipient blocked the sender)",
		Remedy: "Do not retry.",
		Kind:   KindPermanent},
	30005: {Meaning: "Unknown destination handset",
		Remedy: "Do not retry; check the number.",
		Kind:   KindPermanent},
	30006: {Meaning: "Landline or unreachable carrier",
		Remedy: "Do not retry to this destination.",
		Kind:   KindPermanent},
	30007: {Meaning: "Message filtered by the carrier or channel (content filtering)",
		Remedy: "Do not retry blindly; review the content.",
		Kind:   KindPermanent},
	30008: {Meaning: "Unknown error from the carrier or channel",
		Remedy: "Retry once at most; then give up.",
		Kind:   KindRetryable, RetryLimit: 1},
	30036: {Meaning: "The message expired in Twilio's queue (validity period) before it was sent",
		Remedy: "Not sent. Retry at a lower rate; Herald should pace sends instead of relying on Twilio's queue.",
		Kind:   KindRetryable, RetryLimit: 1},

	// WhatsApp channel.
	63003: {Meaning: "WhatsApp could not find the 'To' address (not a WhatsApp user, or invalid)",
		Remedy: "Mark the recipient as not on WhatsApp; do not retry.",
		Kind:   KindPermanent},
	63007: {Meaning: "Twilio has no WhatsApp channel for the 'From' address",
		Remedy: "Set TWILIO_FROM to a registered WhatsApp sender.",
		Kind:   KindPermanent, SenderIssue: true},
	63013: {Meaning: "WhatsApp policy violation",
		Remedy: "Do not retry; review the content and Meta's commerce and business policies.",
		Kind:   KindPermanent},
	63015: {Meaning: "The WhatsApp Sandbox only sends to numbers that joined it",
		Remedy: "The recipient must first send the sandbox's join keyword.",
		Kind:   KindPermanent},
	63016: {Meaning: "Free-form message outside the 24-hour customer service window",
		Remedy: "Send an approved template (ContentSid + ContentVariables) instead; free-form text only works within 24 h of the user's last message.",
		Kind:   KindPermanent, NeedsTemplate: true},
	63017: {Meaning: "The account exceeded Twilio's account-wide rate limit",
		Remedy: "Not sent. Retry with backoff and lower the overall send rate.",
		Kind:   KindRateLimited},
	63018: {Meaning: "WhatsApp rate limit: the account's messages per second, or the sender's Meta messaging limit, was exceeded",
		Remedy: "Retry with backoff and throttle the campaign; if Meta's business-initiated limit was hit, wait until 24 h after those conversations started.",
		Kind:   KindRateLimited},
	63024: {Meaning: "Invalid WhatsApp recipient (not enabled for WhatsApp, terms not accepted, or an outdated client)",
		Remedy: "Do not retry unless the user updates or enables WhatsApp.",
		Kind:   KindPermanent},
	63032: {Meaning: "WhatsApp declined to deliver to this user (Meta limitation, WhatsApp error 472)",
		Remedy: "Do not retry immediately.",
		Kind:   KindPermanent},
	63038: {Meaning: "The account exceeded its daily message limit",
		Remedy: "Retry after the daily limit resets, or ask Twilio to raise it.",
		Kind:   KindRateLimited},
	63049: {Meaning: "Meta chose not to deliver this marketing template (per-user marketing limits; no marketing templates to US numbers)",
		Remedy: "Do not retry soon; send marketing content less often, or use a utility template where appropriate.",
		Kind:   KindPermanent},
	63051: {Meaning: "The WhatsApp Business Account or sender is locked (for example after about 30 days without traffic)",
		Remedy: "Re-register or unlock the sender in Twilio, then resend.",
		Kind:   KindPermanent, SenderIssue: true},
}
