package main

import (
	"errors"
	"fmt"
	"net"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/redis/go-redis/v9"
	"github.com/rs/zerolog"

	"herald/commands/saga"
	"herald/handlers/api"
	"herald/internal/failpoint"
)

// Config is the process configuration, read from the environment.
type Config struct {
	DatabaseURL   string
	RedisURL      string
	RedisPrefix   string
	Addr          string
	APIKeys       []api.Key
	DefaultRegion string
	PublicBaseURL string
	TwilioSID     string
	TwilioToken   string
	TwilioFrom    string
	TwilioAPIURL  string
	TwilioMPS     int
	FrequencyCap  saga.FrequencyCap
	LogLevel      string
	LogFormat     string
	ReadyMaxLag   time.Duration
	// Roles are the parts this process runs (HERALD_ROLES or serve --roles; all by default).
	Roles map[string]bool
	// Failpoints (HERALD_FAILPOINTS, fault tests only) end the process at named points.
	Failpoints *failpoint.Set
}

// Defaults.
const (
	defaultDatabaseURL = "postgres://postgres@127.0.0.1:5432/herald?sslmode=disable"
	defaultRedisURL    = "redis://127.0.0.1:6379/0"
	defaultAddr        = "127.0.0.1:8080"
	defaultRedisPrefix = "herald:"
	defaultTwilioMPS   = 80 // Twilio's default WhatsApp throughput per sender
)

// loadConfig reads the environment through getenv and validates it, listing every problem.
func loadConfig(getenv func(string) string) (Config, error) {
	or := func(key, def string) string {
		if v := strings.TrimSpace(getenv(key)); v != "" {
			return v
		}
		return def
	}
	c := Config{
		DatabaseURL:   or("DATABASE_URL", defaultDatabaseURL),
		RedisURL:      or("REDIS_URL", defaultRedisURL),
		RedisPrefix:   or("HERALD_REDIS_PREFIX", defaultRedisPrefix),
		Addr:          or("HERALD_ADDR", defaultAddr),
		DefaultRegion: strings.ToUpper(strings.TrimSpace(getenv("HERALD_DEFAULT_REGION"))),
		PublicBaseURL: strings.TrimRight(getenv("PUBLIC_BASE_URL"), "/"),
		TwilioSID:     getenv("TWILIO_ACCOUNT_SID"),
		TwilioToken:   getenv("TWILIO_AUTH_TOKEN"),
		TwilioFrom:    getenv("TWILIO_FROM"),
		TwilioAPIURL:  getenv("TWILIO_API_URL"),
		LogLevel:      or("HERALD_LOG_LEVEL", "info"),
		LogFormat:     or("HERALD_LOG_FORMAT", "json"),
	}
	if c.PublicBaseURL == "" {
		// Twilio signs the URL it calls; locally (with the simulator) that is Herald itself.
		c.PublicBaseURL = "http://" + c.Addr
	}
	var errs []error
	lag, err := time.ParseDuration(or("HERALD_READY_MAX_LAG", "60s"))
	if err != nil {
		errs = append(errs, fmt.Errorf("HERALD_READY_MAX_LAG: %w", err))
	}
	c.ReadyMaxLag = lag
	c.TwilioMPS = defaultTwilioMPS
	if v := strings.TrimSpace(getenv("TWILIO_MPS")); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 0 {
			errs = append(errs, fmt.Errorf("TWILIO_MPS: %q is not a number of messages per second (0: no limit)", v))
		}
		c.TwilioMPS = n
	}
	if v := strings.TrimSpace(getenv("HERALD_FREQUENCY_CAP")); v != "" {
		maxN, per, ok := strings.Cut(v, "/")
		n, err1 := strconv.Atoi(maxN)
		d, err2 := time.ParseDuration(per)
		if !ok || err1 != nil || err2 != nil || n < 1 || d <= 0 {
			errs = append(errs, fmt.Errorf("HERALD_FREQUENCY_CAP: %q must be like 3/24h (at most 3 messages per user in 24 hours)", v))
		}
		c.FrequencyCap = saga.FrequencyCap{Max: n, Per: d}
	}
	fp, err := failpoint.Parse(getenv("HERALD_FAILPOINTS"))
	if err != nil {
		errs = append(errs, fmt.Errorf("HERALD_FAILPOINTS: %w", err))
	}
	c.Failpoints = fp
	roles, err := parseRoles(or("HERALD_ROLES", rolesAll))
	if err != nil {
		errs = append(errs, fmt.Errorf("HERALD_ROLES: %w", err))
	}
	c.Roles = roles
	keys, err := api.ParseKeys(getenv("HERALD_API_KEYS"))
	if err != nil {
		errs = append(errs, err)
	}
	c.APIKeys = keys
	if err := c.Validate(); err != nil {
		errs = append(errs, err)
	}
	return c, errors.Join(errs...)
}

// Validate lists every problem with the configuration at once.
func (c Config) Validate() error {
	var errs []error
	if _, err := pgxpool.ParseConfig(c.DatabaseURL); err != nil {
		errs = append(errs, fmt.Errorf("DATABASE_URL: %v", err))
	}
	if _, err := redis.ParseURL(c.RedisURL); err != nil {
		errs = append(errs, fmt.Errorf("REDIS_URL: %v", err))
	}
	if c.PublicBaseURL != "" {
		if u, err := url.Parse(c.PublicBaseURL); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			errs = append(errs, fmt.Errorf("PUBLIC_BASE_URL: %q is not an absolute http(s) URL", c.PublicBaseURL))
		}
	}
	if c.TwilioAPIURL != "" {
		if u, err := url.Parse(c.TwilioAPIURL); err != nil || u.Host == "" {
			errs = append(errs, fmt.Errorf("TWILIO_API_URL: %q is not an absolute URL", c.TwilioAPIURL))
		}
	}
	if (c.TwilioSID == "") != (c.TwilioToken == "") {
		errs = append(errs, errors.New("TWILIO_ACCOUNT_SID and TWILIO_AUTH_TOKEN: set both or neither"))
	}
	if c.TwilioSID != "" && !strings.HasPrefix(c.TwilioSID, "AC") {
		errs = append(errs, fmt.Errorf("TWILIO_ACCOUNT_SID: %q does not start with AC", c.TwilioSID))
	}
	if err := (api.Config{DefaultRegion: c.DefaultRegion}).Validate(); err != nil {
		errs = append(errs, err)
	}
	if _, err := zerolog.ParseLevel(c.LogLevel); err != nil {
		errs = append(errs, fmt.Errorf("HERALD_LOG_LEVEL: %v", err))
	}
	if c.LogFormat != "json" && c.LogFormat != "console" {
		errs = append(errs, fmt.Errorf("HERALD_LOG_FORMAT: %q must be json or console", c.LogFormat))
	}
	if c.ReadyMaxLag < 0 {
		errs = append(errs, errors.New("HERALD_READY_MAX_LAG: must be ≥ 0"))
	}
	if strings.ContainsAny(c.RedisPrefix, " \t") {
		errs = append(errs, fmt.Errorf("HERALD_REDIS_PREFIX: %q has white space", c.RedisPrefix))
	}
	if _, _, err := net.SplitHostPort(c.Addr); err != nil {
		errs = append(errs, fmt.Errorf("HERALD_ADDR: %q is not host:port", c.Addr))
	}
	return errors.Join(errs...)
}
