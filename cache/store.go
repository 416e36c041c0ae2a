// Package cache holds the edge state: for every flow (source ->
// destination) the per-minute event counts over a sliding 24 h window of
// EVENT time, bounded in memory by a ristretto cache whose cost is the
// flow's real bytes, with snapshots to disk that survive a restart.
//
// Semantics that bite, and how this package meets them:
//   - A new flow starts in the nursery (see nursery.go): it is counted like
//     any other but has no ristretto item until it is active in
//     matureMinutes minutes. The nursery has its own bound (a quarter of
//     the live budget) and evicts one-off flows first, so a flood of them
//     never reaches ristretto. What follows is about flows past it.
//   - ristretto's Set is asynchronous and may be refused by TinyLFU
//     admission or dropped when its buffer is full. A new flow therefore
//     waits in a small bounded "pending" table until ristretto shows it
//     (admitted) or refuses it. Every event for a pending flow is counted
//     into the same *Flow, and a refused flow is offered again on its next
//     event with all its counts. When the pending table is full, the oldest
//     refused flow that received no event since it was queued is dropped
//     (counted in Stats); a flow still in flight or still receiving events
//     gets a second chance.
//   - ristretto never updates a value in place; values here are *Flow and
//     all counting happens behind the flow's own mutex. There is no
//     get-modify-set anywhere. A flow is released (evicted or dropped)
//     under its lock, and an event that finds its flow released looks it up
//     again, so no event is counted into a flow that nobody reads: every
//     flow the store holds has every accepted event since it was created.
//   - Events for admitted flows do not go through ristretto: the store's
//     own lock-free index (hash -> *Flow, see index) finds the flow, and an
//     index hit is checked only by the flow's status (admitted, and not
//     released under its lock), not by comparing strings: the 64-bit
//     seeded hash is the flow's identity there (see Store.hash for the
//     odds). ristretto's Get, the only way to feed its TinyLFU frequency
//     sketch, is called for a new flow, for every event of a flow not
//     (yet, or no longer) admitted, and on one in sketchEvery of the
//     minutes an admitted flow is active in. So ristretto's frequencies
//     count active minutes, not events: a flow of 1000 events in one
//     minute ranks with a one-off, a beacon active all day at the top.
//   - A Set that changes the cost of an admitted flow can race with its
//     eviction and re-insert the released flow ("zombie"); a Get that
//     returns a released flow treats it as absent and replaces it in place.
//   - The window follows the newest event time accepted (the watermark).
//     Events at or before watermark-24h are rejected as too old; events more
//     than MaxFuture after the wall clock are rejected as too new. Both are
//     counted.
//   - Memory: MaxBytes bounds the process memory the state takes, the Go
//     garbage collector's headroom included (with GOGC=100 the heap may grow
//     to twice the live data before a collection). ristretto's MaxCost is
//     the share of MaxBytes the live state may use, less the fixed cost of
//     its frequency sketch and of the pending table, and less the nursery's
//     share.
//
// Lifetime: New starts ristretto's goroutines; Close stops them and must be
// called only after every caller of Observe has returned.
package cache

import (
	"errors"
	"fmt"
	"hash/maphash"
	"runtime/metrics"
	"sync"
	"sync/atomic"
	"time"
	"unsafe"

	"github.com/dgraph-io/ristretto/v2"
)

// Config configures a Store.
type Config struct {
	// MaxBytes bounds the process memory (bytes) the flow state may take,
	// GC headroom included; see Budget. Default 256 MiB. Too small evicts
	// long-lived flows before they can be scored.
	MaxBytes int64
	// ExpectedFlows sizes ristretto's frequency sketch (4 counters per
	// flow: ristretto suggests 10, which costs ~50 bytes per flow; the
	// pending table's requeueing, not the sketch alone, protects established
	// flows). Default: the live budget / 320 bytes, at least 1024.
	ExpectedFlows int64
	// PendingFlows is the soft bound on new flows waiting for (or refused)
	// admission; up to twice as many are held while ristretto lags behind a
	// burst, and as many evicted but active flows again. Default: the live
	// budget / 8 KiB, from 1024 to 65536.
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
	SharedBytes  int64 // bytes of the sources and destinations the flows share
	MaxCost      int64 // ristretto's bound on the bytes of admitted flows
	Counted      int64
	TooOld       int64 // events rejected as before the window
	TooNew       int64 // events rejected as too far past the wall clock
	Refused      int64 // events for flows that could not be tracked
	BadInput     int64
	Rejections   int64 // admissions refused by ristretto (the flow is offered again)
	DroppedSets  int64 // Sets ristretto dropped for a full buffer (the flow is offered again)
	Dropped      int64 // refused flows dropped from the pending table
	Evictions    int64 // admitted flows evicted by ristretto
	Requeued     int64 // evicted flows kept in the pending table (active, so offered again)
	Merged       int64 // evicted flows folded into a flow an event started meanwhile
	HashConflict int64
	Sources      int64
	Restored     int64 // flows restored from a snapshot
	Waits        int64 // times a full pending shard waited for ristretto
	Young        int64 // flows in the nursery (in Flows; not offered to ristretto yet)
	YoungEvicted int64 // young flows evicted from a full nursery
	Promoted     int64 // young flows offered to ristretto, active in matureMinutes minutes
}

// Store tracks flows. Safe for concurrent use.
type Store struct {
	cfg      Config
	maxCost  int64
	perPend  int
	perYoung int // young flows per pending shard
	rc       *ristretto.Cache[uint64, *Flow]
	tab      *table
	pending  [shards]pendingShard
	wm       atomic.Int32 // watermark: newest accepted Unix minute
	future   atomic.Int64 // a recent wall clock + MaxFuture (Unix seconds)
	closing  atomic.Bool
	idx      index
	seed     maphash.Seed // of the flow hash (random per process)
	// sharedCharged is the shared memory last taken from MaxCost.
	sharedCharged atomic.Int64

	flows, bytes                             atomic.Int64
	counted                                  [countStripes]stripe // by flow hash: concurrent workers rarely share a line
	tooOld, tooNew, refused, badIn           atomic.Int64
	rejections, dropped, evictions, conflict atomic.Int64
	droppedSets, restored, requeued, waits   atomic.Int64
	merged                                   atomic.Int64
	youngFlows, youngEvicted, promoted       atomic.Int64

	prefetchFrom int64 // prefetchFlows; tests lower it
}

// pendingShard holds new flows until ristretto admits or refuses them. q
// is a ring of the shard's keys in arrival order: every key of m is in q
// exactly once.
type pendingShard struct {
	mu      sync.Mutex
	young   nursery
	m       map[uint64]*Flow
	q       []pendEnt
	head, n int
	nreq    int   // requeued flows in q
	bytes   int64 // of requeued flows in q
}

type pendEnt struct {
	h      uint64
	events uint32 // the flow's events when it was queued
	wm     int32  // the watermark when it was queued
	bytes  int32  // bytes of a requeued flow, counted in pendingShard.bytes
}

// Fixed memory per pending slot and per frequency counter, in bytes.
const (
	newSlotBytes     = 320                               // a refused flow of a few minutes plus its map and ring slots
	requeueSlotBytes = 768                               // the byte room for requeued flows, per slot
	pendingSlotBytes = 2*newSlotBytes + requeueSlotBytes // the reservation per PendingFlows
	countersPerFlow  = 4
	counterBytes     = 4 // ristretto's count-min sketch (4 x 4 bits, rounded up to a power of 2) and bloom filter
)

// Budget returns the live bytes the state may use for a process memory
// bound of maxBytes: maxBytes*100/(100+GOGC), or 90 % of it when the GC is
// off (a memory limit then bounds the heap).
func Budget(maxBytes int64) int64 {
	s := []metrics.Sample{{Name: "/gc/gogc:percent"}}
	metrics.Read(s)
	gogc := int64(100)
	if s[0].Value.Kind() == metrics.KindUint64 {
		gogc = int64(s[0].Value.Uint64())
	}
	if gogc <= 0 {
		return maxBytes / 10 * 9
	}
	return maxBytes / (100 + gogc) * 100
}

// New returns a Store.
func New(cfg Config) (*Store, error) {
	switch {
	case cfg.MaxBytes < 0:
		return nil, errors.New("cache: MaxBytes must not be negative")
	case cfg.MaxBytes > 0 && cfg.MaxBytes < 1<<20:
		return nil, errors.New("cache: MaxBytes must be at least 1 MiB")
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
	live := Budget(cfg.MaxBytes)
	if cfg.ExpectedFlows == 0 {
		cfg.ExpectedFlows = max(live/320, 1024)
	}
	if cfg.PendingFlows == 0 {
		cfg.PendingFlows = int(min(max(live/8192, 1024), 65536))
	}
	if cfg.MaxFuture == 0 {
		cfg.MaxFuture = 10 * time.Minute
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	s := &Store{cfg: cfg, tab: newTable(), seed: maphash.MakeSeed(), prefetchFrom: prefetchFlows}
	s.perPend = max(cfg.PendingFlows/shards, 4)
	s.perYoung = max(int(live/youngShare/youngFlowBytes/shards), 4)
	s.maxCost = max(live-cfg.ExpectedFlows*countersPerFlow*counterBytes-int64(s.perPend*shards*pendingSlotBytes+inFlightSlack*shards*newSlotBytes)-int64(s.perYoung*shards*youngFlowBytes), live/4)
	for i := range s.pending {
		s.pending[i].m = make(map[uint64]*Flow, s.perPend)
		s.pending[i].q = make([]pendEnt, 3*s.perPend+inFlightSlack) // new flows up to 2x + slack, requeued ones 1x
	}
	rc, err := ristretto.NewCache(&ristretto.Config[uint64, *Flow]{
		NumCounters:        cfg.ExpectedFlows * countersPerFlow,
		MaxCost:            s.maxCost,
		BufferItems:        64,
		IgnoreInternalCost: true, // Flow.bytes charges ristretto's own overhead
		// A Set never replaces a different live flow in place (that
		// flow's counts would vanish): it goes to admission, which refuses
		// it, and settle merges the two.
		ShouldUpdate: func(nv, old *Flow) bool { return nv == old || old.isReleased() },
		OnEvict:      s.onEvict,
		OnReject:     s.onReject,
	})
	if err != nil {
		return nil, fmt.Errorf("cache: %w", err)
	}
	s.rc = rc
	return s, nil
}

func (s *Store) onEvict(it *ristretto.Item[*Flow]) {
	if it.Value == nil || s.closing.Load() {
		return
	}
	s.evictions.Add(1)
	s.settle(it.Key, it.Value)
}

func (s *Store) onReject(it *ristretto.Item[*Flow]) {
	if it.Value == nil || s.closing.Load() {
		return
	}
	s.rejections.Add(1)
	s.settle(it.Key, it.Value)
}

// Close stops the store's background goroutines. Call it only after every
// caller of Observe has returned. Close is nil-safe and idempotent.
func (s *Store) Close() {
	if s != nil {
		s.closing.Store(true) // ristretto evicts everything: nothing to keep
		s.rc.Close()
	}
}

// Watermark returns the newest accepted event minute (Unix minutes).
func (s *Store) Watermark() int32 { return s.wm.Load() }

// Observe counts one event of flow src -> dst at event time sec (Unix
// seconds) with a request size (negative when unknown). It returns the flow
// and whether it is due for scoring (see Flow marks); f is nil unless r is
// Counted. src and dst are not retained. Observe allocates only when it
// creates a flow or a flow's counts grow. ObserveBatch does the same for
// many events at a time, faster.
func (s *Store) Observe(src, dst []byte, sec int64, size int64) (f *Flow, due bool, r Result) {
	abs, r := s.admit(src, dst, sec)
	if r != Counted {
		return nil, false, r
	}
	e := Event{Src: src, Dst: dst, Sec: sec, Size: size, abs: abs, h: s.hash(src, dst)}
	e.Flow = s.idx.get(e.h)
	s.count(&e)
	if e.Result == Counted {
		s.counted[e.h%countStripes].n.Add(1)
	}
	return e.Flow, e.Due, e.Result
}

// Event is one event for ObserveBatch: the inputs (as Observe's
// arguments) and what the store did with it (as Observe's results).
type Event struct {
	Src, Dst  []byte // not retained
	Sec, Size int64

	Flow   *Flow  // nil unless Result is Counted
	Due    bool   // the flow is due for scoring
	Result Result // set by ObserveBatch

	abs int32
	h   uint64 // 0: rejected before the lookup
}

// ObserveBatch counts the events of evs in order, as Observe would one at a
// time, and sets each event's Flow, Due and Result. It is Observe's fast
// form for a caller that has many events at hand (a Fluent Bit chunk): it
// looks the flows up in stages over the whole batch, each stage asking the
// CPU to fetch the memory the next one reads, so that the cache misses of
// different events overlap instead of following one another; with a
// million flows tracked most events miss three times (index slot, flow,
// counts). Batches of 16 to 64 events do best; ObserveBatch allocates
// nothing of its own.
func (s *Store) ObserveBatch(evs []Event) {
	// Few flows: their memory is in the CPU's caches, and the prefetching
	// would only add its own work.
	staged := s.flows.Load() >= s.prefetchFrom
	counted := int64(0)
	// 1: check each event and hash its key; then fetch its index slot, or,
	// with few flows, count it at once (2 to 4 are for many flows).
	for i := range evs {
		e := &evs[i]
		e.Flow, e.Due, e.h = nil, false, 0
		if e.abs, e.Result = s.admit(e.Src, e.Dst, e.Sec); e.Result != Counted {
			continue
		}
		e.h = s.hash(e.Src, e.Dst)
		if staged {
			s.idx.prefetch(e.h)
			continue
		}
		e.Flow = s.idx.get(e.h)
		if s.count(e); e.Result == Counted {
			counted++
		}
	}
	if staged {
		// 2: find each flow in the index, fetch its struct.
		for i := range evs {
			if e := &evs[i]; e.h != 0 {
				if f := s.idx.get(e.h); f != nil {
					e.Flow = f
					// The struct's 112 bytes span two or three cache lines.
					p := uintptr(unsafe.Pointer(f))
					prefetch(p)
					prefetch(p + 64)
					prefetch(p + flowStructBytes - 1)
				}
			}
		}
		// 3: fetch each flow's counts and source.
		for i := range evs {
			if e := &evs[i]; e.Flow != nil {
				e.Flow.prefetchState(e.abs)
			}
		}
		// 4: count.
		for i := range evs {
			if e := &evs[i]; e.h != 0 {
				if s.count(e); e.Result == Counted {
					counted++
				}
			}
		}
	}
	if counted > 0 {
		s.counted[evs[0].h%countStripes].n.Add(counted)
	}
}

// prefetchFlows is the number of tracked flows from which ObserveBatch
// prefetches. Below it, the flows' index slots, structs and cells (about
// 400 bytes a flow, on 4 or 5 pages) fit the CPU's second-level cache and
// TLB; the prefetching stages then cost more than they save: 157
// instructions per event (cachegrind on BenchmarkObserveBatchHit: the
// store's part 642 staged, 485 direct).
const prefetchFlows = 4096

// admit checks an event's key and time, moves the watermark, and returns
// the event's Unix minute; a rejected event is counted.
func (s *Store) admit(src, dst []byte, sec int64) (int32, Result) {
	if len(src) == 0 || len(dst) == 0 || len(src)+len(dst)+1 > MaxKeyLen {
		s.badIn.Add(1)
		return 0, BadInput
	}
	if sec > s.future.Load() {
		// The wall clock only moves on, so an event before a limit read
		// earlier is before the current one: the clock is read only when
		// an event passes the last limit.
		lim := s.cfg.Now().Add(s.cfg.MaxFuture).Unix()
		if old := s.future.Load(); lim > old {
			s.future.CompareAndSwap(old, lim)
		}
		if sec > lim || sec > 1<<32-1 {
			s.tooNew.Add(1)
			return 0, TooNew
		}
	}
	if sec < 0 {
		s.tooOld.Add(1)
		return 0, TooOld
	}
	abs := int32(sec / 60)
	wm := s.wm.Load()
	if abs <= wm-Minutes {
		s.tooOld.Add(1)
		return 0, TooOld
	}
	for abs > wm && !s.wm.CompareAndSwap(wm, abs) {
		wm = s.wm.Load()
	}
	return abs, Counted
}

// count counts an admitted event (abs and h set) into e.Flow, the flow the
// index gave for e.h (nil if none), or into the flow lookup finds, and sets
// e's results. It does not add to Stats.Counted (the caller does).
func (s *Store) count(e *Event) {
	h, f, abs := e.h, e.Flow, e.abs
	for try := 0; ; try++ {
		// The index holds the flows ristretto admitted: an event for one
		// of them takes no lock but its flow's and calls no ristretto
		// method but a sampled Get (below).
		if try > 0 {
			f = s.idx.get(h)
		}
		if st := f.loadState(); st != statusAdmitted && st != statusYoung {
			var r Result
			if f, r = s.lookup(h, e.Src, e.Dst); r != Counted {
				e.Flow, e.Due, e.Result = nil, false, r
				return
			}
			if f.state.Load() == statusAdmitted {
				s.idx.put(h, f)
			}
		}
		res, due, grew := f.observe(abs, uint32(e.Sec), e.Size, &s.bytes)
		switch res {
		case obsReleased:
			// Evicted or dropped between the lookup and the lock: look
			// again (a new flow, or the one that replaced it).
			if try < 4 {
				continue
			}
			s.refused.Add(1)
			e.Flow, e.Due, e.Result = nil, false, Refused
			return
		case obsOld:
			s.tooOld.Add(1)
			e.Flow, e.Due, e.Result = nil, false, TooOld
			return
		case obsNewMinute, obsMature:
			// ristretto's frequency sketch learns of an admitted flow
			// through a Get (the only way to tell it) on one in
			// sketchEvery of the minutes the flow is active in, chosen
			// by minute and hash: TinyLFU then ranks flows by how many
			// minutes they are active in, which separates an
			// established flow from a scan's one-offs (a new flow's
			// first event reaches ristretto's Get in lookup).
			if (uint32(abs)+uint32(h>>32))%sketchEvery == 0 {
				s.rc.Get(h)
			}
			if res == obsMature {
				s.promote(h, f)
			}
		}
		if res != obsSameMinute {
			// An event in the flow's newest minute, which an earlier
			// event of the flow marked in its source, need not mark it
			// again (and skips a likely cache miss).
			f.src.mark(abs)
		}
		if grew != 0 && f.status() == statusAdmitted {
			// The flow's cost changed (cells grew or it went dense): tell
			// ristretto, an update of the stored item in place. A flow
			// still pending carries its new cost when it is offered again.
			s.rc.Set(h, f, f.cost())
		}
		e.Flow, e.Due, e.Result = f, due, Counted
		return
	}
}

// sketchEvery: an admitted flow's Get feeds ristretto's sketch on one in
// sketchEvery of its active minutes. On the simulator's day 42 % of the
// events open a new minute of their flow, so about 2.7 % of them call Get.
// A Get of a flow among a million costs as much as the rest of counting
// an event (BenchmarkObserve/ristretto-get); with one in 4, the Gets were
// 20 % of BenchmarkObserveReplay's time. TinyLFU's counters hold at most
// 15: a flow active in every minute still tops them within hours, one
// active in a few minutes ranks near a one-off either way. Evicted
// established flows are requeued ahead of short-lived ones (settle).
const sketchEvery = 16

// hash returns the flow's hash, the ristretto and index key (never 0): a
// 64-bit hash (hash/maphash, under a random per-process seed, so that
// flows cannot be made to collide on purpose) of the source and the
// destination back to back, mixed with the source's length (so that the
// same bytes split elsewhere are another key). The index's hot path
// identifies a flow by its hash alone, without reading its strings; the
// slow path compares the strings (a conflict there is refused and
// counted). Two tracked flows are confused only if their hashes are
// equal: for a million flows, a chance of about 3 in 10^8 that any such
// pair exists at all.
//
// It hashes in one call when dst follows src in src's array (the
// detector's batches put them so, see detect.Batch); otherwise it copies
// a short key to the stack first, or streams a long one.
func (s *Store) hash(src, dst []byte) uint64 {
	n := len(src) + len(dst)
	if cap(src) >= n && (len(dst) == 0 || &src[:n][len(src)] == &dst[0]) {
		return finishHash(maphash.Bytes(s.seed, src[:n]), len(src))
	}
	if n <= shortKey {
		var buf [shortKey]byte
		copy(buf[copy(buf[:], src):], dst)
		return finishHash(maphash.Bytes(s.seed, buf[:n]), len(src))
	}
	var h maphash.Hash // the same hash as Bytes of the bytes written (its documentation)
	h.SetSeed(s.seed)
	h.Write(src)
	h.Write(dst)
	return finishHash(h.Sum64(), len(src))
}

// shortKey is the longest key hash copies to the stack.
const shortKey = 64

func finishHash(h uint64, srcLen int) uint64 {
	if h ^= uint64(srcLen) * 0x9e3779b97f4a7c15; h != 0 {
		return h
	}
	return 1
}

// flowHash is hash for a tracked flow.
func (s *Store) flowHash(f *Flow) uint64 {
	var h maphash.Hash
	h.SetSeed(s.seed)
	h.WriteString(f.src.ip)
	h.WriteString(f.dst.name)
	return finishHash(h.Sum64(), len(f.src.ip))
}

func (f *Flow) cost() int64 {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.bytes()
}

func (s *Store) lookup(h uint64, src, dst []byte) (*Flow, Result) {
	zombie := false
	if f, ok := s.rc.Get(h); ok {
		if !f.is(src, dst) {
			s.conflict.Add(1)
			s.refused.Add(1)
			return nil, Refused
		}
		st := f.state.Load()
		if st&released == 0 {
			if st != statusAdmitted {
				f.setStatus(statusAdmitted)
			}
			return f, Counted
		}
		zombie = true // a released flow re-inserted by a cost update: replace it
	}
	p := &s.pending[h%shards]
	for level := 0; level <= 2; level++ {
		f, r, full := s.lookupPending(p, h, src, dst, zombie, level)
		if !full {
			return f, r
		}
		if level == 1 {
			// The shard is full of flows in flight or active: ristretto
			// lags behind a burst of new flows. Wait for it to decide
			// (back-pressure on the caller, only under a flood).
			s.waits.Add(1)
			s.rc.Wait()
		}
	}
	s.refused.Add(1)
	return nil, Refused
}

func (s *Store) lookupPending(p *pendingShard, h uint64, src, dst []byte, zombie bool, level int) (*Flow, Result, bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	f := p.m[h]
	if f != nil && !f.is(src, dst) {
		s.conflict.Add(1)
		s.refused.Add(1)
		return nil, Refused, false
	}
	if f == nil || f.isReleased() {
		// A young flow (which the index missed, racing with its
		// creation), or a new one, which starts young (unless it must
		// replace a flow ristretto or the pending table still shows).
		if y := s.liveYoung(h); y != nil {
			if !y.is(src, dst) {
				s.conflict.Add(1)
				s.refused.Add(1)
				return nil, Refused, false
			}
			return y, Counted, false
		}
		if f == nil && !zombie {
			return s.addYoung(p, h, src, dst), Counted, false
		}
	}
	if f != nil && f.isReleased() {
		f = nil // its slot in q stays and now stands for the new flow
	} else if f == nil {
		if !s.makeRoom(p, level) {
			return nil, Refused, true
		}
		p.q[(p.head+p.n)%len(p.q)] = pendEnt{h: h, wm: s.wm.Load()}
		p.n++
	}
	if f == nil {
		f = &Flow{}
		f.src, f.dst = s.tab.acquire(src, dst)
		s.chargeShared()
		s.flows.Add(1)
		s.bytes.Add(f.bytes())
		p.m[h] = f
		s.offer(h, f)
		return f, Counted, false
	}
	if zombie || f.status() == statusRejected {
		s.offer(h, f)
	}
	return f, Counted, false
}

// chargeShared takes the memory of sources and destinations, which flows
// share, from ristretto's MaxCost, in steps of 1 MiB.
func (s *Store) chargeShared() {
	b := s.tab.bytes.Load()
	if d := b - s.sharedCharged.Load(); d > 1<<20 || d < -1<<20 {
		s.sharedCharged.Store(b)
		s.rc.UpdateMaxCost(max(s.maxCost-b, s.maxCost/4))
	}
}

// offer sends f to ristretto.
func (s *Store) offer(h uint64, f *Flow) {
	f.setStatus(statusInFlight)
	if !s.rc.Set(h, f, f.cost()) {
		s.droppedSets.Add(1)
		f.casStatus(statusInFlight, statusRejected)
	}
}

// makeRoom frees a slot of a pending shard, looking at each queued flow at
// most once, oldest first, and reports whether a slot is free. A shard holds
// PendingFlows/64 new flows, or up to twice that while ristretto lags
// behind a burst. A flow ristretto holds leaves the table. An established
// flow (requeueEvents events, active in the last requeueIdle minutes)
// stays. At level 0 (the shard holds its share or more) a flow in flight
// stays, and a refused flow stays while it received an event since it was
// queued or was queued less than pendingGrace minutes of event time ago.
// At level 1 (the shard holds twice its share) every refused flow that is
// not established is dropped; if the shard is still full, its flows are in
// flight, and the caller waits for ristretto to settle them before level 2
// (the same rules) and, failing that, refuses the new flow.
func (s *Store) makeRoom(p *pendingShard, level int) bool {
	wm := s.wm.Load()
	limit, tries := s.perPend, min(p.n, 8) // level 0: a few steps per new flow
	if level > 0 {
		limit, tries = s.hardLimit(), p.n
	}
	for ; p.n-p.nreq >= limit && tries > 0; tries-- {
		e := p.q[p.head]
		p.head = (p.head + 1) % len(p.q)
		p.n--
		f := p.m[e.h]
		if f == nil { // cannot happen: every key of m has one slot
			continue
		}
		keep := false
		switch st := f.state.Load(); {
		case st&released != 0:
		case s.held(e.h, f):
		case st == statusInFlight:
			// Kept at every level: a flow in flight that left the table
			// could be met by an event before ristretto shows it, and
			// that event would start a second flow for the key.
			keep = true
		default: // refused, or marked admitted by a Get that raced with its eviction
			ev, last := f.activity()
			grace := wm-e.wm < pendingGrace
			switch {
			case ev >= requeueEvents && last > wm-requeueIdle:
				keep = true
			case level == 0 && ev != e.events:
				keep, e.events, e.wm = true, ev, wm
			case level == 0 && grace:
				keep = true
			default:
				s.drop(e.h, f)
			}
		}
		if keep {
			p.q[(p.head+p.n)%len(p.q)] = e
			p.n++
			continue
		}
		delete(p.m, e.h)
		if e.bytes > 0 {
			p.bytes -= int64(e.bytes)
			p.nreq--
		}
	}
	return p.n-p.nreq < s.hardLimit() && p.n < len(p.q)
}

// inFlightSlack is the room per shard, beyond twice its share, for new
// flows in flight: ristretto's set buffer holds 32 Ki items, 512 per shard
// on average, and drops Sets beyond it.
const inFlightSlack = 512

func (s *Store) hardLimit() int { return 2*s.perPend + inFlightSlack }

// drop stops tracking a refused flow: folded into the flow ristretto holds
// for its key, if another, else released.
func (s *Store) drop(h uint64, f *Flow) {
	if v, ok := s.rc.Get(h); ok && v != f && s.merge(f, v) {
		return
	}
	if s.release(f) {
		s.dropped.Add(1)
	}
}

// pendingGrace is how many minutes of event time a refused flow stays
// pending after its last event (or being queued), at least.
const pendingGrace = 10

// Settling: ristretto calls back when it refuses a flow (OnReject) or
// evicts one (OnEvict). If another flow for the same key exists (an event
// found neither, in the short time ristretto had it in no table, and
// started a new one), f is folded into it. Otherwise f is kept in the
// pending table (still there, or requeued) with all its counts, as if
// refused: it is offered to ristretto again on its next event. A requeued
// flow with at least requeueEvents events stays there until it has been
// idle for requeueIdle minutes; others get the pending grace. So a flood of
// one-off flows can push an established flow out of ristretto for a while,
// but cannot make it lose a count. Requeued flows have their own room in
// the pending ring and a byte budget: single-event flows may take a
// quarter of it, flows active in fewer than establishedMinutes minutes of
// the window half, so that churn of short-lived flows cannot crowd out the
// long-lived ones. That matters: TinyLFU's frequencies of admitted flows
// are sampled (sketchEvery) and halved at its resets, while a refused flow
// calls Get on every event, so under churn of flows that mature and are
// refused, an established flow can be ristretto's victim
// (TestChurnOfMaturingFlowsKeepsBeacons).
const (
	requeueEvents      = 2
	requeueIdle        = 60
	establishedMinutes = 30
)

func (s *Store) settle(h uint64, f *Flow) {
	p := &s.pending[h%shards]
	p.mu.Lock()
	defer p.mu.Unlock()
	if f.isReleased() {
		return
	}
	if v, ok := s.rc.Get(h); ok && v != f && s.merge(f, v) {
		return
	}
	g := p.m[h]
	switch {
	case g == f:
		f.setStatus(statusRejected)
		return
	case g != nil && s.merge(f, g):
		return
	case g != nil: // a released flow's slot: f takes it over
		p.m[h] = f
		f.setStatus(statusRejected)
		s.requeued.Add(1)
		return
	}
	if y := s.liveYoung(h); y != nil && y != f && s.merge(f, y) {
		return // an event started a young flow while f was out of every table
	}
	f.mu.Lock()
	active := f.last > s.wm.Load()-requeueIdle
	n, ev := f.bytes(), f.events
	established := f.established()
	f.mu.Unlock()
	roomN, roomB := s.perPend, int64(s.perPend)*requeueSlotBytes
	switch {
	case ev < requeueEvents:
		roomN, roomB = s.perPend/4, roomB/4
	case !established:
		roomN, roomB = s.perPend/2, roomB/2
	}
	full := func() bool { return p.nreq >= roomN || p.bytes+n > roomB }
	if active && established && full() {
		s.unqueueShortLived(p, full)
	}
	if !active || full() || p.n >= len(p.q) {
		s.release(f)
		return
	}
	p.m[h] = f
	p.q[(p.head+p.n)%len(p.q)] = pendEnt{h: h, events: ev, wm: s.wm.Load(), bytes: int32(n)}
	p.n++
	p.nreq++
	p.bytes += n
	f.setStatus(statusRejected)
	s.requeued.Add(1)
}

// established reports whether f was active in establishedMinutes minutes
// of its window (a dense flow is). Call with f.mu held.
func (f *Flow) established() bool { return f.isDense() || int(f.n) >= establishedMinutes }

// unqueueShortLived makes room in p's requeue budget for an established
// flow that ristretto evicted: it drops requeued flows that are not
// established, oldest first, until full reports room, as makeRoom drops
// flows (see drop). Only refused ones go: a flow in flight or admitted
// since stays. A dropped flow's ring slot stays, as the slot of a new flow
// (lookupPending and makeRoom know such slots). p.mu held.
func (s *Store) unqueueShortLived(p *pendingShard, full func() bool) {
	for i := 0; i < p.n && full(); i++ {
		e := &p.q[(p.head+i)%len(p.q)]
		f := p.m[e.h]
		if e.bytes == 0 || f == nil || f.state.Load() != statusRejected {
			continue
		}
		f.mu.Lock()
		short := !f.established()
		f.mu.Unlock()
		if !short {
			continue
		}
		if s.drop(e.h, f); f.isReleased() { // folded into ristretto's flow for the key, or released
			p.bytes -= int64(e.bytes)
			p.nreq--
			e.bytes = 0
		}
	}
}

// merge moves f's counts and statistics into g (another flow for the same
// key) and releases f, under both locks, so that an event holding f finds
// it released and looks up g. It reports false, changing nothing, if g is
// released.
func (s *Store) merge(f, g *Flow) bool {
	f.mu.Lock()
	g.mu.Lock()
	if g.state.Load()&released != 0 {
		g.mu.Unlock()
		f.mu.Unlock()
		return false
	}
	n, ok := f.markReleased()
	if ok {
		before := g.bytes()
		g.mergeFrom(f)
		s.bytes.Add(g.bytes() - before - n)
		s.merged.Add(1)
	}
	g.mu.Unlock()
	f.mu.Unlock()
	if ok {
		s.finishRelease(f)
	}
	return true
}

// held reports whether ristretto holds f under h, marking it admitted.
func (s *Store) held(h uint64, f *Flow) bool {
	if cur, ok := s.rc.Get(h); ok && cur == f {
		f.setStatus(statusAdmitted)
		return true
	}
	return false
}

// activity returns the flow's event count and newest minute.
func (f *Flow) activity() (uint32, int32) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.events, f.last
}

// release stops tracking f; it reports false if f was released already.
func (s *Store) release(f *Flow) bool {
	n, ok := f.release()
	if !ok {
		return false
	}
	s.bytes.Add(-n)
	s.finishRelease(f)
	return true
}

// finishRelease does the accounting of a flow marked released.
func (s *Store) finishRelease(f *Flow) {
	s.idx.del(s.flowHash(f), f)
	s.flows.Add(-1)
	s.tab.release(f.src, f.dst)
}

// Snapshot fills v with a copy of f's state over the window ending at the
// store's watermark.
func (s *Store) Snapshot(f *Flow, v *View) {
	end := s.wm.Load()
	f.mu.Lock()
	f.counts.snapshot(end, &v.Counts)
	v.Src, v.Dst = f.Src(), f.Dst()
	v.End = end
	v.FirstSec, v.LastSec = int64(f.firstSec), int64(f.lastSec)
	v.GapCV, v.GapMean, v.Gaps = f.gap.cv(f.gapN), f.gap.mean, int(f.gapN)
	v.SizeCV, v.SizeMean = f.size.cv(f.sizeN), f.size.mean
	v.Marks = f.marks
	f.mu.Unlock()
	v.SrcOnline = f.src.online(end-Minutes+1, end)
	v.Prevalence = s.tab.prevalence(f.dst)
	v.Sources = s.tab.sources()
}

// Range calls fn for every tracked flow (admitted ones, then pending and
// young ones) until fn returns false. The order is unspecified.
func (s *Store) Range(fn func(*Flow) bool) {
	stop := false
	seen := make(map[*Flow]struct{})
	s.rc.IterValues(func(f *Flow) bool {
		if f.isReleased() {
			return false
		}
		seen[f] = struct{}{}
		stop = !fn(f)
		return stop
	})
	var fs []*Flow
	for i := range s.pending {
		if stop {
			return
		}
		p := &s.pending[i]
		p.mu.Lock()
		fs = fs[:0]
		for _, f := range p.m {
			if _, ok := seen[f]; !ok && !f.isReleased() {
				fs = append(fs, f)
			}
		}
		y := &p.young
		for i := 0; i < y.n; i++ {
			if f := y.q[(y.head+i)%len(y.q)]; f.state.Load() == statusYoung {
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

// countStripes is the number of cache lines Stats.Counted is spread over.
const countStripes = 16

type stripe struct {
	n atomic.Int64
	_ [56]byte
}

func (s *Store) countedTotal() int64 {
	n := int64(0)
	for i := range s.counted {
		n += s.counted[i].n.Load()
	}
	return n
}

// Stats returns the store's counters.
func (s *Store) Stats() Stats {
	return Stats{
		Flows: s.flows.Load(), Bytes: s.bytes.Load(), SharedBytes: s.tab.bytes.Load(), MaxCost: s.maxCost,
		Counted: s.countedTotal(), TooOld: s.tooOld.Load(), TooNew: s.tooNew.Load(),
		Refused: s.refused.Load(), BadInput: s.badIn.Load(),
		Rejections: s.rejections.Load(), DroppedSets: s.droppedSets.Load(), Dropped: s.dropped.Load(),
		Evictions: s.evictions.Load(), Requeued: s.requeued.Load(), Merged: s.merged.Load(), HashConflict: s.conflict.Load(),
		Sources: int64(s.tab.sources()), Restored: s.restored.Load(), Waits: s.waits.Load(),
		Young: s.youngFlows.Load(), YoungEvicted: s.youngEvicted.Load(), Promoted: s.promoted.Load(),
	}
}
