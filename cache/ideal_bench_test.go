package cache

import (
	"hash/maphash"
	"math/rand/v2"
	"runtime"
	"sync/atomic"
	"testing"
	"unsafe"
)

// BenchmarkIdeal is a floor for counting at a million flows on this
// machine: what a far leaner table than Store costs on the same events.
// Each flow is one 64-byte slot of one open-addressing table (its hash, a
// lock word, its newest minute and that minute's count, its running
// statistics, and a pointer to its older minutes' cells, sparse or a dense
// ring as in counts), so that an event in its flow's newest minute touches
// one cache line and an event in a newer minute two or three (the slot, the
// newest and oldest cells). It has no memory bound, no admission, no
// eviction, no sources, no snapshot and no late events (they are counted
// in no minute), and it is safe for concurrent use only as far as its lock
// word goes: a floor, not a store. Events go in batches of batchLen, in
// stages as ObserveBatch's: hash each and prefetch its slot; find each slot
// and prefetch the cells an event in a newer minute touches; count.
//   - "replay": BenchmarkObserveReplay's stream (set-up day, then the next);
//   - "uniform": BenchmarkObserve/uniform-batch's flows and events;
//   - "uniform-bare": the same, each event only finding its slot and
//     adding one to its count (no lock, no statistics, no window);
//   - "uniform-loop": the benchmark's own part of "uniform" (events made,
//     not counted).
func BenchmarkIdeal(b *testing.B) {
	b.Run("replay", func(b *testing.B) {
		r := loadReplay(b)
		t := newIdealTable(1 << 21)
		r.run(r.events, 0, t.batch) // the set-up day
		if t.flows < 1000000 {
			b.Fatalf("%d flows", t.flows)
		}
		runtime.GC()
		b.ReportAllocs()
		b.ResetTimer()
		n := r.run(b.N, 1, t.batch)
		b.StopTimer()
		if n != b.N || t.counted != int64(r.events+b.N) {
			b.Fatalf("counted %d of %d", t.counted, r.events+b.N)
		}
		b.ReportMetric(float64(t.flows), "flows")
	})
	for _, mode := range []string{"uniform", "uniform-bare", "uniform-loop"} {
		b.Run(mode, func(b *testing.B) { benchIdealUniform(b, mode) })
	}
}

// benchIdealUniform runs BenchmarkIdeal's "uniform" modes.
func benchIdealUniform(b *testing.B, mode string) {
	loopOnly := mode == "uniform-loop"
	// BenchmarkObserve/uniform-batch's flows and events.
	const n = bigSrcN * bigDstN
	srcs, dsts := bigKeys()
	t := newIdealTable(1 << 21)
	var evs [batchLen]Event
	keys := make([]byte, batchLen*64)
	for k := 0; k < n; k += batchLen {
		room := keys
		for x := range evs {
			j := (k + x) % bigDstN
			var src, dst []byte
			src, dst, room = joinKey(room, srcs[(k+x)/bigDstN], dsts[j])
			evs[x] = Event{Src: src, Dst: dst, Sec: t0.Unix() + int64(j), Size: 1}
		}
		t.batch(evs[:])
	}
	if t.flows != n {
		b.Fatalf("%d flows", t.flows)
	}
	r := rand.New(rand.NewPCG(1, 2))
	idx := make([]int32, 1<<20)
	for i := range idx {
		idx[i] = int32(r.IntN(n))
	}
	before := t.counted
	t.bare = mode == "uniform-bare"
	runtime.GC()
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; {
		m := min(batchLen, b.N-i)
		bigBatch(evs[:m], keys, idx, i, srcs, dsts)
		if !loopOnly {
			t.batch(evs[:m])
		}
		i += m
	}
	b.StopTimer()
	if loopOnly {
		return
	}
	if t.counted-before != int64(b.N) || t.flows != n {
		b.Fatalf("counted %d of %d, %d flows", t.counted-before, b.N, t.flows)
	}
}

// idealSlot is one flow of idealTable.
type idealSlot struct {
	h       uint64
	lock    atomic.Uint32
	last    int32  // the newest minute
	newest  uint16 // its count
	n, c    uint16 // older cells in use, and the array's length
	lastSec uint32
	gapN    uint32
	sizeN   uint32
	base    int32 // the older cells' minute of offset 0
	cells   *cell // the older minutes
	gap     welford32
	size    welford32
}

// welford32 is welford in float32, to fit the slot.
type welford32 struct{ mean, m2 float32 }

func (w *welford32) add(n *uint32, x float32) {
	*n++
	d := x - w.mean
	w.mean += d / float32(*n)
	w.m2 += d * (x - w.mean)
}

var _ [64 - unsafe.Sizeof(idealSlot{})]byte
var _ [unsafe.Sizeof(idealSlot{}) - 64]byte

// idealDense in idealSlot.c marks cells as a dense ring of Minutes
// counts.
const idealDense = 0xffff

// idealTable is BenchmarkIdeal's table (not safe for concurrent use).
type idealTable struct {
	slots   []idealSlot
	seed    maphash.Seed
	flows   int
	counted int64
	bare    bool // count only (benchIdealUniform)
	hs      [batchLen]uint64
	at      [batchLen]*idealSlot
}

func newIdealTable(n int) *idealTable {
	return &idealTable{slots: make([]idealSlot, n), seed: maphash.MakeSeed()}
}

// batch counts evs (their keys back to back, as the detector lays them).
func (t *idealTable) batch(evs []Event) {
	mask := uint64(len(t.slots) - 1)
	for i := range evs {
		e := &evs[i]
		n := len(e.Src) + len(e.Dst)
		h := maphash.Bytes(t.seed, e.Src[:n]) | 1 // the keys lie back to back
		t.hs[i] = h
		prefetch(uintptr(unsafe.Pointer(&t.slots[h&mask])))
	}
	for i := range evs {
		h := t.hs[i]
		j := h & mask
		for t.slots[j].h != h && t.slots[j].h != 0 {
			j = (j + 1) & mask
		}
		s := &t.slots[j]
		t.at[i] = s
		if abs := int32(evs[i].Sec / 60); abs > s.last && s.cells != nil {
			p := uintptr(unsafe.Pointer(s.cells))
			if s.c == idealDense {
				prefetch(p + 2*uintptr(mod(s.last)))
				prefetch(p + 2*uintptr(mod(abs)))
			} else {
				prefetch(p) // the oldest, checked against the window
				prefetch(p + 4*uintptr(s.n))
			}
		}
	}
	for i := range evs {
		e := &evs[i]
		s := t.at[i]
		if h := t.hs[i]; s.h != h {
			// A new flow; or two new flows of the batch found one empty
			// slot in stage 2, and an earlier one took it.
			j := h & mask
			for t.slots[j].h != h && t.slots[j].h != 0 {
				j = (j + 1) & mask
			}
			if s = &t.slots[j]; s.h == 0 {
				s.h = h
				t.flows++
			}
		}
		if t.bare {
			s.newest++
			continue
		}
		for !s.lock.CompareAndSwap(0, 1) {
		}
		s.add(int32(e.Sec/60), uint32(e.Sec), e.Size)
		s.lock.Store(0)
	}
	t.counted += int64(len(evs))
}

// add counts an event at minute abs, second sec, of size bytes.
func (s *idealSlot) add(abs int32, sec uint32, size int64) {
	switch {
	case s.newest == 0:
		s.last, s.newest, s.base = abs, 1, abs-Minutes+1
	case abs == s.last:
		s.newest = satAdd(s.newest, 1)
	case abs > s.last && s.c == idealDense:
		ring := (*[Minutes]uint16)(unsafe.Pointer(s.cells))
		if s.last > abs-Minutes {
			ring[mod(s.last)] = s.newest
		}
		for m := max(s.last+1, abs-Minutes+1); m <= abs; m++ {
			ring[mod(m)] = 0
		}
		s.last, s.newest = abs, 1
	case abs > s.last && s.n >= denseAfter:
		ring := new([Minutes]uint16)
		for _, x := range unsafe.Slice(s.cells, int(s.n)) {
			if m := s.base + int32(x.off); m > abs-Minutes {
				ring[mod(m)] = x.n
			}
		}
		if s.last > abs-Minutes {
			ring[mod(s.last)] = s.newest
		}
		s.cells, s.c = (*cell)(unsafe.Pointer(ring)), idealDense
		s.last, s.newest = abs, 1
	case abs > s.last:
		// The newest minute becomes an older cell; cells out of the
		// window are dropped at the front.
		cells := unsafe.Slice(s.cells, int(s.c))[:s.n]
		k := 0
		for k < len(cells) && s.base+int32(cells[k].off) <= abs-Minutes {
			k++
		}
		if k > 0 {
			cells = cells[:copy(cells, cells[k:])]
		}
		if abs-s.base > maxOff {
			d := abs - Minutes + 1 - s.base
			for i := range cells {
				cells[i].off -= uint16(d)
			}
			s.base += d
		}
		if s.last > abs-Minutes {
			cells = append(cells, cell{off: uint16(s.last - s.base), n: s.newest})
		}
		s.cells, s.n, s.c = unsafe.SliceData(cells), uint16(len(cells)), uint16(cap(cells))
		s.last, s.newest = abs, 1
	default: // a late event: the floor leaves it out of the cells
	}
	if sec >= s.lastSec {
		s.gap.add(&s.gapN, float32(sec-s.lastSec))
		s.lastSec = sec
	}
	if size >= 0 {
		s.size.add(&s.sizeN, float32(size))
	}
}
