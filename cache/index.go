package cache

import (
	"math/bits"
	"sync"
	"sync/atomic"
	"unsafe"
)

// index maps a flow's hash to the flow ristretto admitted, for the hot
// path: a lookup takes no lock and does not call ristretto. It is a cache
// of ristretto's contents, not the truth: an entry may be stale (the flow
// was evicted and requeued, or released), so a caller checks the flow's
// status and, under the flow's lock, that it is not released; the store
// falls back to ristretto and the pending table when the index has no
// usable flow.
//
// Layout: indexShards shards by the hash's top byte, each an
// open-addressing table with linear probing of 16-byte slots (hash, flow).
// Readers load the table and the slots atomically; writers hold the
// shard's mutex. A slot's hash never changes once set (a removed flow
// leaves a tombstone: the hash with a nil flow, reused only by the same
// hash), so a reader that finds the hash has found the one slot of that
// hash in its table. A table too full of flows or tombstones is copied
// into a new one, published atomically; a reader still probing the old one
// may miss a flow added since and takes the slow path, which looks again
// under the locks.
type index struct {
	shards [indexShards]indexShard
}

const (
	indexShards  = 256
	indexMinSize = 16
)

type indexShard struct {
	mu   sync.Mutex
	tab  atomic.Pointer[indexTab]
	live int      // slots holding a flow
	used int      // slots with a hash (live + tombstones)
	_    [32]byte // a shard to a cache line
}

type indexTab struct {
	slots []indexSlot
}

type indexSlot struct {
	h atomic.Uint64 // 0: empty
	f atomic.Pointer[Flow]
}

// indexSlotBytes is the index's memory per flow at its average load (a
// table is sized to be 55 % full of flows and grows at 80 %, so tables
// grow by about 1.45 times): 16-byte slots.
const indexSlotBytes = 24

func newIndexTab(size int) *indexTab {
	return &indexTab{slots: make([]indexSlot, size)}
}

// start is the slot where probing for h starts: the hash's low 56 bits
// (the top byte picks the shard) scaled to the table's length, so the
// hash must be uniform in those bits too (Store.hash is).
func (t *indexTab) start(h uint64) int {
	hi, _ := bits.Mul64(h<<8, uint64(len(t.slots)))
	return int(hi)
}

func (x *index) shard(h uint64) *indexShard { return &x.shards[h>>56] }

// get returns the flow under h, or nil. h is not 0.
func (x *index) get(h uint64) *Flow {
	t := x.shard(h).tab.Load()
	if t == nil {
		return nil
	}
	for i := t.start(h); ; {
		s := &t.slots[i]
		switch s.h.Load() {
		case h:
			return s.f.Load()
		case 0:
			return nil
		}
		if i++; i == len(t.slots) {
			i = 0
		}
	}
}

// prefetch asks the CPU to fetch the slot where a lookup of h starts.
func (x *index) prefetch(h uint64) {
	if t := x.shard(h).tab.Load(); t != nil {
		prefetch(uintptr(unsafe.Pointer(&t.slots[t.start(h)])))
	}
}

// put makes f the flow under h.
func (x *index) put(h uint64, f *Flow) {
	sh := x.shard(h)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	t := sh.tab.Load()
	if t == nil {
		t = newIndexTab(indexMinSize)
		sh.tab.Store(t)
	}
	i, found := t.find(h)
	if found {
		if t.slots[i].f.Swap(f) == nil {
			sh.live++
		}
		return
	}
	if 5*(sh.used+1) > 4*len(t.slots) {
		t = sh.rehash(t, sh.live+1)
		i, _ = t.find(h)
	}
	t.slots[i].f.Store(f) // the flow before the hash: a reader that sees the hash sees the flow
	t.slots[i].h.Store(h)
	sh.live++
	sh.used++
}

// del removes f from under h (nothing if another flow is there).
func (x *index) del(h uint64, f *Flow) {
	sh := x.shard(h)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	t := sh.tab.Load()
	if t == nil {
		return
	}
	if i, found := t.find(h); found && t.slots[i].f.CompareAndSwap(f, nil) {
		sh.live--
		if len(t.slots) > indexMinSize && 8*sh.live < len(t.slots) {
			sh.rehash(t, sh.live)
		}
	}
}

// find returns the slot holding h, or the empty slot where h would go.
func (t *indexTab) find(h uint64) (int, bool) {
	for i := t.start(h); ; {
		switch t.slots[i].h.Load() {
		case h:
			return i, true
		case 0:
			return i, false
		}
		if i++; i == len(t.slots) {
			i = 0
		}
	}
}

// rehash copies the shard's flows into a new table sized for n flows (55 %
// full) and publishes it. Called with sh.mu held.
func (sh *indexShard) rehash(old *indexTab, n int) *indexTab {
	t := newIndexTab(max(indexMinSize, n*20/11))
	live := 0
	for i := range old.slots {
		s := &old.slots[i]
		if f := s.f.Load(); f != nil {
			h := s.h.Load()
			j, _ := t.find(h)
			t.slots[j].f.Store(f)
			t.slots[j].h.Store(h)
			live++
		}
	}
	sh.live, sh.used = live, live
	sh.tab.Store(t)
	return t
}

// size returns the number of flows in the index.
func (x *index) size() int {
	n := 0
	for i := range x.shards {
		sh := &x.shards[i]
		sh.mu.Lock()
		n += sh.live
		sh.mu.Unlock()
	}
	return n
}
