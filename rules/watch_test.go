package rules

import (
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

const (
	rulesA = "version: 1\nallow:\n  - destination: a.example\n"
	rulesB = "version: 1\nallow:\n  - destination: b.example\n"
)

func allows(s *Set, dst string) bool {
	_, ok := s.Allowed("10.0.0.1", dst, time.Now())
	return ok
}

// waitFor polls cond for up to d and returns how long it took to hold.
func waitFor(t *testing.T, d time.Duration, what string, cond func() bool) time.Duration {
	t.Helper()
	start := time.Now()
	for !cond() {
		if time.Since(start) > d {
			t.Fatalf("%s: not within %s", what, d)
		}
		time.Sleep(5 * time.Millisecond)
	}
	return time.Since(start)
}

func TestWatcherNotify(t *testing.T) {
	path := filepath.Join(t.TempDir(), "rules.yml")
	writeFile(t, path, rulesA)
	var cur atomic.Pointer[Set]
	w, err := NewWatcher(path, &cur, WatchOptions{Poll: -1})
	if err != nil {
		t.Fatal(err)
	}
	if err := w.Start(); err != nil {
		t.Fatal(err)
	}
	defer w.Stop()
	if !allows(cur.Load(), "a.example") {
		t.Fatal("initial rules not loaded")
	}
	writeFile(t, path, rulesB)
	took := waitFor(t, 2*time.Second, "fsnotify reload", func() bool { return allows(cur.Load(), "b.example") })
	t.Logf("fsnotify reload took %s", took)
	// An invalid file keeps B, reports once, and counts one failure.
	writeFile(t, path, "version: 1\nallow:\n  - source: nope\n")
	waitFor(t, 2*time.Second, "failure counted", func() bool { return w.Stats().Failures == 1 })
	if !allows(cur.Load(), "b.example") || w.Stats().LastOK || !strings.Contains(w.Stats().LastError, "rules.yml:3:13") {
		t.Fatalf("after a bad file: %+v", w.Stats())
	}
	// Editing the file in place (no rename) is seen too.
	if err := os.WriteFile(path, []byte(rulesA), 0o644); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 2*time.Second, "in-place write", func() bool { return allows(cur.Load(), "a.example") })
	if st := w.Stats(); st.Reloads != 2 || st.Failures != 1 || !st.LastOK {
		t.Fatalf("stats %+v, want 2 reloads and 1 failure", st)
	}
}

// TestWatcherPollConfigMap swaps a Kubernetes-style ConfigMap volume
// (rules.yml -> ..data/rules.yml, ..data -> a timestamped directory) with
// notification off: the poll sees the new content.
func TestWatcherPollConfigMap(t *testing.T) {
	testConfigMapSwap(t, WatchOptions{Poll: 100 * time.Millisecond, NoNotify: true})
}

// TestWatcherNotifyConfigMap: the same swap seen by notification alone.
func TestWatcherNotifyConfigMap(t *testing.T) {
	testConfigMapSwap(t, WatchOptions{Poll: -1})
}

func testConfigMapSwap(t *testing.T, opt WatchOptions) {
	dir := t.TempDir()
	mk := func(name, content string) {
		if err := os.MkdirAll(filepath.Join(dir, name), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, name, "rules.yml"), []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	mk("..2026_11_25_01", rulesA)
	if err := os.Symlink("..2026_11_25_01", filepath.Join(dir, "..data")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("..data/rules.yml", filepath.Join(dir, "rules.yml")); err != nil {
		t.Fatal(err)
	}
	var cur atomic.Pointer[Set]
	w, err := NewWatcher(filepath.Join(dir, "rules.yml"), &cur, opt)
	if err != nil {
		t.Fatal(err)
	}
	w.Start()
	defer w.Stop()
	mk("..2026_11_25_02", rulesB)
	if err := os.Symlink("..2026_11_25_02", filepath.Join(dir, "..data_tmp")); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(filepath.Join(dir, "..data_tmp"), filepath.Join(dir, "..data")); err != nil {
		t.Fatal(err)
	}
	os.RemoveAll(filepath.Join(dir, "..2026_11_25_01"))
	waitFor(t, 2*time.Second, "reload after the swap", func() bool { return allows(cur.Load(), "b.example") })
	// The same content polled again is not a reload.
	time.Sleep(300 * time.Millisecond)
	if st := w.Stats(); st.Reloads != 1 || st.Failures != 0 {
		t.Fatalf("stats %+v", st)
	}
}

func TestWatcherMissingFileKeepsRules(t *testing.T) {
	path := filepath.Join(t.TempDir(), "rules.yml")
	writeFile(t, path, rulesA)
	var cur atomic.Pointer[Set]
	w, err := NewWatcher(path, &cur, WatchOptions{Poll: 20 * time.Millisecond, NoNotify: true})
	if err != nil {
		t.Fatal(err)
	}
	w.Start()
	defer w.Stop()
	os.Remove(path)
	waitFor(t, 2*time.Second, "missing file reported", func() bool { return w.Stats().Failures > 0 })
	time.Sleep(100 * time.Millisecond)
	if st := w.Stats(); st.Failures != 1 || !allows(cur.Load(), "a.example") {
		t.Fatalf("a missing file must be reported once and keep the rules: %+v", st)
	}
	writeFile(t, path, rulesB)
	waitFor(t, 2*time.Second, "file back", func() bool { return allows(cur.Load(), "b.example") })
}

func TestWatcherReloadIsExplicit(t *testing.T) {
	path := filepath.Join(t.TempDir(), "rules.yml")
	writeFile(t, path, rulesA)
	var cur atomic.Pointer[Set]
	var heard []Result
	w, err := NewWatcher(path, &cur, WatchOptions{OnResult: func(r Result) { heard = append(heard, r) }})
	if err != nil {
		t.Fatal(err)
	}
	// Not started: no goroutine, Reload still works, Stop is harmless.
	before := cur.Load()
	if r := w.Reload(); r.Changed || r.Err != nil || cur.Load() != before {
		t.Fatalf("reload of the same content: %+v", r)
	}
	writeFile(t, path, rulesB)
	r := w.Reload()
	if !r.Changed || r.Old != before || r.New != cur.Load() || !allows(r.New, "b.example") {
		t.Fatalf("reload: %+v", r)
	}
	if len(heard) != 2 {
		t.Fatalf("OnResult heard %d results, want 2", len(heard))
	}
	w.Stop()
	w.Stop()
	if _, err := NewWatcher(filepath.Join(t.TempDir(), "none.yml"), &cur, WatchOptions{}); err == nil {
		t.Fatal("a missing initial file was accepted")
	}
	writeFile(t, path, "version: 1\nthreshold: 7\n")
	if _, err := NewWatcher(path, new(atomic.Pointer[Set]), WatchOptions{}); err == nil {
		t.Fatal("an invalid initial file was accepted")
	}
}

func TestWatcherStopEndsGoroutine(t *testing.T) {
	path := filepath.Join(t.TempDir(), "rules.yml")
	writeFile(t, path, rulesA)
	base := runtime.NumGoroutine()
	var cur atomic.Pointer[Set]
	w, err := NewWatcher(path, &cur, WatchOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if runtime.NumGoroutine() != base {
		t.Fatal("NewWatcher started a goroutine")
	}
	w.Start()
	w.Stop()
	waitFor(t, time.Second, "goroutines ended", func() bool { return runtime.NumGoroutine() <= base })
}

// A panic in a reload (here the caller's OnResult) fails that reload and is
// counted; it never escapes the watcher, which runs inside Fluent Bit.
func TestWatcherReloadPanicIsContained(t *testing.T) {
	path := filepath.Join(t.TempDir(), "rules.yml")
	writeFile(t, path, rulesA)
	var cur atomic.Pointer[Set]
	w, err := NewWatcher(path, &cur, WatchOptions{OnResult: func(Result) { panic("listener bug") }})
	if err != nil {
		t.Fatal(err)
	}
	before := cur.Load()
	writeFile(t, path, rulesB)
	r := w.Reload()
	if r.Err == nil || !strings.Contains(r.Err.Error(), "panic: listener bug") {
		t.Fatalf("reload with a panicking listener: err %v", r.Err)
	}
	// The new rules were valid and swapped in before the listener ran.
	if r.New != cur.Load() || r.New == before || !allows(r.New, "b.example") || !r.Changed {
		t.Fatalf("rules in force after the contained panic: %+v", r)
	}
	st := w.Stats()
	if st.Failures != 1 || st.LastOK || !strings.Contains(st.LastError, "listener bug") {
		t.Fatalf("stats after the contained panic: %+v", st)
	}
}
