package cache

import (
	"math"
	"sync"
	"sync/atomic"
)

// Flow is the state of one flow (source -> destination): its per-minute
// counts over the sliding window and a few running statistics. A *Flow is
// shared by the store and its callers; every method is safe for concurrent
// use. A caller may keep a *Flow after the store evicted it: its methods
// keep working, but events no longer reach it.
type Flow struct {
	mu     sync.Mutex
	hash   uint64
	key    string // src + "\x00" + dst
	srcLen int
	src    *source
	counts
	firstSec, lastSec int64 // event time (Unix seconds) of the oldest and newest events
	gap               welford
	size              welford
	marks             Marks
	state             atomic.Uint32
	released          atomic.Bool
}

// Marks is per-flow bookkeeping owned by the caller (the detector): the
// store keeps it with the flow and never reads it. Guarded by the flow lock.
type Marks struct {
	NextScore   int32   // Unix minute at or after which the flow is due for scoring
	AlertMinute int32   // Unix minute of the last alert (0: never)
	AlertScore  float32 // score of the last alert
}

const (
	stateInFlight = iota // Set sent to ristretto, outcome unknown (or admitted)
	stateRejected        // refused by admission; the next event retries
	stateEvicted         // evicted after admission
)

// welford keeps a running mean and variance.
type welford struct {
	n    uint32
	mean float64
	m2   float64
}

func (w *welford) add(x float64) {
	w.n++
	d := x - w.mean
	w.mean += d / float64(w.n)
	w.m2 += d * (x - w.mean)
}

// cv returns the coefficient of variation (std/mean), 0 when undefined.
func (w *welford) cv() float64 {
	if w.n < 2 || w.mean <= 0 {
		return 0
	}
	return math.Sqrt(w.m2/float64(w.n-1)) / w.mean
}

// Src returns the flow's source.
func (f *Flow) Src() string { return f.key[:f.srcLen] }

// Dst returns the flow's destination (a domain, or ip:port).
func (f *Flow) Dst() string { return f.key[f.srcLen+1:] }

// Key returns the flow key, Src()+"\x00"+Dst().
func (f *Flow) Key() string { return f.key }

// observe counts one event. It returns whether the event moved the flow
// into a newer minute and, if so, whether the flow is now due for scoring.
// grew is the change in the flow's heap bytes.
func (f *Flow) observe(abs int32, sec int64, bytes int64) (counted, due bool, grew int64) {
	f.mu.Lock()
	defer f.mu.Unlock()
	fresh := f.cells == nil && f.dense == nil
	prevLast := f.last
	before := f.counts.bytes()
	if !f.add(abs, 1) {
		return false, false, 0
	}
	grew = int64(f.counts.bytes() - before)
	switch {
	case fresh:
		f.firstSec, f.lastSec = sec, sec
	case sec >= f.lastSec:
		f.gap.add(float64(sec - f.lastSec))
		f.lastSec = sec
	case sec < f.firstSec:
		f.firstSec = sec
	}
	if bytes >= 0 {
		f.size.add(float64(bytes))
	}
	if fresh || abs > prevLast {
		due = abs >= f.marks.NextScore
	}
	return true, due, grew
}

// View is a copy of a flow's state at one moment, for scoring.
type View struct {
	Src, Dst string
	// Counts holds the per-minute counts of the window ending at End, oldest
	// first: Counts[Minutes-1] is minute End.
	Counts [Minutes]uint16
	End    int32 // Unix minute the window ends at
	// FirstSec and LastSec are the event times of the oldest and newest events.
	FirstSec, LastSec int64
	// GapCV is the coefficient of variation of inter-arrival times (seconds)
	// of in-order events; GapMean their mean; Gaps their number.
	GapCV, GapMean float64
	Gaps           int
	// SizeCV and SizeMean describe the request sizes, when the logs give them.
	SizeCV, SizeMean float64
	// SrcOnline is how many minutes of the window the source was seen
	// sending anything at all; Prevalence how many tracked sources reach
	// the destination; Sources how many sources are tracked in all.
	SrcOnline  int
	Prevalence int
	Sources    int
	Marks      Marks
}

// SetMarks replaces the flow's marks.
func (f *Flow) SetMarks(m Marks) {
	f.mu.Lock()
	f.marks = m
	f.mu.Unlock()
}

// bytes estimates the heap the flow holds: what ristretto is charged.
func (f *Flow) bytes() int64 {
	const structBytes = 200
	return int64(structBytes + len(f.key) + f.counts.bytes())
}
