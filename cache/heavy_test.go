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
