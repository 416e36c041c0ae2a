package instance

import (
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/beacongrid/beacongrid/internal/flbtest"
	"github.com/beacongrid/beacongrid/rules"
)

// installRules writes a rules file the way an operator's tooling should
// (temporary file, then rename) and returns its version.
func installRules(t *testing.T, path, doc string) string {
	t.Helper()
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, []byte(doc), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, path); err != nil {
		t.Fatal(err)
	}
	return rules.VersionOf([]byte(doc))
}

func newRulesInstance(t *testing.T, doc string) (*Instance, string, string) {
	t.Helper()
	dir := t.TempDir()
	path := filepath.Join(dir, "rules.yml")
	installRules(t, path, doc)
	spool := filepath.Join(dir, "spool")
	cfg, err := ParseConfig(MapGetter{"spool_dir": spool, "rules_file": path}, "test")
	if err != nil {
		t.Fatal(err)
	}
	in, err := New(cfg, NewLogger("test"), regularModel{})
	if err != nil {
		t.Fatal(err)
	}
	return in, path, spool
}

// waitVersion waits up to 2 s for the instance to run rules version v and
// returns how long that took.
func waitVersion(t *testing.T, in *Instance, v string) time.Duration {
	t.Helper()
	start := time.Now()
	for in.Stats().Rules.Version != v {
		if time.Since(start) > 2*time.Second {
			t.Fatalf("rules version %s not in force within 2 s (running %s; %+v)", v, in.Stats().Rules.Version, in.Stats().Rules)
		}
		time.Sleep(2 * time.Millisecond)
	}
	return time.Since(start)
}

func beaconChunk(t *testing.T, start time.Time, from, n int) []byte {
	t.Helper()
	var evs []flbtest.Event
	for i := from; i < from+n; i++ {
		ts := start.Add(time.Duration(i) * time.Minute)
		evs = append(evs, flbtest.Event{Time: ts, Record: zeek(ts, "10.0.0.7", "c2.example")})
	}
	return encode(t, evs)
}

// TestRulesReloadWithin2s: a rules file changed on disk is in force in the
// running plugin within 2 s, and lifting an allow entry applies to a flow
// that is already tracked: its next scoring alerts.
func TestRulesReloadWithin2s(t *testing.T) {
	in, path, spool := newRulesInstance(t, "version: 1\nallow:\n  - destination: c2.example\n    reason: lab\n")
	start := time.Now().Add(-6 * time.Hour).Truncate(time.Hour)
	in.Flush(beaconChunk(t, start, 0, 240), "zeek.http")
	if st := in.Stats(); st.Detector.Alerts != 0 || st.Detector.Suppressed == 0 {
		t.Fatalf("allowlisted beacon: %d alerts, %d suppressed", st.Detector.Alerts, st.Detector.Suppressed)
	}
	v2 := installRules(t, path, "version: 1\ngroups:\n  - name: lab\n    sources: [10.0.0.0/24]\n    severity: critical\n    tags: [lab]\n")
	took := waitVersion(t, in, v2)
	t.Logf("rules change in force after %s", took)
	in.Flush(beaconChunk(t, start, 240, 10), "zeek.http")
	st := in.Stats()
	if st.Detector.Alerts != 1 || st.Rules.Reloads != 1 || !st.Rules.LastOK {
		t.Fatalf("after the reload: %d alerts, rules %+v", st.Detector.Alerts, st.Rules)
	}
	// A broken file keeps v2 running and is counted.
	installRules(t, path, "version: 1\ngroups:\n  - name: lab\n    sources: [10.0.0.0/33]\n")
	for deadline := time.Now().Add(2 * time.Second); in.Stats().Rules.Failures == 0; {
		if time.Now().After(deadline) {
			t.Fatal("an invalid rules file was not reported within 2 s")
		}
		time.Sleep(2 * time.Millisecond)
	}
	if st := in.Stats().Rules; st.Version != v2 || st.LastOK {
		t.Fatalf("after a bad file: %+v", st)
	}
	in.Close()
	alerts := spooled(t, spool)
	if len(alerts) != 1 {
		t.Fatalf("%d alerts spooled, want 1", len(alerts))
	}
	rule := alerts[0]["rule"].(map[string]any)
	if rule["version"] != v2 || rule["severity"] != "critical" || alerts[0]["event"].(map[string]any)["severity"].(float64) != 99 {
		t.Fatalf("alert rule %v, event %v: want version %s, severity critical (99)", rule, alerts[0]["event"], v2)
	}
	if tags, _ := alerts[0]["tags"].([]any); len(tags) != 1 || tags[0] != "lab" {
		t.Fatalf("tags %v", alerts[0]["tags"])
	}
}

// TestRulesReloadFieldMapping: an input (tag) mapping added by a reload
// applies from the next chunk on.
func TestRulesReloadFieldMapping(t *testing.T) {
	in, path, _ := newRulesInstance(t, "version: 1\n")
	defer in.Close()
	now := time.Now().Add(-time.Hour)
	chunk := encode(t, []flbtest.Event{{Time: now, Record: map[string]any{"client": "10.0.0.9", "site": "proxied.example"}}})
	in.Flush(chunk, "proxy.squid")
	if st := in.Stats(); st.Cache.Counted != 0 {
		t.Fatalf("unmapped record counted: %+v", st.Cache)
	}
	v := installRules(t, path, "version: 1\ninputs:\n  - tag: proxy.*\n    fields:\n      source: [client]\n      domain: [site]\n")
	waitVersion(t, in, v)
	in.Flush(chunk, "proxy.squid")
	in.Flush(chunk, "other.tag") // not this input's tag: still unmapped
	if st := in.Stats(); st.Cache.Counted != 1 {
		t.Fatalf("counted %d after the mapping was added, want 1", st.Cache.Counted)
	}
}

// TestRulesReloadCountsEveryEventOnce: while flushes run, the rules are
// reloaded many times (two valid versions with different mappings of the
// same keys, and invalid files); every event is counted exactly once.
func TestRulesReloadCountsEveryEventOnce(t *testing.T) {
	docs := []string{
		"version: 1\nfields:\n  source: [client_addr]\n",
		"version: 1\ninputs:\n  - tag: zeek.*\n    fields:\n      domain: [sni]\n",
		"version: 1\nfields:\n  sauce: [x]\n", // invalid: keeps the previous
	}
	in, path, _ := newRulesInstance(t, docs[0])
	defer in.Close()
	start := time.Now().Add(-20 * time.Hour).Truncate(time.Hour)
	const chunks, perChunk = 200, 50
	var wg sync.WaitGroup
	var flushed atomic.Int64
	stop := make(chan struct{})
	wg.Add(1)
	go func() {
		defer wg.Done()
		for i := 0; i < chunks; i++ {
			var evs []flbtest.Event
			for j := 0; j < perChunk; j++ {
				ts := start.Add(time.Duration(i*perChunk+j) * time.Second)
				evs = append(evs, flbtest.Event{Time: ts, Record: zeek(ts, "10.0.1.1", "a.example")})
			}
			data, err := flbtest.EncodeChunk(evs)
			if err != nil {
				panic(err)
			}
			in.Flush(data, "zeek.http")
			flushed.Add(perChunk)
			time.Sleep(time.Millisecond)
		}
		close(stop)
	}()
	reloads := 0
	for i := 1; ; i++ {
		select {
		case <-stop:
			wg.Wait()
			st := in.Stats()
			if st.Detector.Events != chunks*perChunk || st.Cache.Counted != chunks*perChunk {
				t.Fatalf("events %d, counted %d, want %d each", st.Detector.Events, st.Cache.Counted, chunks*perChunk)
			}
			if st.Rules.Reloads < 2 || st.Rules.Failures < 1 || reloads < 3 {
				t.Fatalf("the test did not reload enough: %+v after %d installs", st.Rules, reloads)
			}
			return
		default:
		}
		installRules(t, path, docs[i%len(docs)])
		in.watch.Reload() // an explicit trigger (as the sidecar's), racing the watcher's own
		reloads++
		time.Sleep(10 * time.Millisecond)
	}
}
