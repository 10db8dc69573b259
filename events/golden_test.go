package events_test

import (
	"bytes"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"strconv"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"herald/events"
)

// Golden files pin the stored JSON of every event type: events/testdata/<type>.v<N>.json holds
// one payload of <type> at schema version N, in the canonical form of goldenJSON (two-space
// indent, trailing newline). A payload already stored can never change shape, so a failing golden
// test means: write an upcaster and bump the version (keeping the old golden), never edit it.
//
// go test ./events -run TestGolden -update rewrites the goldens of the current versions from
// goldenSamples; the diff is then the change to review.
var update = flag.Bool("update", false, "rewrite events/testdata golden files from the samples")

var goldenName = regexp.MustCompile(`^(.+)\.v([0-9]+)\.json$`)

func goldenPath(eventType string, version int) string {
	return filepath.Join("testdata", fmt.Sprintf("%s.v%d.json", eventType, version))
}

// goldenJSON is the one canonical form of a golden file.
func goldenJSON(t *testing.T, e events.Event) []byte {
	t.Helper()
	b, err := json.MarshalIndent(e, "", "  ")
	require.NoError(t, err)
	return append(b, '\n')
}

func ptr[T any](v T) *T { return &v }

// goldenSamples holds one payload per catalogued type with every field set, so that each field's
// JSON name is pinned by the golden file.
func goldenSamples() map[string]events.Event {
	at := time.Date(2026, 3, 14, 15, 9, 26, 535000000, time.UTC)
	return map[string]events.Event{
		events.TypeUserCreated: &events.UserCreated{
			Phone:      "+51987654321",
			Attributes: map[string]any{"first_name": "Ana", "plan": "gold", "age": 34, "vip": true, "tags": []any{"a", "b"}},
			Locale:     "es-PE",
			Timezone:   "America/Lima",
			Consent:    events.ConsentOptIn,
			Source:     "import:imp-42",
		},
		events.TypeUserAttributesChanged: &events.UserAttributesChanged{
			Phone:      "+51987654321",
			Mode:       events.AttributesMerge,
			Attributes: map[string]any{"plan": "platinum", "nickname": nil},
			Locale:     ptr("en-US"),
			Timezone:   ptr("America/New_York"),
			Source:     "api",
		},
		events.TypeUserConsentChanged: &events.UserConsentChanged{
			Phone:   "+51987654321",
			Consent: events.ConsentOptOut,
			Source:  "inbound",
			Reason:  "STOP",
		},
		events.TypeUserSubscribed: &events.UserSubscribed{
			Phone:  "+51987654321",
			Topic:  "promotions",
			Source: "api",
		},
		events.TypeUserUnsubscribed: &events.UserUnsubscribed{
			Phone:  "+51987654321",
			Topic:  "promotions",
			Source: "inbound",
		},
		events.TypeUserMessageReceived: &events.UserMessageReceived{
			Phone:           "+51987654321",
			MessageSID:      "SM0123456789abcdef0123456789abcdef",
			AccountSID:      "AC0123456789abcdef0123456789abcdef",
			To:              "whatsapp:+14155238886",
			Body:            "stop please",
			ProfileName:     "Ana",
			WaID:            "51987654321",
			Media:           []events.Media{{URL: "https://api.twilio.com/media/ME1", ContentType: "image/jpeg"}},
			ButtonPayload:   "unsubscribe:promotions",
			ButtonText:      "Unsubscribe",
			Command:         events.CommandStop,
			Keyword:         "STOP",
			Topic:           "promotions",
			OptOutType:      "STOP",
			ReceivedAt:      at,
			TimestampSource: events.TimestampFromServer,
			Raw:             map[string][]string{"Body": {"stop please"}, "From": {"whatsapp:+51987654321"}},
		},
		events.TypeMessageStatusReceived: &events.MessageStatusReceived{
			MessageSID:       "SM0123456789abcdef0123456789abcdef",
			Status:           events.StatusUndelivered,
			ErrorCode:        ptr(63016),
			ErrorMessage:     "outside the 24 hour window",
			Phone:            "+51987654321",
			From:             "whatsapp:+14155238886",
			AccountSID:       "AC0123456789abcdef0123456789abcdef",
			MessageID:        "msg-1",
			Attempt:          2,
			ChannelEvent:     "READ",
			IdempotencyToken: "tok-1",
			ReceivedAt:       at,
			TimestampSource:  events.TimestampFromTwilio,
			Raw:              map[string][]string{"MessageStatus": {"undelivered"}, "ErrorCode": {"63016"}},
		},
		events.TypeCampaignRunStarted:      &events.CampaignRunStarted{ID: "9a7c5e3b-1d2f-4a6b-8c0e-3f5a7b9c1d42", RunID: "run-2026-11-27T14:00:00Z", Occurrence: at},
		events.TypeCampaignRunMaterialized: &events.CampaignRunMaterialized{ID: "9a7c5e3b-1d2f-4a6b-8c0e-3f5a7b9c1d42", RunID: "run-2026-11-27T14:00:00Z", Recipients: 1234},
		events.TypeMessageQueued: &events.MessageQueued{MessageID: "0c1d2e3f-4a5b-5c6d-8e7f-8091a2b3c4d5", Kind: events.MessageKindTrigger,
			CampaignID: "9a7c5e3b-1d2f-4a6b-8c0e-3f5a7b9c1d42", RunID: "run-1", TriggerID: "evt-42", Phone: "+51987654321", Topic: "deals",
			TemplateID: "5d1f0c3e-8a4b-4f7e-9c2d-1b3a5e7f9d20", Body: "thanks!", Payload: map[string]any{"product_id": "sku-1", "price": 19.9}, DueAt: at},
		events.TypeMessageDeferred: &events.MessageDeferred{Reason: events.ReasonQuietHours, Detail: "local 22:14 America/Lima (user timezone), window 21:00–08:00", Until: at},
		events.TypeMessageSkipped:  &events.MessageSkipped{Reason: events.ReasonMissingVariable, Detail: "first_name"},
		events.TypeMessageSendAttempted: &events.MessageSendAttempted{Attempt: 2, To: "whatsapp:+51987654321", From: "whatsapp:+14155238886", Locale: "es-PE",
			Body: "Hola Ana", ContentSID: "HX0123456789abcdef0123456789abcdef", ContentVariables: map[string]string{"1": "Ana"}, At: at},
		events.TypeMessageAccepted:       &events.MessageAccepted{Attempt: 2, SID: "SM0123456789abcdef0123456789abcdef", Status: "queued", Via: events.AcceptedByResponse},
		events.TypeMessageRetryScheduled: &events.MessageRetryScheduled{Attempt: 1, Code: 20429, Reason: "rate limited", At: at},
		events.TypeMessageOutcomeUnknown: &events.MessageOutcomeUnknown{Attempt: 1, Reason: "timeout", CheckAt: at},
		events.TypeMessageFailed:         &events.MessageFailed{Attempt: 1, Code: 21211, Reason: "invalid To number"},
		events.TypeMessageCancelled:      &events.MessageCancelled{Reason: "campaign cancelled"},
		events.TypeEventErased:           &events.EventErased{ErasedBy: "7d4c2a10-3e5f-4b6a-9c8d-0e1f2a3b4c5d"},
		events.TypeUserDeleted:           &events.UserDeleted{Phone: "+51987654321", Source: "api", Reason: "erasure request 2026-11-26"},
		events.TypeSegmentSaved: &events.SegmentSaved{
			ID:          "0b9e6a52-5c1e-4d5b-8f0a-2f6f7d0a9c11",
			Name:        "Lima gold",
			Description: "gold customers in Lima",
			Rule:        json.RawMessage(`{"and":[{"attr":"city","op":"eq","value":"Lima"},{"attr":"plan","op":"eq","value":"gold"}]}`),
		},
		events.TypeSegmentDeleted: &events.SegmentDeleted{ID: "0b9e6a52-5c1e-4d5b-8f0a-2f6f7d0a9c11"},
		events.TypeTemplateSaved: &events.TemplateSaved{
			ID:            "5d1f0c3e-8a4b-4f7e-9c2d-1b3a5e7f9d20",
			Name:          "price drop",
			Channel:       "whatsapp",
			DefaultLocale: "en",
			Variants: map[string]events.TemplateVariant{
				"en":    {Body: "Hi {first_name|there}, {event.product} is now {event.price}."},
				"es-PE": {Body: "Hola {first_name|}, {event.product} ahora cuesta {event.price}.", ContentSID: "HX0123456789abcdef0123456789abcdef", ContentVariables: map[string]string{"1": "first_name", "2": "event.product"}},
			},
		},
		events.TypeTemplateDeleted: &events.TemplateDeleted{ID: "5d1f0c3e-8a4b-4f7e-9c2d-1b3a5e7f9d20"},
		events.TypeCampaignSaved: &events.CampaignSaved{
			ID:          "9a7c5e3b-1d2f-4a6b-8c0e-3f5a7b9c1d42",
			Name:        "Black Friday",
			Topic:       "promotions",
			TemplateID:  "5d1f0c3e-8a4b-4f7e-9c2d-1b3a5e7f9d20",
			SegmentID:   "0b9e6a52-5c1e-4d5b-8f0a-2f6f7d0a9c11",
			SegmentRule: json.RawMessage(`{"attr":"country","op":"eq","value":"PE"}`),
			Schedule:    events.Schedule{Kind: events.ScheduleCron, At: "2026-11-27T13:00:00Z", Cron: "0 9 * * 5", Timezone: "America/Lima"},
			RateLimit:   events.RateLimit{PerSecond: 20, PerMinute: 600},
			QuietHours:  &events.QuietHours{Start: "21:00", End: "08:00", TimezoneFallback: "America/Lima"},
			Retry:       events.RetryPolicy{MaxAttempts: 5, InitialBackoff: "30s", MaxBackoff: "1h"},
		},
		events.TypeCampaignStatusChanged: &events.CampaignStatusChanged{ID: "9a7c5e3b-1d2f-4a6b-8c0e-3f5a7b9c1d42", From: "draft", To: "scheduled", Reason: "api"},
		events.TypeCampaignDeleted:       &events.CampaignDeleted{ID: "9a7c5e3b-1d2f-4a6b-8c0e-3f5a7b9c1d42"},
		events.TypeImportStarted: &events.ImportStarted{ID: "5f0c2b1e-8d3a-4e7b-9c6f-1a2b3c4d5e6f", Kind: "users", Format: "csv",
			Mode: events.AttributesMerge, Region: "PE", Source: "customers.csv"},
		events.TypeImportBatchProcessed: &events.ImportBatchProcessed{ID: "5f0c2b1e-8d3a-4e7b-9c6f-1a2b3c4d5e6f", Batch: 1, FirstRow: 2, LastRow: 7,
			Counts: events.ImportCounts{RowsRead: 5, BlankRows: 1, Accepted: 4, Rejected: 1, Created: 2, Updated: 1, Unchanged: 0, Merged: 1,
				Warnings: 1, ConsentConflicts: 1, RejectedBy: map[string]int{"too_short": 1}, WarningsBy: map[string]int{"consent_conflict": 1},
				Countries: map[string]int{"PE": 2, "US": 1}},
			Rejections: []events.ImportIssue{{Row: 4, Code: "too_short", Value: "+51 98", Detail: "the number is too short"}},
			Warnings:   []events.ImportIssue{{Row: 5, Code: "consent_conflict", Value: "OPT_IN", Detail: "opted out with STOP; not opted in"}},
			Merges:     []events.ImportIssue{{Row: 7, Code: "merged_into", Into: 2}},
		},
		events.TypeImportFinished: &events.ImportFinished{ID: "5f0c2b1e-8d3a-4e7b-9c6f-1a2b3c4d5e6f", Status: events.ImportFailed,
			Error: "the file ends inside a JSON value", Totals: events.ImportCounts{RowsRead: 5, BlankRows: 1, Accepted: 4, Rejected: 1, Created: 2,
				Updated: 1, Merged: 1, Warnings: 1, ConsentConflicts: 1, RejectedBy: map[string]int{"too_short": 1},
				WarningsBy: map[string]int{"consent_conflict": 1}, Countries: map[string]int{"PE": 2, "US": 1}},
			Columns: map[string]string{"Phone Number": "phone", "First Name": "first_name"}, DurationMs: 1234},
		events.TypeTriggerAccepted: &events.TriggerAccepted{EventID: "evt-123", Type: "price_drop", OccurredAt: at,
			Payload: map[string]any{"product_id": "sku-1", "price": 9.5}, Segment: json.RawMessage(`{"attr":"watchlist","op":"contains","value":{"$event":"product_id"}}`),
			SegmentID: "price-watchers", TemplateID: "price-drop", Topic: "deals", Recipients: 42, ResolvedAt: at.Add(time.Second), Source: "api"},
	}
}

func TestGoldenSamplesSetEveryField(t *testing.T) {
	t.Parallel()
	samples := goldenSamples()
	for _, d := range events.Catalogue() {
		e, ok := samples[d.Type]
		if !assert.True(t, ok, "goldenSamples has no sample of %s", d.Type) {
			continue
		}
		assert.Equal(t, d.Type, e.EventType())
		v := reflect.ValueOf(e).Elem()
		for i := range v.NumField() {
			assert.False(t, v.Field(i).IsZero(), "sample of %s leaves %s zero: its JSON name would not be pinned", d.Type, v.Type().Field(i).Name)
		}
	}
}

func TestGolden(t *testing.T) {
	samples := goldenSamples()
	reg := events.DefaultRegistry()
	if *update {
		require.NoError(t, os.MkdirAll("testdata", 0o755))
		for _, d := range events.Catalogue() {
			e, ok := samples[d.Type]
			require.True(t, ok, "no sample of %s", d.Type)
			require.NoError(t, os.WriteFile(goldenPath(d.Type, d.Version), goldenJSON(t, e), 0o644))
		}
	}

	for _, d := range events.Catalogue() {
		t.Run(fmt.Sprintf("%s.v%d", d.Type, d.Version), func(t *testing.T) {
			want, err := os.ReadFile(goldenPath(d.Type, d.Version))
			require.NoError(t, err, "catalogued type %s v%d has no golden file; run: go test ./events -run TestGolden -update", d.Type, d.Version)

			e, err := reg.DecodeData(d.Type, d.Version, want)
			require.NoError(t, err)
			assert.Equal(t, string(want), string(goldenJSON(t, e)), "decode + marshal must give the golden file back byte for byte")

			// Every key of the golden must be a field of the type (a renamed JSON tag would
			// otherwise silently drop stored data).
			strict := json.NewDecoder(bytes.NewReader(want))
			strict.DisallowUnknownFields()
			require.NoError(t, strict.Decode(d.New()), "the golden has a key the Go type does not know")

			// The sample is what -update writes: a changed sample needs a deliberate -update.
			if s, ok := samples[d.Type]; ok {
				assert.Equal(t, string(want), string(goldenJSON(t, s)), "sample and golden differ; if the change is intended, run -update and review the diff")
			}
		})
	}
}

// TestGoldenFilesBelongToTheCatalogue fails for a golden whose type left the catalogue (stored
// events of that type would become undecodable) and makes sure goldens of older versions still
// decode through the upcasters.
func TestGoldenFilesBelongToTheCatalogue(t *testing.T) {
	t.Parallel()
	current := map[string]int{}
	for _, d := range events.Catalogue() {
		current[d.Type] = d.Version
	}
	reg := events.DefaultRegistry()
	files, err := filepath.Glob(filepath.Join("testdata", "*.json"))
	require.NoError(t, err)
	require.NotEmpty(t, files)
	for _, f := range files {
		m := goldenName.FindStringSubmatch(filepath.Base(f))
		if !assert.NotNil(t, m, "%s: golden files are named <type>.v<N>.json", f) {
			continue
		}
		version, _ := strconv.Atoi(m[2])
		cur, ok := current[m[1]]
		if !assert.True(t, ok, "%s: %s is not in events.Catalogue(); stored events of a type must stay decodable", f, m[1]) {
			continue
		}
		assert.LessOrEqual(t, version, cur, "%s: version ahead of the catalogue", f)
		if version < cur {
			data, err := os.ReadFile(f)
			require.NoError(t, err)
			_, err = reg.DecodeData(m[1], version, data)
			assert.NoError(t, err, "%s: an old version must still decode through the upcasters", f)
		}
	}
}
