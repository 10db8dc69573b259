package web

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"time"

	"github.com/google/uuid"
	"github.com/gorilla/mux"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/rs/zerolog"

	"herald/events"
)

// Config configures the HTTP server.
type Config struct {
	Addr            string
	ShutdownTimeout time.Duration
}

// Validate lists every problem.
func (c Config) Validate() error {
	var errs []error
	if _, _, err := net.SplitHostPort(c.Addr); err != nil {
		errs = append(errs, fmt.Errorf("HERALD_ADDR: %q is not host:port: %w", c.Addr, err))
	}
	if c.ShutdownTimeout < 0 {
		errs = append(errs, errors.New("web: ShutdownTimeout must be ≥ 0"))
	}
	return errors.Join(errs...)
}

// Server is Herald's HTTP server.
type Server struct {
	cfg    Config
	router *mux.Router
	log    zerolog.Logger
}

// NewServer builds the router: /healthz, /readyz, /metrics.
func NewServer(cfg Config, health Health, gatherer prometheus.Gatherer, reg prometheus.Registerer, log zerolog.Logger) (*Server, error) {
	if cfg.ShutdownTimeout == 0 {
		cfg.ShutdownTimeout = 15 * time.Second
	}
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	m, err := newHTTPMetrics(reg)
	if err != nil {
		return nil, err
	}
	r := mux.NewRouter()
	r.Use(correlation(log), m.middleware)
	r.HandleFunc("/healthz", live).Methods(http.MethodGet)
	r.HandleFunc("/readyz", health.ready).Methods(http.MethodGet)
	r.Handle("/metrics", promhttp.HandlerFor(gatherer, promhttp.HandlerOpts{})).Methods(http.MethodGet)
	return &Server{cfg: cfg, router: r, log: log}, nil
}

// Router exposes the router for later issues' routes and for tests.
func (s *Server) Router() *mux.Router { return s.router }

// Serve listens until ctx ends, then shuts down gracefully: in-flight requests get
// ShutdownTimeout to finish.
func (s *Server) Serve(ctx context.Context, ln net.Listener) error {
	srv := &http.Server{
		Handler:           s.router,
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       120 * time.Second,
		BaseContext:       func(net.Listener) context.Context { return context.WithoutCancel(ctx) },
	}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case err := <-errc:
		return fmt.Errorf("http: %w", err)
	case <-ctx.Done():
	}
	shutdown, cancel := context.WithTimeout(context.Background(), s.cfg.ShutdownTimeout)
	defer cancel()
	if err := srv.Shutdown(shutdown); err != nil {
		return fmt.Errorf("http shutdown: %w", err)
	}
	return nil
}

// CorrelationHeader carries the correlation id in and out.
const CorrelationHeader = "X-Correlation-ID"

// correlation gives every request a correlation id (the caller's, or a new one) and a logger
// that carries it, and echoes it in the response.
func correlation(log zerolog.Logger) mux.MiddlewareFunc {
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			id := r.Header.Get(CorrelationHeader)
			if id == "" || len(id) > 128 {
				id = uuid.NewString()
			}
			w.Header().Set(CorrelationHeader, id)
			l := log.With().Str("correlation_id", id).Logger()
			ctx := events.WithCorrelationID(l.WithContext(r.Context()), id)
			next.ServeHTTP(w, r.WithContext(ctx))
		})
	}
}
