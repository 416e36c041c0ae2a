package flbtest_test

import (
	"bufio"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/beacongrid/beacongrid/internal/flbtest"
)

// The host and the probe plugin are built once per test binary, on first
// use, so that the pure-Go tests need neither gcc nor a c-shared build.
var (
	fixtureOnce sync.Once
	fixtureDir  string
	hostBin     string
	probeSO     string
	fixtureErr  error
)

func TestMain(m *testing.M) {
	code := m.Run()
	if fixtureDir != "" {
		os.RemoveAll(fixtureDir)
	}
	os.Exit(code)
}

func fixtures(t *testing.T) (host, probe string) {
	t.Helper()
	fixtureOnce.Do(func() {
		fixtureDir, fixtureErr = os.MkdirTemp("", "flbtest-")
		if fixtureErr != nil {
			return
		}
		// -Werror: the host must compile without a single warning.
		if hostBin, fixtureErr = flbtest.BuildHostTo(fixtureDir, "-Werror"); fixtureErr != nil {
			return
		}
		probeSO, fixtureErr = flbtest.BuildPluginTo(fixtureDir, "./build/flbhost/probe", "probe.so")
	})
	if fixtureErr != nil {
		t.Fatal(fixtureErr)
	}
	return hostBin, probeSO
}

// probeEvent is one line of the probe plugin's log (build/flbhost/probe).
type probeEvent struct {
	Ev          string            `json:"ev"`
	Data        uint64            `json:"data"`
	Tid         int               `json:"tid"`
	Pid         int               `json:"pid"`
	SP          uint64            `json:"sp"`
	OnStack     int               `json:"on_thread_stack"`
	ID          string            `json:"id"`
	Arg         int               `json:"arg"`
	DefZero     bool              `json:"def_zero"`
	Name        string            `json:"name"`
	Plugin      uint64            `json:"plugin"`
	API         uint64            `json:"api"`
	GetProperty uint64            `json:"get_property"`
	OIns        uint64            `json:"o_ins"`
	Context     uint64            `json:"context"`
	CtxBefore   uint64            `json:"ctx_before"`
	Ctx         uint64            `json:"ctx"`
	Props       map[string]string `json:"props"`
	NullProps   []string          `json:"null_props"`
	Tag         string            `json:"tag"`
	Size        int               `json:"size"`
	SHA256      string            `json:"sha256"`
	Inflight    int32             `json:"inflight"`
	MaxInflight int32             `json:"max_inflight"`
	Flushes     int64             `json:"flushes"`
	RC          int               `json:"rc"`
	Recovered   string            `json:"recovered"`
}

func readProbeLog(t *testing.T, path string) []probeEvent {
	t.Helper()
	f, err := os.Open(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var evs []probeEvent
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		var e probeEvent
		if err := json.Unmarshal(sc.Bytes(), &e); err != nil {
			t.Fatalf("probe log line %q: %v", sc.Text(), err)
		}
		evs = append(evs, e)
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return evs
}

func evNames(evs []probeEvent) []string {
	var names []string
	for _, e := range evs {
		names = append(names, e.Ev)
	}
	return names
}

func filterEv(evs []probeEvent, name string) []probeEvent {
	var out []probeEvent
	for _, e := range evs {
		if e.Ev == name {
			out = append(out, e)
		}
	}
	return out
}

// probeOpts fills in the host, the probe and a fresh probe log.
func probeOpts(t *testing.T, opts flbtest.HostOptions) (flbtest.HostOptions, string) {
	t.Helper()
	opts.Host, opts.Plugin = fixtures(t)
	log := filepath.Join(t.TempDir(), "probe.log")
	opts.Env = append(opts.Env, "FLBPROBE_LOG="+log)
	return opts, log
}

func runProbe(t *testing.T, opts flbtest.HostOptions) (*flbtest.Result, []probeEvent, error) {
	t.Helper()
	opts, log := probeOpts(t, opts)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	res, err := flbtest.Run(ctx, opts)
	if res == nil {
		t.Fatalf("host did not run: %v", err)
	}
	t.Logf("host stdout:\n%s\nhost stderr:\n%s", res.Stdout, res.Stderr)
	return res, readProbeLog(t, log), err
}

type chunkFile struct {
	path   string
	data   []byte
	sha    string
	events int
}

func writeChunk(t *testing.T, name string, n int, opts ...flbtest.ChunkOption) chunkFile {
	t.Helper()
	var evs []flbtest.Event
	for i := 0; i < n; i++ {
		evs = append(evs, flbtest.Event{
			Time:   time.Unix(1700000000+int64(i), int64(i)),
			Record: map[string]any{"chunk": name, "i": int64(i), "nested": map[string]any{"id.orig_h": "10.0.0.1"}},
		})
	}
	path := filepath.Join(t.TempDir(), name+".bin")
	if err := flbtest.WriteChunk(path, evs, opts...); err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(data)
	return chunkFile{path: path, data: data, sha: hex.EncodeToString(sum[:]), events: n}
}

func mustOK(t *testing.T, res *flbtest.Result, err error) {
	t.Helper()
	if err != nil {
		t.Fatalf("host failed: %v", err)
	}
	if !res.Done || res.Status != 0 || res.ExitCode != 0 {
		t.Fatalf("host did not finish cleanly: done=%v status=%d exit=%d", res.Done, res.Status, res.ExitCode)
	}
}

// TestHostLifecycle checks the whole call sequence against the ABI notes.
func TestHostLifecycle(t *testing.T) {
	t.Parallel()
	c1 := writeChunk(t, "one", 3)
	c2 := writeChunk(t, "two", 5, flbtest.WithFixArray())
	res, evs, err := runProbe(t, flbtest.HostOptions{
		Instances: []flbtest.Instance{
			{Name: "probe", Props: map[string]string{"id": "a"}},
			{Name: "Probe", Props: map[string]string{"ID": "b"}},
		},
		Chunks: []flbtest.Chunk{
			{Instance: 0, Tag: "tag.a", File: c1.path},
			{Instance: 1, Tag: "tag.b", File: c2.path},
			{Instance: 0, Tag: "tag.a2", File: c2.path},
		},
	})
	mustOK(t, res, err)

	want := []string{"preregister", "register", "init", "init", "prerun", "prerun",
		"flush", "flush", "flush", "preexit", "exit", "preexit", "exit", "unregister"}
	if got := evNames(evs); strings.Join(got, " ") != strings.Join(want, " ") {
		t.Fatalf("call sequence:\n got %v\nwant %v", got, want)
	}
	pre, reg, ia, ib := evs[0], evs[1], evs[2], evs[3]
	if pre.Arg != 0 || pre.Tid != pre.Pid {
		t.Errorf("FLBPluginPreRegister(%d) on tid %d, want (0) on the main thread %d", pre.Arg, pre.Tid, pre.Pid)
	}
	if !reg.DefZero || reg.Tid != reg.Pid {
		t.Errorf("FLBPluginRegister: def zeroed=%v, tid=%d pid=%d", reg.DefZero, reg.Tid, reg.Pid)
	}
	engine := ia.Tid
	if engine == ia.Pid {
		t.Errorf("FLBPluginInit ran on the main thread, want an engine thread")
	}
	if ia.ID != "a" || ib.ID != "b" {
		t.Errorf("instances read ids %q, %q", ia.ID, ib.ID)
	}
	if ia.Plugin == 0 || ia.Plugin != ib.Plugin {
		t.Errorf("plugin pointers %#x, %#x: want the same one for every instance", ia.Plugin, ib.Plugin)
	}
	if ia.OIns == ib.OIns || ia.Context == ib.Context || ia.Ctx == ib.Ctx || ia.Ctx == 0 {
		t.Errorf("instances share o_ins/context: %+v %+v", ia, ib)
	}
	for _, e := range []probeEvent{ia, ib} {
		if e.Tid != engine || e.Name != "probe" || e.API == 0 || e.GetProperty == 0 || e.CtxBefore != 0 {
			t.Errorf("init: %+v", e)
		}
	}
	ctxOf := map[string]uint64{"a": ia.Ctx, "b": ib.Ctx}
	wantFlush := []struct {
		id, tag string
		c       chunkFile
	}{{"a", "tag.a", c1}, {"b", "tag.b", c2}, {"a", "tag.a2", c2}}
	for i, f := range filterEv(evs, "flush") {
		w := wantFlush[i]
		if f.ID != w.id || f.Ctx != ctxOf[w.id] || f.Tag != w.tag || f.Size != len(w.c.data) || f.SHA256 != w.c.sha {
			t.Errorf("flush %d: got id=%s ctx=%#x tag=%s size=%d sha=%s; want id=%s ctx=%#x tag=%s size=%d sha=%s",
				i, f.ID, f.Ctx, f.Tag, f.Size, f.SHA256, w.id, ctxOf[w.id], w.tag, len(w.c.data), w.c.sha)
		}
		if f.Tid != engine || f.OnStack != 0 {
			t.Errorf("flush %d: tid %d (engine %d), on thread stack %d: want the engine thread on a coroutine stack", i, f.Tid, engine, f.OnStack)
		}
	}
	exits := filterEv(evs, "exit")
	if exits[0].ID != "a" || exits[0].Ctx != ia.Ctx || exits[0].Flushes != 2 ||
		exits[1].ID != "b" || exits[1].Ctx != ib.Ctx || exits[1].Flushes != 1 {
		t.Errorf("exits: %+v", exits)
	}
	for _, e := range append(exits, filterEv(evs, "preexit")...) {
		if e.Tid != engine {
			t.Errorf("%s on tid %d, want the engine thread %d", e.Ev, e.Tid, engine)
		}
	}
	unreg := evs[len(evs)-1]
	if unreg.Name != "probe" || unreg.Tid != unreg.Pid {
		t.Errorf("unregister: %+v", unreg)
	}

	// What the host itself reports.
	if res.Plugin != "probe" || !res.Unregistered {
		t.Errorf("plugin %q unregistered %v", res.Plugin, res.Unregistered)
	}
	if fmt.Sprint(res.Inits) != "[{probe.0  1} {probe.1  1}]" {
		t.Errorf("inits %v", res.Inits)
	}
	if fmt.Sprint(res.Exits) != "[{probe.0 FLBPluginExitCtx 1} {probe.1 FLBPluginExitCtx 1}]" {
		t.Errorf("exits %v", res.Exits)
	}
	wantLines := []flbtest.Flush{
		{Instance: "probe.0", Tag: "tag.a", Chunk: c1.path, RC: 1},
		{Instance: "probe.1", Tag: "tag.b", Chunk: c2.path, RC: 1},
		{Instance: "probe.0", Tag: "tag.a2", Chunk: c2.path, RC: 1},
	}
	if fmt.Sprint(res.Flushes) != fmt.Sprint(wantLines) {
		t.Errorf("flush lines %v, want %v", res.Flushes, wantLines)
	}
	if res.FlushCount != 3 || res.RCOK != 3 || res.RCError != 0 ||
		res.Bytes != int64(len(c1.data)+2*len(c2.data)) || res.Records != int64(c1.events+2*c2.events) {
		t.Errorf("totals %+v", res)
	}
}

func TestHostProperties(t *testing.T) {
	t.Parallel()
	c := writeChunk(t, "p", 1)
	keys := "Foo,FOO,foo,missing,host,match,Workers,alias,port,tls,net.connect_timeout,empty,env,Log_Level,tls.custom,retry_limit"
	res, evs, err := runProbe(t, flbtest.HostOptions{
		Env: []string{"FLBTEST_PROBE_ENV=from-env"},
		Instances: []flbtest.Instance{{Name: "probe", Props: map[string]string{
			"keys":                keys,
			"foo":                 "bar",
			"Host":                "example.org",
			"match":               "*",
			"workers":             "0",
			"alias":               "myout",
			"port":                "24224",
			"tls":                 "off",
			"net.connect_timeout": "5",
			"empty":               "",
			"env":                 "${FLBTEST_PROBE_ENV}/x",
			"log_level":           "info",
			"tls.custom":          "kept",
			"retry_limit":         "3",
		}}},
		Chunks: []flbtest.Chunk{{Instance: 0, Tag: "t", File: c.path}},
	})
	mustOK(t, res, err)
	inits := filterEv(evs, "init")
	if len(inits) != 1 {
		t.Fatalf("inits: %v", evNames(evs))
	}
	want := map[string]string{
		"Foo": "bar", "FOO": "bar", "foo": "bar", // case-insensitive
		"missing": "", "empty": "", // missing and empty read as ""
		"host": "", "match": "", "Workers": "", "alias": "", "port": "", "tls": "",
		"net.connect_timeout": "", "Log_Level": "", "retry_limit": "", // core keys never reach the plugin
		"env":        "from-env/x", // ${VAR} is expanded
		"tls.custom": "kept",       // not a core key
	}
	got := inits[0].Props
	for k, v := range want {
		if got[k] != v {
			t.Errorf("property %q = %q, want %q", k, got[k], v)
		}
	}
	// Missing, empty and core keys come back as NULL, not "".
	nulls := map[string]bool{}
	for _, k := range inits[0].NullProps {
		nulls[k] = true
	}
	for k, v := range want {
		if nulls[k] != (v == "") {
			t.Errorf("property %q: NULL=%v, want %v", k, nulls[k], v == "")
		}
	}
	if len(res.Inits) != 1 || res.Inits[0].Instance != "myout" || len(res.Flushes) != 1 || res.Flushes[0].Instance != "myout" {
		t.Errorf("alias not used as the instance name: %+v %+v", res.Inits, res.Flushes)
	}
}

func TestHostReturnCodes(t *testing.T) {
	t.Parallel()
	c := writeChunk(t, "rc", 2)
	inst := func(id string, props ...string) flbtest.Instance {
		p := map[string]string{"id": id}
		for i := 0; i+1 < len(props); i += 2 {
			p[props[i]] = props[i+1]
		}
		return flbtest.Instance{Name: "probe", Props: p}
	}
	res, evs, err := runProbe(t, flbtest.HostOptions{
		Instances: []flbtest.Instance{
			inst("ok", "rc", "1"), inst("retry", "rc", "2"), inst("error", "rc", "0"),
			inst("other", "rc", "7"), inst("panic", "panic", "flush"),
		},
		Chunks: []flbtest.Chunk{
			{Instance: 0, Tag: "t", File: c.path}, {Instance: 1, Tag: "t", File: c.path},
			{Instance: 2, Tag: "t", File: c.path}, {Instance: 3, Tag: "t", File: c.path},
			{Instance: 4, Tag: "t", File: c.path},
		},
	})
	mustOK(t, res, err)
	var rcs []int
	for _, f := range res.Flushes {
		rcs = append(rcs, f.RC)
	}
	if fmt.Sprint(rcs) != "[1 2 0 7 0]" {
		t.Errorf("flush rcs %v", rcs)
	}
	if res.RCOK != 1 || res.RCRetry != 1 || res.RCError != 3 || res.RCOther != 1 || res.FlushCount != 5 {
		t.Errorf("rc counts %+v", res)
	}
	flushes := filterEv(evs, "flush")
	if len(flushes) != 5 || flushes[4].Recovered == "" {
		t.Errorf("panic not recovered in the probe: %+v", flushes)
	}
}

func TestHostInitFailure(t *testing.T) {
	t.Parallel()
	c := writeChunk(t, "f", 1)
	res, evs, err := runProbe(t, flbtest.HostOptions{
		Instances: []flbtest.Instance{
			{Name: "probe", Props: map[string]string{"id": "a"}},
			{Name: "probe", Props: map[string]string{"id": "b", "init_rc": "0"}},
			{Name: "probe", Props: map[string]string{"id": "c"}},
		},
		Chunks: []flbtest.Chunk{{Instance: 0, Tag: "t", File: c.path}},
	})
	var herr *flbtest.HostError
	if !errors.As(err, &herr) || herr.ExitCode != 1 || res.ExitCode != 1 {
		t.Fatalf("want exit status 1, got %v", err)
	}
	if !strings.Contains(res.Stderr, "FLBPluginInit failed for instance probe.1") {
		t.Errorf("stderr does not say why: %q", res.Stderr)
	}
	want := "preregister register init init preexit exit unregister"
	if got := strings.Join(evNames(evs), " "); got != want {
		t.Errorf("calls %q, want %q", got, want)
	}
	if len(res.Flushes) != 0 || len(res.Exits) != 1 || res.Exits[0].Instance != "probe.0" || !res.Unregistered {
		t.Errorf("result %+v", res)
	}
}

func TestHostRejectsWrongPluginName(t *testing.T) {
	t.Parallel()
	res, evs, err := runProbe(t, flbtest.HostOptions{
		Instances: []flbtest.Instance{{Name: "notprobe"}},
	})
	if err == nil || res.ExitCode != 1 {
		t.Fatalf("want exit status 1, got %v", err)
	}
	if !strings.Contains(res.Stderr, "invalid output plugin 'notprobe'") {
		t.Errorf("stderr %q", res.Stderr)
	}
	if got := strings.Join(evNames(evs), " "); got != "preregister register unregister" {
		t.Errorf("calls %q", got)
	}
}

func TestHostUsageErrors(t *testing.T) {
	t.Parallel()
	host, probe := fixtures(t)
	for _, args := range [][]string{
		{"-i", "probe"}, // no -p
		{"-p", probe},   // no -i
		{"-p", probe, "-o", "a=b", "-i", "probe"}, // -o before -i
		{"-p", probe, "-i", "probe", "-o", "novalue"},
		{"-p", probe, "-i", "probe", "-c", "0:tag"},
		{"-p", probe, "-i", "probe", "-c", "5:tag:/dev/null"},
		{"-p", probe, "-i", "probe", "-w", "-1"},
		{"-p", probe, "-i", "probe", "-r", "0"},
	} {
		out, err := exec.Command(host, args...).CombinedOutput()
		var ee *exec.ExitError
		if !errors.As(err, &ee) || ee.ExitCode() != 2 {
			t.Errorf("%v: want exit status 2, got %v\n%s", args, err, out)
		}
	}
	out, err := exec.Command(host, "-p", probe, "-i", "probe", "-c", "0:t:/nonexistent/chunk").CombinedOutput()
	if err == nil || !strings.Contains(string(out), "cannot open chunk /nonexistent/chunk") {
		t.Errorf("missing chunk file: %v\n%s", err, out)
	}
}

func TestHostWorkers(t *testing.T) {
	t.Parallel()
	c := writeChunk(t, "w", 2)
	var chunks []flbtest.Chunk
	for i := 0; i < 4; i++ {
		chunks = append(chunks, flbtest.Chunk{Instance: 0, Tag: "w", File: c.path}, flbtest.Chunk{Instance: 1, Tag: "s", File: c.path})
	}
	res, evs, err := runProbe(t, flbtest.HostOptions{
		Instances: []flbtest.Instance{
			// workers as an instance property, like "workers 2" in [OUTPUT]
			{Name: "probe", Props: map[string]string{"id": "workers", "workers": "2", "sleep_ms": "150"}},
			{Name: "probe", Props: map[string]string{"id": "serial", "sleep_ms": "20"}},
		},
		Chunks: chunks,
	})
	mustOK(t, res, err)
	engine := filterEv(evs, "init")[0].Tid
	workerTids := map[int]bool{}
	for _, f := range filterEv(evs, "flush") {
		if f.OnStack != 0 {
			t.Errorf("flush on the thread's own stack, want a coroutine stack: %+v", f)
		}
		switch f.ID {
		case "workers":
			if f.Tid == engine {
				t.Errorf("a flush of a workers instance ran on the engine thread")
			}
			workerTids[f.Tid] = true
		case "serial":
			if f.Tid != engine {
				t.Errorf("a flush of a workers=0 instance ran off the engine thread")
			}
		}
	}
	if len(workerTids) != 2 {
		t.Errorf("flushes ran on %d worker threads, want 2", len(workerTids))
	}
	for _, e := range filterEv(evs, "exit") {
		want := map[string]int32{"workers": 2, "serial": 1}[e.ID]
		if e.MaxInflight != want || e.Flushes != 4 {
			t.Errorf("instance %s: %d concurrent flushes at most (want %d), %d flushes", e.ID, e.MaxInflight, want, e.Flushes)
		}
	}
	if res.FlushCount != 8 || res.RCOK != 8 {
		t.Errorf("totals %+v", res)
	}
}

// Flushes run on small mmap'd stacks used in turn (so the Go runtime sees a
// new C stack on each call), with the size given by -s.
func TestHostCoroutineStacks(t *testing.T) {
	t.Parallel()
	c := writeChunk(t, "s", 1)
	for _, size := range []int{0, 16 * 1024, 256 * 1024} {
		t.Run(fmt.Sprint(size), func(t *testing.T) {
			var chunks []flbtest.Chunk
			for i := 0; i < 4; i++ {
				chunks = append(chunks, flbtest.Chunk{Instance: 0, Tag: "s", File: c.path})
			}
			res, evs, err := runProbe(t, flbtest.HostOptions{
				StackSize: size,
				Instances: []flbtest.Instance{{Name: "probe"}},
				Chunks:    chunks,
			})
			mustOK(t, res, err)
			fl := filterEv(evs, "flush")
			if len(fl) != 4 {
				t.Fatalf("%d flushes", len(fl))
			}
			for _, f := range fl {
				if f.OnStack != 0 {
					t.Errorf("flush ran on the thread's own stack: %+v", f)
				}
			}
			dist := func(a, b uint64) uint64 {
				if a > b {
					return a - b
				}
				return b - a
			}
			stack := uint64(size)
			if stack == 0 {
				stack = 24 * 1024
			}
			if dist(fl[0].SP, fl[1].SP) < stack || dist(fl[0].SP, fl[2].SP) >= stack || dist(fl[1].SP, fl[3].SP) >= stack {
				t.Errorf("flushes should alternate between two stacks: sp %#x %#x %#x %#x", fl[0].SP, fl[1].SP, fl[2].SP, fl[3].SP)
			}
		})
	}
}

func TestHostRepeat(t *testing.T) {
	t.Parallel()
	c1 := writeChunk(t, "r1", 3)
	c2 := writeChunk(t, "r2", 4)
	for _, workers := range []int{0, 2} {
		t.Run(fmt.Sprint("workers=", workers), func(t *testing.T) {
			res, evs, err := runProbe(t, flbtest.HostOptions{
				Workers:   workers,
				Repeat:    3,
				Instances: []flbtest.Instance{{Name: "probe", Props: map[string]string{"rc": "2"}}},
				Chunks:    []flbtest.Chunk{{Instance: 0, Tag: "a", File: c1.path}, {Instance: 0, Tag: "b", File: c2.path}},
			})
			mustOK(t, res, err)
			if len(res.Flushes) != 0 {
				t.Errorf("per-flush lines printed with a repeat: %v", res.Flushes)
			}
			if res.FlushCount != 6 || res.RCRetry != 6 || res.Bytes != int64(3*(len(c1.data)+len(c2.data))) || res.Records != 21 || res.Seconds <= 0 {
				t.Errorf("totals %+v", res)
			}
			if n := len(filterEv(evs, "flush")); n != 6 {
				t.Errorf("the probe saw %d flushes, want 6", n)
			}
		})
	}
}

// With -z N the flushes get N copies of the chunk in turn, each byte for
// byte; without it every flush gets its own copy.
func TestHostZeroCopy(t *testing.T) {
	t.Parallel()
	c := writeChunk(t, "z", 3)
	want := sha256.Sum256(c.data)
	for _, copies := range []int{0, 1, 3} {
		t.Run(fmt.Sprint("copies=", copies), func(t *testing.T) {
			res, evs, err := runProbe(t, flbtest.HostOptions{
				Repeat:    6,
				ZeroCopy:  copies,
				Instances: []flbtest.Instance{{Name: "probe"}},
				Chunks:    []flbtest.Chunk{{Instance: 0, Tag: "z", File: c.path}},
			})
			mustOK(t, res, err)
			fl := filterEv(evs, "flush")
			if len(fl) != 6 || res.FlushCount != 6 || res.Records != 18 {
				t.Fatalf("%d flushes seen, totals %+v", len(fl), res)
			}
			addrs := map[uint64]bool{}
			for i, f := range fl {
				if f.SHA256 != hex.EncodeToString(want[:]) || f.Size != len(c.data) || f.Tag != "z" {
					t.Errorf("flush %d: %+v", i, f)
				}
				addrs[f.Data] = true
				if copies > 0 && f.Data != fl[i%copies].Data {
					t.Errorf("flush %d got buffer %#x, flush %d %#x: not the copies in turn", i, f.Data, i%copies, fl[i%copies].Data)
				}
			}
			if copies > 0 && len(addrs) != copies {
				t.Errorf("%d buffers for %d copies", len(addrs), copies)
			}
		})
	}
}

// A chunk that is not well-formed msgpack is still flushed byte for byte.
func TestHostMalformedChunk(t *testing.T) {
	t.Parallel()
	c := writeChunk(t, "m", 2)
	bad := append(append([]byte{}, c.data...), 0xdd, 0, 0, 0, 2, 0xd7)
	path := filepath.Join(t.TempDir(), "bad.bin")
	if err := os.WriteFile(path, bad, 0o644); err != nil {
		t.Fatal(err)
	}
	res, evs, err := runProbe(t, flbtest.HostOptions{
		Instances: []flbtest.Instance{{Name: "probe"}},
		Chunks:    []flbtest.Chunk{{Instance: 0, Tag: "m", File: path}},
	})
	mustOK(t, res, err)
	sum := sha256.Sum256(bad)
	fl := filterEv(evs, "flush")
	if len(fl) != 1 || fl[0].SHA256 != hex.EncodeToString(sum[:]) || fl[0].Size != len(bad) {
		t.Errorf("flush %+v", fl)
	}
	if res.Records != 2 || !strings.Contains(res.Stderr, "not well-formed msgpack after 2 objects") {
		t.Errorf("records %d, stderr %q", res.Records, res.Stderr)
	}
}

func TestHostHold(t *testing.T) {
	t.Parallel()
	c := writeChunk(t, "h", 1)
	for _, how := range []string{"stdin", "SIGTERM", "SIGUSR1"} {
		t.Run(how, func(t *testing.T) {
			t.Parallel()
			opts, log := probeOpts(t, flbtest.HostOptions{
				Hold:      true,
				Instances: []flbtest.Instance{{Name: "probe"}},
				Chunks:    []flbtest.Chunk{{Instance: 0, Tag: "h", File: c.path}},
			})
			ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
			defer cancel()
			p, err := flbtest.Start(ctx, opts)
			if err != nil {
				t.Fatal(err)
			}
			// Held: flushed, not exited.
			if got := strings.Join(evNames(readProbeLog(t, log)), " "); got != "preregister register init prerun flush" {
				t.Errorf("while holding: %q", got)
			}
			var res *flbtest.Result
			switch how {
			case "stdin":
				res, err = p.Stop()
			case "SIGTERM":
				res, err = p.Signal(syscall.SIGTERM)
			case "SIGUSR1":
				res, err = p.Signal(syscall.SIGUSR1)
			}
			mustOK(t, res, err)
			if res.Released != how {
				t.Errorf("released by %q, want %q", res.Released, how)
			}
			if got := strings.Join(evNames(readProbeLog(t, log)), " "); got != "preregister register init prerun flush preexit exit unregister" {
				t.Errorf("after release: %q", got)
			}
		})
	}
}
