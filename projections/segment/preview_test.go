package segment

import (
	"context"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"herald/schema/schematest"
)

func TestConfigValidate(t *testing.T) {
	for _, tc := range []struct {
		cfg Config
		ok  bool
	}{
		{Config{}, true},
		{Config{StatementTimeout: -1}, false},
		{Config{SampleSize: 1001}, false},
		{Config{SampleSize: -1, StatementTimeout: -1}, false},
	} {
		_, err := NewCounter(nil, tc.cfg)
		assert.Equal(t, tc.ok, err == nil, "%+v: %v", tc.cfg, err)
	}
}

func TestPreview(t *testing.T) {
	db := schematest.New(t)
	users := propUsers(rand.New(rand.NewPCG(7, 7)), 200)
	insertUsers(t, db.Pool, users)
	c, err := NewCounter(db.Pool, Config{SampleSize: 5})
	require.NoError(t, err)
	ctx := context.Background()
	p := Params{Now: propNow, ArgOffset: 7} // ArgOffset is the Counter's business

	rule := mustParse(t, `{"or":[{"field":"consent","op":"eq","value":"OPT_IN"},{"field":"topic","op":"eq","value":"news"}]}`)
	want := matchEval(t, rule, users, p)
	require.Greater(t, len(want), 5)
	pv, err := c.Preview(ctx, rule, p)
	require.NoError(t, err)
	assert.Equal(t, int64(len(want)), pv.Count)
	assert.Equal(t, want[:5], pv.Sample)
	n, err := c.Count(ctx, rule, p)
	require.NoError(t, err)
	assert.Equal(t, int64(len(want)), n)

	none := mustParse(t, `{"field":"phone","op":"eq","value":"+10000000"}`)
	pv, err = c.Preview(ctx, none, p)
	require.NoError(t, err)
	assert.Equal(t, Preview{Count: 0, Sample: []string{}}, pv)

	_, err = c.Preview(ctx, mustParse(t, `{"attr":"a","op":"eq","value":{"$event":"x"}}`), p)
	assert.ErrorIs(t, err, ErrEventField)
}

func TestLoadUser(t *testing.T) {
	db := schematest.New(t)
	users := propUsers(rand.New(rand.NewPCG(3, 3)), 20)
	insertUsers(t, db.Pool, users)
	ctx := context.Background()
	for _, want := range users {
		got, found, err := LoadUser(ctx, db.Pool, want.Phone)
		require.NoError(t, err)
		require.True(t, found)
		assert.Equal(t, want.Phone, got.Phone)
		assert.Equal(t, want.Country, got.Country)
		assert.Equal(t, want.Consent, got.Consent)
		assert.ElementsMatch(t, want.Topics, got.Topics)
		assert.True(t, want.CreatedAt.Truncate(time.Microsecond).Equal(got.CreatedAt))
		assert.True(t, want.LastInboundAt.Truncate(time.Microsecond).Equal(got.LastInboundAt))
		assert.Len(t, got.Attributes, len(want.Attributes))
	}
	_, found, err := LoadUser(ctx, db.Pool, "+10000000000")
	require.NoError(t, err)
	assert.False(t, found)
}
