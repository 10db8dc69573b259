package projections

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/rs/zerolog"
	"github.com/stretchr/testify/require"

	"herald/events"
	"herald/events/store"
	"herald/schema/schematest"
)

// counter is a test projection that records how often each event was applied, so a test can
// check "every event exactly once".
type counter struct {
	name    string
	handles []string
	// failOn makes Apply fail for these event ids (poison or transient, per poison).
	failOn map[uuid.UUID]bool
	poison bool
	// onApply, if set, runs before each apply (failpoints).
	onApply func(env events.Envelope)
}

func (c *counter) Name() string      { return c.name }
func (c *counter) Handles() []string { return c.handles }
func (c *counter) Tables() []string  { return []string{c.name + "_applied"} }

func (c *counter) Apply(_ context.Context, tx Tx, env events.Envelope, _ events.Event) error {
	if c.onApply != nil {
		c.onApply(env)
	}
	if c.failOn[env.EventID] {
		if c.poison {
			return Poison(fmt.Errorf("refusing %s", env.EventID))
		}
		return fmt.Errorf("transient trouble with %s", env.EventID)
	}
	tx.Queue(`INSERT INTO `+c.name+`_applied (event_id, n) VALUES ($1, 1)
ON CONFLICT (event_id) DO UPDATE SET n = `+c.name+`_applied.n + 1`, env.EventID)
	return nil
}

func newCounter(t testing.TB, pool *pgxpool.Pool, name string) *counter {
	_, err := pool.Exec(context.Background(), `CREATE TABLE `+name+`_applied (event_id uuid PRIMARY KEY, n int NOT NULL)`)
	require.NoError(t, err)
	return &counter{name: name, handles: events.DefaultRegistry().Types()}
}

// counts returns how many distinct events were applied and whether any was applied twice.
func counts(t testing.TB, pool *pgxpool.Pool, c *counter) (distinct, doubled int) {
	require.NoError(t, pool.QueryRow(context.Background(),
		`SELECT count(*), count(*) FILTER (WHERE n <> 1) FROM `+c.name+`_applied`).Scan(&distinct, &doubled))
	return distinct, doubled
}

func newStore(t testing.TB, db *schematest.Schema) *store.Store {
	s, err := store.New(db.Pool, store.Config{})
	require.NoError(t, err)
	t.Cleanup(s.Close)
	return s
}

func record(t testing.TB, stream string, e events.Event) events.Record {
	r, err := events.NewRecord(uuid.New(), stream, e, events.Metadata{Actor: "test"})
	require.NoError(t, err)
	return r
}

func phone(i int) string { return fmt.Sprintf("+1415555%04d", i) }

// mixedWorkload appends a realistic mix of user events for n users: creation, merges with
// deletions, replacements, consent flips and topic changes, interleaved across users and
// written through both the group-commit and the bulk path.
func mixedWorkload(t testing.TB, s *store.Store, n int, seed uint64) int {
	ctx := context.Background()
	rng := rand.New(rand.NewPCG(seed, seed))
	var bulk []events.Record
	for i := 0; i < n; i++ {
		bulk = append(bulk, record(t, events.UserStream(phone(i)), events.UserCreated{
			Phone: phone(i), Consent: events.ConsentOptIn, Source: "test", Locale: "es-PE", Timezone: "America/Lima",
			Attributes: map[string]any{"name": fmt.Sprintf("user %d", i), "tier": rng.IntN(3), "tags": []any{"a", "b"}},
		}))
	}
	res, err := s.AppendBulk(ctx, bulk)
	require.NoError(t, err)
	total := res.Appended
	topics := []string{"deals", "news", "back-in-stock"}
	statuses := []string{events.StatusQueued, events.StatusSent, events.StatusDelivered, events.StatusRead,
		events.StatusFailed, events.StatusUndelivered}
	base := time.Date(2026, 11, 26, 12, 0, 0, 0, time.UTC)
	for round := 0; round < 4; round++ {
		for i := 0; i < n; i++ {
			p := phone(i)
			var e events.Event
			switch rng.IntN(6) {
			case 0:
				e = events.UserAttributesChanged{Phone: p, Mode: events.AttributesMerge, Source: "test",
					Attributes: map[string]any{"tier": rng.IntN(5), "name": nil, "round": round}}
			case 1:
				loc := "en-US"
				e = events.UserAttributesChanged{Phone: p, Mode: events.AttributesReplace, Source: "test", Locale: &loc,
					Attributes: map[string]any{"only": round}}
			case 2:
				consent := events.ConsentOptOut
				if rng.IntN(2) == 0 {
					consent = events.ConsentOptIn
				}
				e = events.UserConsentChanged{Phone: p, Consent: consent, Source: "inbound", Reason: "STOP"}
			case 3, 4:
				e = events.UserSubscribed{Phone: p, Topic: topics[rng.IntN(3)], Source: "api"}
			default:
				e = events.UserUnsubscribed{Phone: p, Topic: topics[rng.IntN(3)], Source: "api"}
			}
			_, err := s.Append(ctx, events.UserStream(p), store.AnyVersion, record(t, events.UserStream(p), e))
			require.NoError(t, err)
			total++
			// An inbound message and, for a message sent to them, a status callback.
			sid := fmt.Sprintf("SM%030d%02d", i, round)
			at := base.Add(time.Duration(rng.IntN(86400)) * time.Second)
			in := events.UserMessageReceived{Phone: p, MessageSID: sid, Body: "hola", ReceivedAt: at,
				TimestampSource: events.TimestampFromServer, Raw: map[string][]string{"Body": {"hola"}, "MessageSid": {sid}}}
			_, err = s.Append(ctx, events.UserStream(p), store.AnyVersion, record(t, events.UserStream(p), in))
			require.NoError(t, err)
			out := fmt.Sprintf("SM%030d%02d", i, 10+rng.IntN(3)) // several callbacks per provider message
			code := 30003
			st := events.MessageStatusReceived{MessageSID: out, Status: statuses[rng.IntN(len(statuses))], Phone: p,
				ErrorCode: &code, ReceivedAt: at, TimestampSource: events.TimestampFromServer, Raw: map[string][]string{"MessageSid": {out}}}
			_, err = s.Append(ctx, events.ReceiptStream(out), store.AnyVersion, record(t, events.ReceiptStream(out), st))
			require.NoError(t, err)
			total += 2
		}
	}
	total += catalogWorkload(t, s, n/10+1, rng)
	total += importWorkload(t, s, n/50+1, rng)
	// A few users erased, and one of them writing again afterwards.
	for i := 0; i < n; i += 7 {
		p := phone(i)
		_, err := s.Append(ctx, events.UserStream(p), store.AnyVersion, record(t, events.UserStream(p), events.UserDeleted{Phone: p, Source: "test"}))
		require.NoError(t, err)
		total++
	}
	_, err = s.Append(ctx, events.UserStream(phone(0)), store.AnyVersion,
		record(t, events.UserStream(phone(0)), events.UserCreated{Phone: phone(0), Consent: events.ConsentOptOut, Source: "inbound"}))
	require.NoError(t, err)
	return total + 1
}

// usersAfterMixedWorkload is how many users mixedWorkload(n) leaves: every 7th is erased and
// the first one comes back.
func usersAfterMixedWorkload(n int) int { return n - (n+6)/7 + 1 }

// catalogWorkload saves, updates and deletes segments, templates and campaigns and moves the
// campaigns through their statuses.
func catalogWorkload(t testing.TB, s *store.Store, n int, rng *rand.Rand) int {
	ctx := context.Background()
	at := time.Date(2026, 11, 27, 14, 0, 0, 0, time.UTC)
	total := 0
	add := func(stream string, e events.Event) {
		_, err := s.Append(ctx, stream, store.AnyVersion, record(t, stream, e))
		require.NoError(t, err)
		total++
	}
	for i := 0; i < n; i++ {
		id := fmt.Sprintf("c%03d", i)
		add(events.SegmentStream(id), events.SegmentSaved{ID: id, Name: "segment " + id,
			Rule: json.RawMessage(fmt.Sprintf(`{"attr":"tier","op":"eq","value":%d}`, rng.IntN(3)))})
		add(events.TemplateStream(id), events.TemplateSaved{ID: id, Name: "template " + id, Channel: "whatsapp", DefaultLocale: "en",
			Variants: map[string]events.TemplateVariant{"en": {Body: "Hi {first_name|there}"}, "es": {Body: "Hola {first_name|}"}}})
		c := events.CampaignSaved{ID: id, Name: "campaign " + id, Topic: "deals", TemplateID: id, SegmentID: id,
			Schedule: events.Schedule{Kind: events.ScheduleNow}, RateLimit: events.RateLimit{PerSecond: 10},
			Retry: events.RetryPolicy{MaxAttempts: 3, InitialBackoff: "1s", MaxBackoff: "1m"}}
		if i%2 == 0 {
			c.QuietHours = &events.QuietHours{Start: "21:00", End: "08:00", TimezoneFallback: "America/Lima"}
		}
		add(events.CampaignStream(id), c)
		add(events.CampaignStream(id), events.CampaignStatusChanged{ID: id, From: events.CampaignDraft, To: events.CampaignScheduled})
		run := "run-" + id
		add(events.CampaignStream(id), events.CampaignRunStarted{ID: id, RunID: run, Occurrence: at})
		for k, p := range []string{phone(i), phone(i + 1), phone(i + 2), phone(i + 3)} {
			m := events.MessageStream(events.DeterministicID("message", run, p).String())
			add(m, events.MessageQueued{MessageID: m, Kind: events.MessageKindCampaign, CampaignID: id, RunID: run, Phone: p, Topic: "deals", TemplateID: id, DueAt: at})
			switch k {
			case 0:
				add(m, events.MessageDeferred{Reason: events.ReasonQuietHours, Detail: "local 22:00", Until: at.Add(10 * time.Hour)})
				add(m, events.MessageSendAttempted{Attempt: 1, To: "whatsapp:" + p, From: "whatsapp:+14155238886", Body: "Hi", At: at.Add(10 * time.Hour)})
				add(m, events.MessageAccepted{Attempt: 1, SID: fmt.Sprintf("SMc%031d", i), Via: events.AcceptedByResponse})
			case 1:
				add(m, events.MessageSkipped{Reason: events.ReasonMissingVariable, Detail: "first_name"})
			case 2:
				add(m, events.MessageSendAttempted{Attempt: 1, To: "whatsapp:" + p, From: "whatsapp:+14155238886", Body: "Hi", At: at})
				add(m, events.MessageOutcomeUnknown{Attempt: 1, Reason: "timeout", CheckAt: at.Add(time.Minute)})
				add(m, events.MessageRetryScheduled{Attempt: 1, Code: 20429, Reason: "not found at Twilio", At: at.Add(2 * time.Minute)})
				add(m, events.MessageSendAttempted{Attempt: 2, To: "whatsapp:" + p, From: "whatsapp:+14155238886", Body: "Hi", At: at.Add(2 * time.Minute)})
				add(m, events.MessageFailed{Attempt: 2, Code: 21211, Reason: "invalid To"})
			default:
				add(m, events.MessageCancelled{Reason: "campaign cancelled"})
			}
		}
		add(events.CampaignStream(id), events.CampaignRunMaterialized{ID: id, RunID: run, Recipients: 4})
		switch rng.IntN(4) {
		case 0:
			add(events.SegmentStream(id), events.SegmentDeleted{ID: id})
		case 1:
			c.Name += " (renamed)"
			add(events.CampaignStream(id), c)
		case 2:
			add(events.TemplateStream(id), events.TemplateDeleted{ID: id})
			add(events.CampaignStream(id), events.CampaignDeleted{ID: id})
		}
	}
	return total
}

func quietLog() zerolog.Logger { return zerolog.Nop() }

// eventually polls cond until it holds or the deadline passes.
func eventually(t testing.TB, within time.Duration, cond func() bool, msg string, args ...any) {
	t.Helper()
	deadline := time.Now().Add(within)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s: "+msg, append([]any{within}, args...)...)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
