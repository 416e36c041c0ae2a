package cache

import (
	"fmt"
	"sync"
	"testing"
	"time"
)

func TestCountsSparseAndDense(t *testing.T) {
	f := func(name string, minutes []int32, end int32, want map[int32]uint16) {
		t.Helper()
		var c counts
		for _, m := range minutes {
			c.add(m, 1)
		}
		var got [Minutes]uint16
		c.snapshot(end, &got)
		for i, n := range got {
			abs := end - Minutes + 1 + int32(i)
			if want[abs] != n {
				t.Fatalf("%s: minute %d: got %d, want %d", name, abs, n, want[abs])
			}
		}
	}
	base := int32(29_000_000)
	f("one", []int32{base}, base, map[int32]uint16{base: 1})
	f("repeat", []int32{base, base, base + 1}, base+1, map[int32]uint16{base: 2, base + 1: 1})
	f("late within window", []int32{base + 100, base + 5, base + 50}, base+100,
		map[int32]uint16{base + 100: 1, base + 5: 1, base + 50: 1})
	f("window slides", []int32{base, base + Minutes}, base+Minutes, map[int32]uint16{base + Minutes: 1})
	// Dense: every minute of a day, then the window slides by 10.
	var all []int32
	want := map[int32]uint16{}
	for m := base; m < base+Minutes+10; m++ {
		all = append(all, m)
		if m > base+9 {
			want[m] = 1
		}
	}
	f("dense slides", all, base+Minutes+9, want)
	// Snapshot ending after the flow's last minute.
	f("quiet flow", []int32{base, base + 1}, base+60, map[int32]uint16{base: 1, base + 1: 1})
}

func TestCountsRejectsBeforeWindow(t *testing.T) {
	var c counts
	c.add(10_000, 1)
	if c.add(10_000-Minutes, 1) {
		t.Fatal("an event a full window before the newest was counted")
	}
	if !c.add(10_000-Minutes+1, 1) {
		t.Fatal("the oldest minute of the window was refused")
	}
}

func TestCountsSaturate(t *testing.T) {
	var c counts
	for i := 0; i < 70000; i++ {
		c.add(5, 1)
	}
	var got [Minutes]uint16
	c.snapshot(5, &got)
	if got[Minutes-1] != 0xffff {
		t.Fatalf("got %d, want saturation at 65535", got[Minutes-1])
	}
}

func newStore(t testing.TB, cfg Config) *Store {
	t.Helper()
	s, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Close)
	return s
}

var t0 = time.Date(2026, 11, 2, 0, 0, 0, 0, time.UTC)

func fixedNow() time.Time { return t0.Add(48 * time.Hour) }

func TestStoreRejectsOldAndFuture(t *testing.T) {
	s := newStore(t, Config{Now: fixedNow})
	src, dst := []byte("10.0.0.1"), []byte("example.com")
	if _, _, r := s.Observe(src, dst, t0.Unix(), 10); r != Counted {
		t.Fatalf("first event: %v", r)
	}
	if _, _, r := s.Observe(src, dst, t0.Add(25*time.Hour).Unix(), 10); r != Counted {
		t.Fatalf("next day: %v", r)
	}
	if _, _, r := s.Observe(src, dst, t0.Unix(), 10); r != TooOld {
		t.Fatalf("an event 25h before the watermark: got %v, want TooOld", r)
	}
	if _, _, r := s.Observe(src, dst, fixedNow().Add(time.Hour).Unix(), 10); r != TooNew {
		t.Fatalf("an event 1h in the future: got %v, want TooNew", r)
	}
	if _, _, r := s.Observe(nil, dst, t0.Unix(), 10); r != BadInput {
		t.Fatalf("no source: got %v", r)
	}
	st := s.Stats()
	if st.TooOld != 1 || st.TooNew != 1 || st.BadInput != 1 || st.Counted != 2 {
		t.Fatalf("stats %+v", st)
	}
}

func TestStoreConcurrentCountsExact(t *testing.T) {
	s := newStore(t, Config{Now: fixedNow})
	const workers, flows, per = 4, 50, 400
	var wg sync.WaitGroup
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < per; i++ {
				for f := 0; f < flows; f++ {
					s.Observe([]byte("10.0.0.1"), []byte(fmt.Sprintf("d%d.example", f)), t0.Unix()+int64(i*30), -1)
				}
			}
		}()
	}
	wg.Wait()
	s.Wait()
	total := 0
	n := 0
	s.Range(func(f *Flow) bool {
		var v View
		s.Snapshot(f, &v)
		for _, c := range v.Counts {
			total += int(c)
		}
		n++
		return true
	})
	if n != flows || total != workers*flows*per {
		t.Fatalf("flows %d (want %d), events %d (want %d)", n, flows, total, workers*flows*per)
	}
	var v View
	s.Range(func(f *Flow) bool { s.Snapshot(f, &v); return false })
	if v.Prevalence != 1 || v.Sources != 1 {
		t.Fatalf("prevalence %d sources %d", v.Prevalence, v.Sources)
	}
}

// A flood of one-off flows under a small memory bound must not cost an
// established flow any of its counts.
func TestFloodKeepsEstablishedFlowsExact(t *testing.T) {
	s := newStore(t, Config{MaxBytes: 2 << 20, Now: fixedNow})
	const beacons = 100
	flood := 0
	for m := 0; m < 240; m++ { // four hours, one event per beacon per minute
		sec := t0.Unix() + int64(m*60)
		for b := 0; b < beacons; b++ {
			s.Observe([]byte("10.1.0.1"), []byte(fmt.Sprintf("c2-%d.example", b)), sec, 100)
		}
		for k := 0; k < 500; k++ {
			flood++
			s.Observe([]byte(fmt.Sprintf("10.9.%d.%d", flood>>8&255, flood&255)), []byte(fmt.Sprintf("scan%d.example", flood)), sec, 1)
		}
		if m%30 == 0 {
			s.Wait()
		}
	}
	s.Wait()
	kept := map[string]int{}
	s.Range(func(f *Flow) bool {
		if f.Src() == "10.1.0.1" {
			var v View
			s.Snapshot(f, &v)
			n := 0
			for _, c := range v.Counts {
				n += int(c)
			}
			kept[f.Dst()] = n
		}
		return true
	})
	st := s.Stats()
	// The one-offs churn through the nursery; the beacons, active in a
	// second minute before the flood reaches them, stay there until they
	// mature.
	if st.YoungEvicted < 100000 || st.Promoted < beacons {
		t.Fatalf("the flood never pressured the nursery, or the beacons did not mature: %+v", st)
	}
	if len(kept) != beacons {
		t.Fatalf("%d of %d beacon flows kept (stats %+v)", len(kept), beacons, st)
	}
	for d, n := range kept {
		if n != 240 {
			t.Fatalf("beacon %s has %d counts, want 240", d, n)
		}
	}
}

// hitStore is a store of 1,024 flows of one source, and their keys.
func hitStore(b *testing.B) (s *Store, src []byte, dsts [][]byte) {
	s = newStore(b, Config{Now: fixedNow})
	src = []byte("10.0.0.1")
	dsts = make([][]byte, 1024)
	for i := range dsts {
		dsts[i] = []byte(fmt.Sprintf("host%d.example.com", i))
		s.Observe(src, dsts[i], t0.Unix(), 1)
	}
	s.Wait()
	matureAll(b, s, [][]byte{src}, dsts)
	return s, src, dsts
}

func BenchmarkObserveHit(b *testing.B) {
	s, src, dsts := hitStore(b)
	key := make([]byte, 64)
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		k, d, _ := joinKey(key, src, dsts[i&1023]) // as Detector.Observe passes them
		s.Observe(k, d, t0.Unix()+int64(i>>10), 1)
	}
}
