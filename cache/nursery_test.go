package cache

import (
	"fmt"
	"path/filepath"
	"sync"
	"testing"
)

func flowCount(s *Store, f *Flow) int {
	var v View
	s.Snapshot(f, &v)
	n := 0
	for _, c := range v.Counts {
		n += int(c)
	}
	return n
}

// A new flow starts young (no ristretto item, in the index, charged its
// young bytes), stays young until its matureMinutes-th active minute, and
// is then admitted by ristretto with every count; the byte accounting
// follows it.
func TestYoungFlowMatures(t *testing.T) {
	s := newStore(t, Config{Now: fixedNow})
	src, dst := []byte("10.0.0.1"), []byte("beacon.example")
	h := s.hash(src, dst)
	var f *Flow
	for m := 0; m < matureMinutes-1; m++ {
		for k := 0; k < 3; k++ { // three events a minute
			g, _, r := s.Observe(src, dst, t0.Unix()+int64(m*60+k), 10)
			if r != Counted || (f != nil && g != f) {
				t.Fatalf("minute %d: %v, flow %p then %p", m, r, f, g)
			}
			f = g
		}
		s.Wait()
		if f.status() != statusYoung || s.idx.get(h) != f {
			t.Fatalf("minute %d: status %d, index %p (flow %p)", m, f.status(), s.idx.get(h), f)
		}
		if _, ok := s.rc.Get(h); ok {
			t.Fatalf("minute %d: a young flow is in ristretto", m)
		}
	}
	st := s.Stats()
	if st.Young != 1 || st.Flows != 1 || st.Promoted != 0 || st.Bytes != f.cost() {
		t.Fatalf("young: %+v, cost %d", st, f.cost())
	}
	youngCost := f.cost()
	if want := int64(flowStructBytes + youngSlotBytes + indexSlotBytes + f.counts.bytes()); youngCost != want {
		t.Fatalf("young cost %d, want %d", youngCost, want)
	}
	s.Observe(src, dst, t0.Unix()+int64((matureMinutes-1)*60), 10) // the matureMinutes-th minute
	s.Wait()
	if _, ok := s.rc.Get(h); !ok {
		t.Fatalf("not in ristretto after %d active minutes (status %d)", matureMinutes, f.status())
	}
	g, _, r := s.Observe(src, dst, t0.Unix()+int64(matureMinutes*60), 10)
	if r != Counted || g != f || f.status() != statusAdmitted {
		t.Fatalf("after promotion: %v, flow %p (want %p), status %d", r, g, f, f.status())
	}
	st = s.Stats()
	if want := int64(flowStructBytes + ristrettoBytes + indexSlotBytes + f.counts.bytes()); st.Young != 0 || st.Promoted != 1 || st.Flows != 1 || st.Bytes != f.cost() || f.cost() != want {
		t.Fatalf("mature: %+v, cost %d (want %d; young %d)", st, f.cost(), want, youngCost)
	}
	if n := flowCount(s, f); n != 3*(matureMinutes-1)+2 {
		t.Fatalf("%d counts, want %d", n, 3*(matureMinutes-1)+2)
	}
}

// A full nursery evicts one-off flows before a young flow active in two
// minutes, and its young flows' count and bytes stay within twice its
// share; once the one-offs are past their grace, new flows evict them.
func TestNurseryEvictsOneOffsFirst(t *testing.T) {
	s := newStore(t, Config{MaxBytes: 2 << 20, Now: fixedNow})
	capacity := s.perYoung * shards
	keep := []byte("keeper.example")
	src := []byte("10.0.0.1")
	s.Observe(src, keep, t0.Unix(), 1)
	s.Observe(src, keep, t0.Unix()+60, 1) // a second minute
	scan := func(from, n int, sec int64) {
		for i := from; i < from+n; i++ {
			s.Observe([]byte(fmt.Sprintf("10.9.%d.%d", i>>8&255, i&255)), []byte(fmt.Sprintf("scan%d.example", i)), sec, 1)
		}
	}
	scan(0, 20*capacity, t0.Unix()+90)
	st := s.Stats()
	if st.Young > int64(2*capacity) || st.YoungEvicted < int64(18*capacity) {
		t.Fatalf("nursery of %d in the grace: %+v", capacity, st)
	}
	if st.Bytes > int64(2*capacity)*youngFlowBytes {
		t.Fatalf("young flows take %d bytes, more than twice the nursery's %d", st.Bytes, int64(capacity)*youngFlowBytes)
	}
	// Past the grace, a shard that takes a new flow evicts the old ones
	// down to its share first (in the grace, a shard under twice its share
	// evicts none).
	before := st.YoungEvicted
	scan(20*capacity, capacity, t0.Unix()+90+60*(youngGrace+1))
	st = s.Stats()
	if st.YoungEvicted-before < int64(capacity) || st.Young > int64(2*capacity) {
		t.Fatalf("nursery of %d past the grace: %d evicted for %d new flows: %+v", capacity, st.YoungEvicted-before, capacity, st)
	}
	got := flowTotals(s)
	if got["10.0.0.1\x00keeper.example"] != 2 {
		t.Fatalf("the two-minute flow has %d counts, want 2 (stats %+v)", got["10.0.0.1\x00keeper.example"], st)
	}
	if len(got) != int(st.Flows) {
		t.Fatalf("Range saw %d flows, Stats %d", len(got), st.Flows)
	}
}

// Flows in their first minute, in nursery shards that a burst of one-offs
// fills in that same minute, are not evicted before their second minute
// (the grace): 100 beacons, then 80 % of the nursery's share in one-offs,
// then the beacons' second events. Without the grace about half the
// shards overflow and evict their oldest flows, the beacons.
func TestNurseryGraceKeepsFirstMinuteFlows(t *testing.T) {
	s := newStore(t, Config{MaxBytes: 2 << 20, Now: fixedNow})
	capacity := s.perYoung * shards
	src := []byte("10.1.0.1")
	beacon := func(b int) []byte { return []byte(fmt.Sprintf("c2-%d.example", b)) }
	for b := 0; b < 100; b++ {
		s.Observe(src, beacon(b), t0.Unix(), 1)
	}
	for i := 0; i < capacity*8/10; i++ {
		s.Observe([]byte(fmt.Sprintf("10.9.%d.%d", i>>8&255, i&255)), []byte(fmt.Sprintf("scan%d.example", i)), t0.Unix()+30, 1)
	}
	for b := 0; b < 100; b++ {
		s.Observe(src, beacon(b), t0.Unix()+60, 1)
	}
	got := flowTotals(s)
	for b := 0; b < 100; b++ {
		if n := got[string(src)+"\x00"+string(beacon(b))]; n != 2 {
			t.Fatalf("beacon %d has %d counts, want 2 (stats %+v)", b, n, s.Stats())
		}
	}
	fullest := 0
	for i := range s.pending {
		fullest = max(fullest, s.pending[i].young.young)
	}
	if fullest <= s.perYoung {
		t.Fatalf("no nursery shard went past its share of %d (the fullest holds %d): the test proves nothing", s.perYoung, fullest)
	}
}

// Young flows survive a snapshot: restored into the nursery, still young,
// with their counts; mature ones into ristretto.
func TestSnapshotRestoresYoungFlows(t *testing.T) {
	s := newStore(t, Config{Now: fixedNow})
	src := []byte("10.0.0.1")
	young := int64(0)
	for i := 0; i < 50; i++ {
		minutes := 1 + i%(2*matureMinutes) // half young, half mature
		if minutes < matureMinutes {
			young++
		}
		for m := 0; m < minutes; m++ {
			s.Observe(src, []byte(fmt.Sprintf("d%d.example", i)), t0.Unix()+int64(m*60), 5)
		}
	}
	s.Wait()
	before, st := flowTotals(s), s.Stats()
	path := filepath.Join(t.TempDir(), "state")
	if _, err := s.WriteSnapshot(path); err != nil {
		t.Fatal(err)
	}
	r := newStore(t, Config{Now: fixedNow})
	if _, err := r.Restore(path); err != nil {
		t.Fatal(err)
	}
	rst := r.Stats()
	if rst.Young != st.Young || rst.Flows != st.Flows || rst.Restored != st.Flows || rst.Bytes != st.Bytes || st.Young != young {
		t.Fatalf("before %+v\nafter %+v", st, rst)
	}
	after := flowTotals(r)
	for k, n := range before {
		if after[k] != n {
			t.Fatalf("%q: %d counts after restore, %d before", k, after[k], n)
		}
	}
	// A restored young flow is found by its next event and matures.
	dst := []byte("d0.example") // one minute so far
	for m := 1; m < matureMinutes; m++ {
		if _, _, res := r.Observe(src, dst, t0.Unix()+int64(m*60), 5); res != Counted {
			t.Fatal(res)
		}
	}
	r.Wait()
	if st := r.Stats(); st.Promoted != 1 || st.Flows != rst.Flows {
		t.Fatalf("after the restored young flow matured: %+v", st)
	}
}

// Workers counting the same young flows at once, across their promotion,
// lose no event and create no flow twice (run with -race).
func TestConcurrentPromotionExact(t *testing.T) {
	s := newStore(t, Config{Now: fixedNow})
	const workers, flows, minutes = 4, 300, 2 * matureMinutes
	var wg sync.WaitGroup
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			src := []byte("10.0.0.1")
			for m := 0; m < minutes; m++ {
				for i := 0; i < flows; i++ {
					dst := []byte(fmt.Sprintf("d%d.example", (i+w*7)%flows))
					if _, _, r := s.Observe(src, dst, t0.Unix()+int64(m*60+w), 1); r != Counted {
						t.Errorf("%v", r)
						return
					}
				}
			}
		}()
	}
	wg.Wait()
	s.Wait()
	got := flowTotals(s)
	st := s.Stats()
	if len(got) != flows || st.Flows != flows || st.Promoted != flows || st.Young != 0 {
		t.Fatalf("%d flows seen, stats %+v", len(got), st)
	}
	for k, n := range got {
		if n != workers*minutes {
			t.Fatalf("%q: %d counts, want %d", k, n, workers*minutes)
		}
	}
}
