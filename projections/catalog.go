package projections

import (
	"context"
	"encoding/json"
	"fmt"

	"herald/events"
)

// Segments is the segments read model: one row per segment with its current rule.
type Segments struct{}

func (Segments) Name() string     { return "segments" }
func (Segments) Tables() []string { return []string{"segments"} }
func (Segments) Handles() []string {
	return []string{events.TypeSegmentSaved, events.TypeSegmentDeleted}
}

const sqlSegmentSave = `INSERT INTO segments (id, name, description, rule, created_at, updated_at, version)
VALUES ($1, $2, $3, $4, $5, $5, $6)
ON CONFLICT (id) DO UPDATE SET name = excluded.name, description = excluded.description, rule = excluded.rule,
    updated_at = excluded.updated_at, version = excluded.version`

func (Segments) Apply(_ context.Context, tx Tx, env events.Envelope, e events.Event) error {
	switch e := e.(type) {
	case *events.SegmentSaved:
		tx.Queue(sqlSegmentSave, e.ID, e.Name, e.Description, string(e.Rule), env.RecordedAt, env.StreamVersion)
	case *events.SegmentDeleted:
		tx.Queue(`DELETE FROM segments WHERE id = $1`, e.ID)
	default:
		return Poison(fmt.Errorf("segments: unexpected %T", e))
	}
	return nil
}

// Templates is the templates read model: one row per template, its variants as jsonb.
type Templates struct{}

func (Templates) Name() string     { return "templates" }
func (Templates) Tables() []string { return []string{"templates"} }
func (Templates) Handles() []string {
	return []string{events.TypeTemplateSaved, events.TypeTemplateDeleted}
}

const sqlTemplateSave = `INSERT INTO templates (id, name, channel, default_locale, variants, created_at, updated_at, version)
VALUES ($1, $2, $3, $4, $5, $6, $6, $7)
ON CONFLICT (id) DO UPDATE SET name = excluded.name, channel = excluded.channel, default_locale = excluded.default_locale,
    variants = excluded.variants, updated_at = excluded.updated_at, version = excluded.version`

func (Templates) Apply(_ context.Context, tx Tx, env events.Envelope, e events.Event) error {
	switch e := e.(type) {
	case *events.TemplateSaved:
		variants, err := json.Marshal(e.Variants)
		if err != nil {
			return Poison(fmt.Errorf("template variants: %w", err))
		}
		tx.Queue(sqlTemplateSave, e.ID, e.Name, e.Channel, e.DefaultLocale, string(variants), env.RecordedAt, env.StreamVersion)
	case *events.TemplateDeleted:
		tx.Queue(`DELETE FROM templates WHERE id = $1`, e.ID)
	default:
		return Poison(fmt.Errorf("templates: unexpected %T", e))
	}
	return nil
}

// Campaigns is the campaigns read model: definition and status.
type Campaigns struct{}

func (Campaigns) Name() string     { return "campaigns" }
func (Campaigns) Tables() []string { return []string{"campaigns", "campaign_runs"} }
func (Campaigns) Handles() []string {
	return []string{events.TypeCampaignSaved, events.TypeCampaignStatusChanged, events.TypeCampaignDeleted,
		events.TypeCampaignRunStarted, events.TypeCampaignRunMaterialized}
}

// A saved campaign keeps its status; a new one starts as a draft.
const sqlCampaignSave = `INSERT INTO campaigns (id, name, topic, template_id, segment_id, segment_rule, status, schedule,
    rate_limit, quiet_hours, retry, created_at, updated_at, version)
VALUES ($1, $2, $3, $4, $5, $6, 'draft', $7, $8, $9, $10, $11, $11, $12)
ON CONFLICT (id) DO UPDATE SET name = excluded.name, topic = excluded.topic, template_id = excluded.template_id,
    segment_id = excluded.segment_id, segment_rule = excluded.segment_rule, schedule = excluded.schedule,
    rate_limit = excluded.rate_limit, quiet_hours = excluded.quiet_hours, retry = excluded.retry,
    updated_at = excluded.updated_at, version = excluded.version`

func (Campaigns) Apply(_ context.Context, tx Tx, env events.Envelope, e events.Event) error {
	switch e := e.(type) {
	case *events.CampaignSaved:
		var rule, quiet *string
		if len(e.SegmentRule) > 0 {
			s := string(e.SegmentRule)
			rule = &s
		}
		if e.QuietHours != nil {
			b, err := json.Marshal(e.QuietHours)
			if err != nil {
				return Poison(err)
			}
			s := string(b)
			quiet = &s
		}
		schedule, err := json.Marshal(e.Schedule)
		if err != nil {
			return Poison(err)
		}
		rate, err := json.Marshal(e.RateLimit)
		if err != nil {
			return Poison(err)
		}
		retry, err := json.Marshal(e.Retry)
		if err != nil {
			return Poison(err)
		}
		tx.Queue(sqlCampaignSave, e.ID, e.Name, e.Topic, e.TemplateID, e.SegmentID, rule, string(schedule),
			string(rate), quiet, string(retry), env.RecordedAt, env.StreamVersion)
	case *events.CampaignStatusChanged:
		tx.Queue(`UPDATE campaigns SET status = $2, updated_at = $3, version = $4 WHERE id = $1`,
			e.ID, e.To, env.RecordedAt, env.StreamVersion)
	case *events.CampaignDeleted:
		tx.Queue(`DELETE FROM campaigns WHERE id = $1`, e.ID)
	case *events.CampaignRunStarted:
		tx.Queue(`INSERT INTO campaign_runs (campaign_id, run_id, occurrence, started_at) VALUES ($1, $2, $3, $4)
ON CONFLICT DO NOTHING`, e.ID, e.RunID, e.Occurrence, env.RecordedAt)
	case *events.CampaignRunMaterialized:
		tx.Queue(`UPDATE campaign_runs SET materialized_at = $3, recipients = $4 WHERE campaign_id = $1 AND run_id = $2`,
			e.ID, e.RunID, env.RecordedAt, e.Recipients)
	default:
		return Poison(fmt.Errorf("campaigns: unexpected %T", e))
	}
	return nil
}
