package projections

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/google/uuid"

	"herald/events"
)

// InboundMessages is the inbox: every inbound message, raw form and normalized record.
type InboundMessages struct{}

func (InboundMessages) Name() string     { return "inbound_messages" }
func (InboundMessages) Tables() []string { return []string{"events_inbound"} }
func (InboundMessages) Handles() []string {
	return []string{events.TypeUserMessageReceived, events.TypeUserDeleted}
}

// sqlInboundErase drops what erased users wrote.
const sqlInboundErase = `DELETE FROM events_inbound WHERE phone = ANY($1)`

const (
	sqlInbound = `INSERT INTO events_inbound (event_id, message_sid, phone, body, command, topic, profile_name, raw, normalized, received_at)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) ON CONFLICT (event_id) DO NOTHING`

	sqlInboundBatch = `INSERT INTO events_inbound (event_id, message_sid, phone, body, command, topic, profile_name, raw, normalized, received_at)
SELECT event_id, message_sid, phone, body, command, topic, profile_name, raw::jsonb, normalized::jsonb, received_at
FROM unnest($1::uuid[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[], $7::text[], $8::text[], $9::text[], $10::timestamptz[])
    AS r(event_id, message_sid, phone, body, command, topic, profile_name, raw, normalized, received_at)
ON CONFLICT (event_id) DO NOTHING`
)

// inboundRow is one events_inbound row, as both Apply and ApplyBatch write it.
func inboundRow(e events.Event) (m *events.UserMessageReceived, raw, norm string, err error) {
	m, ok := e.(*events.UserMessageReceived)
	if !ok {
		return nil, "", "", Poison(fmt.Errorf("inbound_messages: unexpected %T", e))
	}
	r, err := json.Marshal(m.Raw)
	if err != nil {
		return nil, "", "", Poison(err)
	}
	normalized := *m
	normalized.Raw = nil
	n, err := json.Marshal(normalized)
	if err != nil {
		return nil, "", "", Poison(err)
	}
	return m, string(r), string(n), nil
}

func (InboundMessages) Apply(_ context.Context, tx Tx, env events.Envelope, e events.Event) error {
	if d, ok := e.(*events.UserDeleted); ok {
		tx.Queue(sqlInboundErase, []string{d.Phone})
		return nil
	}
	m, raw, norm, err := inboundRow(e)
	if err != nil {
		return err
	}
	tx.Queue(sqlInbound, env.EventID, m.MessageSID, m.Phone, m.Body, m.Command, m.Topic, m.ProfileName, raw, norm, m.ReceivedAt)
	return nil
}

// ApplyBatch inserts a page with one statement per run without a repeated event id.
func (InboundMessages) ApplyBatch(_ context.Context, tx Tx, envs []events.Envelope, evs []events.Event) error {
	n := len(evs)
	var (
		ids                                                 = make([]uuid.UUID, n)
		sids, phones, bodies, commands, topics, names, raws = make([]string, n), make([]string, n), make([]string, n),
			make([]string, n), make([]string, n), make([]string, n), make([]string, n)
		norms    = make([]string, n)
		received = make([]time.Time, n)
		erase    = make([]bool, n)
	)
	for i, e := range evs {
		if d, ok := e.(*events.UserDeleted); ok {
			phones[i], erase[i] = d.Phone, true
			continue
		}
		m, raw, norm, err := inboundRow(e)
		if err != nil {
			return err
		}
		ids[i], sids[i], phones[i], bodies[i], commands[i], topics[i], names[i] =
			envs[i].EventID, m.MessageSID, m.Phone, m.Body, m.Command, m.Topic, m.ProfileName
		raws[i], norms[i], received[i] = raw, norm, m.ReceivedAt
	}
	kind := func(i int) int {
		if erase[i] {
			return 1
		}
		return 0
	}
	key := func(i int) string {
		if erase[i] {
			return phones[i]
		}
		return ids[i].String()
	}
	return eachRun(n, kind, key, func(from, to int) error {
		if erase[from] {
			tx.Queue(sqlInboundErase, phones[from:to])
			return nil
		}
		tx.Queue(sqlInboundBatch, ids[from:to], sids[from:to], phones[from:to], bodies[from:to], commands[from:to],
			topics[from:to], names[from:to], raws[from:to], norms[from:to], received[from:to])
		return nil
	})
}

// DeliveryReceipts keeps every status callback (raw and normalized) and the derived,
// order-independent status of each provider message.
type DeliveryReceipts struct{}

func (DeliveryReceipts) Name() string { return "delivery_receipts" }
func (DeliveryReceipts) Tables() []string {
	return []string{"delivery_receipts", "message_provider_status"}
}
func (DeliveryReceipts) Handles() []string {
	return []string{events.TypeMessageStatusReceived, events.TypeUserDeleted}
}

// An erased user's phone leaves the receipts; the Eraser strips it from the stored callbacks
// the same way, so a rebuild gives the same rows.
const (
	sqlReceiptsErase       = `UPDATE delivery_receipts SET raw = raw - 'To', normalized = normalized - 'phone' WHERE normalized->>'phone' = ANY($1)`
	sqlProviderStatusErase = `UPDATE message_provider_status SET phone = '' WHERE phone = ANY($1)`
)

const (
	sqlReceipt = `INSERT INTO delivery_receipts (event_id, message_sid, status, error_code, error_message, raw, normalized, received_at)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8) ON CONFLICT (event_id) DO NOTHING`

	// The row keeps the maximum callback under (rank, status, error code): order-independent.
	sqlProviderStatus = `INSERT INTO message_provider_status AS s
    (message_sid, status, status_rank, error_code, error_message, phone, message_id, callbacks, first_at, updated_at)
VALUES ($1, $2, $3, $4, $5, $6, $7, 1, $8, $8)
ON CONFLICT (message_sid) DO UPDATE SET` + providerStatusUpdate

	providerStatusUpdate = `
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

	sqlReceiptBatch = `INSERT INTO delivery_receipts (event_id, message_sid, status, error_code, error_message, raw, normalized, received_at)
SELECT event_id, message_sid, status, error_code, error_message, raw::jsonb, normalized::jsonb, received_at
FROM unnest($1::uuid[], $2::text[], $3::text[], $4::int[], $5::text[], $6::text[], $7::text[], $8::timestamptz[])
    AS r(event_id, message_sid, status, error_code, error_message, raw, normalized, received_at)
ON CONFLICT (event_id) DO NOTHING`

	sqlProviderStatusBatch = `INSERT INTO message_provider_status AS s
    (message_sid, status, status_rank, error_code, error_message, phone, message_id, callbacks, first_at, updated_at)
SELECT message_sid, status, status_rank, error_code, error_message, phone, message_id, 1, received_at, received_at
FROM unnest($1::text[], $2::text[], $3::int[], $4::int[], $5::text[], $6::text[], $7::text[], $8::timestamptz[])
    AS r(message_sid, status, status_rank, error_code, error_message, phone, message_id, received_at)
ON CONFLICT (message_sid) DO UPDATE SET` + providerStatusUpdate
)

// receiptRow is one delivery_receipts row, as both Apply and ApplyBatch write it.
func receiptRow(e events.Event) (st *events.MessageStatusReceived, raw, norm string, err error) {
	st, ok := e.(*events.MessageStatusReceived)
	if !ok {
		return nil, "", "", Poison(fmt.Errorf("delivery_receipts: unexpected %T", e))
	}
	r, err := json.Marshal(st.Raw)
	if err != nil {
		return nil, "", "", Poison(err)
	}
	normalized := *st
	normalized.Raw = nil
	n, err := json.Marshal(normalized)
	if err != nil {
		return nil, "", "", Poison(err)
	}
	return st, string(r), string(n), nil
}

func (DeliveryReceipts) Apply(_ context.Context, tx Tx, env events.Envelope, e events.Event) error {
	if d, ok := e.(*events.UserDeleted); ok {
		tx.Queue(sqlReceiptsErase, []string{d.Phone})
		tx.Queue(sqlProviderStatusErase, []string{d.Phone})
		return nil
	}
	st, raw, norm, err := receiptRow(e)
	if err != nil {
		return err
	}
	tx.Queue(sqlReceipt, env.EventID, st.MessageSID, st.Status, st.ErrorCode, st.ErrorMessage, raw, norm, st.ReceivedAt)
	tx.Queue(sqlProviderStatus, st.MessageSID, st.Status, events.StatusRank(st.Status), st.ErrorCode, st.ErrorMessage,
		st.Phone, st.MessageID, st.ReceivedAt)
	return nil
}

// ApplyBatch writes a run of callbacks with two statements — the receipts, then the provider
// statuses — cutting the page where a MessageSid repeats (the status upsert is a fold over the
// callbacks of one message, and its phone and message id keep the first non-empty value).
func (DeliveryReceipts) ApplyBatch(_ context.Context, tx Tx, envs []events.Envelope, evs []events.Event) error {
	n := len(evs)
	var (
		ids                                   = make([]uuid.UUID, n)
		sids, statuses, messages, raws, norms = make([]string, n), make([]string, n), make([]string, n), make([]string, n), make([]string, n)
		phones, messageIDs                    = make([]string, n), make([]string, n)
		ranks                                 = make([]int, n)
		codes                                 = make([]*int, n)
		received                              = make([]time.Time, n)
		erase                                 = make([]bool, n)
	)
	for i, e := range evs {
		if d, ok := e.(*events.UserDeleted); ok {
			phones[i], erase[i] = d.Phone, true
			continue
		}
		st, raw, norm, err := receiptRow(e)
		if err != nil {
			return err
		}
		ids[i], sids[i], statuses[i], codes[i], messages[i], raws[i], norms[i], received[i] =
			envs[i].EventID, st.MessageSID, st.Status, st.ErrorCode, st.ErrorMessage, raw, norm, st.ReceivedAt
		ranks[i], phones[i], messageIDs[i] = events.StatusRank(st.Status), st.Phone, st.MessageID
	}
	kind := func(i int) int {
		if erase[i] {
			return 1
		}
		return 0
	}
	key := func(i int) string {
		if erase[i] {
			return phones[i]
		}
		return sids[i]
	}
	return eachRun(n, kind, key, func(from, to int) error {
		if erase[from] {
			tx.Queue(sqlReceiptsErase, phones[from:to])
			tx.Queue(sqlProviderStatusErase, phones[from:to])
			return nil
		}
		tx.Queue(sqlReceiptBatch, ids[from:to], sids[from:to], statuses[from:to], codes[from:to], messages[from:to],
			raws[from:to], norms[from:to], received[from:to])
		tx.Queue(sqlProviderStatusBatch, sids[from:to], statuses[from:to], ranks[from:to], codes[from:to], messages[from:to],
			phones[from:to], messageIDs[from:to], received[from:to])
		return nil
	})
}
