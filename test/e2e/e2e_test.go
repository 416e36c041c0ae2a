//go:build integration

// Package e2e drives the whole path for real: the C test host loads
// bin/out_beacongrid.so exactly as Fluent Bit does and flushes a simulated
// day through it; the plugin spools its alerts; `beacongrid sidecar` ships
// them to a real Elasticsearch, where a search must find exactly the
// beacon's alert.
//
// It needs BEACONGRID_BIN (the built bin/ directory) and BEACONGRID_ES_URL
// (a running Elasticsearch; `make integration` starts one).
package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/beacongrid/beacongrid/alert"
	"github.com/beacongrid/beacongrid/internal/flbtest"
	"github.com/beacongrid/beacongrid/sim"
)

func env(t *testing.T, k string) string {
	t.Helper()
	v := os.Getenv(k)
	if v == "" {
		t.Fatalf("%s is not set: run through `make integration`", k)
	}
	return v
}

// record turns a simulated Zeek event into the map Fluent Bit's JSON parser
// would make of Zeek's JSON log line (numbers typed, unset fields absent).
func record(ev sim.Event) map[string]any {
	r := map[string]any{}
	for _, f := range ev.Fields() {
		if f.Value == "-" || f.Value == "(empty)" {
			continue
		}
		switch f.Key {
		case "ts", "duration":
			v, _ := strconv.ParseFloat(f.Value, 64)
			r[f.Key] = v
		case "id.orig_p", "id.resp_p", "request_body_len", "response_body_len", "orig_bytes", "resp_bytes", "status_code", "trans_depth":
			v, _ := strconv.ParseInt(f.Value, 10, 64)
			r[f.Key] = v
		default:
			r[f.Key] = f.Value
		}
	}
	return r
}

const (
	beaconSrc = "10.20.30.40"
	beaconDst = "update-check.c2-e2e.example"
)

// writeDay writes the simulated day as chunk files of up to 2000 events,
// alternating the v2 and legacy layouts, with one malformed chunk in the
// middle. It returns the files and the number of events.
func writeDay(t *testing.T, dir string) ([]string, int) {
	// 150 hosts: the network size the model is evaluated at (issue 3's
	// targets, docs/evaluation.md). The same 20 %-jittered beacon is also
	// alerted within minutes with 60 or 40 hosts (eval's
	// TestSixtySecondBeaconAlertedWithinTwoHours); an exact 60 s beacon
	// there is not: a known gap (docs/evaluation.md), not hidden here.
	cfg := sim.SimpleBeacon(150, beaconSrc, beaconDst, 0.2, 7)
	var files []string
	var batch []flbtest.Event
	n := 0
	flush := func() {
		if len(batch) == 0 {
			return
		}
		opt := flbtest.WithFormat(flbtest.FormatV2)
		if len(files)%2 == 1 {
			opt = flbtest.WithFormat(flbtest.FormatLegacy)
		}
		p := filepath.Join(dir, fmt.Sprintf("chunk-%04d.msgpack", len(files)))
		if err := flbtest.WriteChunk(p, batch, opt); err != nil {
			t.Fatal(err)
		}
		files = append(files, p)
		batch = batch[:0]
		if len(files) == 3 {
			bad := filepath.Join(dir, "chunk-bad.msgpack")
			os.WriteFile(bad, []byte{0x92, 0xd7, 0x00, 0x01, 0xc1, 0xc1}, 0o644)
			files = append(files, bad)
		}
	}
	err := sim.Generate(cfg, func(ev sim.Event) {
		batch = append(batch, flbtest.Event{Time: ev.Time, Record: record(ev)})
		n++
		if len(batch) == 2000 {
			flush()
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	flush()
	return files, n
}

func TestEndToEnd(t *testing.T) {
	bin := env(t, "BEACONGRID_BIN")
	esURL := strings.TrimRight(env(t, "BEACONGRID_ES_URL"), "/")
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	httpDo(t, "GET", esURL+"/_cluster/health?wait_for_status=yellow&timeout=30s", nil)
	dir := t.TempDir()
	spoolDir := filepath.Join(dir, "spool")
	files, events := writeDay(t, dir)
	t.Logf("simulated day: %d events in %d chunks", events, len(files))

	var chunks []flbtest.Chunk
	for _, f := range files {
		chunks = append(chunks, flbtest.Chunk{Instance: 0, Tag: "zeek.http", File: f})
	}
	res, err := flbtest.Run(ctx, flbtest.HostOptions{
		Host:      filepath.Join(bin, "flbhost"),
		Plugin:    filepath.Join(bin, "out_beacongrid.so"),
		Instances: []flbtest.Instance{{Name: "beacongrid", Props: map[string]string{"spool_dir": spoolDir, "instance_name": "e2e"}}},
		Chunks:    chunks,
	})
	if err != nil {
		t.Fatalf("host: %v", err)
	}
	if res.RCOK != int64(len(files)) {
		t.Fatalf("flush return codes: ok=%d retry=%d error=%d, want %d ok (the malformed chunk included)\n%s",
			res.RCOK, res.RCRetry, res.RCError, len(files), res.Stderr)
	}
	t.Logf("plugin log:\n%s", res.Stderr)

	index := fmt.Sprintf("beacongrid-e2e-%d", time.Now().UnixNano())
	sidecar := exec.CommandContext(ctx, filepath.Join(bin, "beacongrid"), "sidecar", "--once",
		"--spool", spoolDir, "--es", esURL, "--index", index, "--listen", "127.0.0.1:0")
	out, err := sidecar.CombinedOutput()
	if err != nil {
		t.Fatalf("sidecar: %v\n%s", err, out)
	}
	t.Logf("sidecar:\n%s", out)

	httpDo(t, "POST", esURL+"/"+index+"/_refresh", nil)
	var sr struct {
		Hits struct {
			Total struct{ Value int } `json:"total"`
			Hits  []struct {
				ID     string          `json:"_id"`
				Source json.RawMessage `json:"_source"`
			} `json:"hits"`
		} `json:"hits"`
	}
	body := httpDo(t, "GET", esURL+"/"+index+"/_search?size=100", nil)
	if err := json.Unmarshal(body, &sr); err != nil {
		t.Fatalf("search: %v\n%s", err, body)
	}
	if sr.Hits.Total.Value != 1 {
		t.Fatalf("%d alerts indexed, want exactly the beacon's:\n%s", sr.Hits.Total.Value, summarize(body))
	}
	var a struct {
		Timestamp string `json:"@timestamp"`
		Event     struct {
			ID, Kind, Module string
			Start            time.Time
		} `json:"event"`
		Source      struct{ IP string } `json:"source"`
		Destination struct {
			Domain string
			IP     string
			Port   int
		} `json:"destination"`
		Rule   struct{ Name string } `json:"rule"`
		Beacon struct {
			Score         float64      `json:"score"`
			PeriodS       float64      `json:"period_s"`
			Jitter        *float64     `json:"jitter"`
			ActiveMinutes int          `json:"active_minutes"`
			Prevalence    int          `json:"prevalence"`
			Matrix        alert.Matrix `json:"matrix"`
			ModelVersion  string       `json:"model_version"`
		} `json:"beacon"`
	}
	if err := json.Unmarshal(sr.Hits.Hits[0].Source, &a); err != nil {
		t.Fatal(err)
	}
	switch {
	case a.Source.IP != beaconSrc || a.Destination.Domain != beaconDst:
		t.Fatalf("the alert is for %s -> %s, not the beacon", a.Source.IP, a.Destination.Domain)
	case a.Event.Kind != "alert" || a.Event.Module != "beacongrid" || a.Rule.Name == "" || a.Timestamp == "":
		t.Fatalf("ECS fields: %+v", a)
	case sr.Hits.Hits[0].ID != a.Event.ID:
		t.Fatalf("document _id %s is not event.id %s", sr.Hits.Hits[0].ID, a.Event.ID)
	case a.Beacon.Score <= 0 || a.Beacon.Score > 1 || a.Beacon.ModelVersion == "":
		t.Fatalf("score %v model %q", a.Beacon.Score, a.Beacon.ModelVersion)
	case a.Beacon.PeriodS < 30 || a.Beacon.PeriodS > 90 || a.Beacon.Jitter == nil:
		t.Fatalf("period %v s for a 60 s beacon; jitter %v", a.Beacon.PeriodS, a.Beacon.Jitter)
	case len(a.Beacon.Matrix) != 1440 || a.Beacon.ActiveMinutes < 10 || a.Beacon.Prevalence < 1:
		t.Fatalf("matrix %d cells, %d active minutes, prevalence %d", len(a.Beacon.Matrix), a.Beacon.ActiveMinutes, a.Beacon.Prevalence)
	}
	// A 60 s beacon is alerted within 2 hours of its first callback (event time).
	if at, err := time.Parse(time.RFC3339, a.Timestamp); err != nil || at.Sub(a.Event.Start) > 2*time.Hour || at.Before(a.Event.Start) {
		t.Fatalf("alerted at %s, first callback %s: want within 2 h", a.Timestamp, a.Event.Start)
	}
	active := 0
	for _, c := range a.Beacon.Matrix {
		if c > 0 {
			active++
		}
	}
	if active != a.Beacon.ActiveMinutes {
		t.Fatalf("matrix has %d active cells, active_minutes says %d", active, a.Beacon.ActiveMinutes)
	}
}

func httpDo(t *testing.T, method, url string, body []byte) []byte {
	t.Helper()
	req, _ := http.NewRequest(method, url, bytes.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode >= 300 {
		t.Fatalf("%s %s: %s\n%s", method, url, resp.Status, b)
	}
	return b
}

// summarize lists the flows of a search response, one line each.
func summarize(body []byte) string {
	var sr struct {
		Hits struct {
			Hits []struct {
				Source struct {
					Source      struct{ IP string }         `json:"source"`
					Destination struct{ Domain, IP string } `json:"destination"`
					Beacon      struct {
						Score         float64 `json:"score"`
						ActiveMinutes int     `json:"active_minutes"`
						Prevalence    int     `json:"prevalence"`
					} `json:"beacon"`
				} `json:"_source"`
			} `json:"hits"`
		} `json:"hits"`
	}
	if err := json.Unmarshal(body, &sr); err != nil {
		return err.Error()
	}
	var b strings.Builder
	for _, h := range sr.Hits.Hits {
		s := h.Source
		fmt.Fprintf(&b, "  %s -> %s%s score=%.4f active=%d prevalence=%d\n", s.Source.IP, s.Destination.Domain, s.Destination.IP,
			s.Beacon.Score, s.Beacon.ActiveMinutes, s.Beacon.Prevalence)
	}
	return b.String()
}
