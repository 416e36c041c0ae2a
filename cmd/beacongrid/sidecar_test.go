package main

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/beacongrid/beacongrid/spool"
)

func runSidecarCmd(t *testing.T, env map[string]string, args ...string) (string, error) {
	t.Helper()
	for k, v := range env {
		t.Setenv(k, v)
	}
	return runCommand(t, newSidecarCmd(), args...)
}

// miniES answers the sidecar's three calls and counts indexed ids.
func miniES(t *testing.T) (*httptest.Server, func() int) {
	var mu sync.Mutex
	ids := map[string]bool{}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("X-Elastic-Product", "Elasticsearch")
		w.Header().Set("Content-Type", "application/json")
		if strings.HasPrefix(r.URL.Path, "/_data_stream/") || strings.HasPrefix(r.URL.Path, "/_ilm/") {
			// Like Elastic's integ-test distribution: no such API.
			w.WriteHeader(http.StatusBadRequest)
			fmt.Fprintf(w, `{"error":"no handler found for uri [%s] and method [%s]"}`, r.URL.Path, r.Method)
			return
		}
		if r.Method == http.MethodHead {
			w.WriteHeader(http.StatusNotFound)
			return
		}
		if !strings.HasSuffix(r.URL.Path, "/_bulk") {
			fmt.Fprint(w, `{"acknowledged":true}`)
			return
		}
		// The client gzips request bodies.
		body, err := gunzip(r)
		if err != nil {
			http.Error(w, err.Error(), 400)
			return
		}
		var items []string
		sc := bufio.NewScanner(bytes.NewReader(body))
		sc.Buffer(nil, 1<<20)
		for i := 0; sc.Scan(); i++ {
			if i%2 == 1 {
				continue
			}
			var a struct {
				Index struct {
					ID string `json:"_id"`
				} `json:"index"`
			}
			json.Unmarshal(sc.Bytes(), &a)
			mu.Lock()
			ids[a.Index.ID] = true
			mu.Unlock()
			items = append(items, `{"index":{"status":201}}`)
		}
		fmt.Fprintf(w, `{"errors":false,"items":[%s]}`, strings.Join(items, ","))
	}))
	t.Cleanup(srv.Close)
	return srv, func() int { mu.Lock(); defer mu.Unlock(); return len(ids) }
}

func TestSidecarOnce(t *testing.T) {
	es, count := miniES(t)
	dir := t.TempDir()
	w, err := spool.OpenWriter(spool.WriterConfig{Dir: dir, NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 5; i++ {
		w.Append([]byte(fmt.Sprintf(`{"event":{"id":"id-%d"},"source":{"ip":"10.0.0.%d"}}`, i, i)))
	}
	w.Close()
	out, err := runSidecarCmd(t, map[string]string{"BEACONGRID_ES_URL": es.URL, "BEACONGRID_ES_PASSWORD": "pw-secret-1", "BEACONGRID_ES_USERNAME": "u"},
		"--spool", dir, "--once", "--log-format", "text")
	if err != nil {
		t.Fatalf("sidecar --once: %v\n%s", err, out)
	}
	if n := count(); n != 5 {
		t.Fatalf("indexed %d, want 5\n%s", n, out)
	}
	if strings.Contains(out, "pw-secret-1") {
		t.Fatal("password in the log")
	}
	if strings.Contains(out, "metrics server listening") {
		t.Error("--once started the metrics server without --listen")
	}
}

func TestSidecarFlagErrors(t *testing.T) {
	for _, tc := range []struct {
		args []string
		env  map[string]string
		want string
	}{
		{args: []string{"--es", "http://x:9200"}, want: "spool directory is not set"},
		{args: []string{"--spool", "/tmp/x"}, env: map[string]string{"BEACONGRID_ES_URL": ""}, want: "no Elasticsearch address"},
		{args: []string{"--spool", "/tmp/x", "--es", "http://elastic:pw-secret-2@x:9200"}, want: "holds credentials"},
		{args: []string{"--spool", "/tmp/x", "--es", "x:9200"}, want: "scheme"},
		{args: []string{"--spool", "/tmp/x", "--es", "http://x", "--index", "Bad"}, want: "lower case"},
		{args: []string{"--spool", "/tmp/x", "--es", "http://x", "--log-level", "loud"}, want: "--log-level"},
		{args: []string{"--spool", "/tmp/x", "--es", "http://x", "--batch-size", "0"}, want: "batch size"},
		{args: []string{"extra"}, want: "unknown command"},
	} {
		_, err := runSidecarCmd(t, tc.env, tc.args...)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%v: err = %v, want %q", tc.args, err, tc.want)
		}
		if err != nil && strings.Contains(err.Error(), "pw-secret-2") {
			t.Errorf("%v: password in error %q", tc.args, err)
		}
	}
}

func gunzip(r *http.Request) ([]byte, error) {
	if r.Header.Get("Content-Encoding") != "gzip" {
		return io.ReadAll(r.Body)
	}
	zr, err := gzip.NewReader(r.Body)
	if err != nil {
		return nil, err
	}
	return io.ReadAll(zr)
}
