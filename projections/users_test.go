package projections

import (
	"testing"

	"github.com/stretchr/testify/assert"
)

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
