package commands

import (
	"errors"
	"regexp"
	"testing"

	"github.com/stretchr/testify/require"
)

var e164 = regexp.MustCompile(`^\+[1-9][0-9]{6,14}$`)

// FuzzPhone checks, for any text and default region:
//   - NormalizePhone never panics, refuses with a *PhoneError, and what it accepts is E.164
//     that normalizes to itself in every region (idempotent);
//   - ClassifyPhone either accepts (E.164, no reason) or refuses with one of the reason codes
//     and a sentence, never both; what it accepts classifies to itself again, with the same
//     region and warning; when both functions accept, they agree.
func FuzzPhone(f *testing.F) {
	for _, s := range []struct{ raw, region string }{
		{"+51 987 654 321", ""},
		{"whatsapp:+14155550123", ""},
		{"tel:+52 1 55 1234 5678", ""},
		{"(415) 555-0123", "US"},
		{"987654321", "pe"},
		{"0044 20 7946 0958", "GB"},
		{"+52 1 55 1234 5678", "MX"},
		{"1-800-FLOWERS", "US"},
		{"+51 1+2", ""},
		{"+1 555 555 5555", ""},
		{"00", "ZZ"},
		{"+", "001"},
		{"\u00a0+44\u00a07946\u00a00958", "gb"},
		{"+800 1234 5678", ""},
		{"+882 1234 5678", ""},
		{"12", "PE"},
		{"WHATSAPP:+14155550123", ""},
	} {
		f.Add(s.raw, s.region)
	}
	reasons := map[string]bool{PhoneMissing: true, PhoneUnparseable: true, PhoneInvalidForRegion: true, PhoneTooShort: true, PhoneTooLong: true}
	f.Fuzz(func(t *testing.T, raw, region string) {
		n, err := NormalizePhone(raw, region)
		if err != nil {
			var pe *PhoneError
			require.True(t, errors.As(err, &pe), "error %v is not a *PhoneError", err)
			require.NotEmpty(t, pe.Reason)
		} else {
			require.Regexp(t, e164, n)
			for _, r := range []string{"", region, "US", "PE"} {
				again, err := NormalizePhone(n, r)
				require.NoError(t, err, "%q normalized to %q, which is refused in region %q", raw, n, r)
				require.Equal(t, n, again, "not idempotent in region %q", r)
			}
		}

		c := ClassifyPhone(raw, region)
		if c.Reason != "" {
			require.True(t, reasons[c.Reason], "unknown reason %q", c.Reason)
			require.NotEmpty(t, c.Detail)
			require.Equal(t, PhoneCheck{Reason: c.Reason, Detail: c.Detail}, c, "a refused number carries nothing else")
			return
		}
		require.Regexp(t, e164, c.E164)
		require.Contains(t, []string{"", PhoneNotMobile}, c.Warning)
		if c.Region != "" {
			require.Regexp(t, `^[A-Z]{2}$`, c.Region)
		}
		again := ClassifyPhone(c.E164, "")
		require.Equal(t, c, again, "%q classified as %q, which classifies differently", raw, c.E164)
		if err == nil {
			require.Equal(t, n, c.E164, "NormalizePhone and ClassifyPhone disagree on %q", raw)
		}
	})
}
