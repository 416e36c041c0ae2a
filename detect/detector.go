// Package detect turns counted flows into scored alerts: it feeds events to
// the edge state (package cache), computes each due flow's features from its
// 24 x 60 matrix and context, scores them with the GBM model, applies the
// operator's rules and hands alerts to a Sink.
//
// The same Detector runs inside the Fluent Bit plugin and in the offline
// replay command, so both raise the same alerts from the same events.
package detect

import (
	"errors"
	"fmt"
	"math"
	"net/netip"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/beacongrid/beacongrid/alert"
	"github.com/beacongrid/beacongrid/cache"
	"github.com/beacongrid/beacongrid/fields"
	"github.com/beacongrid/beacongrid/rules"
)

// Model scores a feature vector. Implementations must be safe for
// concurrent use.
type Model interface {
	Predict(features []float64) float64
	Version() string
	Threshold() float64
	FeatureNames() []string
}

// Explainer is implemented by models that can say which features drove a
// score.
type Explainer interface {
	Explain(features []float64, top int) []alert.Reason
}

// Sink receives alerts. Alert must not block for long: the plugin calls it
// on Fluent Bit's flush thread.
type Sink interface {
	Alert(a *alert.Alert)
}

// Config tunes the detector. Zero values take the defaults.
type Config struct {
	// MinActive is the fewest active minutes before a flow is scored.
	// Default 10: fewer is too little evidence to tell a beacon from a
	// handful of page loads, and 10 keeps a 60 s beacon's alert within
	// minutes and a 30 min beacon's within 5 h.
	MinActive int
	// ScoreEvery is how often (event-time minutes) a busy flow is rescored. Default 5.
	ScoreEvery int
	// RealertAfter is how long (minutes) before the same flow alerts again
	// at the same score. Default 1440 (once per window).
	RealertAfter int
	// RealertRise is how much the score must rise to alert again sooner. Default 0.05.
	RealertRise float64
	// Observer names the collector in alerts.
	Observer alert.Observer
	// Now is the wall clock (for alert creation times). Default time.Now.
	Now func() time.Time
}

// Stats count what the detector saw.
type Stats struct {
	Events     int64 // records offered
	Skipped    int64 // records that make no flow (no source, no destination, duplicate conn)
	NoTime     int64 // records without a usable time
	Scored     int64 // flows scored
	Alerts     int64 // alerts raised
	Suppressed int64 // scorings that would have alerted but an allow entry or suppress rule silenced (counted each time)
	Wide       int64 // scorings that would have alerted on a service most hosts use, silenced (rules.RuleWide; counted each time)
}

var shareIdx = slices.Index(FeatureNames, "prevalence_share")

// Detector is safe for concurrent use.
type Detector struct {
	store *cache.Store
	model Model
	rules *atomic.Pointer[rules.Set]
	sink  Sink
	cfg   Config
	pool  sync.Pool

	events, skipped, noTime, scored, alerts, suppressed, wide atomic.Int64
}

type work struct {
	Featurizer
	view  cache.View
	feats []float64
	flow  rules.Flow // what the rules see; here so it need not escape per call
}

// New returns a Detector. rs holds the active rules (swapped atomically on
// reload); it may hold nil for none.
func New(store *cache.Store, model Model, rs *atomic.Pointer[rules.Set], sink Sink, cfg Config) (*Detector, error) {
	switch {
	case store == nil:
		return nil, errors.New("detect: nil store")
	case model == nil:
		return nil, errors.New("detect: nil model")
	case sink == nil:
		return nil, errors.New("detect: nil sink")
	case !slices.Equal(model.FeatureNames(), FeatureNames):
		return nil, fmt.Errorf("detect: model %s was trained on features %v; this build computes %v", model.Version(), model.FeatureNames(), FeatureNames)
	case cfg.MinActive < 0 || cfg.ScoreEvery < 0 || cfg.RealertAfter < 0 || cfg.RealertRise < 0:
		return nil, errors.New("detect: negative setting")
	}
	if cfg.MinActive == 0 {
		cfg.MinActive = 10
	}
	if cfg.ScoreEvery == 0 {
		cfg.ScoreEvery = 5
	}
	if cfg.RealertAfter == 0 {
		cfg.RealertAfter = cache.Minutes
	}
	if cfg.RealertRise == 0 {
		cfg.RealertRise = 0.05
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if rs == nil {
		rs = new(atomic.Pointer[rules.Set])
	}
	d := &Detector{store: store, model: model, rules: rs, sink: sink, cfg: cfg}
	d.pool.New = func() any { return &work{feats: make([]float64, NumFeatures)} }
	return d, nil
}

// Observe counts one parsed record and scores its flow when due. buf is
// scratch space for the flow key; Observe returns it (possibly grown) for
// reuse. The record's bytes are not retained.
func (d *Detector) Observe(e *fields.Event, buf []byte) []byte {
	d.events.Add(1)
	if !e.HasTime {
		d.noTime.Add(1)
		return buf
	}
	src, dst, buf, ok := e.Flow(buf)
	if !ok {
		d.skipped.Add(1)
		return buf
	}
	src = buf[:len(src)] // dst follows it in buf: the store hashes the two in one call
	f, due, r := d.store.Observe(src, dst, e.Sec, e.Size)
	if r == cache.Counted && due {
		d.Score(f)
	}
	return buf
}

// Score scores one flow now and raises an alert if it qualifies. The rules
// in force at the call decide (rules.Set.Eval): a reload applies to every
// tracked flow from its next scoring on. A silenced alert leaves the flow's
// alert marks alone, so lifting an allow entry lets the flow alert at its
// next scoring.
func (d *Detector) Score(f *cache.Flow) {
	w := d.pool.Get().(*work)
	defer d.pool.Put(w)
	d.store.Snapshot(f, &w.view)
	v := &w.view
	sm := w.Compute(v, w.feats)
	m := v.Marks
	rs := d.rules.Load()
	now := d.cfg.Now()
	minActive := rs.MinActive(v.Src, d.cfg.MinActive)
	if sm.ActiveMinutes < minActive {
		if _, denied := rs.Denied(v.Src, v.Dst, now); !denied {
			m.NextScore = v.End + 1
			f.SetMarks(m)
			return
		}
	}
	m.NextScore = v.End + int32(d.cfg.ScoreEvery)
	d.scored.Add(1)
	p := d.model.Predict(w.feats)
	fl := &w.flow // field by field: a literal would drop the Flow's reusable VM
	fl.Source, fl.Destination, fl.DestinationIP = v.Src, v.Dst, dstIsIP(v.Dst) == 1
	fl.Score, fl.PeriodS, fl.Jitter, fl.ActiveMinutes = p, sm.PeriodS, sm.Jitter, sm.ActiveMinutes
	fl.Requests, fl.Prevalence, fl.Sources, fl.OnlineMinutes = sm.Requests, v.Prevalence, v.Sources, v.SrcOnline
	fl.PrevalenceShare = w.feats[shareIdx]
	verdict := rs.Eval(fl, d.model.Threshold(), d.cfg.MinActive, now)
	if !verdict.Alert {
		f.SetMarks(m)
		return
	}
	fresh := m.AlertMinute == 0 || v.End-m.AlertMinute >= int32(d.cfg.RealertAfter) || p >= float64(m.AlertScore)+d.cfg.RealertRise
	if !fresh {
		f.SetMarks(m)
		return
	}
	if verdict.Suppressed {
		f.SetMarks(m)
		if verdict.SuppressedBy == rules.RuleWide {
			d.wide.Add(1)
		} else {
			d.suppressed.Add(1)
		}
		return
	}
	m.AlertMinute, m.AlertScore = v.End, float32(p)
	f.SetMarks(m)
	d.alerts.Add(1)
	d.sink.Alert(d.build(v, w.feats, sm, p, &verdict, rs))
}

// Sweep scores every tracked flow once (end of a replay, or on demand).
func (d *Detector) Sweep() {
	d.store.Range(func(f *cache.Flow) bool {
		d.Score(f)
		return true
	})
}

func (d *Detector) build(v *cache.View, feats []float64, sm Summary, p float64, verdict *rules.Verdict, rs *rules.Set) *alert.Alert {
	a := &alert.Alert{
		Timestamp: minuteTime(v.End),
		Event: alert.Event{
			ID:       alert.ID(v.Src, v.Dst, int64(v.End)),
			Kind:     "alert",
			Module:   "beacongrid",
			Dataset:  "beacongrid.alert",
			Category: []string{"network", "intrusion_detection"},
			Severity: int(math.Round(p * 100)),
			Start:    time.Unix(v.FirstSec, 0).UTC(),
			End:      time.Unix(v.LastSec, 0).UTC(),
			Created:  d.cfg.Now().UTC(),
		},
		Source: alert.Source{IP: v.Src},
		Rule:   alert.Rule{Name: verdict.Rule, Ruleset: "beacongrid", Severity: severity(p), Description: verdict.Reason},
		Beacon: alert.Beacon{
			Score:         round(p, 4),
			Threshold:     verdict.Threshold,
			PeriodS:       round(sm.PeriodS, 1),
			Jitter:        round(sm.Jitter, 3),
			ActiveMinutes: sm.ActiveMinutes,
			Requests:      sm.Requests,
			Prevalence:    v.Prevalence,
			Matrix:        make([]uint16, alert.MatrixLen),
			WindowEnd:     minuteTime(v.End),
			ModelVersion:  d.model.Version(),
		},
	}
	if ap, err := netip.ParseAddrPort(v.Dst); err == nil && dstIsIP(v.Dst) == 1 {
		a.Destination.IP, a.Destination.Port = ap.Addr().String(), int(ap.Port())
	} else {
		a.Destination.Domain = v.Dst
	}
	start := v.End - cache.Minutes + 1
	for i, c := range v.Counts {
		a.Beacon.Matrix[mod(start+int32(i))] = c
	}
	if ex, ok := d.model.(Explainer); ok {
		a.Beacon.Reasons = ex.Explain(feats, 5)
	}
	if o := d.cfg.Observer; o != (alert.Observer{}) {
		a.Observer = &o
	}
	// Rules that set a severity set both forms: rule.severity and the
	// numeric event.severity (Elastic Security's risk score of the level).
	if sev := verdict.Severity; sev != "" {
		a.Rule.Severity, a.Event.Severity = sev, severityScore[sev]
	}
	if len(verdict.Tags) > 0 {
		a.Tags = append([]string(nil), verdict.Tags...)
	}
	if rs != nil {
		a.Rule.Version = rs.Version()
	}
	return a
}

// Stats returns the detector's counters.
func (d *Detector) Stats() Stats {
	return Stats{
		Events: d.events.Load(), Skipped: d.skipped.Load(), NoTime: d.noTime.Load(),
		Scored: d.scored.Load(), Alerts: d.alerts.Load(), Suppressed: d.suppressed.Load(), Wide: d.wide.Load(),
	}
}

// Store returns the detector's flow store.
func (d *Detector) Store() *cache.Store { return d.store }

// severityScore maps a severity to the numeric event.severity, as Elastic
// Security's detection rules map severity to risk score.
var severityScore = map[string]int{"low": 21, "medium": 47, "high": 73, "critical": 99}

func severity(p float64) string {
	switch {
	case p >= 0.95:
		return "high"
	case p >= 0.8:
		return "medium"
	default:
		return "low"
	}
}

func minuteTime(abs int32) time.Time { return time.Unix(int64(abs)*60, 0).UTC() }

func mod(m int32) int {
	i := int(m) % cache.Minutes
	if i < 0 {
		i += cache.Minutes
	}
	return i
}

func round(x float64, digits int) float64 {
	p := math.Pow(10, float64(digits))
	return math.Round(x*p) / p
}
