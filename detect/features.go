package detect

import (
	"math"
	"math/bits"
	"strings"
	"unsafe"

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

// The scans take the window to be 24 hours of 60 minutes (an hour is 15
// words of four counts): this fails to compile otherwise.
var _ [cache.Minutes - 24*60]struct{}
var _ [24*60 - cache.Minutes]struct{}

// bitWords is the length of the activity bitmap: a bit per minute of the
// window, with a spare word so shifted reads need no bounds test.
const bitWords = (cache.Minutes+63)/64 + 1

// Compute writes the features of v into out (len NumFeatures) and returns
// the summary. It allocates nothing.
//
// Two branch-free passes over the window, four minutes at a time, sum
// requests per hour and set a bit per active minute; everything else
// (active minutes, first and last, gaps, counts per active minute, the
// autocorrelation) is read from the bitmap, visiting only active minutes. Every value is computed with the
// same floating-point operations in the same order as the plain form (kept
// in features_ref_test.go, which checks the two agree bit for bit).
func (s *Featurizer) Compute(v *cache.View, out []float64) Summary {
	x := &v.Counts
	var bm [bitWords]uint64
	var hourReq [24]int
	if littleEndian {
		scanWords((*[cache.Minutes / 4]uint64)(unsafe.Pointer(x)), &bm, &hourReq)
	} else {
		scanCounts(x, &bm, &hourReq)
	}
	var sum sum
	first, last := -1, -1
	for w, b := range bm {
		if b == 0 {
			continue
		}
		if first < 0 {
			first = w*64 + bits.TrailingZeros64(b)
		}
		last = w*64 + 63 - bits.LeadingZeros64(b)
		sum.active += bits.OnesCount64(b)
	}
	for i := range out {
		out[i] = 0
	}
	for _, r := range hourReq {
		sum.req += r
	}
	sm := Summary{ActiveMinutes: sum.active, Requests: sum.req, FirstActive: first, LastActive: last}
	if sum.active == 0 {
		out[20] = dstIsIP(v.Dst)
		return sm
	}
	// Active minutes in order: counts, and gaps between consecutive ones.
	s.chist = [256]uint16{}
	maxc := 0
	ng := 0
	prev := -1
	for w := first >> 6; w <= last>>6; w++ {
		for b := bm[w]; b != 0; b &= b - 1 {
			i := w*64 + bits.TrailingZeros64(b)
			c := int(x[i])
			maxc = max(maxc, c)
			s.chist[min(c, 255)]++
			if prev >= 0 {
				s.gaps[ng] = int32(i - prev)
				ng++
			}
			prev = i
		}
	}
	activeHours := 0
	ent := 0.0
	for _, r := range hourReq {
		if r > 0 {
			activeHours++
			p := float64(r) / float64(sum.req)
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
	med := 0.0
	if ng > 0 {
		var mean, m2 float64
		maxg := int32(0)
		for _, g := range s.gaps[:ng] {
			maxg = max(maxg, g)
		}
		hist := s.hist[:maxg+1]
		clear(hist)
		for k, g := range s.gaps[:ng] {
			hist[g]++
			d := float64(g) - mean
			mean += d / float64(k+1)
			m2 += d * (float64(g) - mean)
		}
		med = float64(histMedian(hist, ng))
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
		out[11] = acfBits(&bm, first, last, sum.active, int(med))
		// Jitter: spread of gaps around the median, from the minute gaps
		// when the period spans minutes, else from second-resolution gaps.
		// Every |gap - med| is at most maxg.
		if med >= 3 {
			sm.Jitter = madRatio(s.gaps[:ng], med, hist)
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
	for c, n := range s.chist[:min(maxc, 255)+1] {
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

// littleEndian tells whether a uint64 read over four uint16 counts holds
// the first in its low 16 bits, as scanWords needs.
var littleEndian = func() bool {
	x := [4]uint16{1}
	return *(*uint64)(unsafe.Pointer(&x)) == 1
}()

// Four 16-bit lanes of a uint64.
const (
	lanesLow  = 0x7fff_7fff_7fff_7fff
	lanesHigh = 0x8000_8000_8000_8000
	lanes32   = 0x0000_ffff_0000_ffff
	// gather moves the lanes' bits at 0, 16, 32 and 48 to 45..48 (each
	// product bit lands on its own position, so no carries).
	gather = 1<<45 | 1<<30 | 1<<15 | 1
)

// scanWords is scanCounts four minutes at a time, the counts read as
// uint64 words (SWAR): a lane is nonzero when its low 15 bits plus 0x7fff
// carry into bit 15 or bit 15 is set; requests per hour are summed in two
// 32-bit lanes (at most 15 x 2 x 65535 per lane, no overflow). An hour is
// 15 words, a bitmap word 16.
func scanWords(xw *[cache.Minutes / 4]uint64, bm *[bitWords]uint64, hourReq *[24]int) {
	for w := 0; w*16 < len(xw); w++ {
		var b uint64
		ws := xw[w*16 : min(w*16+16, len(xw))]
		for _, v := range ws {
			// Nibbles enter at the top and move down: after 16 words the
			// first is in bits 0..3.
			nz := (((v & lanesLow) + lanesLow) | v) & lanesHigh
			b = b>>4 | ((nz>>15)*gather>>45)<<60
		}
		bm[w] = b >> (4 * (16 - len(ws)))
	}
	for h := range hourReq {
		var acc uint64
		for _, v := range xw[h*15 : h*15+15] {
			acc += v&lanes32 + (v>>16)&lanes32
		}
		hourReq[h] = int(acc&0xffff_ffff + acc>>32)
	}
}

// scanCounts sets a bit in bm per active minute of x and sums requests per
// hour, without a branch on the counts: (c + 0xffff) >> 16 is 1 for
// c >= 1 and 0 for c == 0.
func scanCounts(x *[cache.Minutes]uint16, bm *[bitWords]uint64, hourReq *[24]int) {
	for w := 0; w*64 < len(x); w++ {
		var b uint64
		for k, c := range x[w*64 : min(w*64+64, len(x))] {
			b |= uint64((uint32(c)+0xffff)>>16) << (k & 63)
		}
		bm[w] = b
	}
	for h := range hourReq {
		sum := 0
		for _, c := range x[h*60 : h*60+60] {
			sum += int(c)
		}
		hourReq[h] = sum
	}
}

// acfBits is the autocorrelation of the activity indicator of the series
// x[first:last+1] at lag, for the series whose active minutes are the bits
// of bm (none outside first..last, act of them). A series active in every
// minute (no variance) counts as perfectly periodic. It takes the counts of
// acf (acf_test.go) with popcounts, and the same arithmetic.
func acfBits(bm *[bitWords]uint64, first, last, act, lag int) float64 {
	n := last - first + 1
	if lag <= 0 || lag >= n {
		return 0
	}
	m := n - lag
	// n11: active i with i+lag active (i+lag > last is never active);
	// head: active in [first, first+lag); tail: active in [last+1-lag, last].
	n11 := 0
	ws, bs := lag>>6, uint(lag&63)
	for w := first >> 6; w+ws < bitWords-1 && w <= last>>6; w++ {
		sh := bm[w+ws]>>bs | bm[w+ws+1]<<(64-bs)
		if bs == 0 {
			sh = bm[w+ws]
		}
		n11 += bits.OnesCount64(bm[w] & sh)
	}
	head := countBits(bm, first, first+lag)
	tail := countBits(bm, last+1-lag, last+1)
	p := float64(act) / float64(n)
	vr := p * (1 - p)
	if vr < 1e-9 {
		return 1
	}
	nA, nB := float64(act-tail), float64(act-head)
	cov := float64(n11) - p*(nA+nB) + p*p*float64(m)
	return cov / float64(m) / vr
}

// countBits counts the set bits of bm in [lo, hi), 0 <= lo <= hi <= 64*len.
func countBits(bm *[bitWords]uint64, lo, hi int) int {
	if lo >= hi {
		return 0
	}
	wl, wh := lo>>6, (hi-1)>>6
	ml := ^uint64(0) << uint(lo&63)
	mh := ^uint64(0) >> uint(63-(hi-1)&63)
	if wl == wh {
		return bits.OnesCount64(bm[wl] & ml & mh)
	}
	n := bits.OnesCount64(bm[wl]&ml) + bits.OnesCount64(bm[wh]&mh)
	for w := wl + 1; w < wh; w++ {
		n += bits.OnesCount64(bm[w])
	}
	return n
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
