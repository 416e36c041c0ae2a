package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/beacongrid/beacongrid/sidecar"
	"github.com/spf13/cobra"
)

func init() { register(newSidecarCmd) }

// sidecarFlags are the command line of `beacongrid sidecar`.
type sidecarFlags struct {
	cfg       sidecar.Config
	es        []string
	once      bool
	logLevel  string
	logFormat string
}

func newSidecarCmd() *cobra.Command {
	f := &sidecarFlags{cfg: sidecar.DefaultConfig()}
	cmd := &cobra.Command{
		Use:   "sidecar",
		Short: "Deliver alerts from the spool into Elasticsearch",
		Long: `sidecar reads the alert spool written by the Fluent Bit plugin and indexes
every alert into Elasticsearch (document id = event.id, so re-delivery never
duplicates). It installs the index template at start, retries transient
failures with backoff, writes permanently rejected or malformed lines to
<spool>/` + sidecar.DeadLetterFile + `, and commits the spool position only after a
batch is delivered.

Credentials come from the environment only:
  ` + sidecar.EnvAPIKey + ` or ` + sidecar.EnvUsername + ` + ` + sidecar.EnvPassword + `,
  or the same names with _FILE naming a file that holds the value.
Addresses come from --es or ` + sidecar.EnvURL + ` (comma-separated).

Enrichment: host.* from --inventory by source.ip, threat.* from --ioc lists
(reloaded when the files change), and beacongrid.* (first time this collector
alerted on the destination and the flow, and how many sources alerted on the
destination; kept in <spool>/sightings.json).

It serves /metrics, /healthz and /readyz on --listen (loopback by default),
and the alerts page at /ui/ when ` + sidecar.EnvWebToken + ` (or _FILE) sets its token.
SIGINT or SIGTERM stops it after the batches in flight.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runSidecar(cmd, f)
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&f.cfg.SpoolDir, "spool", "", "spool `dir`ectory written by the plugin (required)")
	fl.StringArrayVar(&f.es, "es", nil, "Elasticsearch `URL`; repeat or comma-separate for several (default $"+sidecar.EnvURL+")")
	fl.StringVar(&f.cfg.Index, "index", f.cfg.Index, "target index `name` (also the index template's name)")
	fl.StringVar(&f.cfg.Listen, "listen", f.cfg.Listen, "`address` for /metrics, /healthz, /readyz; empty disables (with --once: off unless set)")
	fl.BoolVar(&f.once, "once", false, "deliver everything in the spool, then exit")
	fl.StringVar(&f.cfg.CAFile, "ca-file", "", "PEM `file` of CA certificates for https Elasticsearch")
	fl.StringVar(&f.cfg.Target, "target", f.cfg.Target, "where alerts go: auto (a data stream, with an ILM policy, when the cluster supports them, else an index), index or data-stream")
	fl.DurationVar(&f.cfg.Retention, "retention", f.cfg.Retention, "how long the ILM policy keeps an index after rollover (data streams with ILM)")
	fl.IntVar(&f.cfg.BatchSize, "batch-size", f.cfg.BatchSize, "most alerts per bulk request")
	fl.IntVar(&f.cfg.Workers, "workers", f.cfg.Workers, "bulk requests in flight at once (the spool position is still committed in order)")
	fl.StringVar(&f.cfg.InventoryFile, "inventory", "", "asset inventory `file` (CSV with header ip,hostname,owner,criticality, or a JSON array of such objects); adds host.* by source.ip")
	fl.StringArrayVar(&f.cfg.IOCFiles, "ioc", nil, "threat-intelligence indicator list `file` (one IP, CIDR or domain per line); repeat for several; adds threat.* on a destination match")
	fl.DurationVar(&f.cfg.IOCReload, "reload-interval", f.cfg.IOCReload, "how often the inventory and IOC files are checked for changes")
	fl.DurationVar(&f.cfg.FlushInterval, "flush-interval", f.cfg.FlushInterval, "longest wait to fill a batch")
	fl.DurationVar(&f.cfg.PollInterval, "poll-interval", f.cfg.PollInterval, "how often an idle spool is read")
	fl.DurationVar(&f.cfg.RequestTimeout, "request-timeout", f.cfg.RequestTimeout, "timeout of one request to Elasticsearch")
	fl.DurationVar(&f.cfg.MaxBackoff, "max-backoff", f.cfg.MaxBackoff, "longest wait between retries")
	addRulesFlags(fl, &f.cfg.Rules)
	fl.StringVar(&f.logLevel, "log-level", "info", "debug, info, warn or error")
	fl.StringVar(&f.logFormat, "log-format", "json", "json or text")
	return cmd
}

func runSidecar(cmd *cobra.Command, f *sidecarFlags) error {
	log, err := newLogger(cmd.ErrOrStderr(), f.logLevel, f.logFormat)
	if err != nil {
		return err
	}
	cfg := f.cfg
	if cfg.Addresses, err = sidecar.ParseAddresses(f.es); err != nil {
		return fmt.Errorf("--es: %w", err)
	}
	if f.once && !cmd.Flags().Changed("listen") {
		cfg.Listen = ""
	}
	if err := cfg.LoadEnv(sidecar.OSEnv()); err != nil {
		return err
	}
	if err := cfg.Validate(); err != nil {
		return fmt.Errorf("sidecar configuration: %w", err)
	}
	ctx, cancel := context.WithCancel(cmd.Context())
	defer cancel()
	stopSignals := onSignals(cancel, log)
	defer stopSignals()
	return sidecar.Run(ctx, cfg, log, f.once)
}

// onSignals calls cancel on the first SIGINT or SIGTERM, and exits at once
// on the second (the spool makes that safe: undelivered lines are re-sent).
// The returned function stops listening.
func onSignals(cancel context.CancelFunc, log *slog.Logger) func() {
	sigs := make(chan os.Signal, 2)
	done := make(chan struct{})
	signal.Notify(sigs, os.Interrupt, syscall.SIGTERM)
	go func() {
		for n := 0; ; n++ {
			select {
			case <-done:
				return
			case s := <-sigs:
				if n > 0 {
					log.Warn("second signal; exiting now", "signal", s.String())
					os.Exit(1)
				}
				log.Info("signal received; finishing the batch in flight", "signal", s.String())
				cancel()
			}
		}
	}()
	return func() {
		signal.Stop(sigs)
		close(done)
	}
}

func newLogger(w io.Writer, level, format string) (*slog.Logger, error) {
	var lv slog.Level
	if err := lv.UnmarshalText([]byte(level)); err != nil {
		return nil, fmt.Errorf("--log-level %q: want debug, info, warn or error", level)
	}
	opts := &slog.HandlerOptions{Level: lv}
	switch strings.ToLower(format) {
	case "json":
		return slog.New(slog.NewJSONHandler(w, opts)), nil
	case "text":
		return slog.New(slog.NewTextHandler(w, opts)), nil
	}
	return nil, fmt.Errorf("--log-format %q: want json or text", format)
}
