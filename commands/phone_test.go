package commands

import (
	"errors"
	"math/rand/v2"
	"strconv"
	"testing"

	"github.com/nyaruka/phonenumbers"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
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
		// Valid to libphonenumber, 16 digits: not E.164 (found by FuzzPhone).
		{in: "+81 0066 0000 0000 20", reason: "15 digits E.164 allows"},
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
		{in: "+81 0066 0000 0000 20", reason: PhoneTooLong},
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

// TestPhoneClassifierMatchesClassifyPhone compares the fast classifier with ClassifyPhone on
// every region's example numbers of every type, written in several ways and mutated (a digit
// changed, dropped or added, a national prefix after the country code), and on random digits.
func TestPhoneClassifierMatchesClassifyPhone(t *testing.T) {
	t.Parallel()
	pc, err := NewPhoneClassifier()
	require.NoError(t, err)
	types := []phonenumbers.PhoneNumberType{phonenumbers.FIXED_LINE, phonenumbers.MOBILE, phonenumbers.TOLL_FREE,
		phonenumbers.PREMIUM_RATE, phonenumbers.SHARED_COST, phonenumbers.VOIP, phonenumbers.PERSONAL_NUMBER,
		phonenumbers.PAGER, phonenumbers.UAN, phonenumbers.VOICEMAIL}
	var numbers []*phonenumbers.PhoneNumber
	for region := range phonenumbers.GetSupportedRegions() {
		for _, typ := range types {
			if n := phonenumbers.GetExampleNumberForType(region, typ); n != nil {
				numbers = append(numbers, n)
			}
		}
	}
	for _, cc := range []int{800, 808, 870, 878, 881, 882, 883, 888, 979} {
		if n := phonenumbers.GetExampleNumberForNonGeoEntity(cc); n != nil {
			numbers = append(numbers, n)
		}
	}
	var inputs []string
	for _, n := range numbers {
		cc := strconv.Itoa(int(n.GetCountryCode()))
		nsn := phonenumbers.GetNationalSignificantNumber(n)
		for _, v := range []string{nsn, "0" + nsn, nsn[:len(nsn)-1], nsn + "5", nsn[:len(nsn)-1] + "0", nsn[:len(nsn)-1] + "9", "1" + nsn[1:]} {
			inputs = append(inputs, "+"+cc+v, "00"+cc+" "+v, "+"+cc+" "+v[:len(v)/2]+" "+v[len(v)/2:], "whatsapp:+"+cc+v)
		}
		inputs = append(inputs, phonenumbers.Format(n, phonenumbers.INTERNATIONAL), phonenumbers.Format(n, phonenumbers.NATIONAL))
	}
	rng := rand.New(rand.NewPCG(5, 7))
	for range 5000 {
		b := []byte{'+'}
		for range 7 + rng.IntN(12) {
			b = append(b, byte('0'+rng.IntN(10)))
		}
		inputs = append(inputs, string(b))
	}
	inputs = append(inputs, "+", "+1", "+1234567", "+0051987654321", "+ 51 987 654 321", "+999 123 456", "+44 7911 12345678901",
		"+393123456789", "+39 06 6982 1234", "+7 912 345 67 89", "+52 1 55 1234 5678", "+1 264 235 1234", "+262 692 12 34 56")
	fast := 0
	for _, in := range inputs {
		for _, region := range []string{"", "PE", "US", "IT"} {
			want := ClassifyPhone(in, region)
			if !assert.Equal(t, want, pc.Classify(in, region), "%q in %q", in, region) {
				return
			}
		}
		if s, _, _, done := preparePhone(in, ""); !done {
			if _, ok := pc.fast(s); ok {
				fast++
			}
		}
	}
	t.Logf("%d inputs, %d on the fast path", len(inputs), fast)
	assert.Greater(t, fast, len(inputs)/10, "the fast path is taken")
	for _, in := range []string{"+51987654321", "+14155552671", "0044 7911 123456"} {
		s, _, _, _ := preparePhone(in, "")
		_, ok := pc.fast(s)
		assert.True(t, ok, in)
	}
}

func BenchmarkClassifyPhone(b *testing.B) {
	pc, err := NewPhoneClassifier()
	require.NoError(b, err)
	inputs := []string{"+51987654321", "+14155552671", "+447911123456", "+5511987654321", "+919876543210", "0049 1512 3456789"}
	b.Run("ClassifyPhone", func(b *testing.B) {
		for i := 0; b.Loop(); i++ {
			ClassifyPhone(inputs[i%len(inputs)], "PE")
		}
	})
	b.Run("PhoneClassifier", func(b *testing.B) {
		for i := 0; b.Loop(); i++ {
			pc.Classify(inputs[i%len(inputs)], "PE")
		}
	})
}

// FuzzPhoneClassifier checks that PhoneClassifier answers exactly as ClassifyPhone for any
// text and default region.
func FuzzPhoneClassifier(f *testing.F) {
	for _, s := range []struct{ raw, region string }{
		{"+51987654321", ""}, {"0044 7911 123456", "GB"}, {"+39 06 6982 1234", ""}, {"+7 912 345 67 89", ""},
		{"+1 264 235 1234", "US"}, {"+44 7911 12345678901", ""}, {"+999 123 456", ""}, {"+800 1234 5678", ""},
		{"+52 1 55 1234 5678", "MX"}, {"+ 51 987", "PE"},
	} {
		f.Add(s.raw, s.region)
	}
	pc, err := NewPhoneClassifier()
	require.NoError(f, err)
	f.Fuzz(func(t *testing.T, raw, region string) {
		require.Equal(t, ClassifyPhone(raw, region), pc.Classify(raw, region), "%q in %q", raw, region)
	})
}
