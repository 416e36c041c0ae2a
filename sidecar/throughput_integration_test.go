//go:build integration

package sidecar

import (
	"context"
	"fmt"
	"os"
	"strconv"
	"testing"
	"time"

	"github.com/beacongrid/beacongrid/spool"
	"github.com/prometheus/client_golang/prometheus"
)

// TestIntegrationThroughput measures sustained delivery into the real
// single-node Elasticsearch: BEACONGRID_IT_THROUGHPUT_N alerts (default
// 60000) are written to the spool first, then drained; the rate is
// alerts indexed per second of Drain. It fails below 5,000 alerts/s.
func TestIntegrationThroughput(t *testing.T) {
	url, index := itES(t)
	n := 60000
	if v := os.Getenv("BEACONGRID_IT_THROUGHPUT_N"); v != "" {
		n, _ = strconv.Atoi(v)
	}
	dir := t.TempDir()
	w, err := spool.OpenWriter(spool.WriterConfig{Dir: dir, NoSync: true, SegmentBytes: 64 << 20, MaxBytes: 8 << 30})
	if err != nil {
		t.Fatal(err)
	}
	var lines [][]byte
	for i := 0; i < n; i++ {
		a := testAlert(i)
		a.Host, a.Threat = nil, nil
		lines = append(lines, alertLine(t, a))
		if len(lines) == 1000 {
			if err := w.Append(lines...); err != nil {
				t.Fatal(err)
			}
			lines = lines[:0]
		}
	}
	if err := w.Append(lines...); err != nil {
		t.Fatal(err)
	}
	w.Close()
	cfg := testConfig(dir, url)
	cfg.Index = index
	cfg.BatchSize = envInt("BEACONGRID_IT_BATCH", 1000)
	cfg.Workers = envInt("BEACONGRID_IT_WORKERS", DefaultWorkers)
	cfg.RequestTimeout = time.Minute
	idx, err := NewESIndexer(cfg)
	if err != nil {
		t.Fatal(err)
	}
	m, _ := NewMetrics(prometheus.NewRegistry(), dir)
	d := NewDeliverer(cfg, openReader(t, dir), idx, Options{Logger: quietLog(), Metrics: m})
	if err := idx.Setup(context.Background()); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	if err := d.Drain(context.Background()); err != nil {
		t.Fatal(err)
	}
	el := time.Since(start)
	rate := float64(n) / el.Seconds()
	if got := itCount(t, url, index); got != n {
		t.Fatalf("_count = %d, want %d", got, n)
	}
	fmt.Printf("sidecar delivery: %d alerts in %.2fs = %.0f alerts/s (batch %d, workers %d, bulk p50 latency n/a)\n", n, el.Seconds(), rate, cfg.BatchSize, cfg.Workers)
	if rate < 5000 {
		t.Errorf("%.0f alerts/s, want >= 5000", rate)
	}
}

func envInt(k string, def int) int {
	if v, err := strconv.Atoi(os.Getenv(k)); err == nil && v > 0 {
		return v
	}
	return def
}
