//go:build integration

package sidecar

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/beacongrid/beacongrid/spool"
	"github.com/prometheus/client_golang/prometheus"
)

// esScript is build/es/es.sh, relative to this package.
const esScript = "../build/es/es.sh"

// esNode is a throw-away Elasticsearch node of its own, run by es.sh with
// its own port and run directory, so that stopping it does not disturb
// other tests using the shared node.
type esNode struct {
	env []string
	url string
}

func newESNode(t *testing.T) *esNode {
	t.Helper()
	port := 9261
	if v := os.Getenv("BEACONGRID_IT_OUTAGE_ES_PORT"); v != "" {
		fmt.Sscan(v, &port)
	}
	run, err := filepath.Abs(fmt.Sprintf("../.cache/es/run-outage-%d", port))
	if err != nil {
		t.Fatal(err)
	}
	n := &esNode{
		env: append(os.Environ(), fmt.Sprintf("ES_PORT=%d", port), "ES_RUN="+run,
			"ES_JAVA_OPTS=-Xms384m -Xmx384m"),
		url: fmt.Sprintf("http://127.0.0.1:%d", port),
	}
	n.ctl(t, "start")
	t.Cleanup(func() {
		n.ctl(t, "stop")
		os.RemoveAll(run)
	})
	return n
}

// ctl runs es.sh with one command for this node and fails the test on
// error.
func (n *esNode) ctl(t *testing.T, cmd string) {
	t.Helper()
	c := exec.Command(esScript, cmd)
	c.Env = n.env
	out, err := c.CombinedOutput()
	if err != nil {
		t.Fatalf("es.sh %s: %v\n%s", cmd, err, out)
	}
	t.Logf("es.sh %s: %s", cmd, bytes.TrimSpace(out))
}

// assertExactly checks that index holds exactly the documents of ids: the
// count equals len(ids) and every id is found, so none is lost and none is
// there twice.
func assertExactly(t *testing.T, url, index string, ids []string) {
	t.Helper()
	if got := itCount(t, url, index); got != len(ids) {
		t.Fatalf("_count = %d, want exactly %d", got, len(ids))
	}
	missing := 0
	for start := 0; start < len(ids); start += 2000 {
		chunk := ids[start:min(start+2000, len(ids))]
		body, _ := json.Marshal(map[string]any{"ids": chunk})
		var res struct {
			Docs []struct {
				ID    string `json:"_id"`
				Found bool   `json:"found"`
			} `json:"docs"`
		}
		if st := esDo(t, http.MethodPost, url+"/"+index+"/_mget?_source=false", body, &res); st != 200 {
			t.Fatalf("_mget: HTTP %d", st)
		}
		for _, d := range res.Docs {
			if !d.Found {
				missing++
			}
		}
	}
	if missing > 0 {
		t.Fatalf("%d of %d alerts missing", missing, len(ids))
	}
	// event.id is the _id, and a terms count on it must agree.
	var agg struct {
		Aggregations struct {
			IDs struct {
				Value int `json:"value"`
			} `json:"ids"`
		} `json:"aggregations"`
	}
	q := []byte(`{"size":0,"aggs":{"ids":{"cardinality":{"field":"event.id","precision_threshold":40000}}}}`)
	esDo(t, http.MethodPost, url+"/"+index+"/_search", q, &agg)
	if agg.Aggregations.IDs.Value != len(ids) {
		t.Fatalf("distinct event.id = %d, want %d", agg.Aggregations.IDs.Value, len(ids))
	}
}

// spoolAlerts writes alerts first..first+n-1 to dir in appends of per, each
// fsynced as the plugin does, and returns their ids and the slowest append.
func spoolAlerts(t *testing.T, w *spool.Writer, first, n, per int, pace time.Duration) ([]string, time.Duration) {
	t.Helper()
	var ids []string
	var slowest time.Duration
	var lines [][]byte
	next := time.Now()
	for i := first; i < first+n; i++ {
		a := testAlert(i)
		a.Host, a.Threat = nil, nil
		lines = append(lines, alertLine(t, a))
		ids = append(ids, a.Event.ID)
		if len(lines) == per || i == first+n-1 {
			if pace > 0 {
				next = next.Add(pace)
				time.Sleep(time.Until(next))
			}
			start := time.Now()
			if err := w.Append(lines...); err != nil {
				t.Fatalf("append: %v", err)
			}
			slowest = max(slowest, time.Since(start))
			lines = lines[:0]
		}
	}
	return ids, slowest
}

// TestIntegrationOutage stops Elasticsearch for BEACONGRID_IT_OUTAGE
// (default 2m) while 10,000 alerts arrive in the spool at a steady rate, then
// starts it again: afterwards exactly the 10,000 alerts are indexed, none
// twice, and no spool append (the plugin's side) waited on Elasticsearch.
// It runs its own node (port BEACONGRID_IT_OUTAGE_ES_PORT, default 9261),
// which it stops and starts with es.sh.
func TestIntegrationOutage(t *testing.T) {
	itES(t) // the same precondition as the other integration tests
	node := newESNode(t)
	url, index := node.url, "beacongrid-it-outage"
	outage := 2 * time.Minute
	if v := os.Getenv("BEACONGRID_IT_OUTAGE"); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil {
			t.Fatalf("BEACONGRID_IT_OUTAGE: %v", err)
		}
		outage = d
	}
	const total, before = 10000, 500
	dir := t.TempDir()
	w, err := spool.OpenWriter(spool.WriterConfig{Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	cfg := testConfig(dir, url)
	cfg.Index = index
	cfg.BatchSize = 500
	cfg.Workers = 2
	cfg.MinBackoff = 100 * time.Millisecond
	cfg.MaxBackoff = 2 * time.Second
	cfg.RequestTimeout = 10 * time.Second
	idx, err := NewESIndexer(cfg)
	if err != nil {
		t.Fatal(err)
	}
	m, _ := NewMetrics(prometheus.NewRegistry(), dir)
	d := NewDeliverer(cfg, openReader(t, dir), idx, Options{Logger: quietLog(), Metrics: m})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- d.Run(ctx) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	}()
	waitFor := func(what string, limit time.Duration, ok func() bool) {
		t.Helper()
		deadline := time.Now().Add(limit)
		for !ok() {
			if time.Now().After(deadline) {
				t.Fatalf("timed out after %s waiting for %s", limit, what)
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
	ids, _ := spoolAlerts(t, w, 0, before, 50, 0)
	waitFor("the first alerts to be delivered", time.Minute, func() bool { return value(t, m.Committed) == before })

	node.ctl(t, "stop")
	outageStart := time.Now()
	// The rest arrive spread over the outage, 50 per append.
	appends := (total - before) / 50
	more, slowest := spoolAlerts(t, w, before, total-before, 50, outage/time.Duration(appends+1))
	ids = append(ids, more...)
	time.Sleep(time.Until(outageStart.Add(outage)))
	if c := value(t, m.Committed); c != before {
		t.Fatalf("%v alerts committed while Elasticsearch was down, want %d", c, before)
	}
	t.Logf("outage %s: %d alerts spooled, slowest append %s, %v retried, %v transient failures",
		time.Since(outageStart).Round(time.Second), total-before, slowest, value(t, m.Retried), value(t, m.Failed))
	if slowest > 3*time.Second { // fsync latency on a busy disk, not a wait on Elasticsearch
		t.Errorf("a spool append took %s while Elasticsearch was down; the plugin side must not wait", slowest)
	}
	node.ctl(t, "start")
	back := time.Now()
	waitFor("the backlog to be delivered", 3*time.Minute, func() bool { return value(t, m.Committed) == total })
	t.Logf("backlog of %d delivered %s after Elasticsearch returned", total-before, time.Since(back).Round(100*time.Millisecond))
	assertExactly(t, url, index, ids)
}

// blockingProxy forwards requests to Elasticsearch. When armed for bulk
// request k, it holds that request forever, either before forwarding it
// (Elasticsearch never sees it) or after Elasticsearch answered (the
// documents are indexed but the sidecar never hears so), and reports on
// held.
type blockingProxy struct {
	srv     *httptest.Server
	bulks   atomic.Int64
	mu      sync.Mutex
	holdAt  int64
	after   bool
	held    chan struct{}
	release chan struct{}
}

func newBlockingProxy(t *testing.T, target string) *blockingProxy {
	u, err := url.Parse(target)
	if err != nil {
		t.Fatal(err)
	}
	p := &blockingProxy{release: make(chan struct{})}
	rp := httputil.NewSingleHostReverseProxy(u)
	rp.ErrorLog = log.New(io.Discard, "", 0) // a killed client cancels its request
	p.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !strings.HasSuffix(r.URL.Path, "/_bulk") {
			rp.ServeHTTP(w, r)
			return
		}
		n := p.bulks.Add(1)
		p.mu.Lock()
		hold, after, held := n == p.holdAt, p.after, p.held
		p.mu.Unlock()
		if !hold {
			rp.ServeHTTP(w, r)
			return
		}
		if after {
			rec := httptest.NewRecorder()
			rp.ServeHTTP(rec, r)
		}
		close(held)
		select {
		case <-p.release:
		case <-r.Context().Done():
		}
	}))
	t.Cleanup(func() {
		close(p.release)
		p.srv.Close()
	})
	return p
}

// arm holds the k-th bulk request from now (k >= 1).
func (p *blockingProxy) arm(k int64, afterES bool) <-chan struct{} {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.holdAt, p.after, p.held = p.bulks.Load()+k, afterES, make(chan struct{})
	return p.held
}

func sidecarBin(t *testing.T) string {
	t.Helper()
	dir := os.Getenv("BEACONGRID_BIN")
	if dir == "" {
		t.Fatal("BEACONGRID_BIN is not set (the Makefile's integration target sets it to bin/)")
	}
	bin := filepath.Join(dir, "beacongrid")
	if _, err := os.Stat(bin); err != nil {
		t.Fatalf("BEACONGRID_BIN: %v (run make build)", err)
	}
	return bin
}

// TestIntegrationSIGKILLMidBulk kills `beacongrid sidecar` with SIGKILL while
// a bulk request is in flight, twice: once before Elasticsearch received it
// and once after Elasticsearch indexed it but before the sidecar heard back
// (the case that duplicates with random ids). After a restart that drains
// the spool, exactly the spooled alerts are indexed.
func TestIntegrationSIGKILLMidBulk(t *testing.T) {
	url, index := itES(t)
	bin := sidecarBin(t)
	dir := t.TempDir()
	const n = 6000
	w, err := spool.OpenWriter(spool.WriterConfig{Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	ids, _ := spoolAlerts(t, w, 0, n, 500, 0)
	w.Close()
	proxy := newBlockingProxy(t, url)

	start := func(once bool, extra ...string) (*exec.Cmd, *bytes.Buffer) {
		args := []string{"sidecar", "--spool", dir, "--es", proxy.srv.URL, "--index", index,
			"--batch-size", "400", "--workers", "2", "--log-format", "text", "--listen", "",
			"--max-backoff", "1s", "--request-timeout", "20s"}
		if once {
			args = append(args, "--once")
		}
		cmd := exec.Command(bin, append(args, extra...)...)
		var out bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &out
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		return cmd, &out
	}
	for _, c := range []struct {
		name    string
		k       int64
		afterES bool
	}{
		{"before Elasticsearch sees the request", 3, false},
		{"after Elasticsearch indexed the request", 4, true},
	} {
		held := proxy.arm(c.k, c.afterES)
		cmd, out := start(false)
		select {
		case <-held:
		case <-time.After(2 * time.Minute):
			cmd.Process.Kill()
			cmd.Wait()
			t.Fatalf("%s: bulk request %d never came\n%s", c.name, c.k, out)
		}
		if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
			t.Fatal(err)
		}
		err := cmd.Wait()
		if ws, ok := cmd.ProcessState.Sys().(syscall.WaitStatus); !ok || !ws.Signaled() || ws.Signal() != syscall.SIGKILL {
			t.Fatalf("%s: sidecar exit %v, want killed by SIGKILL\n%s", c.name, err, out)
		}
		cp, _ := checkpoint(t, dir)
		t.Logf("killed %s; checkpoint %+v, %d docs indexed so far", c.name, cp, itCount(t, url, index))
	}
	cmd, out := start(true)
	if err := cmd.Wait(); err != nil {
		t.Fatalf("sidecar --once after the kills: %v\n%s", err, out)
	}
	assertExactly(t, url, index, ids)
	// The restart re-sent the uncommitted batches: more bulk items than
	// alerts reached Elasticsearch, and still no duplicate.
	if got := proxy.bulks.Load(); got <= int64((n+399)/400) {
		t.Errorf("only %d bulk requests for %d alerts; the kills re-sent nothing?", got, n)
	}
}
