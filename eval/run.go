package eval

import (
	"bytes"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/beacongrid/beacongrid/alert"
	"github.com/beacongrid/beacongrid/baseline"
	"github.com/beacongrid/beacongrid/detect"
	"github.com/beacongrid/beacongrid/fields"
	"github.com/beacongrid/beacongrid/replay"
	"github.com/beacongrid/beacongrid/sim"
)

// Labels label flows: either a simulator truth file, or per-record label
// columns of a labelled capture (CTU's `label` and `detailedlabel`).
type Labels struct {
	// Truth maps src + "\x00" + dst to a row of the simulator's truth.csv.
	Truth map[string]sim.TruthRow
	// LabelKey and DetailKey name the per-record label columns; used when
	// Truth is nil. A flow is malicious when any of its records' label is
	// "Malicious" (any case) and its detail is not in NotC2.
	LabelKey, DetailKey string
	// NotC2 lists detailed labels of malicious traffic that is not C2 (CTU
	// labels inbound scans "External-Attack-to-Device"): such flows count as
	// benign, with the detail as their kind, so an alert on them is false.
	NotC2 []string
}

// ReadTruth reads a simulator truth.csv into Labels.
func ReadTruth(path string) (Labels, error) {
	f, err := os.Open(path)
	if err != nil {
		return Labels{}, err
	}
	defer f.Close()
	rows, err := sim.ReadTruthCSV(f)
	if err != nil {
		return Labels{}, fmt.Errorf("%s: %w", path, err)
	}
	m := make(map[string]sim.TruthRow, len(rows))
	for _, r := range rows {
		m[r.Src+"\x00"+r.Dst] = r
	}
	return Labels{Truth: m}, nil
}

// CTULabels are the label columns of the Stratosphere (CTU) captures.
func CTULabels() Labels {
	return Labels{LabelKey: "label", DetailKey: "detailedlabel", NotC2: []string{"External-Attack-to-Device"}}
}

// Dataset is one labelled set replayed through the detector and the baseline.
type Dataset struct {
	Name  string
	Files []string
	Flows []Flow
	// Detector and Baseline hold one entry per flow. Baseline scores are
	// RITA-style scores in [0, 1]; BaselineScored is false for flows with
	// too few connections to score.
	Detector       []Outcome
	Alert          []*alert.Alert // the highest-scoring alert per flow, nil when none
	Baseline       []float64
	BaselineScored []bool
	Unlabelled     int // flows the labels do not cover (left out of every figure)
	Replay         replay.Stats
	Det            detect.Stats
	ModelVersion   string
	Threshold      float64
	Elapsed        time.Duration // replay through the detector and the baseline
	Start, End     int64         // event time span, Unix seconds
}

// BaselineOutcomes are the baseline's decisions at threshold t.
func (d *Dataset) BaselineOutcomes(t float64) []Outcome {
	out := make([]Outcome, len(d.Flows))
	for i, s := range d.Baseline {
		out[i] = Outcome{Alerted: d.BaselineScored[i] && s >= t, Score: s}
	}
	return out
}

// Collector is a detect.Sink that keeps every alert.
type Collector struct {
	mu     sync.Mutex
	alerts []*alert.Alert
}

// Alert implements detect.Sink.
func (c *Collector) Alert(a *alert.Alert) {
	c.mu.Lock()
	c.alerts = append(c.alerts, a)
	c.mu.Unlock()
}

// FlowKey is the flow key of an alert's destination, as fields.Event.Flow
// spells it: the domain, else ip:port ([v6]:port).
func FlowKey(a *alert.Alert) string {
	if a.Destination.Domain != "" {
		return a.Destination.Domain
	}
	ip, err := netip.ParseAddr(a.Destination.IP)
	if err != nil {
		return fmt.Sprintf("%s:%d", a.Destination.IP, a.Destination.Port)
	}
	return netip.AddrPortFrom(ip, uint16(a.Destination.Port)).String()
}

type acc struct {
	idx     int
	ts      []int64
	sizes   []float64
	lastSec int64
	rank    int // label rank: 0 none, 1 benign without detail, 2 benign with detail, 3 malicious
}

// LogFiles lists the log files of a directory: *.log, *.log.gz, *.labeled.
func LogFiles(dir string) ([]string, error) {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil, err
	}
	var out []string
	for _, e := range ents {
		n := e.Name()
		if e.Type().IsRegular() && (strings.HasSuffix(n, ".log") || strings.HasSuffix(n, ".log.gz") || strings.HasSuffix(n, ".labeled")) {
			out = append(out, filepath.Join(dir, n))
		}
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("%s: no log files (*.log, *.log.gz, *.labeled)", dir)
	}
	sort.Strings(out)
	return out, nil
}

// Run replays files through d (whose sink must be col) and through the
// baseline scorer, and labels every flow.
func Run(name string, files []string, lab Labels, m fields.Mapping, d *detect.Detector, col *Collector, model detect.Model, bl baseline.Config) (*Dataset, error) {
	if err := bl.Validate(); err != nil {
		return nil, err
	}
	if lab.Truth == nil && lab.LabelKey == "" {
		return nil, errors.New("eval: no labels: give a truth file or label columns")
	}
	ds := &Dataset{Name: name, Files: files, ModelVersion: model.Version(), Threshold: model.Threshold()}
	flows := map[string]*acc{}
	var buf, kbuf, key []byte
	seen := false
	var extra []string
	if lab.Truth == nil {
		extra = []string{lab.LabelKey, lab.DetailKey}
	}
	start := time.Now()
	st, err := replay.RunExtra(files, replay.NewMatcher(m), extra, func(e *fields.Event, ex [][]byte) {
		buf = d.Observe(e, buf)
		if !e.HasTime {
			return
		}
		src, dst, b, ok := e.Flow(kbuf)
		kbuf = b
		if !ok {
			return
		}
		if !seen || e.Sec < ds.Start {
			ds.Start = e.Sec
		}
		if !seen || e.Sec > ds.End {
			ds.End = e.Sec
		}
		seen = true
		key = append(append(append(key[:0], src...), 0), dst...)
		a := flows[string(key)]
		if a == nil {
			a = &acc{idx: len(ds.Flows)}
			flows[string(key)] = a
			ds.Flows = append(ds.Flows, Flow{Src: string(src), Dst: string(dst), First: e.Sec, Last: e.Sec})
		}
		f := &ds.Flows[a.idx]
		f.First, f.Last = min(f.First, e.Sec), max(f.Last, e.Sec)
		if len(a.ts) == 0 || e.Sec != a.lastSec {
			f.Callbacks++
		}
		a.lastSec = e.Sec
		a.ts = append(a.ts, e.Sec)
		a.sizes = append(a.sizes, float64(e.Size))
		if extra != nil {
			lab.fromRecord(f, a, ex[0], ex[1])
		}
	}, nil)
	if err != nil {
		return nil, err
	}
	d.Sweep()
	ds.Replay, ds.Det = st, d.Stats()

	// Labels from the truth file.
	if lab.Truth != nil {
		for _, a := range flows {
			f := &ds.Flows[a.idx]
			r, ok := lab.Truth[f.Src+"\x00"+f.Dst]
			if !ok {
				continue
			}
			a.rank = 1
			f.Malicious = strings.EqualFold(r.Label, sim.Malicious)
			f.Kind, f.Detail = r.Kind, r.Detail
			f.Interval = detailInterval(r.Detail)
		}
	}
	// Prevalence.
	perDst := map[string]map[string]struct{}{}
	for i := range ds.Flows {
		f := &ds.Flows[i]
		s := perDst[f.Dst]
		if s == nil {
			s = map[string]struct{}{}
			perDst[f.Dst] = s
		}
		s[f.Src] = struct{}{}
	}
	for i := range ds.Flows {
		ds.Flows[i].Sources = len(perDst[ds.Flows[i].Dst])
	}
	// Detector outcomes: the first alert per flow, and its highest score.
	ds.Detector = make([]Outcome, len(ds.Flows))
	ds.Alert = make([]*alert.Alert, len(ds.Flows))
	for _, al := range col.alerts {
		a := flows[al.Source.IP+"\x00"+FlowKey(al)]
		if a == nil {
			return nil, fmt.Errorf("eval: alert on %s -> %s, a flow the replay did not see", al.Source.IP, FlowKey(al))
		}
		o := &ds.Detector[a.idx]
		at := al.Timestamp.Unix()
		if !o.Alerted || at < o.At {
			o.At = at
		}
		o.Alerted = true
		if best := ds.Alert[a.idx]; best == nil || al.Beacon.Score > best.Beacon.Score {
			ds.Alert[a.idx] = al
		}
		o.Score = max(o.Score, al.Beacon.Score)
	}
	// Baseline: RITA scores the whole dataset in one batch.
	ds.Baseline = make([]float64, len(ds.Flows))
	ds.BaselineScored = make([]bool, len(ds.Flows))
	for _, a := range flows {
		s, err := bl.Score(a.ts, a.sizes, ds.Start, ds.End)
		if err == nil {
			ds.Baseline[a.idx], ds.BaselineScored[a.idx] = s.Score, true
		} else if !errors.Is(err, baseline.ErrTooFew) {
			return nil, err
		}
	}
	ds.Elapsed = time.Since(start)
	// Drop unlabelled flows from every figure.
	keep := 0
	for _, a := range sortedAccs(flows) {
		if a.rank == 0 {
			ds.Unlabelled++
			continue
		}
		ds.Flows[keep], ds.Detector[keep], ds.Alert[keep] = ds.Flows[a.idx], ds.Detector[a.idx], ds.Alert[a.idx]
		ds.Baseline[keep], ds.BaselineScored[keep] = ds.Baseline[a.idx], ds.BaselineScored[a.idx]
		keep++
	}
	ds.Flows, ds.Detector, ds.Alert = ds.Flows[:keep], ds.Detector[:keep], ds.Alert[:keep]
	ds.Baseline, ds.BaselineScored = ds.Baseline[:keep], ds.BaselineScored[:keep]
	return ds, nil
}

// sortedAccs returns the accumulators in flow order.
func sortedAccs(m map[string]*acc) []*acc {
	out := make([]*acc, 0, len(m))
	for _, a := range m {
		out = append(out, a)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].idx < out[j].idx })
	return out
}

var malicious = []byte("malicious")

// detailInterval reads "interval=60s" from a simulator detail.
func detailInterval(detail string) time.Duration {
	i := strings.Index(detail, "interval=")
	if i < 0 {
		return 0
	}
	v := detail[i+len("interval="):]
	if j := strings.IndexByte(v, ' '); j >= 0 {
		v = v[:j]
	}
	d, err := time.ParseDuration(v)
	if err != nil || d <= 0 {
		return 0
	}
	return d
}

// fromRecord folds one record's label columns into its flow's label.
func (l *Labels) fromRecord(f *Flow, a *acc, label, detail []byte) {
	detail = bytes.TrimSpace(detail)
	if len(detail) == 0 || string(detail) == "(empty)" || string(detail) == "-" {
		detail = nil
	}
	label = bytes.TrimSpace(label)
	if len(label) == 0 || string(label) == "(empty)" || string(label) == "-" {
		if detail == nil {
			return
		}
		label = []byte("unlabelled")
	}
	mal := bytes.EqualFold(label, malicious)
	kind := strings.ToLower(string(label))
	if detail != nil {
		kind = string(detail)
	}
	if mal {
		for _, n := range l.NotC2 {
			if detail != nil && string(detail) == n {
				mal = false
			}
		}
	}
	rank := 1
	switch {
	case mal:
		rank = 3
	case detail != nil:
		rank = 2
	}
	if rank <= a.rank {
		return
	}
	a.rank = rank
	f.Malicious, f.Kind = mal, kind
	if mal && detail == nil {
		f.Kind = "malicious"
	}
}
