package sidecar

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/beacongrid/beacongrid/alert"
	"github.com/beacongrid/beacongrid/spool"
)

// testAlert returns a fully populated alert; i makes its id and source IP
// unique.
func testAlert(i int) alert.Alert {
	end := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	src := fmt.Sprintf("10.%d.%d.%d", i>>16&255, i>>8&255, i&255)
	dst := "c2.example.net"
	m := make([]uint16, alert.MatrixLen)
	for k := range m {
		if k%5 == 0 {
			m[k] = uint16(1 + k%3)
		}
	}
	m[7] = 40000 // above int16: must survive (the matrix is not indexed)
	return alert.Alert{
		Timestamp: end,
		Event: alert.Event{
			ID: alert.ID(src, dst, end.Unix()/60), Kind: "alert", Module: "beacongrid",
			Dataset: "beacongrid.alert", Category: []string{"network", "intrusion_detection"},
			Severity: 73, Start: end.Add(-24 * time.Hour), End: end.Add(-time.Minute), Created: end.Add(time.Second),
		},
		Source:      alert.Source{IP: src},
		Destination: alert.Destination{Domain: dst, IP: "203.0.113.7", Port: 443},
		Rule:        alert.Rule{Name: "beacon-model", Ruleset: "default", Severity: "high"},
		Beacon: alert.Beacon{
			Score: 0.93, Threshold: 0.8, PeriodS: 300, Jitter: 0.04, ActiveMinutes: 288,
			Requests: 290, Prevalence: 1, Matrix: m, WindowEnd: end, ModelVersion: "lgbm-2026.02",
			Reasons: []alert.Reason{{Feature: "period_strength", Value: 0.97, Contribution: 1.2}},
		},
		Observer: &alert.Observer{Hostname: "fb-01", Name: "zeek-in"},
		Tags:     []string{"beacon"},
		Host:     &alert.Host{Name: "ws-17", Owner: "finance", Criticality: "high"},
		Threat:   &alert.Threat{Indicator: []string{"c2.example.net"}, Feed: "internal"},
	}
}

func alertLine(t testing.TB, a alert.Alert) []byte {
	t.Helper()
	b, err := json.Marshal(a)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// writeSpool appends lines to dir through a spool.Writer (one new segment
// per call, as a restarted plugin would).
func writeSpool(t testing.TB, dir string, lines ...[]byte) {
	t.Helper()
	w, err := spool.OpenWriter(spool.WriterConfig{Dir: dir, NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	if err := w.Append(lines...); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
}

// writeAlerts writes n test alerts, numbered from first.
func writeAlerts(t testing.TB, dir string, first, n int) []alert.Alert {
	t.Helper()
	var out []alert.Alert
	var lines [][]byte
	for i := first; i < first+n; i++ {
		a := testAlert(i)
		out = append(out, a)
		lines = append(lines, alertLine(t, a))
	}
	writeSpool(t, dir, lines...)
	return out
}

func openReader(t testing.TB, dir string) *spool.Reader {
	t.Helper()
	r, err := spool.OpenReader(dir)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// checkpoint returns the committed position, or false when none is.
func checkpoint(t testing.TB, dir string) (spool.Position, bool) {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(dir, "checkpoint.json"))
	if os.IsNotExist(err) {
		return spool.Position{}, false
	}
	if err != nil {
		t.Fatal(err)
	}
	var p spool.Position
	if err := json.Unmarshal(b, &p); err != nil {
		t.Fatal(err)
	}
	return p, true
}

// readDeadLetters returns the dead letters written in dir.
func readDeadLetters(t testing.TB, dir string) []DeadLetter {
	t.Helper()
	b, err := os.ReadFile(deadLetterPath(dir))
	if os.IsNotExist(err) {
		return nil
	}
	if err != nil {
		t.Fatal(err)
	}
	var out []DeadLetter
	for _, l := range splitLines(b) {
		var dl DeadLetter
		if err := json.Unmarshal(l, &dl); err != nil {
			t.Fatalf("dead letter %q: %v", l, err)
		}
		out = append(out, dl)
	}
	return out
}

func splitLines(b []byte) [][]byte {
	var out [][]byte
	for len(b) > 0 {
		i := 0
		for i < len(b) && b[i] != '\n' {
			i++
		}
		if i > 0 {
			out = append(out, b[:i])
		}
		if i == len(b) {
			break
		}
		b = b[i+1:]
	}
	return out
}

// testConfig is a config with fast timings for tests.
func testConfig(dir string, addrs ...string) Config {
	c := DefaultConfig()
	c.SpoolDir = dir
	c.Addresses = addrs
	if len(addrs) == 0 {
		c.Addresses = []string{"http://127.0.0.1:1"}
	}
	c.BatchSize = 7
	c.FlushInterval = 5 * time.Millisecond
	c.PollInterval = 2 * time.Millisecond
	c.RequestTimeout = 5 * time.Second
	c.MinBackoff = time.Millisecond
	c.MaxBackoff = 4 * time.Millisecond
	c.Listen = ""
	return c
}
