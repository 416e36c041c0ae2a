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
	"github.com/beacongrid/beacongrid/rules"
)

// lineWatch is a Writer that notes when a line containing want is written.
type lineWatch struct {
	mu   sync.Mutex
	buf  strings.Builder
	want string
	seen chan struct{}
	once sync.Once
}

func (w *lineWatch) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.buf.Write(p)
	if strings.Contains(w.buf.String(), w.want) {
		w.once.Do(func() { close(w.seen) })
	}
	return len(p), nil
}

// TestRulesReloadInHost: the built plugin, loaded by the C host as Fluent
// Bit loads it, reloads its rules file while it runs. A beacon flushed
// under rules that allow it raises nothing; once the new file (without the
// allow entry) is in force, the final scoring at exit alerts on that
// tracked flow under the new version.
func TestRulesReloadInHost(t *testing.T) {
	host, so := binaries(t)
	dir := t.TempDir()
	rulesFile := filepath.Join(dir, "rules.yml")
	install := func(doc string) string {
		if err := os.WriteFile(rulesFile+".tmp", []byte(doc), 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(rulesFile+".tmp", rulesFile); err != nil {
			t.Fatal(err)
		}
		return rules.VersionOf([]byte(doc))
	}
	install("version: 1\nallow:\n  - destination: alpha.c2.example\n    reason: red team exercise\n")
	start := time.Now().Add(-20 * time.Hour).Truncate(time.Hour)
	evs := beacon("10.0.0.1", "alpha.c2.example", start, 6)
	var chunks []flbtest.Chunk
	for i := 0; i < len(evs); i += 60 {
		p := filepath.Join(dir, fmt.Sprintf("c-%03d.msgpack", i/60))
		if err := flbtest.WriteChunk(p, evs[i:min(i+60, len(evs))]); err != nil {
			t.Fatal(err)
		}
		chunks = append(chunks, flbtest.Chunk{Tag: "zeek.ssl", File: p})
	}
	spool := filepath.Join(dir, "spool")
	w := &lineWatch{want: "rules reloaded: version", seen: make(chan struct{})}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	p, err := flbtest.Start(ctx, flbtest.HostOptions{
		Host: host, Plugin: so, Hold: true, Stderr: w,
		Instances: []flbtest.Instance{{Name: "beacongrid", Props: map[string]string{
			"spool_dir": spool, "rules_file": rulesFile, "threshold": "0.01"}}},
		Chunks: chunks,
	})
	if err != nil {
		t.Fatal(err)
	}
	v2 := install("version: 1\ngroups:\n  - name: lab\n    sources: [10.0.0.0/24]\n    tags: [lab]\n")
	changed := time.Now()
	select {
	case <-w.seen:
		t.Logf("reload logged %s after the rename", time.Since(changed))
	case <-time.After(2 * time.Second):
		p.Stop()
		t.Fatalf("no reload logged within 2 s:\n%s", w.buf.String())
	}
	res, err := p.Stop()
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(res.Stderr, "rules stopped: version="+v2+" reloads=1 failures=0") {
		t.Fatalf("exit log lacks the rules counters:\n%s", res.Stderr)
	}
	m, _ := filepath.Glob(filepath.Join(spool, "seg-*.jsonl"))
	var alerts []map[string]any
	for _, f := range m {
		b, _ := os.ReadFile(f)
		for _, l := range strings.Split(strings.TrimSpace(string(b)), "\n") {
			if l == "" {
				continue
			}
			var a map[string]any
			if err := json.Unmarshal([]byte(l), &a); err != nil {
				t.Fatal(err)
			}
			alerts = append(alerts, a)
		}
	}
	if len(alerts) != 1 {
		t.Fatalf("%d alerts, want 1 (the tracked flow, after the allow entry went)\n%s", len(alerts), res.Stderr)
	}
	if r := alerts[0]["rule"].(map[string]any); r["version"] != v2 || fmt.Sprint(alerts[0]["tags"]) != "[lab]" {
		t.Fatalf("alert rule %v tags %v, want version %s and [lab]", r, alerts[0]["tags"], v2)
	}
}
