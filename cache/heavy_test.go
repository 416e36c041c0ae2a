package cache

import (
	"os"
	"runtime"
	"runtime/debug"
	"runtime/pprof"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/beacongrid/beacongrid/sim"
)

// Heavy measurements run only with BEACONGRID_HEAVY=1 (make bench-cache):
// they need minutes and gigabytes, and each wants a process to itself
// (RSS is per process), so run them one at a time with -run.
func heavy(t testing.TB) {
	t.Helper()
	if os.Getenv("BEACONGRID_HEAVY") != "1" {
		t.Skip("set BEACONGRID_HEAVY=1 (make bench-cache)")
	}
}

// simEvent is one event of the simulator's day, kept compact.
type simEvent struct {
	src, dst int32 // indexes into simDay.names
	sec      int64
	size     int64
}

type simDay struct {
	names  []string
	events []simEvent
	flows  int
}

var (
	simOnce sync.Once
	simData simDay
)

// loadSimDay generates the simulator's day for 100 hosts (the realistic
// mix: mostly short-lived browsing and service flows, some periodic ones,
// a few beacons) once per test binary.
func loadSimDay(t testing.TB) *simDay {
	simOnce.Do(func() {
		idx := map[string]int32{}
		name := func(s string) int32 {
			i, ok := idx[s]
			if !ok {
				i = int32(len(simData.names))
				idx[s] = i
				simData.names = append(simData.names, s)
			}
			return i
		}
		flows := map[[2]int32]struct{}{}
		err := sim.Generate(sim.Config{Hosts: 100, Days: 1, Seed: 7}, func(e sim.Event) {
			ev := simEvent{src: name(e.SrcIP), dst: name(e.FlowKey()), sec: e.Time.Unix(), size: e.ReqBytes}
			flows[[2]int32{ev.src, ev.dst}] = struct{}{}
			simData.events = append(simData.events, ev)
		})
		if err != nil {
			panic(err)
		}
		simData.flows = len(flows)
	})
	return &simData
}

// replay feeds copies of the simulated day into s until it has seen at
// least flows distinct flows: copy c renames every source to
// "<source>#c", so each copy is a new set of hosts with the same habits.
func (d *simDay) replay(s *Store, flows int) (events int) {
	copies := (flows + d.flows - 1) / d.flows
	srcs := make([][]byte, len(d.names))
	for c := 0; c < copies; c++ {
		for i, n := range d.names {
			srcs[i] = []byte(n + "#" + strconv.Itoa(c))
		}
		for _, e := range d.events {
			s.Observe(srcs[e.src], []byte(d.names[e.dst]), e.sec, e.size)
			events++
		}
	}
	return events
}

func simNow() time.Time { return sim.DefaultStart.Add(48 * time.Hour) }

// rss returns the process's resident set size and its peak, in bytes.
func rss(t testing.TB) (cur, peak int64) {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Fields(line)
		if len(f) < 2 {
			continue
		}
		v, _ := strconv.ParseInt(f[1], 10, 64)
		switch f[0] {
		case "VmRSS:":
			cur = v << 10
		case "VmHWM:":
			peak = v << 10
		}
	}
	return cur, peak
}

func heapInUse() uint64 {
	runtime.GC()
	debug.FreeOSMemory()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return m.HeapAlloc
}

// TestHeavyMemoryPerFlow: the simulator's day, copied until 1 M flows are
// tracked; reports heap bytes per flow and the process RSS.
func TestHeavyMemoryPerFlow(t *testing.T) {
	heavy(t)
	want := 1_000_000
	if v := os.Getenv("BEACONGRID_FLOWS"); v != "" {
		want, _ = strconv.Atoi(v)
	}
	d := loadSimDay(t)
	base := heapInUse()
	s, err := New(Config{MaxBytes: 4 << 30, ExpectedFlows: int64(want), Now: simNow})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	start := time.Now()
	ev := d.replay(s, want)
	s.Wait()
	st := s.Stats()
	used := heapInUse() - base
	cur, peak := rss(t)
	t.Logf("sim day: %d flows, %d events per copy", d.flows, len(d.events))
	t.Logf("tracked %d flows (%d events in %v): heap %.1f MiB = %.0f B/flow; charged %.0f B/flow; RSS %.1f MiB (peak %.1f MiB)",
		st.Flows, ev, time.Since(start).Round(time.Millisecond), float64(used)/(1<<20), float64(used)/float64(st.Flows),
		float64(st.Bytes)/float64(st.Flows), float64(cur)/(1<<20), float64(peak)/(1<<20))
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	t.Logf("allocated %.1f MiB in all (the heap the GC collected is the peak's headroom), %d GCs", float64(ms.TotalAlloc)/(1<<20), ms.NumGC)
	t.Logf("%+v", st)
	if p := os.Getenv("BEACONGRID_MEMPROFILE"); p != "" {
		f, err := os.Create(p)
		if err != nil {
			t.Fatal(err)
		}
		pprof.WriteHeapProfile(f)
		f.Close()
	}
}

// TestHeavyFlood: a bound of 256 MiB, 10 M distinct one-off flows (a scan)
// interleaved over a day of event time with 1000 beacons (one event a
// minute each, from the first minute). The process RSS must stay under
// 1.25 x the bound and every beacon must keep all 1440 counts. Scaled down
// (BEACONGRID_FLOOD=n one-off flows) it runs in seconds. The RSS is the
// process's, so the test needs a process of its own (-run TestHeavyFlood,
// as make bench-cache runs it).
func TestHeavyFlood(t *testing.T) {
	heavy(t)
	const bound = 256 << 20
	if _, peak := rss(t); peak > bound/2 {
		t.Fatalf("the process's peak RSS is %.1f MiB before the flood (another test ran in it): run TestHeavyFlood alone", float64(peak)/(1<<20))
	}
	oneOffs := 10_000_000
	if v := os.Getenv("BEACONGRID_FLOOD"); v != "" {
		oneOffs, _ = strconv.Atoi(v)
	}
	s, err := New(Config{MaxBytes: bound, Now: simNow})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	start := time.Now()
	const beacons = 1000
	bsrc := []byte("10.1.0.1")
	bdst := make([][]byte, beacons)
	for b := range bdst {
		bdst[b] = []byte("c2-" + strconv.Itoa(b) + ".example.net")
	}
	src := make([]byte, 0, 32)
	dst := make([]byte, 0, 64)
	base := sim.DefaultStart.Unix()
	perMinute := oneOffs / Minutes
	k := 0
	for m := 0; m < Minutes; m++ {
		sec := base + int64(m*60)
		n := perMinute
		if m == Minutes-1 {
			n = oneOffs - k
		}
		total, nb := n+beacons, 0
		for j := 0; j < total; j++ {
			if nb < beacons && (j+1)*beacons/total > nb { // beacons spread evenly through the minute
				if _, _, r := s.Observe(bsrc, bdst[nb], sec+int64(nb%60), 200); r != Counted {
					t.Fatalf("beacon %d refused at minute %d: %v", nb, m, r)
				}
				nb++
				continue
			}
			src = strconv.AppendInt(append(src[:0], "172.16."...), int64(k%65536), 10)
			dst = strconv.AppendInt(append(dst[:0], "scan-"...), int64(k), 10)
			dst = append(dst, ".example.org"...)
			s.Observe(src, dst, sec+int64(j%60), 40)
			k++
		}
		if m%240 == 0 {
			cur, peak := rss(t)
			t.Logf("minute %d: %d one-offs so far, RSS %.1f MiB (peak %.1f MiB), %+v", m, k, float64(cur)/(1<<20), float64(peak)/(1<<20), s.Stats())
		}
	}
	s.Wait()
	took := time.Since(start)
	cur, peak := rss(t) // before the check below allocates its own maps
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	t.Logf("heap: in use %.1f MiB, sys %.1f MiB, live after last GC %.1f MiB, GCs %d", float64(ms.HeapInuse)/(1<<20), float64(ms.HeapSys)/(1<<20), float64(ms.HeapAlloc)/(1<<20), ms.NumGC)
	got := flowTotals(s)
	bad := 0
	for b := 0; b < beacons; b++ {
		if n := got["10.1.0.1\x00"+string(bdst[b])]; n != Minutes {
			if bad++; bad <= 5 {
				t.Errorf("beacon %d has %d counts, want %d", b, n, Minutes)
			}
		}
	}
	st := s.Stats()
	t.Logf("%d one-off flows + %d beacons in %v; RSS %.1f MiB, peak %.1f MiB (bound %d MiB, limit %.0f MiB); %d beacons inexact; %+v",
		k, beacons, took.Round(time.Second), float64(cur)/(1<<20), float64(peak)/(1<<20), bound>>20, 1.25*float64(bound>>20), bad, st)
	if float64(peak) >= 1.25*bound {
		t.Errorf("peak RSS %.1f MiB is not under 1.25 x %d MiB", float64(peak)/(1<<20), bound>>20)
	}
}
