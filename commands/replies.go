package commands

import (
	"fmt"

	"herald/events"
)

// Replies are the confirmations sent back to a keyword. Empty fields take the defaults.
type Replies struct {
	Stop        string
	Start       string
	Subscribe   string // %s is the topic
	Unsubscribe string // %s is the topic
	Help        string
}

func (r Replies) withDefaults() Replies {
	def := func(s *string, v string) {
		if *s == "" {
			*s = v
		}
	}
	def(&r.Stop, "You have opted out and will receive no more messages from us. Reply START to opt back in.")
	def(&r.Start, "You have opted in to messages from us. Reply STOP at any time to opt out.")
	def(&r.Subscribe, "You are subscribed to %s. Reply UNSUBSCRIBE %s to stop these messages.")
	def(&r.Unsubscribe, "You are unsubscribed from %s. Reply SUBSCRIBE %s to get them again.")
	def(&r.Help, "Reply STOP to opt out, START to opt in, SUBSCRIBE <topic> or UNSUBSCRIBE <topic> to choose topics.")
	return r
}

// For returns the reply to a keyword; none for a conversation message, nor when Twilio's
// Advanced Opt-Out has already answered (optOutType set).
func (r Replies) For(kw Keyword, optOutType string) string {
	if optOutType != "" {
		return ""
	}
	r = r.withDefaults()
	switch kw.Command {
	case events.CommandStop:
		return r.Stop
	case events.CommandStart:
		return r.Start
	case events.CommandSubscribe:
		return fmt.Sprintf(r.Subscribe, kw.Topic, kw.Topic)
	case events.CommandUnsubscribe:
		return fmt.Sprintf(r.Unsubscribe, kw.Topic, kw.Topic)
	case events.CommandHelp:
		return r.Help
	}
	return ""
}
