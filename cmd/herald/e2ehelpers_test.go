package main

// Helpers of the end-to-end and fault tests: they build bin/herald and bin/twilio-sim once per
// package run, start them as separate OS processes on free ports with their own PostgreSQL
// schema and Redis key prefix, and talk to them only over HTTP (the /v1 API, the simulator's
// /sim endpoints) — plus the test's own schema, to read the read models the API does not show.

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"herald/events/transport/transporttest"
	"herald/handlers/twilio/twiliosim"
	"herald/schema/schematest"
)

// Credentials the simulator and Herald share.
const (
	e2eAccountSID = "ACe2e0000000000000000000000000000"
	e2eAuthToken  = "e2etoken0123456789"
	e2eFrom       = "whatsapp:+14155238886"
	e2eAPIKey     = "e2e-admin-key-0123456789"
)

var (
	binOnce sync.Once
	binDir  string
	binErr  error
)

// binaries builds bin/herald and bin/twilio-sim into one temporary directory, once per package
// run, and returns their paths.
func binaries(t *testing.T) (herald, sim string) {
	t.Helper()
	binOnce.Do(func() {
		binDir, binErr = os.MkdirTemp("", "herald-e2e-bin-")
		if binErr != nil {
			return
		}
		goBin := filepath.Join(runtime.GOROOT(), "bin", "go")
		if _, err := os.Stat(goBin); err != nil {
			goBin = "go"
		}
		for _, b := range []struct{ out, pkg string }{{"herald", "."}, {"twilio-sim", "../twilio-sim"}} {
			cmd := exec.Command(goBin, "build", "-o", filepath.Join(binDir, b.out), b.pkg)
			if out, err := cmd.CombinedOutput(); err != nil {
				binErr = fmt.Errorf("go build %s: %v\n%s", b.pkg, err, out)
				return
			}
		}
	})
	require.NoError(t, binErr)
	return filepath.Join(binDir, "herald"), filepath.Join(binDir, "twilio-sim")
}

func TestMain(m *testing.M) {
	code := m.Run()
	if binDir != "" {
		os.RemoveAll(binDir)
	}
	os.Exit(code)
}

// proc is one OS process a test started; its output goes to a log file shown when the test fails.
type proc struct {
	t    *testing.T
	name string
	cmd  *exec.Cmd
	log  string
	done chan struct{}
	err  error // Wait's result, once done is closed
}

func startProc(t *testing.T, name, bin string, args []string, env map[string]string) *proc {
	t.Helper()
	logPath := filepath.Join(t.TempDir(), strings.ReplaceAll(name, "/", "_")+".log")
	f, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	require.NoError(t, err)
	cmd := exec.Command(bin, args...)
	cmd.Env = append(os.Environ(), "HERALD_LOG_LEVEL=warn", "SIM_LOG_LEVEL=warn")
	for k, v := range env {
		cmd.Env = append(cmd.Env, k+"="+v)
	}
	cmd.Stdout, cmd.Stderr = f, f
	require.NoError(t, cmd.Start(), "start %s", name)
	p := &proc{t: t, name: name, cmd: cmd, log: logPath, done: make(chan struct{})}
	go func() {
		p.err = cmd.Wait()
		f.Close()
		close(p.done)
	}()
	t.Cleanup(func() {
		p.kill(syscall.SIGKILL)
		if t.Failed() {
			p.dumpLog()
		}
	})
	return p
}

func (p *proc) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// kill sends sig and waits for the process to end.
func (p *proc) kill(sig syscall.Signal) {
	if p.exited() {
		return
	}
	_ = p.cmd.Process.Signal(sig)
	select {
	case <-p.done:
	case <-time.After(30 * time.Second):
		_ = p.cmd.Process.Kill()
		<-p.done
	}
}

// stop sends SIGTERM and requires a clean exit (status 0) within limit.
func (p *proc) stop(limit time.Duration) {
	p.t.Helper()
	require.NoError(p.t, p.cmd.Process.Signal(syscall.SIGTERM))
	select {
	case <-p.done:
		require.NoError(p.t, p.err, "%s exits 0 on SIGTERM", p.name)
	case <-time.After(limit):
		p.t.Fatalf("%s did not exit within %s of SIGTERM", p.name, limit)
	}
}

func (p *proc) dumpLog() {
	b, _ := os.ReadFile(p.log)
	if len(b) > 8000 {
		b = append([]byte("…"), b[len(b)-8000:]...)
	}
	p.t.Logf("--- %s log (%s) ---\n%s", p.name, p.log, b)
}

// stack is one Herald deployment under test: a schema, a Redis prefix, the simulator and one
// or more Herald processes.
type stack struct {
	t       *testing.T
	db      *schematest.Schema
	rds     *transporttest.Redis
	heraldB string
	simBin  string
	addr    string // the API process's address
	simAddr string
	sim     *proc
	http    *http.Client
	// twilioURL is where Herald calls Twilio: the simulator, or a proxy in front of it.
	twilioURL string
}

// newStack prepares the schema, the Redis prefix and the addresses, and starts the simulator
// with simEnv added to its environment (SIM_* fault settings). Herald processes are started
// with startHerald.
func newStack(t *testing.T, simEnv map[string]string) *stack {
	t.Helper()
	return newStackWith(t, stackOptions{simEnv: simEnv})
}

// stackOptions replace parts of a stack: a private database or Redis (the fault scenarios
// break them), the URL Herald calls Twilio at (a partitioning proxy in front of the simulator).
type stackOptions struct {
	simEnv    map[string]string
	db        *schematest.Schema
	rds       *transporttest.Redis
	twilioURL func(simAddr string) string
}

func newStackWith(t *testing.T, o stackOptions) *stack {
	t.Helper()
	simEnv := o.simEnv
	heraldBin, simBin := binaries(t)
	if o.db == nil {
		o.db = schematest.New(t)
	}
	if o.rds == nil {
		o.rds = transporttest.New(t)
	}
	s := &stack{t: t, db: o.db, rds: o.rds, heraldB: heraldBin, simBin: simBin,
		addr: freeAddr(t), simAddr: freeAddr(t), http: &http.Client{Timeout: 30 * time.Second}}
	s.twilioURL = "http://" + s.simAddr
	if o.twilioURL != nil {
		s.twilioURL = o.twilioURL(s.simAddr)
	}
	env := map[string]string{
		"SIM_ADDR": s.simAddr, "TWILIO_ACCOUNT_SID": e2eAccountSID, "TWILIO_AUTH_TOKEN": e2eAuthToken,
		"TWILIO_FROM": e2eFrom, "PUBLIC_BASE_URL": "http://" + s.addr, "SIM_CALLBACK_LATENCY": "20ms",
	}
	for k, v := range simEnv {
		env[k] = v
	}
	s.sim = startProc(t, "twilio-sim", simBin, []string{"serve"}, env)
	s.waitHTTP(s.sim, "http://"+s.simAddr+"/sim/healthz")
	return s
}

// heraldEnv is the environment of a Herald process of this stack listening on addr.
// Its pool holds four connections whatever the machine's CPU count (pgxpool's default grows
// with it): the fault suite's budget under PostgreSQL's 100 connections counts four.
func (s *stack) heraldEnv(addr string, extra map[string]string) map[string]string {
	dbURL, err := url.Parse(s.db.URL)
	require.NoError(s.t, err)
	q := dbURL.Query()
	q.Set("pool_max_conns", "4")
	dbURL.RawQuery = q.Encode()
	env := map[string]string{
		"DATABASE_URL":        dbURL.String(),
		"REDIS_URL":           fmt.Sprintf("redis://%s/%d", s.rds.Opts.Addr, s.rds.Opts.DB),
		"HERALD_REDIS_PREFIX": s.rds.Transport.Prefix,
		"HERALD_ADDR":         addr,
		"HERALD_API_KEYS":     e2eAPIKey,
		"PUBLIC_BASE_URL":     "http://" + s.addr, // Twilio calls the API process
		"TWILIO_ACCOUNT_SID":  e2eAccountSID,
		"TWILIO_AUTH_TOKEN":   e2eAuthToken,
		"TWILIO_FROM":         e2eFrom,
		"TWILIO_API_URL":      s.twilioURL,
	}
	for k, v := range extra {
		env[k] = v
	}
	return env
}

// startHerald starts `herald serve --roles=roles` on addr and waits for its /readyz.
func (s *stack) startHerald(name, roles, addr string, extra map[string]string) *proc {
	s.t.Helper()
	p := startProc(s.t, name, s.heraldB, []string{"serve", "--roles=" + roles}, s.heraldEnv(addr, extra))
	s.waitHTTP(p, "http://"+addr+"/readyz")
	return p
}

// waitHTTP waits until url answers 200, failing early when p exits.
func (s *stack) waitHTTP(p *proc, u string) {
	s.t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for time.Now().Before(deadline) {
		if p.exited() {
			p.dumpLog()
			s.t.Fatalf("%s exited before %s answered: %v", p.name, u, p.err)
		}
		resp, err := http.Get(u)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	p.dumpLog()
	s.t.Fatalf("%s did not answer 200 within 60s", u)
}

// api calls Herald's /v1 API with the admin key; body (if not nil) is sent as JSON and the
// answer decoded into out (if not nil). It returns the status.
func (s *stack) api(method, path string, body, out any) int {
	s.t.Helper()
	status, raw := s.apiRaw(method, path, body)
	if out != nil && status < 300 {
		require.NoError(s.t, json.Unmarshal(raw, out), "%s %s: %s", method, path, raw)
	}
	return status
}

func (s *stack) apiRaw(method, path string, body any) (int, []byte) {
	s.t.Helper()
	status, raw, _ := s.apiCall(method, path, body)
	return status, raw
}

func (s *stack) apiCall(method, path string, body any) (int, []byte, http.Header) {
	s.t.Helper()
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		require.NoError(s.t, err)
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequest(method, "http://"+s.addr+"/v1"+path, rd)
	require.NoError(s.t, err)
	req.Header.Set("Authorization", "Bearer "+e2eAPIKey)
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := s.http.Do(req)
	require.NoError(s.t, err, "%s %s", method, path)
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	require.NoError(s.t, err)
	return resp.StatusCode, raw, resp.Header
}

// mustAPI is api requiring a 2xx answer. A 202 (the write is stored, the read model slower
// than the API waits, as under a loaded CI machine) is followed as a client would: GET its
// Location until the read model shows it, and decode that into out.
func (s *stack) mustAPI(method, path string, body, out any) {
	s.t.Helper()
	status, raw, header := s.apiCall(method, path, body)
	require.Truef(s.t, status >= 200 && status < 300, "%s %s: %d %s", method, path, status, raw)
	if location := header.Get("Location"); status == http.StatusAccepted && strings.HasPrefix(location, "/v1/") {
		eventually(s.t, 60*time.Second, "GET "+location+" after a 202", func() bool {
			status, raw = s.apiRaw(http.MethodGet, strings.TrimPrefix(location, "/v1"), nil)
			return status == http.StatusOK
		})
	}
	if out != nil {
		require.NoError(s.t, json.Unmarshal(raw, out), "%s %s: %s", method, path, raw)
	}
}

// inbound injects a signed inbound WhatsApp message through the simulator, as Twilio would
// post it, and requires Herald to answer 2xx.
func (s *stack) inbound(from, body string) {
	s.t.Helper()
	b, err := json.Marshal(twiliosim.Inbound{From: from, Body: body})
	require.NoError(s.t, err)
	resp, err := s.http.Post("http://"+s.simAddr+"/sim/inbound", "application/json", bytes.NewReader(b))
	require.NoError(s.t, err)
	defer resp.Body.Close()
	answer, _ := io.ReadAll(resp.Body)
	require.Truef(s.t, resp.StatusCode >= 200 && resp.StatusCode < 300, "inbound %q from %s: %d (Herald answered %q): %s",
		body, from, resp.StatusCode, resp.Header.Get("X-Sim-Herald-Status"), answer)
}

// simGet reads one of the simulator's /sim records.
func (s *stack) simGet(path string, out any) {
	s.t.Helper()
	resp, err := s.http.Get("http://" + s.simAddr + path)
	require.NoError(s.t, err)
	defer resp.Body.Close()
	require.Equal(s.t, http.StatusOK, resp.StatusCode, path)
	require.NoError(s.t, json.NewDecoder(resp.Body).Decode(out), path)
}

func (s *stack) simPost(path string, body any) {
	s.t.Helper()
	b, err := json.Marshal(body)
	require.NoError(s.t, err)
	resp, err := s.http.Post("http://"+s.simAddr+path, "application/json", bytes.NewReader(b))
	require.NoError(s.t, err)
	defer resp.Body.Close()
	msg, _ := io.ReadAll(resp.Body)
	require.Truef(s.t, resp.StatusCode < 300, "POST %s: %d %s", path, resp.StatusCode, msg)
}

// simRequests is every Messages API request the simulator recorded.
func (s *stack) simRequests() []twiliosim.RecordedRequest {
	var out []twiliosim.RecordedRequest
	s.simGet("/sim/requests", &out)
	return out
}

// simMessages is every message the simulator holds.
func (s *stack) simMessages() []twiliosim.Message {
	var out []twiliosim.Message
	s.simGet("/sim/messages", &out)
	return out
}

// createsAnswered counts the creates the simulator answered (whatever the answer).
func (s *stack) creates() int {
	n := 0
	for _, r := range s.simRequests() {
		if r.IsCreate() {
			n++
		}
	}
	return n
}

// messageIDOf is Herald's message id carried by an outbound message's StatusCallback.
func messageIDOf(statusCallback string) string {
	u, err := url.Parse(statusCallback)
	if err != nil {
		return ""
	}
	return u.Query().Get("message_id")
}

// eventually polls cond every 100 ms until it holds or within passes; what names the wait.
func eventually(t *testing.T, within time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(within)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for: %s", within, what)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// count runs a count query on the stack's schema.
func (s *stack) count(sql string, args ...any) int {
	s.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var n int
	require.NoError(s.t, s.db.Pool.QueryRow(ctx, sql, args...).Scan(&n), sql)
	return n
}

func pathPhone(phone string) string { return url.PathEscape(phone) }
