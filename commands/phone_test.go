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

func TestClassifyPhone(t *testing.T) {
	t.Parallel()
	tests := []struct {
		in, region, e164, reason, warning, country string
	}{
		{in: "+51 987 654 321", e164: "+51987654321", country: "PE"},
		{in: "whatsapp:+14155552671", e164: "+14155552671", country: "US"},
		{in: "(415) 555-2671", region: "US", e164: "+14155552671", country: "US"},
		{in: "0044 20 7946 0958", e164: "+442079460958", warning: PhoneNotMobile, country: "GB"},
		{in: "tel:+52 1 55 1234 5678", e164: "+525512345678", country: "MX"},
		{in: "", reason: PhoneMissing},
		{in: "  ", reason: PhoneMissing},
		{in: "hello", region: "PE", reason: PhoneUnparseable},
		{in: "1-800-FLOWERS", region: "US", reason: PhoneUnparseable},
		{in: "987654321", reason: PhoneUnparseable},
		{in: "+51 98", reason: PhoneTooShort},
		{in: "12", region: "PE", reason: PhoneTooShort},
		{in: "+51 987 654 327 999 999 999", reason: PhoneTooLong},
		{in: "+1 555 555 5555", reason: PhoneInvalidForRegion},
		{in: "+51 1+2", reason: PhoneUnparseable},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got := ClassifyPhone(tt.in, tt.region)
			assert.Equal(t, tt.reason, got.Reason, got.Detail)
			assert.Equal(t, tt.e164, got.E164)
			assert.Equal(t, tt.warning, got.Warning)
			assert.Equal(t, tt.country, got.Region)
			if tt.reason == "" {
				n, err := NormalizePhone(tt.in, tt.region)
				if err == nil {
					assert.Equal(t, n, got.E164, "ClassifyPhone agrees with NormalizePhone")
				}
			}
		})
	}
}
