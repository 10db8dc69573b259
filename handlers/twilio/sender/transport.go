package sender

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptrace"
	"net/url"
	"strings"
	"sync"
	"time"

	twclient "github.com/twilio/twilio-go/client"
)

// Why a transport per call.
//
// twilio-go builds every request with context.Background() (client.Client.SendRequest) and
// returns only a decoded error on failure: no status, no headers. Three things the saga needs
// are therefore out of reach through its API:
//   - the caller's ctx (cancellation, shutdown);
//   - the Retry-After header of a 429;
//   - whether any byte of the request was written before a failure (refused-before-write is
//     "not sent", refused-after-write is "ambiguous").
//
// The SDK does accept a caller-made *http.Client (client.Client.HTTPClient), and that is the
// only seam below its API. So each Send/Fetch/List builds a throwaway client.Client whose
// http.Client has a callTransport made for that one call. The transport
//   - re-issues the SDK's request under the call's ctx plus a per-request timeout, with an
//     httptrace hook that records whether a connection was ever handed to the request;
//   - reads the whole response body under that same ctx, so a body that stalls is cut by the
//     timeout and the SDK only decodes bytes already in memory, and keeps the status and
//     headers of the last response for classify.
//
// TWILIO_API_URL (the SDK's base URL is hard-coded) is applied one level up, by
// rewritingClient, the BaseClient-wrapper variant of reference/twilio.md §5.2: rewriting
// there rather than in the transport keeps the real target in the SDK's and net/http's error
// messages.
//
// Nothing is keyed by request: the record belongs to the call. The underlying *http.Transport
// is shared by all calls, so connections are pooled as usual. The throwaway objects are a few
// small structs per call.
type callTransport struct {
	ctx     context.Context
	timeout time.Duration
	next    http.RoundTripper

	mu  sync.Mutex
	res exchangeResult
}

// exchangeResult is what the transport saw of the last request of a call.
type exchangeResult struct {
	gotConn bool        // a connection was handed to the request (bytes may have been written)
	status  int         // response status; 0 if no response headers arrived
	header  http.Header // response headers
}

// maxResponseBody caps a response body read into memory (a list page of 1000 messages is
// about 1 MiB).
const maxResponseBody = 16 << 20

func (t *callTransport) result() exchangeResult {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.res
}

func (t *callTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	t.mu.Lock()
	t.res = exchangeResult{}
	t.mu.Unlock()

	// r.Context() is context.Background() (the SDK's) and the http.Client has no Timeout, so
	// nothing is lost by replacing it with the call's ctx.
	ctx, cancel := context.WithTimeout(t.ctx, t.timeout)
	ctx = httptrace.WithClientTrace(ctx, &httptrace.ClientTrace{
		GotConn: func(httptrace.GotConnInfo) {
			t.mu.Lock()
			t.res.gotConn = true
			t.mu.Unlock()
		},
	})
	resp, err := t.next.RoundTrip(r.Clone(ctx))
	if err != nil {
		cancel()
		return nil, err
	}
	t.mu.Lock()
	t.res.status, t.res.header = resp.StatusCode, resp.Header.Clone()
	t.mu.Unlock()

	body, err := io.ReadAll(io.LimitReader(resp.Body, maxResponseBody+1))
	resp.Body.Close()
	cancel()
	if err != nil {
		return nil, fmt.Errorf("reading the %d response from Twilio: %w", resp.StatusCode, err)
	}
	if len(body) > maxResponseBody {
		return nil, fmt.Errorf("the %d response from Twilio is larger than %d bytes", resp.StatusCode, maxResponseBody)
	}
	resp.Body = io.NopCloser(bytes.NewReader(body))
	resp.ContentLength = int64(len(body))
	return resp, nil
}

// rewritingClient sends the SDK's requests to base instead of https://api.twilio.com: scheme
// and host are replaced and base's path, if any, is put in front. It runs after the SDK's
// BuildUrl (edge/region), so TWILIO_EDGE/TWILIO_REGION cannot mangle the target.
type rewritingClient struct {
	*twclient.Client
	base *url.URL
}

func (c rewritingClient) SendRequest(method, rawURL string, data url.Values, headers map[string]any, body ...byte) (*http.Response, error) {
	u, err := url.Parse(rawURL)
	if err != nil {
		return nil, err
	}
	u.Scheme, u.Host = c.base.Scheme, c.base.Host
	if p := strings.TrimRight(c.base.Path, "/"); p != "" {
		u.Path, u.RawPath = p+u.Path, ""
	}
	return c.Client.SendRequest(method, u.String(), data, headers, body...)
}

// noRedirect is the SDK's own policy: answer with the redirect response itself.
func noRedirect(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
