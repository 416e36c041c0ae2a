package main

import (
	"bufio"
	"encoding/csv"
	"fmt"
	"io"
	"os"
	"slices"
	"strconv"
	"strings"

	"github.com/spf13/cobra"

	"github.com/beacongrid/beacongrid/cache"
	"github.com/beacongrid/beacongrid/detect"
	"github.com/beacongrid/beacongrid/fields"
	"github.com/beacongrid/beacongrid/replay"
	"github.com/beacongrid/beacongrid/rules"
)

func init() { register(newFeaturesCmd) }

// truthKey is a labelled flow.
type truthKey struct{ src, dst string }

type truthRow struct{ label, kind string }

// readTruth reads a simulator truth file: a CSV with a header naming at
// least src, dst, label and kind.
func readTruth(path string) (map[truthKey]truthRow, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	r := csv.NewReader(bufio.NewReader(f))
	head, err := r.Read()
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	col := map[string]int{}
	for i, h := range head {
		col[h] = i
	}
	for _, need := range []string{"src", "dst", "label", "kind"} {
		if _, ok := col[need]; !ok {
			return nil, fmt.Errorf("%s: no %q column", path, need)
		}
	}
	out := map[truthKey]truthRow{}
	for {
		rec, err := r.Read()
		if err == io.EOF {
			return out, nil
		}
		if err != nil {
			return nil, fmt.Errorf("%s: %w", path, err)
		}
		out[truthKey{rec[col["src"]], rec[col["dst"]]}] = truthRow{rec[col["label"]], rec[col["kind"]]}
	}
}

func newFeaturesCmd() *cobra.Command {
	var truth, out, rulesFile, groupPrefix string
	var every, minActive int
	c := &cobra.Command{
		Use:   "features --truth TRUTH.csv --out FEATURES.csv FILE...",
		Short: "Write the feature vectors of labelled flows, sampled through the day, for training",
		Args:  cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			labels, err := readTruth(truth)
			if err != nil {
				return err
			}
			var rs *rules.Set
			if rulesFile != "" {
				if rs, err = rules.Load(rulesFile); err != nil {
					return err
				}
			}
			store, err := cache.New(cache.Config{MaxBytes: 4 << 30})
			if err != nil {
				return err
			}
			defer store.Close()
			f, err := os.Create(out)
			if err != nil {
				return err
			}
			w := csv.NewWriter(bufio.NewWriter(f))
			w.Write(append([]string{"src", "dst", "label", "kind", "group", "at_minute"}, detect.FeatureNames...))
			var fz detect.Featurizer
			var view cache.View
			feats := make([]float64, detect.NumFeatures)
			row := make([]string, 6+detect.NumFeatures)
			rows, unlabelled := 0, 0
			// write emits one row for fl if it has enough activity and a label.
			write := func(fl *cache.Flow) int {
				store.Snapshot(fl, &view)
				sm := fz.Compute(&view, feats)
				if sm.ActiveMinutes < minActive {
					return sm.ActiveMinutes
				}
				t, ok := labels[truthKey{view.Src, view.Dst}]
				if !ok {
					unlabelled++
					return sm.ActiveMinutes
				}
				lab := "0"
				if t.label == "malicious" || t.label == "1" {
					lab = "1"
				}
				row[0], row[1], row[2], row[3], row[4] = view.Src, view.Dst, lab, t.kind, groupPrefix+view.Dst
				row[5] = strconv.Itoa(int(view.End))
				for i, x := range feats {
					row[6+i] = strconv.FormatFloat(x, 'g', 10, 64)
				}
				w.Write(row)
				rows++
				return sm.ActiveMinutes
			}
			// Checkpoints sample every flow, including ones gone quiet, in
			// (src, dst) order: Store.Range walks hash maps, whose order
			// changes from run to run, and the row order changes what
			// LightGBM learns (its binning sample and bagging pick rows by
			// index), so an unsorted walk made the training set, and the
			// model, differ between two runs on the same logs.
			var ckpt []checkpointFlow
			emit := func() {
				store.Wait()
				ckpt = ckpt[:0]
				store.Range(func(fl *cache.Flow) bool {
					ckpt = append(ckpt, checkpointFlow{fl.Src(), fl.Dst(), fl})
					return true
				})
				slices.SortFunc(ckpt, compareCheckpoint)
				for _, c := range ckpt {
					write(c.fl)
				}
			}
			// Growth samples: when the detector would score a flow, take a row
			// each time its active minutes have grown by half since the last
			// one, so early, sparse states are in the training set as they
			// are at inference.
			level := map[*cache.Flow]int{}
			next := int32(0)
			var buf []byte
			_, err = replay.Run(args, replay.NewMatcher(rs.Mapping()), func(e *fields.Event) {
				if !e.HasTime {
					return
				}
				src, dst, b, ok := e.Flow(buf)
				buf = b
				if !ok {
					return
				}
				src = b[:len(src)] // dst follows it: hashed in one call, as the detector passes them
				fl, due, r := store.Observe(src, dst, e.Sec, e.Size)
				if r == cache.Counted && due {
					store.Snapshot(fl, &view)
					fl.SetMarks(cache.Marks{NextScore: view.End + 5})
					if act := activeMinutes(&view); act >= minActive && act*2 >= level[fl]*3 {
						write(fl)
						level[fl] = act
					}
				}
				wm := store.Watermark()
				if next == 0 {
					next = wm + int32(every)
				}
				if wm >= next {
					emit()
					next = wm + int32(every)
				}
			}, nil)
			if err != nil {
				f.Close()
				return err
			}
			emit()
			w.Flush()
			if err := w.Error(); err != nil {
				f.Close()
				return err
			}
			if err := f.Close(); err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "wrote %d rows to %s (%d unlabelled flow samples skipped)\n", rows, out, unlabelled)
			return nil
		},
	}
	c.Flags().StringVar(&truth, "truth", "", "ground-truth CSV (src,dst,label,kind) from beacongrid simulate")
	c.Flags().StringVar(&out, "out", "features.csv", "output CSV")
	c.Flags().StringVar(&rulesFile, "rules", "", "rules file (for field mappings)")
	c.Flags().StringVar(&groupPrefix, "group-prefix", "", "prefix of the group column (the training split keeps a group whole), e.g. the simulation seed")
	c.Flags().IntVar(&every, "every", 240, "sample every flow each N minutes of event time")
	c.Flags().IntVar(&minActive, "min-active", 10, "skip flows with fewer active minutes")
	c.MarkFlagRequired("truth")
	return c
}

func activeMinutes(v *cache.View) int {
	n := 0
	for _, c := range v.Counts {
		if c != 0 {
			n++
		}
	}
	return n
}

// checkpointFlow is a flow met by a checkpoint, with its key for sorting.
type checkpointFlow struct {
	src, dst string
	fl       *cache.Flow
}

// compareCheckpoint orders checkpoint flows by source, then destination: a
// flow's key, so the order is total.
func compareCheckpoint(a, b checkpointFlow) int {
	if c := strings.Compare(a.src, b.src); c != 0 {
		return c
	}
	return strings.Compare(a.dst, b.dst)
}
