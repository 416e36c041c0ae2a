package sidecar

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"path/filepath"
	"time"

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
	rl, err := StartRules(cfg.Rules, reg, log)
	if err != nil {
		return err
	}
	defer func() { err = errors.Join(err, rl.Stop()) }()
	sightingsPath := filepath.Join(cfg.SpoolDir, sightingsFile)
	sightings, err := LoadSightings(sightingsPath)
	if err != nil {
		return err
	}
	enricher, reloader, err := NewReloader(cfg.InventoryFile, cfg.IOCFiles, sightings, m, log)
	if err != nil {
		return err
	}
	bg, stopBG := context.WithCancel(context.WithoutCancel(ctx))
	bgDone := make(chan struct{})
	go func() {
		defer close(bgDone)
		background(bg, cfg.IOCReload, reloader, sightings, sightingsPath, log)
	}()
	defer func() {
		stopBG()
		<-bgDone
		if serr := sightings.Save(sightingsPath); serr != nil {
			log.Error("cannot save sightings", "err", serr)
		}
	}()
	recent := NewRecent(DefaultRecent)
	d := NewDeliverer(cfg, reader, idx, Options{Logger: log, Metrics: m, Recent: recent, Enricher: enricher})
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
		mode, ilm := idx.Mode()
		log.Info("sidecar stopped", "position", reader.Position(), "mode", mode, "ilm", ilm)
	}
	return err
}

// background reloads changed enrichment files every reload interval and
// saves the sightings every sightingsSaveInterval, until ctx is done.
func background(ctx context.Context, reload time.Duration, r *Reloader, s *Sightings, path string, log *slog.Logger) {
	tick := time.NewTicker(reload)
	defer tick.Stop()
	lastSave := time.Now()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		r.Check()
		if time.Since(lastSave) >= sightingsSaveInterval {
			lastSave = time.Now()
			if err := s.Save(path); err != nil {
				log.Error("cannot save sightings", "err", err)
			}
		}
	}
}
