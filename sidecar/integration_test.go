//go:build integration

// Integration tests against a real Elasticsearch. Start one with
//
//	build/es/es.sh start && . .cache/es/run/es.env
//	go test -tags integration -count=1 ./sidecar/
//
// With the integration tag set, a missing BEACONGRID_ES_URL fails the tests
// rather than skipping them, so CI cannot pass without having run them.
package sidecar

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/beacongrid/beacongrid/alert"
	"github.com/prometheus/client_golang/prometheus"
)

// itES returns the Elasticsearch URL and a fresh index name, removed (with
// its template) when the test ends.
func itES(t *testing.T) (url, index string) {
	t.Helper()
	url = strings.TrimRight(os.Getenv(EnvURL), "/")
	if url == "" {
		t.Fatalf("%s is not set; start Elasticsearch with build/es/es.sh start and source .cache/es/run/es.env", EnvURL)
	}
	index = fmt.Sprintf("beacongrid-it-%d", time.Now().UnixNano())
	t.Cleanup(func() {
		esDo(t, http.MethodDelete, url+"/"+index, nil, nil)
		esDo(t, http.MethodDelete, url+"/_index_template/"+index, nil, nil)
	})
	return url, index
}

// esDo sends a request and decodes a JSON answer into out; it returns the
// status.
func esDo(t *testing.T, method, url string, body []byte, out any) int {
	t.Helper()
	req, err := http.NewRequest(method, url, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	if out != nil {
		if err := json.Unmarshal(b, out); err != nil {
			t.Fatalf("%s %s: %v in %s", method, url, err, b)
		}
	}
	return res.StatusCode
}

func itCount(t *testing.T, url, index string) int {
	t.Helper()
	if st := esDo(t, http.MethodPost, url+"/"+index+"/_refresh", nil, nil); st != 200 {
		t.Fatalf("_refresh: HTTP %d", st)
	}
	var c struct {
		Count int `json:"count"`
	}
	if st := esDo(t, http.MethodGet, url+"/"+index+"/_count", nil, &c); st != 200 {
		t.Fatalf("_count: HTTP %d", st)
	}
	return c.Count
}

// itDrain delivers the spool of cfg once and returns how many documents
// Elasticsearch acknowledged.
func itDrain(t *testing.T, cfg Config) int {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	idx, err := NewESIndexer(cfg)
	if err != nil {
		t.Fatal(err)
	}
	m, err := NewMetrics(prometheus.NewRegistry(), cfg.SpoolDir)
	if err != nil {
		t.Fatal(err)
	}
	d := NewDeliverer(cfg, openReader(t, cfg.SpoolDir), idx, Options{Logger: log, Metrics: m})
	if err := d.Drain(ctx); err != nil {
		t.Fatalf("Drain: %v", err)
	}
	return int(value(t, m.Indexed))
}

func TestIntegrationDeliver(t *testing.T) {
	url, index := itES(t)
	dir := t.TempDir()
	const n = 250
	alerts := writeAlerts(t, dir, 0, 150)
	alerts = append(alerts, writeAlerts(t, dir, 150, n-150)...)
	cfg := testConfig(dir, url)
	cfg.Index = index
	cfg.BatchSize = 100

	if sent := itDrain(t, cfg); sent != n {
		t.Fatalf("indexed %d, want %d", sent, n)
	}
	if got := itCount(t, url, index); got != n {
		t.Fatalf("_count = %d, want %d", got, n)
	}
	if _, ok := checkpoint(t, dir); !ok {
		t.Fatal("no checkpoint after delivery")
	}

	t.Run("fields round-trip", func(t *testing.T) {
		for _, a := range []int{0, 137, n - 1} {
			want := alerts[a]
			var got struct {
				Found  bool `json:"found"`
				Source struct {
					Source struct {
						IP string `json:"ip"`
					} `json:"source"`
					Destination struct {
						Domain string `json:"domain"`
						Port   int    `json:"port"`
					} `json:"destination"`
					Beacon struct {
						Score     float64      `json:"score"`
						Matrix    alert.Matrix `json:"matrix"`
						WindowEnd string       `json:"window_end"`
					} `json:"beacon"`
					Event struct {
						ID string `json:"id"`
					} `json:"event"`
				} `json:"_source"`
			}
			esDo(t, http.MethodGet, url+"/"+index+"/_doc/"+want.Event.ID, nil, &got)
			s := got.Source
			switch {
			case !got.Found:
				t.Fatalf("alert %d (%s) not found by id", a, want.Event.ID)
			case s.Source.IP != want.Source.IP || s.Event.ID != want.Event.ID:
				t.Errorf("alert %d: source.ip %q event.id %q", a, s.Source.IP, s.Event.ID)
			case s.Beacon.Score != want.Beacon.Score:
				t.Errorf("alert %d: beacon.score %v, want %v", a, s.Beacon.Score, want.Beacon.Score)
			case !slices.Equal(s.Beacon.Matrix, want.Beacon.Matrix) || s.Beacon.Matrix[7] != 40000:
				t.Errorf("alert %d: matrix differs (%d cells)", a, len(s.Beacon.Matrix))
			case s.Destination.Domain != want.Destination.Domain || s.Destination.Port != 443:
				t.Errorf("alert %d: destination %+v", a, s.Destination)
			case s.Beacon.WindowEnd != want.Beacon.WindowEnd.Format(time.RFC3339):
				t.Errorf("alert %d: window_end %q", a, s.Beacon.WindowEnd)
			}
		}
	})

	t.Run("ip, date and numeric fields are searchable", func(t *testing.T) {
		for _, q := range []string{
			`{"query":{"term":{"source.ip":"10.0.0.0/24"}}}`,
			`{"query":{"range":{"beacon.score":{"gte":0.9}}}}`,
			`{"query":{"range":{"@timestamp":{"gte":"2026-03-01T00:00:00Z"}}}}`,
			`{"query":{"term":{"destination.domain":"c2.example.net"}}}`,
		} {
			var c struct {
				Count int `json:"count"`
			}
			esDo(t, http.MethodPost, url+"/"+index+"/_count", []byte(q), &c)
			want := n
			if strings.Contains(q, "/24") {
				want = min(n, 256) // 10.0.0.0/24 holds alerts 0..255
			}
			if c.Count != want {
				t.Errorf("%s: count %d, want %d", q, c.Count, want)
			}
		}
	})

	t.Run("template installed with ip mapping", func(t *testing.T) {
		var tmpl struct {
			IndexTemplates []struct {
				Name          string          `json:"name"`
				IndexTemplate json.RawMessage `json:"index_template"`
			} `json:"index_templates"`
		}
		if st := esDo(t, http.MethodGet, url+"/_index_template/"+index, nil, &tmpl); st != 200 || len(tmpl.IndexTemplates) != 1 {
			t.Fatalf("GET _index_template: HTTP %d, %d templates", st, len(tmpl.IndexTemplates))
		}
		patterns, root := templateMappings(t, tmpl.IndexTemplates[0].IndexTemplate)
		if len(patterns) != 1 || patterns[0] != index {
			t.Errorf("index_patterns = %v", patterns)
		}
		if m, _ := root.lookup("source.ip"); m.Type != "ip" {
			t.Errorf("template source.ip = %q", m.Type)
		}
		var mp map[string]struct {
			Mappings mapping `json:"mappings"`
		}
		esDo(t, http.MethodGet, url+"/"+index+"/_mapping", nil, &mp)
		live := mp[index].Mappings
		for path, want := range map[string]string{"source.ip": "ip", "destination.ip": "ip", "@timestamp": "date",
			"beacon.score": "float", "beacon.requests": "long", "destination.domain": "keyword", "beacon.matrix": "object"} {
			if m, ok := live.lookup(path); !ok || m.Type != want {
				t.Errorf("index mapping %s = %q, want %q", path, m.Type, want)
			}
		}
		if m, _ := live.lookup("beacon.matrix"); m.Enabled == nil || *m.Enabled {
			t.Errorf("beacon.matrix is indexed: %+v", m)
		}
	})

	t.Run("re-delivery without checkpoint does not duplicate", func(t *testing.T) {
		if err := os.Remove(filepath.Join(dir, "checkpoint.json")); err != nil {
			t.Fatal(err)
		}
		// The first segment (150 lines) was deleted once wholly delivered;
		// the second (100 lines) is delivered again with the same ids.
		if sent := itDrain(t, cfg); sent != n-150 {
			t.Fatalf("re-delivered %d, want %d", sent, n-150)
		}
		if got := itCount(t, url, index); got != n {
			t.Fatalf("_count after re-delivery = %d, want %d", got, n)
		}
		if _, ok := checkpoint(t, dir); !ok {
			t.Fatal("no checkpoint after re-delivery")
		}
	})
}

// TestIntegrationRejectedDocument checks the classification against a real
// mapping error: a bad IP is a 400, dead-lettered, and the rest is indexed.
func TestIntegrationRejectedDocument(t *testing.T) {
	url, index := itES(t)
	dir := t.TempDir()
	bad := testAlert(5)
	bad.Source.IP = "999.1.1.1"
	writeSpool(t, dir, alertLine(t, testAlert(1)), alertLine(t, bad), []byte(`{"no":"id"}`), alertLine(t, testAlert(2)))
	cfg := testConfig(dir, url)
	cfg.Index = index
	itDrain(t, cfg)

	if got := itCount(t, url, index); got != 2 {
		t.Fatalf("_count = %d, want 2", got)
	}
	dls := readDeadLetters(t, dir)
	if len(dls) != 2 {
		t.Fatalf("dead letters = %+v, want 2", dls)
	}
	reasons := map[string]DeadLetter{}
	for _, dl := range dls {
		reasons[dl.Reason] = dl
	}
	rej := reasons[ReasonRejected]
	if rej.Status != 400 || rej.ID != bad.Event.ID || rej.ErrorType != "document_parsing_exception" ||
		!strings.Contains(rej.Error, "source.ip") {
		t.Errorf("rejected dead letter = %+v", rej)
	}
	if _, ok := reasons[ReasonMalformed]; !ok {
		t.Errorf("malformed line not dead-lettered: %+v", dls)
	}
	if _, ok := checkpoint(t, dir); !ok {
		t.Error("batch with rejected documents not committed")
	}
}

// TestIntegrationSetupFallback runs Setup against the real test
// distribution, which has neither the data stream nor the ILM API: auto
// falls back to a plain index with a plain template, and asking for a data
// stream fails with a clear, permanent error.
func TestIntegrationSetupFallback(t *testing.T) {
	url, index := itES(t)
	cfg := testConfig(t.TempDir(), url)
	cfg.Index = index
	idx, err := NewESIndexer(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := idx.Setup(context.Background()); err != nil {
		t.Fatalf("Setup: %v", err)
	}
	if mode, ilm := idx.Mode(); mode != ModeIndex || ilm {
		t.Fatalf("mode %s ilm %v on the integ-test distribution, want a plain index without ILM", mode, ilm)
	}
	// Repeating Setup is harmless.
	if err := idx.Setup(context.Background()); err != nil {
		t.Fatalf("second Setup: %v", err)
	}
	var got map[string]struct {
		Settings struct {
			Index struct {
				Hidden  string `json:"hidden"`
				Refresh string `json:"refresh_interval"`
			} `json:"index"`
		} `json:"settings"`
	}
	if st := esDo(t, http.MethodGet, url+"/"+index, nil, &got); st != 200 {
		t.Fatalf("GET %s: HTTP %d", index, st)
	}
	if _, ok := got[index]; !ok {
		t.Fatalf("%s is not a plain index: %v", index, got)
	}
	var tmpl struct {
		IndexTemplates []struct {
			IndexTemplate map[string]json.RawMessage `json:"index_template"`
		} `json:"index_templates"`
	}
	esDo(t, http.MethodGet, url+"/_index_template/"+index, nil, &tmpl)
	if len(tmpl.IndexTemplates) != 1 {
		t.Fatalf("templates: %+v", tmpl)
	}
	if _, ds := tmpl.IndexTemplates[0].IndexTemplate["data_stream"]; ds {
		t.Error("fallback installed a data stream template")
	}
	cfg.Target = TargetDataStream
	idx, _ = NewESIndexer(cfg)
	err = idx.Setup(context.Background())
	var re *RequestError
	if err == nil || !errors.As(err, &re) || !re.Permanent() || !strings.Contains(err.Error(), "no data stream API") {
		t.Errorf("Setup with target data-stream = %v, want a permanent 'no data stream API' error", err)
	}
}

// TestIntegrationEnrichedFieldsMapped indexes an enriched alert into the
// real cluster and searches on each added field by its mapped type.
func TestIntegrationEnrichedFieldsMapped(t *testing.T) {
	url, index := itES(t)
	dir := t.TempDir()
	inv := writeFile(t, dir, "assets.csv", "ip,hostname,owner,criticality\n10.0.0.0/24,ws-lan,finance,high\n")
	ioc := writeFile(t, dir, "intel.txt", "example.net\n")
	a := testAlert(3)
	a.Host, a.Threat = nil, nil
	writeSpool(t, dir, alertLine(t, a))
	cfg := testConfig(dir, url)
	cfg.Index = index
	e, _, err := NewReloader(inv, []string{ioc}, NewSightings(), nil, quietLog())
	if err != nil {
		t.Fatal(err)
	}
	idx, _ := NewESIndexer(cfg)
	d := NewDeliverer(cfg, openReader(t, dir), idx, Options{Logger: quietLog(), Enricher: e})
	if err := d.Drain(context.Background()); err != nil {
		t.Fatal(err)
	}
	itCount(t, url, index) // refresh
	for _, q := range []string{
		`{"query":{"term":{"host.criticality":"high"}}}`,
		`{"query":{"term":{"threat.indicator":"example.net"}}}`,
		`{"query":{"range":{"beacongrid.destination_first_seen":{"lte":"2026-03-01T12:00:00Z"}}}}`,
		`{"query":{"range":{"beacongrid.destination_sources":{"gte":1}}}}`,
		`{"query":{"term":{"rule.severity":"high"}}}`,
	} {
		var c struct {
			Count int `json:"count"`
		}
		esDo(t, http.MethodPost, url+"/"+index+"/_count", []byte(q), &c)
		if c.Count != 1 {
			t.Errorf("%s: count %d, want 1", q, c.Count)
		}
	}
}
