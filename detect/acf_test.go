package detect

import (
	"math"
	"math/rand"
	"testing"
)

// acfRef is the autocorrelation straight from its definition.
func acfRef(x []uint16, lag int) float64 {
	n := len(x)
	if lag <= 0 || lag >= n {
		return 0
	}
	act := 0
	for _, c := range x {
		if c != 0 {
			act++
		}
	}
	p := float64(act) / float64(n)
	vr := p * (1 - p)
	if vr < 1e-9 {
		return 1
	}
	var cov float64
	for i := 0; i+lag < n; i++ {
		a, b := 0.0, 0.0
		if x[i] != 0 {
			a = 1
		}
		if x[i+lag] != 0 {
			b = 1
		}
		cov += (a - p) * (b - p)
	}
	return cov / float64(n-lag) / vr
}

// TestAcfMatchesDefinition checks the counting form of acf against the
// definition on random series.
func TestAcfMatchesDefinition(t *testing.T) {
	r := rand.New(rand.NewSource(1))
	for k := 0; k < 5000; k++ {
		n := 2 + r.Intn(1439)
		x := make([]uint16, n)
		d := r.Float64()
		for i := range x {
			if r.Float64() < d {
				x[i] = uint16(1 + r.Intn(3))
			}
		}
		lag := r.Intn(n + 1)
		a, b := refAcf(x, lag), acfRef(x, lag)
		if math.Abs(a-b) > 1e-9*math.Max(1, math.Abs(b)) {
			t.Fatalf("n %d lag %d: %v vs %v", n, lag, a, b)
		}
	}
}
