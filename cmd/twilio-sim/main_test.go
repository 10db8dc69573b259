package main

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	twilio "herald/handlers/twilio"
	"herald/handlers/twilio/twiliosim"
)

func env(m map[string]string) func(string) string { return func(k string) string { return m[k] } }

func TestLoadConfig(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name  string
		env   map[string]string
		args  []string
		check func(t *testing.T, c twiliosim.Config, addr string)
		want  []string // error substrings; nil: valid
	}{
		{"defaults", nil, nil, func(t *testing.T, c twiliosim.Config, addr string) {
			assert.Equal(t, "127.0.0.1:8089", addr)
			assert.Equal(t, twiliosim.DefaultAccountSID, c.AccountSID)
			assert.Equal(t, twiliosim.DefaultAuthToken, c.AuthToken)
			assert.Equal(t, 50*time.Millisecond, c.CallbackLatency)
			assert.Equal(t, 1.0, *c.ReadRate)
			assert.NotNil(t, c.Logger)
		}, nil},
		{"environment", map[string]string{"TWILIO_ACCOUNT_SID": "ACenv", "TWILIO_AUTH_TOKEN": "envtoken",
			"SIM_ADDR": "0.0.0.0:9000", "PUBLIC_BASE_URL": "http://herald:8080", "SIM_FAIL_RATE": "0.2",
			"SIM_CALLBACK_LATENCY": "0", "SIM_SHUFFLE_CALLBACKS": "true", "SIM_FAILED_CODES": "63016, 63024",
			"SIM_SEED": "9", "SIM_LOG_FORMAT": "console", "TWILIO_FROM": "+14155238886"}, nil,
			func(t *testing.T, c twiliosim.Config, addr string) {
				assert.Equal(t, "0.0.0.0:9000", addr)
				assert.Equal(t, "ACenv", c.AccountSID)
				assert.Equal(t, "envtoken", c.AuthToken)
				assert.Equal(t, "http://herald:8080", c.WebhookBaseURL)
				assert.Equal(t, 0.2, c.FailRate)
				assert.Negative(t, c.CallbackLatency, "an explicit 0 means no delay")
				assert.True(t, c.ShuffleCallbacks)
				assert.Equal(t, []int{63016, 63024}, c.FailedCodes)
				assert.Equal(t, int64(9), c.Seed)
				assert.Equal(t, "+14155238886", c.Sender)
			}, nil},
		{"flags override the environment", map[string]string{"SIM_FAIL_RATE": "0.2", "SIM_ADDR": "0.0.0.0:9000"},
			[]string{"-fail-rate", "0.5", "-addr", "127.0.0.1:0", "-stall-rate=1", "-stall-duration", "2s", "-read-rate", "0"},
			func(t *testing.T, c twiliosim.Config, addr string) {
				assert.Equal(t, 0.5, c.FailRate)
				assert.Equal(t, "127.0.0.1:0", addr)
				assert.Equal(t, 1.0, c.AcceptThenStallRate)
				assert.Equal(t, 2*time.Second, c.StallDuration)
				assert.Equal(t, 0.0, *c.ReadRate)
			}, nil},
		{"every problem at once", map[string]string{"SIM_FAIL_RATE": "lots", "SIM_CALLBACK_LATENCY": "soon",
			"TWILIO_ACCOUNT_SID": "AC-1", "SIM_LOG_FORMAT": "xml", "SIM_RATE_LIMIT_429": "3"}, nil, nil,
			[]string{"SIM_FAIL_RATE", "SIM_CALLBACK_LATENCY", "AccountSID", "SIM_LOG_FORMAT", "RateLimit429"}},
		{"unknown flag", nil, []string{"-nope"}, nil, []string{"nope"}},
		{"stray argument", nil, []string{"extra"}, nil, []string{"unexpected"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			c, addr, err := loadConfig(tc.args, env(tc.env), io.Discard)
			if tc.want != nil {
				require.Error(t, err)
				for _, w := range tc.want {
					assert.Contains(t, err.Error(), w)
				}
				return
			}
			require.NoError(t, err)
			tc.check(t, c, addr)
		})
	}
}

// syncBuffer is a log sink shared by the simulator's goroutines and the test.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// TestServeAndInbound runs the simulator as the binary would, injects an inbound message
// with the inbound subcommand, and stops it as SIGTERM would (ctx cancelled).
func TestServeAndInbound(t *testing.T) {
	t.Parallel()
	var got struct {
		sync.Mutex
		valid bool
		form  string
	}
	verifier := twilio.NewVerifier("simtoken")
	herald := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		raw, _ := io.ReadAll(r.Body)
		got.Lock()
		got.valid = verifier.Verify("http://"+r.Host+r.URL.RequestURI(), raw, r.Header.Get(twilio.SignatureHeader))
		got.form = string(raw)
		got.Unlock()
		w.Header().Set("Content-Type", "application/xml")
		_, _ = io.WriteString(w, "<Response/>")
	}))
	defer herald.Close()

	logs := &syncBuffer{}
	cfg, addr, err := loadConfig([]string{"-addr", "127.0.0.1:0", "-public-base-url", herald.URL}, env(nil), logs)
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	ready := make(chan string, 1)
	done := make(chan error, 1)
	go func() { done <- serve(ctx, cfg, addr, func(u string) { ready <- u }) }()
	var base string
	select {
	case base = <-ready:
	case err := <-done:
		t.Fatalf("serve ended: %v", err)
	}

	var out bytes.Buffer
	err = run(context.Background(), []string{"inbound", "--sim", base, "--from", "+51987654321", "--body", "STOP",
		"--profile-name", "Ana"}, env(nil), &out, io.Discard)
	require.NoError(t, err)
	assert.Contains(t, out.String(), "Herald answered 200")
	assert.Contains(t, out.String(), "<Response/>")
	got.Lock()
	assert.True(t, got.valid, "signed for PUBLIC_BASE_URL + /webhooks/twilio/inbound")
	assert.Contains(t, got.form, "Body=STOP")
	assert.Contains(t, got.form, "ProfileName=Ana")
	got.Unlock()

	cancel()
	require.NoError(t, <-done, "a signal ends serve cleanly")
	assert.Contains(t, logs.String(), `"TWILIO_API_URL":"`+base+`"`)
	assert.Contains(t, logs.String(), "shutting down")
}

func TestInboundCommandErrors(t *testing.T) {
	t.Parallel()
	down := httptest.NewServer(http.NotFoundHandler())
	down.Close()
	tests := []struct {
		name string
		args []string
		want string
	}{
		{"no --from", []string{"inbound", "--body", "hi"}, "--from"},
		{"simulator not running", []string{"inbound", "--sim", down.URL, "--from", "+51987654321"}, "is the simulator running"},
		{"unknown command", []string{"explode"}, "unknown command"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			err := run(context.Background(), tc.args, env(nil), io.Discard, io.Discard)
			require.Error(t, err)
			assert.Contains(t, err.Error(), tc.want)
		})
	}
	t.Run("Herald refuses", func(t *testing.T) {
		t.Parallel()
		refusing := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
			http.Error(w, "forbidden", http.StatusForbidden)
		}))
		defer refusing.Close()
		sim, err := twiliosim.New(twiliosim.Config{WebhookBaseURL: refusing.URL})
		require.NoError(t, err)
		defer sim.Close()
		base, err := sim.Start(context.Background(), "127.0.0.1:0")
		require.NoError(t, err)
		var out bytes.Buffer
		err = run(context.Background(), []string{"inbound", "--sim", base, "--from", "+51987654321", "--body", "x"},
			env(nil), &out, io.Discard)
		require.Error(t, err)
		assert.Contains(t, err.Error(), "403")
		assert.True(t, strings.Contains(out.String(), "forbidden"), out.String())
	})
}
