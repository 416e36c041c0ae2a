package cache

import (
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// TestFlowLockExcludes increments a plain counter under the lock from
// several goroutines: with the lock broken (a release that let the
// increments' stores pass it, or two holders at once), the total comes
// out short. It runs without the race detector too, where Unlock is the
// plain store of unlock_amd64.s.
func TestFlowLockExcludes(t *testing.T) {
	const workers, each = 4, 200000
	var l flowLock
	var n, holders int
	var wg sync.WaitGroup
	var bad atomic.Int32
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range each {
				l.Lock()
				if holders++; holders != 1 {
					bad.Add(1)
				}
				n++
				if i%1024 == 0 {
					runtime.Gosched() // a holder that loses its P: waiters must yield, not spin forever
				}
				holders--
				l.Unlock()
			}
		}()
	}
	wg.Wait()
	if n != workers*each || bad.Load() != 0 {
		t.Fatalf("counter %d, want %d; %d times another goroutine held the lock", n, workers*each, bad.Load())
	}
}

// TestFlowLockWaitsForUnlock checks that Lock waits while the lock is held
// and returns once it is released.
func TestFlowLockWaitsForUnlock(t *testing.T) {
	var l flowLock
	l.Lock()
	got := make(chan struct{})
	go func() {
		l.Lock()
		close(got)
		l.Unlock()
	}()
	select {
	case <-got:
		t.Fatal("Lock returned while the lock was held")
	case <-time.After(50 * time.Millisecond):
	}
	l.Unlock()
	select {
	case <-got:
	case <-time.After(5 * time.Second):
		t.Fatal("Lock did not return after Unlock")
	}
}
