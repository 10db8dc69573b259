package projections

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"herald/events"
	"herald/schema/schematest"
)

// providerStatus is one message_provider_status row.
type providerStatus struct {
	Status       string
	Rank         int
	ErrorCode    *int
	ErrorMessage string
	Phone        string
	MessageID    string
	Callbacks    int
	FirstAt      time.Time
	UpdatedAt    time.Time
}

var fuzzStatuses = []string{
	events.StatusAccepted, events.StatusScheduled, events.StatusQueued, events.StatusSending, events.StatusSent,
	events.StatusFailed, events.StatusUndelivered, events.StatusCanceled, events.StatusDelivered, events.StatusRead,
}

// FuzzStatusFold checks the order-independent status of a provider message (the
// delivery_receipts projection's message_provider_status) on the real database: a set of
// distinct callbacks for two messages, delivered in any order, with any repeats, one at a
// time (Apply) or in pages of any size (ApplyBatch), folds to the same row: the maximum
// callback under events.StatusWins with its error and time, the earliest time, the phone and
// message id of whichever callback carried them, and one count per callback applied.
//
// The input bytes describe the callbacks (status, error code, time, whether phone and message
// id are given), then the order of delivery, then the page sizes.
func FuzzStatusFold(f *testing.F) {
	f.Add([]byte{3, 4, 0, 10, 3, 8, 7, 20, 3, 2, 0, 30, 1}, []byte{2, 1, 0, 0}, []byte{0})
	f.Add([]byte{5, 5, 1, 5, 0, 6, 2, 5, 3, 7, 3, 5, 1, 9, 0, 1, 3, 8, 5, 1, 3}, []byte{4, 4, 4, 3, 2, 1, 0, 0}, []byte{2, 3})
	f.Add([]byte{2, 9, 0, 0, 3, 9, 1, 0, 3}, []byte{1, 0, 1, 0}, []byte{1, 1, 1})
	f.Add([]byte{1}, []byte{}, []byte{})
	db := schematest.NewWithOptions(f, schematest.Options{MaxConns: 2})
	ctx := context.Background()
	base := time.Date(2026, 11, 27, 12, 0, 0, 0, time.UTC)
	sids := []string{"SM" + fmt.Sprintf("%032d", 1), "SM" + fmt.Sprintf("%032d", 2)}

	f.Fuzz(func(t *testing.T, spec, order, pages []byte) {
		// The distinct callbacks: one per (sid, status, error code), as the store keeps them.
		var cbs []*events.MessageStatusReceived
		seen := map[string]bool{}
		for i := 0; i+4 <= len(spec) && len(cbs) < 12; i += 4 {
			b := spec[i : i+4]
			st := &events.MessageStatusReceived{
				MessageSID: sids[b[0]%2], Status: fuzzStatuses[int(b[1])%len(fuzzStatuses)],
				ReceivedAt: base.Add(time.Duration(b[2]) * time.Second), TimestampSource: events.TimestampFromTwilio,
				Raw: map[string][]string{},
			}
			if c := b[3] % 5; c > 0 {
				code := []int{0, 30003, 30008, 63016}[c-1]
				st.ErrorCode, st.ErrorMessage = &code, fmt.Sprintf("error %d", code)
			}
			if b[3]&0x10 == 0 {
				st.Phone = "+5198765432" + st.MessageSID[len(st.MessageSID)-1:]
			}
			if b[3]&0x20 == 0 {
				st.MessageID = "message-" + st.MessageSID
			}
			key := fmt.Sprint(st.MessageSID, st.Status, codeOf(st))
			if seen[key] {
				continue
			}
			seen[key] = true
			cbs = append(cbs, st)
		}
		if len(cbs) == 0 {
			return
		}
		// The delivery: the order given, repeats allowed, then any callback not yet delivered.
		var seq []int
		delivered := make([]bool, len(cbs))
		for _, b := range order {
			i := int(b) % len(cbs)
			seq, delivered[i] = append(seq, i), true
		}
		for i, d := range delivered {
			if !d {
				seq = append(seq, i)
			}
		}
		envs, evs := make([]events.Envelope, len(seq)), make([]events.Event, len(seq))
		for k, i := range seq {
			cb := cbs[i]
			envs[k] = events.Envelope{EventID: events.DeterministicID("twilio-status", cb.MessageSID, cb.Status, fmt.Sprint(codeOf(cb))),
				StreamID: events.ReceiptStream(cb.MessageSID), Type: events.TypeMessageStatusReceived, GlobalPosition: int64(k + 1)}
			evs[k] = cb
		}

		// The expected rows, folded in Go.
		want := map[string]*providerStatus{}
		wantCB := map[string]*events.MessageStatusReceived{}
		for _, i := range seq {
			cb := cbs[i]
			w := want[cb.MessageSID]
			if w == nil {
				w = &providerStatus{FirstAt: cb.ReceivedAt}
				want[cb.MessageSID] = w
			}
			w.Callbacks++
			if cb.ReceivedAt.Before(w.FirstAt) {
				w.FirstAt = cb.ReceivedAt
			}
			if cb.Phone != "" {
				w.Phone = cb.Phone
			}
			if cb.MessageID != "" {
				w.MessageID = cb.MessageID
			}
			if m := wantCB[cb.MessageSID]; m == nil || events.StatusWins(cb.Status, codeOf(cb), m.Status, codeOf(m)) {
				wantCB[cb.MessageSID] = cb
			}
		}
		for sid, cb := range wantCB {
			w := want[sid]
			w.Status, w.Rank, w.ErrorCode, w.ErrorMessage, w.UpdatedAt = cb.Status, events.StatusRank(cb.Status), cb.ErrorCode, cb.ErrorMessage, cb.ReceivedAt
		}

		// Apply, in a transaction that is rolled back.
		tx, err := db.Pool.Begin(ctx)
		require.NoError(t, err)
		defer func() { _ = tx.Rollback(ctx) }()
		ptx := newPipelineTx(tx, envs)
		var p DeliveryReceipts
		if len(pages) == 0 {
			for k := range envs {
				ptx.current = k
				require.NoError(t, p.Apply(ctx, ptx, envs[k], evs[k]))
			}
		} else {
			for from, n := 0, 0; from < len(envs); n++ {
				to := min(len(envs), from+1+int(pages[n%len(pages)])%8)
				require.NoError(t, p.ApplyBatch(ctx, ptx, envs[from:to], evs[from:to]))
				require.NoError(t, ptx.flush(ctx), "page [%d, %d)", from, to)
				from = to
			}
		}
		require.NoError(t, ptx.flush(ctx))

		rows, err := tx.Query(ctx, `SELECT message_sid, status, status_rank, error_code, error_message, phone, message_id,
       callbacks, first_at, updated_at FROM message_provider_status`)
		require.NoError(t, err)
		got := map[string]*providerStatus{}
		for rows.Next() {
			var sid string
			var r providerStatus
			require.NoError(t, rows.Scan(&sid, &r.Status, &r.Rank, &r.ErrorCode, &r.ErrorMessage, &r.Phone, &r.MessageID,
				&r.Callbacks, &r.FirstAt, &r.UpdatedAt))
			r.FirstAt, r.UpdatedAt = r.FirstAt.UTC(), r.UpdatedAt.UTC()
			got[sid] = &r
		}
		require.NoError(t, rows.Err())
		require.Equal(t, want, got, "delivery order %v of %d callbacks, pages %v", seq, len(cbs), pages)

		var receipts int
		require.NoError(t, tx.QueryRow(ctx, `SELECT count(*) FROM delivery_receipts`).Scan(&receipts))
		require.Equal(t, len(cbs), receipts, "one receipt per distinct callback, repeats stored once")
	})
}

// codeOf is a callback's error code for events.StatusWins: -1 when there is none.
func codeOf(st *events.MessageStatusReceived) int {
	if st.ErrorCode == nil {
		return -1
	}
	return *st.ErrorCode
}
