package baseline

import (
	"errors"
	"math"
	"math/rand"
	"testing"
)

const day = int64(86400)

func beacon(start, end, every int64, jitter float64, rng *rand.Rand) []int64 {
	var ts []int64
	for t := float64(start); t < float64(end); {
		ts = append(ts, int64(t))
		j := 0.0
		if rng != nil {
			j = jitter * rng.Float64()
		}
		t += float64(every) * (1 - j)
	}
	return ts
}

func sizes(n int, f func(i int) float64) []float64 {
	out := make([]float64, n)
	for i := range out {
		out[i] = f(i)
	}
	return out
}

func TestExactBeaconAllDayScoresOne(t *testing.T) {
	ts := beacon(0, day, 300, 0, nil)
	s, err := DefaultConfig().Score(ts, sizes(len(ts), func(int) float64 { return 512 }), 0, day)
	if err != nil {
		t.Fatal(err)
	}
	for name, v := range map[string]float64{"score": s.Score, "ts": s.Timestamp, "ds": s.DataSize, "hist": s.Histogram, "dur": s.Duration} {
		if math.Abs(v-1) > 1e-9 {
			t.Errorf("%s = %v, want 1", name, v)
		}
	}
}

func TestJitterLowersTheTimestampScore(t *testing.T) {
	rng := rand.New(rand.NewSource(1))
	cfg := DefaultConfig()
	prev := 2.0
	for _, j := range []float64{0, 0.2, 0.5, 0.9} {
		ts := beacon(0, day, 600, j, rng)
		s, err := cfg.Score(ts, nil, 0, day)
		if err != nil {
			t.Fatal(err)
		}
		if s.Timestamp >= prev {
			t.Errorf("jitter %v: timestamp score %v, not below %v", j, s.Timestamp, prev)
		}
		prev = s.Timestamp
	}
}

func TestPoissonBurstsScoreBelowABeacon(t *testing.T) {
	rng := rand.New(rand.NewSource(2))
	var ts []int64
	// Office-hours browsing: random bursts between 09:00 and 17:00.
	for t := 9 * 3600.0; t < 17*3600; t += rng.ExpFloat64() * 900 {
		for k := 0; k < 1+rng.Intn(20); k++ {
			ts = append(ts, int64(t)+int64(rng.Intn(120)))
		}
	}
	sz := sizes(len(ts), func(int) float64 { return float64(200 + rng.Intn(5000)) })
	cfg := DefaultConfig()
	b, err := cfg.Score(ts, sz, 0, day)
	if err != nil {
		t.Fatal(err)
	}
	bts := beacon(0, day, 600, 0.3, rng)
	c, err := cfg.Score(bts, sizes(len(bts), func(int) float64 { return 300 }), 0, day)
	if err != nil {
		t.Fatal(err)
	}
	if b.Score >= 0.7 || c.Score < 0.8 || b.Score >= c.Score {
		t.Errorf("browsing %+v, beacon %+v", b, c)
	}
}

func TestTooFewConnections(t *testing.T) {
	cfg := DefaultConfig()
	for _, ts := range [][]int64{{1, 2, 3}, {1, 1, 1, 5, 9}, {7, 7, 7, 7, 7, 7}} {
		if _, err := cfg.Score(ts, nil, 0, day); !errors.Is(err, ErrTooFew) {
			t.Errorf("%v: err %v, want ErrTooFew", ts, err)
		}
	}
	if _, err := cfg.Score([]int64{1, 2, 3, 4}, nil, 5, 5); err == nil || errors.Is(err, ErrTooFew) {
		t.Errorf("empty dataset range: err %v", err)
	}
}

func TestUnknownSizesReweight(t *testing.T) {
	ts := beacon(0, day, 300, 0, nil)
	unknown := sizes(len(ts), func(int) float64 { return -1 })
	s, err := DefaultConfig().Score(ts, unknown, 0, day)
	if err != nil {
		t.Fatal(err)
	}
	if s.HasSizes || s.DataSize != 0 || math.Abs(s.Score-1) > 1e-9 {
		t.Errorf("unknown sizes: %+v, want the three other parts only (score 1)", s)
	}
	// Sizes of 0 bytes are known, and RITA scores their MAD part 0.
	zero := sizes(len(ts), func(int) float64 { return 0 })
	s, err = DefaultConfig().Score(ts, zero, 0, day)
	if err != nil {
		t.Fatal(err)
	}
	if !s.HasSizes || s.DataSize != 0.5 {
		t.Errorf("zero sizes: %+v, want data size score 0.5", s)
	}
}

func TestShortFlowGetsNoDurationOrBimodalScore(t *testing.T) {
	// Three hours of an exact beacon: fewer than 6 active hours.
	ts := beacon(10*3600, 13*3600, 60, 0, nil)
	s, err := DefaultConfig().Score(ts, nil, 0, day)
	if err != nil {
		t.Fatal(err)
	}
	if s.Duration != 0 || s.Histogram != 0 {
		t.Errorf("%+v: want no duration and histogram score", s)
	}
	if s.Timestamp != 1 {
		t.Errorf("timestamp score %v, want 1", s.Timestamp)
	}
}

func TestBimodalHistogram(t *testing.T) {
	// 12 hours at 60 connections an hour, 12 at 12 an hour: a bad flat fit,
	// a perfect bimodal one.
	var ts []int64
	for h := int64(0); h < 24; h++ {
		n := int64(60)
		if h%2 == 1 {
			n = 12
		}
		for k := int64(0); k < n; k++ {
			ts = append(ts, h*3600+k*3600/n)
		}
	}
	s, err := DefaultConfig().Score(ts, nil, 0, day)
	if err != nil {
		t.Fatal(err)
	}
	if s.Histogram != 1 {
		t.Errorf("histogram score %v, want 1", s.Histogram)
	}
	if cv := cvScore(DefaultConfig().histogram(ts, 0, day)); cv > 0.5 {
		t.Errorf("flat-fit score %v: the test histogram is too flat", cv)
	}
}

func TestValidate(t *testing.T) {
	if err := DefaultConfig().Validate(); err != nil {
		t.Fatal(err)
	}
	f := func(mod func(*Config)) {
		t.Helper()
		c := DefaultConfig()
		mod(&c)
		if c.Validate() == nil {
			t.Errorf("%+v: no error", c)
		}
	}
	f(func(c *Config) { c.TimestampWeight = 0.5 })
	f(func(c *Config) { c.DurationWeight = -0.25; c.TimestampWeight = 0.75 })
	f(func(c *Config) { c.HistModeSensitivity = 0 })
	f(func(c *Config) { c.Bins = 0 })
}
