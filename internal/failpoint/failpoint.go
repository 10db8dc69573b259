// Package failpoint ends a process at a named point in its code, for the fault tests of the
// reliability plan (reliability.md §7): a crash exactly between two steps — after Twilio
// accepted a message and before that was recorded, say — is the case an at-most-once design
// must survive, and a SIGKILL from outside only lands there by chance.
//
// A Set is parsed from HERALD_FAILPOINTS ("name=N,name=M"): the N-th time this process reaches
// the point, it exits with status 137, as if killed. A nil Set (the variable unset, always in
// production) makes every Hit a no-op.
package failpoint

import (
	"fmt"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
)

// The points Herald's code marks.
const (
	// AfterRequestingBeforeHTTP: the saga recorded send_attempted and is about to call Twilio.
	AfterRequestingBeforeHTTP = "after-requesting-before-http"
	// After201BeforeRecord: Twilio accepted the message and the saga has not recorded it.
	After201BeforeRecord = "after-201-before-record"
	// AfterXAddBeforeCheckpoint: the relay published a batch to Redis and has not moved its
	// checkpoint past it.
	AfterXAddBeforeCheckpoint = "after-xadd-before-checkpoint"
)

// Known lists every point, for Parse to refuse a misspelt one.
func Known() []string {
	return []string{AfterRequestingBeforeHTTP, After201BeforeRecord, AfterXAddBeforeCheckpoint}
}

// Set is the armed points of a process.
type Set struct {
	points map[string]*point
	exit   func(code int)
}

type point struct {
	at   int64
	hits atomic.Int64
}

// Parse reads "name=N,…" (N ≥ 1); "" gives a nil Set. Each error names the entry and why.
func Parse(spec string) (*Set, error) {
	spec = strings.TrimSpace(spec)
	if spec == "" {
		return nil, nil
	}
	s := &Set{points: map[string]*point{}, exit: os.Exit}
	for _, entry := range strings.Split(spec, ",") {
		name, n, ok := strings.Cut(strings.TrimSpace(entry), "=")
		if !ok {
			return nil, fmt.Errorf("failpoint %q: want name=N (exit on the N-th hit)", entry)
		}
		if !slices.Contains(Known(), name) {
			return nil, fmt.Errorf("failpoint %q: unknown point (known: %s)", name, strings.Join(Known(), ", "))
		}
		at, err := strconv.ParseInt(n, 10, 64)
		if err != nil || at < 1 {
			return nil, fmt.Errorf("failpoint %q: %q is not a count ≥ 1", name, n)
		}
		s.points[name] = &point{at: at}
	}
	return s, nil
}

// Hit marks that the process reached the point; on the armed hit it exits with status 137.
func (s *Set) Hit(name string) {
	if s == nil {
		return
	}
	if p := s.points[name]; p != nil && p.hits.Add(1) == p.at {
		s.exit(137)
	}
}
