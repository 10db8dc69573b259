package commands

import (
	"context"
	"errors"
	"fmt"
	"slices"

	"herald/events"
	"herald/events/store"
)

// StateError refuses a command that the subject's current state does not allow (a running
// campaign cannot be edited; a completed one cannot be resumed).
type StateError struct {
	Subject string
	Reason  string
}

func (e *StateError) Error() string { return e.Subject + ": " + e.Reason }

// Catalog handles the commands on segments, templates and campaigns. Each is a stream whose
// *.saved events carry the whole definition; callers validate definitions before saving.
type Catalog struct {
	store    *store.Store
	registry *events.Registry
}

// NewCatalog wires the catalog commands.
func NewCatalog(s *store.Store, registry *events.Registry) *Catalog {
	return &Catalog{store: s, registry: registry}
}

// entity is what catalog decisions need from a stream: does it exist, at which version, and
// (campaigns) its status.
type entity struct {
	exists  bool
	version int
	status  string
}

func (c *Catalog) load(ctx context.Context, stream string) (entity, error) {
	evs, err := store.ReadStream(ctx, c.store.Pool(), stream, 0)
	if err != nil {
		return entity{}, err
	}
	var st entity
	for _, env := range evs {
		st.version = env.StreamVersion
		e, err := c.registry.Decode(env)
		if err != nil {
			return entity{}, fmt.Errorf("load %s: %w", stream, err)
		}
		switch e := e.(type) {
		case *events.SegmentSaved, *events.TemplateSaved:
			st.exists = true
		case *events.CampaignSaved:
			if !st.exists {
				st.status = events.CampaignDraft
			}
			st.exists = true
		case *events.CampaignStatusChanged:
			st.status = e.To
		case *events.SegmentDeleted, *events.TemplateDeleted, *events.CampaignDeleted:
			st.exists = false
		}
	}
	return st, nil
}

// write folds stream, asks decide for the events and appends them.
func (c *Catalog) write(ctx context.Context, stream string, expected int, md events.Metadata,
	decide func(entity) ([]events.Event, error)) (Written, error) {
	return writeStream(ctx, c.store, stream, expected, md,
		func(ctx context.Context) (entity, int, bool, error) {
			st, err := c.load(ctx, stream)
			return st, st.version, st.exists, err
		}, decide)
}

// SaveSegment creates (create true: the id must be new) or replaces a segment.
func (c *Catalog) SaveSegment(ctx context.Context, seg events.SegmentSaved, create bool, expected int, md events.Metadata) (Written, error) {
	return c.write(ctx, events.SegmentStream(seg.ID), expected, md, func(st entity) ([]events.Event, error) {
		if err := existence(st, create, "segment "+seg.ID); err != nil {
			return nil, err
		}
		return []events.Event{seg}, nil
	})
}

// DeleteSegment deletes a segment.
func (c *Catalog) DeleteSegment(ctx context.Context, id string, expected int, md events.Metadata) (Written, error) {
	return c.write(ctx, events.SegmentStream(id), expected, md, func(st entity) ([]events.Event, error) {
		if !st.exists {
			return nil, ErrNotFound
		}
		return []events.Event{events.SegmentDeleted{ID: id}}, nil
	})
}

// SaveTemplate creates (create true) or replaces a template.
func (c *Catalog) SaveTemplate(ctx context.Context, tpl events.TemplateSaved, create bool, expected int, md events.Metadata) (Written, error) {
	return c.write(ctx, events.TemplateStream(tpl.ID), expected, md, func(st entity) ([]events.Event, error) {
		if err := existence(st, create, "template "+tpl.ID); err != nil {
			return nil, err
		}
		return []events.Event{tpl}, nil
	})
}

// DeleteTemplate deletes a template.
func (c *Catalog) DeleteTemplate(ctx context.Context, id string, expected int, md events.Metadata) (Written, error) {
	return c.write(ctx, events.TemplateStream(id), expected, md, func(st entity) ([]events.Event, error) {
		if !st.exists {
			return nil, ErrNotFound
		}
		return []events.Event{events.TemplateDeleted{ID: id}}, nil
	})
}

// editable are the statuses in which a campaign's definition may change.
var editable = []string{events.CampaignDraft, events.CampaignScheduled, events.CampaignPaused}

// SaveCampaign creates (create true: as a draft) or replaces a campaign that has not started
// or is paused.
func (c *Catalog) SaveCampaign(ctx context.Context, cmp events.CampaignSaved, create bool, expected int, md events.Metadata) (Written, error) {
	return c.write(ctx, events.CampaignStream(cmp.ID), expected, md, func(st entity) ([]events.Event, error) {
		if err := existence(st, create, "campaign "+cmp.ID); err != nil {
			return nil, err
		}
		if st.exists && !slices.Contains(editable, st.status) {
			return nil, &StateError{Subject: "campaign " + cmp.ID, Reason: fmt.Sprintf("a %s campaign cannot be edited (only %v)", st.status, editable)}
		}
		return []events.Event{cmp}, nil
	})
}

// campaignTransitions are the status changes a campaign allows.
var campaignTransitions = map[string][]string{
	events.CampaignDraft:     {events.CampaignScheduled, events.CampaignRunning, events.CampaignCancelled},
	events.CampaignScheduled: {events.CampaignDraft, events.CampaignRunning, events.CampaignPaused, events.CampaignCancelled},
	events.CampaignRunning:   {events.CampaignPaused, events.CampaignCompleted, events.CampaignCancelled, events.CampaignFailed},
	events.CampaignPaused:    {events.CampaignRunning, events.CampaignScheduled, events.CampaignCancelled},
}

// CampaignTransitionAllowed reports whether a campaign may go from one status to another.
func CampaignTransitionAllowed(from, to string) bool {
	return slices.Contains(campaignTransitions[from], to)
}

// ChangeCampaignStatus moves a campaign to status to, if its life cycle allows it. Asking for
// the status it already has changes nothing.
func (c *Catalog) ChangeCampaignStatus(ctx context.Context, id, to, reason string, expected int, md events.Metadata) (Written, error) {
	return c.write(ctx, events.CampaignStream(id), expected, md, func(st entity) ([]events.Event, error) {
		switch {
		case !st.exists:
			return nil, ErrNotFound
		case st.status == to:
			return nil, nil
		case !CampaignTransitionAllowed(st.status, to):
			return nil, &StateError{Subject: "campaign " + id,
				Reason: fmt.Sprintf("cannot go from %s to %s (allowed: %v)", st.status, to, campaignTransitions[st.status])}
		}
		return []events.Event{events.CampaignStatusChanged{ID: id, From: st.status, To: to, Reason: reason}}, nil
	})
}

// DeleteCampaign deletes a campaign that is not running or paused (those are cancelled first).
func (c *Catalog) DeleteCampaign(ctx context.Context, id string, expected int, md events.Metadata) (Written, error) {
	return c.write(ctx, events.CampaignStream(id), expected, md, func(st entity) ([]events.Event, error) {
		switch {
		case !st.exists:
			return nil, ErrNotFound
		case st.status == events.CampaignRunning || st.status == events.CampaignPaused:
			return nil, &StateError{Subject: "campaign " + id, Reason: "a " + st.status + " campaign must be cancelled before it is deleted"}
		}
		return []events.Event{events.CampaignDeleted{ID: id}}, nil
	})
}

// ErrExists refuses a create whose id is taken.
var ErrExists = errors.New("already exists")

func existence(st entity, create bool, subject string) error {
	switch {
	case create && st.exists:
		return fmt.Errorf("%s: %w", subject, ErrExists)
	case !create && !st.exists:
		return ErrNotFound
	}
	return nil
}
