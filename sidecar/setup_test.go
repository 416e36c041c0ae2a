package sidecar

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"strings"
	"testing"
)

func TestSetupUsesDataStreamAndILMWhenSupported(t *testing.T) {
	es := newFakeES(t)
	es.set(func(f *fakeES) { f.modern = true })
	dir := t.TempDir()
	writeAlerts(t, dir, 0, 20)
	cfg := testConfig(dir, es.URL())
	idx, err := NewESIndexer(cfg)
	if err != nil {
		t.Fatal(err)
	}
	d, m := newDelivererWith(t, cfg, openReader(t, dir), idx)
	drain(t, d)
	if mode, ilm := idx.Mode(); mode != ModeDataStream || !ilm {
		t.Fatalf("mode %s ilm %v, want a data stream with ILM", mode, ilm)
	}
	es.mu.Lock()
	policy, ds, tmpl := es.policies[cfg.Index], es.dataStreams[cfg.Index], es.templates[cfg.Index]
	es.mu.Unlock()
	if !ds || len(policy) == 0 {
		t.Fatalf("data stream %v, policy %q", ds, policy)
	}
	if !strings.Contains(string(tmpl), `"data_stream":{}`) || !strings.Contains(string(tmpl), `"lifecycle":{"name":"`+cfg.Index+`"}`) {
		t.Errorf("template lacks data_stream or lifecycle: %s", tmpl)
	}
	if docs, _, _ := es.snapshot(); docs != 20 || value(t, m.Indexed) != 20 {
		t.Fatalf("docs %d indexed %v", docs, value(t, m.Indexed))
	}
	// Re-delivery after a lost checkpoint: "create" answers 409 for every
	// document; they count as delivered duplicates, not failures.
	os.Remove(dir + "/checkpoint.json")
	writeAlerts(t, dir, 0, 20) // a new segment with the same alerts
	d2, m2 := newDelivererWith(t, cfg, openReader(t, dir), idx)
	drain(t, d2)
	if docs, _, _ := es.snapshot(); docs != 20 {
		t.Errorf("%d docs after re-delivery, want 20", docs)
	}
	// Both segments (the first, kept as the newest, and the new one) are
	// read again from the start.
	if dup, failed := value(t, m2.Duplicates), value(t, m2.Failed); dup != 40 || failed != 0 {
		t.Errorf("duplicates %v failed %v, want 40 and 0", dup, failed)
	}
	if _, ok := checkpoint(t, dir); !ok {
		t.Error("re-delivered batch not committed")
	}
}

func TestSetupFallsBackToIndexWithoutDataStreamAPI(t *testing.T) {
	es := newFakeES(t) // answers like the integ-test distribution
	cfg := testConfig(t.TempDir(), es.URL())
	idx, _ := NewESIndexer(cfg)
	if err := idx.Setup(context.Background()); err != nil {
		t.Fatal(err)
	}
	if mode, ilm := idx.Mode(); mode != ModeIndex || ilm {
		t.Errorf("mode %s ilm %v, want a plain index", mode, ilm)
	}
	tmpl, exists := es.template(cfg.Index)
	if !exists || strings.Contains(string(tmpl), "data_stream") || strings.Contains(string(tmpl), "lifecycle") {
		t.Errorf("index exists %v, template %s", exists, tmpl)
	}
	// Asking for a data stream on such a cluster is a clear, permanent error.
	cfg.Target = TargetDataStream
	idx, _ = NewESIndexer(cfg)
	err := idx.Setup(context.Background())
	var re *RequestError
	if err == nil || !strings.Contains(err.Error(), "no data stream API") || !errors.As(err, &re) || !re.Permanent() {
		t.Errorf("Setup with target data-stream = %v", err)
	}
}

func TestSetupKeepsExistingPlainIndex(t *testing.T) {
	es := newFakeES(t)
	cfg := testConfig(t.TempDir(), es.URL())
	es.set(func(f *fakeES) { f.modern = true; f.indices[cfg.Index] = true })
	idx, _ := NewESIndexer(cfg)
	if err := idx.Setup(context.Background()); err != nil {
		t.Fatal(err)
	}
	if mode, _ := idx.Mode(); mode != ModeIndex {
		t.Errorf("mode %s: an existing plain index must be kept", mode)
	}
	cfg.Target = TargetIndex
	es2 := newFakeES(t)
	es2.set(func(f *fakeES) { f.modern = true })
	cfg.Addresses = []string{es2.URL()}
	idx, _ = NewESIndexer(cfg)
	if err := idx.Setup(context.Background()); err != nil {
		t.Fatal(err)
	}
	if mode, _ := idx.Mode(); mode != ModeIndex {
		t.Errorf("target index: mode %s", mode)
	}
	var body map[string]any
	tmpl, _ := es2.template(cfg.Index)
	json.Unmarshal(tmpl, &body)
	if _, ok := body["data_stream"]; ok {
		t.Error("target index installed a data stream template")
	}
}
