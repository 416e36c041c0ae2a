// Package plugin_test drives the built plugin (bin/out_beacongrid.so)
// through the C test host, as Fluent Bit would: several [OUTPUT] instances,
// concurrent workers, malformed chunks. It uses the binaries in
// $BEACONGRID_BIN when set (make does), else builds them.
package plugin_test

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/beacongrid/beacongrid/internal/flbtest"
)

var (
	binOnce        sync.Once
	binHost, binSO string
	binErr         error
)

// binaries returns the host and the plugin: $BEACONGRID_BIN's when set (make
// does), else built once per test binary.
func binaries(t *testing.T) (host, so string) {
	t.Helper()
	if bin := os.Getenv("BEACONGRID_BIN"); bin != "" {
		return filepath.Join(bin, "flbhost"), filepath.Join(bin, "out_beacongrid.so")
	}
	binOnce.Do(func() {
		var dir string
		if dir, binErr = tempDir(); binErr != nil {
			return
		}
		if binHost, binErr = flbtest.BuildHostTo(dir); binErr == nil {
			binSO, binErr = flbtest.BuildPluginTo(dir, "./plugin", "out_beacongrid.so")
		}
	})
	if binErr != nil {
		t.Fatal(binErr)
	}
	return binHost, binSO
}

// beacon returns events of a 60 s beacon from src to dst over hours.
func beacon(src, dst string, start time.Time, hours int) []flbtest.Event {
	var evs []flbtest.Event
	for i := 0; i < hours*60; i++ {
		ts := start.Add(time.Duration(i) * time.Minute)
		evs = append(evs, flbtest.Event{Time: ts, Record: map[string]any{
			"ts": float64(ts.Unix()), "id.orig_h": src, "id.orig_p": 40000 + i%1000, "id.resp_h": "198.51.100.20",
			"id.resp_p": 443, "server_name": dst, "version": "TLSv12", "established": true,
		}})
	}
	return evs
}

func alertsIn(t *testing.T, dir string) []string {
	t.Helper()
	var out []string
	m, _ := filepath.Glob(filepath.Join(dir, "seg-*.jsonl"))
	for _, p := range m {
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		for _, l := range strings.Split(strings.TrimSpace(string(b)), "\n") {
			if l == "" {
				continue
			}
			var a struct {
				Source      struct{ IP string }     `json:"source"`
				Destination struct{ Domain string } `json:"destination"`
			}
			if err := json.Unmarshal([]byte(l), &a); err != nil {
				t.Fatalf("%s: %v", p, err)
			}
			out = append(out, a.Source.IP+"->"+a.Destination.Domain)
		}
	}
	return out
}

// Two [OUTPUT] sections of the plugin in one process keep separate state,
// and an instance flushed by two workers at once counts every event.
func TestInstancesAreSeparate(t *testing.T) {
	host, so := binaries(t)
	dir := t.TempDir()
	start := time.Now().Add(-20 * time.Hour).Truncate(time.Hour)
	var chunks []flbtest.Chunk
	write := func(inst int, name string, evs []flbtest.Event) {
		for i := 0; i < len(evs); i += 60 {
			p := filepath.Join(dir, fmt.Sprintf("%s-%03d.msgpack", name, i/60))
			if err := flbtest.WriteChunk(p, evs[i:min(i+60, len(evs))]); err != nil {
				t.Fatal(err)
			}
			chunks = append(chunks, flbtest.Chunk{Instance: inst, Tag: "zeek.ssl", File: p})
		}
	}
	write(0, "a", beacon("10.0.0.1", "alpha.c2.example", start, 6))
	write(1, "b", beacon("10.0.0.2", "bravo.c2.example", start, 6))
	spoolA, spoolB := filepath.Join(dir, "spool-a"), filepath.Join(dir, "spool-b")
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	res, err := flbtest.Run(ctx, flbtest.HostOptions{
		Host: host, Plugin: so,
		Instances: []flbtest.Instance{
			{Name: "beacongrid", Props: map[string]string{"spool_dir": spoolA, "instance_name": "a", "threshold": "0.01", "workers": "2"}},
			{Name: "beacongrid", Props: map[string]string{"spool_dir": spoolB, "instance_name": "b", "threshold": "0.01"}},
		},
		Chunks: chunks,
	})
	if err != nil {
		t.Fatal(err)
	}
	if res.RCOK != int64(len(chunks)) {
		t.Fatalf("ok=%d of %d flushes\n%s", res.RCOK, len(chunks), res.Stderr)
	}
	// Each instance alerts on its own flow only (how often it re-alerts as
	// the score rises is the detector's and the model's business).
	own := func(alerts []string, flow string) bool {
		for _, a := range alerts {
			if a != flow {
				return false
			}
		}
		return len(alerts) > 0
	}
	a, b := alertsIn(t, spoolA), alertsIn(t, spoolB)
	if !own(a, "10.0.0.1->alpha.c2.example") || !own(b, "10.0.0.2->bravo.c2.example") {
		t.Fatalf("instance a alerted %v, b alerted %v: each must see only its own flow\n%s", a, b, res.Stderr)
	}
	for _, name := range []string{"a", "b"} {
		if !strings.Contains(res.Stderr, "[output:beacongrid:"+name+"] stopped: chunks=6 events=360 ") {
			t.Fatalf("instance %s did not count exactly its 360 events:\n%s", name, res.Stderr)
		}
	}
}

// A broken configuration fails Init cleanly (Fluent Bit refuses to start)
// instead of crashing the process.
func TestBadConfigFailsInit(t *testing.T) {
	host, so := binaries(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	res, err := flbtest.Run(ctx, flbtest.HostOptions{
		Host: host, Plugin: so,
		Instances: []flbtest.Instance{{Name: "beacongrid", Props: map[string]string{"threshold": "2"}}},
	})
	if err == nil {
		t.Fatal("Init accepted a configuration without spool_dir and with threshold 2")
	}
	if res == nil || !strings.Contains(res.Stderr, "spool_dir: required") || !strings.Contains(res.Stderr, "threshold") {
		t.Fatalf("the error does not say what is wrong: %v", err)
	}
}
