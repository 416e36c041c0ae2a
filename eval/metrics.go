// Package eval measures beacon detectors against labelled traffic: it
// replays a labelled set of logs through the detector and through the
// RITA-style baseline (package baseline), and computes, per detector,
// recall per C2 kind, precision, false alerts per 1000 benign flows, false
// alerts by benign kind, alerts on services most hosts use and the time
// from a flow's first callback to its first alert (event time).
package eval

import (
	"math"
	"slices"
	"sort"
	"time"
)

// Flow is one labelled flow of a dataset, as the logs show it.
type Flow struct {
	Src, Dst  string
	Malicious bool
	Kind      string // C2 or benign kind (simulator truth, or the capture's detailed label)
	Detail    string
	First     int64 // event time of the first record, Unix seconds
	Last      int64 // event time of the last record
	Callbacks int   // records, those in the same second as the one before counted once
	Sources   int   // distinct sources reaching Dst in the dataset
	// Interval is the C2 sleep when the labels give it (the simulator's
	// "interval=60s" detail), else 0.
	Interval time.Duration
}

// Span is the time from the flow's first to its last record.
func (f *Flow) Span() time.Duration { return time.Duration(f.Last-f.First) * time.Second }

// Outcome is what one detector decided about one flow.
type Outcome struct {
	Alerted bool
	At      int64 // event time of the first alert, Unix seconds; 0 when unknown (batch scoring)
	Score   float64
}

// Criteria say which C2 flows the recall target is about and which
// destinations count as widely used.
type Criteria struct {
	MinSpan      time.Duration // a target C2 flow is active at least this long (4 h)
	MinCallbacks int           // and makes at least this many callbacks (12)
	WideShare    float64       // a destination reached by more than this share of all sources is widely used (0.5)
	WideMin      int           // and by at least this many sources (3): a capture of one host has no such services
}

// DefaultCriteria are the targets: C2 flows active >= 4 h with >= 12
// callbacks; a service most hosts use is one more than half the sources (and
// at least 3) reach.
func DefaultCriteria() Criteria {
	return Criteria{MinSpan: 4 * time.Hour, MinCallbacks: 12, WideShare: 0.5, WideMin: 3}
}

// Target reports whether f is a C2 flow the recall target covers.
func (c Criteria) Target(f *Flow) bool {
	return f.Malicious && f.Span() >= c.MinSpan && f.Callbacks >= c.MinCallbacks
}

// Wide reports whether f's destination is used by most sources.
func (c Criteria) Wide(f *Flow, sources int) bool {
	return f.Sources >= c.WideMin && float64(f.Sources) > c.WideShare*float64(sources)
}

// KindRecall is the recall of one C2 kind.
type KindRecall struct {
	Kind            string
	Target, Hit     int // target flows (see Criteria.Target) and how many alerted
	Malicious, MHit int // every malicious flow of the kind, and how many alerted
}

// Recall is Hit/Target, NaN without target flows.
func (k KindRecall) Recall() float64 { return ratio(k.Hit, k.Target) }

// KindCount counts flows of one kind.
type KindCount struct {
	Kind string
	N    int
}

// Latency summarises time to alert over target C2 flows that alerted.
type Latency struct {
	Kind        string
	N           int
	Median, Max time.Duration
}

// Metrics is one detector's result on one dataset.
type Metrics struct {
	Sources        int // distinct sources in the dataset
	Flows          int
	BenignFlows    int
	MaliciousFlows int
	TargetFlows    int
	Kinds          []KindRecall // per C2 kind, sorted by kind
	Recall         float64      // over all target flows
	Alerts         int          // flows alerted
	TrueAlerts     int          // alerted malicious flows (target or not)
	FalseAlerts    int          // alerted benign flows
	Precision      float64      // TrueAlerts / Alerts, NaN without alerts
	FalsePer1000   float64      // FalseAlerts per 1000 benign flows
	FalseByKind    []KindCount  // false alerts per benign kind, most first
	WideDsts       int          // destinations most sources use
	WideAlerts     int          // false alerts on flows to them
	Latency        []Latency    // time to alert per C2 kind, then "all"; empty for batch scorers
	LatencyByIv    []Latency    // time to alert by C2 interval (IntervalBuckets), when the labels give intervals
	FalseFlows     []int        // indexes of the falsely alerted flows, by score, highest first
	MissedTargets  []int        // indexes of target flows that did not alert
}

// Compute scores outcomes (one per flow, same order) against the labels.
func Compute(flows []Flow, out []Outcome, c Criteria) Metrics {
	if len(out) != len(flows) {
		panic("eval: flows and outcomes differ in length")
	}
	var m Metrics
	m.Flows = len(flows)
	srcs := map[string]struct{}{}
	for i := range flows {
		srcs[flows[i].Src] = struct{}{}
	}
	m.Sources = len(srcs)
	kinds := map[string]*KindRecall{}
	falseKinds := map[string]int{}
	wide := map[string]bool{}
	lat := map[string][]time.Duration{}
	latIv := make([][]time.Duration, len(IntervalBuckets))
	for i := range flows {
		f, o := &flows[i], &out[i]
		isWide := c.Wide(f, m.Sources)
		if isWide {
			wide[f.Dst] = true
		}
		if o.Alerted {
			m.Alerts++
			if isWide && !f.Malicious {
				m.WideAlerts++
			}
		}
		if !f.Malicious {
			m.BenignFlows++
			if o.Alerted {
				m.FalseAlerts++
				falseKinds[f.Kind]++
				m.FalseFlows = append(m.FalseFlows, i)
			}
			continue
		}
		m.MaliciousFlows++
		k := kinds[f.Kind]
		if k == nil {
			k = &KindRecall{Kind: f.Kind}
			kinds[f.Kind] = k
		}
		k.Malicious++
		if o.Alerted {
			m.TrueAlerts++
			k.MHit++
		}
		if !c.Target(f) {
			continue
		}
		m.TargetFlows++
		k.Target++
		if !o.Alerted {
			m.MissedTargets = append(m.MissedTargets, i)
			continue
		}
		k.Hit++
		if o.At > 0 {
			d := time.Duration(max(0, o.At-f.First)) * time.Second
			lat[f.Kind] = append(lat[f.Kind], d)
			lat[""] = append(lat[""], d)
			if f.Interval > 0 {
				for b, ub := range IntervalBuckets {
					if f.Interval <= ub.Max {
						latIv[b] = append(latIv[b], d)
						break
					}
				}
			}
		}
	}
	m.WideDsts = len(wide)
	hit := 0
	for _, k := range kinds {
		m.Kinds = append(m.Kinds, *k)
		hit += k.Hit
	}
	sort.Slice(m.Kinds, func(i, j int) bool { return m.Kinds[i].Kind < m.Kinds[j].Kind })
	m.Recall = ratio(hit, m.TargetFlows)
	m.Precision = ratio(m.TrueAlerts, m.Alerts)
	m.FalsePer1000 = 1000 * ratio(m.FalseAlerts, m.BenignFlows)
	for k, n := range falseKinds {
		m.FalseByKind = append(m.FalseByKind, KindCount{k, n})
	}
	sort.Slice(m.FalseByKind, func(i, j int) bool {
		a, b := m.FalseByKind[i], m.FalseByKind[j]
		return a.N > b.N || a.N == b.N && a.Kind < b.Kind
	})
	sort.SliceStable(m.FalseFlows, func(i, j int) bool { return out[m.FalseFlows[i]].Score > out[m.FalseFlows[j]].Score })
	for _, k := range m.Kinds {
		if ds := lat[k.Kind]; len(ds) > 0 {
			m.Latency = append(m.Latency, summarise(k.Kind, ds))
		}
	}
	if ds := lat[""]; len(ds) > 0 {
		m.Latency = append(m.Latency, summarise("all", ds))
	}
	for b, ds := range latIv {
		if len(ds) > 0 {
			m.LatencyByIv = append(m.LatencyByIv, summarise(IntervalBuckets[b].Name, ds))
		}
	}
	return m
}

// IntervalBuckets group C2 flows by their sleep for time to alert.
var IntervalBuckets = []struct {
	Name string
	Max  time.Duration
}{
	{"interval <= 60 s", time.Minute},
	{"interval 61 s - 5 min", 5 * time.Minute},
	{"interval 5 - 30 min", 30 * time.Minute},
	{"interval > 30 min", 1 << 62},
}

func summarise(kind string, ds []time.Duration) Latency {
	slices.Sort(ds)
	n := len(ds)
	med := ds[(n-1)/2]
	if n%2 == 0 {
		med = (ds[n/2-1] + ds[n/2]) / 2
	}
	return Latency{Kind: kind, N: n, Median: med, Max: ds[n-1]}
}

func ratio(a, b int) float64 {
	if b == 0 {
		return math.NaN()
	}
	return float64(a) / float64(b)
}
