package sidecar

import (
	"context"
	"errors"
	"log/slog"
	"net/http"

	"github.com/beacongrid/beacongrid/spool"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
)

// Run is the whole sidecar: it validates cfg, opens the spool reader and an
// Elasticsearch client, starts the metrics server when cfg.Listen is set,
// and delivers until ctx is cancelled (Deliverer.Run) or, with once, until
// the spool is drained (Deliverer.Drain). It returns nil on a graceful stop.
func Run(ctx context.Context, cfg Config, log *slog.Logger, once bool) (err error) {
	if err := cfg.Validate(); err != nil {
		return err
	}
	if log == nil {
		log = slog.Default()
	}
	reader, err := spool.OpenReader(cfg.SpoolDir)
	if err != nil {
		return err
	}
	idx, err := NewESIndexer(cfg)
	if err != nil {
		return err
	}
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	m, err := NewMetrics(reg, cfg.SpoolDir)
	if err != nil {
		return err
	}
	recent := NewRecent(DefaultRecent)
	d := NewDeliverer(cfg, reader, idx, Options{Logger: log, Metrics: m, Recent: recent})
	if cfg.Listen != "" {
		mux := http.NewServeMux()
		mux.Handle("/", Handler(reg, d.Ready))
		mux.Handle("/ui/", WebHandler(cfg.WebToken, recent))
		srv, err := StartServer(cfg.Listen, mux, log)
		if err != nil {
			return err
		}
		defer func() { err = errors.Join(err, srv.Shutdown()) }()
	}
	log.Info("sidecar starting", "config", cfg, "once", once)
	if once {
		err = d.Drain(ctx)
	} else {
		err = d.Run(ctx)
	}
	if err == nil {
		log.Info("sidecar stopped", "position", reader.Position())
	}
	return err
}
