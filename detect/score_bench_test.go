package detect

import (
	"fmt"
	"math/rand"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/beacongrid/beacongrid/alert"
	"github.com/beacongrid/beacongrid/build/model"
	"github.com/beacongrid/beacongrid/cache"
)

// benchFlows fills a store with n flows over a day, a mix of what a network
// shows: jittered beacons, exact timers with missed beats, office-hours
// browsing bursts and sparse one-off traffic, each with at least 10 active
// minutes so the detector scores them.
// The store is built once per test binary and shared by the benchmarks
// (building it takes longer than measuring).
var bench struct {
	once  sync.Once
	store *cache.Store
	flows []*cache.Flow
	err   error
}

func benchFlows(b *testing.B, n int) (*cache.Store, []*cache.Flow) {
	b.Helper()
	bench.once.Do(func() { bench.store, bench.flows, bench.err = buildFlows(n) })
	if bench.err != nil {
		b.Fatal(bench.err)
	}
	return bench.store, bench.flows
}

func buildFlows(n int) (*cache.Store, []*cache.Flow, error) {
	store, err := cache.New(cache.Config{MaxBytes: 1 << 30})
	if err != nil {
		return nil, nil, err
	}
	rng := rand.New(rand.NewSource(1))
	day := time.Date(2024, 3, 4, 0, 0, 0, 0, time.UTC).Unix()
	type ev struct {
		src, dst []byte
		sec      int64
	}
	var evs []ev
	for i := 0; i < n; i++ {
		src := []byte(fmt.Sprintf("10.1.%d.%d", i/250, i%250))
		dst := []byte(fmt.Sprintf("dst%d.example", i))
		var ts []int64
		switch i % 4 {
		case 0: // jittered beacon, 60 s to 30 min
			iv := 60 + rng.Float64()*1740
			for t := float64(day) + rng.Float64()*iv; t < float64(day+86400); t += iv * (1 - 0.5*rng.Float64()) {
				ts = append(ts, int64(t))
			}
		case 1: // exact timer with missed beats
			iv := float64([]int{300, 600, 1200, 3600}[rng.Intn(4)])
			for t := float64(day) + rng.Float64()*iv; t < float64(day+86400); t += iv {
				if rng.Float64() > 0.2 {
					ts = append(ts, int64(t))
				}
			}
		case 2: // browsing bursts in office hours
			for t := float64(day + 9*3600); t < float64(day+17*3600); t += rng.ExpFloat64() * 1200 {
				for k := 0; k < 1+rng.Intn(30); k++ {
					ts = append(ts, int64(t)+int64(rng.Intn(300)))
				}
			}
		default: // sparse
			for k := 0; k < 12+rng.Intn(40); k++ {
				ts = append(ts, day+int64(rng.Intn(86400)))
			}
		}
		for _, t := range ts {
			evs = append(evs, ev{src, dst, t})
		}
	}
	// Feed in time order, as the detector sees events.
	buckets := map[int64][]ev{}
	for _, e := range evs {
		buckets[e.sec] = append(buckets[e.sec], e)
	}
	flows := map[string]*cache.Flow{}
	for s := day; s < day+86400; s++ {
		for _, e := range buckets[s] {
			f, _, r := store.Observe(e.src, e.dst, e.sec, int64(100+rng.Intn(400)))
			if r == cache.Counted {
				flows[string(e.dst)] = f
			}
		}
	}
	store.Wait()
	out := make([]*cache.Flow, 0, len(flows))
	var v cache.View
	for _, f := range flows {
		store.Snapshot(f, &v)
		act := 0
		for _, c := range v.Counts {
			if c != 0 {
				act++
			}
		}
		if act >= 10 {
			out = append(out, f)
		}
	}
	if len(out) < n/2 {
		return nil, nil, fmt.Errorf("only %d of %d flows have 10 active minutes", len(out), n)
	}
	return store, out, nil
}

// cpuTime is the process's user + system CPU time.
func cpuTime(b *testing.B) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// report adds flows per wall second and per CPU second (the figure for a
// shared machine, where wall time includes waiting for the core).
func report(b *testing.B, wall, cpu time.Duration) {
	b.ReportMetric(float64(b.N)/wall.Seconds(), "flows/s")
	b.ReportMetric(float64(b.N)/cpu.Seconds(), "flows/cpu-s")
}

type nopSink struct{}

func (nopSink) Alert(*alert.Alert) {}

// BenchmarkFeaturesAndPredict is the scoring cost per flow: a snapshot of
// its matrix, the features and the default model's prediction, on one core.
// Run with `make bench-score`; flows/s is reported per core.
func BenchmarkFeaturesAndPredict(b *testing.B) {
	m, err := OpenModel("")
	if err != nil {
		b.Fatal(err)
	}
	store, flows := benchFlows(b, 4000)
	var fz Featurizer
	var v cache.View
	feats := make([]float64, NumFeatures)
	sink := 0.0
	b.ReportAllocs()
	b.ResetTimer()
	start, cpu := time.Now(), cpuTime(b)
	for i := 0; i < b.N; i++ {
		store.Snapshot(flows[i%len(flows)], &v)
		fz.Compute(&v, feats)
		sink += m.Predict(feats)
	}
	report(b, time.Since(start), cpuTime(b)-cpu)
	if sink < 0 {
		b.Fatal(sink)
	}
}

// BenchmarkDetectorScore is Detector.Score on due flows (snapshot, features,
// prediction, decision) with the alert threshold out of reach, so no alert
// is built: the steady-state cost of rescoring.
func BenchmarkDetectorScore(b *testing.B) {
	m, err := OpenModel("")
	if err != nil {
		b.Fatal(err)
	}
	store, flows := benchFlows(b, 4000)
	d, err := New(store, WithThreshold(m, 2), nil, nopSink{}, Config{})
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	b.ResetTimer()
	start, cpu := time.Now(), cpuTime(b)
	for i := 0; i < b.N; i++ {
		d.Score(flows[i%len(flows)])
	}
	report(b, time.Since(start), cpuTime(b)-cpu)
}

// benchViews is a snapshot of every benchmark flow, taken once, so that
// BenchmarkScore measures features and inference alone (the cost the
// throughput target is about), without the cache's snapshot.
func benchViews(b *testing.B) []cache.View {
	store, flows := benchFlows(b, 4000)
	vs := make([]cache.View, len(flows))
	for i, f := range flows {
		store.Snapshot(f, &vs[i])
	}
	return vs
}

// BenchmarkScore is features plus the default model's prediction per flow,
// from snapshots taken beforehand: "new" is Featurizer.Compute and
// Model.Predict (the flat evaluator), "reference" the plain features
// (features_ref_test.go) and leaves' own evaluator, in the same run.
// Features alone and prediction alone are reported too.
func BenchmarkScore(b *testing.B) {
	m, err := OpenModel("")
	if err != nil {
		b.Fatal(err)
	}
	vs := benchViews(b)
	feats := make([][]float64, len(vs))
	var fz Featurizer
	for i := range vs {
		feats[i] = make([]float64, NumFeatures)
		fz.Compute(&vs[i], feats[i])
	}
	run := func(name string, fn func(i int, out []float64) float64) {
		b.Run(name, func(b *testing.B) {
			out := make([]float64, NumFeatures)
			sink := 0.0
			b.ReportAllocs()
			b.ResetTimer()
			start, cpu := time.Now(), cpuTime(b)
			for i := 0; i < b.N; i++ {
				sink += fn(i%len(vs), out)
			}
			report(b, time.Since(start), cpuTime(b)-cpu)
			if sink < 0 {
				b.Fatal(sink)
			}
		})
	}
	var ref refFeaturizer
	dm, err := model.Default()
	if err != nil {
		b.Fatal(err)
	}
	leavesPredict := dm.PredictReference // explained.Predict through leaves
	run("new", func(i int, out []float64) float64 { fz.Compute(&vs[i], out); return m.Predict(out) })
	run("reference", func(i int, out []float64) float64 { ref.Compute(&vs[i], out); return leavesPredict(out) })
	run("features", func(i int, out []float64) float64 { fz.Compute(&vs[i], out); return out[0] })
	run("features-reference", func(i int, out []float64) float64 { ref.Compute(&vs[i], out); return out[0] })
	run("predict", func(i int, out []float64) float64 { return m.Predict(feats[i]) })
	run("predict-leaves", func(i int, out []float64) float64 { return leavesPredict(feats[i]) })
}
