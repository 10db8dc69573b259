// Command twilio-sim runs the Twilio simulator (handlers/twilio/twiliosim): Twilio's Messages
// API with signed status callbacks and fault knobs, for tests and local runs of Herald.
// This package only wires: environment and flags → twiliosim.Config → serve until a signal.
//
//	twilio-sim [serve] [flags]                          serve on SIM_ADDR (default 127.0.0.1:8089)
//	twilio-sim inbound --from +51987654321 --body STOP  inject an inbound message through a running simulator
//
// Point Herald at it with TWILIO_API_URL=http://127.0.0.1:8089 and the same TWILIO_ACCOUNT_SID
// and TWILIO_AUTH_TOKEN; give the simulator Herald's PUBLIC_BASE_URL for inbound messages.
package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/rs/zerolog"

	"herald/handlers/twilio/twiliosim"
)

const usage = `usage: twilio-sim <command> [flags]

commands:
  serve     (default) run the simulator; flags override the environment, -h lists them
  inbound   --from +51987654321 --body "STOP" [--profile-name …] [--media-url …] [--button-payload …]
            inject an inbound WhatsApp message into Herald through a running simulator (SIM_URL)

environment (serve): TWILIO_ACCOUNT_SID, TWILIO_AUTH_TOKEN, TWILIO_FROM, SIM_ADDR, PUBLIC_BASE_URL,
SIM_CALLBACK_LATENCY, SIM_FAIL_RATE, SIM_UNDELIVERED_RATE, SIM_READ_RATE, SIM_RATE_LIMIT_429, …
(twilio-sim serve -h lists every one with its flag)`

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Getenv, os.Stdout, os.Stderr)
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "twilio-sim:", strings.ReplaceAll(err.Error(), "\n", "; "))
		os.Exit(1)
	}
}

func run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	cmd := "serve"
	if len(args) > 0 && !strings.HasPrefix(args[0], "-") {
		cmd, args = args[0], args[1:]
	}
	switch cmd {
	case "serve":
		cfg, addr, err := loadConfig(args, getenv, stderr)
		if err != nil {
			return err
		}
		return serve(ctx, cfg, addr, nil)
	case "inbound":
		return inbound(ctx, args, getenv, stdout, stderr)
	case "help":
		fmt.Fprintln(stdout, usage)
		return nil
	default:
		fmt.Fprintln(stderr, usage)
		return fmt.Errorf("unknown command %q", cmd)
	}
}

// setting is one knob: an environment variable, the flag that overrides it, and how it
// lands in the configuration.
type setting struct {
	env, flag, def, usage string
	apply                 func(c *twiliosim.Config, v string) error
}

func settings(addr, logFormat, logLevel *string) []setting {
	str := func(dst func(*twiliosim.Config) *string) func(*twiliosim.Config, string) error {
		return func(c *twiliosim.Config, v string) error { *dst(c) = v; return nil }
	}
	rate := func(dst func(*twiliosim.Config) *float64) func(*twiliosim.Config, string) error {
		return func(c *twiliosim.Config, v string) error {
			f, err := strconv.ParseFloat(v, 64)
			if err != nil {
				return fmt.Errorf("%q is not a number", v)
			}
			*dst(c) = f
			return nil
		}
	}
	dur := func(dst func(*twiliosim.Config) *time.Duration) func(*twiliosim.Config, string) error {
		return func(c *twiliosim.Config, v string) error {
			d, err := time.ParseDuration(v)
			if err != nil {
				return fmt.Errorf("%q is not a duration like 50ms", v)
			}
			*dst(c) = d
			return nil
		}
	}
	integer := func(dst func(*twiliosim.Config) *int) func(*twiliosim.Config, string) error {
		return func(c *twiliosim.Config, v string) error {
			n, err := strconv.Atoi(v)
			if err != nil {
				return fmt.Errorf("%q is not an integer", v)
			}
			*dst(c) = n
			return nil
		}
	}
	codes := func(dst func(*twiliosim.Config) *[]int) func(*twiliosim.Config, string) error {
		return func(c *twiliosim.Config, v string) error {
			var out []int
			for _, part := range strings.Split(v, ",") {
				n, err := strconv.Atoi(strings.TrimSpace(part))
				if err != nil {
					return fmt.Errorf("%q is not a comma-separated list of error codes", v)
				}
				out = append(out, n)
			}
			*dst(c) = out
			return nil
		}
	}
	keep := func(dst *string) func(*twiliosim.Config, string) error {
		return func(_ *twiliosim.Config, v string) error { *dst = v; return nil }
	}
	return []setting{
		{"SIM_ADDR", "addr", "127.0.0.1:8089", "listen address", keep(addr)},
		{"TWILIO_ACCOUNT_SID", "account-sid", twiliosim.DefaultAccountSID, "the only account accepted (letters and digits)",
			str(func(c *twiliosim.Config) *string { return &c.AccountSID })},
		{"TWILIO_AUTH_TOKEN", "auth-token", twiliosim.DefaultAuthToken, "the auth token accepted and used to sign webhooks",
			str(func(c *twiliosim.Config) *string { return &c.AuthToken })},
		{"TWILIO_FROM", "sender", twiliosim.DefaultSender, "Herald's WhatsApp sender: the To of inbound messages",
			str(func(c *twiliosim.Config) *string { return &c.Sender })},
		{"PUBLIC_BASE_URL", "public-base-url", "", "Herald's public URL; inbound messages go to it + /webhooks/twilio/inbound",
			str(func(c *twiliosim.Config) *string { return &c.WebhookBaseURL })},
		{"SIM_DELIVERY_BASE_URL", "delivery-base-url", "", "send webhooks here instead (scheme and host), signed for the original URL",
			str(func(c *twiliosim.Config) *string { return &c.DeliveryBaseURL })},
		{"SIM_CALLBACK_LATENCY", "callback-latency", "50ms", "time between lifecycle steps (jittered ±50%; 0: none)",
			func(c *twiliosim.Config, v string) error {
				d, err := time.ParseDuration(v)
				if err != nil {
					return fmt.Errorf("%q is not a duration like 50ms", v)
				}
				if d == 0 {
					d = -1 // an explicit 0 means no delay, not the library's default
				}
				c.CallbackLatency = d
				return nil
			}},
		{"SIM_CALLBACK_TIMEOUT", "callback-timeout", "15s", "timeout of one webhook POST",
			dur(func(c *twiliosim.Config) *time.Duration { return &c.CallbackTimeout })},
		{"SIM_CALLBACK_RETRIES", "callback-retries", "1", "retries of a failed callback (Twilio's rc; -1: none)",
			integer(func(c *twiliosim.Config) *int { return &c.CallbackRetries })},
		{"SIM_CALLBACK_RETRY_POLICY", "callback-retry-policy", "ct", "when to retry (Twilio's rp: ct, rt, 4xx, 5xx, all)",
			str(func(c *twiliosim.Config) *string { return &c.CallbackRetryPolicy })},
		{"SIM_FAIL_RATE", "fail-rate", "0", "probability a message fails (queued → failed)",
			rate(func(c *twiliosim.Config) *float64 { return &c.FailRate })},
		{"SIM_UNDELIVERED_RATE", "undelivered-rate", "0", "probability a sent message is undelivered",
			rate(func(c *twiliosim.Config) *float64 { return &c.UndeliveredRate })},
		{"SIM_READ_RATE", "read-rate", "1", "probability a delivered message is read",
			func(c *twiliosim.Config, v string) error {
				f, err := strconv.ParseFloat(v, 64)
				if err != nil {
					return fmt.Errorf("%q is not a number", v)
				}
				c.ReadRate = twiliosim.Rate(f)
				return nil
			}},
		{"SIM_FAILED_CODES", "failed-codes", "63016,63024,63003,30008", "error codes of failed messages",
			codes(func(c *twiliosim.Config) *[]int { return &c.FailedCodes })},
		{"SIM_UNDELIVERED_CODES", "undelivered-codes", "30003,30005,63032", "error codes of undelivered messages",
			codes(func(c *twiliosim.Config) *[]int { return &c.UndeliveredCodes })},
		{"SIM_RATE_LIMIT_429", "rate-limit-429", "0", "probability a create is answered 429 (20429)",
			rate(func(c *twiliosim.Config) *float64 { return &c.RateLimit429 })},
		{"SIM_RATE_LIMIT_BURST", "rate-limit-burst", "1", "consecutive creates each drawn 429 lasts",
			integer(func(c *twiliosim.Config) *int { return &c.RateLimitBurst })},
		{"SIM_RETRY_AFTER", "retry-after", "1s", "Retry-After of a 429",
			dur(func(c *twiliosim.Config) *time.Duration { return &c.RetryAfter })},
		{"SIM_SERVER_ERROR_RATE", "server-error-rate", "0", "probability a create is answered 500 and not created",
			rate(func(c *twiliosim.Config) *float64 { return &c.ServerErrorRate })},
		{"SIM_STALL_RATE", "stall-rate", "0", "probability a create is stored but its answer held (accept then stall)",
			rate(func(c *twiliosim.Config) *float64 { return &c.AcceptThenStallRate })},
		{"SIM_STALL_DURATION", "stall-duration", "", "how long a stalled answer is held (empty: until the client gives up)",
			func(c *twiliosim.Config, v string) error {
				d, err := time.ParseDuration(v)
				if err != nil {
					return fmt.Errorf("%q is not a duration like 30s", v)
				}
				c.StallDuration = d
				return nil
			}},
		{"SIM_DUPLICATE_RATE", "duplicate-rate", "0", "probability a callback is delivered twice",
			rate(func(c *twiliosim.Config) *float64 { return &c.DuplicateRate })},
		{"SIM_SHUFFLE_CALLBACKS", "shuffle-callbacks", "false", "deliver each message's callbacks out of order",
			func(c *twiliosim.Config, v string) error {
				b, err := strconv.ParseBool(v)
				if err != nil {
					return fmt.Errorf("%q is not true or false", v)
				}
				c.ShuffleCallbacks = b
				return nil
			}},
		{"SIM_DROP_CALLBACK_RATE", "drop-callback-rate", "0", "probability a callback is never sent",
			rate(func(c *twiliosim.Config) *float64 { return &c.DropCallbackRate })},
		{"SIM_SEED", "seed", "", "random seed (empty: from the clock)",
			func(c *twiliosim.Config, v string) error {
				n, err := strconv.ParseInt(v, 10, 64)
				if err != nil {
					return fmt.Errorf("%q is not an integer", v)
				}
				c.Seed = n
				return nil
			}},
		{"SIM_LOG_FORMAT", "log-format", "json", "json or console", keep(logFormat)},
		{"SIM_LOG_LEVEL", "log-level", "info", "debug, info, warn, error", keep(logLevel)},
	}
}

// loadConfig reads the environment, then the flags, and lists every problem at once.
func loadConfig(args []string, getenv func(string) string, stderr io.Writer) (twiliosim.Config, string, error) {
	var addr, logFormat, logLevel string
	table := settings(&addr, &logFormat, &logLevel)
	values := make([]string, len(table))
	fs := flag.NewFlagSet("twilio-sim serve", flag.ContinueOnError)
	fs.SetOutput(stderr)
	for i, s := range table {
		values[i] = s.def
		if v := getenv(s.env); v != "" {
			values[i] = v
		}
		fs.Func(s.flag, fmt.Sprintf("%s (env %s, default %q)", s.usage, s.env, s.def), func(v string) error {
			values[i] = v
			return nil
		})
	}
	if err := fs.Parse(args); err != nil {
		return twiliosim.Config{}, "", err
	}
	if fs.NArg() > 0 {
		return twiliosim.Config{}, "", fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	var cfg twiliosim.Config
	var errs []error
	for i, s := range table {
		if values[i] == "" {
			continue
		}
		if err := s.apply(&cfg, values[i]); err != nil {
			errs = append(errs, fmt.Errorf("%s (-%s): %w", s.env, s.flag, err))
		}
	}
	var log zerolog.Logger
	level, err := zerolog.ParseLevel(logLevel)
	if err != nil || logLevel == "" {
		errs = append(errs, fmt.Errorf("SIM_LOG_LEVEL (-log-level): %q is not debug, info, warn or error", logLevel))
	}
	switch logFormat {
	case "json":
		log = zerolog.New(stderr)
	case "console":
		log = zerolog.New(zerolog.ConsoleWriter{Out: stderr, TimeFormat: time.TimeOnly})
	default:
		errs = append(errs, fmt.Errorf("SIM_LOG_FORMAT (-log-format): %q must be json or console", logFormat))
	}
	log = log.Level(level).With().Timestamp().Logger()
	cfg.Logger = &log
	if err := cfg.Validate(); err != nil {
		errs = append(errs, err)
	}
	if err := errors.Join(errs...); err != nil {
		return twiliosim.Config{}, "", err
	}
	return cfg, addr, nil
}

// serve runs the simulator until ctx ends (SIGTERM, SIGINT), then closes it: stalled answers
// are released, pending callbacks dropped. ready, if not nil, gets the base URL once serving.
func serve(ctx context.Context, cfg twiliosim.Config, addr string, ready func(baseURL string)) error {
	sim, err := twiliosim.New(cfg)
	if err != nil {
		return err
	}
	defer sim.Close()
	base, err := sim.Start(ctx, addr)
	if err != nil {
		return err
	}
	if cfg.Logger != nil {
		cfg.Logger.Info().Str("TWILIO_API_URL", base).Str("TWILIO_ACCOUNT_SID", sim.AccountSID()).
			Msg("twilio simulator ready: point Herald's TWILIO_API_URL here")
	}
	if ready != nil {
		ready(base)
	}
	<-ctx.Done()
	if cfg.Logger != nil {
		cfg.Logger.Info().Msg("shutting down")
	}
	return nil
}

// inbound injects one inbound message through a running simulator's POST /sim/inbound and
// prints Herald's answer. A non-2xx answer from Herald is an error (exit status 1).
func inbound(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("twilio-sim inbound", flag.ContinueOnError)
	fs.SetOutput(stderr)
	simURL := getenv("SIM_URL")
	if simURL == "" {
		addr := getenv("SIM_ADDR")
		if addr == "" {
			addr = "127.0.0.1:8089"
		}
		simURL = "http://" + addr
	}
	var in twiliosim.Inbound
	fs.StringVar(&simURL, "sim", simURL, "the running simulator's URL (env SIM_URL, else http://SIM_ADDR)")
	fs.StringVar(&in.From, "from", "", "the user's number, +E164 (required)")
	fs.StringVar(&in.To, "to", "", "Herald's sender (default: the simulator's)")
	fs.StringVar(&in.Body, "body", "", "the message text")
	fs.StringVar(&in.ProfileName, "profile-name", "", "the user's WhatsApp profile name")
	fs.StringVar(&in.ButtonPayload, "button-payload", "", "payload of a tapped quick-reply button")
	fs.StringVar(&in.ButtonText, "button-text", "", "text of a tapped quick-reply button")
	fs.StringVar(&in.MessageSID, "message-sid", "", "reuse a MessageSid (simulates a redelivery)")
	fs.Func("media-url", "attached media URL (repeatable)", func(v string) error {
		in.MediaURLs = append(in.MediaURLs, v)
		return nil
	})
	fs.Func("media-content-type", "MIME type of the media URL at the same position (repeatable)", func(v string) error {
		in.MediaContentTypes = append(in.MediaContentTypes, v)
		return nil
	})
	if err := fs.Parse(args); err != nil {
		return err
	}
	if in.From == "" {
		return errors.New("inbound: --from is required")
	}
	body, err := json.Marshal(in)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, strings.TrimRight(simURL, "/")+"/sim/inbound", bytes.NewReader(body))
	if err != nil {
		return fmt.Errorf("inbound: %w", err)
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return fmt.Errorf("inbound: is the simulator running at %s? %w", simURL, err)
	}
	defer resp.Body.Close()
	answer, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return fmt.Errorf("inbound: reading the answer: %w", err)
	}
	heraldStatus := resp.Header.Get("X-Sim-Herald-Status")
	if heraldStatus == "" {
		return fmt.Errorf("inbound: the simulator refused: %d %s", resp.StatusCode, strings.TrimSpace(string(answer)))
	}
	fmt.Fprintf(stdout, "%s → Herald answered %s\n", resp.Header.Get("X-Sim-Message-Sid"), heraldStatus)
	if len(answer) > 0 {
		fmt.Fprintln(stdout, strings.TrimSpace(string(answer)))
	}
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return fmt.Errorf("inbound: Herald answered %d", resp.StatusCode)
	}
	return nil
}
