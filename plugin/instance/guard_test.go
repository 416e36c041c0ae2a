package instance

import (
	"sync/atomic"
	"testing"
)

// A panic in background work is recovered, counted, and ends only that
// unit of work.
func TestGuardRecoversBackgroundPanics(t *testing.T) {
	var n atomic.Int64
	before := backgroundPanics.Load()
	ran := false
	func() {
		defer guard(NewLogger("guard-test"), "test work", &n)
		ran = true
		var m map[string]int
		m["x"] = 1 // a nil map write panics
	}()
	if !ran || n.Load() != 1 || backgroundPanics.Load() != before+1 {
		t.Fatalf("ran %v, unit counter %d, panics %d (was %d)", ran, n.Load(), backgroundPanics.Load(), before)
	}
	func() { defer guard(NewLogger("guard-test"), "quiet work", &n) }()
	if n.Load() != 1 || backgroundPanics.Load() != before+1 {
		t.Fatal("guard counted a unit of work that did not panic")
	}
}

// The state keeper's periodic write survives a panic inside the store (a
// nil store here): the error is counted, Fluent Bit keeps running.
func TestStateWritePanicIsContained(t *testing.T) {
	k := &stateKeeper{log: NewLogger("guard-test"), path: t.TempDir() + "/state.bgs"}
	before := backgroundPanics.Load()
	k.write()
	if k.errors.Load() != 1 || k.writes.Load() != 0 || backgroundPanics.Load() != before+1 {
		t.Fatalf("errors %d, writes %d after a panicking write", k.errors.Load(), k.writes.Load())
	}
}
