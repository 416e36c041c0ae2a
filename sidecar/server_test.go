package sidecar

import (
	"errors"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
)

func TestServerEndpoints(t *testing.T) {
	reg := prometheus.NewRegistry()
	m, err := NewMetrics(reg, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	m.Indexed.Add(3)
	m.Latency.Observe(0.02)
	readyErr := errors.New("index template not installed yet")
	srv, err := StartServer("127.0.0.1:0", Handler(reg, func() error { return readyErr }), quietLog())
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Shutdown()
	get := func(path string) (int, string) {
		res, err := http.Get("http://" + srv.Addr() + path)
		if err != nil {
			t.Fatal(err)
		}
		defer res.Body.Close()
		b, _ := io.ReadAll(res.Body)
		return res.StatusCode, string(b)
	}
	if code, _ := get("/healthz"); code != 200 {
		t.Errorf("/healthz = %d", code)
	}
	if code, body := get("/readyz"); code != 503 || !strings.Contains(body, "not installed") {
		t.Errorf("/readyz = %d %q, want 503 with the reason", code, body)
	}
	readyErr = nil
	if code, _ := get("/readyz"); code != 200 {
		t.Errorf("/readyz = %d once ready", code)
	}
	code, body := get("/metrics")
	if code != 200 {
		t.Fatalf("/metrics = %d", code)
	}
	for _, name := range []string{
		"beacongrid_sidecar_alerts_read_total", "beacongrid_sidecar_alerts_indexed_total 3",
		"beacongrid_sidecar_alerts_retried_total", `beacongrid_sidecar_alerts_failed_total{kind="transient"}`,
		`beacongrid_sidecar_alerts_dead_lettered_total{reason="rejected"}`, "beacongrid_sidecar_spool_backlog_bytes 0",
		"beacongrid_sidecar_index_latency_seconds_count 1",
	} {
		if !strings.Contains(body, name) {
			t.Errorf("/metrics lacks %q", name)
		}
	}
	if _, err := StartServer(srv.Addr(), http.NotFoundHandler(), quietLog()); err == nil {
		t.Error("second server on a busy port started")
	}
}
