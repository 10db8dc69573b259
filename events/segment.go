package events

import "encoding/json"

// Segments, templates and campaigns are each a stream of their own (category-id form).
const (
	CategorySegment  = "segment"
	CategoryTemplate = "template"
	CategoryCampaign = "campaign"
)

// SegmentStream is the stream of one segment's definitions.
func SegmentStream(id string) string { return CategorySegment + "-" + id }

// Event types of the segment stream.
const (
	TypeSegmentSaved   = "segment.saved"
	TypeSegmentDeleted = "segment.deleted"
)

// SegmentSaved is the whole definition of a segment after a create or an update: the read model
// takes it as it is, so no event needs the ones before it to be understood.
type SegmentSaved struct {
	ID          string          `json:"id"`
	Name        string          `json:"name"`
	Description string          `json:"description,omitempty"`
	Rule        json.RawMessage `json:"rule"`
}

func (SegmentSaved) EventType() string  { return TypeSegmentSaved }
func (SegmentSaved) SchemaVersion() int { return 1 }

// SegmentDeleted removes a segment. Campaigns that referenced it keep their own copy of the rule
// they were launched with.
type SegmentDeleted struct {
	ID string `json:"id"`
}

func (SegmentDeleted) EventType() string  { return TypeSegmentDeleted }
func (SegmentDeleted) SchemaVersion() int { return 1 }
