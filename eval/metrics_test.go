package eval

import (
	"math"
	"testing"
	"time"
)

const h = int64(3600)

// c2 is a target C2 flow: 6 h, 100 callbacks.
func c2(src, dst, kind string) Flow {
	return Flow{Src: src, Dst: dst, Malicious: true, Kind: kind, First: 1000, Last: 1000 + 6*h, Callbacks: 100, Sources: 1}
}

func benign(src, dst, kind string, sources int) Flow {
	return Flow{Src: src, Dst: dst, Kind: kind, First: 0, Last: 10 * h, Callbacks: 50, Sources: sources}
}

func TestComputeHandBuilt(t *testing.T) {
	flows := []Flow{
		c2("10.0.0.1", "evil.example", "c2-jittered"), // 0: hit after 30 min
		c2("10.0.0.2", "evil.example", "c2-jittered"), // 1: hit after 2 h
		c2("10.0.0.3", "1.2.3.4:443", "c2-laptop"),    // 2: missed
		{Src: "10.0.0.3", Dst: "short.example", Malicious: true, // 3: malicious, too short for the target, alerted
			Kind: "c2-laptop", First: 0, Last: 3 * h, Callbacks: 200, Sources: 1},
		{Src: "10.0.0.4", Dst: "few.example", Malicious: true, // 4: long but too few callbacks, not alerted
			Kind: "c2-long-sleep", First: 0, Last: 20 * h, Callbacks: 11, Sources: 1},
		benign("10.0.0.1", "outlook.example", "benign-mail", 3), // 5: wide (3 of 4 sources), false alert
		benign("10.0.0.2", "outlook.example", "benign-mail", 3), // 6
		benign("10.0.0.3", "outlook.example", "benign-mail", 3), // 7
		benign("10.0.0.4", "iot.example", "benign-iot", 1),      // 8: false alert
		benign("10.0.0.4", "news.example", "benign-browsing", 2),
		{Src: "10.0.0.4", Dst: "outlook.example", Malicious: true, Kind: "c2-cdn-hidden", // 10: C2 inside a wide service, alerted: not a false alert
			First: 0, Last: 3 * h, Callbacks: 20, Sources: 3},
	}
	flows[0].Interval = time.Minute
	flows[1].Interval = 10 * time.Minute
	out := make([]Outcome, len(flows))
	out[0] = Outcome{Alerted: true, At: 1000 + 1800, Score: 0.99}
	out[1] = Outcome{Alerted: true, At: 1000 + 2*h, Score: 0.95}
	out[3] = Outcome{Alerted: true, At: 100, Score: 0.97}
	out[5] = Outcome{Alerted: true, At: 5 * h, Score: 0.93}
	out[8] = Outcome{Alerted: true, At: 5 * h, Score: 0.98}
	out[10] = Outcome{Alerted: true, At: 2 * h, Score: 0.96}
	m := Compute(flows, out, DefaultCriteria())

	eq := func(name string, got, want float64) {
		t.Helper()
		if math.Abs(got-want) > 1e-12 && !(math.IsNaN(got) && math.IsNaN(want)) {
			t.Errorf("%s = %v, want %v", name, got, want)
		}
	}
	eqi := func(name string, got, want int) {
		t.Helper()
		if got != want {
			t.Errorf("%s = %d, want %d", name, got, want)
		}
	}
	eqi("sources", m.Sources, 4)
	eqi("benign flows", m.BenignFlows, 5)
	eqi("malicious flows", m.MaliciousFlows, 6)
	eqi("target flows", m.TargetFlows, 3)
	eq("recall", m.Recall, 2.0/3)
	eqi("alerts", m.Alerts, 6)
	eqi("true alerts", m.TrueAlerts, 4)
	eqi("false alerts", m.FalseAlerts, 2)
	eq("precision", m.Precision, 4.0/6)
	eq("false per 1000", m.FalsePer1000, 1000*2.0/5)
	eqi("wide destinations", m.WideDsts, 1)
	eqi("wide alerts", m.WideAlerts, 1)
	if len(m.MissedTargets) != 1 || m.MissedTargets[0] != 2 {
		t.Errorf("missed %v, want [2]", m.MissedTargets)
	}
	if len(m.FalseFlows) != 2 || m.FalseFlows[0] != 8 || m.FalseFlows[1] != 5 {
		t.Errorf("false flows %v, want [8 5] (by score)", m.FalseFlows)
	}
	want := map[string]KindRecall{
		"c2-jittered":   {Kind: "c2-jittered", Target: 2, Hit: 2, Malicious: 2, MHit: 2},
		"c2-laptop":     {Kind: "c2-laptop", Target: 1, Hit: 0, Malicious: 2, MHit: 1},
		"c2-long-sleep": {Kind: "c2-long-sleep", Target: 0, Hit: 0, Malicious: 1, MHit: 0},
	}
	want["c2-cdn-hidden"] = KindRecall{Kind: "c2-cdn-hidden", Malicious: 1, MHit: 1}
	eqi("kinds", len(m.Kinds), 4)
	for _, k := range m.Kinds {
		if k != want[k.Kind] {
			t.Errorf("kind %+v, want %+v", k, want[k.Kind])
		}
	}
	if r := m.Kinds[3].Recall(); !math.IsNaN(r) {
		t.Errorf("recall without targets %v, want NaN", r)
	}
	if len(m.FalseByKind) != 2 || m.FalseByKind[0] != (KindCount{"benign-iot", 1}) || m.FalseByKind[1] != (KindCount{"benign-mail", 1}) {
		t.Errorf("false by kind %v", m.FalseByKind)
	}
	// Time to alert: only target flows; 30 min and 2 h.
	wantLat := []Latency{
		{Kind: "c2-jittered", N: 2, Median: 75 * time.Minute, Max: 2 * time.Hour},
		{Kind: "all", N: 2, Median: 75 * time.Minute, Max: 2 * time.Hour},
	}
	if len(m.Latency) != len(wantLat) {
		t.Fatalf("latency %v, want %v", m.Latency, wantLat)
	}
	for i := range wantLat {
		if m.Latency[i] != wantLat[i] {
			t.Errorf("latency[%d] = %+v, want %+v", i, m.Latency[i], wantLat[i])
		}
	}
	wantIv := []Latency{
		{Kind: "interval <= 60 s", N: 1, Median: 30 * time.Minute, Max: 30 * time.Minute},
		{Kind: "interval 5 - 30 min", N: 1, Median: 2 * time.Hour, Max: 2 * time.Hour},
	}
	if len(m.LatencyByIv) != 2 || m.LatencyByIv[0] != wantIv[0] || m.LatencyByIv[1] != wantIv[1] {
		t.Errorf("latency by interval %+v, want %+v", m.LatencyByIv, wantIv)
	}
	for in, want := range map[string]time.Duration{"interval=60s jitter=0": time.Minute, "interval=1980s": 1980 * time.Second, "service=x period=60s": 0, "interval=bad": 0} {
		if got := detailInterval(in); got != want {
			t.Errorf("detailInterval(%q) = %v, want %v", in, got, want)
		}
	}
}

func TestComputeEdges(t *testing.T) {
	// No alerts at all: precision undefined, nothing false.
	flows := []Flow{benign("a", "x", "k", 1), c2("b", "y", "c2")}
	m := Compute(flows, make([]Outcome, 2), DefaultCriteria())
	if !math.IsNaN(m.Precision) || m.FalsePer1000 != 0 || m.Recall != 0 || len(m.Latency) != 0 {
		t.Errorf("%+v", m)
	}
	// Batch outcomes (At 0) count for recall but not latency.
	m = Compute(flows, []Outcome{{}, {Alerted: true}}, DefaultCriteria())
	if m.Recall != 1 || len(m.Latency) != 0 || m.Precision != 1 {
		t.Errorf("%+v", m)
	}
	// Criteria boundaries: exactly 4 h and 12 callbacks is a target.
	c := DefaultCriteria()
	f := Flow{Malicious: true, First: 0, Last: 4 * h, Callbacks: 12}
	if !c.Target(&f) {
		t.Error("4 h, 12 callbacks: not a target")
	}
	f.Last--
	if c.Target(&f) {
		t.Error("4 h - 1 s: a target")
	}
	// A single-host dataset has no service "most hosts use".
	if c.Wide(&Flow{Sources: 1}, 1) {
		t.Error("1 source of 1 counted as widely used")
	}
	if !c.Wide(&Flow{Sources: 6}, 10) || c.Wide(&Flow{Sources: 5}, 10) {
		t.Error("wide boundary: want more than half")
	}
	defer func() {
		if recover() == nil {
			t.Error("length mismatch did not panic")
		}
	}()
	Compute(flows, nil, c)
}
