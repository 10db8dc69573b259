package segment

import (
	"context"
	"math/rand/v2"
	"testing"

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
