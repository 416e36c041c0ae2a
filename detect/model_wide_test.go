package detect

import (
	"testing"

	"github.com/beacongrid/beacongrid/cache"
)

// A perfect 60 s beacon scores high to a rare destination and 0 when most
// hosts reach the destination.
func TestDefaultModelSilencesServicesMostHostsUse(t *testing.T) {
	m, err := OpenModel("")
	if err != nil {
		t.Fatal(err)
	}
	var v cache.View
	v.Dst = "sync.example.net"
	for i := 600; i < 1440; i++ {
		v.Counts[i] = 1
	}
	v.SrcOnline, v.GapCV, v.GapMean, v.Gaps = 840, 0.01, 60, 839
	var fz Featurizer
	feats := make([]float64, NumFeatures)
	score := func(prev, sources int) float64 {
		v.Prevalence, v.Sources = prev, sources
		fz.Compute(&v, feats)
		return m.Predict(feats)
	}
	if p := score(1, 150); p < 0.5 {
		t.Errorf("rare destination: score %.4f, want a beacon's (> 0.5)", p)
	}
	for _, c := range [][2]int{{76, 150}, {11, 20}, {11, 12}, {150, 150}} {
		if p := score(c[0], c[1]); p != 0 {
			t.Errorf("%d of %d sources: score %v, want 0", c[0], c[1], p)
		}
	}
	// Half or fewer, or fewer than 11 sources, is left to the model.
	for _, c := range [][2]int{{75, 150}, {10, 12}, {3, 3}} {
		v.Prevalence, v.Sources = c[0], c[1]
		fz.Compute(&v, feats)
		if got, want := m.Predict(feats), m.(explained).Model.Predict(feats); got != want {
			t.Errorf("%d of %d sources: score %v, want the GBM's %v", c[0], c[1], got, want)
		}
	}
}
