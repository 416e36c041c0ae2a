package cache

import (
	"runtime"
	"sync/atomic"
)

// flowLock is Flow's mutex, in one word: 1 while held. Lock takes it with
// a compare-and-swap, as sync.Mutex does; Unlock releases it with a plain
// store where the CPU makes that a release (amd64, whose stores are not
// reordered with the loads and stores before them; see unlock_amd64.s),
// and with an atomic store elsewhere and under the race detector.
// sync.Mutex's Unlock is an atomic add, a locked instruction: on the
// plugin's flush path it and Lock's compare-and-swap took 59 % of the
// flow's observe (perf annotate of make bench-plugin's host run; see
// docs/benchmarks.md, "Session of 19:47 UTC").
//
// A flow is held briefly: an event counted (tens of nanoseconds), a View
// copied or a snapshot record written (a few microseconds for a dense
// flow), two flows merged. Two goroutines rarely want one flow at once
// (two flush workers counting it in the same instant), so a waiter spins
// a few times and then yields its P between tries. It never parks: a
// holder that lost its thread to the scheduler costs a waiter CPU until
// it runs again, where sync.Mutex would have put the waiter to sleep.
type flowLock struct{ v atomic.Uint32 }

// Lock takes the lock.
func (l *flowLock) Lock() {
	if !l.v.CompareAndSwap(0, 1) {
		l.lockSlow()
	}
}

func (l *flowLock) lockSlow() {
	for spins := 0; ; spins++ {
		if l.v.Load() == 0 && l.v.CompareAndSwap(0, 1) {
			return
		}
		if spins >= flowLockSpins {
			runtime.Gosched()
		}
	}
}

// flowLockSpins is how many times a waiter looks again before it yields.
const flowLockSpins = 8
