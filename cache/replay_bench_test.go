package cache

import (
	"math/rand/v2"
	"runtime"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"
)

// BenchmarkObserveReplay counts the simulator's day as a collector of
// about a million flows sees it: replayCopies copies of the day's 100
// hosts (copy c renames each source to "<source>#c" and starts its day at
// its own minute, so that the copies' habits do not coincide), merged in
// event time. The set-up replays one day, which makes the flows; the
// timed part replays the next day (every event 24 h later; each run
// starts on a day after the one the run before started on): the steady
// state of a collector that has run for a while, whose hosts keep their
// habits. The events go through ObserveBatch, batchLen at a time, their
// keys laid out as the detector lays them out.
//
// Unlike BenchmarkObserve's modes, the events come in time order, with
// the locality of real traffic: a flow's events cluster in its active
// minutes, and nearly half of them open a new minute of their flow, which
// slides its window. ns/op is per event; "flows" is the number tracked
// after the run; "new-flows/op" the share of events that made a flow
// (there are none unless flows were evicted); "loop" is the benchmark's
// own part (the same stream, keys copied, no store).
func BenchmarkObserveReplay(b *testing.B) {
	r := loadReplay(b)
	for _, mode := range []string{"loop", "store"} {
		b.Run(mode, func(b *testing.B) {
			s := r.store(b)
			before := s.Stats()
			runtime.GC()
			b.ReportAllocs()
			b.ResetTimer()
			r.day++ // each run replays a later day than the one before
			n := r.run(b.N, r.day, func(evs []Event) {
				if mode == "store" {
					s.ObserveBatch(evs)
				}
			})
			b.StopTimer()
			if n != b.N {
				b.Fatalf("replayed %d of %d events", n, b.N)
			}
			if mode == "loop" {
				return
			}
			after := s.Stats()
			if got := after.Counted - before.Counted; got != int64(b.N) {
				b.Fatalf("%d of %d events counted: %+v", got, b.N, after)
			}
			b.ReportMetric(float64(after.Flows), "flows")
			made := after.Flows - before.Flows + after.YoungEvicted - before.YoungEvicted + after.Evictions - before.Evictions
			b.ReportMetric(float64(made)/float64(b.N), "new-flows/op")
		})
	}
}

// replayCopies copies of the simulator's day's 17,735 flows make about a
// million.
const replayCopies = 57

// replay is BenchmarkObserveReplay's stream: one day of all copies merged
// in time order, in a compact form read sequentially, so that the
// benchmark's own loop adds few cache misses of its own (its keys' bytes
// lie in two small arenas).
type replay struct {
	evs    []replayEvent
	names  []byte   // the sources of all copies, then the destinations
	spans  []uint32 // name i is names[spans[i]:spans[i+1]]
	day0   int64    // the day's first second (a multiple of a day)
	s      *Store
	day    int // the day the last run started on
	events int
}

type replayEvent struct {
	src, dst uint32 // name indexes
	sec      int32  // second of the day
	size     int32
}

var (
	replayOnce sync.Once
	replayData *replay
)

func loadReplay(b *testing.B) *replay {
	replayOnce.Do(func() { replayData = newReplay(b) })
	if replayData == nil {
		b.Fatal("no replay stream")
	}
	return replayData
}

func newReplay(b *testing.B) *replay {
	d := loadSimDay(b)
	r := &replay{day0: d.events[0].sec - d.events[0].sec%86400}
	if d.events[len(d.events)-1].sec >= r.day0+86400 {
		b.Fatal("the simulator's day spans more than a day")
	}
	// Names: each copy's sources, then the destinations.
	srcOf := map[int32]int{} // simDay name index -> source number
	for _, e := range d.events {
		if _, ok := srcOf[e.src]; !ok {
			srcOf[e.src] = len(srcOf)
		}
	}
	srcName := make([]string, len(srcOf))
	for i, k := range srcOf {
		srcName[k] = d.names[i]
	}
	add := func(n string) {
		r.spans = append(r.spans, uint32(len(r.names)))
		r.names = append(r.names, n...)
	}
	for c := range replayCopies {
		for _, n := range srcName {
			add(n + "#" + strconv.Itoa(c))
		}
	}
	dst0 := uint32(len(r.spans))
	for _, n := range d.names {
		add(n)
	}
	r.spans = append(r.spans, uint32(len(r.names)))
	// Copy c's second t is the day's second t-shift[c] (mod a day).
	rng := rand.New(rand.NewPCG(3, 4))
	r.evs = make([]replayEvent, 0, replayCopies*len(d.events))
	for c := range replayCopies {
		shift := 60 * int64(rng.IntN(1440))
		for _, e := range d.events {
			sec := (e.sec - r.day0 + shift) % 86400
			r.evs = append(r.evs, replayEvent{
				src: uint32(c*len(srcName) + srcOf[e.src]), dst: dst0 + uint32(e.dst),
				sec: int32(sec), size: int32(min(e.size, 1<<31-1)),
			})
		}
	}
	slices.SortStableFunc(r.evs, func(x, y replayEvent) int { return int(x.sec - y.sec) })
	r.events = len(r.evs)
	return r
}

func (r *replay) name(i uint32) []byte { return r.names[r.spans[i]:r.spans[i+1]] }

// store returns the store after the set-up day, made on first use.
func (r *replay) store(b *testing.B) *Store {
	if r.s != nil {
		return r.s
	}
	end := time.Unix(r.day0+10*86400, 0)
	s, err := New(Config{MaxBytes: 4 << 30, ExpectedFlows: 1 << 20, Now: func() time.Time { return end }})
	if err != nil {
		b.Fatal(err)
	}
	start := time.Now()
	r.run(r.events, 0, s.ObserveBatch)
	s.Wait()
	st := s.Stats()
	b.Logf("set-up day: %d events, %d flows (%d young), %d young evicted, %v", r.events, st.Flows, st.Young, st.YoungEvicted, time.Since(start).Round(time.Second))
	r.s = s
	return s
}

// run replays n events from the start of day `day` (0: the set-up day) to
// fn, batchLen at a time, and returns n.
func (r *replay) run(n, day int, fn func([]Event)) int {
	var evs [batchLen]Event
	keys := make([]byte, batchLen*MaxKeyLen)
	done := 0
	for ; ; day++ {
		base := r.day0 + int64(day)*86400
		for i := 0; i < len(r.evs); {
			m := min(batchLen, len(r.evs)-i, n-done)
			room := keys
			for x := range evs[:m] {
				e := &r.evs[i+x]
				var src, dst []byte
				src, dst, room = joinKey(room, r.name(e.src), r.name(e.dst))
				evs[x] = Event{Src: src, Dst: dst, Sec: base + int64(e.sec), Size: int64(e.size)}
			}
			fn(evs[:m])
			i, done = i+m, done+m
			if done == n {
				return n
			}
		}
	}
}

// BenchmarkRandomReads is the machine's memory floor for a store of a
// million flows: random 8-byte reads of a 512 MiB buffer, "independent"
// (4,096 addresses at a time, read back to back: as many misses in flight
// as the CPU allows, as ObserveBatch's prefetching arranges) and
// "dependent" (each address from the word read before: one miss at a
// time, as Observe's lookups). ns/op is per read; "independent" includes
// making the random addresses (a few ns).
func BenchmarkRandomReads(b *testing.B) {
	const words = 64 << 20
	mem := make([]uint64, words)
	for i := range mem {
		mem[i] = uint64(i) * 0x9e3779b97f4a7c15 >> 38 // < words
	}
	r := rand.New(rand.NewPCG(9, 10))
	b.Run("independent", func(b *testing.B) {
		idx := make([]uint32, 4096)
		var sum uint64
		b.ResetTimer()
		for done := 0; done < b.N; done += len(idx) {
			for i := range idx {
				idx[i] = uint32(r.Uint64() % words)
			}
			for _, j := range idx[:min(len(idx), b.N-done)] {
				sum += mem[j]
			}
		}
		if sum == 1 {
			b.Log(sum)
		}
	})
	b.Run("dependent", func(b *testing.B) {
		p := uint64(0)
		for i := 0; i < b.N; i++ {
			p = (mem[p] + uint64(i)) % words
		}
		if p == words {
			b.Log(p)
		}
	})
}
