package detect_test

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/beacongrid/beacongrid/alert"
	"github.com/beacongrid/beacongrid/cache"
	"github.com/beacongrid/beacongrid/detect"
	"github.com/beacongrid/beacongrid/fields"
	"github.com/beacongrid/beacongrid/replay"
	"github.com/beacongrid/beacongrid/rules"
	"github.com/beacongrid/beacongrid/sim"
)

type collect struct {
	mu     sync.Mutex
	alerts []*alert.Alert
}

func (c *collect) Alert(a *alert.Alert) { c.mu.Lock(); c.alerts = append(c.alerts, a); c.mu.Unlock() }

// replayDay runs the detector (the embedded model) over the simulated logs
// in files; before holds until event time change, after from then on (nil
// after: no change).
func replayDay(t *testing.T, files []string, before, after *rules.Set, change time.Time) []*alert.Alert {
	t.Helper()
	m, err := detect.OpenModel("")
	if err != nil {
		t.Fatal(err)
	}
	store, err := cache.New(cache.Config{MaxBytes: 256 << 20})
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	var ptr atomic.Pointer[rules.Set]
	ptr.Store(before)
	var sink collect
	d, err := detect.New(store, m, &ptr, &sink, detect.Config{})
	if err != nil {
		t.Fatal(err)
	}
	var buf []byte
	swapped := after == nil
	if _, err := replay.Run(files, replay.NewMatcher(fields.Default()), func(e *fields.Event) {
		if !swapped && e.HasTime && e.Sec >= change.Unix() {
			ptr.Store(after) // the reload: one swap, between two events
			swapped = true
		}
		buf = d.Observe(e, buf)
	}, nil); err != nil {
		t.Fatal(err)
	}
	d.Sweep()
	return sink.alerts
}

// key is what must match between runs (Created is the wall clock).
func key(a *alert.Alert) string {
	return fmt.Sprintf("%s %s %s %s %s %v %.4f", a.Event.ID, a.Rule.Name, a.Rule.Version, a.Rule.Severity, a.Rule.Description, a.Tags, a.Beacon.Score)
}

func flowOf(a *alert.Alert) string {
	d := a.Destination.Domain
	if d == "" {
		d = fmt.Sprintf("%s:%d", a.Destination.IP, a.Destination.Port)
	}
	return a.Source.IP + " " + d
}

// split returns per flow the keys of alerts raised before and after change.
func split(as []*alert.Alert, change time.Time) (pre, post map[string][]string) {
	pre, post = map[string][]string{}, map[string][]string{}
	for _, a := range as {
		if a.Beacon.WindowEnd.Before(change) {
			pre[flowOf(a)] = append(pre[flowOf(a)], key(a))
		} else {
			post[flowOf(a)] = append(post[flowOf(a)], key(a))
		}
	}
	return pre, post
}

// keysOf drops the rules version from alert keys: runs under different
// versions raise the same alert for the same reason with different versions.
func keysOf(ks []string, versions ...string) []string {
	out := make([]string, len(ks))
	for i, k := range ks {
		for _, v := range versions {
			k = strings.Replace(k, " "+v+" ", " V ", 1)
		}
		out[i] = k
	}
	return out
}

// TestReplayRuleChangeMidday replays a simulated day (30 hosts, four
// explicit beacons) three times: rules A all day, rules B all day, and A
// until noon then B. The change-at-noon run must raise exactly A's alerts
// before noon, and after noon exactly B's for every flow whose history
// before noon is the same under A and B; the flows the change affects
// follow B from their first scoring after noon.
func TestReplayRuleChangeMidday(t *testing.T) {
	if testing.Short() {
		t.Skip("replays a simulated day three times")
	}
	dir := t.TempDir()
	start := sim.DefaultStart
	cfg := sim.Config{Hosts: 30, Days: 1, Seed: 20261201, Start: start, C2PerHundred: -1, Beacons: []sim.Beacon{
		{Src: "10.10.0.201", Dst: "allowed-then-not.example", Interval: 2 * time.Minute, Jitter: 0.2},
		{Src: "10.10.0.202", Dst: "plain-c2.example", Interval: 2 * time.Minute, Jitter: 0.2},
		{Src: "10.10.0.204", Dst: "203.0.113.77:8443", Interval: 2 * time.Minute, Jitter: 0.2},
	}}
	if _, err := sim.WriteDir(cfg, dir, sim.WriteOptions{}); err != nil {
		t.Fatal(err)
	}
	files := []string{filepath.Join(dir, "http.log"), filepath.Join(dir, "ssl.log"), filepath.Join(dir, "conn.log")}
	// B denies the benign domain reached by the most hosts: every tracked
	// flow to it alerts after the change.
	popular := mostSharedDomain(t, filepath.Join(dir, "truth.csv"))
	docA := `version: 1
allow:
  - destination: allowed-then-not.example
    reason: under investigation
groups:
  - name: office
    sources: [10.10.0.0/24]
    severity: low
    tags: [office]
`
	docB := `version: 1
deny:
  - destination: ` + popular + `
    reason: intel says this domain is bad now
    tags: [intel]
groups:
  - name: office
    sources: [10.10.0.0/24]
    severity: critical
    tags: [office, escalated]
suppress:
  - name: quiet-ip
    expr: destination_is_ip && period >= 60
    reason: IP beacons go to another pipeline
`
	a, err := rules.Parse([]byte(docA))
	if err != nil {
		t.Fatal(err)
	}
	b, err := rules.Parse([]byte(docB))
	if err != nil {
		t.Fatal(err)
	}
	noon := start.Add(12 * time.Hour)
	runA := replayDay(t, files, a, nil, noon)
	runB := replayDay(t, files, b, nil, noon)
	runAB := replayDay(t, files, a, b, noon)
	preA, _ := split(runA, noon)
	preB, postB := split(runB, noon)
	preAB, postAB := split(runAB, noon)

	// Before the change: exactly A's alerts.
	if !mapsEqual(preAB, preA) {
		t.Fatalf("before noon the run with the change differs from rules A:\n%v\nvs\n%v", preAB, preA)
	}
	// After it: exactly B's, for every flow whose past is the same under A and B.
	affected := 0
	for f := range union(preA, preB, postAB, postB) {
		if slices.Equal(keysOf(preA[f], a.Version()), keysOf(preB[f], b.Version())) {
			if !slices.Equal(postAB[f], postB[f]) {
				t.Errorf("flow %s after noon: %v, rules B alone: %v", f, postAB[f], postB[f])
			}
			continue
		}
		affected++
	}
	for _, as := range runAB {
		want := a.Version()
		if !as.Beacon.WindowEnd.Before(noon) {
			want = b.Version()
		}
		if as.Rule.Version != want {
			t.Fatalf("alert %s at %s carries rules %s, want %s", flowOf(as), as.Beacon.WindowEnd, as.Rule.Version, want)
		}
	}
	// The flows the change touches, one by one.
	allowed := "10.10.0.201 allowed-then-not.example"
	if len(preAB[allowed]) != 0 || len(postAB[allowed]) == 0 {
		t.Errorf("the allowlisted beacon: %d alerts before noon (want 0), %d after (want > 0)", len(preAB[allowed]), len(postAB[allowed]))
	} else if first := firstAfter(runAB, allowed, noon); first.Sub(noon) > 10*time.Minute {
		t.Errorf("lifting the allow entry took until %s to apply to the tracked flow", first)
	}
	ipBeacon := "10.10.0.204 203.0.113.77:8443"
	if _, postIP := split(runB, noon); len(preB[ipBeacon])+len(postIP[ipBeacon]) != 0 || len(preAB[ipBeacon]) != 1 || len(postAB[ipBeacon]) != 0 {
		t.Errorf("IP beacon: B (suppresses it) raised %v %v; A then B %v %v, want one alert before noon", preB[ipBeacon], postB[ipBeacon], preAB[ipBeacon], postAB[ipBeacon])
	}
	denied := 0
	for _, as := range runAB {
		f := flowOf(as)
		if as.Beacon.WindowEnd.Before(noon) {
			if as.Rule.Severity != "low" || as.Event.Severity != 21 || !slices.Equal(as.Tags, []string{"office"}) {
				t.Errorf("%s before noon: severity %s/%d, tags %v; want A's group: low/21 [office]", f, as.Rule.Severity, as.Event.Severity, as.Tags)
			}
			continue
		}
		if !strings.HasSuffix(f, " "+popular) {
			continue
		}
		denied++
		if as.Rule.Name != rules.RuleDeny || as.Rule.Severity != "critical" || as.Event.Severity != 99 ||
			!slices.Equal(as.Tags, []string{"office", "escalated", "intel"}) || as.Rule.Description != "intel says this domain is bad now" {
			t.Errorf("%s after noon: %+v tags %v; want B's deny with the group's severity and tags", f, as.Rule, as.Tags)
		}
	}
	if denied < 2 {
		t.Errorf("%d flows to the denied %s alerted after noon, want >= 2", denied, popular)
	}
	if affected == 0 {
		t.Fatal("no flow's history differs between A and B: the test does not exercise a change")
	}
	t.Logf("alerts: A %d, B %d, A then B %d; %d flows affected by the change; denied %s", len(runA), len(runB), len(runAB), affected, popular)
}

func firstAfter(as []*alert.Alert, flow string, t time.Time) time.Time {
	for _, a := range as {
		if flowOf(a) == flow && !a.Beacon.WindowEnd.Before(t) {
			return a.Beacon.WindowEnd
		}
	}
	return time.Time{}
}

func mostSharedDomain(t *testing.T, truth string) string {
	t.Helper()
	f, err := os.Open(truth)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	rows, err := sim.ReadTruthCSV(f)
	if err != nil {
		t.Fatal(err)
	}
	n := map[string]int{}
	for _, r := range rows {
		if r.Label == "benign" && !strings.Contains(r.Dst, ":") {
			n[r.Dst]++
		}
	}
	var names []string
	for d := range n {
		names = append(names, d)
	}
	sort.Slice(names, func(i, j int) bool {
		return n[names[i]] > n[names[j]] || n[names[i]] == n[names[j]] && names[i] < names[j]
	})
	if len(names) == 0 {
		t.Fatal("no benign domain in the truth")
	}
	return names[0]
}

func mapsEqual(a, b map[string][]string) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if !slices.Equal(v, b[k]) {
			return false
		}
	}
	return true
}

func union(ms ...map[string][]string) map[string]bool {
	out := map[string]bool{}
	for _, m := range ms {
		for k := range m {
			out[k] = true
		}
	}
	return out
}

func observeN(d *detect.Detector, src, dst string, start time.Time, every time.Duration, n int) {
	var e fields.Event
	var buf []byte
	for i := 0; i < n; i++ {
		e.Reset()
		e.Src, e.Domain = []byte(src), []byte(dst)
		e.Sec, e.HasTime = start.Add(time.Duration(i)*every).Unix(), true
		buf = d.Observe(&e, buf)
	}
}

// A deny entry alerts on a flow from its first event, below the minimum
// observation, whatever the score; the alert names the entry.
func TestDenyAlertsFromFirstEvent(t *testing.T) {
	m, err := detect.OpenModel("")
	if err != nil {
		t.Fatal(err)
	}
	store, _ := cache.New(cache.Config{})
	defer store.Close()
	rs, err := rules.Parse([]byte("version: 1\ndeny:\n  - destination: '*.bad.example'\n    reason: intel\n"))
	if err != nil {
		t.Fatal(err)
	}
	var ptr atomic.Pointer[rules.Set]
	ptr.Store(rs)
	var sink collect
	d, _ := detect.New(store, m, &ptr, &sink, detect.Config{})
	observeN(d, "10.0.0.1", "x.bad.example", time.Date(2026, 11, 2, 8, 0, 0, 0, time.UTC), time.Minute, 1)
	observeN(d, "10.0.0.1", "fine.example", time.Date(2026, 11, 2, 8, 0, 0, 0, time.UTC), time.Minute, 1)
	if len(sink.alerts) != 1 || sink.alerts[0].Rule.Name != rules.RuleDeny || sink.alerts[0].Rule.Description != "intel" ||
		sink.alerts[0].Rule.Severity != "high" || sink.alerts[0].Destination.Domain != "x.bad.example" {
		t.Fatalf("alerts %+v", sink.alerts)
	}
}
