package projections

import (
	"fmt"
	"github.com/nyaruka/phonenumbers"
	"math/rand/v2"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestEachRound: a key's items stay in page order, one per statement; items of different keys
// share a statement whatever lies between them; a round's kinds go in ascending order.
func TestEachRound(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name  string
		kinds []int
		keys  []string
		want  [][]int
	}{
		{name: "empty"},
		{name: "one run", kinds: []int{1, 1, 1}, keys: []string{"a", "b", "c"}, want: [][]int{{0, 1, 2}}},
		{
			// created, message, consent per sender, as inbound webhooks append them.
			name:  "interleaved senders",
			kinds: []int{0, 4, 2, 0, 4, 4, 0, 4, 3, 2},
			keys:  []string{"a", "a", "a", "b", "b", "c", "d", "d", "d", "d"},
			want:  [][]int{{0, 3, 6}, {5}, {1, 4, 7}, {2}, {8}, {9}},
		},
		{
			name:  "a repeated key waits for the next round",
			kinds: []int{1, 1, 1, 1},
			keys:  []string{"a", "a", "b", "a"},
			want:  [][]int{{0, 2}, {1}, {3}},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var got [][]int
			require.NoError(t, eachRound(tc.kinds, tc.keys, func(idx []int) error {
				got = append(got, append([]int(nil), idx...))
				return nil
			}))
			assert.Equal(t, tc.want, got)
		})
	}
}

func TestCountry(t *testing.T) {
	for _, tc := range []struct{ phone, want string }{
		{"+51987654321", "PE"},
		{"+14155550100", "US"},
		{"+16045550100", "CA"},
		{"+442079460000", "GB"},
		{"+5491123456789", "AR"},
		{"+80012345678", ""},  // international freephone: no region
		{"+999123456789", ""}, // unassigned calling code
		{"not a phone", ""},
		{"", ""},
	} {
		assert.Equal(t, tc.want, Country(tc.phone), tc.phone)
	}
}

// TestCountryFastPathAgreesWithParsing: the calling-code shortcut gives what libphonenumber's
// full parse gives, for normalized numbers under every calling code.
func TestCountryFastPathAgreesWithParsing(t *testing.T) {
	t.Parallel()
	rng := rand.New(rand.NewPCG(1, 2))
	checked := 0
	for cc := 1; cc < 1000; cc++ {
		for range 60 {
			raw := fmt.Sprintf("+%d%d", cc, 1_000_000+rng.IntN(8_999_999_999))
			if len(raw) > 16 {
				raw = raw[:16]
			}
			// users.phone holds numbers as NormalizePhone writes them: parsed, then E.164.
			n, err := phonenumbers.Parse(raw, "")
			if err != nil || !phonenumbers.IsValidNumber(n) {
				continue
			}
			phone := phonenumbers.Format(n, phonenumbers.E164)
			assert.Equal(t, slowCountry(phone), Country(phone), phone)
			checked++
		}
	}
	assert.Greater(t, checked, 1_000)
}

func BenchmarkCountry(b *testing.B) {
	phones := []string{"+51987654321", "+5491123456789", "+442079460000", "+14155550100", "+919876543210"}
	for i := 0; i < b.N; i++ {
		_ = Country(phones[i%len(phones)])
	}
}
