package sender

import (
	"strconv"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
)

func TestCodeTableIsComplete(t *testing.T) {
	t.Parallel()
	for _, code := range KnownCodes() {
		info := LookupCode(code)
		assert.True(t, info.Known, "%d", code)
		assert.Equal(t, code, info.Code)
		assert.NotEmpty(t, info.Meaning, "%d meaning", code)
		assert.NotEmpty(t, info.Remedy, "%d remedy", code)
		assert.Contains(t, []Kind{KindPermanent, KindRetryable, KindRateLimited}, info.Kind, "%d: a code is never ambiguous", code)
		assert.Equal(t, info.Kind != KindPermanent, info.Retryable, "%d", code)
		assert.Equal(t, "https://www.twilio.com/docs/errors/"+strconv.Itoa(code), info.MoreInfo)
		if info.RetryLimit > 0 {
			assert.True(t, info.Retryable, "%d: a retry limit on a permanent code", code)
		}
		if info.OptOut || info.NeedsTemplate || info.SenderIssue {
			assert.Equal(t, KindPermanent, info.Kind, "%d", code)
		}
	}
}

func TestCodeDecisions(t *testing.T) {
	t.Parallel()
	// The issue's and reference §4.4's list of non-retryable codes.
	for _, code := range []int{21211, 21408, 21606, 21610, 21612, 21614, 63003, 63016, 63024, 63032, 21602, 21617, 21656, 21212, 30004, 30005, 30006, 30007, 63049} {
		assert.Equal(t, KindPermanent, LookupCode(code).Kind, "%d", code)
		assert.False(t, LookupCode(code).Retryable, "%d", code)
	}
	for _, code := range []int{20429, 63017, 63018, 63038} {
		assert.Equal(t, KindRateLimited, LookupCode(code).Kind, "%d", code)
	}
	for _, code := range []int{21611, 30001, 30003, 30008, 30036} {
		assert.Equal(t, KindRetryable, LookupCode(code).Kind, "%d", code)
	}
	assert.True(t, LookupCode(21610).OptOut)
	assert.True(t, LookupCode(63016).NeedsTemplate)
	assert.True(t, LookupCode(21606).SenderIssue)
	assert.Equal(t, 1, LookupCode(30008).RetryLimit)

	unknown := LookupCode(12345)
	assert.False(t, unknown.Known)
	assert.Equal(t, KindPermanent, unknown.Kind)
	assert.True(t, strings.Contains(unknown.Remedy, "https://www.twilio.com/docs/errors/12345"))
}
