package sender

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func validConfig() Config {
	return Config{AccountSID: "AC0123456789abcdef0123456789abcdef", AuthToken: "0123456789abcdef0123456789abcdef",
		From: "whatsapp:+14155238886", PublicBaseURL: "https://herald.example.com"}
}

func TestConfigValidate(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		mutate func(*Config)
		want   []string // substrings of the error; none: valid
	}{
		{"valid, real Twilio", func(*Config) {}, nil},
		{"valid, simulator with path and plain From", func(c *Config) {
			c.APIURL, c.From, c.Timeout = "http://127.0.0.1:8089/twilio", "+14155238886", time.Second
		}, nil},
		{"everything missing", func(c *Config) { *c = Config{} }, []string{
			"TWILIO_ACCOUNT_SID: required", "TWILIO_AUTH_TOKEN: required", "TWILIO_FROM: required", "PUBLIC_BASE_URL: required"}},
		{"SID without AC", func(c *Config) { c.AccountSID = "MG123" }, []string{"TWILIO_ACCOUNT_SID", "does not start with AC"}},
		{"SID with a dash (twilio-go refuses it locally)", func(c *Config) { c.AccountSID = "AC-test" }, []string{"TWILIO_ACCOUNT_SID", "letters and digits"}},
		{"token with symbols", func(c *Config) { c.AuthToken = "tok_en!" }, []string{"TWILIO_AUTH_TOKEN", "letters and digits"}},
		{"From not E.164", func(c *Config) { c.From = "whatsapp:14155238886" }, []string{"TWILIO_FROM"}},
		{"From with a leading zero", func(c *Config) { c.From = "+04155238886" }, []string{"TWILIO_FROM"}},
		{"API URL relative", func(c *Config) { c.APIURL = "127.0.0.1:8089" }, []string{"TWILIO_API_URL"}},
		{"API URL with a query", func(c *Config) { c.APIURL = "http://127.0.0.1:8089/?x=1" }, []string{"TWILIO_API_URL", "query"}},
		{"API URL ftp", func(c *Config) { c.APIURL = "ftp://example.com" }, []string{"TWILIO_API_URL"}},
		{"public URL not absolute", func(c *Config) { c.PublicBaseURL = "/herald" }, []string{"PUBLIC_BASE_URL"}},
		{"public URL with a query", func(c *Config) { c.PublicBaseURL = "https://h.example.com/?a=b" }, []string{"PUBLIC_BASE_URL", "query"}},
		{"public host with an underscore", func(c *Config) { c.PublicBaseURL = "https://my_host.example.com" }, []string{"PUBLIC_BASE_URL", "underscore"}},
		{"negative timeout", func(c *Config) { c.Timeout = -time.Second }, []string{"Timeout"}},
		{"several problems are all listed", func(c *Config) {
			c.AccountSID, c.From, c.APIURL = "XX", "nope", "::"
		}, []string{"TWILIO_ACCOUNT_SID", "TWILIO_FROM", "TWILIO_API_URL"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			c := validConfig()
			tc.mutate(&c)
			err := c.Validate()
			_, newErr := New(c)
			if tc.want == nil {
				assert.NoError(t, err)
				assert.NoError(t, newErr)
				return
			}
			require.Error(t, err)
			require.Error(t, newErr, "New validates too")
			for _, w := range tc.want {
				assert.Contains(t, err.Error(), w)
			}
			if c.AuthToken != "" {
				assert.NotContains(t, err.Error(), c.AuthToken, "the token is never echoed")
			}
		})
	}
}

func TestNewNormalizes(t *testing.T) {
	t.Parallel()
	c := validConfig()
	c.From = " +14155238886 "
	c.PublicBaseURL = "https://herald.example.com/base/"
	s, err := New(c)
	require.NoError(t, err)
	assert.Equal(t, "whatsapp:+14155238886", s.From())
	assert.Equal(t, DefaultTimeout, s.timeout)
	assert.Nil(t, s.base, "no TWILIO_API_URL: the SDK's own https://api.twilio.com")
	assert.Equal(t, "https://herald.example.com/base/webhooks/twilio/status?message_id="+msgID.String()+"&attempt=12"+CallbackRetryFragment,
		s.StatusCallbackURL(msgID, 12))
}
