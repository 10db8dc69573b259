package saga_test

import (
	"context"
	"net/http/httptest"
	"net/url"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/gorilla/mux"
	"github.com/redis/go-redis/v9"
	"github.com/rs/zerolog"
	"github.com/stretchr/testify/require"

	"herald/commands"
	"herald/commands/saga"
	"herald/events"
	"herald/events/store"
	"herald/events/transport/transporttest"
	"herald/handlers/twilio"
	"herald/handlers/twilio/sender"
	"herald/handlers/twilio/twiliosim"
	"herald/projections/projectionstest"
	"herald/schema/schematest"
)

// world is Herald's send path as a process runs it — store, relay, projections, the Twilio
// webhooks on a real HTTP server, the saga — against the Twilio simulator over HTTP.
type world struct {
	t       testing.TB
	db      *schematest.Schema
	store   *store.Store
	sim     *twiliosim.Server
	saga    *saga.Saga
	catalog *commands.Catalog
	users   *commands.Users
	ctx     context.Context
	// rdb and redisPrefix reach the saga's Redis keys (rate schedules) to break them on purpose.
	rdb         *redis.Client
	redisPrefix string
}

func newWorld(t testing.TB, simCfg twiliosim.Config, sagaCfg saga.Config) *world {
	return newWorldWith(t, simCfg, sagaCfg, true)
}

// newWorldWith starts the saga's loops only when running; a benchmark drives it by hand.
func newWorldWith(t testing.TB, simCfg twiliosim.Config, sagaCfg saga.Config, running bool) *world {
	t.Helper()
	db := schematest.New(t)
	rds := transporttest.New(t)
	log := zerolog.Nop()
	ctx, cancel := context.WithCancel(context.Background())
	s, err := store.New(db.Pool, store.Config{})
	require.NoError(t, err)
	t.Cleanup(s.Close)
	reg := events.DefaultRegistry()

	projectionstest.Start(t, db, rds)

	// Herald's webhooks, where the simulator posts status callbacks.
	r := mux.NewRouter()
	herald := httptest.NewServer(r)
	if simCfg.AccountSID == "" {
		simCfg.AccountSID, simCfg.AuthToken = twiliosim.DefaultAccountSID, twiliosim.DefaultAuthToken
	}
	simCfg.WebhookBaseURL = herald.URL
	sim, err := twiliosim.New(simCfg)
	require.NoError(t, err)
	simURL, err := sim.Start(ctx, "127.0.0.1:0")
	require.NoError(t, err)
	wh, err := twilio.New(twilio.Config{PublicBaseURL: herald.URL, AuthToken: simCfg.AuthToken},
		commands.NewReceiveInboundHandler(s, reg, commands.Replies{}), commands.NewRecordStatusHandler(s, reg), nil)
	require.NoError(t, err)
	wh.Register(r)

	tw, err := sender.New(sender.Config{AccountSID: simCfg.AccountSID, AuthToken: simCfg.AuthToken, From: twiliosim.DefaultSender,
		APIURL: simURL, PublicBaseURL: herald.URL, Timeout: time.Second})
	require.NoError(t, err)
	if sagaCfg.Poll == 0 {
		sagaCfg.Poll = 20 * time.Millisecond
	}
	if sagaCfg.ReconcileAfter == 0 {
		sagaCfg.ReconcileAfter = 300 * time.Millisecond
	}
	sagaCfg.RedisPrefix = rds.Transport.Prefix
	sg, err := saga.New(sagaCfg, s, reg, rds.Client, tw, log)
	require.NoError(t, err)

	done := make(chan struct{}, 1)
	go func() {
		if running {
			_ = sg.Run(ctx)
		}
		done <- struct{}{}
	}()
	t.Cleanup(func() {
		cancel()
		<-done
		sim.Close()
		herald.Close()
		tw.Close()
	})
	return &world{t: t, db: db, store: s, sim: sim, saga: sg, catalog: commands.NewCatalog(s, reg), users: commands.NewUsers(s, reg), ctx: ctx,
		rdb: rds.Client, redisPrefix: rds.Transport.Prefix}
}

// user creates a user with consent and topics, and an inbound message at lastInbound (zero: none).
func (w *world) user(phone string, attrs map[string]any, consent string, lastInbound time.Time, topics ...string) {
	w.t.Helper()
	_, err := w.users.Save(context.Background(), commands.SaveUser{Phone: phone, Attributes: attrs, Consent: consent, Topics: topics,
		Expected: store.AnyVersion, Source: "test"})
	require.NoError(w.t, err)
	if !lastInbound.IsZero() {
		rec, err := events.NewRecord(uuid.New(), events.UserStream(phone), events.UserMessageReceived{Phone: phone,
			MessageSID: "SM" + uuid.NewString()[:8], Body: "hola", ReceivedAt: lastInbound, TimestampSource: events.TimestampFromServer,
			Raw: map[string][]string{}}, events.Metadata{})
		require.NoError(w.t, err)
		_, err = w.store.Append(context.Background(), events.UserStream(phone), store.AnyVersion, rec)
		require.NoError(w.t, err)
	}
}

// campaign saves a template and a campaign on topic deals and launches it.
func (w *world) campaign(body string, rate events.RateLimit, quiet *events.QuietHours) string {
	w.t.Helper()
	ctx := context.Background()
	tpl, cmp := uuid.NewString(), uuid.NewString()
	_, err := w.catalog.SaveTemplate(ctx, events.TemplateSaved{ID: tpl, Name: "t", Channel: "whatsapp", DefaultLocale: "es",
		Variants: map[string]events.TemplateVariant{"es": {Body: body}}}, true, store.AnyVersion, events.Metadata{})
	require.NoError(w.t, err)
	_, err = w.catalog.SaveCampaign(ctx, events.CampaignSaved{ID: cmp, Name: "c", Topic: "deals", TemplateID: tpl,
		Schedule: events.Schedule{Kind: events.ScheduleNow}, RateLimit: rate, QuietHours: quiet,
		Retry: events.RetryPolicy{MaxAttempts: 5, InitialBackoff: "1s", MaxBackoff: "2s"}}, true, store.AnyVersion, events.Metadata{})
	require.NoError(w.t, err)
	// Wait for the read models (the launch reads the template; the saga the campaign).
	w.eventually(10*time.Second, func() bool {
		return w.count(`SELECT count(*) FROM campaigns WHERE id = $1`, cmp) == 1 && w.count(`SELECT count(*) FROM templates WHERE id = $1`, tpl) == 1
	}, "campaign and template in the read models")
	_, err = w.catalog.ChangeCampaignStatus(ctx, cmp, events.CampaignRunning, "test launch", store.AnyVersion, events.Metadata{})
	require.NoError(w.t, err)
	return cmp
}

func (w *world) count(sql string, args ...any) int {
	w.t.Helper()
	var n int
	require.NoError(w.t, w.db.Pool.QueryRow(context.Background(), sql, args...).Scan(&n))
	return n
}

func (w *world) eventually(within time.Duration, cond func() bool, msg string) {
	w.t.Helper()
	deadline := time.Now().Add(within)
	for !cond() {
		if time.Now().After(deadline) {
			w.t.Fatalf("timed out after %s: %s", within, msg)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// messageState is the read model's state and reason of the campaign's message to phone.
func (w *world) messageState(campaign, phone string) (state, reason, detail string) {
	err := w.db.Pool.QueryRow(context.Background(), `SELECT state, reason, detail FROM messages WHERE campaign_id = $1 AND phone = $2`,
		campaign, phone).Scan(&state, &reason, &detail)
	if err != nil {
		return "", "", err.Error()
	}
	return state, reason, detail
}

// createdFor counts the messages the simulator created (stored) for Herald's message id.
func (w *world) createdFor(messageID string) int {
	n := 0
	for _, m := range w.sim.Messages() {
		if u, err := url.Parse(m.StatusCallback); err == nil && u.Query().Get("message_id") == messageID {
			n++
		}
	}
	return n
}

func saveTZ(phone, tz string) commands.SaveUser {
	return commands.SaveUser{Phone: phone, Timezone: &tz, Expected: store.AnyVersion, Source: "test"}
}
