package main

import (
	"bytes"
	"encoding/csv"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestFeaturesDeterministic runs `beacongrid features` twice on the same
// simulated logs: the two files must be byte for byte the same (the row
// order changes the model LightGBM trains), and the rows of each checkpoint
// come in (src, dst) order.
func TestFeaturesDeterministic(t *testing.T) {
	dir := t.TempDir()
	logs := filepath.Join(dir, "logs")
	if out, err := runSimulate(t, "--hosts", "20", "--days", "1", "--seed", "101", "--c2-per-100", "25", "--out", logs); err != nil {
		t.Fatalf("simulate: %v\n%s", err, out)
	}
	var files [2][]byte
	for i := range files {
		csvPath := filepath.Join(dir, "f"+string(rune('1'+i))+".csv")
		out, err := runFeatures(t, "--min-active", "10", "--every", "240", "--group-prefix", "x:",
			"--truth", filepath.Join(logs, "truth.csv"), "--out", csvPath,
			filepath.Join(logs, "http.log"), filepath.Join(logs, "ssl.log"), filepath.Join(logs, "conn.log"))
		if err != nil {
			t.Fatalf("features: %v\n%s", err, out)
		}
		if files[i], err = os.ReadFile(csvPath); err != nil {
			t.Fatal(err)
		}
	}
	if !bytes.Equal(files[0], files[1]) {
		t.Fatalf("two runs on the same logs wrote different files (%d and %d bytes)", len(files[0]), len(files[1]))
	}
	recs, err := csv.NewReader(bytes.NewReader(files[0])).ReadAll()
	if err != nil {
		t.Fatal(err)
	}
	if len(recs) < 100 || strings.Join(recs[0][:6], ",") != "src,dst,label,kind,group,at_minute" {
		t.Fatalf("%d rows, header %v", len(recs), recs[0])
	}
	// A checkpoint writes a row for every flow with enough activity, all at
	// the watermark's minute; the end-of-logs checkpoint is the file's last
	// rows, one per distinct flow among the rows at the last minute (growth
	// rows of that minute come before it). Its keys must ascend strictly.
	last := recs[len(recs)-1][5]
	keys := map[string]bool{}
	for _, r := range recs[1:] {
		if r[5] == last {
			keys[r[0]+"\x00"+r[1]] = true
		}
	}
	final := recs[len(recs)-len(keys):]
	if len(final) < 20 {
		t.Fatalf("final checkpoint has only %d rows", len(final))
	}
	for i := 1; i < len(final); i++ {
		a, b := final[i-1][0]+"\x00"+final[i-1][1], final[i][0]+"\x00"+final[i][1]
		if a >= b {
			t.Fatalf("final checkpoint rows out of order: %q then %q", a, b)
		}
	}
}
