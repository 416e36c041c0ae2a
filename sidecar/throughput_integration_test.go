//go:build integration

package sidecar

import (
	"context"
	"fmt"
	"net/http"
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
//
// A node just started runs its code interpreted until the JVM has compiled
// it, at several times the steady cost, so rounds of BEACONGRID_IT_WARMUP
// alerts (default 10000; 0 for none) go to a separate index first, untimed,
// until Elasticsearch's CPU per alert changes by less than 10% from one
// round to the next (at least 4 rounds, at most BEACONGRID_IT_WARMUP_ROUNDS,
// default 10), and that index is removed. BEACONGRID_IT_NO_MATRIX=1 drops beacon.matrix
// from the alerts, to show its share of the cost; BEACONGRID_IT_LEGACY=1
// writes it as the legacy array, which the sidecar converts (the cost of a
// spool left by an older plugin).
func TestIntegrationThroughput(t *testing.T) {
	if os.Getenv("BEACONGRID_IT_THROUGHPUT") != "1" {
		t.Skip("benchmark: set BEACONGRID_IT_THROUGHPUT=1 (make sidecar-throughput)")
	}
	url, index := itES(t)
	n := 60000
	if v := os.Getenv("BEACONGRID_IT_THROUGHPUT_N"); v != "" {
		n, _ = strconv.Atoi(v)
	}
	warm := 10000
	if v, err := strconv.Atoi(os.Getenv("BEACONGRID_IT_WARMUP")); err == nil && v >= 0 {
		warm = v
	}
	cfg := testConfig("", url)
	cfg.BatchSize = envInt("BEACONGRID_IT_BATCH", 1000)
	cfg.Workers = envInt("BEACONGRID_IT_WORKERS", DefaultWorkers)
	cfg.RequestTimeout = time.Minute
	esPid := esPID(t)
	if warm > 0 {
		// Rounds of warm alerts until Elasticsearch's CPU per alert is
		// within 10% of the round before, after at least minRounds (at
		// most maxRounds): under load the JVM keeps compiling for a while.
		wcfg := cfg
		wcfg.Index = index + "-warmup"
		t.Cleanup(func() {
			esDo(t, http.MethodDelete, url+"/"+wcfg.Index, nil, nil)
			esDo(t, http.MethodDelete, url+"/_index_template/"+wcfg.Index, nil, nil)
		})
		const minRounds = 4
		maxRounds := envInt("BEACONGRID_IT_WARMUP_ROUNDS", 10)
		prev := 0.0
		for r := 0; r < maxRounds; r++ {
			wcfg.SpoolDir = t.TempDir()
			spoolThroughputAlerts(t, wcfg.SpoolDir, 1_000_000+r*warm, warm)
			d := throughputDeliverer(t, wcfg)
			es0 := procCPU(t, esPid)
			start := time.Now()
			if err := d.Drain(context.Background()); err != nil {
				t.Fatal(err)
			}
			us := (procCPU(t, esPid) - es0).Seconds() / float64(warm) * 1e6
			fmt.Printf("warm-up round %d: %d alerts in %.2fs, elasticsearch %.1f us/alert\n", r+1, warm, time.Since(start).Seconds(), us)
			if r+1 >= minRounds && us > 0.9*prev && us < 1.1*prev {
				break
			}
			prev = us
		}
	}
	cfg.Index = index
	cfg.SpoolDir = t.TempDir()
	bytes := spoolThroughputAlerts(t, cfg.SpoolDir, 0, n)
	d := throughputDeliverer(t, cfg)
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
	fmt.Printf("sidecar delivery: %d alerts (%d bytes of JSON each) in %.2fs = %.0f alerts/s (batch %d, workers %d)\n"+
		"  CPU: sidecar %.1f us/alert, elasticsearch %.1f us/alert; %d cores => %.0f alerts/s if both had the cores to themselves\n"+
		"  load average during the run: %s",
		n, bytes/max(n, 1), el.Seconds(), rate, cfg.BatchSize, cfg.Workers,
		meCPU.Seconds()/float64(n)*1e6, esCPU.Seconds()/float64(n)*1e6, runtime.NumCPU(), float64(runtime.NumCPU())/perAlert, load)
	if minRate := envInt("BEACONGRID_IT_MIN_RATE", 5000); rate < float64(minRate) {
		t.Errorf("%.0f alerts/s, want >= %d", rate, minRate)
	}
}

// spoolThroughputAlerts writes n test alerts numbered from first to a
// spool in dir, shaped by BEACONGRID_IT_NO_MATRIX and BEACONGRID_IT_LEGACY,
// and returns the bytes of JSON written.
func spoolThroughputAlerts(t *testing.T, dir string, first, n int) int {
	t.Helper()
	noMatrix := os.Getenv("BEACONGRID_IT_NO_MATRIX") == "1"
	legacy := os.Getenv("BEACONGRID_IT_LEGACY") == "1"
	w, err := spool.OpenWriter(spool.WriterConfig{Dir: dir, NoSync: true, SegmentBytes: 64 << 20, MaxBytes: 8 << 30})
	if err != nil {
		t.Fatal(err)
	}
	total := 0
	var lines [][]byte
	for i := first; i < first+n; i++ {
		a := testAlert(i)
		a.Host, a.Threat = nil, nil
		var line []byte
		switch {
		case noMatrix:
			a.Beacon.Matrix = nil // to measure what the matrix costs
			line = alertLine(t, a)
		case legacy:
			line = legacyLine(t, a)
		default:
			line = alertLine(t, a)
		}
		total += len(line)
		lines = append(lines, line)
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
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return total
}

// throughputDeliverer sets up cfg's index and returns a Deliverer of its
// spool.
func throughputDeliverer(t *testing.T, cfg Config) *Deliverer {
	t.Helper()
	idx, err := NewESIndexer(cfg)
	if err != nil {
		t.Fatal(err)
	}
	m, _ := NewMetrics(prometheus.NewRegistry(), cfg.SpoolDir)
	d := NewDeliverer(cfg, openReader(t, cfg.SpoolDir), idx, Options{Logger: quietLog(), Metrics: m})
	if err := idx.Setup(context.Background()); err != nil {
		t.Fatal(err)
	}
	return d
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
