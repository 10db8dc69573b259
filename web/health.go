// Package web is Herald's HTTP edge: the router, middleware, health and metrics endpoints
// (and, in later issues, the /v1 API and the UI). Handlers stay thin: decode, call, map errors.
package web

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"time"

	"herald/events/relay"
	"herald/projections"
)

// Health is what /readyz consults. Nil funcs are components this process does not run.
type Health struct {
	Postgres    func(ctx context.Context) error
	Redis       func(ctx context.Context) error
	Relay       func() relay.Status
	Projections func(ctx context.Context) ([]projections.Status, error)
	// MaxLag is the projection lag above which the process reports not ready.
	MaxLag time.Duration
}

type check struct {
	OK    bool   `json:"ok"`
	Error string `json:"error,omitempty"`
}

type readiness struct {
	Ready       bool                 `json:"ready"`
	Postgres    check                `json:"postgres"`
	Redis       check                `json:"redis"`
	Relay       *relayReport         `json:"relay,omitempty"`
	Projections []projections.Status `json:"projections,omitempty"`
	Problems    []string             `json:"problems,omitempty"`
}

type relayReport struct {
	Leader      bool    `json:"leader"`
	LagSeconds  float64 `json:"lag_seconds"`
	Checkpoint  any     `json:"checkpoint"`
	Republishes int     `json:"redis_data_losses"`
	LastError   string  `json:"last_error,omitempty"`
}

func probe(ctx context.Context, f func(context.Context) error) check {
	if f == nil {
		return check{OK: true}
	}
	if err := f(ctx); err != nil {
		return check{Error: err.Error()}
	}
	return check{OK: true}
}

// ready answers 200 when every dependency answers and no projection is stuck or too far
// behind, else 503 — naming the problem in either case.
func (h Health) ready(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
	defer cancel()
	rep := readiness{Postgres: probe(ctx, h.Postgres), Redis: probe(ctx, h.Redis)}
	if !rep.Postgres.OK {
		rep.Problems = append(rep.Problems, "postgres: "+rep.Postgres.Error)
	}
	if !rep.Redis.OK {
		rep.Problems = append(rep.Problems, "redis: "+rep.Redis.Error)
	}
	if h.Relay != nil {
		s := h.Relay()
		rep.Relay = &relayReport{Leader: s.Leader, LagSeconds: s.LagSeconds, Checkpoint: s.Checkpoint,
			Republishes: s.Republishes, LastError: s.LastError}
		if s.LastError != "" {
			rep.Problems = append(rep.Problems, "relay: "+s.LastError)
		}
	}
	if h.Projections != nil && rep.Postgres.OK {
		statuses, err := h.Projections(ctx)
		if err != nil {
			rep.Problems = append(rep.Problems, "projections: "+err.Error())
		}
		rep.Projections = statuses
		for _, s := range statuses {
			switch {
			case s.Stuck:
				rep.Problems = append(rep.Problems, fmt.Sprintf("projection %s is stuck since %s: %s",
					s.Name, s.StuckSince.UTC().Format(time.RFC3339), s.LastError))
			case h.MaxLag > 0 && s.LagSeconds > h.MaxLag.Seconds():
				rep.Problems = append(rep.Problems, fmt.Sprintf("projection %s is %.1fs behind (limit %s)",
					s.Name, s.LagSeconds, h.MaxLag))
			}
			if s.Parked > 0 {
				// Parked events do not make the process unready (the projection moves on),
				// but they are listed so an operator sees them.
				rep.Problems = append(rep.Problems, fmt.Sprintf("projection %s has %d parked event(s)", s.Name, s.Parked))
			}
		}
	}
	rep.Ready = rep.Postgres.OK && rep.Redis.OK
	for _, s := range rep.Projections {
		if s.Stuck || (h.MaxLag > 0 && s.LagSeconds > h.MaxLag.Seconds()) {
			rep.Ready = false
		}
	}
	status := http.StatusOK
	if !rep.Ready {
		status = http.StatusServiceUnavailable
	}
	writeJSON(w, status, rep)
}

func live(w http.ResponseWriter, _ *http.Request) {
	writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	_ = enc.Encode(v) // the client went away: nothing to do
}
