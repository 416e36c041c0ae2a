package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestSimulateCommand(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "out")
	out, err := runSimulate(t, "--hosts", "12", "--days", "1", "--seed", "3", "--out", dir, "--gzip", "--start", "2024-03-05")
	if err != nil {
		t.Fatalf("simulate: %v\n%s", err, out)
	}
	for _, f := range []string{"conn.log.gz", "http.log.gz", "ssl.log.gz", "truth.csv"} {
		if st, err := os.Stat(filepath.Join(dir, f)); err != nil || st.Size() == 0 {
			t.Errorf("%s: %v", f, err)
		}
	}
	for _, want := range []string{"simulated 2024-03-05T00:00:00Z", "records: conn=", "benign-browsing", "wrote "} {
		if !strings.Contains(out, want) {
			t.Errorf("summary lacks %q:\n%s", want, out)
		}
	}
	if out, err := runSimulate(t, "--hosts", "5", "--out", t.TempDir(), "--no-c2"); err != nil || strings.Contains(out, "c2-") {
		t.Errorf("--no-c2: %v\n%s", err, out)
	}
}

func TestSimulateFlagErrors(t *testing.T) {
	for _, args := range [][]string{
		{"--hosts", "5"},
		{"--out", "x", "--hosts", "0"},
		{"--out", "x", "--days", "0"},
		{"--out", "x", "--start", "yesterday"},
		{"--out", "x", "--c2-per-100", "-3"},
		{"--out", "x", "extra"},
	} {
		if _, err := runSimulate(t, args...); err == nil {
			t.Errorf("%v accepted", args)
		}
	}
}
