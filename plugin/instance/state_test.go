package instance

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/beacongrid/beacongrid/cache"
	"github.com/beacongrid/beacongrid/internal/flbtest"
)

func flowCounts(in *Instance) map[string]int {
	out := map[string]int{}
	var v cache.View
	in.store.Range(func(f *cache.Flow) bool {
		in.store.Snapshot(f, &v)
		n := 0
		for _, c := range v.Counts {
			n += int(c)
		}
		out[v.Src+" "+v.Dst] = n
		return true
	})
	return out
}

// A restart keeps every count: Close writes the state, New restores it.
func TestStateSurvivesRestart(t *testing.T) {
	dir := t.TempDir()
	cfg, err := ParseConfig(MapGetter{"spool_dir": dir}, "test")
	if err != nil {
		t.Fatal(err)
	}
	if cfg.StateFile != filepath.Join(dir, "state.bgs") || cfg.StateInterval != 5*time.Minute {
		t.Fatalf("defaults: %q %v", cfg.StateFile, cfg.StateInterval)
	}
	in, err := New(cfg, NewLogger("test"), regularModel{})
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now().Add(-3 * time.Hour).Truncate(time.Minute)
	var evs []flbtest.Event
	for i := 0; i < 90; i++ {
		ts := start.Add(time.Duration(i) * time.Minute)
		evs = append(evs, flbtest.Event{Time: ts, Record: zeek(ts, "10.0.0.7", "c2.example")})
		if i%3 == 0 {
			evs = append(evs, flbtest.Event{Time: ts, Record: zeek(ts, "10.0.0.8", "cdn.example")})
		}
	}
	in.Flush(encode(t, evs), "zeek.http")
	in.store.Wait()
	before := flowCounts(in)
	in.Close()
	if len(before) != 2 || before["10.0.0.7 c2.example"] != 90 || before["10.0.0.8 cdn.example"] != 30 {
		t.Fatalf("before restart: %v", before)
	}

	in2, err := New(cfg, NewLogger("test"), regularModel{})
	if err != nil {
		t.Fatal(err)
	}
	defer in2.Close()
	after := flowCounts(in2)
	if len(after) != 2 || after["10.0.0.7 c2.example"] != 90 || after["10.0.0.8 cdn.example"] != 30 {
		t.Fatalf("after restart: %v, want %v", after, before)
	}
	// Events after the restart add to the restored counts.
	ts := start.Add(91 * time.Minute)
	in2.Flush(encode(t, []flbtest.Event{{Time: ts, Record: zeek(ts, "10.0.0.7", "c2.example")}}), "zeek.http")
	if n := flowCounts(in2)["10.0.0.7 c2.example"]; n != 91 {
		t.Fatalf("after one more event: %d, want 91", n)
	}
}

// A corrupt state file is refused, moved aside, and the instance starts
// empty; the next Close writes a good file again.
func TestStateCorruptStartsEmpty(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "state.bgs")
	if err := os.WriteFile(path, []byte("BGSTATE\n\x01\x00\x00\x00garbage-garbage"), 0o644); err != nil {
		t.Fatal(err)
	}
	cfg, err := ParseConfig(MapGetter{"spool_dir": dir, "state_interval": "10s"}, "test")
	if err != nil {
		t.Fatal(err)
	}
	in, err := New(cfg, NewLogger("test"), regularModel{})
	if err != nil {
		t.Fatal(err)
	}
	if n := in.Stats().Cache.Flows; n != 0 {
		t.Fatalf("%d flows from a corrupt file", n)
	}
	if _, err := os.Stat(path + ".refused"); err != nil {
		t.Fatalf("corrupt file not moved aside: %v", err)
	}
	in.Close()
	s, err := cache.New(cache.Config{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if _, err := s.Restore(path); err != nil {
		t.Fatalf("the file written at Close is not readable: %v", err)
	}
}

func TestStateConfig(t *testing.T) {
	f := func(g MapGetter, file string, wantErr string) {
		t.Helper()
		c, err := ParseConfig(g, "x")
		if wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), wantErr) {
				t.Fatalf("%v: error %v, want %q", g, err, wantErr)
			}
			return
		}
		if err != nil || c.StateFile != file {
			t.Fatalf("%v: %q, %v; want %q", g, c.StateFile, err, file)
		}
	}
	f(MapGetter{"spool_dir": "/s"}, "/s/state.bgs", "")
	f(MapGetter{"spool_dir": "/s", "state_file": "off"}, "", "")
	f(MapGetter{"spool_dir": "/s", "state_file": "/var/lib/bg/state"}, "/var/lib/bg/state", "")
	f(MapGetter{"spool_dir": "/s", "state_interval": "1s"}, "", "state_interval")
	f(MapGetter{"spool_dir": "/s", "state_interval": "soon"}, "", "state_interval")
}
