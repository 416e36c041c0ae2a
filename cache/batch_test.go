package cache

import (
	"fmt"
	"math/rand/v2"
	"sync"
	"testing"
	"time"
)

// batchEvents is a stream with every outcome: repeats of a few hundred
// flows, late events, events too old for the window, too far in the
// future, bad keys, and flows that appear mid-batch (twice in one batch).
func batchEvents(r *rand.Rand, n int) []Event {
	evs := make([]Event, n)
	sec := t0.Unix()
	for i := range evs {
		sec += int64(r.IntN(40))
		e := Event{
			Src:  []byte(fmt.Sprintf("10.0.%d.%d", r.IntN(3), r.IntN(20))),
			Dst:  []byte(fmt.Sprintf("d%d.example", r.IntN(30))),
			Sec:  sec,
			Size: int64(r.IntN(2000)) - 100,
		}
		switch u := r.IntN(100); {
		case u < 5:
			e.Sec = sec - int64(r.IntN(3600)) // late, within the window
		case u < 7:
			e.Sec = sec - 25*3600 // before the window
		case u < 9:
			e.Sec = fixedNow().Add(time.Hour).Unix() // too new
		case u < 10:
			e.Src = nil
		case u < 11:
			e.Dst = make([]byte, MaxKeyLen)
		}
		evs[i] = e
	}
	return evs
}

// ObserveBatch gives every event the result Observe gives it, and leaves
// the same counts and statistics, for batches of every length, with and
// without its prefetching stages (which a store of this size would skip).
func TestObserveBatchMatchesObserve(t *testing.T) {
	for _, from := range []int64{prefetchFlows, 0} {
		t.Run(fmt.Sprintf("prefetch from %d flows", from), func(t *testing.T) { observeBatchMatches(t, from) })
	}
}

func observeBatchMatches(t *testing.T, prefetchFrom int64) {
	r := rand.New(rand.NewPCG(7, 8))
	evs := batchEvents(r, 20000)
	one := newStore(t, Config{Now: fixedNow})
	many := newStore(t, Config{Now: fixedNow})
	many.prefetchFrom = prefetchFrom
	type out struct {
		key string
		due bool
		r   Result
	}
	want := make([]out, len(evs))
	for i, e := range evs {
		f, due, res := one.Observe(e.Src, e.Dst, e.Sec, e.Size)
		want[i] = out{due: due, r: res}
		if f != nil {
			want[i].key = f.Key()
		}
	}
	for i := 0; i < len(evs); {
		n := min(len(evs)-i, 1+r.IntN(70))
		b := evs[i : i+n]
		many.ObserveBatch(b)
		for j, e := range b {
			got := out{due: e.Due, r: e.Result}
			if e.Flow != nil {
				got.key = e.Flow.Key()
			}
			if got != want[i+j] {
				t.Fatalf("event %d (%q -> %q at %d): batch gave %+v, Observe %+v", i+j, e.Src, e.Dst, e.Sec, got, want[i+j])
			}
		}
		i += n
	}
	one.Wait()
	many.Wait()
	a, b := flowTotals(one), flowTotals(many)
	if len(a) == 0 || fmt.Sprint(a) != fmt.Sprint(b) {
		t.Fatalf("flows differ: Observe %d flows, batch %d", len(a), len(b))
	}
	sa, sb := one.Stats(), many.Stats()
	if sa.Counted != sb.Counted || sa.TooOld != sb.TooOld || sa.TooNew != sb.TooNew || sa.BadInput != sb.BadInput || sa.Flows != sb.Flows || sa.Bytes != sb.Bytes {
		t.Fatalf("stats differ:\nObserve %+v\nbatch   %+v", sa, sb)
	}
	if sa.TooOld == 0 || sa.TooNew == 0 || sa.BadInput == 0 {
		t.Fatalf("the stream lacks a kind of event: %+v", sa)
	}
	views := func(s *Store) map[string]View {
		m := map[string]View{}
		s.Range(func(f *Flow) bool {
			var v View
			s.Snapshot(f, &v)
			v.Marks = Marks{}
			m[f.Key()] = v
			return true
		})
		return m
	}
	va, vb := views(one), views(many)
	for k, v := range va {
		if vb[k] != v {
			t.Fatalf("flow %s: the batch store's state differs", k)
		}
	}
}

// Workers calling ObserveBatch at once (Fluent Bit's workers), on the same
// flows, lose no event; run with -race.
func TestObserveBatchConcurrentCountsExact(t *testing.T) {
	for _, from := range []int64{prefetchFlows, 0} {
		t.Run(fmt.Sprintf("prefetch from %d flows", from), func(t *testing.T) { observeBatchConcurrent(t, from) })
	}
}

func observeBatchConcurrent(t *testing.T, prefetchFrom int64) {
	s := newStore(t, Config{Now: fixedNow})
	s.prefetchFrom = prefetchFrom
	const workers, flows, per = 4, 50, 300
	var wg sync.WaitGroup
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			evs := make([]Event, 0, 32)
			for i := 0; i < per; i++ {
				for f := 0; f < flows; f++ {
					evs = append(evs, Event{Src: []byte("10.0.0.1"), Dst: []byte(fmt.Sprintf("d%d.example", f)), Sec: t0.Unix() + int64(i*30), Size: -1})
					if len(evs) == cap(evs) {
						s.ObserveBatch(evs)
						evs = evs[:0]
					}
				}
			}
			s.ObserveBatch(evs)
		}()
	}
	wg.Wait()
	s.Wait()
	total, n := 0, 0
	for _, c := range flowTotals(s) {
		total += c
		n++
	}
	if n != flows || total != workers*flows*per || s.Stats().Counted != int64(total) {
		t.Fatalf("flows %d (want %d), events %d (want %d), counted %d", n, flows, total, workers*flows*per, s.Stats().Counted)
	}
}

// ObserveBatch allocates nothing once its flows exist.
func TestObserveBatchAllocatesNothing(t *testing.T) {
	s := newStore(t, Config{Now: fixedNow})
	s.prefetchFrom = 0 // the stages: the other path is Observe's
	evs := make([]Event, 32)
	for i := range evs {
		evs[i] = Event{Src: []byte("10.0.0.1"), Dst: []byte(fmt.Sprintf("d%d.example", i)), Sec: t0.Unix(), Size: 10}
	}
	s.ObserveBatch(evs)
	s.Wait()
	s.ObserveBatch(evs)
	if a := testing.AllocsPerRun(100, func() { s.ObserveBatch(evs) }); a != 0 {
		t.Fatalf("%v allocations per batch", a)
	}
	for _, e := range evs {
		if e.Result != Counted || e.Flow == nil {
			t.Fatalf("event %q: %v", e.Dst, e.Result)
		}
	}
}

// BenchmarkObserveBatchHit is BenchmarkObserveHit (1,024 flows of one
// source, each event in a new minute of its flow) through ObserveBatch,
// 32 events at a time, as it runs for so few flows ("direct") and with
// its prefetching stages forced ("staged"); ns/op is per event.
func BenchmarkObserveBatchHit(b *testing.B) {
	for _, mode := range []string{"direct", "staged"} {
		b.Run(mode, func(b *testing.B) {
			s, src, dsts := hitStore(b)
			if mode == "staged" {
				s.prefetchFrom = 0
			}
			var evs [32]Event
			keys := make([]byte, len(evs)*64)
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; i < b.N; {
				m := min(len(evs), b.N-i)
				room := keys
				for x := range evs[:m] {
					var k, d []byte
					k, d, room = joinKey(room, src, dsts[(i+x)&1023])
					evs[x] = Event{Src: k, Dst: d, Sec: t0.Unix() + int64((i+x)>>10), Size: 1}
				}
				s.ObserveBatch(evs[:m])
				i += m
			}
		})
	}
}
