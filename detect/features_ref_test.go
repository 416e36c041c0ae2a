package detect

import (
	"fmt"
	"math"
	"math/rand"
	"testing"
	"unsafe"

	"github.com/beacongrid/beacongrid/cache"
)

// refFeaturizer is features.go before the bitmap rewrite, kept verbatim
// (renamed) as the reference the optimised Compute must match.
type refFeaturizer struct {
	gaps  [cache.Minutes]int32
	hist  [cache.Minutes + 1]uint16
	chist [256]uint16
}

func (s *refFeaturizer) Compute(v *cache.View, out []float64) Summary {
	x := &v.Counts
	var sum sum
	first, last := -1, -1
	var hours [24]float64
	maxc := 0
	s.chist = [256]uint16{}
	for i, c := range x {
		if c == 0 {
			continue
		}
		if first < 0 {
			first = i
		}
		last = i
		sum.active++
		sum.req += int(c)
		maxc = max(maxc, int(c))
		hours[i/60] += float64(c)
		s.chist[min(int(c), 255)]++
	}
	for i := range out {
		out[i] = 0
	}
	sm := Summary{ActiveMinutes: sum.active, Requests: sum.req, FirstActive: first, LastActive: last}
	if sum.active == 0 {
		out[20] = dstIsIP(v.Dst)
		return sm
	}
	activeHours := 0
	ent := 0.0
	for _, h := range hours {
		if h > 0 {
			activeHours++
			p := h / float64(sum.req)
			ent -= p * math.Log(p)
		}
	}
	span := last - first + 1
	out[0] = math.Log1p(float64(sum.req))
	out[1] = float64(sum.active)
	out[2] = float64(activeHours)
	out[3] = float64(span) / 60
	out[4] = float64(sum.active) / float64(span)
	if v.SrcOnline > 0 {
		out[5] = math.Min(1, float64(sum.active)/float64(v.SrcOnline))
	}
	// Gaps between consecutive active minutes.
	ng := 0
	prev := -1
	for i := first; i <= last; i++ {
		if x[i] != 0 {
			if prev >= 0 {
				s.gaps[ng] = int32(i - prev)
				ng++
			}
			prev = i
		}
	}
	med := 0.0
	if ng > 0 {
		s.hist = [cache.Minutes + 1]uint16{}
		var mean, m2 float64
		maxg := int32(0)
		for k, g := range s.gaps[:ng] {
			s.hist[g]++
			d := float64(g) - mean
			mean += d / float64(k+1)
			m2 += d * (float64(g) - mean)
			maxg = max(maxg, g)
		}
		med = float64(refHistMedian(s.hist[:], ng))
		sd := 0.0
		if ng > 1 {
			sd = math.Sqrt(m2 / float64(ng-1))
		}
		tol := math.Max(1, 0.25*med)
		reg := 0
		for _, g := range s.gaps[:ng] {
			if math.Abs(float64(g)-med) <= tol {
				reg++
			}
		}
		out[6] = med
		if mean > 0 {
			out[7] = sd / mean
		}
		out[8] = float64(reg) / float64(ng)
		out[9] = math.Log(float64(maxg) / med)
		if sd+mean > 0 {
			out[10] = (sd - mean) / (sd + mean)
		}
		out[11] = refAcf(x[first:last+1], int(med))
		// Jitter: spread of gaps around the median, from the minute gaps
		// when the period spans minutes, else from second-resolution gaps.
		if med >= 3 {
			sm.Jitter = refMadRatio(s.gaps[:ng], med, s.hist[:])
		} else {
			sm.Jitter = v.GapCV
		}
	} else {
		sm.Jitter = v.GapCV
	}
	// Requests per active minute.
	meanc := float64(sum.req) / float64(sum.active)
	var cm2 float64
	modeN := 0
	for c, n := range s.chist {
		if n == 0 {
			continue
		}
		d := float64(c) - meanc
		cm2 += float64(n) * d * d
		modeN = max(modeN, int(n))
	}
	if sum.active > 1 {
		out[12] = math.Sqrt(cm2/float64(sum.active-1)) / meanc
	}
	out[13] = float64(modeN) / float64(sum.active)
	out[14] = math.Log1p(float64(maxc))
	out[15] = ent / math.Log(24)
	out[16] = v.GapCV
	out[17] = v.SizeCV
	out[18] = math.Log1p(float64(v.Prevalence))
	out[19] = float64(v.Prevalence) / float64(max(v.Sources, minShareSources))
	out[20] = dstIsIP(v.Dst)
	switch {
	case med > 1:
		sm.PeriodS = med * 60
	case v.GapMean > 0 && v.Gaps > 0:
		sm.PeriodS = v.GapMean
	case meanc > 0:
		sm.PeriodS = 60 / meanc
	}
	return sm
}

// refHistMedian returns the lower median of n values counted in hist.
func refHistMedian(hist []uint16, n int) int {
	half := (n + 1) / 2
	acc := 0
	for v, c := range hist {
		acc += int(c)
		if acc >= half {
			return v
		}
	}
	return len(hist) - 1
}

// refMadRatio is the median absolute deviation of gaps from med, over med.
// It reuses hist as scratch.
func refMadRatio(gaps []int32, med float64, hist []uint16) float64 {
	for i := range hist {
		hist[i] = 0
	}
	for _, g := range gaps {
		d := int(math.Abs(float64(g) - med))
		hist[min(d, len(hist)-1)]++
	}
	return float64(refHistMedian(hist, len(gaps))) / med
}

// refAcf is the autocorrelation of the activity indicator of x at lag, in
// the counting form the old features code used (checked against the
// definition, acfRef, in TestAcfMatchesDefinition). A series active in
// every minute (no variance) counts as perfectly periodic.
func refAcf(x []uint16, lag int) float64 {
	n := len(x)
	if lag <= 0 || lag >= n {
		return 0
	}
	m := n - lag
	// With a_i = [x_i != 0], b_i = [x_{i+lag} != 0] and p the active share,
	// sum (a_i-p)(b_i-p) = n11 - p(nA+nB) + p^2 m: integer counts only.
	act, n11, head, tail := 0, 0, 0, 0
	for i, c := range x {
		if c == 0 {
			continue
		}
		act++
		if i < lag {
			head++
		}
		if i >= m {
			tail++
		} else if x[i+lag] != 0 {
			n11++
		}
	}
	p := float64(act) / float64(n)
	vr := p * (1 - p)
	if vr < 1e-9 {
		return 1
	}
	nA, nB := float64(act-tail), float64(act-head)
	cov := float64(n11) - p*(nA+nB) + p*p*float64(m)
	return cov / float64(m) / vr
}

// randomView draws a window: a mix of empty, sparse, dense, periodic with
// jitter and missed beats, bursty and saturated series, with counts from 1
// to the uint16 limit.
func randomView(r *rand.Rand, v *cache.View) {
	*v = cache.View{}
	x := &v.Counts
	count := func() uint16 {
		switch r.Intn(8) {
		case 0:
			return uint16(1 + r.Intn(65535))
		case 1:
			return uint16(200 + r.Intn(100))
		default:
			return uint16(1 + r.Intn(4))
		}
	}
	switch kind := r.Intn(7); kind {
	case 0: // empty or a few minutes
		for k := r.Intn(4); k > 0; k-- {
			x[r.Intn(len(x))] = count()
		}
	case 1: // uniform density
		d := r.Float64()
		for i := range x {
			if r.Float64() < d {
				x[i] = count()
			}
		}
	case 2, 3: // periodic, jittered, with missed beats, maybe part of the day
		p := 1 + r.Float64()*float64(r.Intn(240)+1)
		j := r.Float64() * 0.5
		miss := r.Float64() * 0.3
		lo, hi := 0.0, float64(len(x))
		if r.Intn(2) == 0 {
			lo, hi = float64(r.Intn(720)), float64(720+r.Intn(720))
		}
		for t := lo + r.Float64()*p; t < hi; t += p * (1 - j*r.Float64()) {
			if r.Float64() >= miss {
				x[int(t)] = count()
			}
		}
	case 4: // bursts
		for b := r.Intn(20); b > 0; b-- {
			at, n := r.Intn(len(x)), 1+r.Intn(30)
			for i := at; i < min(at+n, len(x)); i++ {
				x[i] = count()
			}
		}
	case 5: // every minute, or all but a few
		for i := range x {
			x[i] = count()
		}
		for k := r.Intn(3); k > 0; k-- {
			x[r.Intn(len(x))] = 0
		}
	default: // two active minutes at random distance, or at the window's ends
		a, b := r.Intn(len(x)), r.Intn(len(x))
		if r.Intn(3) == 0 {
			a, b = 0, len(x)-1
		}
		x[a], x[b] = count(), count()
	}
	v.SrcOnline = r.Intn(len(x) + 1)
	v.GapCV, v.GapMean, v.Gaps = r.Float64()*3, r.Float64()*3600, r.Intn(2000)
	v.SizeCV = r.Float64()
	v.Prevalence, v.Sources = r.Intn(50), r.Intn(100)
	v.Dst = []string{"cdn.example.com:443", "10.0.0.1:80", "[2001:db8::1]:443", "example"}[r.Intn(4)]
}

// sameFeatures fails t unless Compute and the reference agree exactly.
func sameFeatures(t *testing.T, what string, v *cache.View, fz *Featurizer, ref *refFeaturizer) {
	t.Helper()
	got, want := make([]float64, NumFeatures), make([]float64, NumFeatures)
	for i := range got {
		got[i], want[i] = float64(i)+0.5, -float64(i) // stale values must be overwritten
	}
	sg, sw := fz.Compute(v, got), ref.Compute(v, want)
	for i := range got {
		if math.Float64bits(got[i]) != math.Float64bits(want[i]) {
			t.Fatalf("%s: %s = %.17g, reference %.17g", what, FeatureNames[i], got[i], want[i])
		}
	}
	if sg != sw && !(math.IsNaN(sg.Jitter) && math.IsNaN(sw.Jitter)) {
		t.Fatalf("%s: summary %+v, reference %+v", what, sg, sw)
	}
}

// TestComputeMatchesReference checks the optimised features against the
// plain implementation, bit for bit, on random windows and on the
// benchmark's simulated flows.
func TestComputeMatchesReference(t *testing.T) {
	var fz Featurizer
	var ref refFeaturizer
	var v cache.View
	r := rand.New(rand.NewSource(7))
	n := 30000
	if testing.Short() {
		n = 3000
	}
	for k := 0; k < n; k++ {
		randomView(r, &v)
		sameFeatures(t, fmt.Sprintf("random window %d", k), &v, &fz, &ref)
	}
	store, flows, err := buildFlows(1000)
	if err != nil {
		t.Fatal(err)
	}
	for k, f := range flows {
		store.Snapshot(f, &v)
		sameFeatures(t, fmt.Sprintf("simulated flow %d", k), &v, &fz, &ref)
	}
}

// TestAcfBits checks acfBits against acf on random series and lags.
func TestAcfBits(t *testing.T) {
	r := rand.New(rand.NewSource(3))
	var v cache.View
	for k := 0; k < 5000; k++ {
		randomView(r, &v)
		var bm [bitWords]uint64
		first, last, act := -1, -1, 0
		for i, c := range v.Counts {
			if c != 0 {
				bm[i>>6] |= 1 << (i & 63)
				if first < 0 {
					first = i
				}
				last = i
				act++
			}
		}
		if act == 0 {
			continue
		}
		lag := r.Intn(last - first + 2)
		a, b := acfBits(&bm, first, last, act, lag), refAcf(v.Counts[first:last+1], lag)
		if math.Float64bits(a) != math.Float64bits(b) {
			t.Fatalf("first %d last %d lag %d: %v, acf %v", first, last, lag, a, b)
		}
	}
}

// TestScanWordsMatchesScanCounts checks the four-at-a-time scan against the
// plain one, including counts with bit 15 set and lanes of 0x7fff/0x8000.
func TestScanWordsMatchesScanCounts(t *testing.T) {
	if !littleEndian {
		t.Skip("scanWords is used on little-endian machines only")
	}
	r := rand.New(rand.NewSource(5))
	var v cache.View
	for k := 0; k < 3000; k++ {
		randomView(r, &v)
		if k%3 == 0 {
			for i := range v.Counts {
				if r.Intn(4) == 0 {
					v.Counts[i] = []uint16{0x7fff, 0x8000, 0xffff, 1, 0x8001}[r.Intn(5)]
				}
			}
		}
		var b1, b2 [bitWords]uint64
		var h1, h2 [24]int
		scanWords((*[cache.Minutes / 4]uint64)(unsafe.Pointer(&v.Counts)), &b1, &h1)
		scanCounts(&v.Counts, &b2, &h2)
		if b1 != b2 || h1 != h2 {
			t.Fatalf("window %d: scanWords %x %v, scanCounts %x %v", k, b1, h1, b2, h2)
		}
	}
}
