package store

import (
	"context"
	"fmt"

	"herald/events"
)

const sqlReadStreams = `SELECT ` + envelopeColumns + ` FROM events
WHERE stream_id = ANY($1) AND ($2::text[] IS NULL OR type = ANY($2)) ORDER BY stream_id, stream_version`

// ReadStreams returns the events of many streams in one round trip, by stream id, each in
// stream order; types (nil: all) filters them.
func ReadStreams(ctx context.Context, q Querier, streamIDs []string, types []string) (map[string][]events.Envelope, error) {
	rows, err := q.Query(ctx, sqlReadStreams, streamIDs, types)
	if err != nil {
		return nil, fmt.Errorf("read %d streams: %w", len(streamIDs), err)
	}
	evs, err := scanEnvelopes(rows)
	if err != nil {
		return nil, fmt.Errorf("read %d streams: %w", len(streamIDs), err)
	}
	out := make(map[string][]events.Envelope, len(streamIDs))
	for _, e := range evs {
		out[e.StreamID] = append(out[e.StreamID], e)
	}
	return out, nil
}
