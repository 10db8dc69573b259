package sender

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	twclient "github.com/twilio/twilio-go/client"
)

var msgID = uuid.MustParse("0b7e0c52-3f5e-4a8e-9d0c-2f4b7a1c9e01")

func textMessage() Message {
	return Message{MessageID: msgID, Attempt: 1, To: "+51987654321", Body: "Hola Ana"}
}

func TestSendRequestForm(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name     string
		mutate   func(*Config)
		msg      Message
		wantForm url.Values
		wantCB   string
	}{
		{
			name: "free-form body",
			msg:  Message{MessageID: msgID, Attempt: 1, To: "+51987654321", Body: "Hola Ana"},
			wantForm: url.Values{
				"To": {"whatsapp:+51987654321"}, "From": {testFrom}, "Body": {"Hola Ana"},
				"StatusCallback": {"https://herald.example.com/webhooks/twilio/status?message_id=" + msgID.String() + "&attempt=1" + CallbackRetryFragment},
			},
		},
		{
			name: "template with variables, To already prefixed, plain From, base URL with path",
			mutate: func(c *Config) {
				c.From = "+15005550006"
				c.PublicBaseURL = "https://herald.example.com/edge/"
			},
			msg: Message{MessageID: msgID, Attempt: 3, To: "whatsapp:+51987654321", ContentSID: "HX0123456789abcdef0123456789abcdef",
				ContentVariables: map[string]string{"2": "12:00", "1": "Ana \"A\""}},
			wantForm: url.Values{
				"To": {"whatsapp:+51987654321"}, "From": {"whatsapp:+15005550006"},
				"ContentSid":       {"HX0123456789abcdef0123456789abcdef"},
				"ContentVariables": {`{"1":"Ana \"A\"","2":"12:00"}`},
				"StatusCallback":   {"https://herald.example.com/edge/webhooks/twilio/status?message_id=" + msgID.String() + "&attempt=3" + CallbackRetryFragment},
			},
		},
		{
			name: "template without variables",
			msg:  Message{MessageID: msgID, Attempt: 2, To: "+51987654321", ContentSID: "HXabc"},
			wantForm: url.Values{
				"To": {"whatsapp:+51987654321"}, "From": {testFrom}, "ContentSid": {"HXabc"},
				"StatusCallback": {"https://herald.example.com/webhooks/twilio/status?message_id=" + msgID.String() + "&attempt=2" + CallbackRetryFragment},
			},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			f := newFake(t, nil)
			var mutate []func(*Config)
			if tc.mutate != nil {
				mutate = append(mutate, tc.mutate)
			}
			s := f.sender(t, mutate...)

			acc, err := s.Send(context.Background(), tc.msg)
			require.NoError(t, err)
			assert.Regexp(t, `^SM[0-9a-f]{32}$`, acc.SID)
			assert.Equal(t, "queued", acc.Status)

			reqs := f.requests()
			require.Len(t, reqs, 1)
			r := reqs[0]
			assert.Equal(t, http.MethodPost, r.Method)
			assert.Equal(t, "/2010-04-01/Accounts/"+testSID+"/Messages.json", r.Path)
			assert.True(t, r.HasAuth, "basic auth")
			assert.Equal(t, testSID, r.User)
			assert.Equal(t, testToken, r.Pass)
			assert.Contains(t, r.UserAgent, "twilio-go/")
			assert.Equal(t, tc.wantForm, r.Form)

			cb, err := url.Parse(r.Form.Get("StatusCallback"))
			require.NoError(t, err)
			assert.True(t, strings.HasSuffix(cb.Path, StatusPath))
			assert.Equal(t, msgID.String(), cb.Query().Get("message_id"))
			assert.Equal(t, fmt.Sprint(tc.msg.Attempt), cb.Query().Get("attempt"))
			assert.Equal(t, r.Form.Get("StatusCallback"), s.StatusCallbackURL(tc.msg.MessageID, tc.msg.Attempt))
		})
	}
}

func TestSendClassifiesFailures(t *testing.T) {
	t.Parallel()
	now := time.Date(2026, 11, 27, 13, 0, 0, 0, time.UTC)
	tests := []struct {
		name       string
		create     func(f *fakeTwilio) http.HandlerFunc
		timeout    time.Duration
		kind       Kind
		code       int
		httpStatus int
		retryAfter time.Duration
		errIs      error
		check      func(t *testing.T, se *SendError)
	}{
		{name: "429 20429 with Retry-After seconds",
			create: func(*fakeTwilio) http.HandlerFunc {
				return answerError(429, 20429, "Too Many Requests", "Retry-After", "7")
			},
			kind: KindRateLimited, code: 20429, httpStatus: 429, retryAfter: 7 * time.Second},
		{name: "429 with Retry-After HTTP date",
			create: func(*fakeTwilio) http.HandlerFunc {
				return answerError(429, 20429, "Too Many Requests", "Retry-After", "Fri, 27 Nov 2026 13:01:30 GMT")
			},
			kind: KindRateLimited, code: 20429, httpStatus: 429, retryAfter: 90 * time.Second},
		{name: "429 without a Twilio body or Retry-After",
			create: func(*fakeTwilio) http.HandlerFunc { return answerRaw(429, "text/plain", "slow down") },
			kind:   KindRateLimited, httpStatus: 429},
		{name: "sync 63018 is a rate limit",
			create: func(*fakeTwilio) http.HandlerFunc { return answerError(400, 63018, "Rate limit exceeded for Channel") },
			kind:   KindRateLimited, code: 63018, httpStatus: 400},
		{name: "21610 opted out",
			create: func(*fakeTwilio) http.HandlerFunc {
				return answerError(400, 21610, "Attempt to send to unsubscribed recipient")
			},
			kind: KindPermanent, code: 21610, httpStatus: 400,
			check: func(t *testing.T, se *SendError) {
				assert.True(t, se.Info().OptOut)
				var te *twclient.TwilioRestError
				require.ErrorAs(t, se, &te, "the SDK's error is wrapped")
				assert.Equal(t, 21610, te.Code)
				assert.Contains(t, se.Error(), "unsubscribed recipient")
				assert.Contains(t, se.Error(), "opted out")
			}},
		{name: "21211 invalid To",
			create: func(*fakeTwilio) http.HandlerFunc { return answerError(400, 21211, "Invalid 'To' Phone Number") },
			kind:   KindPermanent, code: 21211, httpStatus: 400},
		{name: "21614 not a mobile number",
			create: func(*fakeTwilio) http.HandlerFunc { return answerError(400, 21614, "not a mobile number") },
			kind:   KindPermanent, code: 21614, httpStatus: 400},
		{name: "63016 outside the window needs a template",
			create: func(*fakeTwilio) http.HandlerFunc { return answerError(400, 63016, "outside the allowed window") },
			kind:   KindPermanent, code: 63016, httpStatus: 400,
			check: func(t *testing.T, se *SendError) { assert.True(t, se.Info().NeedsTemplate) }},
		{name: "63024 invalid recipient",
			create: func(*fakeTwilio) http.HandlerFunc { return answerError(400, 63024, "Invalid message recipient") },
			kind:   KindPermanent, code: 63024, httpStatus: 400},
		{name: "21611 queue full is retryable",
			create: func(*fakeTwilio) http.HandlerFunc { return answerError(400, 21611, "queue full") },
			kind:   KindRetryable, code: 21611, httpStatus: 400},
		{name: "unknown 4xx code is permanent",
			create: func(*fakeTwilio) http.HandlerFunc { return answerError(400, 99999, "something new") },
			kind:   KindPermanent, code: 99999, httpStatus: 400,
			check: func(t *testing.T, se *SendError) { assert.False(t, se.Info().Known) }},
		{name: "401 bad credentials is a sender issue",
			create: func(*fakeTwilio) http.HandlerFunc { return answerError(401, 20003, "Authenticate") },
			kind:   KindPermanent, code: 20003, httpStatus: 401,
			check: func(t *testing.T, se *SendError) { assert.True(t, se.Info().SenderIssue) }},
		{name: "500 with a Twilio body",
			create: func(*fakeTwilio) http.HandlerFunc { return answerError(500, 20500, "Internal Server Error") },
			kind:   KindAmbiguous, code: 20500, httpStatus: 500},
		{name: "502 HTML from a proxy",
			create: func(*fakeTwilio) http.HandlerFunc { return answerRaw(502, "text/html", "<html>Bad Gateway</html>") },
			kind:   KindAmbiguous, httpStatus: 502},
		{name: "503 keeps Retry-After as a hint",
			create: func(*fakeTwilio) http.HandlerFunc {
				return answerError(503, 20503, "Service Unavailable", "Retry-After", "2")
			},
			kind: KindAmbiguous, code: 20503, httpStatus: 503, retryAfter: 2 * time.Second},
		{name: "404 that is not a Twilio body",
			create: func(*fakeTwilio) http.HandlerFunc { return answerRaw(404, "text/html", "<html>nope</html>") },
			kind:   KindAmbiguous, httpStatus: 404},
		{name: "201 with an undecodable body",
			create: func(*fakeTwilio) http.HandlerFunc { return answerRaw(201, "application/json", `{"sid": "SM`) },
			kind:   KindAmbiguous, httpStatus: 201},
		{name: "201 without a sid",
			create: func(*fakeTwilio) http.HandlerFunc { return answerRaw(201, "application/json", `{"status":"queued"}`) },
			kind:   KindAmbiguous, httpStatus: 201},
		{name: "timeout after the request was written",
			create:  func(f *fakeTwilio) http.HandlerFunc { return f.hang(nil) },
			timeout: 150 * time.Millisecond,
			kind:    KindAmbiguous, errIs: context.DeadlineExceeded},
		{name: "connection reset after the request was read",
			create: func(f *fakeTwilio) http.HandlerFunc { return reset(f.t, true) },
			kind:   KindAmbiguous},
		{name: "connection closed without an answer (EOF)",
			create: func(f *fakeTwilio) http.HandlerFunc { return reset(f.t, false) },
			kind:   KindAmbiguous},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			f := newFake(t, nil)
			f.create = tc.create(f)
			s := f.sender(t, func(c *Config) {
				if tc.timeout != 0 {
					c.Timeout = tc.timeout
				}
			})
			s.now = func() time.Time { return now }

			start := time.Now()
			acc, err := s.Send(context.Background(), textMessage())
			require.Error(t, err)
			assert.Less(t, time.Since(start), 3*time.Second)
			assert.Zero(t, acc)
			require.Len(t, f.requests(), 1, "exactly one request reached Twilio")

			var se *SendError
			require.ErrorAs(t, fmt.Errorf("saga: %w", err), &se)
			t.Log(err)
			assert.Equal(t, tc.kind, se.Kind, "kind; error: %v", err)
			assert.Equal(t, tc.code, se.Code)
			assert.Equal(t, tc.httpStatus, se.HTTPStatus)
			assert.Equal(t, tc.retryAfter, se.RetryAfter)
			assert.Equal(t, tc.kind == KindRetryable || tc.kind == KindRateLimited, se.Retryable())
			assert.Equal(t, tc.kind == KindAmbiguous, se.Ambiguous())
			assert.NotEmpty(t, se.Error())
			assert.NotNil(t, se.Unwrap())
			if tc.errIs != nil {
				assert.ErrorIs(t, err, tc.errIs)
			}
			if tc.check != nil {
				tc.check(t, se)
			}
		})
	}
}

func TestSendDialFailureIsNotSent(t *testing.T) {
	t.Parallel()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	addr := ln.Addr().String()
	require.NoError(t, ln.Close()) // nothing listens there now: connection refused

	s, err := New(Config{AccountSID: testSID, AuthToken: testToken, From: testFrom,
		APIURL: "http://" + addr, PublicBaseURL: "https://herald.example.com", Timeout: 2 * time.Second})
	require.NoError(t, err)
	t.Cleanup(s.Close)

	_, err = s.Send(context.Background(), textMessage())
	var se *SendError
	require.ErrorAs(t, err, &se)
	assert.Equal(t, KindRetryable, se.Kind, "refused before anything was written: %v", err)
	assert.True(t, se.Retryable())
	assert.False(t, se.Ambiguous())
	assert.Zero(t, se.HTTPStatus)
	var op *net.OpError
	require.ErrorAs(t, err, &op)
	assert.Equal(t, "dial", op.Op)
}

func TestSendContext(t *testing.T) {
	t.Parallel()

	t.Run("already cancelled: nothing is sent", func(t *testing.T) {
		t.Parallel()
		f := newFake(t, nil)
		s := f.sender(t)
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		_, err := s.Send(ctx, textMessage())
		var se *SendError
		require.ErrorAs(t, err, &se)
		assert.Equal(t, KindRetryable, se.Kind)
		assert.ErrorIs(t, err, context.Canceled)
		assert.Empty(t, f.requests())
	})

	t.Run("cancelled while Twilio is answering: returns at once, ambiguous", func(t *testing.T) {
		t.Parallel()
		arrived := make(chan struct{}, 1)
		f := newFake(t, nil)
		f.create = f.hang(arrived)
		s := f.sender(t, func(c *Config) { c.Timeout = time.Minute })
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		go func() {
			<-arrived
			cancel()
		}()
		start := time.Now()
		_, err := s.Send(ctx, textMessage())
		assert.Less(t, time.Since(start), 5*time.Second)
		var se *SendError
		require.ErrorAs(t, err, &se)
		assert.Equal(t, KindAmbiguous, se.Kind, "the request may have been processed: %v", err)
		assert.ErrorIs(t, err, context.Canceled)
		assert.Len(t, f.requests(), 1)
	})

	t.Run("a deadline on ctx shorter than Timeout wins", func(t *testing.T) {
		t.Parallel()
		f := newFake(t, nil)
		f.create = f.hang(nil)
		s := f.sender(t, func(c *Config) { c.Timeout = time.Minute })
		ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
		defer cancel()
		_, err := s.Send(ctx, textMessage())
		var se *SendError
		require.ErrorAs(t, err, &se)
		assert.Equal(t, KindAmbiguous, se.Kind)
		assert.ErrorIs(t, err, context.DeadlineExceeded)
	})
}

func TestClassifyWithoutResponse(t *testing.T) {
	t.Parallel()
	now := time.Now()
	tests := []struct {
		name       string
		err        error
		res        exchangeResult
		idempotent bool
		want       Kind
	}{
		{"cancelled before a connection", &url.Error{Op: "Post", URL: "u", Err: context.Canceled}, exchangeResult{}, false, KindRetryable},
		{"cancelled after a connection", &url.Error{Op: "Post", URL: "u", Err: context.Canceled}, exchangeResult{gotConn: true}, false, KindAmbiguous},
		{"dial error even if traced", &url.Error{Op: "Post", URL: "u", Err: &net.OpError{Op: "dial", Err: errors.New("refused")}}, exchangeResult{gotConn: true}, false, KindRetryable},
		{"reset after a connection", &url.Error{Op: "Post", URL: "u", Err: &net.OpError{Op: "read", Err: errors.New("connection reset by peer")}}, exchangeResult{gotConn: true}, false, KindAmbiguous},
		{"a read is never ambiguous", &url.Error{Op: "Get", URL: "u", Err: context.DeadlineExceeded}, exchangeResult{gotConn: true}, true, KindRetryable},
		{"5xx read is retryable", errors.New("decode"), exchangeResult{gotConn: true, status: 500, header: http.Header{}}, true, KindRetryable},
		{"credentials refused locally", &twclient.TwilioRestError{Code: 21222, Status: 400}, exchangeResult{}, false, KindPermanent},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			se := classify(tc.err, tc.res, tc.idempotent, now)
			assert.Equal(t, tc.want, se.Kind, se.Error())
			assert.ErrorIs(t, se, tc.err)
		})
	}
}

func TestSendRejectsBadMessagesLocally(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		mutate func(*Message)
		code   int
		want   string
	}{
		{"no message id", func(m *Message) { m.MessageID = uuid.Nil }, 0, "MessageID"},
		{"attempt 0", func(m *Message) { m.Attempt = 0 }, 0, "Attempt"},
		{"malformed To", func(m *Message) { m.To = "987654321" }, 21211, "To"},
		{"To with letters", func(m *Message) { m.To = "whatsapp:+5198abc" }, 21211, "To"},
		{"neither body nor template", func(m *Message) { m.Body = "" }, 21602, "neither"},
		{"body and template", func(m *Message) { m.ContentSID = "HXabc" }, 0, "exclusive"},
		{"variables without template", func(m *Message) { m.ContentVariables = map[string]string{"1": "x"} }, 0, "ContentVariables"},
		{"not a content SID", func(m *Message) { m.Body, m.ContentSID = "", "MG123" }, 0, "ContentSID"},
	}
	f := newFake(t, nil)
	s := f.sender(t)
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			m := textMessage()
			tc.mutate(&m)
			_, err := s.Send(context.Background(), m)
			var se *SendError
			require.ErrorAs(t, err, &se)
			assert.Equal(t, KindPermanent, se.Kind)
			assert.Equal(t, tc.code, se.Code)
			assert.Zero(t, se.HTTPStatus)
			assert.Contains(t, se.Error(), tc.want)
			assert.Contains(t, se.Error(), "before calling Twilio")
		})
	}
	t.Cleanup(func() { assert.Empty(t, f.requests(), "nothing reached Twilio") })
}

func TestSendConcurrently(t *testing.T) {
	t.Parallel()
	f := newFake(t, nil)
	s := f.sender(t)
	const n = 40
	sids := make([]string, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			m := textMessage()
			m.MessageID = uuid.New()
			m.Attempt = i + 1
			acc, err := s.Send(context.Background(), m)
			assert.NoError(t, err)
			sids[i] = acc.SID
		})
	}
	wg.Wait()
	seen := map[string]bool{}
	for _, sid := range sids {
		assert.NotEmpty(t, sid)
		assert.False(t, seen[sid], "duplicate SID %s", sid)
		seen[sid] = true
	}
	assert.Len(t, f.requests(), n)
}

func TestAPIURLPathPrefix(t *testing.T) {
	t.Parallel()
	var got string
	var mu sync.Mutex
	f := newFakeWrapped(t, nil, func(inner http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			mu.Lock()
			got = r.URL.Path
			mu.Unlock()
			r.URL.Path = strings.TrimPrefix(r.URL.Path, "/twilio")
			inner.ServeHTTP(w, r)
		})
	})
	s := f.sender(t, func(c *Config) { c.APIURL = f.srv.URL + "/twilio/" })
	_, err := s.Send(context.Background(), textMessage())
	require.NoError(t, err)
	mu.Lock()
	defer mu.Unlock()
	assert.Equal(t, "/twilio/2010-04-01/Accounts/"+testSID+"/Messages.json", got)
}

func TestFetch(t *testing.T) {
	t.Parallel()
	f := newFake(t, nil)
	s := f.sender(t)
	m := message("SM0123456789abcdef0123456789abcdef", "whatsapp:+51987654321", testFrom, "Hola", "undelivered")
	m["error_code"] = 63016
	m["error_message"] = "outside the window"
	m["date_sent"] = "Fri, 27 Nov 2026 13:00:01 +0000"
	f.add(m)

	t.Run("found", func(t *testing.T) {
		t.Parallel()
		info, err := s.Fetch(context.Background(), "SM0123456789abcdef0123456789abcdef")
		require.NoError(t, err)
		assert.Equal(t, MessageInfo{
			SID: "SM0123456789abcdef0123456789abcdef", To: "whatsapp:+51987654321", From: testFrom,
			Status: "undelivered", ErrorCode: 63016, ErrorMessage: "outside the window", Body: "Hola",
			DateCreated: time.Date(2026, 11, 27, 12, 59, 58, 0, time.UTC),
			DateSent:    time.Date(2026, 11, 27, 13, 0, 1, 0, time.UTC),
			DateUpdated: time.Date(2026, 11, 27, 12, 59, 58, 0, time.UTC),
		}, info)
	})
	t.Run("unknown SID", func(t *testing.T) {
		t.Parallel()
		_, err := s.Fetch(context.Background(), "SMffffffffffffffffffffffffffffffff")
		assert.ErrorIs(t, err, ErrNotFound)
		var se *SendError
		require.ErrorAs(t, err, &se)
		assert.Equal(t, 20404, se.Code)
		assert.Equal(t, KindPermanent, se.Kind)
	})
	t.Run("not a SID", func(t *testing.T) {
		t.Parallel()
		_, err := s.Fetch(context.Background(), "SM../../Calls")
		var se *SendError
		require.ErrorAs(t, err, &se)
		assert.Equal(t, KindPermanent, se.Kind)
	})
	t.Run("server error on a read is retryable", func(t *testing.T) {
		t.Parallel()
		bad := newFakeWrapped(t, nil, func(http.Handler) http.Handler {
			return http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
				twilioError(w, 500, 20500, "Internal Server Error")
			})
		})
		_, err := bad.sender(t).Fetch(context.Background(), "SM0123456789abcdef0123456789abcdef")
		var se *SendError
		require.ErrorAs(t, err, &se)
		assert.Equal(t, KindRetryable, se.Kind)
		assert.Equal(t, 500, se.HTTPStatus)
	})
}

func TestList(t *testing.T) {
	t.Parallel()
	f := newFake(t, nil)
	s := f.sender(t)
	for i := range 5 {
		f.add(message(fmt.Sprintf("SM%032x", 100+i), "whatsapp:+51987654321", testFrom, fmt.Sprint("m", i), "delivered"))
	}
	f.add(message(fmt.Sprintf("SM%032x", 200), "whatsapp:+51900000000", testFrom, "other", "delivered"))
	f.add(message(fmt.Sprintf("SM%032x", 201), "whatsapp:+51987654321", "whatsapp:+15550000000", "other sender", "delivered"))

	t.Run("To, From and DateSent are sent as Twilio's filters", func(t *testing.T) {
		t.Parallel()
		day := time.Date(2026, 11, 27, 22, 14, 0, 0, time.FixedZone("PET", -5*3600)) // 28 Nov UTC
		got, err := s.List(context.Background(), ListFilter{To: "+51987654321", DateSent: day})
		require.NoError(t, err)
		require.Len(t, got, 5)
		assert.Equal(t, fmt.Sprintf("SM%032x", 104), got[0].SID, "newest first")
		for _, m := range got {
			assert.Equal(t, "whatsapp:+51987654321", m.To)
			assert.Equal(t, testFrom, m.From)
		}
		var q url.Values
		for _, r := range f.requests() {
			if r.Method == http.MethodGet && r.Query.Get("DateSent") != "" {
				q = r.Query
			}
		}
		require.NotNil(t, q, "a list request carried DateSent")
		assert.Equal(t, "whatsapp:+51987654321", q.Get("To"))
		assert.Equal(t, testFrom, q.Get("From"))
		assert.Equal(t, "2026-11-28T00:00:00Z", q.Get("DateSent"), "the UTC day, at midnight")
	})
	t.Run("pages are followed up to the limit", func(t *testing.T) {
		t.Parallel()
		other := newFake(t, nil)
		other.maxPage = 2 // the server pages by 2 whatever the client asks
		so := other.sender(t)
		for i := range 7 {
			other.add(message(fmt.Sprintf("SM%032x", i), "whatsapp:+51987654321", testFrom, fmt.Sprint(i), "sent"))
		}
		all, err := so.List(context.Background(), ListFilter{To: "whatsapp:+51987654321", Limit: 100})
		require.NoError(t, err)
		require.Len(t, all, 7)
		for i, m := range all {
			assert.Equal(t, fmt.Sprint(6-i), m.Body, "order kept across pages")
		}
		assert.Len(t, other.requests(), 4, "7 messages in pages of 2")

		got, err := so.List(context.Background(), ListFilter{To: "+51987654321", Limit: 3})
		require.NoError(t, err)
		assert.Len(t, got, 3)
		assert.Len(t, other.requests(), 6, "the limit stops paging")
	})
	t.Run("explicit From and no DateSent", func(t *testing.T) {
		t.Parallel()
		got, err := s.List(context.Background(), ListFilter{To: "+51987654321", From: "+15550000000"})
		require.NoError(t, err)
		require.Len(t, got, 1)
		assert.Equal(t, "other sender", got[0].Body)
	})
	t.Run("bad To", func(t *testing.T) {
		t.Parallel()
		_, err := s.List(context.Background(), ListFilter{To: "nobody"})
		var se *SendError
		require.ErrorAs(t, err, &se)
		assert.Equal(t, KindPermanent, se.Kind)
	})
}

// Over HTTP/2 (what api.twilio.com speaks) the connection trace fires too, so a request cut
// after it was sent is still ambiguous, not "not sent".
func TestSendOverHTTP2(t *testing.T) {
	t.Parallel()
	release := make(chan struct{})
	var mu sync.Mutex
	var protos []int
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_ = r.ParseForm()
		mu.Lock()
		protos = append(protos, r.ProtoMajor)
		mu.Unlock()
		if r.PostForm.Get("Body") == "hang" {
			select {
			case <-r.Context().Done():
			case <-release:
			}
			return
		}
		writeJSON(w, http.StatusCreated, message("SM0123456789abcdef0123456789abcdef", r.PostForm.Get("To"), r.PostForm.Get("From"), "", "queued"))
	}))
	srv.EnableHTTP2 = true
	srv.StartTLS()
	t.Cleanup(srv.Close)
	t.Cleanup(func() { close(release) })

	s, err := New(Config{AccountSID: testSID, AuthToken: testToken, From: testFrom, APIURL: srv.URL,
		PublicBaseURL: "https://herald.example.com", Timeout: 30 * time.Second})
	require.NoError(t, err)
	s.transport.TLSClientConfig = srv.Client().Transport.(*http.Transport).TLSClientConfig.Clone()
	t.Cleanup(s.Close)

	acc, err := s.Send(context.Background(), textMessage())
	require.NoError(t, err)
	assert.Equal(t, "SM0123456789abcdef0123456789abcdef", acc.SID)

	// The connection is up now, so a short deadline times out the request, not the handshake
	// (a loaded CI machine can take longer than a short timeout to finish TLS).
	m := textMessage()
	m.Body = "hang"
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	_, err = s.Send(ctx, m)
	var se *SendError
	require.ErrorAs(t, err, &se)
	assert.Equal(t, KindAmbiguous, se.Kind, "%v", err)

	mu.Lock()
	defer mu.Unlock()
	assert.Equal(t, []int{2, 2}, protos, "both requests went over HTTP/2")
}
