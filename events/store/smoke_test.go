package store_test

import (
	"context"
	"testing"

	"github.com/google/uuid"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"herald/events"
	"herald/events/store"
	"herald/schema/schematest"
)

func rec(t testing.TB, stream string, e events.Event) events.Record {
	r, err := events.NewRecord(uuid.New(), stream, e, events.Metadata{Actor: "test"})
	require.NoError(t, err)
	return r
}

func TestSmoke(t *testing.T) {
	db := schematest.New(t)
	s, err := store.New(db.Pool, store.Config{})
	require.NoError(t, err)
	defer s.Close()
	ctx := context.Background()
	r1 := rec(t, "user-+1", events.UserSubscribed{Phone: "+1", Topic: "a"})
	res, err := s.Append(ctx, "user-+1", 0, r1)
	require.NoError(t, err)
	assert.Equal(t, 1, res.StreamVersion)
	res2, err := s.Append(ctx, "user-+1", 0, r1)
	require.NoError(t, err)
	assert.True(t, res2.Duplicate)
	assert.Equal(t, res.Positions, res2.Positions)
	_, err = s.Append(ctx, "user-+1", 0, rec(t, "user-+1", events.UserSubscribed{Phone: "+1", Topic: "b"}))
	assert.ErrorIs(t, err, store.ErrConcurrency)
	_, err = s.Append(ctx, "user-+1", 5, rec(t, "user-+1", events.UserSubscribed{Phone: "+1", Topic: "b"}))
	assert.ErrorIs(t, err, store.ErrConcurrency)
	res3, err := s.Append(ctx, "user-+1", store.AnyVersion, rec(t, "user-+1", events.UserSubscribed{Phone: "+1", Topic: "c"}))
	require.NoError(t, err)
	assert.Equal(t, 2, res3.StreamVersion)

	var bulk []events.Record
	for i := 0; i < 2500; i++ {
		bulk = append(bulk, rec(t, "user-+2", events.UserSubscribed{Phone: "+2", Topic: "x"}))
	}
	bulk = append(bulk, r1)
	br, err := s.AppendBulk(ctx, bulk)
	require.NoError(t, err)
	assert.Equal(t, 2500, br.Appended)
	assert.Equal(t, 1, br.Duplicates)
	evs, err := store.ReadStream(ctx, db.Pool, "user-+2", 0)
	require.NoError(t, err)
	require.Len(t, evs, 2500)
	assert.Equal(t, 2500, evs[2499].StreamVersion)
	page, err := store.ReadAfter(ctx, db.Pool, store.Checkpoint{}, 10000, nil)
	require.NoError(t, err)
	assert.Len(t, page.Events, 2502)
	assert.True(t, page.CaughtUp)
	assert.Equal(t, "test", page.Events[0].Metadata.Actor)
}
