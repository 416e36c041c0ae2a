//go:build integration

package sidecar

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/beacongrid/beacongrid/spool"
	"github.com/prometheus/client_golang/prometheus"
)

// TestIntegrationThroughput measures sustained delivery into the real
// single-node Elasticsearch: BEACONGRID_IT_THROUGHPUT_N alerts (default
// 60000) are written to the spool first, then drained; the rate is alerts
// indexed per second of Drain, and the CPU time the sidecar (this process)
// and Elasticsearch spent per alert. It fails below BEACONGRID_IT_MIN_RATE
// alerts/s (default 5000). It is a benchmark: it runs only with
// BEACONGRID_IT_THROUGHPUT=1 (make sidecar-throughput), because on a
// machine shared with other work the wall-clock rate measures the sharing.
// BEACONGRID_IT_NO_MATRIX=1 drops beacon.matrix from the alerts, to show
// its share of the cost.
func TestIntegrationThroughput(t *testing.T) {
	if os.Getenv("BEACONGRID_IT_THROUGHPUT") != "1" {
		t.Skip("benchmark: set BEACONGRID_IT_THROUGHPUT=1 (make sidecar-throughput)")
	}
	url, index := itES(t)
	n := 60000
	if v := os.Getenv("BEACONGRID_IT_THROUGHPUT_N"); v != "" {
		n, _ = strconv.Atoi(v)
	}
	noMatrix := os.Getenv("BEACONGRID_IT_NO_MATRIX") == "1"
	dir := t.TempDir()
	w, err := spool.OpenWriter(spool.WriterConfig{Dir: dir, NoSync: true, SegmentBytes: 64 << 20, MaxBytes: 8 << 30})
	if err != nil {
		t.Fatal(err)
	}
	var lines [][]byte
	for i := 0; i < n; i++ {
		a := testAlert(i)
		a.Host, a.Threat = nil, nil
		if noMatrix {
			a.Beacon.Matrix = nil // to measure what the 1440 numbers cost
		}
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
	esPid := esPID(t)
	es0, me0 := procCPU(t, esPid), selfCPU()
	start := time.Now()
	if err := d.Drain(context.Background()); err != nil {
		t.Fatal(err)
	}
	el := time.Since(start)
	esCPU, meCPU := procCPU(t, esPid)-es0, selfCPU()-me0
	rate := float64(n) / el.Seconds()
	if got := itCount(t, url, index); got != n {
		t.Fatalf("_count = %d, want %d", got, n)
	}
	perAlert := (esCPU + meCPU).Seconds() / float64(n)
	load, _ := os.ReadFile("/proc/loadavg")
	fmt.Printf("sidecar delivery: %d alerts in %.2fs = %.0f alerts/s (batch %d, workers %d)\n"+
		"  CPU: sidecar %.1f us/alert, elasticsearch %.1f us/alert; %d cores => %.0f alerts/s if both had the cores to themselves\n"+
		"  load average during the run: %s",
		n, el.Seconds(), rate, cfg.BatchSize, cfg.Workers,
		meCPU.Seconds()/float64(n)*1e6, esCPU.Seconds()/float64(n)*1e6, runtime.NumCPU(), float64(runtime.NumCPU())/perAlert, load)
	if minRate := envInt("BEACONGRID_IT_MIN_RATE", 5000); rate < float64(minRate) {
		t.Errorf("%.0f alerts/s, want >= %d", rate, minRate)
	}
}

// esPID reads the pid es.sh wrote: in $ES_RUN when set (a node of its
// own, as es.sh reads it), else in .cache/es/run.
func esPID(t *testing.T) int {
	run := os.Getenv("ES_RUN")
	if run == "" {
		run = "../.cache/es/run"
	}
	b, err := os.ReadFile(filepath.Join(run, "es.pid"))
	if err != nil {
		t.Fatalf("Elasticsearch pid (es.sh start writes $ES_RUN/es.pid): %v", err)
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil {
		t.Fatal(err)
	}
	return pid
}

// procCPU is the user+system CPU time of pid (from /proc/pid/stat).
func procCPU(t *testing.T, pid int) time.Duration {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		t.Fatal(err)
	}
	s := string(b)
	f := strings.Fields(s[strings.LastIndexByte(s, 0x29)+2:])
	ut, _ := strconv.ParseInt(f[11], 10, 64)
	st, _ := strconv.ParseInt(f[12], 10, 64)
	return time.Duration(ut+st) * time.Second / 100 // USER_HZ
}

func selfCPU() time.Duration {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

func envInt(k string, def int) int {
	if v, err := strconv.Atoi(os.Getenv(k)); err == nil && v > 0 {
		return v
	}
	return def
}
