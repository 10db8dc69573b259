package projections

import (
	"context"
	"encoding/json"
	"fmt"

	"herald/events"
)

// InboundMessages is the inbox: every inbound message, raw form and normalized record.
type InboundMessages struct{}

func (InboundMessages) Name() string      { return "inbound_messages" }
func (InboundMessages) Tables() []string  { return []string{"events_inbound"} }
func (InboundMessages) Handles() []string { return []string{events.TypeUserMessageReceived} }

const sqlInbound = `INSERT INTO events_inbound (event_id, message_sid, phone, body, command, topic, profile_name, raw, normalized, received_at)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) ON CONFLICT (event_id) DO NOTHING`

func (InboundMessages) Apply(_ context.Context, tx Tx, env events.Envelope, e events.Event) error {
	m, ok := e.(*events.UserMessageReceived)
	if !ok {
		return Poison(fmt.Errorf("inbound_messages: unexpected %T", e))
	}
	raw, err := json.Marshal(m.Raw)
	if err != nil {
		return Poison(err)
	}
	normalized := *m
	normalized.Raw = nil
	norm, err := json.Marshal(normalized)
	if err != nil {
		return Poison(err)
	}
	tx.Queue(sqlInbound, env.EventID, m.MessageSID, m.Phone, m.Body, m.Command, m.Topic, m.ProfileName,
		string(raw), string(norm), m.ReceivedAt)
	return nil
}

// DeliveryReceipts keeps every status callback (raw and normalized) and the derived,
// order-independent status of each provider message.
type DeliveryReceipts struct{}

func (DeliveryReceipts) Name() string { return "delivery_receipts" }
func (DeliveryReceipts) Tables() []string {
	return []string{"delivery_receipts", "message_provider_status"}
}
func (DeliveryReceipts) Handles() []string { return []string{events.TypeMessageStatusReceived} }

const (
	sqlReceipt = `INSERT INTO delivery_receipts (event_id, message_sid, status, error_code, error_message, raw, normalized, received_at)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8) ON CONFLICT (event_id) DO NOTHING`

	// The row keeps the maximum callback under (rank, status, error code): order-independent.
	sqlProviderStatus = `INSERT INTO message_provider_status AS s
    (message_sid, status, status_rank, error_code, error_message, phone, message_id, callbacks, first_at, updated_at)
VALUES ($1, $2, $3, $4, $5, $6, $7, 1, $8, $8)
ON CONFLICT (message_sid) DO UPDATE SET
    callbacks  = s.callbacks + 1,
    first_at   = least(s.first_at, excluded.first_at),
    phone      = CASE WHEN s.phone = '' THEN excluded.phone ELSE s.phone END,
    message_id = CASE WHEN s.message_id = '' THEN excluded.message_id ELSE s.message_id END,
    status        = CASE WHEN ` + newWins + ` THEN excluded.status ELSE s.status END,
    status_rank   = CASE WHEN ` + newWins + ` THEN excluded.status_rank ELSE s.status_rank END,
    error_code    = CASE WHEN ` + newWins + ` THEN excluded.error_code ELSE s.error_code END,
    error_message = CASE WHEN ` + newWins + ` THEN excluded.error_message ELSE s.error_message END,
    updated_at    = CASE WHEN ` + newWins + ` THEN excluded.updated_at ELSE s.updated_at END`

	// newWins is events.StatusWins in SQL.
	newWins = `((excluded.status_rank, excluded.status, coalesce(excluded.error_code, -1)) > (s.status_rank, s.status, coalesce(s.error_code, -1)))`
)

func (DeliveryReceipts) Apply(_ context.Context, tx Tx, env events.Envelope, e events.Event) error {
	st, ok := e.(*events.MessageStatusReceived)
	if !ok {
		return Poison(fmt.Errorf("delivery_receipts: unexpected %T", e))
	}
	raw, err := json.Marshal(st.Raw)
	if err != nil {
		return Poison(err)
	}
	normalized := *st
	normalized.Raw = nil
	norm, err := json.Marshal(normalized)
	if err != nil {
		return Poison(err)
	}
	tx.Queue(sqlReceipt, env.EventID, st.MessageSID, st.Status, st.ErrorCode, st.ErrorMessage, string(raw), string(norm), st.ReceivedAt)
	tx.Queue(sqlProviderStatus, st.MessageSID, st.Status, events.StatusRank(st.Status), st.ErrorCode, st.ErrorMessage,
		st.Phone, st.MessageID, st.ReceivedAt)
	return nil
}
