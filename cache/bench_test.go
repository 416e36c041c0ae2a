package cache

import (
	"fmt"
	"math/rand/v2"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// The 1M-flow fixture: 5000 sources x 200 destinations, one event each, in
// a store large enough to keep them all. Built once per test binary, only
// by the benchmarks that use it (go test -bench).
var (
	bigOnce  sync.Once
	bigStore *Store
	bigSrcs  [][]byte
	bigDsts  [][]byte
)

const bigSrcN, bigDstN = 5000, 200

// bigKeys returns the fixture's sources and destinations: its flows are
// every pair of them.
func bigKeys() (srcs, dsts [][]byte) {
	for i := 0; i < bigSrcN; i++ {
		srcs = append(srcs, []byte(fmt.Sprintf("10.%d.%d.%d", i>>16&255, i>>8&255, i&255)))
	}
	for j := 0; j < bigDstN; j++ {
		dsts = append(dsts, []byte(fmt.Sprintf("svc%d.example.com", j)))
	}
	return srcs, dsts
}

func bigFixture(b *testing.B) *Store {
	bigOnce.Do(func() {
		s, err := New(Config{MaxBytes: 2 << 30, ExpectedFlows: bigSrcN * bigDstN, Now: fixedNow})
		if err != nil {
			panic(err)
		}
		bigSrcs, bigDsts = bigKeys()
		for i := range bigSrcs {
			for j := range bigDsts {
				s.Observe(bigSrcs[i], bigDsts[j], t0.Unix()+int64(j), 1)
			}
		}
		s.Wait()
		// The flows are active in one minute each, so they are young; the
		// benchmarks measure flows ristretto holds, as on a collector that
		// has run for a while (the path of a young flow's event is the
		// same, but its memory is less).
		matureAll(b, s, bigSrcs, bigDsts)
		// Settle: flows whose Set ristretto dropped (its buffer was full)
		// are offered again by their next event.
		for i := range bigSrcs {
			for j := range bigDsts {
				s.Observe(bigSrcs[i], bigDsts[j], t0.Unix()+int64(j), 1)
			}
		}
		s.Wait()
		bigStore = s
	})
	if n := bigStore.Stats().Flows; n != bigSrcN*bigDstN {
		b.Fatalf("fixture holds %d flows", n)
	}
	return bigStore
}

// joinKey writes src and dst back to back at the start of room, as the
// detector's batches do (so Store.hash hashes them in one call), and
// returns them and the rest of room.
func joinKey(room, src, dst []byte) (s, d, rest []byte) {
	n := copy(room, src)
	copy(room[n:], dst)
	k := n + len(dst)
	return room[:n], room[n:k], room[k:]
}

// matureAll moves the young flows src x dst to ristretto, as if they had
// been active in matureMinutes minutes, and fails b if any is left young.
func matureAll(b testing.TB, s *Store, srcs, dsts [][]byte) {
	for pass := 0; s.Stats().Young > 0; pass++ {
		if pass == 5 {
			b.Fatalf("flows still young after %d passes: %+v", pass, s.Stats())
		}
		k := 0
		for _, src := range srcs {
			for _, dst := range dsts {
				h := s.hash(src, dst)
				if f := s.idx.get(h); f != nil && f.status() == statusYoung {
					s.promote(h, f)
				}
				if k++; k%4096 == 0 {
					s.Wait() // ristretto decides; admitted flows leave the pending table
				}
			}
		}
		s.Wait()
		for _, src := range srcs {
			for _, dst := range dsts {
				s.lookup(s.hash(src, dst), src, dst) // ristretto's Get marks the admitted ones
			}
		}
	}
}

// BenchmarkObserve counts one event into an existing flow with 1M flows
// tracked, each event in its flow's own minute (counting, not growing):
//   - "uniform": each event picks a random flow of the million (the worst
//     case for CPU caches);
//   - "skewed": events follow the simulator's day: the busiest 1 % of the
//     flows get the share of the events the busiest 1 % of the day's flows
//     get, the next 9 % theirs, the rest the remainder (simShares);
//   - "hot": events cycle over 1024 flows;
//   - "map-floor": no store, the floor the machine sets for "uniform": a
//     lookup of the same random flow in a plain map[uint64]*Flow of the
//     million and an atomic increment in the flow it finds;
//   - "ristretto-get": ristretto's Get of a random flow of the million,
//     which Observe calls once per new minute of a flow (simShares says
//     how often that is on the simulator's day);
//   - "uniform-batch", "skewed-batch", "hot-batch": the same events as
//     the modes without "-batch", through ObserveBatch, batchLen at a time
//     (ns/op is still per event).
func BenchmarkObserve(b *testing.B) {
	s := bigFixture(b)
	const n = bigSrcN * bigDstN
	sh := simShares(b)
	b.Logf("simulator's day: busiest 1%% of flows %.1f%% of events, next 9%% %.1f%%, %.1f%% of events open a new minute of their flow",
		100*sh.top1, 100*sh.top10, 100*sh.newMinute)
	var floor map[uint64]*Flow
	for _, mode := range []string{"uniform", "uniform-batch", "skewed", "skewed-batch", "hot", "hot-batch", "map-floor", "ristretto-get"} {
		b.Run(mode, func(b *testing.B) {
			dist := strings.TrimSuffix(mode, "-batch")
			r := rand.New(rand.NewPCG(1, 2))
			perm := r.Perm(n) // flow rank -> flow
			idx := make([]int32, 1<<20)
			for i := range idx {
				switch dist {
				case "hot":
					idx[i] = int32(i % 1024 * 977 % n)
				case "skewed":
					switch u := r.Float64(); {
					case u < sh.top1:
						idx[i] = int32(perm[r.IntN(n/100)])
					case u < sh.top1+sh.top10:
						idx[i] = int32(perm[n/100+r.IntN(n*9/100)])
					default:
						idx[i] = int32(perm[n/10+r.IntN(n*9/10)])
					}
				default:
					idx[i] = int32(r.IntN(n))
				}
			}
			hs := make([]uint64, n)
			if mode == "map-floor" || mode == "ristretto-get" {
				for k := range hs {
					hs[k] = s.hash(bigSrcs[k/bigDstN], bigDsts[k%bigDstN])
				}
			}
			if mode == "map-floor" && floor == nil {
				floor = make(map[uint64]*Flow, n)
				for k := range hs {
					f, _, _ := s.Observe(bigSrcs[k/bigDstN], bigDsts[k%bigDstN], t0.Unix()+int64(k%bigDstN), 1)
					floor[hs[k]] = f
				}
			}
			var sink atomic.Uint32
			before := s.Stats().Counted
			runtime.GC() // the setup's garbage is not collected during the run
			b.ReportAllocs()
			b.ResetTimer()
			switch mode {
			case "map-floor":
				for i := 0; i < b.N; i++ {
					floor[hs[idx[i&(1<<20-1)]]].state.Add(0)
				}
			case "ristretto-get":
				for i := 0; i < b.N; i++ {
					if _, ok := s.rc.Get(hs[idx[i&(1<<20-1)]]); ok {
						sink.Add(1)
					}
				}
			case "uniform-batch", "skewed-batch", "hot-batch":
				var evs [batchLen]Event
				keys := make([]byte, batchLen*64)
				for i := 0; i < b.N; {
					m := min(batchLen, b.N-i)
					bigBatch(evs[:m], keys, idx, i, bigSrcs, bigDsts)
					s.ObserveBatch(evs[:m])
					i += m
				}
			default:
				key := make([]byte, 64)
				for i := 0; i < b.N; i++ {
					k := idx[i&(1<<20-1)]
					j := int(k) % bigDstN
					src, dst, _ := joinKey(key, bigSrcs[int(k)/bigDstN], bigDsts[j])
					s.Observe(src, dst, t0.Unix()+int64(j), 1)
				}
			}
			b.StopTimer()
			switch mode {
			case "map-floor":
			case "ristretto-get":
				if sink.Load() != uint32(b.N) {
					b.Fatalf("%d of %d Gets found their flow", sink.Load(), b.N)
				}
			default:
				if got := s.Stats().Counted - before; got != int64(b.N) {
					b.Fatalf("%d of %d events counted", got, b.N)
				}
			}
		})
	}
}

// bigBatch fills evs with the events idx[i:] (cyclically; len(idx) is a
// power of two) names among the fixture's flows srcs x dsts, each in its
// flow's own minute, their keys back to back in keys.
func bigBatch(evs []Event, keys []byte, idx []int32, i int, srcs, dsts [][]byte) {
	room := keys
	for x := range evs {
		k := idx[(i+x)&(len(idx)-1)]
		j := int(k) % bigDstN
		var src, dst []byte
		src, dst, room = joinKey(room, srcs[int(k)/bigDstN], dsts[j])
		evs[x] = Event{Src: src, Dst: dst, Sec: t0.Unix() + int64(j), Size: 1}
	}
}

// batchLen is the batch BenchmarkObserve's "-batch" modes pass to
// ObserveBatch.
const batchLen = 32

// shares describes the simulator's day: the share of events of its
// busiest 1 % of flows (top1) and of the next 9 % (top10), and the share
// of events that are the first of their flow in a newer minute than the
// flow's newest.
type shares struct{ top1, top10, newMinute float64 }

func simShares(t testing.TB) shares {
	d := loadSimDay(t)
	type key struct{ src, dst int32 }
	type acc struct {
		events int
		last   int64
	}
	fl := map[key]*acc{}
	newMin := 0
	for _, e := range d.events {
		k := key{e.src, e.dst}
		a := fl[k]
		if a == nil {
			a = &acc{last: e.sec / 60}
			fl[k] = a
		} else if m := e.sec / 60; m > a.last {
			a.last = m
			newMin++
		}
		a.events++
	}
	ev := make([]int, 0, len(fl))
	for _, a := range fl {
		ev = append(ev, a.events)
	}
	slices.Sort(ev)
	slices.Reverse(ev)
	sum := func(lo, hi int) (n int) {
		for _, x := range ev[lo:hi] {
			n += x
		}
		return n
	}
	total := float64(len(d.events))
	return shares{
		top1:      float64(sum(0, len(ev)/100)) / total,
		top10:     float64(sum(len(ev)/100, len(ev)/10)) / total,
		newMinute: float64(newMin) / total,
	}
}

// BenchmarkObserveParallel is BenchmarkObserve/uniform from GOMAXPROCS
// goroutines (Fluent Bit workers).
func BenchmarkObserveParallel(b *testing.B) {
	s := bigFixture(b)
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		r := rand.New(rand.NewPCG(rand.Uint64(), 2))
		for pb.Next() {
			k := r.IntN(bigSrcN * bigDstN)
			j := k % bigDstN
			s.Observe(bigSrcs[k/bigDstN], bigDsts[j], t0.Unix()+int64(j), 1)
		}
	})
}

// BenchmarkSnapshot writes the 1M-flow store; BenchmarkRestore reads it into
// a new store. Run with -cpu 1 -benchtime 3x (make bench-cache).
func BenchmarkSnapshot(b *testing.B) {
	s := bigFixture(b)
	path := filepath.Join(b.TempDir(), "state.bgs")
	b.ResetTimer()
	var st SnapshotStats
	cpu := processCPU()
	for i := 0; i < b.N; i++ {
		var err error
		if st, err = s.WriteSnapshot(path); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric((processCPU()-cpu).Seconds()/float64(b.N), "cpu-s/op")
	b.ReportMetric(float64(st.Flows), "flows")
	b.ReportMetric(float64(st.Bytes)/float64(st.Flows), "file-B/flow")
}

func BenchmarkRestore(b *testing.B) {
	s := bigFixture(b)
	path := filepath.Join(b.TempDir(), "state.bgs")
	if _, err := s.WriteSnapshot(path); err != nil {
		b.Fatal(err)
	}
	b.ResetTimer()
	var cpu time.Duration
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		r, err := New(Config{MaxBytes: 2 << 30, ExpectedFlows: bigSrcN * bigDstN, Now: fixedNow})
		if err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
		c0 := processCPU()
		st, err := r.Restore(path)
		cpu += processCPU() - c0
		if err != nil {
			b.Fatal(err)
		}
		b.StopTimer()
		if st.Flows != bigSrcN*bigDstN {
			b.Fatalf("restored %d flows", st.Flows)
		}
		r.Close()
		b.StartTimer()
	}
	b.ReportMetric(cpu.Seconds()/float64(b.N), "cpu-s/op")
}

// processCPU is the CPU time (user + system) the process used so far: on
// a loaded machine the wall time of a -cpu 1 benchmark includes waiting for
// a core, its CPU time does not.
func processCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// BenchmarkObserveNewFlow creates a flow per event (a scan): the cost of
// the pending table and ristretto's admission.
func BenchmarkObserveNewFlow(b *testing.B) {
	s := newStore(b, Config{MaxBytes: 64 << 20, Now: fixedNow})
	src := []byte("10.9.0.1")
	dst := make([]byte, 0, 32)
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		dst = strconv.AppendInt(append(dst[:0], "scan"...), int64(i), 10)
		s.Observe(src, dst, t0.Unix()+int64(i/10000), 1)
	}
}
