package cache

import (
	"math"
	"sync/atomic"
	"unsafe"
)

// Flow is the state of one flow (source -> destination): its per-minute
// counts over the sliding window and a few running statistics. A *Flow is
// shared by the store and its callers; every method is safe for concurrent
// use. A caller may keep a *Flow after the store evicted it: its methods
// keep working, but events no longer reach it.
//
// The struct is laid out to fit the 112-byte allocation class; the flow's
// key is its source's address and its destination's name, both shared.
type Flow struct {
	mu    flowLock
	state atomic.Uint32 // statusInFlight, statusRejected or statusAdmitted, | released
	gapN  uint32        // the gap welford's count, kept here to pack the struct
	src   *source
	dst   *dest
	counts
	firstSec, lastSec uint32 // event time (Unix seconds) of the oldest and newest events
	gap, size         welford
	sizeN             uint32 // the size welford's count
	marks             Marks
}

// Marks is per-flow bookkeeping owned by the caller (the detector): the
// store keeps it with the flow (and in snapshots) and never reads it.
// Guarded by the flow lock.
type Marks struct {
	NextScore   int32   // Unix minute at or after which the flow is due for scoring
	AlertMinute int32   // Unix minute of the last alert (0: never)
	AlertScore  float32 // score of the last alert
}

// A flow's admission status (the low bits of Flow.state) and the released
// bit. A flow is released exactly once, under its lock, when the store
// stops tracking it (evicted, or dropped while refused); an event that
// finds its flow released looks the flow up again, so it is never counted
// into a flow nobody will read.
const (
	statusInFlight = 0 // Set sent to ristretto, outcome unknown
	statusRejected = 1 // refused (admission or a full buffer); the next event offers it again
	statusAdmitted = 2 // seen in ristretto by a Get
	statusYoung    = 3 // in the nursery, not offered to ristretto (see nursery)
	statusMask     = 3
	released       = 4
)

func (f *Flow) status() uint32 { return f.state.Load() & statusMask }

// loadState returns f's state word, or released if f is nil.
func (f *Flow) loadState() uint32 {
	if f == nil {
		return released
	}
	return f.state.Load()
}
func (f *Flow) isReleased() bool { return f.state.Load()&released != 0 }

// setStatus changes the status unless the flow is released.
func (f *Flow) setStatus(st uint32) {
	for {
		old := f.state.Load()
		if old&released != 0 || f.state.CompareAndSwap(old, old&^statusMask|st) {
			return
		}
	}
}

// casStatus changes the status from old to st.
func (f *Flow) casStatus(from, to uint32) bool {
	return f.state.CompareAndSwap(from, to)
}

// welford keeps a running mean and variance (its count lives in Flow).
type welford struct {
	mean float64
	m2   float64
}

func (w *welford) add(n *uint32, x float64) {
	*n++
	d := x - w.mean
	w.mean += d / float64(*n)
	w.m2 += d * (x - w.mean)
}

// merge adds the observations of o (count on) to w (count *n).
func (w *welford) merge(n *uint32, o *welford, on uint32) {
	if on == 0 {
		return
	}
	if *n == 0 {
		*w, *n = *o, on
		return
	}
	n1, n2 := float64(*n), float64(on)
	d := o.mean - w.mean
	t := n1 + n2
	w.mean += d * n2 / t
	w.m2 += o.m2 + d*d*n1*n2/t
	*n += on
}

// cv returns the coefficient of variation (std/mean), 0 when undefined.
func (w *welford) cv(n uint32) float64 {
	if n < 2 || w.mean <= 0 {
		return 0
	}
	return math.Sqrt(w.m2/float64(n-1)) / w.mean
}

// Src returns the flow's source.
func (f *Flow) Src() string { return f.src.ip }

// Dst returns the flow's destination (a domain, or ip:port).
func (f *Flow) Dst() string { return f.dst.name }

// Key returns the flow key, Src()+"\x00"+Dst().
func (f *Flow) Key() string { return f.src.ip + "\x00" + f.dst.name }

// is reports whether f is the flow src -> dst.
func (f *Flow) is(src, dst []byte) bool { return f.src.ip == string(src) && f.dst.name == string(dst) }

// observe outcomes.
const (
	obsCounted    = iota
	obsSameMinute // counted, in the flow's newest minute, which an earlier event had
	obsNewMinute  // counted, the first event of the flow in a newer minute than before
	obsOld        // before the flow's window
	obsReleased   // the flow is no longer tracked: look it up again
	obsMature     // as obsNewMinute, and the young flow is now active in matureMinutes minutes
)

// observe counts one event. due says whether the event moved the flow into
// a newer minute and the flow is now due for scoring. grew is the change in
// the flow's bytes; it is added to *total under the flow lock, so that a
// concurrent release subtracts exactly what was added.
func (f *Flow) observe(abs int32, sec uint32, bytes int64, total *atomic.Int64) (res int, due bool, grew int64) {
	f.mu.Lock()
	if f.state.Load()&released != 0 {
		f.mu.Unlock()
		return obsReleased, false, 0
	}
	fresh := f.empty()
	prevLast := f.last
	before := f.counts.bytes()
	if !f.add(abs, 1) {
		f.mu.Unlock()
		return obsOld, false, 0
	}
	if grew = int64(f.counts.bytes() - before); grew != 0 {
		total.Add(grew)
	}
	switch {
	case fresh:
		f.firstSec, f.lastSec = sec, sec
	case sec >= f.lastSec:
		f.gap.add(&f.gapN, float64(sec-f.lastSec))
		f.lastSec = sec
	case sec < f.firstSec:
		f.firstSec = sec
	}
	f.events++
	if bytes >= 0 {
		f.size.add(&f.sizeN, float64(bytes))
	}
	switch {
	case fresh:
		due, res = abs >= f.marks.NextScore, obsCounted
	case abs > prevLast:
		due, res = abs >= f.marks.NextScore, obsNewMinute
		if f.state.Load()&statusMask == statusYoung && f.counts.mature() {
			res = obsMature
		}
	case abs == prevLast:
		res = obsSameMinute
	default:
		res = obsCounted
	}
	f.mu.Unlock()
	return res, due, grew
}

// prefetchState asks the CPU to fetch the counts and the source words that
// counting an event at minute abs touches: the newest cell, and for an
// event in a newer minute than the flow's the oldest cell (advance reads
// it) and the source's bit word of the minute (mark sets it; see
// BenchmarkObserveReplay in docs/benchmarks.md). It reads the counts' fields
// without the flow lock, on purpose: the values only make addresses for
// prefetch, which never faults, and a stale one costs a miss, nothing
// more. The race detector is told not to look (go:norace); the reads go
// through uintptr so that no stale pointer is ever held as one.
//
//go:norace
func (f *Flow) prefetchState(abs int32) {
	c := &f.counts
	p := *(*uintptr)(unsafe.Pointer(&c.p))
	if p == 0 {
		return
	}
	newer := abs > c.last
	if c.base == denseBase {
		prefetch(p + uintptr(mod(abs))*2)
	} else if c.n > 0 {
		q := p + 4*uintptr(c.n-1)
		prefetch(q) // the newest cell, where most events land
		if newer && p>>6 != q>>6 {
			prefetch(p) // the oldest, which advance checks for the window's end
		}
	}
	src := *(*uintptr)(unsafe.Pointer(&f.src))
	prefetch(src)
	if newer && src != 0 {
		// The word of the source's minute bits that mark sets when the
		// minute is new to the source too.
		prefetch(src + unsafe.Offsetof(source{}.bits) + uintptr(mod(abs)>>6)*8)
	}
}

// release marks the flow released and returns the bytes it was charged, or
// reports false if it was released already.
func (f *Flow) release() (int64, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.markReleased()
}

// markReleased is release with f.mu held.
func (f *Flow) markReleased() (int64, bool) {
	for {
		old := f.state.Load()
		if old&released != 0 {
			return 0, false
		}
		if f.state.CompareAndSwap(old, old|released) {
			return f.bytes(), true
		}
	}
}

// mergeFrom adds o's counts and statistics to f (both locked): o is an
// older flow for the same key. The gap between o's newest event and f's
// oldest is not counted as a gap.
func (f *Flow) mergeFrom(o *Flow) {
	if o.empty() {
		return
	}
	o.each(func(abs int32, n uint16) { f.add(abs, n) })
	if f.events == 0 || o.firstSec < f.firstSec {
		f.firstSec = o.firstSec
	}
	f.lastSec = max(f.lastSec, o.lastSec)
	f.events += o.events
	f.gap.merge(&f.gapN, &o.gap, o.gapN)
	f.size.merge(&f.sizeN, &o.size, o.sizeN)
	if f.marks == (Marks{}) {
		f.marks = o.marks
	}
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

// Memory charged per flow beyond its counts, in bytes: the Flow struct (its
// 112-byte allocation class), ristretto's bookkeeping for one item (its
// store map slot holding a 48-byte storeItem, its policy cost map slot, at
// the maps' average load), the store's index slot (indexSlotBytes). Sources and destinations, which flows share, are
// accounted by the store as a whole (Store.chargeShared).
// TestHeavyMemoryPerFlow compares the charge with the measured heap.
const (
	flowStructBytes = 112
	ristrettoBytes  = 128
)

// Flow must fit its allocation class.
var _ [flowStructBytes - unsafe.Sizeof(Flow{})]byte

// bytes is the memory the flow is charged: what ristretto is told it costs.
// A young flow has no ristretto item; its nursery slot is charged instead.
// Call with f.mu held, or before f is shared (the status changes from young
// only under the lock, see Store.promote).
func (f *Flow) bytes() int64 {
	if f.state.Load()&statusMask == statusYoung {
		return int64(flowStructBytes + youngSlotBytes + indexSlotBytes + f.counts.bytes())
	}
	return int64(flowStructBytes + ristrettoBytes + indexSlotBytes + f.counts.bytes())
}
