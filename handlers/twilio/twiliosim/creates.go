package twiliosim

import (
	"net/http"
	"net/url"
	"slices"
)

// CreateCounts is what the simulator created, counted the way a fault test's "at most one
// create per message" check needs it: outbound messages that exist (a 429 or 500 created
// nothing; an accept-then-stall did), per Herald message id — the StatusCallback's message_id
// query parameter, "" when it has none — and per recipient. Twilio has no idempotency key on
// creates; the message id in the callback URL is what ties a create to Herald's message.
type CreateCounts struct {
	Total       int            `json:"total"`
	ByMessageID map[string]int `json:"by_message_id"`
	ByTo        map[string]int `json:"by_to"`
	// Duplicates are the message ids (not "") created more than once, sorted.
	Duplicates []string `json:"duplicates"`
}

// Created counts the outbound messages created so far (GET /sim/creates).
func (s *Server) Created() CreateCounts {
	s.mu.Lock()
	defer s.mu.Unlock()
	c := CreateCounts{ByMessageID: map[string]int{}, ByTo: map[string]int{}, Duplicates: []string{}}
	for _, sid := range s.order {
		m, ok := s.messages[sid]
		if !ok || m.Direction != "outbound-api" {
			continue
		}
		c.Total++
		id := ""
		if u, err := url.Parse(m.StatusCallback); err == nil {
			id = u.Query().Get("message_id")
		}
		c.ByMessageID[id]++
		if id != "" && c.ByMessageID[id] == 2 {
			c.Duplicates = append(c.Duplicates, id)
		}
		c.ByTo[m.To]++
	}
	slices.Sort(c.Duplicates)
	return c
}

func (s *Server) handleCreates(w http.ResponseWriter, _ *http.Request) {
	writeJSON(w, http.StatusOK, s.Created())
}
