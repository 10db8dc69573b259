package twiliosim

import (
	"net/http"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

const validContentSID = "HX0123456789abcdef0123456789abcdef"

func TestCreateValidation(t *testing.T) {
	t.Parallel()
	_, base := newSim(t)
	tests := []struct {
		name   string
		mutate func(url.Values)
		code   int
	}{
		{"To missing", func(f url.Values) { f.Del("To") }, 21604},
		{"To not E.164", func(f url.Values) { f.Set("To", "whatsapp:51987654321") }, 21211},
		{"To with a leading zero", func(f url.Values) { f.Set("To", "+051987654321") }, 21211},
		{"To on another channel", func(f url.Values) { f.Set("To", "messenger:+51987654321") }, 21211},
		{"From missing", func(f url.Values) { f.Del("From") }, 21603},
		{"From not E.164", func(f url.Values) { f.Set("From", "whatsapp:herald") }, 21212},
		{"From and To on different channels", func(f url.Values) { f.Set("From", "+14155238886") }, 21910},
		{"no Body, ContentSid or MediaUrl", func(f url.Values) { f.Del("Body") }, 21602},
		{"Body over 1600 characters", func(f url.Values) { f.Set("Body", strings.Repeat("ñ", 1601)) }, 21617},
		{"ContentSid malformed", func(f url.Values) { f.Del("Body"); f.Set("ContentSid", "HX123") }, 21655},
		{"ContentSid not HX", func(f url.Values) {
			f.Del("Body")
			f.Set("ContentSid", "MG0123456789abcdef0123456789abcdef")
		}, 21655},
		{"ContentVariables without ContentSid", func(f url.Values) { f.Set("ContentVariables", `{"1":"Ana"}`) }, 21654},
		{"ContentVariables not JSON", func(f url.Values) {
			f.Del("Body")
			f.Set("ContentSid", validContentSID)
			f.Set("ContentVariables", `{1:Ana}`)
		}, 21656},
		{"ContentVariables a JSON array", func(f url.Values) {
			f.Del("Body")
			f.Set("ContentSid", validContentSID)
			f.Set("ContentVariables", `["Ana"]`)
		}, 21656},
		{"ContentVariables with a number", func(f url.Values) {
			f.Del("Body")
			f.Set("ContentSid", validContentSID)
			f.Set("ContentVariables", `{"1":2}`)
		}, 21656},
		{"ContentVariables with an empty value", func(f url.Values) {
			f.Del("Body")
			f.Set("ContentSid", validContentSID)
			f.Set("ContentVariables", `{"1":""}`)
		}, 21656},
		{"MediaUrl relative", func(f url.Values) { f.Set("MediaUrl", "/cat.jpg") }, 21620},
		{"StatusCallback with an underscore host", func(f url.Values) {
			f.Set("StatusCallback", "https://my_host.example.com/webhooks/twilio/status")
		}, 21609},
		{"StatusCallback relative", func(f url.Values) { f.Set("StatusCallback", "/webhooks/twilio/status") }, 21609},
		// Twilio's magic numbers, with and without the whatsapp: prefix.
		{"magic To invalid", func(f url.Values) { f.Set("To", "whatsapp:+15005550001") }, 21211},
		{"magic To cannot route", func(f url.Values) { f.Set("To", "whatsapp:+15005550002") }, 21612},
		{"magic To no geo permission", func(f url.Values) { f.Set("To", "whatsapp:+15005550003") }, 21408},
		{"magic To opted out", func(f url.Values) { f.Set("To", "whatsapp:+15005550004") }, 21610},
		{"magic To not mobile", func(f url.Values) { f.Set("To", "whatsapp:+15005550009") }, 21614},
		{"magic To opted out, plain SMS address", func(f url.Values) {
			f.Set("To", "+15005550004")
			f.Set("From", "+15005550006")
		}, 21610},
		{"magic From invalid", func(f url.Values) { f.Set("From", "whatsapp:+15005550001") }, 21212},
		{"magic From not owned", func(f url.Values) { f.Set("From", "whatsapp:+15005550007") }, 21606},
		{"magic From queue full", func(f url.Values) { f.Set("From", "+15005550008"); f.Set("To", "+51987654321") }, 21611},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			form := textForm(testTo, "")
			tc.mutate(form)
			res := call(t, http.MethodPost, messagesURL(base), form)
			require.Equal(t, http.StatusBadRequest, res.Status, "%v", res.JSON)
			assert.Equal(t, float64(tc.code), res.JSON["code"])
			assert.Equal(t, float64(400), res.JSON["status"])
			assert.Equal(t, "https://www.twilio.com/docs/errors/"+strconv.Itoa(tc.code), res.JSON["more_info"])
			assert.NotEmpty(t, res.JSON["message"])
			assert.Len(t, res.JSON, 4, "Twilio's error body: code, message, more_info, status")
		})
	}
}

func TestCreateValidationStoresNothing(t *testing.T) {
	t.Parallel()
	sim, base := newSim(t)
	form := textForm("whatsapp:+15005550004", "")
	res := call(t, http.MethodPost, messagesURL(base), form)
	require.Equal(t, http.StatusBadRequest, res.Status)
	assert.Empty(t, sim.Messages())
	reqs := sim.Requests()
	require.Len(t, reqs, 1)
	assert.True(t, reqs[0].IsCreate())
	assert.Equal(t, 21610, reqs[0].ErrorCode)
	assert.Equal(t, http.StatusBadRequest, reqs[0].Status)
	assert.Equal(t, 1, sim.CreatesFor("+15005550004"), "a refused create still counts as a create")
}

func TestValidCreatesAccepted(t *testing.T) {
	t.Parallel()
	_, base := newSim(t)
	tests := []struct {
		name string
		form url.Values
	}{
		{"free-form text", textForm(testTo, "")},
		{"template", url.Values{"To": {testTo}, "From": {testSender}, "ContentSid": {validContentSID},
			"ContentVariables": {`{"1":"Ana","2":"12:00"}`}}},
		{"template, upper-case hex", url.Values{"To": {testTo}, "From": {testSender},
			"ContentSid": {"HX0123456789ABCDEF0123456789ABCDEF"}}},
		{"media only", url.Values{"To": {testTo}, "From": {testSender}, "MediaUrl": {"https://example.com/a.jpg"}}},
		{"body of exactly 1600 characters", url.Values{"To": {testTo}, "From": {testSender}, "Body": {strings.Repeat("é", 1600)}}},
		{"plain SMS addresses", url.Values{"To": {"+51987654321"}, "From": {"+15005550006"}, "Body": {"x"}}},
		{"magic From valid", url.Values{"To": {testTo}, "From": {"whatsapp:+15005550006"}, "Body": {"x"}}},
		{"messaging service without From", url.Values{"To": {testTo},
			"MessagingServiceSid": {"MG0123456789abcdef0123456789abcdef"}, "Body": {"x"}}},
		{"unknown parameters are ignored", url.Values{"To": {testTo}, "From": {testSender}, "Body": {"x"},
			"ValidityPeriod": {"600"}, "Attempt": {"2"}}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			res := call(t, http.MethodPost, messagesURL(base), tc.form)
			assert.Equal(t, http.StatusCreated, res.Status, "%v", res.JSON)
		})
	}
}

func TestAuthentication(t *testing.T) {
	t.Parallel()
	sim, base := newSim(t)
	sid := create(t, base, textForm(testTo, ""))
	other := "/2010-04-01/Accounts/ACother0123456789abcdef0123456789/Messages.json"
	tests := []struct {
		name   string
		method string
		url    string
		creds  []string
		status int
		code   int
	}{
		{"create without credentials", http.MethodPost, messagesURL(base), []string{""}, 401, 20003},
		{"create with a wrong token", http.MethodPost, messagesURL(base), []string{testSID, "wrong"}, 401, 20003},
		{"create with a wrong account", http.MethodPost, messagesURL(base), []string{"ACwrong", testToken}, 401, 20003},
		{"fetch with a wrong token", http.MethodGet, messageURL(base, sid), []string{testSID, "wrong"}, 401, 20003},
		{"list without credentials", http.MethodGet, messagesURL(base), []string{""}, 401, 20003},
		{"create in another account's path", http.MethodPost, base + other, nil, 404, 20404},
		{"list in another account's path", http.MethodGet, base + other, nil, 404, 20404},
		{"fetch an unknown SID", http.MethodGet, messageURL(base, "SM00000000000000000000000000000000"), nil, 404, 20404},
		{"fetch without .json", http.MethodGet, strings.TrimSuffix(messageURL(base, sid), ".json"), nil, 404, 20404},
		{"unknown resource", http.MethodGet, base + "/2010-04-01/Accounts/" + testSID + "/Calls.json", nil, 404, 20404},
		{"update a message (not simulated)", http.MethodPost, messageURL(base, sid), nil, 405, 20004},
		{"delete the list", http.MethodDelete, messagesURL(base), nil, 405, 20004},
		{"media of a message (not simulated)", http.MethodGet, strings.TrimSuffix(messageURL(base, sid), ".json") + "/Media.json", nil, 404, 20404},
		{"unknown path with a wrong token", http.MethodGet, base + "/2010-04-01/Accounts/" + testSID + "/Calls.json",
			[]string{testSID, "wrong"}, 401, 20003},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			var form url.Values
			if tc.method == http.MethodPost {
				form = textForm(testTo, "")
			}
			res := call(t, tc.method, tc.url, form, tc.creds...)
			require.Equal(t, tc.status, res.Status, "%v", res.JSON)
			assert.Equal(t, tc.code, res.code())
			assert.Equal(t, float64(tc.status), res.JSON["status"])
			if tc.status == 401 {
				assert.NotEmpty(t, res.Header.Get("WWW-Authenticate"))
			}
		})
	}
	t.Run("nothing was created by a refused request", func(t *testing.T) {
		t.Parallel()
		for _, m := range sim.Messages() {
			assert.Equal(t, sid, m.SID)
		}
	})
}

var (
	sidRe  = regexp.MustCompile(`^SM[0-9a-f]{32}$`)
	mmRe   = regexp.MustCompile(`^MM[0-9a-f]{32}$`)
	dateRe = regexp.MustCompile(`^[A-Z][a-z]{2}, \d{2} [A-Z][a-z]{2} \d{4} \d{2}:\d{2}:\d{2} \+0000$`)
)

func TestCreateResponseIsTwilioShaped(t *testing.T) {
	t.Parallel()
	clock := time.Date(2026, 5, 1, 10, 30, 0, 0, time.UTC)
	_, base := newSim(t, func(c *Config) {
		c.Now = func() time.Time { return clock }
		c.CallbackLatency = time.Hour // stays queued for the whole test
	})
	res := call(t, http.MethodPost, messagesURL(base), url.Values{"To": {testTo}, "From": {testSender},
		"Body": {"Hola Ana"}, "StatusCallback": {"https://herald.example.com/webhooks/twilio/status?message_id=m1&attempt=1"}})
	require.Equal(t, http.StatusCreated, res.Status)
	j := res.JSON
	sid := j["sid"].(string)
	assert.Regexp(t, sidRe, sid)
	assert.Equal(t, testSID, j["account_sid"])
	assert.Equal(t, testSender, j["from"])
	assert.Equal(t, testTo, j["to"])
	assert.Equal(t, "Hola Ana", j["body"])
	assert.Equal(t, "queued", j["status"])
	assert.Equal(t, "outbound-api", j["direction"])
	assert.Equal(t, "1", j["num_segments"])
	assert.Equal(t, "0", j["num_media"])
	assert.Equal(t, "2010-04-01", j["api_version"])
	assert.Equal(t, "Fri, 01 May 2026 10:30:00 +0000", j["date_created"])
	assert.Regexp(t, dateRe, j["date_updated"])
	for _, k := range []string{"price", "error_code", "error_message", "date_sent", "messaging_service_sid"} {
		v, present := j[k]
		assert.True(t, present, k)
		assert.Nil(t, v, k)
	}
	assert.Equal(t, "/2010-04-01/Accounts/"+testSID+"/Messages/"+sid+".json", j["uri"])
	assert.Contains(t, j["subresource_uris"], "media")

	fetched := call(t, http.MethodGet, messageURL(base, sid), nil)
	require.Equal(t, http.StatusOK, fetched.Status)
	assert.Equal(t, j, fetched.JSON, "fetch answers the same resource")

	media := call(t, http.MethodPost, messagesURL(base), url.Values{"To": {testTo}, "From": {testSender},
		"MediaUrl": {"https://example.com/a.jpg", "https://example.com/b.pdf"}})
	require.Equal(t, http.StatusCreated, media.Status)
	assert.Regexp(t, mmRe, media.JSON["sid"], "media messages are MM…")
	assert.Equal(t, "2", media.JSON["num_media"])

	svc := call(t, http.MethodPost, messagesURL(base), url.Values{"To": {testTo}, "Body": {"x"},
		"MessagingServiceSid": {"MG0123456789abcdef0123456789abcdef"}})
	require.Equal(t, http.StatusCreated, svc.Status)
	assert.Equal(t, "accepted", svc.JSON["status"], "a Messaging Service send starts accepted")
	assert.Equal(t, testSender, svc.JSON["from"], "the service picked the configured sender")
	assert.Equal(t, "MG0123456789abcdef0123456789abcdef", svc.JSON["messaging_service_sid"])
}

func TestTwilioTime(t *testing.T) {
	t.Parallel()
	lima := time.FixedZone("PET", -5*3600)
	assert.Equal(t, "Thu, 24 Aug 2023 05:01:45 +0000", TwilioTime(time.Date(2023, 8, 24, 0, 1, 45, 0, lima)))
}
