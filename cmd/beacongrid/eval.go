package main

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/spf13/cobra"

	"github.com/beacongrid/beacongrid/baseline"
	"github.com/beacongrid/beacongrid/detect"
	"github.com/beacongrid/beacongrid/eval"
)

func init() { register(newEvalCmd) }

// model opens the model the detector of build uses, for its version and threshold.
func (f *detectorFlags) model() (detect.Model, error) {
	m, err := detect.OpenModel(f.modelFile)
	if err != nil {
		return nil, err
	}
	if f.threshold > 0 {
		m = detect.WithThreshold(m, f.threshold)
	}
	return m, nil
}

func newEvalCmd() *cobra.Command {
	var df detectorFlags
	var out, thresholds, command string
	var crit = eval.DefaultCriteria()
	c := &cobra.Command{
		Use:   "eval [flags] DIR...",
		Short: "Measure the detector and the RITA-style baseline on labelled log directories",
		Long: `Each DIR is one labelled dataset: its *.log, *.log.gz and *.labeled files are
replayed through the detector and scored by the RITA-style baseline. A DIR with a
truth.csv (from beacongrid simulate) is labelled by it; any other DIR must carry
CTU's per-record label and detailedlabel columns. The report (Markdown) compares
recall per C2 kind, precision, false alerts per 1000 benign flows, false alerts by
benign kind, alerts on services most hosts use and time to alert.`,
		Args: cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			ts, err := parseThresholds(thresholds)
			if err != nil {
				return err
			}
			var sets []*eval.Dataset
			for _, dir := range args {
				files, err := eval.LogFiles(dir)
				if err != nil {
					return err
				}
				lab := eval.CTULabels()
				if tp := filepath.Join(dir, "truth.csv"); fileExists(tp) {
					if lab, err = eval.ReadTruth(tp); err != nil {
						return err
					}
				}
				var col eval.Collector
				d, rs, err := df.build(&col)
				if err != nil {
					return err
				}
				m, err := df.model()
				if err != nil {
					return err
				}
				ds, err := eval.Run(filepath.Base(filepath.Clean(dir)), files, lab, rs.Mapping(), d, &col, m, baseline.DefaultConfig())
				d.Store().Close()
				if err != nil {
					return fmt.Errorf("%s: %w", dir, err)
				}
				sets = append(sets, ds)
			}
			if command == "" {
				command = "beacongrid " + strings.Join(os.Args[1:], " ")
			}
			var b bytes.Buffer
			if err := eval.Report(&b, sets, crit, ts, command); err != nil {
				return err
			}
			if out == "" || out == "-" {
				_, err = cmd.OutOrStdout().Write(b.Bytes())
				return err
			}
			if err := os.WriteFile(out, b.Bytes(), 0o644); err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "report: %s\n", out)
			return nil
		},
	}
	df.add(c)
	c.Flags().StringVar(&out, "out", "", "write the Markdown report here (default: standard output)")
	c.Flags().StringVar(&thresholds, "baseline-thresholds", "0.7,0.8,0.9", "RITA-style score thresholds to report")
	c.Flags().StringVar(&command, "command", "", "command line to print in the report (default: this one)")
	c.Flags().DurationVar(&crit.MinSpan, "target-span", crit.MinSpan, "a target C2 flow is active at least this long")
	c.Flags().IntVar(&crit.MinCallbacks, "target-callbacks", crit.MinCallbacks, "and makes at least this many callbacks")
	c.Flags().Float64Var(&crit.WideShare, "wide-share", crit.WideShare, "a destination more than this share of sources reach is a service most hosts use")
	return c
}

func parseThresholds(s string) ([]float64, error) {
	var out []float64
	for _, p := range strings.Split(s, ",") {
		if p = strings.TrimSpace(p); p == "" {
			continue
		}
		t, err := strconv.ParseFloat(p, 64)
		if err != nil || t < 0 || t > 1 {
			return nil, fmt.Errorf("--baseline-thresholds: %q is not a score in [0, 1]", p)
		}
		out = append(out, t)
	}
	return out, nil
}

func fileExists(p string) bool {
	st, err := os.Stat(p)
	return err == nil && st.Mode().IsRegular()
}
