package ingest

import (
	"math/rand/v2"
	"testing"

	"github.com/stretchr/testify/assert"

	"herald/commands"
)

// TestPlainSlugIsSlug checks that every topic plainSlug accepts is its own slug.
func TestPlainSlugIsSlug(t *testing.T) {
	t.Parallel()
	alphabet := "abz09-A_ é"
	rng := rand.New(rand.NewPCG(1, 9))
	plain := 0
	for range 20000 {
		b := make([]byte, 0, 70)
		for range 1 + rng.IntN(68) {
			b = append(b, alphabet[rng.IntN(len(alphabet))])
		}
		s := string(b)
		if rng.IntN(2) == 0 { // mostly plain: lower case and digits with some dashes
			b = b[:0]
			for range 1 + rng.IntN(68) {
				b = append(b, "abz09-"[rng.IntN(6)])
			}
			s = string(b)
		}
		if plainSlug(s) {
			plain++
			if !assert.Equal(t, commands.Slug(s), s) {
				return
			}
		}
	}
	assert.Greater(t, plain, 1000)
	for _, s := range []string{"deals", "price-drop", "a1-b2"} {
		assert.True(t, plainSlug(s), s)
	}
	for _, s := range []string{"", "-a", "a-", "a--b", "Deals", "a_b", "ofertas-é"} {
		assert.False(t, plainSlug(s), s)
	}
}
