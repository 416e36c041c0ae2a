package detect

import (
	"math"
	"math/rand"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/beacongrid/beacongrid/alert"
	"github.com/beacongrid/beacongrid/cache"
	"github.com/beacongrid/beacongrid/fields"
	"github.com/beacongrid/beacongrid/rules"
)

func feature(t *testing.T, feats []float64, name string) float64 {
	t.Helper()
	for i, n := range FeatureNames {
		if n == name {
			return feats[i]
		}
	}
	t.Fatalf("no feature %q", name)
	return 0
}

func TestFeaturesOfAPerfectBeacon(t *testing.T) {
	var v cache.View
	v.Dst = "203.0.113.9:8080"
	for i := 600; i < cache.Minutes; i++ { // 14 h, one call per minute
		v.Counts[i] = 1
	}
	v.SrcOnline, v.Prevalence, v.Sources = 840, 1, 100
	var fz Featurizer
	out := make([]float64, NumFeatures)
	sm := fz.Compute(&v, out)
	if sm.ActiveMinutes != 840 || sm.Requests != 840 || sm.PeriodS != 60 {
		t.Fatalf("summary %+v", sm)
	}
	for name, want := range map[string]float64{
		"active_minutes": 840, "coverage": 1, "online_ratio": 1, "gap_median": 1, "gap_cv": 0,
		"gap_regular": 1, "acf_period": 1, "count_cv": 0, "count_mode_frac": 1, "dst_is_ip": 1, "span_hours": 14,
		"prevalence_share": 0.01,
	} {
		if got := feature(t, out, name); math.Abs(got-want) > 1e-9 {
			t.Errorf("%s = %v, want %v", name, got, want)
		}
	}
}

func TestFeaturesOfAJitteredBeacon(t *testing.T) {
	var v cache.View
	v.Dst = "cdn.example.net"
	rng := rand.New(rand.NewSource(1))
	for m := 0.0; m < cache.Minutes; m += 10 * (1 - 0.3*rng.Float64()) {
		v.Counts[int(m)]++
	}
	var fz Featurizer
	out := make([]float64, NumFeatures)
	sm := fz.Compute(&v, out)
	if med := feature(t, out, "gap_median"); med < 7 || med > 10 {
		t.Fatalf("gap_median %v, want 7..10 for a 10 min beacon with 30%% jitter", med)
	}
	if sm.Jitter <= 0 || sm.Jitter > 0.3 {
		t.Fatalf("jitter %v", sm.Jitter)
	}
	if feature(t, out, "dst_is_ip") != 0 {
		t.Fatal("a domain counted as an IP destination")
	}
}

func TestFeaturesAllocateNothing(t *testing.T) {
	var v cache.View
	for i := 0; i < cache.Minutes; i += 3 {
		v.Counts[i] = uint16(i % 5)
	}
	var fz Featurizer
	out := make([]float64, NumFeatures)
	if n := testing.AllocsPerRun(100, func() { fz.Compute(&v, out) }); n != 0 {
		t.Fatalf("%v allocations", n)
	}
}

// fakeModel scores by one feature: the share of regular gaps.
type fakeModel struct{ thr float64 }

func (fakeModel) Predict(f []float64) float64 { return f[8] }
func (fakeModel) Version() string             { return "fake" }
func (m fakeModel) Threshold() float64        { return m.thr }
func (fakeModel) FeatureNames() []string      { return FeatureNames }

type sinkFunc func(*alert.Alert)

func (f sinkFunc) Alert(a *alert.Alert) { f(a) }

func feed(t *testing.T, d *Detector, src, dst string, start time.Time, every time.Duration, n int) {
	t.Helper()
	var e fields.Event
	var buf []byte
	for i := 0; i < n; i++ {
		e.Reset()
		e.Src, e.Domain = []byte(src), []byte(dst)
		e.Sec, e.HasTime = start.Add(time.Duration(i)*every).Unix(), true
		buf = d.Observe(&e, buf)
	}
}

func newDetector(t *testing.T, rs *rules.Set, sink Sink) *Detector {
	t.Helper()
	store, err := cache.New(cache.Config{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(store.Close)
	var p atomic.Pointer[rules.Set]
	p.Store(rs)
	d, err := New(store, fakeModel{0.9}, &p, sink, Config{})
	if err != nil {
		t.Fatal(err)
	}
	return d
}

func TestDetectorAlertsOncePerWindow(t *testing.T) {
	var mu sync.Mutex
	var got []*alert.Alert
	d := newDetector(t, nil, sinkFunc(func(a *alert.Alert) { mu.Lock(); got = append(got, a); mu.Unlock() }))
	start := time.Date(2026, 11, 2, 8, 0, 0, 0, time.UTC)
	feed(t, d, "10.0.0.5", "c2.example", start, time.Minute, 300)
	if len(got) != 1 {
		t.Fatalf("%d alerts for one steady beacon, want 1", len(got))
	}
	a := got[0]
	if a.Source.IP != "10.0.0.5" || a.Destination.Domain != "c2.example" || a.Event.Kind != "alert" ||
		a.Beacon.ModelVersion != "fake" || len(a.Beacon.Matrix) != alert.MatrixLen || a.Beacon.PeriodS != 60 {
		t.Fatalf("alert %+v", a)
	}
	// The matrix is indexed by UTC minute of day.
	if a.Beacon.Matrix[8*60] != 1 || a.Beacon.Matrix[7*60+59] != 0 {
		t.Fatal("matrix not indexed by minute of day")
	}
	if a.Event.ID != alert.ID("10.0.0.5", "c2.example", int64(a.Beacon.WindowEnd.Unix()/60)) {
		t.Fatal("alert id is not the deterministic id of flow and minute")
	}
}

func TestDetectorAllowlistSilences(t *testing.T) {
	rs, err := rules.Parse([]byte("version: 1\nallow:\n  - destination: '*.example'\n    reason: vendor agent\n"))
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	d := newDetector(t, rs, sinkFunc(func(*alert.Alert) { n++ }))
	feed(t, d, "10.0.0.5", "c2.example", time.Date(2026, 11, 2, 8, 0, 0, 0, time.UTC), time.Minute, 100)
	if n != 0 || d.Stats().Suppressed == 0 {
		t.Fatalf("%d alerts, %d suppressed; the allowlist should silence them", n, d.Stats().Suppressed)
	}
}

func TestNewRefusesOtherFeatures(t *testing.T) {
	store, _ := cache.New(cache.Config{})
	defer store.Close()
	_, err := New(store, otherModel{}, nil, sinkFunc(func(*alert.Alert) {}), Config{})
	if err == nil {
		t.Fatal("a model trained on other features was accepted")
	}
}

type otherModel struct{ fakeModel }

func (otherModel) FeatureNames() []string { return []string{"x"} }
