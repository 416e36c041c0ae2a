// Package cache holds the edge state: for every flow (source ->
// destination) the per-minute event counts over a sliding 24 h window of
// EVENT time, bounded in memory by a ristretto cache whose cost is the
// flow's real bytes.
//
// Semantics that bite, and how this package meets them:
//   - ristretto's Set is asynchronous and may be refused by TinyLFU
//     admission. A new flow therefore waits in a small bounded "pending"
//     table until ristretto either shows it (admitted) or refuses it. Every
//     event for a pending flow is counted into the same *Flow, and a refused
//     flow is offered again on its next event with all its counts, so no
//     increment to a flow that ends up kept is lost. Only when the pending
//     table overflows is a refused flow dropped (counted in Stats).
//   - ristretto never updates a value in place; values here are *Flow and
//     all counting happens behind the flow's own mutex. There is no
//     get-modify-set anywhere.
//   - The window follows the newest event time accepted (the watermark).
//     Events at or before watermark-24h are rejected as too old; events more
//     than MaxFuture after the wall clock are rejected as too new. Both are
//     counted.
//
// Lifetime: New starts ristretto's goroutines; Close stops them and must be
// called only after every caller of Observe has returned.
package cache

import (
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cespare/xxhash/v2"
	"github.com/dgraph-io/ristretto/v2"
)

// Config configures a Store.
type Config struct {
	// MaxBytes bounds the memory charged to tracked flows (ristretto's
	// MaxCost, in bytes). Default 256 MiB. Too small evicts long-lived flows
	// before they can be scored.
	MaxBytes int64
	// ExpectedFlows sizes ristretto's frequency counters (10x this number).
	// Default MaxBytes/256.
	ExpectedFlows int64
	// PendingFlows bounds new flows waiting for (or refused) admission.
	// Default 65536.
	PendingFlows int
	// MaxFuture is how far past the wall clock an event may lie. Default 10m.
	MaxFuture time.Duration
	// Now is the wall clock (tests inject one). Default time.Now.
	Now func() time.Time
}

// Result says what Observe did with an event.
type Result uint8

const (
	Counted  Result = iota // counted into its flow
	TooOld                 // before the window
	TooNew                 // too far in the future
	Refused                // the flow could not be tracked (pending table full, hash conflict)
	BadInput               // empty source or destination, key too long
)

// MaxKeyLen is the longest src+dst accepted.
const MaxKeyLen = 512

// Stats are the store's counters since New.
type Stats struct {
	Flows        int64 // flows tracked (admitted or pending)
	Bytes        int64 // bytes charged to tracked flows
	Counted      int64
	TooOld       int64
	TooNew       int64
	Refused      int64 // events for flows that could not be tracked
	BadInput     int64
	Rejections   int64 // admissions refused by ristretto (the flow is offered again)
	Dropped      int64 // refused flows dropped from the pending table
	Evictions    int64
	HashConflict int64
	Sources      int64
}

// Store tracks flows. Safe for concurrent use.
type Store struct {
	cfg     Config
	rc      *ristretto.Cache[uint64, *Flow]
	tab     *table
	pending [shards]pendingShard
	wm      atomic.Int32 // watermark: newest accepted Unix minute

	flows, bytes                             atomic.Int64
	counted, tooOld, tooNew, refused, badIn  atomic.Int64
	rejections, dropped, evictions, conflict atomic.Int64
}

type pendingShard struct {
	mu   sync.Mutex
	m    map[uint64]*Flow
	fifo []uint64
	head int
}

// New returns a Store.
func New(cfg Config) (*Store, error) {
	switch {
	case cfg.MaxBytes < 0:
		return nil, errors.New("cache: MaxBytes must not be negative")
	case cfg.ExpectedFlows < 0:
		return nil, errors.New("cache: ExpectedFlows must not be negative")
	case cfg.PendingFlows < 0:
		return nil, errors.New("cache: PendingFlows must not be negative")
	case cfg.MaxFuture < 0:
		return nil, errors.New("cache: MaxFuture must not be negative")
	}
	if cfg.MaxBytes == 0 {
		cfg.MaxBytes = 256 << 20
	}
	if cfg.ExpectedFlows == 0 {
		cfg.ExpectedFlows = max(cfg.MaxBytes/256, 1024)
	}
	if cfg.PendingFlows == 0 {
		cfg.PendingFlows = 65536
	}
	if cfg.MaxFuture == 0 {
		cfg.MaxFuture = 10 * time.Minute
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	s := &Store{cfg: cfg, tab: newTable()}
	per := max(cfg.PendingFlows/shards, 4)
	for i := range s.pending {
		s.pending[i].m = make(map[uint64]*Flow, per)
		s.pending[i].fifo = make([]uint64, 0, per)
	}
	rc, err := ristretto.NewCache(&ristretto.Config[uint64, *Flow]{
		NumCounters: cfg.ExpectedFlows * 10,
		MaxCost:     cfg.MaxBytes,
		BufferItems: 64,
		OnEvict: func(it *ristretto.Item[*Flow]) {
			s.evictions.Add(1)
			it.Value.state.Store(stateEvicted)
			s.release(it.Value)
		},
		OnReject: func(it *ristretto.Item[*Flow]) {
			s.rejections.Add(1)
			it.Value.state.Store(stateRejected)
		},
	})
	if err != nil {
		return nil, fmt.Errorf("cache: %w", err)
	}
	s.rc = rc
	return s, nil
}

// Close stops the store's background goroutines. Call it only after every
// caller of Observe has returned.
func (s *Store) Close() {
	if s != nil {
		s.rc.Close()
	}
}

// Watermark returns the newest accepted event minute (Unix minutes).
func (s *Store) Watermark() int32 { return s.wm.Load() }

// Observe counts one event of flow src -> dst at event time sec (Unix
// seconds) with a request size (negative when unknown). It returns the flow
// and whether it is due for scoring (see Flow marks); f is nil unless r is
// Counted. src and dst are not retained.
func (s *Store) Observe(src, dst []byte, sec int64, size int64) (f *Flow, due bool, r Result) {
	if len(src) == 0 || len(dst) == 0 || len(src)+len(dst)+1 > MaxKeyLen {
		s.badIn.Add(1)
		return nil, false, BadInput
	}
	if sec > s.cfg.Now().Add(s.cfg.MaxFuture).Unix() {
		s.tooNew.Add(1)
		return nil, false, TooNew
	}
	abs := int32(floorDiv(sec, 60))
	wm := s.wm.Load()
	if abs <= wm-Minutes {
		s.tooOld.Add(1)
		return nil, false, TooOld
	}
	for abs > wm && !s.wm.CompareAndSwap(wm, abs) {
		wm = s.wm.Load()
	}
	var kb [MaxKeyLen]byte
	key := append(append(append(kb[:0], src...), 0), dst...)
	h := xxhash.Sum64(key)
	f, r = s.lookup(h, key, len(src))
	if r != Counted {
		return nil, false, r
	}
	f.src.mark(abs)
	counted, due, grew := f.observe(abs, sec, size)
	if !counted {
		s.tooOld.Add(1)
		return nil, false, TooOld
	}
	if grew != 0 && !f.released.Load() {
		// The flow's cost changed (cells grew or it went dense): tell
		// ristretto. For an admitted flow this is an in-place update.
		s.bytes.Add(grew)
		if f.state.Load() == stateInFlight {
			s.rc.Set(h, f, f.bytes())
		}
	}
	s.counted.Add(1)
	return f, due, Counted
}

func (s *Store) lookup(h uint64, key []byte, srcLen int) (*Flow, Result) {
	if f, ok := s.rc.Get(h); ok {
		if f.key != string(key) {
			s.conflict.Add(1)
			s.refused.Add(1)
			return nil, Refused
		}
		return f, Counted
	}
	p := &s.pending[h%shards]
	p.mu.Lock()
	defer p.mu.Unlock()
	if f := p.m[h]; f != nil {
		if f.key != string(key) {
			s.conflict.Add(1)
			s.refused.Add(1)
			return nil, Refused
		}
		if f.state.Load() == stateRejected && !f.released.Load() {
			f.state.Store(stateInFlight)
			if !s.rc.Set(h, f, f.bytes()) {
				f.state.Store(stateRejected)
			}
		}
		return f, Counted
	}
	f := &Flow{hash: h, key: string(key), srcLen: srcLen}
	f.src = s.tab.acquire(f.Src(), f.Dst(), xxhash.Sum64String(f.Src()), xxhash.Sum64String(f.Dst()))
	s.flows.Add(1)
	s.bytes.Add(f.bytes())
	s.makeRoom(p)
	p.m[h] = f
	p.fifo = append(p.fifo, h)
	if !s.rc.Set(h, f, f.bytes()) {
		f.state.Store(stateRejected)
	}
	return f, Counted
}

// makeRoom drops the oldest pending entry when the shard is full. An entry
// that ristretto holds simply leaves the pending table; one still in flight
// is left to ristretto (its OnReject or OnEvict will release it); one that
// was refused is dropped and released now.
func (s *Store) makeRoom(p *pendingShard) {
	per := cap(p.fifo)
	for len(p.m) >= per {
		h := p.fifo[p.head]
		p.head++
		if p.head == len(p.fifo) {
			p.fifo = p.fifo[:0]
			p.head = 0
		}
		f := p.m[h]
		if f == nil {
			continue
		}
		delete(p.m, h)
		if f.state.Load() == stateRejected {
			if cur, ok := s.rc.Get(h); !ok || cur != f {
				s.dropped.Add(1)
				s.release(f)
			}
		}
	}
	if p.head > 0 && len(p.fifo) == cap(p.fifo) {
		n := copy(p.fifo, p.fifo[p.head:])
		p.fifo = p.fifo[:n]
		p.head = 0
	}
}

func (s *Store) release(f *Flow) {
	if f.released.Swap(true) {
		return
	}
	s.flows.Add(-1)
	f.mu.Lock()
	n := f.bytes()
	f.mu.Unlock()
	s.bytes.Add(-n)
	s.tab.release(f.src, f.Dst(), xxhash.Sum64String(f.Src()), xxhash.Sum64String(f.Dst()))
}

// Snapshot fills v with a copy of f's state over the window ending at the
// store's watermark.
func (s *Store) Snapshot(f *Flow, v *View) {
	end := s.wm.Load()
	f.mu.Lock()
	f.counts.snapshot(end, &v.Counts)
	v.Src, v.Dst = f.Src(), f.Dst()
	v.End = end
	v.FirstSec, v.LastSec = f.firstSec, f.lastSec
	v.GapCV, v.GapMean, v.Gaps = f.gap.cv(), f.gap.mean, int(f.gap.n)
	v.SizeCV, v.SizeMean = f.size.cv(), f.size.mean
	v.Marks = f.marks
	f.mu.Unlock()
	v.SrcOnline = f.src.online(end-Minutes+1, end)
	v.Prevalence = s.tab.prevalence(v.Dst, xxhash.Sum64String(v.Dst))
	v.Sources = s.tab.sources()
}

// Range calls fn for every tracked flow (admitted ones, then pending ones
// not yet visible) until fn returns false. The order is unspecified.
func (s *Store) Range(fn func(*Flow) bool) {
	stop := false
	seen := make(map[*Flow]struct{})
	s.rc.IterValues(func(f *Flow) bool {
		seen[f] = struct{}{}
		stop = !fn(f)
		return stop
	})
	for i := range s.pending {
		if stop {
			return
		}
		p := &s.pending[i]
		p.mu.Lock()
		var fs []*Flow
		for _, f := range p.m {
			if _, ok := seen[f]; !ok && !f.released.Load() {
				fs = append(fs, f)
			}
		}
		p.mu.Unlock()
		for _, f := range fs {
			if !fn(f) {
				return
			}
		}
	}
}

// Wait makes buffered ristretto writes visible (tests).
func (s *Store) Wait() { s.rc.Wait() }

// Stats returns the store's counters.
func (s *Store) Stats() Stats {
	return Stats{
		Flows: s.flows.Load(), Bytes: s.bytes.Load(),
		Counted: s.counted.Load(), TooOld: s.tooOld.Load(), TooNew: s.tooNew.Load(),
		Refused: s.refused.Load(), BadInput: s.badIn.Load(),
		Rejections: s.rejections.Load(), Dropped: s.dropped.Load(),
		Evictions: s.evictions.Load(), HashConflict: s.conflict.Load(),
		Sources: int64(s.tab.sources()),
	}
}

func floorDiv(a, b int64) int64 {
	q := a / b
	if (a%b != 0) && ((a < 0) != (b < 0)) {
		q--
	}
	return q
}
