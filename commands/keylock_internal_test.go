package commands

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestKeyLocksSerializeOneKey(t *testing.T) {
	k := newKeyLocks()
	var (
		wg      sync.WaitGroup
		mu      sync.Mutex
		inside  int
		maxSeen int
	)
	for i := 0; i < 50; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			unlock, err := k.lock(context.Background(), "+51987650001")
			require.NoError(t, err)
			mu.Lock()
			inside++
			maxSeen = max(maxSeen, inside)
			mu.Unlock()
			time.Sleep(100 * time.Microsecond)
			mu.Lock()
			inside--
			mu.Unlock()
			unlock()
		}()
	}
	wg.Wait()
	assert.Equal(t, 1, maxSeen, "one holder at a time")
	assert.Zero(t, k.size(), "no entry outlives its holders")
}

func TestKeyLocksOtherKeysAndCancel(t *testing.T) {
	k := newKeyLocks()
	unlockA, err := k.lock(context.Background(), "a")
	require.NoError(t, err)

	// Another key is free at once.
	unlockB, err := k.lock(context.Background(), "b")
	require.NoError(t, err)
	unlockB()

	// A waiter for a held key gives up when its context ends, and leaves nothing behind.
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	_, err = k.lock(ctx, "a")
	assert.ErrorIs(t, err, context.DeadlineExceeded)
	assert.Equal(t, 1, k.size())

	unlockA()
	assert.Zero(t, k.size())
	unlockA2, err := k.lock(context.Background(), "a")
	require.NoError(t, err, "free again after the unlock")
	unlockA2()
}
