package commands

import (
	"context"
	"sync"
)

// keyLocks serializes work on one key (a user's phone) within this process, so that two
// webhooks from the same sender in flight together queue one behind the other instead of racing
// to the same stream version, where the loser reads and appends again. Other processes are
// still held off by the append's expected version; this only spares the retry. Entries live
// while someone holds or waits for them.
type keyLocks struct {
	mu    sync.Mutex
	locks map[string]*keyLock
}

type keyLock struct {
	held chan struct{} // a token in the channel: held
	refs int           // holders and waiters
}

func newKeyLocks() *keyLocks { return &keyLocks{locks: map[string]*keyLock{}} }

// lock waits until key is free or ctx ends; unlock releases it.
func (k *keyLocks) lock(ctx context.Context, key string) (unlock func(), err error) {
	k.mu.Lock()
	l := k.locks[key]
	if l == nil {
		l = &keyLock{held: make(chan struct{}, 1)}
		k.locks[key] = l
	}
	l.refs++
	k.mu.Unlock()

	release := func() {
		k.mu.Lock()
		if l.refs--; l.refs == 0 {
			delete(k.locks, key)
		}
		k.mu.Unlock()
	}
	select {
	case l.held <- struct{}{}:
		return func() { <-l.held; release() }, nil
	case <-ctx.Done():
		release()
		return nil, ctx.Err()
	}
}

// size is how many keys are held or waited for (for tests).
func (k *keyLocks) size() int {
	k.mu.Lock()
	defer k.mu.Unlock()
	return len(k.locks)
}
