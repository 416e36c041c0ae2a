package instance

import (
	"sync/atomic"

	"github.com/prometheus/client_golang/prometheus"
)

// metricsWriter writes the instance's counters (Instance.Stats) in the
// Prometheus text format to a file, every interval and once more at close,
// from a goroutine it owns: the file is for node_exporter's textfile
// collector (or any agent that reads *.prom files), so the plugin opens no
// port inside Fluent Bit. The file is replaced atomically
// (prometheus.WriteToTextfile: a temporary file, then a rename), so a
// reader never sees half of it. Nothing of it runs on the flush path: the
// counters are read when the file is written.
type metricsWriter struct {
	path  string
	reg   *prometheus.Registry
	log   *Logger
	timer *periodic

	writes, errors atomic.Int64
}

// openMetrics starts the writer for in; nil when no metrics file is
// configured.
func openMetrics(in *Instance) *metricsWriter {
	if in.cfg.MetricsFile == "" {
		return nil
	}
	reg := prometheus.NewRegistry()
	reg.MustRegister(statsCollector{in})
	w := &metricsWriter{path: in.cfg.MetricsFile, reg: reg, log: in.log}
	w.write()
	w.timer = startPeriodic(in.cfg.MetricsInterval, w.write)
	return w
}

func (w *metricsWriter) write() {
	defer guard(w.log, "metrics file", &w.errors)
	if err := prometheus.WriteToTextfile(w.path, w.reg); err != nil {
		if w.errors.Add(1) <= 10 {
			w.log.Warn("metrics %s: %v", w.path, err)
		}
		return
	}
	w.writes.Add(1)
}

// close stops the writer and writes the file a last time, with the final
// counters. nil-safe.
func (w *metricsWriter) close() {
	if w == nil {
		return
	}
	w.timer.halt()
	w.write()
}

// statsCollector turns Instance.Stats into metrics named beacongrid_plugin_*,
// labelled with the instance's name, when the registry is gathered.
type statsCollector struct{ in *Instance }

type statMetric struct {
	desc  *prometheus.Desc
	kind  prometheus.ValueType
	value func(*Stats) float64
	label string // the value of the metric's one variable label, if it has one
}

var statMetrics = func() []statMetric {
	var ms []statMetric
	add := func(name, help string, kind prometheus.ValueType, v func(*Stats) int64) {
		ms = append(ms, statMetric{
			desc: prometheus.NewDesc("beacongrid_plugin_"+name, help, []string{"instance"}, nil),
			kind: kind, value: func(s *Stats) float64 { return float64(v(s)) },
		})
	}
	counter := func(name, help string, v func(*Stats) int64) { add(name, help, prometheus.CounterValue, v) }
	gauge := func(name, help string, v func(*Stats) int64) { add(name, help, prometheus.GaugeValue, v) }
	events := prometheus.NewDesc("beacongrid_plugin_cache_events_total",
		"Events offered to the edge state, by result (counted; too_old: before the 24 h window; too_new: too far past the wall clock; refused: the flow could not be tracked; bad_input: empty or too long key).",
		[]string{"instance", "result"}, nil)
	for _, r := range []struct {
		label string
		v     func(*Stats) int64
	}{
		{"counted", func(s *Stats) int64 { return s.Cache.Counted }},
		{"too_old", func(s *Stats) int64 { return s.Cache.TooOld }},
		{"too_new", func(s *Stats) int64 { return s.Cache.TooNew }},
		{"refused", func(s *Stats) int64 { return s.Cache.Refused }},
		{"bad_input", func(s *Stats) int64 { return s.Cache.BadInput }},
	} {
		v := r.v
		ms = append(ms, statMetric{desc: events, kind: prometheus.CounterValue, label: r.label,
			value: func(s *Stats) float64 { return float64(v(s)) }})
	}

	counter("chunks_total", "Chunks flushed by Fluent Bit.", func(s *Stats) int64 { return s.Chunks })
	counter("bad_chunks_total", "Chunks cut short by malformed msgpack (the events before the fault were counted).", func(s *Stats) int64 { return s.BadChunks })
	counter("bad_events_total", "Well-formed events of the wrong shape, skipped.", func(s *Stats) int64 { return s.BadEvents })
	counter("bad_fields_total", "Mapped fields of the wrong type.", func(s *Stats) int64 { return s.BadFields })
	counter("records_total", "Records offered to the detector.", func(s *Stats) int64 { return s.Detector.Events })
	counter("records_skipped_total", "Records that make no flow (no source or destination), or without a usable time.", func(s *Stats) int64 { return s.Detector.Skipped + s.Detector.NoTime })
	counter("scorings_total", "Flows scored by the model.", func(s *Stats) int64 { return s.Detector.Scored })
	counter("alerts_total", "Alerts raised.", func(s *Stats) int64 { return s.Detector.Alerts })
	counter("alerts_suppressed_total", "Scorings that would have alerted, silenced by an allow entry or a suppress rule.", func(s *Stats) int64 { return s.Detector.Suppressed })
	counter("alerts_wide_total", "Scorings that would have alerted on a service most hosts use, silenced.", func(s *Stats) int64 { return s.Detector.Wide })
	counter("alerts_spooled_total", "Alerts written to the spool.", func(s *Stats) int64 { return s.AlertsSpooled })
	counter("alerts_dropped_total", "Alerts lost because the memory buffer overflowed while the spool was unwritable.", func(s *Stats) int64 { return s.AlertsDropped })
	counter("spool_errors_total", "Failed spool writes.", func(s *Stats) int64 { return s.SpoolErrors })
	counter("rules_reloads_total", "Rules reloads that put a new version in force.", func(s *Stats) int64 { return s.Rules.Reloads })
	counter("rules_reload_failures_total", "Rules reloads refused (unreadable or invalid file).", func(s *Stats) int64 { return s.Rules.Failures })

	gauge("cache_flows", "Flows tracked (young and admitted).", func(s *Stats) int64 { return s.Cache.Flows })
	gauge("cache_young_flows", "Flows in the nursery, not yet active in enough minutes to be offered to ristretto.", func(s *Stats) int64 { return s.Cache.Young })
	gauge("cache_flow_bytes", "Bytes charged to tracked flows.", func(s *Stats) int64 { return s.Cache.Bytes })
	gauge("cache_shared_bytes", "Bytes of the sources and destinations the flows share.", func(s *Stats) int64 { return s.Cache.SharedBytes })
	gauge("cache_max_cost_bytes", "ristretto's bound on the bytes of admitted flows.", func(s *Stats) int64 { return s.Cache.MaxCost })
	gauge("cache_sources", "Sources tracked.", func(s *Stats) int64 { return s.Cache.Sources })
	counter("cache_admissions_refused_total", "Admissions ristretto refused (the flow is offered again on its next event).", func(s *Stats) int64 { return s.Cache.Rejections })
	counter("cache_sets_dropped_total", "Sets ristretto dropped for a full buffer (the flow is offered again).", func(s *Stats) int64 { return s.Cache.DroppedSets })
	counter("cache_evictions_total", "Admitted flows evicted by ristretto.", func(s *Stats) int64 { return s.Cache.Evictions })
	counter("cache_requeued_total", "Evicted flows kept pending because they were still active.", func(s *Stats) int64 { return s.Cache.Requeued })
	counter("cache_pending_dropped_total", "Refused flows dropped from the pending table (their counts are gone).", func(s *Stats) int64 { return s.Cache.Dropped })
	counter("cache_young_evicted_total", "Young flows evicted from a full nursery (their counts are gone).", func(s *Stats) int64 { return s.Cache.YoungEvicted })
	counter("cache_promoted_total", "Young flows offered to ristretto.", func(s *Stats) int64 { return s.Cache.Promoted })
	counter("cache_hash_conflicts_total", "Events whose flow hash matched another flow's (refused).", func(s *Stats) int64 { return s.Cache.HashConflict })
	gauge("cache_restored_flows", "Flows restored from the state file at start.", func(s *Stats) int64 { return s.Cache.Restored })
	return ms
}()

// Describe implements prometheus.Collector.
func (c statsCollector) Describe(ch chan<- *prometheus.Desc) {
	seen := map[*prometheus.Desc]bool{}
	for _, m := range statMetrics {
		if !seen[m.desc] {
			seen[m.desc] = true
			ch <- m.desc
		}
	}
}

// Collect implements prometheus.Collector.
func (c statsCollector) Collect(ch chan<- prometheus.Metric) {
	s := c.in.Stats()
	for _, m := range statMetrics {
		labels := []string{c.in.cfg.Name}
		if m.label != "" {
			labels = append(labels, m.label)
		}
		ch <- prometheus.MustNewConstMetric(m.desc, m.kind, m.value(&s), labels...)
	}
}
