package main

import (
	"errors"
	"fmt"
	"time"

	"github.com/spf13/cobra"

	"github.com/beacongrid/beacongrid/sim"
)

func init() { register(newSimulateCmd) }

func newSimulateCmd() *cobra.Command {
	var (
		cfg    sim.Config
		out    string
		start  string
		opt    sim.WriteOptions
		noC2   bool
		c2Rate float64
	)
	cmd := &cobra.Command{
		Use:   "simulate --out DIR",
		Short: "Write simulated Zeek logs (http, conn, ssl) and truth.csv",
		Long: `Simulate an organisation's outbound traffic for --days days and write Zeek TSV
logs (http.log, conn.log, ssl.log, or .log.gz with --gzip) and truth.csv, which
labels every flow (src,dst,label,kind,detail). The same flags always produce
byte-identical files. See docs/simulator.md for what is simulated.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if out == "" {
				return errors.New("simulate: --out is required")
			}
			if cfg.Hosts < 1 {
				return fmt.Errorf("simulate: --hosts must be at least 1, not %d", cfg.Hosts)
			}
			if cfg.Days < 1 {
				return fmt.Errorf("simulate: --days must be at least 1, not %d", cfg.Days)
			}
			if start != "" {
				t, err := parseStart(start)
				if err != nil {
					return err
				}
				cfg.Start = t
			}
			switch {
			case noC2:
				cfg.C2PerHundred = -1
			case c2Rate < 0:
				return fmt.Errorf("simulate: --c2-per-100 must not be negative (use --no-c2)")
			case c2Rate == 0:
				cfg.C2PerHundred = -1
			default:
				cfg.C2PerHundred = c2Rate
			}
			began := time.Now()
			sum, err := sim.WriteDir(cfg, out, opt)
			if err != nil {
				return err
			}
			w := cmd.OutOrStdout()
			fmt.Fprint(w, sum)
			fmt.Fprintf(w, "wrote %d records to %s in %.1fs\n", sum.TotalEvents(), out, time.Since(began).Seconds())
			return nil
		},
	}
	f := cmd.Flags()
	f.IntVar(&cfg.Hosts, "hosts", sim.DefaultHosts, "number of internal hosts")
	f.IntVar(&cfg.Days, "days", sim.DefaultDays, "days to simulate")
	f.Int64Var(&cfg.Seed, "seed", 1, "random seed (same seed, same output)")
	f.StringVarP(&out, "out", "o", "", "output directory (created if missing)")
	f.BoolVar(&opt.Gzip, "gzip", false, "gzip the logs")
	f.BoolVar(&opt.LabelColumns, "labels", false, "append CTU-style label and detailedlabel columns to the logs")
	f.StringVar(&start, "start", "", "start time, RFC 3339 or YYYY-MM-DD (default "+sim.DefaultStart.Format("2006-01-02")+", a Monday, UTC)")
	f.Float64Var(&c2Rate, "c2-per-100", sim.DefaultC2PerHundred, "implanted hosts per 100 hosts (0 for none); with 50+ hosts every C2 kind appears at least once")
	f.BoolVar(&noC2, "no-c2", false, "simulate benign traffic only")
	f.BoolVar(&cfg.TrainingMix, "training-mix", false, "add the harder implants a training set needs (docs/simulator.md)")
	return cmd
}

func parseStart(s string) (time.Time, error) {
	if t, err := time.Parse(time.RFC3339, s); err == nil {
		return t, nil
	}
	if t, err := time.Parse("2006-01-02", s); err == nil {
		return t, nil
	}
	return time.Time{}, fmt.Errorf("simulate: --start %q: want RFC 3339 (2024-03-04T00:00:00Z) or YYYY-MM-DD", s)
}
