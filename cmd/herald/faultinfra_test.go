package main

// What the fault scenarios break, each private to one test so no other test is hurt: a
// redis-server of its own (SHUTDOWN NOSAVE, restart, FLUSHALL), a PostgreSQL cluster of its own
// (restart -m immediate, a transaction holding xmin back: both cluster-wide), a TCP proxy in
// front of the Twilio simulator (refuse, then hang), a supervisor that restarts a killed Herald
// process as systemd or Kubernetes would, and a Twilio-like client posting signed webhooks.

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/require"

	"herald/events/transport"
	"herald/events/transport/transporttest"
	"herald/handlers/twilio"
	"herald/schema"
	"herald/schema/schematest"
)

// privateRedis is a redis-server of one test's own, without persistence (as on this machine),
// on a free port.
type privateRedis struct {
	t    *testing.T
	port string
	dir  string
	rds  *transporttest.Redis
}

func startPrivateRedis(t *testing.T) *privateRedis {
	t.Helper()
	if _, err := exec.LookPath("redis-server"); err != nil {
		t.Skip("redis-server is not installed: the Redis restart scenario needs a private instance")
	}
	_, port, err := net.SplitHostPort(freeAddr(t))
	require.NoError(t, err)
	r := &privateRedis{t: t, port: port, dir: t.TempDir()}
	r.start()
	opts := &redis.Options{Addr: "127.0.0.1:" + port}
	client := redis.NewClient(opts)
	r.rds = &transporttest.Redis{Opts: opts, Client: client, Transport: transport.Config{
		Prefix: "fault:", MaxIdleTime: 2 * time.Second, ClaimInterval: 500 * time.Millisecond}.WithDefaults()}
	t.Cleanup(func() {
		_ = client.Shutdown(context.Background()).Err() // SHUTDOWN answers by closing the connection
		client.Close()
	})
	return r
}

// start runs redis-server (the command this machine's note gives) and waits for PING.
func (r *privateRedis) start() {
	r.t.Helper()
	out, err := exec.Command("redis-server", "--daemonize", "yes", "--bind", "127.0.0.1", "--port", r.port,
		"--save", "", "--appendonly", "no", "--dir", r.dir, "--logfile", filepath.Join(r.dir, "redis.log")).CombinedOutput()
	require.NoError(r.t, err, "redis-server: %s", out)
	c := redis.NewClient(&redis.Options{Addr: "127.0.0.1:" + r.port})
	defer c.Close()
	eventually(r.t, 10*time.Second, "the private redis-server answers PING", func() bool {
		return c.Ping(context.Background()).Err() == nil
	})
}

// shutdownNoSave stops the server losing everything, as a crash of a Redis without persistence.
func (r *privateRedis) shutdownNoSave() {
	r.t.Helper()
	c := redis.NewClient(&redis.Options{Addr: "127.0.0.1:" + r.port})
	defer c.Close()
	_ = c.Do(context.Background(), "SHUTDOWN", "NOSAVE").Err()
	eventually(r.t, 10*time.Second, "the private redis-server is down", func() bool {
		return c.Ping(context.Background()).Err() != nil
	})
}

func (r *privateRedis) flushAll() {
	r.t.Helper()
	require.NoError(r.t, r.rds.Client.FlushAll(context.Background()).Err())
}

// privatePostgres is a PostgreSQL cluster of one test's own: initdb into a temporary directory
// with the Debian binaries, a free port, the herald database migrated.
type privatePostgres struct {
	t      *testing.T
	bin    string
	dir    string
	port   string
	asUser string // run the binaries as this user ("" when not root)
	db     *schematest.Schema
}

func startPrivatePostgres(t *testing.T) *privatePostgres {
	t.Helper()
	bins, _ := filepath.Glob("/usr/lib/postgresql/*/bin/initdb")
	if len(bins) == 0 {
		t.Skip("no /usr/lib/postgresql/*/bin/initdb: the PostgreSQL restart and long-transaction scenarios need a private cluster")
	}
	pg := &privatePostgres{t: t, bin: filepath.Dir(bins[len(bins)-1])}
	_, pg.port, _ = net.SplitHostPort(freeAddr(t))
	// initdb refuses to run as root: run the cluster as postgres, in a directory it owns.
	dir, err := os.MkdirTemp("", "herald-fault-pg-")
	require.NoError(t, err)
	pg.dir = dir
	t.Cleanup(func() {
		_ = pg.run("pg_ctl", "-D", pg.dir, "stop", "-m", "immediate")
		os.RemoveAll(dir)
	})
	if os.Geteuid() == 0 {
		u, err := user.Lookup("postgres")
		if err != nil {
			t.Skip("running as root without a postgres user: cannot initdb")
		}
		uid, _ := strconv.Atoi(u.Uid)
		gid, _ := strconv.Atoi(u.Gid)
		require.NoError(t, os.Chown(dir, uid, gid))
		pg.asUser = "postgres"
	}
	require.NoError(t, pg.run("initdb", "-D", filepath.Join(dir, "data"), "-U", "postgres", "--auth=trust", "-E", "UTF8", "--no-sync"))
	pg.dir = filepath.Join(dir, "data")
	// fsync off: the faults are process crashes, which the page cache survives.
	require.NoError(t, pg.run("pg_ctl", "-D", pg.dir, "-w", "-l", filepath.Join(dir, "pg.log"), "-o",
		fmt.Sprintf("-p %s -k %s -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=200", pg.port, dir), "start"))

	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	base := fmt.Sprintf("postgres://postgres@127.0.0.1:%s/herald?sslmode=disable", pg.port)
	require.NoError(t, schema.EnsureDatabase(ctx, base))
	pool, err := pgxpool.New(ctx, base)
	require.NoError(t, err)
	t.Cleanup(pool.Close)
	_, err = schema.Migrate(ctx, pool)
	require.NoError(t, err)
	pg.db = &schematest.Schema{Name: "public", URL: base, Pool: pool}
	return pg
}

func (pg *privatePostgres) run(name string, args ...string) error {
	bin := filepath.Join(pg.bin, name)
	cmd := exec.Command(bin, args...)
	if pg.asUser != "" {
		cmd = exec.Command("runuser", append([]string{"-u", pg.asUser, "--", bin}, args...)...)
	}
	out, err := cmd.CombinedOutput()
	if err != nil {
		return fmt.Errorf("%s %s: %w\n%s", name, strings.Join(args, " "), err, out)
	}
	return nil
}

// restartImmediate is `pg_ctl restart -m immediate`: every backend killed, crash recovery on
// start.
func (pg *privatePostgres) restartImmediate() {
	pg.t.Helper()
	// -l: without a log file the server would keep pg_ctl's output pipe open, and the wait for
	// it would never end.
	require.NoError(pg.t, pg.run("pg_ctl", "-D", pg.dir, "-w", "-l", filepath.Join(filepath.Dir(pg.dir), "pg.log"),
		"restart", "-m", "immediate"))
}

// supervised is a Herald process restarted whenever it exits (SIGKILL, or a component ending
// it), as a process supervisor would.
type supervised struct {
	s                 *stack
	name, roles, addr string
	extra             map[string]string
	mu                sync.Mutex
	cur               *proc
	starts            int
}

// supervise starts `herald serve --roles=roles` on addr, waits for /readyz, and restarts it
// each time it exits until the test ends.
func (s *stack) supervise(name, roles, addr string, extra map[string]string) *supervised {
	s.t.Helper()
	sv := &supervised{s: s, name: name, roles: roles, addr: addr, extra: extra}
	sv.cur = s.startHerald(name, roles, addr, extra)
	sv.starts = 1
	ctx := s.t.Context() // cancelled just before the test's cleanups run
	exited := make(chan struct{})
	s.t.Cleanup(func() { <-exited }) // no start races the test's end
	go func() {
		defer close(exited)
		for {
			sv.mu.Lock()
			p := sv.cur
			sv.mu.Unlock()
			select {
			case <-ctx.Done():
				return
			case <-p.done:
			}
			select {
			case <-ctx.Done():
				return
			case <-time.After(200 * time.Millisecond):
			}
			sv.mu.Lock()
			sv.starts++
			sv.cur = startProc(s.t, fmt.Sprintf("%s-%d", name, sv.starts), s.heraldB,
				[]string{"serve", "--roles=" + roles}, s.heraldEnv(addr, extra))
			sv.mu.Unlock()
		}
	}()
	return sv
}

// kill sends SIGKILL to the running process; the supervisor starts another.
func (sv *supervised) kill() {
	sv.mu.Lock()
	p := sv.cur
	sv.mu.Unlock()
	p.kill(syscall.SIGKILL)
}

func (sv *supervised) restarts() int {
	sv.mu.Lock()
	defer sv.mu.Unlock()
	return sv.starts - 1
}

// partitionProxy forwards TCP from its address to target, or partitions it: refusing
// connections (nothing listens), or hanging them (accepted, never answered).
type partitionProxy struct {
	t      *testing.T
	addr   string
	target string
	mode   atomic.Value // "pass", "refuse", "hang"
	mu     sync.Mutex
	ln     net.Listener
	conns  map[net.Conn]struct{}
}

func newPartitionProxy(t *testing.T, target string) *partitionProxy {
	t.Helper()
	p := &partitionProxy{t: t, addr: freeAddr(t), target: target, conns: map[net.Conn]struct{}{}}
	p.mode.Store("pass")
	p.listen()
	t.Cleanup(func() { p.set("refuse") })
	return p
}

func (p *partitionProxy) listen() {
	p.t.Helper()
	var ln net.Listener
	var err error
	for range 50 { // the port was just ours; a closed listener's port frees at once
		if ln, err = net.Listen("tcp", p.addr); err == nil {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	require.NoError(p.t, err)
	p.mu.Lock()
	p.ln = ln
	p.mu.Unlock()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			p.mu.Lock()
			p.conns[c] = struct{}{}
			p.mu.Unlock()
			if p.mode.Load() == "hang" {
				continue // held open, never read or answered, until the mode changes
			}
			go p.forward(c)
		}
	}()
}

func (p *partitionProxy) forward(c net.Conn) {
	defer p.drop(c)
	up, err := net.DialTimeout("tcp", p.target, 5*time.Second)
	if err != nil {
		return
	}
	p.mu.Lock()
	p.conns[up] = struct{}{}
	p.mu.Unlock()
	defer p.drop(up)
	done := make(chan struct{}, 2)
	go func() { _, _ = io.Copy(up, c); done <- struct{}{} }()
	go func() { _, _ = io.Copy(c, up); done <- struct{}{} }()
	<-done
}

func (p *partitionProxy) drop(c net.Conn) {
	c.Close()
	p.mu.Lock()
	delete(p.conns, c)
	p.mu.Unlock()
}

// set changes the mode; every open connection is cut, so pooled keep-alive connections meet
// the new mode too.
func (p *partitionProxy) set(mode string) {
	p.mu.Lock()
	old := p.ln
	p.ln = nil
	for c := range p.conns {
		c.Close()
		delete(p.conns, c)
	}
	p.mu.Unlock()
	p.mode.Store(mode)
	if old != nil {
		old.Close()
	}
	if mode != "refuse" {
		p.listen()
	}
}

// webhookClient posts signed Twilio webhooks straight to Herald, as Twilio does, and records
// each outcome in a history; a webhook not acknowledged is retried with the same MessageSid.
type webhookClient struct {
	base  string // Herald's public base URL
	token string
	http  *http.Client
	h     *history
}

func newWebhookClient(s *stack, h *history) *webhookClient {
	return &webhookClient{base: "http://" + s.addr, token: e2eAuthToken, h: h,
		http: &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: 64}}}
}

func newSID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	return "SM" + hex.EncodeToString(b[:])
}

// inbound posts an inbound message from phone; it returns the MessageSid and Herald's status
// (0: no answer).
func (w *webhookClient) inbound(ctx context.Context, sid, phone, body string) int {
	form := url.Values{"MessageSid": {sid}, "SmsMessageSid": {sid}, "AccountSid": {e2eAccountSID},
		"From": {"whatsapp:" + phone}, "To": {e2eFrom}, "Body": {body}, "NumMedia": {"0"}, "ProfileName": {"Load"}}
	status := w.post(ctx, twilio.InboundPath, form)
	w.h.record(opInbound, sid, outcomeOf(status))
	return status
}

// status posts a status callback for sid.
func (w *webhookClient) status(ctx context.Context, sid, phone, st string) int {
	form := url.Values{"MessageSid": {sid}, "SmsSid": {sid}, "AccountSid": {e2eAccountSID}, "MessageStatus": {st},
		"From": {e2eFrom}, "To": {"whatsapp:" + phone}, "ApiVersion": {"2010-04-01"}, "ChannelPrefix": {"whatsapp"}}
	status := w.post(ctx, twilio.StatusPath, form)
	w.h.record(opStatus, sid+"/"+st, outcomeOf(status))
	return status
}

func (w *webhookClient) post(ctx context.Context, path string, form url.Values) int {
	u := w.base + path
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, u, strings.NewReader(form.Encode()))
	if err != nil {
		return 0
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("X-Twilio-Signature", twilio.Sign(w.token, u, form))
	resp, err := w.http.Do(req)
	if err != nil {
		return 0
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode
}

// retryUntilOK retries op (a webhook for one key) until it is acknowledged or ctx ends, as
// Twilio retries a webhook that failed.
func retryUntilOK(ctx context.Context, op func() int) error {
	for {
		if st := op(); st >= 200 && st < 300 {
			return nil
		}
		select {
		case <-ctx.Done():
			return errors.New("never acknowledged")
		case <-time.After(500 * time.Millisecond):
		}
	}
}
