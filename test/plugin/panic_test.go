package plugin_test

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/beacongrid/beacongrid/internal/flbtest"
)

var (
	debugOnce sync.Once
	debugSO   string
	debugErr  error

	tempMu   sync.Mutex
	tempDirs []string
)

// tempDir makes a directory that lives as long as the test binary (for
// plugins built once and shared by tests); TestMain removes it.
func tempDir() (string, error) {
	d, err := os.MkdirTemp("", "beacongrid-plugin-test-")
	if err == nil {
		tempMu.Lock()
		tempDirs = append(tempDirs, d)
		tempMu.Unlock()
	}
	return d, err
}

func TestMain(m *testing.M) {
	code := m.Run()
	for _, d := range tempDirs {
		os.RemoveAll(d)
	}
	os.Exit(code)
}

// debugPlugin builds the plugin with -tags beacongrid_debug (fault
// injection through the debug_panic property), once per test binary.
func debugPlugin(t *testing.T) string {
	t.Helper()
	debugOnce.Do(func() {
		var dir string
		if dir, debugErr = tempDir(); debugErr == nil {
			debugSO, debugErr = flbtest.BuildPluginFlagsTo(dir, "./plugin", "out_beacongrid_debug.so", "-tags=beacongrid_debug")
		}
	})
	if debugErr != nil {
		t.Fatal(debugErr)
	}
	return debugSO
}

func run(t *testing.T, opts flbtest.HostOptions) (*flbtest.Result, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	res, err := flbtest.Run(ctx, opts)
	if res == nil {
		t.Fatalf("host did not run: %v", err)
	}
	return res, err
}

// A panic inside a flush, on any worker thread, is recovered, logged under
// the instance's name and turned into FLB_ERROR for that chunk only: the
// process lives on, the other chunks of that instance and of the other
// instance are counted, and the exit sequence runs.
func TestFlushPanicBecomesError(t *testing.T) {
	host, so := flbtest.BuildHost(t), debugPlugin(t)
	dir := t.TempDir()
	start := time.Now().Add(-3 * time.Hour).Truncate(time.Hour)
	good := filepath.Join(dir, "good.msgpack")
	if err := flbtest.WriteChunk(good, beacon("10.0.0.1", "alpha.example", start, 1)); err != nil {
		t.Fatal(err)
	}
	var chunks []flbtest.Chunk
	for i := 0; i < 8; i++ {
		chunks = append(chunks, flbtest.Chunk{Instance: 0, Tag: "zeek.ssl", File: good},
			flbtest.Chunk{Instance: 0, Tag: "debug.panic", File: good},
			flbtest.Chunk{Instance: 1, Tag: "debug.panic", File: good})
	}
	res, err := run(t, flbtest.HostOptions{
		Host: host, Plugin: so,
		Instances: []flbtest.Instance{
			{Name: "beacongrid", Props: map[string]string{"spool_dir": filepath.Join(dir, "a"), "instance_name": "a", "debug_panic": "flush", "workers": "2"}},
			{Name: "beacongrid", Props: map[string]string{"spool_dir": filepath.Join(dir, "b"), "instance_name": "b"}},
		},
		Chunks: chunks,
	})
	if err != nil {
		t.Fatalf("%v\n%s", err, res.Stderr)
	}
	if res.RCOK != 16 || res.RCError != 8 || res.RCOther != 0 || res.RCRetry != 0 {
		t.Fatalf("rc ok=%d error=%d other=%d retry=%d, want 16 ok and 8 errors\n%s", res.RCOK, res.RCError, res.RCOther, res.RCRetry, res.Stderr)
	}
	if n := strings.Count(res.Stderr, "[error] [output:beacongrid:a] panic in FLBPluginFlushCtx recovered (returning 0): debug_panic: flush"); n != 8 {
		t.Fatalf("%d panics logged for instance a, want 8:\n%s", n, res.Stderr)
	}
	if strings.Contains(res.Stderr, "[output:beacongrid:b] panic") {
		t.Fatalf("instance b panicked:\n%s", res.Stderr)
	}
	for _, line := range []string{"[output:beacongrid:a] stopped: chunks=8 events=480 ", "[output:beacongrid:b] stopped: chunks=8 events=480 "} {
		if !strings.Contains(res.Stderr, line) {
			t.Fatalf("missing %q:\n%s", line, res.Stderr)
		}
	}
	if len(res.Exits) != 2 || !res.Unregistered || !res.Done {
		t.Fatalf("exit sequence incomplete: exits %v unregistered %v done %v", res.Exits, res.Unregistered, res.Done)
	}
}

// A panic in Init fails start-up cleanly (rc 0, Fluent Bit refuses to
// start) and one in Exit or Register is recovered too: the host always
// reaches its orderly end instead of dying with the Go runtime.
func TestPanicOutsideFlush(t *testing.T) {
	host, so := flbtest.BuildHost(t), debugPlugin(t)
	dir := t.TempDir()
	inst := func(points string) []flbtest.Instance {
		return []flbtest.Instance{{Name: "beacongrid", Props: map[string]string{"spool_dir": dir, "instance_name": "p", "debug_panic": points}}}
	}

	res, err := run(t, flbtest.HostOptions{Host: host, Plugin: so, Instances: inst("init")})
	if err == nil || res.ExitCode != 1 || !res.Done || len(res.Inits) != 1 || res.Inits[0].RC != 0 {
		t.Fatalf("init panic: err %v exit %d done %v inits %v\n%s", err, res.ExitCode, res.Done, res.Inits, res.Stderr)
	}
	if !strings.Contains(res.Stderr, "[error] [output:beacongrid:p] panic in FLBPluginInit recovered (returning 0): debug_panic: init") ||
		!strings.Contains(res.Stderr, "[output:beacongrid:p] stopped:") {
		t.Fatalf("init panic not logged, or the half-started instance not closed:\n%s", res.Stderr)
	}

	res, err = run(t, flbtest.HostOptions{Host: host, Plugin: so, Instances: inst("exit")})
	if err != nil || len(res.Exits) != 1 || !res.Unregistered ||
		!strings.Contains(res.Stderr, "[error] [output:beacongrid:p] panic in FLBPluginExitCtx recovered (returning 0): debug_panic: exit") {
		t.Fatalf("exit panic: %v %v\n%s", err, res.Exits, res.Stderr)
	}

	res, err = run(t, flbtest.HostOptions{Host: host, Plugin: so, Instances: inst(""), Env: []string{"BEACONGRID_DEBUG_PANIC=register"}})
	if err == nil || res.ExitCode != 1 || !strings.Contains(res.Stderr, "FLBPluginRegister returned -1") ||
		!strings.Contains(res.Stderr, "[error] [output:beacongrid] panic in FLBPluginRegister recovered (returning -1): debug_panic: register") {
		t.Fatalf("register panic: err %v exit %d\n%s", err, res.ExitCode, res.Stderr)
	}
}

// The production build has no fault injection: the same properties and
// tag flush normally.
func TestProductionBuildIgnoresDebugPanic(t *testing.T) {
	host, so := binaries(t)
	dir := t.TempDir()
	good := filepath.Join(dir, "good.msgpack")
	if err := flbtest.WriteChunk(good, beacon("10.0.0.1", "alpha.example", time.Now().Add(-2*time.Hour), 1)); err != nil {
		t.Fatal(err)
	}
	res, err := run(t, flbtest.HostOptions{
		Host: host, Plugin: so, Env: []string{"BEACONGRID_DEBUG_PANIC=register"},
		Instances: []flbtest.Instance{{Name: "beacongrid", Props: map[string]string{"spool_dir": dir, "debug_panic": "init,flush,exit"}}},
		Chunks:    []flbtest.Chunk{{Instance: 0, Tag: "debug.panic", File: good}},
	})
	if err != nil || res.RCOK != 1 || strings.Contains(res.Stderr, "panic") {
		t.Fatalf("production build: %v ok=%d\n%s", err, res.RCOK, res.Stderr)
	}
}
