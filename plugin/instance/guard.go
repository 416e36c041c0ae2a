package instance

import (
	"runtime/debug"
	"sync/atomic"
)

// backgroundPanics counts panics recovered in the instance's own
// goroutines (spool writer, state snapshots); the exported functions of
// package main recover their own.
var backgroundPanics atomic.Int64

// guard recovers a panic of one unit of background work, logs it with its
// stack and counts it, so that a bug there costs that unit (an alert batch,
// a snapshot) instead of the whole Fluent Bit process. Defer it directly:
//
//	defer guard(log, "spool writer", &failures)
//
// n, if not nil, is also incremented.
func guard(log *Logger, what string, n *atomic.Int64) {
	r := recover()
	if r == nil {
		return
	}
	backgroundPanics.Add(1)
	if n != nil {
		n.Add(1)
	}
	log.Error("panic in %s recovered: %v\n%s", what, r, debug.Stack())
}
