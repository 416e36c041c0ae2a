package detect

import (
	"fmt"
	"math/rand"
	"testing"
	"time"

	"github.com/beacongrid/beacongrid/alert"
	"github.com/beacongrid/beacongrid/cache"
	"github.com/beacongrid/beacongrid/fields"
	"github.com/beacongrid/beacongrid/rules"
)

// The default model's score is its own at every prevalence: a 60 s beacon
// with 20 % jitter scores over the threshold to a rare destination, and a
// service most hosts use keeps its real (lower) score instead of a made-up 0.
func TestDefaultModelScoresAreTheModels(t *testing.T) {
	m, err := OpenModel("")
	if err != nil {
		t.Fatal(err)
	}
	var v cache.View
	v.Dst = "sync.example.net"
	rng := rand.New(rand.NewSource(1))
	calls := 0
	for s := 600 * 60.0; s < 1440*60; s += 60 * (1 - 0.2*rng.Float64()) {
		v.Counts[int(s/60)]++
		calls++
	}
	v.SrcOnline, v.GapCV, v.GapMean, v.Gaps = 840, 0.06, 54, calls-1
	var fz Featurizer
	feats := make([]float64, NumFeatures)
	score := func(prev, sources int) float64 {
		v.Prevalence, v.Sources = prev, sources
		fz.Compute(&v, feats)
		return m.Predict(feats)
	}
	rare := score(1, 150)
	if rare < m.Threshold() {
		t.Errorf("rare destination: score %.4f, want a beacon's (>= the threshold %.4f)", rare, m.Threshold())
	}
	for _, c := range [][2]int{{76, 150}, {11, 20}, {150, 150}, {75, 150}, {3, 3}} {
		p := score(c[0], c[1])
		if want := m.(explained).Model.Predict(feats); p != want || p <= 0 {
			t.Errorf("%d of %d sources: score %v, want the GBM's %v (> 0)", c[0], c[1], p, want)
		}
		if p > rare {
			t.Errorf("%d of %d sources: score %v above the rare destination's %v (prevalence is monotone)", c[0], c[1], p, rare)
		}
	}
}

// feedSources sends one request a minute from each of n sources to dst,
// interleaved in time, for the given minutes.
func feedSources(d *Detector, n int, dst string, minutes int) {
	start := time.Date(2026, 11, 2, 8, 0, 0, 0, time.UTC)
	var e fields.Event
	var buf []byte
	for m := 0; m < minutes; m++ {
		for s := 0; s < n; s++ {
			e.Reset()
			e.Src, e.Domain = fmt.Appendf(nil, "10.0.1.%d", s+1), []byte(dst)
			e.Sec, e.HasTime = start.Add(time.Duration(m)*time.Minute+time.Duration(s)*time.Second).Unix(), true
			buf = d.Observe(&e, buf)
		}
	}
}

// The detector's decision silences model alerts on a service most hosts use
// (prevalence_share above rules.DefaultWideShare, or the rules' wide_share), counts
// each in Stats.Wide apart from the rules' suppressions, and still alerts on
// it for a deny entry. The fake model scores every steady flow 1.
func TestDetectorSilencesServicesMostHostsUse(t *testing.T) {
	f := func(name, rulesDoc string, sources, wantAlerts int, wantWide bool) { // wantAlerts: sources alerted
		t.Helper()
		var rs *rules.Set
		if rulesDoc != "" {
			var err error
			if rs, err = rules.Parse([]byte(rulesDoc)); err != nil {
				t.Fatal(err)
			}
		}
		var got []*alert.Alert
		d := newDetector(t, rs, sinkFunc(func(a *alert.Alert) { got = append(got, a) }))
		feedSources(d, sources, "agent.example", 60)
		st := d.Stats()
		alerted := map[string]bool{}
		for _, a := range got {
			alerted[a.Source.IP] = true
			if a.Rule.Name == rules.RuleModel && a.Beacon.Score != 1 {
				t.Errorf("%s: alert score %v, want the model's 1", name, a.Beacon.Score)
			}
		}
		if len(alerted) != wantAlerts || (st.Wide > 0) != wantWide || st.Suppressed != 0 {
			t.Errorf("%s: %d sources alerted (want %d), %d wide-service suppressions (want some: %v), %d rule suppressions (want 0)",
				name, len(alerted), wantAlerts, st.Wide, wantWide, st.Suppressed)
		}
	}
	// 12 sources of 12 seen: share 12/max(12, 20) = 0.6 > 0.5.
	f("12 of 12 sources", "", 12, 0, true)
	// 10 of 10: share 0.5, not above: every source alerts.
	f("10 of 10 sources", "", 10, 10, false)
	// The rules raise the share: 0.6 is no longer wide.
	f("12 of 12, wide_share 0.7", "version: 1\nwide_share: 0.7\n", 12, 12, false)
	// ... or lower it: 8 of 8 (0.4) is wide at 0.3.
	f("8 of 8, wide_share 0.3", "version: 1\nwide_share: 0.3\n", 8, 0, true)
	// A deny entry alerts whatever the prevalence.
	f("12 of 12, denied", "version: 1\ndeny:\n  - destination: agent.example\n    reason: intel\n", 12, 12, false)
}
