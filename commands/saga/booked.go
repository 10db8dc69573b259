package saga

import (
	"sync"
	"time"
)

// bookedCampaigns remembers, in this process, the campaigns whose rate schedule is booked
// beyond the slot horizon, and until when: claims leave their messages alone meanwhile, so a
// slow campaign's backlog holds neither workers nor the claims that carry other messages.
// Another process learns the same from its own first reservation that finds no room.
type bookedCampaigns struct {
	mu    sync.Mutex
	until map[string]time.Time
}

func newBookedCampaigns() *bookedCampaigns {
	return &bookedCampaigns{until: map[string]time.Time{}}
}

// book records that campaignID's schedule has no room before until.
func (b *bookedCampaigns) book(campaignID string, until time.Time) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if until.After(b.until[campaignID]) {
		b.until[campaignID] = until
	}
}

// booked reports whether campaignID's schedule had no room at now.
func (b *bookedCampaigns) booked(campaignID string, now time.Time) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	return now.Before(b.until[campaignID])
}

// list returns the campaigns booked at now (never nil: the claim's "<> ALL" needs an array),
// forgetting those whose time has passed.
func (b *bookedCampaigns) list(now time.Time) []string {
	b.mu.Lock()
	defer b.mu.Unlock()
	out := []string{}
	for id, until := range b.until {
		if now.Before(until) {
			out = append(out, id)
		} else {
			delete(b.until, id)
		}
	}
	return out
}
