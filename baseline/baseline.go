// Package baseline is a RITA-style statistical beacon scorer, the classic
// approach beacongrid's model is measured against.
//
// It follows the scoring RITA v5 documents (activecm/rita, analysis of
// beacons): a flow's score is a weighted mean of four sub-scores, each in
// [0, 1]:
//
//   - timestamp: the gaps between distinct connection times should be
//     symmetric (1 - |Bowley skewness|; the skewness counts as 0 when the
//     inter-quartile range is below 10 s or the median equals a quartile) and
//     tight ((median - MAD) / median), averaged;
//   - data size: the same two measures over the connections' byte counts
//     (the MAD part is 0 when the median size is below 1 byte);
//   - histogram: connections per hour over the dataset's 24 hourly bins,
//     the better of a flat histogram (1 - coefficient of variation) and a
//     bimodal fit (share of the active hours whose counts fall in the two
//     commonest count bins, counts binned at 5 % of the largest; only with
//     at least 11 active hours, one outlier hour forgiven);
//   - duration: with at least 6 active hours, the better of the flow's share
//     of the dataset's time span and its longest run of consecutive active
//     hours (wrapping around) over 12.
//
// The default weights are 0.25 each, as RITA's. Logs that carry no sizes for
// a flow (TLS records) leave the data-size score out and spread its weight
// over the other three, rather than scoring the flow as if it sent nothing.
// RITA scores a whole dataset in batch; so does Score.
package baseline

import (
	"errors"
	"math"
	"slices"

	"gonum.org/v1/gonum/stat"
)

// Config holds the scoring parameters; DefaultConfig has RITA v5's defaults.
type Config struct {
	// Weights of the sub-scores; they must sum to 1.
	TimestampWeight, DataSizeWeight, HistogramWeight, DurationWeight float64
	// HistModeSensitivity is the bin width of hourly counts for the bimodal
	// fit, as a share of the largest hourly count (0.05).
	HistModeSensitivity float64
	// BimodalOutlierRemoval is how many active hours the bimodal fit forgives (1).
	BimodalOutlierRemoval int
	// BimodalMinHours is the fewest active hours for a bimodal fit (11).
	BimodalMinHours int
	// DurationMinHours is the fewest active hours for a duration score (6).
	DurationMinHours int
	// DurationIdealHours is the run of consecutive active hours that scores 1 (12).
	DurationIdealHours int
	// Bins is the number of histogram bins over the dataset span (24).
	Bins int
}

// DefaultConfig returns RITA v5's default beacon scoring parameters.
func DefaultConfig() Config {
	return Config{
		TimestampWeight: 0.25, DataSizeWeight: 0.25, HistogramWeight: 0.25, DurationWeight: 0.25,
		HistModeSensitivity: 0.05, BimodalOutlierRemoval: 1, BimodalMinHours: 11,
		DurationMinHours: 6, DurationIdealHours: 12, Bins: 24,
	}
}

// Score is a flow's beacon score and its parts.
type Score struct {
	Score, Timestamp, DataSize, Histogram, Duration float64
	// HasSizes is false when no connection had a known size; DataSize is
	// then unused.
	HasSizes bool
}

// ErrTooFew means the flow has too few connections to score: RITA needs at
// least 4 connection times with at least 3 non-zero gaps.
var ErrTooFew = errors.New("baseline: too few connections")

// Validate checks the configuration.
func (c Config) Validate() error {
	w := []float64{c.TimestampWeight, c.DataSizeWeight, c.HistogramWeight, c.DurationWeight}
	sum := 0.0
	for _, x := range w {
		if x < 0 || x > 1 {
			return errors.New("baseline: weights must lie in [0, 1]")
		}
		sum += x
	}
	switch {
	case math.Abs(sum-1) > 1e-9:
		return errors.New("baseline: weights must sum to 1")
	case c.HistModeSensitivity <= 0 || c.HistModeSensitivity > 1:
		return errors.New("baseline: HistModeSensitivity must lie in (0, 1]")
	case c.Bins < 1 || c.DurationMinHours < 1 || c.DurationIdealHours < 1 || c.BimodalMinHours < 1 || c.BimodalOutlierRemoval < 0:
		return errors.New("baseline: bins and hour counts must be positive")
	}
	return nil
}

// Score scores one flow. ts are its connection times in Unix seconds (any
// order; sorted in place); sizes its connections' byte counts, negative when
// unknown (reordered in place). [dsMin, dsMax] is the time span of the whole
// dataset, which the histogram and duration scores are relative to.
func (c Config) Score(ts []int64, sizes []float64, dsMin, dsMax int64) (Score, error) {
	if dsMax <= dsMin {
		return Score{}, errors.New("baseline: empty dataset time range")
	}
	if len(ts) < 4 {
		return Score{}, ErrTooFew
	}
	slices.Sort(ts)
	gaps := make([]float64, 0, len(ts)-1)
	for i := 1; i < len(ts); i++ {
		if d := ts[i] - ts[i-1]; d > 0 {
			gaps = append(gaps, float64(d))
		}
	}
	if len(gaps) < 3 {
		return Score{}, ErrTooFew
	}
	var s Score
	s.Timestamp = statScore(gaps, 1)

	known := sizes[:0:0]
	for _, b := range sizes {
		if b >= 0 {
			known = append(known, b)
		}
	}
	if len(known) >= 3 {
		s.HasSizes = true
		s.DataSize = statScore(known, 0)
	}

	hist := c.histogram(ts, dsMin, dsMax)
	bars, run := barsAndRun(hist)
	s.Histogram = math.Max(cvScore(hist), c.bimodalScore(hist, bars))
	if bars >= c.DurationMinHours {
		coverage := math.Min(1, float64(ts[len(ts)-1]-ts[0])/float64(dsMax-dsMin))
		consistency := math.Min(1, float64(run)/float64(c.DurationIdealHours))
		s.Duration = math.Max(coverage, consistency)
	}

	wt, wd, wh, wu := c.TimestampWeight, c.DataSizeWeight, c.HistogramWeight, c.DurationWeight
	if !s.HasSizes {
		rest := wt + wh + wu
		if rest == 0 {
			return s, nil
		}
		wt, wd, wh, wu = wt/rest, 0, wh/rest, wu/rest
	}
	s.Score = wt*s.Timestamp + wd*s.DataSize + wh*s.Histogram + wu*s.Duration
	return s, nil
}

// statScore is the mean of the skewness score and the MAD score of x.
// madDefault is the MAD score when the median is below 1.
func statScore(x []float64, madDefault float64) float64 {
	slices.Sort(x)
	q1 := stat.Quantile(0.25, stat.LinInterp, x, nil)
	q2 := stat.Quantile(0.5, stat.LinInterp, x, nil)
	q3 := stat.Quantile(0.75, stat.LinInterp, x, nil)
	skew := 0.0
	if den := q3 - q1; den >= 10 && q2 != q1 && q2 != q3 {
		skew = (q1 + q3 - 2*q2) / den
	}
	skewScore := 1 - math.Abs(skew)

	dev := make([]float64, len(x))
	for i, v := range x {
		dev[i] = math.Abs(v - q2)
	}
	slices.Sort(dev)
	mad := stat.Quantile(0.5, stat.LinInterp, dev, nil)
	madScore := madDefault
	if q2 >= 1 {
		madScore = (q2 - mad) / q2
	}
	if madScore < 0 || math.IsNaN(madScore) {
		madScore = 0
	}
	return (skewScore + madScore) / 2
}

// histogram counts connections in c.Bins equal bins over [dsMin, dsMax];
// ts must be sorted.
func (c Config) histogram(ts []int64, dsMin, dsMax int64) []float64 {
	h := make([]float64, c.Bins)
	step := float64(dsMax-dsMin) / float64(c.Bins)
	for _, t := range ts {
		i := int(float64(t-dsMin) / step)
		h[min(max(i, 0), c.Bins-1)]++
	}
	return h
}

// barsAndRun returns the number of non-empty bins and the longest run of
// consecutive non-empty bins, wrapping around the end.
func barsAndRun(h []float64) (bars, run int) {
	cur := 0
	for i := 0; i < 2*len(h); i++ {
		if h[i%len(h)] > 0 {
			if i < len(h) {
				bars++
			}
			cur++
			run = max(run, cur)
		} else {
			cur = 0
		}
	}
	return bars, min(run, len(h))
}

// cvScore is 1 - the coefficient of variation of the bins (population
// standard deviation), floored at 0.
func cvScore(h []float64) float64 {
	mean, sd := stat.PopMeanStdDev(h, nil)
	if mean <= 0 {
		return 0
	}
	return math.Max(0, 1-sd/mean)
}

// bimodalScore is the share of active bins whose counts fall in the two
// commonest count bins (of width HistModeSensitivity x the largest count),
// with BimodalOutlierRemoval bins forgiven.
func (c Config) bimodalScore(h []float64, bars int) float64 {
	if bars < c.BimodalMinHours {
		return 0
	}
	width := math.Ceil(slices.Max(h) * c.HistModeSensitivity)
	freq := map[float64]int{}
	for _, v := range h {
		if v > 0 {
			freq[math.Floor(v/width)]++
		}
	}
	first, second := 0, 0
	for _, n := range freq {
		if n > first {
			first, second = n, first
		} else if n > second {
			second = n
		}
	}
	return math.Min(1, float64(first+second)/math.Max(float64(bars-c.BimodalOutlierRemoval), 1))
}
