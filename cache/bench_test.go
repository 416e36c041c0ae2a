package cache

import (
	"fmt"
	"math/rand/v2"
	"path/filepath"
	"strconv"
	"sync"
	"testing"
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

func bigFixture(b *testing.B) *Store {
	bigOnce.Do(func() {
		s, err := New(Config{MaxBytes: 2 << 30, ExpectedFlows: bigSrcN * bigDstN, Now: fixedNow})
		if err != nil {
			panic(err)
		}
		for i := 0; i < bigSrcN; i++ {
			bigSrcs = append(bigSrcs, []byte(fmt.Sprintf("10.%d.%d.%d", i>>16&255, i>>8&255, i&255)))
		}
		for j := 0; j < bigDstN; j++ {
			bigDsts = append(bigDsts, []byte(fmt.Sprintf("svc%d.example.com", j)))
		}
		for i := range bigSrcs {
			for j := range bigDsts {
				s.Observe(bigSrcs[i], bigDsts[j], t0.Unix()+int64(j), 1)
			}
		}
		s.Wait()
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

// BenchmarkObserve counts one event into an existing flow with 1M flows
// tracked. "uniform": each event picks a random flow of the million (the
// worst case for CPU caches); "hot": events cycle over 1024 flows.
func BenchmarkObserve(b *testing.B) {
	s := bigFixture(b)
	for _, mode := range []string{"uniform", "hot"} {
		b.Run(mode, func(b *testing.B) {
			r := rand.New(rand.NewPCG(1, 2))
			idx := make([]int32, 1<<20)
			for i := range idx {
				if mode == "hot" {
					idx[i] = int32(i % 1024 * 977 % (bigSrcN * bigDstN))
				} else {
					idx[i] = int32(r.IntN(bigSrcN * bigDstN))
				}
			}
			before := s.Stats().Counted
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				k := idx[i&(1<<20-1)]
				j := int(k) % bigDstN
				// the flow's own minute: counting, not growing
				s.Observe(bigSrcs[int(k)/bigDstN], bigDsts[j], t0.Unix()+int64(j), 1)
			}
			b.StopTimer()
			if got := s.Stats().Counted - before; got != int64(b.N) {
				b.Fatalf("%d of %d events counted", got, b.N)
			}
		})
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
	for i := 0; i < b.N; i++ {
		var err error
		if st, err = s.WriteSnapshot(path); err != nil {
			b.Fatal(err)
		}
	}
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
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		r, err := New(Config{MaxBytes: 2 << 30, ExpectedFlows: bigSrcN * bigDstN, Now: fixedNow})
		if err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
		st, err := r.Restore(path)
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
