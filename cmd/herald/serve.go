package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"slices"
	"strconv"
	"strings"
	"sync"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/rs/zerolog"

	"herald/commands"
	"herald/events"
	"herald/events/relay"
	"herald/events/store"
	"herald/events/transport"
	"herald/handlers/api"
	"herald/handlers/twilio"
	"herald/projections"
	"herald/web"
	"herald/web/ui"
)

// Roles a process can take; by default one process takes them all ("all").
//
//   - api: /v1, the web UI and Twilio's webhooks (stateless; run behind a load balancer).
//   - relay: tails the event log into Redis Streams (any number; one elected leader publishes).
//   - projections: keeps the read models (any number; one applier per projection at a time).
//   - saga: claims due messages and sends them (scales out: claims are leases, rate limits
//     are shared through Redis).
//   - scheduler: the once-a-second tick that starts due and recurring runs, materializes
//     runs and triggers into messages and completes finished runs (safe to run more than
//     once, since every step is idempotent, but one is enough).
const (
	roleAPI         = "api"
	roleRelay       = "relay"
	roleProjections = "projections"
	roleSaga        = "saga"
	roleScheduler   = "scheduler"
	rolesAll        = "all"
)

var allRoles = []string{roleAPI, roleRelay, roleProjections, roleSaga, roleScheduler}

// parseRoles reads a comma-separated role list ("all" for every role), naming every unknown one.
func parseRoles(s string) (map[string]bool, error) {
	roles := map[string]bool{}
	var unknown []string
	for _, r := range strings.Split(s, ",") {
		r = strings.ToLower(strings.TrimSpace(r))
		switch {
		case r == "":
		case r == rolesAll:
			for _, k := range allRoles {
				roles[k] = true
			}
		case slices.Contains(allRoles, r):
			roles[r] = true
		default:
			unknown = append(unknown, strconv.Quote(r))
		}
	}
	if len(unknown) > 0 {
		return nil, fmt.Errorf("unknown role %s (known: %s, or all)", strings.Join(unknown, ", "), strings.Join(allRoles, ","))
	}
	if len(roles) == 0 {
		return nil, errors.New("no role given")
	}
	return roles, nil
}

// roleNames lists roles in allRoles' order: "api,relay,projections,saga,scheduler".
func roleNames(roles map[string]bool) string {
	var names []string
	for _, r := range allRoles {
		if roles[r] {
			names = append(names, r)
		}
	}
	return strings.Join(names, ",")
}

// metricsRegistry is where every component registers its metrics and /metrics reads them.
type metricsRegistry interface {
	prometheus.Registerer
	prometheus.Gatherer
}

func serve(ctx context.Context, args []string, getenv func(string) string, stderr io.Writer) error {
	return serveWith(ctx, args, getenv, stderr, prometheus.NewRegistry())
}

// serveWith is serve with the metrics registry given (a test inspects what was registered).
func serveWith(ctx context.Context, args []string, getenv func(string) string, stderr io.Writer, reg metricsRegistry) error {
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	fs.SetOutput(stderr)
	rolesFlag := fs.String("roles", "", "comma-separated roles: "+strings.Join(allRoles, ",")+" or all (default: HERALD_ROLES, else all)")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil
		}
		return err
	}
	if *rolesFlag != "" {
		getenv = withEnv(getenv, "HERALD_ROLES", *rolesFlag)
	}
	cfg, err := loadConfig(getenv)
	if err != nil {
		if *rolesFlag != "" {
			// The flag, not the environment, gave the roles: name it.
			err = errors.New(strings.Replace(err.Error(), "HERALD_ROLES:", "--roles:", 1))
		}
		return err
	}
	roles := cfg.Roles
	log := newLogger(cfg, stderr)

	pool, err := connectPostgres(ctx, cfg.DatabaseURL, "herald "+roleNames(roles))
	if err != nil {
		return err
	}
	defer pool.Close()
	rdb, redisOpts, err := connectRedis(ctx, cfg.RedisURL)
	if err != nil {
		return err
	}
	defer rdb.Close()
	if err := requireMigrated(ctx, pool); err != nil {
		return err
	}
	var schemaName string
	if err := pool.QueryRow(ctx, `SELECT current_schema()`).Scan(&schemaName); err != nil {
		return fmt.Errorf("DATABASE_URL: %w", err)
	}

	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	tcfg := transport.Config{Prefix: cfg.RedisPrefix}.WithDefaults()
	registry := events.DefaultRegistry()

	var components []component
	health := web.Health{
		Postgres: pool.Ping,
		Redis:    func(ctx context.Context) error { return rdb.Ping(ctx).Err() },
		MaxLag:   cfg.ReadyMaxLag,
	}

	if roles[roleRelay] {
		publisher, err := transport.NewPublisher(redisOpts, tcfg, transport.NewLoggerAdapter(log))
		if err != nil {
			return err
		}
		defer publisher.Close()
		rl, err := relay.New(relay.Config{Schema: schemaName, Transport: tcfg, Failpoints: cfg.Failpoints}, pool, rdb, publisher, log, reg)
		if err != nil {
			return err
		}
		health.Relay = rl.Status
		components = append(components, component{"relay", rl.Run})
	}
	if roles[roleProjections] {
		runner, err := projections.NewRunner(projections.Config{Transport: tcfg}, pool, registry, redisOpts,
			projections.All(), log, reg)
		if err != nil {
			return err
		}
		health.Projections = runner.Status
		components = append(components, component{"projections", runner.Run})
		eraser, err := projections.NewEraser(projections.EraserConfig{}, pool, log)
		if err != nil {
			return err
		}
		components = append(components, component{"eraser", eraser.Run})
	}
	if roles[roleSaga] || roles[roleScheduler] {
		sagaComponents, closeSaga, err := newSaga(cfg, roles, pool, rdb, registry, reg, log)
		if err != nil {
			return err
		}
		defer closeSaga()
		components = append(components, sagaComponents...)
	}
	// Every role serves /healthz, /readyz and /metrics; the api role adds the webhooks (and,
	// in later issues, /v1 and the UI).
	srv, err := web.NewServer(web.Config{Addr: cfg.Addr}, health, reg, reg, log)
	if err != nil {
		return err
	}
	if roles[roleAPI] {
		es, err := store.New(pool, store.Config{})
		if err != nil {
			return err
		}
		defer es.Close()
		if err := registerWebhooks(srv, cfg, es, registry, reg, log); err != nil {
			return err
		}
		v1, err := api.New(api.Config{Keys: cfg.APIKeys, DefaultRegion: cfg.DefaultRegion}, es, registry, log)
		if err != nil {
			return err
		}
		v1.Register(srv.Router())
		// The UI calls /v1 in-process through the same router; its cookies are sealed with a
		// secret derived from the API keys, so every API process opens every session.
		pages, err := ui.New(ui.Config{API: srv.Router(), SessionSecret: []byte(getenv("HERALD_API_KEYS")),
			Secure: strings.HasPrefix(cfg.PublicBaseURL, "https://")}, log)
		if err != nil {
			return err
		}
		pages.Register(srv.Router())
		components = append(components, component{"api", v1.Run})
		if len(cfg.APIKeys) == 0 {
			log.Warn().Msg("HERALD_API_KEYS is empty: /v1 answers 401 to every request")
		}
	}
	ln, err := net.Listen("tcp", cfg.Addr)
	if err != nil {
		return fmt.Errorf("HERALD_ADDR: cannot listen on %s: %w", cfg.Addr, err)
	}
	log.Info().Str("url", "http://"+ln.Addr().String()+"/").Msg("HTTP server listening")
	components = append(components, component{"http", func(ctx context.Context) error { return srv.Serve(ctx, ln) }})

	log.Info().Strs("roles", keys(roles)).Str("schema", schemaName).Msg("herald starting")
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var (
		wg       sync.WaitGroup
		firstErr error
		once     sync.Once
	)
	for _, c := range components {
		wg.Add(1)
		go func() {
			defer wg.Done()
			err := c.run(ctx)
			if err != nil {
				once.Do(func() { firstErr = fmt.Errorf("%s: %w", c.name, err) })
			}
			cancel() // one component ending ends the process: a supervisor restarts it whole
		}()
	}
	wg.Wait()
	log.Info().Msg("herald stopped")
	return firstErr
}

// component is one long-running part of the process.
type component struct {
	name string
	run  func(context.Context) error
}

// withEnv is getenv with key set to value.
func withEnv(getenv func(string) string, key, value string) func(string) string {
	return func(k string) string {
		if k == key {
			return value
		}
		return getenv(k)
	}
}

func keys(m map[string]bool) []string {
	var out []string
	for _, k := range allRoles {
		if m[k] {
			out = append(out, k)
		}
	}
	return out
}

// registerWebhooks mounts Twilio's webhooks. Without TWILIO_AUTH_TOKEN no signature can be
// checked, so they are left out (and say so) rather than accepting unsigned requests.
func registerWebhooks(srv *web.Server, cfg Config, es *store.Store, registry *events.Registry,
	reg prometheus.Registerer, log zerolog.Logger) error {
	if cfg.TwilioToken == "" {
		log.Warn().Msg("TWILIO_AUTH_TOKEN is not set: the Twilio webhooks are disabled")
		return nil
	}
	m, err := twilio.NewMetrics(reg)
	if err != nil {
		return err
	}
	wh, err := twilio.New(twilio.Config{PublicBaseURL: cfg.PublicBaseURL, AuthToken: cfg.TwilioToken},
		commands.NewReceiveInboundHandler(es, registry, commands.Replies{}),
		commands.NewRecordStatusHandler(es, registry), m)
	if err != nil {
		return err
	}
	wh.Register(srv.Router())
	log.Info().Str("inbound", cfg.PublicBaseURL+twilio.InboundPath).Str("status", cfg.PublicBaseURL+twilio.StatusPath).
		Msg("Twilio webhooks ready")
	return nil
}
