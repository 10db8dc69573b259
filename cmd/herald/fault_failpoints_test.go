package main

// The failpoint tests are the suite's longest (each saga death waits out a claim's lease): in a
// file named to sort first, they take their -parallel slots first and the rest fill around them.

import (
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"

	"herald/internal/failpoint"
)

// TestFaultFailpoints (reliability.md S-06, R-03): a process exits — status 137, as if killed —
// exactly where a crash is most dangerous, restarted by a supervisor each time, again and again
// (the saga a few times: each death freezes its claim's messages for the lease, a minute):
// the saga with send_attempted recorded and Twilio not yet called (the attempt must be
// reconciled, found missing and sent once), the saga with Twilio's 201 in hand and not recorded
// (reconciled from Twilio's record or its status callback, never sent again), and the relay with
// a batch in Redis and its checkpoint not moved (published again; nothing applied twice). Every
// message must end accepted, created once at Twilio, with nothing lost or doubled.
func TestFaultFailpoints(t *testing.T) {
	faultTests(t)
	t.Parallel()
	cases := []struct {
		point  string
		roles  string // the supervised process, armed to exit at the point
		others string // the rest of the deployment, in one process
		at     int    // the hit of each process life that exits
		exits  int    // at least this many: a dead saga's claim waits out its lease (1 min)
	}{
		{failpoint.AfterRequestingBeforeHTTP, "saga", "api,relay,projections,scheduler", 20, 2},
		{failpoint.After201BeforeRecord, "saga", "api,relay,projections,scheduler", 20, 2},
		{failpoint.AfterXAddBeforeCheckpoint, "relay", "api,projections,saga,scheduler", 2, 5},
	}
	for _, tc := range cases {
		t.Run(tc.point, func(t *testing.T) {
			t.Parallel()
			s := newStack(t, nil)
			s.startHerald("herald", tc.others, s.addr, nil)
			armed := s.supervise("herald-"+tc.roles, tc.roles, freeAddr(t),
				map[string]string{"HERALD_FAILPOINTS": fmt.Sprintf("%s=%d", tc.point, tc.at)})
			fc := newFaultCampaign(t, s, 60, map[string]any{"per_second": 20})
			fc.settle(t, 6*time.Minute)
			t.Logf("%s: the %s process exited there %d times", tc.point, tc.roles, armed.restarts())
			assert.GreaterOrEqual(t, armed.restarts(), tc.exits, "the process reached the point and exited, again and again")
		})
	}
}
