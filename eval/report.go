package eval

import (
	"fmt"
	"io"
	"math"
	"sort"
	"strings"
	"time"

	"github.com/beacongrid/beacongrid/alert"
	"github.com/beacongrid/beacongrid/rules"
)

// Report writes the Markdown report of the datasets: beacongrid and the
// baseline at each threshold side by side.
func Report(w io.Writer, sets []*Dataset, c Criteria, thresholds []float64, command string) error {
	var b strings.Builder
	b.WriteString("# beacongrid evaluation\n\n")
	if command != "" {
		fmt.Fprintf(&b, "Produced by:\n\n```sh\n%s\n```\n\n", command)
	}
	if len(sets) > 0 {
		fmt.Fprintf(&b, "Model `%s`, alert threshold %.4g. ", sets[0].ModelVersion, sets[0].Threshold)
	}
	fmt.Fprintf(&b, "A *target* C2 flow is a malicious flow active for at least %s (first to last record) with at least %d callbacks "+
		"(records; those in the same second as the previous one count once). A service *most hosts use* is a destination more than %.0f %% of the "+
		"dataset's sources (and at least %d) reach. A flow is a source and a destination (name, else ip:port). beacongrid alerts in event time as the logs stream "+
		"through it; the RITA-style baseline (package `baseline`, RITA v5's documented scoring) scores every flow with at least 4 connection times once, "+
		"over the whole dataset, as RITA does, so it has no time to alert.\n",
		fmtDur(c.MinSpan), c.MinCallbacks, 100*c.WideShare, c.WideMin)
	for _, ds := range sets {
		writeDataset(&b, ds, c, thresholds)
	}
	_, err := io.WriteString(w, b.String())
	return err
}

func writeDataset(b *strings.Builder, ds *Dataset, c Criteria, thresholds []float64) {
	det := Compute(ds.Flows, ds.Detector, c)
	bls := make([]Metrics, len(thresholds))
	for i, t := range thresholds {
		bls[i] = Compute(ds.Flows, ds.BaselineOutcomes(t), c)
	}
	fmt.Fprintf(b, "\n## %s\n\n", ds.Name)
	fmt.Fprintf(b, "%d records from %d files, event time %s to %s; %d sources, %d flows (%d benign, %d malicious, %d target C2 flows)",
		ds.Replay.Records, len(ds.Files), fmtTime(ds.Start), fmtTime(ds.End), det.Sources, det.Flows, det.BenignFlows, det.MaliciousFlows, det.TargetFlows)
	if ds.Replay.BadLines > 0 || ds.Replay.BadField > 0 {
		fmt.Fprintf(b, "; %d unreadable lines and %d bad fields skipped", ds.Replay.BadLines, ds.Replay.BadField)
	}
	if ds.Unlabelled > 0 {
		fmt.Fprintf(b, "; %d unlabelled flows left out", ds.Unlabelled)
	}
	fmt.Fprintf(b, ". Replayed through both in %s. beacongrid's detector silenced %d scorings at or over the threshold as services most hosts use (prevalence_share above %.2g; `detect.Stats.Wide`).\n\n",
		ds.Elapsed.Round(10*time.Millisecond), ds.Det.Wide, rules.DefaultWideShare)

	b.WriteString("| | beacongrid |")
	for _, t := range thresholds {
		fmt.Fprintf(b, " RITA-style >= %.2g |", t)
	}
	b.WriteString("\n|---|---|")
	for range thresholds {
		b.WriteString("---|")
	}
	b.WriteString("\n")
	row := func(name string, f func(m *Metrics) string) {
		fmt.Fprintf(b, "| %s | %s |", name, f(&det))
		for i := range bls {
			fmt.Fprintf(b, " %s |", f(&bls[i]))
		}
		b.WriteString("\n")
	}
	row("**recall, target C2 flows**", func(m *Metrics) string { return frac(m.Recall, m.TargetFlows-len(m.MissedTargets), m.TargetFlows) })
	for k := range det.Kinds {
		kind := det.Kinds[k].Kind
		row("recall: "+kind, func(m *Metrics) string {
			for _, kr := range m.Kinds {
				if kr.Kind == kind {
					return frac(kr.Recall(), kr.Hit, kr.Target)
				}
			}
			return "-"
		})
	}
	row("malicious flows alerted (any span)", func(m *Metrics) string { return fmt.Sprintf("%d / %d", m.TrueAlerts, m.MaliciousFlows) })
	row("**precision**", func(m *Metrics) string { return frac(m.Precision, m.TrueAlerts, m.Alerts) })
	row("false alerts", func(m *Metrics) string { return fmt.Sprint(m.FalseAlerts) })
	row("**false alerts per 1000 benign flows**", func(m *Metrics) string { return num(m.FalsePer1000, 2) })
	row(fmt.Sprintf("**false alerts on services most hosts use** (%d destinations)", det.WideDsts), func(m *Metrics) string { return fmt.Sprint(m.WideAlerts) })
	row("time to alert, median / max", func(m *Metrics) string {
		for _, l := range m.Latency {
			if l.Kind == "all" {
				return fmtDur(l.Median) + " / " + fmtDur(l.Max)
			}
		}
		if m == &det {
			return "-"
		}
		return "batch"
	})

	// False alerts by benign kind.
	kinds := map[string]bool{}
	for _, m := range append([]Metrics{det}, bls...) {
		for _, k := range m.FalseByKind {
			kinds[k.Kind] = true
		}
	}
	if len(kinds) > 0 {
		names := make([]string, 0, len(kinds))
		for k := range kinds {
			names = append(names, k)
		}
		sort.Strings(names)
		b.WriteString("\nFalse alerts by benign kind:\n\n| kind | beacongrid |")
		for _, t := range thresholds {
			fmt.Fprintf(b, " RITA-style >= %.2g |", t)
		}
		b.WriteString("\n|---|---|")
		for range thresholds {
			b.WriteString("---|")
		}
		b.WriteString("\n")
		count := func(m *Metrics, kind string) int {
			for _, k := range m.FalseByKind {
				if k.Kind == kind {
					return k.N
				}
			}
			return 0
		}
		for _, k := range names {
			fmt.Fprintf(b, "| %s | %d |", k, count(&det, k))
			for i := range bls {
				fmt.Fprintf(b, " %d |", count(&bls[i], k))
			}
			b.WriteString("\n")
		}
	}

	if len(det.Latency) > 0 {
		b.WriteString("\nbeacongrid's time from first callback to first alert (event time), target C2 flows:\n\n| kind | flows | median | max |\n|---|---|---|---|\n")
		for _, l := range append(det.Latency, det.LatencyByIv...) {
			fmt.Fprintf(b, "| %s | %d | %s | %s |\n", l.Kind, l.N, fmtDur(l.Median), fmtDur(l.Max))
		}
	}

	alerted := func(title string, idx []int) {
		if len(idx) == 0 {
			return
		}
		fmt.Fprintf(b, "\n%s:\n\n| source | destination | kind | sources | score | period | jitter | active min | top features |\n|---|---|---|---|---|---|---|---|---|\n", title)
		for n, i := range idx {
			if n == 20 {
				fmt.Fprintf(b, "\n... and %d more.\n", len(idx)-n)
				break
			}
			f, a := &ds.Flows[i], ds.Alert[i]
			fmt.Fprintf(b, "| %s | %s | %s | %d | %.4f | %.0f s | %.2f | %d | %s |\n", f.Src, f.Dst, f.Kind, f.Sources,
				a.Beacon.Score, a.Beacon.PeriodS, a.Beacon.Jitter, a.Beacon.ActiveMinutes, reasons(a))
		}
	}
	alerted("beacongrid's false alerts", det.FalseFlows)
	var hits []int
	for i, o := range ds.Detector {
		if o.Alerted && ds.Flows[i].Malicious {
			hits = append(hits, i)
		}
	}
	sort.SliceStable(hits, func(i, j int) bool { return ds.Flows[hits[i]].Dst < ds.Flows[hits[j]].Dst })
	if len(hits) <= 20 {
		alerted("beacongrid's alerts on malicious flows", hits)
	}
	if len(det.MissedTargets) > 0 {
		b.WriteString("\nTarget C2 flows beacongrid missed:\n\n| source | destination | kind | detail | span | callbacks | RITA-style score |\n|---|---|---|---|---|---|---|\n")
		for _, i := range det.MissedTargets {
			f := &ds.Flows[i]
			bs := "-"
			if ds.BaselineScored[i] {
				bs = fmt.Sprintf("%.3f", ds.Baseline[i])
			}
			fmt.Fprintf(b, "| %s | %s | %s | %s | %s | %d | %s |\n", f.Src, f.Dst, f.Kind, f.Detail, fmtDur(f.Span()), f.Callbacks, bs)
		}
	}
}

// reasons lists an alert's top contributing features.
func reasons(a *alert.Alert) string {
	var parts []string
	for _, r := range a.Beacon.Reasons {
		parts = append(parts, fmt.Sprintf("%s=%.3g (+%.3f)", r.Feature, r.Value, r.Contribution))
	}
	return strings.Join(parts, ", ")
}

func frac(r float64, a, b int) string {
	if b == 0 {
		return "- (0 flows)"
	}
	return fmt.Sprintf("%.3f (%d / %d)", r, a, b)
}

func num(x float64, digits int) string {
	if math.IsNaN(x) {
		return "-"
	}
	return fmt.Sprintf("%.*f", digits, x)
}

func fmtTime(sec int64) string { return time.Unix(sec, 0).UTC().Format("2006-01-02 15:04") }

func fmtDur(d time.Duration) string {
	switch {
	case d >= time.Hour:
		return fmt.Sprintf("%.1f h", d.Hours())
	case d >= time.Minute:
		return fmt.Sprintf("%.0f min", d.Minutes())
	default:
		return fmt.Sprintf("%.0f s", d.Seconds())
	}
}
