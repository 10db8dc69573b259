package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
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

// Roles a process can take; by default one process takes them all.
const (
	roleAPI         = "api"
	roleRelay       = "relay"
	roleProjections = "projections"
	roleSaga        = "saga"
)

var allRoles = []string{roleAPI, roleRelay, roleProjections, roleSaga}

func parseRoles(s string) (map[string]bool, error) {
	roles := map[string]bool{}
	for _, r := range strings.Split(s, ",") {
		r = strings.TrimSpace(r)
		if r == "" {
			continue
		}
		known := false
		for _, k := range allRoles {
			known = known || k == r
		}
		if !known {
			return nil, fmt.Errorf("--roles: unknown role %q (known: %s)", r, strings.Join(allRoles, ","))
		}
		roles[r] = true
	}
	if len(roles) == 0 {
		return nil, errors.New("--roles: no role given")
	}
	return roles, nil
}

func serve(ctx context.Context, args []string, getenv func(string) string, stderr io.Writer) error {
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	fs.SetOutput(stderr)
	rolesFlag := fs.String("roles", strings.Join(allRoles, ","), "comma-separated roles: "+strings.Join(allRoles, ","))
	if err := fs.Parse(args); err != nil {
		return err
	}
	roles, err := parseRoles(*rolesFlag)
	if err != nil {
		return err
	}
	cfg, err := loadConfig(getenv)
	if err != nil {
		return err
	}
	log := newLogger(cfg, stderr)

	pool, err := connectPostgres(ctx, cfg.DatabaseURL)
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

	reg := prometheus.NewRegistry()
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
		rl, err := relay.New(relay.Config{Schema: schemaName, Transport: tcfg}, pool, rdb, publisher, log, reg)
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
	if roles[roleSaga] {
		c, closeSaga, err := newSaga(cfg, pool, rdb, registry, log)
		if err != nil {
			return err
		}
		defer closeSaga()
		if c.run != nil {
			components = append(components, c)
		}
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
