package sidecar

import (
	"github.com/beacongrid/beacongrid/spool"
	"github.com/prometheus/client_golang/prometheus"
)

// Metrics are the sidecar's Prometheus metrics, all named
// beacongrid_sidecar_*. Counters count spool lines (alerts), not requests,
// unless the name says otherwise.
type Metrics struct {
	Read         prometheus.Counter     // lines read from the spool
	Indexed      prometheus.Counter     // documents Elasticsearch acknowledged
	Retried      prometheus.Counter     // documents sent again after a transient failure
	Failed       *prometheus.CounterVec // failed document attempts; kind=transient|permanent
	DeadLettered *prometheus.CounterVec // lines written to the dead-letter file; reason=malformed|rejected
	Committed    prometheus.Counter     // lines whose spool position was committed
	Errors       *prometheus.CounterVec // op=spool_read|commit|dead_letter|setup
	TornTails    prometheus.Counter     // torn spool tails skipped
	Latency      prometheus.Histogram   // seconds per bulk request, failed ones included
	LastSuccess  prometheus.Gauge       // unix time of the last fully delivered batch
	Duplicates   prometheus.Counter     // data stream creates answered 409: indexed by an earlier delivery
	Enriched     *prometheus.CounterVec // alerts given context; kind=host|threat|sighting
	Reloads      *prometheus.CounterVec // source=inventory|ioc, result=success|failure
	Assets       prometheus.Gauge       // inventory entries in force
	Indicators   prometheus.Gauge       // IOC indicators in force
	InFlight     prometheus.Gauge       // bulk requests in flight
}

// NewMetrics creates the metrics and registers them, and a gauge of the
// bytes held in spoolDir's segment files (computed at scrape time), on reg.
func NewMetrics(reg prometheus.Registerer, spoolDir string) (*Metrics, error) {
	const ns, sub = "beacongrid", "sidecar"
	counter := func(name, help string) prometheus.Counter {
		return prometheus.NewCounter(prometheus.CounterOpts{Namespace: ns, Subsystem: sub, Name: name, Help: help})
	}
	vec := func(name, help, label string) *prometheus.CounterVec {
		return prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Subsystem: sub, Name: name, Help: help}, []string{label})
	}
	gauge := func(name, help string) prometheus.Gauge {
		return prometheus.NewGauge(prometheus.GaugeOpts{Namespace: ns, Subsystem: sub, Name: name, Help: help})
	}
	m := &Metrics{
		Read:         counter("alerts_read_total", "Alert lines read from the spool."),
		Indexed:      counter("alerts_indexed_total", "Alerts acknowledged by Elasticsearch."),
		Retried:      counter("alerts_retried_total", "Alerts sent again after a transient failure."),
		Failed:       vec("alerts_failed_total", "Failed alert index attempts, by kind (transient: retried; permanent: dead-lettered).", "kind"),
		DeadLettered: vec("alerts_dead_lettered_total", "Spool lines written to the dead-letter file, by reason.", "reason"),
		Committed:    counter("alerts_committed_total", "Spool lines whose position was committed."),
		Errors:       vec("errors_total", "Errors outside of indexing, by operation.", "op"),
		TornTails:    counter("spool_torn_tails_total", "Torn spool segment tails skipped."),
		Latency: prometheus.NewHistogram(prometheus.HistogramOpts{
			Namespace: ns, Subsystem: sub, Name: "index_latency_seconds",
			Help:    "Duration of bulk requests to Elasticsearch, failed ones included.",
			Buckets: prometheus.ExponentialBuckets(0.005, 2, 13),
		}),
		Duplicates: counter("alerts_duplicate_total", "Alerts Elasticsearch already held (data stream create answered 409): an earlier delivery indexed them."),
		Enriched:   vec("alerts_enriched_total", "Alerts given context, by kind (host: inventory; threat: IOC match; sighting: first-seen and prevalence).", "kind"),
		Reloads: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Subsystem: sub, Name: "reloads_total",
			Help: "Reloads of enrichment sources after a file changed, by source and result."}, []string{"source", "result"}),
		Assets:     gauge("inventory_assets", "Asset inventory entries in force."),
		Indicators: gauge("ioc_indicators", "Threat-intelligence indicators in force."),
		InFlight:   gauge("bulk_in_flight", "Bulk requests in flight."),
		LastSuccess: prometheus.NewGauge(prometheus.GaugeOpts{
			Namespace: ns, Subsystem: sub, Name: "last_success_timestamp_seconds",
			Help: "Unix time of the last batch delivered and committed.",
		}),
	}
	for _, l := range []string{"transient", "permanent"} {
		m.Failed.WithLabelValues(l)
	}
	for _, l := range []string{"host", "threat", "sighting"} {
		m.Enriched.WithLabelValues(l)
	}
	for _, l := range []string{ReasonMalformed, ReasonRejected} {
		m.DeadLettered.WithLabelValues(l)
	}
	backlog := prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Namespace: ns, Subsystem: sub, Name: "spool_backlog_bytes",
		Help: "Bytes held in spool segment files, delivered or not (segments are deleted once wholly delivered).",
	}, func() float64 {
		n, err := spool.Backlog(spoolDir)
		if err != nil {
			return -1
		}
		return float64(n)
	})
	full := prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Namespace: ns, Subsystem: sub, Name: "spool_full",
		Help: "1 while the plugin finds the spool backlog full (it then holds alerts in memory, then drops the oldest), else 0.",
	}, func() float64 {
		if _, full := spool.Full(spoolDir); full {
			return 1
		}
		return 0
	})
	refused := prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Namespace: ns, Subsystem: sub, Name: "spool_full_refused_appends",
		Help: "Spool appends the plugin had refused since the backlog last filled (0 when not full).",
	}, func() float64 {
		st, _ := spool.Full(spoolDir)
		return float64(st.Refused)
	})
	for _, c := range []prometheus.Collector{full, refused, m.Read, m.Indexed, m.Retried, m.Failed, m.DeadLettered,
		m.Committed, m.Errors, m.TornTails, m.Latency, m.LastSuccess, m.Duplicates, m.Enriched, m.Reloads,
		m.Assets, m.Indicators, m.InFlight, backlog} {
		if err := reg.Register(c); err != nil {
			return nil, err
		}
	}
	return m, nil
}
