package cache

// The nursery holds young flows: a new flow starts there, and is offered to
// ristretto only once it is active in matureMinutes minutes of its window
// (Store.promote). It is the "window" cache of W-TinyLFU in front of
// ristretto's TinyLFU: most flows a collector sees are active in one or two
// minutes (52 % of the simulator's day in one, 74 % in four or fewer), and
// giving each of them a ristretto item (its store and policy map slots,
// about 130 bytes) costs more than the flow itself. A young flow costs its
// struct, its cells, its index slot and one pointer in its shard's ring.
//
// Semantics that bite:
//   - The nursery has a bound of its own, a share of the live budget
//     (youngShare), counted in flows: a young flow has fewer than
//     matureMinutes cells, so its bytes are bounded (youngFlowBytes). When
//     a shard is full, the oldest young flow goes, unless it was active in
//     more than one minute, the newest of them in the last youngIdle
//     minutes of event time (one second chance per visit, at most
//     youngTries visits per new flow). A flood of one-off
//     flows therefore churns through the nursery and never reaches
//     ristretto, where established flows live; a young flow evicted loses
//     its counts (it was not kept), exactly as a refused flow dropped from
//     the pending table.
//   - A flow in its first minute looks like a one-off. So that a beacon can
//     show its second minute, a full shard whose oldest young flow had its
//     first event less than youngGrace minutes ago takes the new flow
//     without evicting, up to twice its share. That excess is not taken
//     from ristretto's MaxCost: it can arise only while new flows arrive
//     faster than a shard's share every youngGrace minutes (a small store,
//     or a flood far beyond TestHeavyFlood's, whose 6,944 one-offs a
//     minute fill a tenth of a 256 MiB store's nursery in that time), and
//     it is at most the nursery's share again.
//   - Young flows are in the store's index like admitted ones, so their
//     events take the same lock-free path. The ring is the only other
//     reference; the index is the truth for a key, checked under the
//     pending shard's lock, which guards the ring, creation and promotion.
//   - Promotion moves the flow, with all its counts, to the pending table
//     and offers it to ristretto; from there it is any other new flow
//     (refused flows stay pending while active, see settle). A young flow
//     whose pending shard is full stays young and tries again at its next
//     new minute.
//   - ristretto's sketch still hears of young flows (the first event's Get
//     in lookup, and one in sketchEvery of their new minutes), so a
//     promoted flow's frequency counts its young minutes.

// matureMinutes is the number of active minutes at which a young flow is
// offered to ristretto. The detector scores a flow from its 10th active
// minute (min_active_minutes), so a flow is protected by TinyLFU before it
// can alert; fewer minutes would give more flows a ristretto item.
const matureMinutes = 8

// Nursery sizing: youngShare of the live budget, youngFlowBytes per young
// flow (the struct's 112 bytes, an index slot, up to 7 cells in a 32-byte
// array, the ring pointer at twice the ring's fill, rounded up).
const (
	youngShare     = 4 // 1/youngShare of the live budget
	youngFlowBytes = 192
	youngSlotBytes = 16 // a ring pointer, the ring at half its length on average
	youngIdle      = 60 // minutes: a young flow active this recently gets a second chance
	youngTries     = 8
	youngGrace     = 10 // minutes after its first event in which a young flow is not evicted from a shard under twice its share
)

// nursery is a pending shard's ring of young flows, oldest first. The ring
// may also hold flows that left the nursery (promoted, or released): they
// are skipped when met and dropped when the ring is compacted. Guarded by
// the pending shard's mutex.
type nursery struct {
	q       []*Flow // ring; its length grows by doubling
	head, n int     // n entries from head
	young   int     // young flows among them
}

func (y *nursery) push(f *Flow) {
	if y.n == len(y.q) {
		y.grow()
	}
	y.q[(y.head+y.n)%len(y.q)] = f
	y.n++
}

func (y *nursery) pop() *Flow {
	f := y.q[y.head]
	y.q[y.head] = nil
	y.head = (y.head + 1) % len(y.q)
	y.n--
	return f
}

// grow doubles the ring, dropping the entries of flows that left the
// nursery (so a ring of mostly promoted flows shrinks back).
func (y *nursery) grow() {
	size := 2 * y.young // mostly young flows: double; mostly gone: compact
	if size > len(y.q) {
		size = 2 * len(y.q)
	}
	q := make([]*Flow, max(64, size))
	n := 0
	for y.n > 0 {
		if f := y.pop(); f.state.Load() == statusYoung {
			q[n] = f
			n++
		}
	}
	y.q, y.head, y.n = q, 0, n
}

// addYoung creates the young flow src -> dst under h, with p.mu held,
// making room in the shard's nursery first.
func (s *Store) addYoung(p *pendingShard, h uint64, src, dst []byte) *Flow {
	f := &Flow{}
	f.state.Store(statusYoung)
	f.src, f.dst = s.tab.acquire(src, dst)
	s.chargeShared()
	s.flows.Add(1)
	s.bytes.Add(f.bytes())
	s.enterNursery(p, h, f)
	return f
}

// enterNursery puts the young flow f (counted in Flows and Bytes) under h
// into p's nursery and the index, evicting first if the nursery is full.
// p.mu held.
func (s *Store) enterNursery(p *pendingShard, h uint64, f *Flow) {
	for p.young.young >= s.perYoung && p.young.n > 0 {
		if p.young.young < 2*s.perYoung && s.oldestYoungIsNew(p) {
			break // every young flow here is in its grace: the shard grows
		}
		s.evictYoung(p)
	}
	p.young.push(f)
	p.young.young++
	s.youngFlows.Add(1)
	s.idx.put(h, f)
}

// oldestYoungIsNew reports whether the young flow at the head of p's
// nursery, the oldest but for flows given a second chance, had its first
// event less than youngGrace minutes of event time ago. It drops the
// leading entries of flows that left the nursery. p.mu held.
func (s *Store) oldestYoungIsNew(p *pendingShard) bool {
	y := &p.young
	for y.n > 0 {
		f := y.q[y.head]
		if f.state.Load() != statusYoung {
			y.pop()
			continue
		}
		f.mu.Lock()
		first := int32(f.firstSec / 60)
		f.mu.Unlock()
		return first > s.wm.Load()-youngGrace
	}
	return false
}

// evictYoung removes the oldest young flow of p's nursery that is active in
// one minute only or was not active in the last youngIdle minutes, or after
// youngTries second chances the oldest one met. A one-off flow (a scan's)
// is never active in a second minute, so a flood of them evicts its own
// kind first. p.mu held.
func (s *Store) evictYoung(p *pendingShard) {
	y := &p.young
	wm := s.wm.Load()
	for tries := 0; y.n > 0; {
		f := y.pop()
		if f.state.Load() != statusYoung {
			continue // promoted or released
		}
		if tries < youngTries {
			if minutes, last := f.youngActivity(); minutes > 1 && last > wm-youngIdle {
				tries++
				y.push(f)
				continue
			}
		}
		if s.release(f) {
			s.youngEvicted.Add(1)
		}
		y.young--
		s.youngFlows.Add(-1)
		return
	}
}

// promote offers a young flow that became active in matureMinutes minutes
// to ristretto, through the pending table, with all its counts. It stays
// young if the pending shard has no room.
func (s *Store) promote(h uint64, f *Flow) {
	p := &s.pending[h%shards]
	p.mu.Lock()
	defer p.mu.Unlock()
	if f.state.Load() != statusYoung {
		return // promoted by another event, or released
	}
	if g := p.m[h]; g != nil && !g.isReleased() {
		return // cannot happen: a key has one live flow; leave both be
	}
	slot := p.m[h] == nil
	if slot && !s.makeRoom(p, 0) {
		return
	}
	f.mu.Lock()
	// The status and the charge change together under the lock, so that a
	// later release subtracts what was added.
	before := f.bytes()
	if !f.state.CompareAndSwap(statusYoung, statusInFlight) {
		f.mu.Unlock()
		return
	}
	s.bytes.Add(f.bytes() - before)
	f.mu.Unlock()
	if slot {
		p.q[(p.head+p.n)%len(p.q)] = pendEnt{h: h, wm: s.wm.Load()}
		p.n++
	}
	p.young.young--
	s.youngFlows.Add(-1)
	s.promoted.Add(1)
	p.m[h] = f
	s.offer(h, f)
}

// youngActivity returns the number of minutes the flow has cells for and
// its newest minute.
func (f *Flow) youngActivity() (int, int32) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return int(f.counts.n), f.counts.last
}

// liveYoung returns the live flow the index holds for h, with p.mu held:
// creation, promotion and the nursery's evictions of h's shard happen
// under that lock, so a young flow found here stays young until it is
// released.
func (s *Store) liveYoung(h uint64) *Flow {
	if f := s.idx.get(h); f != nil && f.state.Load() == statusYoung {
		return f
	}
	return nil
}
