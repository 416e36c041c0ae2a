package detect

import (
	"math"
	"strings"

	"github.com/beacongrid/beacongrid/cache"
)

// FeatureNames names the model's inputs, in order. docs/model.md
// describes each. A model trained on other features is refused at load.
var FeatureNames = []string{
	"log_requests",     // log1p(requests in the window)
	"active_minutes",   // minutes with at least one request
	"active_hours",     // distinct clock hours with at least one request
	"span_hours",       // hours from the first to the last active minute
	"coverage",         // active minutes / span minutes
	"online_ratio",     // active minutes / minutes the source sent anything
	"gap_median",       // median gap between active minutes (minutes)
	"gap_cv",           // coefficient of variation of those gaps
	"gap_regular",      // share of gaps within 25% (at least 1 min) of the median
	"gap_max_ratio",    // log(longest gap / median gap)
	"gap_burstiness",   // (sd-mean)/(sd+mean) of gaps: -1 periodic, 0 random, 1 bursty
	"acf_period",       // autocorrelation of minute activity at the median gap
	"count_cv",         // coefficient of variation of requests per active minute
	"count_mode_frac",  // share of active minutes with the most common count
	"max_per_minute",   // log1p(most requests in one minute)
	"hour_entropy",     // entropy of requests over the 24 hours, 0..1
	"sec_gap_cv",       // coefficient of variation of inter-arrival seconds
	"size_cv",          // coefficient of variation of request sizes
	"log_prevalence",   // log1p(sources reaching the destination)
	"prevalence_share", // sources reaching the destination / max(sources seen, 20)
	"dst_is_ip",        // 1 when the destination has no name, only ip:port
}

// NumFeatures is len(FeatureNames).
var NumFeatures = len(FeatureNames)

// Summary is what an analyst reads next to the score.
type Summary struct {
	PeriodS       float64
	Jitter        float64
	ActiveMinutes int
	Requests      int
	FirstActive   int // index into the window of the first active minute, -1 if none
	LastActive    int
}

// Featurizer computes features. It holds reusable working memory: one
// Featurizer must not be used by two goroutines at once.
type Featurizer struct {
	gaps  [cache.Minutes]int32
	hist  [cache.Minutes + 1]uint16
	chist [256]uint16
}

// Compute writes the features of v into out (len NumFeatures) and returns
// the summary. It allocates nothing.
func (s *Featurizer) Compute(v *cache.View, out []float64) Summary {
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
		med = float64(histMedian(s.hist[:], ng))
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
		out[11] = acf(x[first:last+1], int(med))
		// Jitter: spread of gaps around the median, from the minute gaps
		// when the period spans minutes, else from second-resolution gaps.
		if med >= 3 {
			sm.Jitter = madRatio(s.gaps[:ng], med, s.hist[:])
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

type sum struct{ active, req int }

// minShareSources is the fewest sources prevalence_share divides by: in a
// capture of one or a few hosts every destination is reached by "all
// sources", which says nothing about how widely it is used.
const minShareSources = 20

// histMedian returns the lower median of n values counted in hist.
func histMedian(hist []uint16, n int) int {
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

// madRatio is the median absolute deviation of gaps from med, over med.
// It reuses hist as scratch.
func madRatio(gaps []int32, med float64, hist []uint16) float64 {
	for i := range hist {
		hist[i] = 0
	}
	for _, g := range gaps {
		d := int(math.Abs(float64(g) - med))
		hist[min(d, len(hist)-1)]++
	}
	return float64(histMedian(hist, len(gaps))) / med
}

// acf is the autocorrelation of the activity indicator of x at lag. A
// series active in every minute (no variance) counts as perfectly periodic.
func acf(x []uint16, lag int) float64 {
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

// dstIsIP reports 1 for an ip:port destination.
func dstIsIP(dst string) float64 {
	if strings.HasPrefix(dst, "[") {
		return 1
	}
	i := strings.LastIndexByte(dst, ':')
	if i < 0 {
		return 0
	}
	for _, c := range dst[:i] {
		if (c < '0' || c > '9') && c != '.' {
			return 0
		}
	}
	return 1
}
