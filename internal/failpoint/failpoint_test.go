package failpoint

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestParse(t *testing.T) {
	tests := []struct {
		spec    string
		wantErr string
		armed   map[string]int64
	}{
		{spec: "", armed: nil},
		{spec: "after-201-before-record=3", armed: map[string]int64{After201BeforeRecord: 3}},
		{spec: " after-201-before-record=1 , after-xadd-before-checkpoint=7", armed: map[string]int64{
			After201BeforeRecord: 1, AfterXAddBeforeCheckpoint: 7}},
		{spec: "after-201-before-record", wantErr: "want name=N"},
		{spec: "after-201-before-recrod=1", wantErr: "unknown point"},
		{spec: "after-201-before-record=0", wantErr: "not a count"},
		{spec: "after-201-before-record=x", wantErr: "not a count"},
	}
	for _, tt := range tests {
		t.Run(tt.spec, func(t *testing.T) {
			s, err := Parse(tt.spec)
			if tt.wantErr != "" {
				require.Error(t, err)
				assert.Contains(t, err.Error(), tt.wantErr)
				return
			}
			require.NoError(t, err)
			if tt.armed == nil {
				assert.Nil(t, s)
				return
			}
			got := map[string]int64{}
			for name, p := range s.points {
				got[name] = p.at
			}
			assert.Equal(t, tt.armed, got)
		})
	}
}

func TestHitExitsOnTheArmedHit(t *testing.T) {
	s, err := Parse("after-201-before-record=3")
	require.NoError(t, err)
	var exits []int
	s.exit = func(code int) { exits = append(exits, code) }
	for range 5 {
		s.Hit(After201BeforeRecord)
		s.Hit(AfterRequestingBeforeHTTP) // not armed
	}
	assert.Equal(t, []int{137}, exits, "once, on the third hit")

	var none *Set
	none.Hit(After201BeforeRecord) // a nil Set is a no-op
}
