package main

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.yaml.in/yaml/v3"

	"herald/events"
	"herald/events/store"
	"herald/events/transport/transporttest"
	"herald/projections"
	"herald/schema/schematest"
)

func freeAddr(t *testing.T) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer ln.Close()
	return ln.Addr().String()
}

// TestServeRunsTheWholeFoundation starts `herald serve` as the binary would, appends events,
// sees them in the read model, and shuts down gracefully on cancel.
func TestServeRunsTheWholeFoundation(t *testing.T) {
	t.Parallel()
	db := schematest.New(t)
	rds := transporttest.New(t)
	addr := freeAddr(t)
	vars := map[string]string{
		"DATABASE_URL": db.URL, "REDIS_URL": fmt.Sprintf("redis://%s/%d", rds.Opts.Addr, rds.Opts.DB),
		"HERALD_ADDR": addr, "HERALD_REDIS_PREFIX": rds.Transport.Prefix, "HERALD_LOG_LEVEL": "warn",
	}

	var out bytes.Buffer
	require.NoError(t, run(context.Background(), []string{"migrate"}, env(vars), &out, io.Discard))
	assert.Contains(t, out.String(), "schema is up to date", "re-running migrate is a no-op")

	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- run(ctx, []string{"serve"}, env(vars), io.Discard, io.Discard) }()

	require.Eventually(t, func() bool {
		resp, err := http.Get("http://" + addr + "/readyz")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	}, 20*time.Second, 50*time.Millisecond)

	s, err := store.New(db.Pool, store.Config{})
	require.NoError(t, err)
	defer s.Close()
	p := "+14155550123"
	r, err := events.NewRecord(uuid.New(), events.UserStream(p), events.UserCreated{Phone: p, Consent: events.ConsentOptIn, Source: "test"}, events.Metadata{})
	require.NoError(t, err)
	res, err := s.Append(ctx, r.StreamID, 0, r)
	require.NoError(t, err)
	wait, stop := context.WithTimeout(ctx, 10*time.Second)
	defer stop()
	require.NoError(t, projections.WaitFor(wait, db.Pool, "users", res.Checkpoint))
	var consent string
	require.NoError(t, db.Pool.QueryRow(ctx, `SELECT consent FROM users WHERE phone = $1`, p).Scan(&consent))
	assert.Equal(t, events.ConsentOptIn, consent)

	cancel()
	select {
	case err := <-done:
		assert.NoError(t, err, "graceful shutdown")
	case <-time.After(20 * time.Second):
		t.Fatal("serve did not stop")
	}
}

// describingRegistry records the name of every metric registered, labelled series or not (a
// vector without observations has no series on /metrics yet, but is registered).
type describingRegistry struct {
	*prometheus.Registry
	mu    sync.Mutex
	names map[string]bool
}

var fqName = regexp.MustCompile(`fqName: "([^"]+)"`)

func (r *describingRegistry) Register(c prometheus.Collector) error {
	descs := make(chan *prometheus.Desc, 64)
	go func() { c.Describe(descs); close(descs) }()
	r.mu.Lock()
	for d := range descs {
		if m := fqName.FindStringSubmatch(d.String()); m != nil {
			r.names[m[1]] = true
		}
	}
	r.mu.Unlock()
	return r.Registry.Register(c)
}

func (r *describingRegistry) MustRegister(cs ...prometheus.Collector) {
	for _, c := range cs {
		if err := r.Register(c); err != nil {
			panic(err)
		}
	}
}

// TestMetricsAndDashboard serves every role (Twilio configured, so the saga, the scheduler,
// the client and the webhooks are wired), scrapes /metrics for the metrics, and checks
// that every metric docs/grafana/herald.json queries is registered by the process.
func TestMetricsAndDashboard(t *testing.T) {
	t.Parallel()
	db := schematest.New(t)
	rds := transporttest.New(t)
	addr := freeAddr(t)
	vars := map[string]string{
		"DATABASE_URL": db.URL, "REDIS_URL": fmt.Sprintf("redis://%s/%d", rds.Opts.Addr, rds.Opts.DB),
		"HERALD_ADDR": addr, "HERALD_REDIS_PREFIX": rds.Transport.Prefix, "HERALD_LOG_LEVEL": "warn",
		"TWILIO_ACCOUNT_SID": "ACmetrics0000000000000000000000000", "TWILIO_AUTH_TOKEN": "metricstoken",
		"TWILIO_FROM": "whatsapp:+14155238886", "TWILIO_API_URL": "http://" + freeAddr(t), // nothing is sent
	}
	require.NoError(t, run(context.Background(), []string{"migrate"}, env(vars), io.Discard, io.Discard))
	reg := &describingRegistry{Registry: prometheus.NewRegistry(), names: map[string]bool{}}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- serveWith(ctx, []string{"--roles=all"}, env(vars), io.Discard, reg) }()
	defer func() {
		cancel()
		<-done // a clean stop is TestServeRunsTheWholeFoundation's to check
	}()
	require.Eventually(t, func() bool {
		resp, err := http.Get("http://" + addr + "/readyz")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	}, 20*time.Second, 50*time.Millisecond)

	resp, err := http.Get("http://" + addr + "/metrics")
	require.NoError(t, err)
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	require.NoError(t, err)
	scraped := string(body)
	for _, name := range []string{
		"herald_http_request_duration_seconds_bucket", // the /readyz requests above
		"herald_relay_lag_seconds",
		`herald_saga_outcomes_total{outcome="skipped",reason=""}`, // every outcome shows from the start
		`herald_saga_outcomes_total{outcome="deferred",reason=""}`,
		`herald_saga_outcomes_total{outcome="failed",reason=""}`,
		`herald_saga_rate_limit_wait_seconds_bucket{limit="sender"`,
		`herald_twilio_request_duration_seconds_bucket{operation="create",result="ok"`,
	} {
		assert.True(t, strings.Contains(scraped, name), "/metrics shows %s", name)
	}

	raw, err := os.ReadFile("../../docs/grafana/herald.json")
	require.NoError(t, err)
	var dash struct {
		Panels []struct {
			Title   string `json:"title"`
			Targets []struct {
				Expr string `json:"expr"`
			} `json:"targets"`
		} `json:"panels"`
	}
	require.NoError(t, json.Unmarshal(raw, &dash))
	queried := regexp.MustCompile(`\bherald_[a-z0-9_]+`)
	suffix := regexp.MustCompile(`_(bucket|count|sum)$`)
	seen := 0
	for _, p := range dash.Panels {
		for _, target := range p.Targets {
			for _, name := range queried.FindAllString(target.Expr, -1) {
				seen++
				base := suffix.ReplaceAllString(name, "")
				assert.True(t, reg.names[name] || reg.names[base], "panel %q queries %s, which no component registers", p.Title, name)
			}
		}
	}
	assert.Greater(t, seen, 15, "the dashboard queries Herald's metrics")
	for _, want := range []string{"herald_webhook_requests_total", "herald_relay_lag_seconds", "herald_projection_lag_seconds",
		"herald_saga_outcomes_total", "herald_twilio_request_duration_seconds", "herald_twilio_errors_total",
		"herald_saga_rate_limit_wait_seconds", "herald_http_request_duration_seconds"} {
		assert.Contains(t, string(raw), want, "the dashboard shows %s", want)
	}
}

// TestComposeFile reads docker/compose.yaml (Docker cannot run here) and checks what it asks of
// Herald: every herald service runs a real command with real roles, sets only variables the
// configuration reads, and together the services take every role; the simulator service runs
// a binary the image carries, with variables it reads.
func TestComposeFile(t *testing.T) {
	t.Parallel()
	raw, err := os.ReadFile("../../docker/compose.yaml")
	require.NoError(t, err)
	var compose struct {
		Services map[string]struct {
			Image       string            `yaml:"image"`
			Profiles    []string          `yaml:"profiles"`
			Entrypoint  []string          `yaml:"entrypoint"`
			Command     []string          `yaml:"command"`
			Environment map[string]string `yaml:"environment"`
		} `yaml:"services"`
	}
	require.NoError(t, yaml.Unmarshal(raw, &compose))

	known := map[string]bool{}
	_, _ = loadConfig(func(k string) string { known[k] = true; return "" })
	require.Contains(t, known, "DATABASE_URL", "loadConfig reads the environment through getenv")
	simSource, err := os.ReadFile("../twilio-sim/main.go")
	require.NoError(t, err)
	dockerfile, err := os.ReadFile("../../docker/Dockerfile")
	require.NoError(t, err)

	taken := map[string]bool{}
	for name, svc := range compose.Services {
		switch {
		case svc.Image != "herald:dev":
			continue // postgres, redis
		case len(svc.Entrypoint) > 0 && svc.Entrypoint[0] == "twilio-sim":
			assert.Contains(t, svc.Profiles, "sim", "%s: the simulator is in the sim profile", name)
			assert.Contains(t, string(dockerfile), "/out/twilio-sim", "%s: the image carries twilio-sim", name)
			for k := range svc.Environment {
				assert.Contains(t, string(simSource), `"`+k+`"`, "%s: twilio-sim does not read %s", name, k)
			}
			continue
		}
		assert.Contains(t, svc.Profiles, "app", "%s: Herald's services are in the app profile", name)
		for k := range svc.Environment {
			assert.True(t, known[k], "%s: the configuration does not read %s", name, k)
		}
		require.NotEmpty(t, svc.Command, name)
		switch svc.Command[0] {
		case "migrate":
		case "serve":
			fs := flag.NewFlagSet(name, flag.ContinueOnError)
			roles := fs.String("roles", rolesAll, "")
			require.NoError(t, fs.Parse(svc.Command[1:]), name)
			parsed, err := parseRoles(*roles)
			require.NoError(t, err, name)
			for r := range parsed {
				taken[r] = true
			}
		default:
			t.Errorf("%s: %q is not a herald command", name, svc.Command[0])
		}
	}
	assert.Equal(t, allRoles, keys(taken), "every role runs in some service")

	simEnv, err := os.ReadFile("../../docker/sim.env")
	require.NoError(t, err)
	for _, line := range strings.Split(string(simEnv), "\n") {
		if k, _, ok := strings.Cut(line, "="); ok && !strings.HasPrefix(line, "#") {
			assert.True(t, known[k], "docker/sim.env: the configuration does not read %s", k)
		}
	}
}
