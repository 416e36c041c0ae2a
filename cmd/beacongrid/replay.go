package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/spf13/cobra"

	"github.com/beacongrid/beacongrid/alert"
	"github.com/beacongrid/beacongrid/cache"
	"github.com/beacongrid/beacongrid/detect"
	"github.com/beacongrid/beacongrid/fields"
	"github.com/beacongrid/beacongrid/replay"
	"github.com/beacongrid/beacongrid/rules"
)

func init() { register(newReplayCmd) }

type detectorFlags struct {
	rulesFile, modelFile string
	threshold            float64
	maxMemory            int64
	minActive            int
}

func (f *detectorFlags) add(c *cobra.Command) {
	c.Flags().StringVar(&f.rulesFile, "rules", "", "rules file (YAML)")
	c.Flags().StringVar(&f.modelFile, "model", "", "LightGBM model file (.txt with .json beside it); default: the embedded model")
	c.Flags().Float64Var(&f.threshold, "threshold", 0, "alert threshold (0..1); default: the model's calibrated threshold")
	c.Flags().Int64Var(&f.maxMemory, "max-memory", 1<<30, "bytes of flow state")
	c.Flags().IntVar(&f.minActive, "min-active", 0, "fewest active minutes before a flow is scored (default 10)")
}

// collector keeps alerts in memory, the latest per flow kept in order.
type collector struct {
	mu     sync.Mutex
	alerts []*alert.Alert
}

func (c *collector) Alert(a *alert.Alert) {
	c.mu.Lock()
	c.alerts = append(c.alerts, a)
	c.mu.Unlock()
}

func (f *detectorFlags) build(sink detect.Sink) (*detect.Detector, *rules.Set, error) {
	var rs *rules.Set
	if f.rulesFile != "" {
		var err error
		if rs, err = rules.Load(f.rulesFile); err != nil {
			return nil, nil, err
		}
	}
	m, err := detect.OpenModel(f.modelFile)
	if err != nil {
		return nil, nil, err
	}
	if f.threshold > 0 {
		m = detect.WithThreshold(m, f.threshold)
	}
	// Logs replayed offline are in the past: the future bound is the wall clock.
	store, err := cache.New(cache.Config{MaxBytes: f.maxMemory})
	if err != nil {
		return nil, nil, err
	}
	var ptr atomic.Pointer[rules.Set]
	ptr.Store(rs)
	host, _ := os.Hostname()
	d, err := detect.New(store, m, &ptr, sink, detect.Config{MinActive: f.minActive, Observer: alert.Observer{Hostname: host, Name: "replay"}})
	return d, rs, err
}

func newReplayCmd() *cobra.Command {
	var df detectorFlags
	var out, report string
	var quiet bool
	c := &cobra.Command{
		Use:   "replay [flags] FILE...",
		Short: "Run the detector offline over Zeek (TSV or JSON) or JSON-lines logs, gzip or not",
		Args:  cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			var col collector
			d, rs, err := df.build(&col)
			if err != nil {
				return err
			}
			defer d.Store().Close()
			start := time.Now()
			var buf []byte
			var badShown int
			st, err := replay.Run(args, replay.NewMatcher(rs.Mapping()), func(e *fields.Event) {
				buf = d.Observe(e, buf)
			}, func(err error) {
				if badShown++; badShown <= 5 && !quiet {
					fmt.Fprintln(os.Stderr, "skipped:", err)
				}
			})
			if err != nil {
				return err
			}
			d.Sweep()
			elapsed := time.Since(start)
			alerts := latestPerFlow(col.alerts)
			if out != "" {
				if err := writeJSONL(out, alerts); err != nil {
					return err
				}
			}
			sum := summary{Files: args, Stats: st, Det: d.Stats(), Cache: d.Store().Stats(), Alerts: alerts, Elapsed: elapsed}
			if !quiet {
				sum.print(cmd.OutOrStdout())
			}
			if report != "" {
				if err := sum.writeReport(report); err != nil {
					return err
				}
				fmt.Fprintf(cmd.OutOrStdout(), "report: %s\n", report)
			}
			return nil
		},
	}
	df.add(c)
	c.Flags().StringVar(&out, "alerts", "", "write alerts here, one JSON document per line")
	c.Flags().StringVar(&report, "report", "", "write a Markdown report here")
	c.Flags().BoolVar(&quiet, "quiet", false, "print nothing but errors")
	return c
}

// latestPerFlow keeps, per flow, the alert with the highest score (ties:
// the latest), ordered by score.
func latestPerFlow(in []*alert.Alert) []*alert.Alert {
	best := map[string]*alert.Alert{}
	var order []string
	for _, a := range in {
		k := a.Source.IP + "\x00" + dstOf(a)
		if b, ok := best[k]; !ok {
			order = append(order, k)
			best[k] = a
		} else if a.Beacon.Score >= b.Beacon.Score {
			best[k] = a
		}
	}
	out := make([]*alert.Alert, 0, len(order))
	for _, k := range order {
		out = append(out, best[k])
	}
	sort.SliceStable(out, func(i, j int) bool { return out[i].Beacon.Score > out[j].Beacon.Score })
	return out
}

func dstOf(a *alert.Alert) string {
	if a.Destination.Domain != "" {
		return a.Destination.Domain
	}
	return fmt.Sprintf("%s:%d", a.Destination.IP, a.Destination.Port)
}

func writeJSONL(path string, alerts []*alert.Alert) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	w := bufio.NewWriter(f)
	enc := json.NewEncoder(w)
	for _, a := range alerts {
		if err := enc.Encode(a); err != nil {
			f.Close()
			return err
		}
	}
	if err := w.Flush(); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

type summary struct {
	Files   []string
	Stats   replay.Stats
	Det     detect.Stats
	Cache   cache.Stats
	Alerts  []*alert.Alert
	Elapsed time.Duration
}

func (s summary) print(w io.Writer) {
	fmt.Fprintf(w, "read %d records from %d files in %s (%d bad lines, %d bad fields)\n",
		s.Stats.Records, s.Stats.Files, s.Elapsed.Round(time.Millisecond), s.Stats.BadLines, s.Stats.BadField)
	fmt.Fprintf(w, "flows tracked: %d, scored: %d times, events counted: %d (too old %d, too new %d, no flow %d)\n",
		s.Cache.Flows, s.Det.Scored, s.Cache.Counted, s.Cache.TooOld, s.Cache.TooNew, s.Det.Skipped+s.Det.NoTime)
	fmt.Fprintf(w, "alerts: %d flows (%d suppressed by rules, %d on services most hosts use)\n", len(s.Alerts), s.Det.Suppressed, s.Det.Wide)
	if len(s.Alerts) == 0 {
		return
	}
	fmt.Fprintf(w, "\n  %-6s  %-15s  %-40s  %8s  %7s  %6s  %5s\n", "score", "source", "destination", "period", "jitter", "active", "prev")
	for _, a := range s.Alerts {
		fmt.Fprintf(w, "  %.4f  %-15s  %-40s  %7.0fs  %7.2f  %6d  %5d\n", a.Beacon.Score, a.Source.IP, trunc(dstOf(a), 40),
			a.Beacon.PeriodS, a.Beacon.Jitter, a.Beacon.ActiveMinutes, a.Beacon.Prevalence)
	}
}

func trunc(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n-1] + "~"
}

func (s summary) writeReport(path string) error {
	var b strings.Builder
	fmt.Fprintf(&b, "# beacongrid replay report\n\nGenerated %s over %d file(s):\n\n", time.Now().UTC().Format(time.RFC3339), len(s.Files))
	for _, f := range s.Files {
		fmt.Fprintf(&b, "- `%s`\n", f)
	}
	b.WriteString("\n```\n")
	s.print(&b)
	b.WriteString("```\n")
	for _, a := range s.Alerts {
		fmt.Fprintf(&b, "\n## %s -> %s (score %.4f, model %s)\n\n", a.Source.IP, dstOf(a), a.Beacon.Score, a.Beacon.ModelVersion)
		fmt.Fprintf(&b, "- window ends %s; first event %s, last %s\n", a.Beacon.WindowEnd.Format(time.RFC3339), a.Event.Start.Format(time.RFC3339), a.Event.End.Format(time.RFC3339))
		fmt.Fprintf(&b, "- period %.0f s, jitter %.2f, %d active minutes, %d requests, %d source(s) reach this destination\n",
			a.Beacon.PeriodS, a.Beacon.Jitter, a.Beacon.ActiveMinutes, a.Beacon.Requests, a.Beacon.Prevalence)
		if len(a.Beacon.Reasons) > 0 {
			b.WriteString("- why it scored:")
			for _, r := range a.Beacon.Reasons {
				fmt.Fprintf(&b, " %s=%.3g (+%.3f)", r.Feature, r.Value, r.Contribution)
			}
			b.WriteString("\n")
		}
		b.WriteString("\nRequests per minute (rows: UTC hour, columns: minute; ` ` none, `.` 1, `:` 2-3, `#` 4+):\n\n```\n")
		b.WriteString(textHeatmap(a.Beacon.Matrix))
		b.WriteString("```\n")
	}
	return os.WriteFile(path, []byte(b.String()), 0o644)
}

// textHeatmap renders the 24 x 60 matrix as text, one row per hour.
func textHeatmap(m []uint16) string {
	var b strings.Builder
	b.WriteString("     0         1         2         3         4         5         \n")
	for h := 0; h < 24; h++ {
		fmt.Fprintf(&b, "%02d | ", h)
		for mi := 0; mi < 60; mi++ {
			c := uint16(0)
			if i := h*60 + mi; i < len(m) {
				c = m[i]
			}
			switch {
			case c == 0:
				b.WriteByte(' ')
			case c == 1:
				b.WriteByte('.')
			case c <= 3:
				b.WriteByte(':')
			default:
				b.WriteByte('#')
			}
		}
		b.WriteString("|\n")
	}
	return b.String()
}
