package instance

import (
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/beacongrid/beacongrid/internal/flbtest"
)

// readMetrics parses a metrics file: family -> label value (result, or the
// instance) -> value.
func readMetrics(t *testing.T, path string) map[string]map[string]float64 {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	parser := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := parser.TextToMetricFamilies(f)
	if err != nil {
		t.Fatalf("%s is not in the Prometheus text format: %v", path, err)
	}
	out := map[string]map[string]float64{}
	for name, fam := range fams {
		out[name] = map[string]float64{}
		for _, m := range fam.GetMetric() {
			key := ""
			for _, l := range m.GetLabel() {
				if l.GetName() == "result" || key == "" {
					key = l.GetValue()
				}
			}
			switch {
			case m.GetCounter() != nil:
				out[name][key] = m.GetCounter().GetValue()
			case m.GetGauge() != nil:
				out[name][key] = m.GetGauge().GetValue()
			}
		}
	}
	return out
}

// The metrics file is written at start and at close (with the final
// counters), in the Prometheus text format, one value per counter of
// Instance.Stats, labelled with the instance's name.
func TestMetricsFile(t *testing.T) {
	dir := t.TempDir()
	cfg, err := ParseConfig(MapGetter{"spool_dir": dir, "instance_name": "edge1"}, "x")
	if err != nil {
		t.Fatal(err)
	}
	if cfg.MetricsFile != filepath.Join(dir, "metrics.prom") || cfg.MetricsInterval != 15*time.Second {
		t.Fatalf("defaults: %q %v", cfg.MetricsFile, cfg.MetricsInterval)
	}
	in, err := New(cfg, NewLogger("edge1"), regularModel{})
	if err != nil {
		t.Fatal(err)
	}
	m := readMetrics(t, cfg.MetricsFile)
	if v, ok := m["beacongrid_plugin_chunks_total"]["edge1"]; !ok || v != 0 {
		t.Fatalf("at start: chunks %v (present %v)", v, ok)
	}
	now := time.Now()
	evs := zeekHTTP(200, 5, 7, now)
	evs = append(evs, flbtest.Event{Time: now, Record: map[string]any{"ts": float64(now.Add(-72 * time.Hour).Unix()), "id.orig_h": "10.0.0.1", "host": "old.example"}})
	if rc := in.Flush(encode(t, evs), "zeek.http"); rc != FLBOK {
		t.Fatalf("flush: %d", rc)
	}
	st := in.Stats()
	in.Close()
	m = readMetrics(t, cfg.MetricsFile)
	for name, want := range map[string]int64{
		"beacongrid_plugin_chunks_total":      st.Chunks,
		"beacongrid_plugin_records_total":     st.Detector.Events,
		"beacongrid_plugin_cache_flows":       st.Cache.Flows,
		"beacongrid_plugin_cache_flow_bytes":  st.Cache.Bytes,
		"beacongrid_plugin_cache_young_flows": st.Cache.Young,
	} {
		if got, ok := m[name]["edge1"]; !ok || got != float64(want) {
			t.Errorf("%s: %v (present %v), want %d", name, got, ok, want)
		}
	}
	ev := m["beacongrid_plugin_cache_events_total"]
	if ev["counted"] != 200 || ev["too_old"] != 1 || ev["too_new"] != 0 || len(ev) != 5 {
		t.Errorf("events by result: %v (stats %+v)", ev, st.Cache)
	}
	if st.Cache.Flows != 35 || st.Chunks != 1 {
		t.Errorf("stats %+v", st)
	}
}

// metrics_file off writes nothing; a file that cannot be written is logged
// and counted, and the instance runs on.
func TestMetricsFileOffAndUnwritable(t *testing.T) {
	dir := t.TempDir()
	cfg, err := ParseConfig(MapGetter{"spool_dir": dir, "metrics_file": "off"}, "x")
	if err != nil || cfg.MetricsFile != "" {
		t.Fatalf("off: %q, %v", cfg.MetricsFile, err)
	}
	in, err := New(cfg, NewLogger("x"), regularModel{})
	if err != nil {
		t.Fatal(err)
	}
	in.Close()
	if _, err := os.Stat(filepath.Join(dir, "metrics.prom")); !os.IsNotExist(err) {
		t.Fatalf("metrics file with metrics_file off: %v", err)
	}
	cfg, err = ParseConfig(MapGetter{"spool_dir": dir, "metrics_file": filepath.Join(dir, "missing", "m.prom")}, "x")
	if err != nil {
		t.Fatal(err)
	}
	in, err = New(cfg, NewLogger("x"), regularModel{})
	if err != nil {
		t.Fatal(err)
	}
	in.Close()
	if n := in.stats.errors.Load(); n != 2 {
		t.Fatalf("%d write errors counted, want 2 (at start and at close)", n)
	}
	if _, err := ParseConfig(MapGetter{"spool_dir": dir, "metrics_interval": "10ms"}, "x"); err == nil {
		t.Fatal("metrics_interval 10ms accepted")
	}
}

// Between start and close the file is rewritten every metrics_interval with
// the counters of the moment.
func TestMetricsFileRewrittenEveryInterval(t *testing.T) {
	dir := t.TempDir()
	cfg, err := ParseConfig(MapGetter{"spool_dir": dir, "instance_name": "edge2", "metrics_interval": "1s"}, "x")
	if err != nil {
		t.Fatal(err)
	}
	in, err := New(cfg, NewLogger("edge2"), regularModel{})
	if err != nil {
		t.Fatal(err)
	}
	defer in.Close()
	if rc := in.Flush(encode(t, zeekHTTP(10, 2, 3, time.Now())), "zeek.http"); rc != FLBOK {
		t.Fatalf("flush: %d", rc)
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		if m := readMetrics(t, cfg.MetricsFile); m["beacongrid_plugin_chunks_total"]["edge2"] == 1 {
			if got := m["beacongrid_plugin_records_total"]["edge2"]; got != 10 {
				t.Fatalf("records %v, want 10", got)
			}
			return
		}
		if time.Now().After(deadline) {
			t.Fatal("the metrics file did not show the flush within 5 s at metrics_interval 1s")
		}
		time.Sleep(100 * time.Millisecond)
	}
}
