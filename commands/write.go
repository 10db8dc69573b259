package commands

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"time"

	"herald/events"
	"herald/events/store"
)

// ErrContended is returned when a command lost the race for its stream every time it tried.
var ErrContended = errors.New("too many concurrent writes to one subject")

// maxContendedRetries bounds how often an API command decides again after losing a race: every
// writer of a hot stream gets through when fewer than this many write it at once.
const maxContendedRetries = 64

// contentionPause spreads writers that lost a race so they do not collide again in the same
// group commit: nothing before the first retry, then a random pause growing to a few ms.
func contentionPause(attempt int) {
	if attempt == 0 {
		return
	}
	time.Sleep(time.Duration(rand.Int64N(int64(min(attempt, 10)) * int64(time.Millisecond))))
}

// writeStream is how the API's commands write: load folds the stream into a state (with its
// version and whether the subject exists), decide returns the events to append (none: the
// command is already true), and they are appended at the version decided on. expected pins
// that version (If-Match: a mismatch is a *store.ConcurrencyError); with store.AnyVersion a
// command that lost a race decides again.
func writeStream[S any](ctx context.Context, s *store.Store, stream string, expected int, md events.Metadata,
	load func(context.Context) (S, int, bool, error), decide func(S) ([]events.Event, error)) (Written, error) {
	for attempt := 0; attempt < maxContendedRetries; attempt++ {
		contentionPause(attempt)
		st, version, exists, err := load(ctx)
		if err != nil {
			return Written{}, err
		}
		if expected != store.AnyVersion && expected != version {
			return Written{}, &store.ConcurrencyError{StreamID: stream, Expected: expected}
		}
		evs, err := decide(st)
		if err != nil {
			return Written{Version: version}, err
		}
		if len(evs) == 0 {
			return Written{Version: version}, nil
		}
		recs := make([]events.Record, len(evs))
		for i, e := range evs {
			if recs[i], err = events.NewRecord([16]byte{}, stream, e, md); err != nil {
				return Written{}, err
			}
		}
		res, err := s.Append(ctx, stream, version, recs...)
		switch {
		case err == nil:
			return Written{Created: !exists, Changed: true, Version: res.StreamVersion, Checkpoint: res.Checkpoint}, nil
		case errors.Is(err, store.ErrConcurrency) && expected == store.AnyVersion:
			continue
		default:
			return Written{}, fmt.Errorf("write %s: %w", stream, err)
		}
	}
	return Written{}, fmt.Errorf("write %s: %w after %d attempts", stream, ErrContended, maxContendedRetries)
}
