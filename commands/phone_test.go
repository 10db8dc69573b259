package commands

import (
	"errors"
	"testing"

	"github.com/stretchr/testify/assert"
)

func TestNormalizePhone(t *testing.T) {
	t.Parallel()
	tests := []struct {
		in, region, want, reason string
	}{
		{in: "+51 987 654 321", want: "+51987654321"},
		{in: "whatsapp:+14155550123", want: "+14155550123"},
		{in: "(415) 555-0123", region: "US", want: "+14155550123"},
		{in: "987654321", region: "pe", want: "+51987654321"},
		{in: "0044 20 7946 0958", want: "+442079460958"},
		{in: "+52 1 55 1234 5678", want: "+525512345678"},
		{in: "  +51-987-654-321 ", want: "+51987654321"},
		{in: "", reason: "is empty"},
		{in: "987654321", reason: "no default region"},
		{in: "+1 555", reason: "not a valid number"},
		{in: "hello", region: "PE", reason: "not a phone number"},
		{in: "+51 987 654 321 999 999 999 999 999 999 999 999 999 999 999 999 999 999 999", reason: "too long"},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, err := NormalizePhone(tt.in, tt.region)
			if tt.reason != "" {
				var pe *PhoneError
				if assert.True(t, errors.As(err, &pe), "error %v", err) {
					assert.Contains(t, pe.Reason, tt.reason)
				}
				return
			}
			assert.NoError(t, err)
			assert.Equal(t, tt.want, got)
		})
	}
}

func TestPhoneCountry(t *testing.T) {
	t.Parallel()
	assert.Equal(t, "PE", PhoneCountry("+51987654321"))
	assert.Equal(t, "US", PhoneCountry("+14155550123"))
	assert.Equal(t, "", PhoneCountry("+80012345678"))
}
