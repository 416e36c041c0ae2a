package sidecar

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

func writeFile(t *testing.T, dir, name, content string) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestLoadInventory(t *testing.T) {
	dir := t.TempDir()
	csvPath := writeFile(t, dir, "assets.csv", "# exported from the CMDB\nip,hostname,owner,criticality\n"+
		"10.0.0.5,ws-5,finance,HIGH\n10.0.0.0/24,office-lan,it,low\n10.0.0.0/16,campus,,medium\n2001:db8::7,v6-host,net,critical\n")
	jsonPath := writeFile(t, dir, "assets.json", `[{"ip":"10.0.0.5","hostname":"ws-5","owner":"finance","criticality":"high"},{"ip":"10.1.0.0/16","owner":"lab"}]`)
	for _, path := range []string{csvPath, jsonPath} {
		inv, err := LoadInventory(path)
		if err != nil {
			t.Fatalf("%s: %v", path, err)
		}
		a := inv.Lookup(netip.MustParseAddr("10.0.0.5"))
		if a == nil || a.Hostname != "ws-5" || a.Owner != "finance" || a.Criticality != "high" {
			t.Errorf("%s: 10.0.0.5 = %+v", path, a)
		}
	}
	inv, _ := LoadInventory(csvPath)
	f := func(ip, wantHost string) {
		t.Helper()
		a := inv.Lookup(netip.MustParseAddr(ip))
		switch {
		case wantHost == "" && a != nil:
			t.Errorf("%s matched %+v, want nothing", ip, a)
		case wantHost != "" && (a == nil || a.Hostname != wantHost):
			t.Errorf("%s = %+v, want %s", ip, a, wantHost)
		}
	}
	f("10.0.0.9", "office-lan") // longest prefix wins
	f("10.0.9.9", "campus")
	f("::ffff:10.0.0.5", "ws-5") // v4-mapped
	f("2001:db8::7", "v6-host")
	f("192.168.1.1", "")
	if (*Inventory)(nil).Lookup(netip.MustParseAddr("10.0.0.5")) != nil {
		t.Error("nil inventory found something")
	}

	for name, content := range map[string]string{
		"unknown column": "ip,hostname,site\n10.0.0.1,a,b\n",
		"no ip column":   "hostname,owner\na,b\n",
		"bad address":    "ip,hostname\n10.0.0.300,a\n",
		"no context":     "ip,hostname,owner\n10.0.0.1,,\n",
		"duplicate":      "ip,hostname\n10.0.0.1,a\n10.0.0.1,b\n",
		"json unknown":   `[{"ip":"10.0.0.1","host":"a"}]`,
		"json bad ip":    `[{"ip":"nope","hostname":"a"}]`,
	} {
		p := writeFile(t, dir, "bad.inv", content)
		if _, err := LoadInventory(p); err == nil || !strings.Contains(err.Error(), p) {
			t.Errorf("%s: error %v, want one naming %s", name, err, p)
		}
	}
}

func TestLoadIOCs(t *testing.T) {
	dir := t.TempDir()
	a := writeFile(t, dir, "abuse-ch.txt", "# feed\n\nevil.example\nC2.Example.Net.   # trailing comment\n203.0.113.7\n198.51.100.0/24\n")
	b := writeFile(t, dir, "internal.list", "example.net\n2001:db8::/32\n")
	s, err := LoadIOCs([]string{a, b})
	if err != nil {
		t.Fatal(err)
	}
	if s.Len() != 6 {
		t.Errorf("Len = %d, want 6", s.Len())
	}
	f := func(domain, ip string, wantFeed string, want ...string) {
		t.Helper()
		var addr netip.Addr
		if ip != "" {
			addr = netip.MustParseAddr(ip)
		}
		got, feed := s.Match(domain, addr)
		if strings.Join(got, " ") != strings.Join(want, " ") || feed != wantFeed {
			t.Errorf("Match(%q, %q) = %v %q, want %v %q", domain, ip, got, feed, want, wantFeed)
		}
	}
	f("c2.example.net", "", "abuse-ch", "c2.example.net", "example.net")
	f("a.b.evil.example", "", "abuse-ch", "evil.example")
	f("notevil.example", "", "")
	f("", "203.0.113.7", "abuse-ch", "203.0.113.7")
	f("", "198.51.100.9", "abuse-ch", "198.51.100.0/24")
	f("ok.example.org", "2001:db8::1", "internal", "2001:db8::/32")
	f("ok.example.org", "192.0.2.1", "")

	for _, bad := range []string{"http://evil.example/x", "10.0.0.300", "evil!.example", "1.2.3.4/40"} {
		p := writeFile(t, dir, "bad.txt", "ok.example\n"+bad+"\n")
		if _, err := LoadIOCs([]string{p}); err == nil || !strings.Contains(err.Error(), p+":2") {
			t.Errorf("%q: error %v, want one naming %s:2", bad, err, p)
		}
	}
}

func TestEnrichAppendsContextAndKeepsTheLine(t *testing.T) {
	dir := t.TempDir()
	inv, _ := LoadInventory(writeFile(t, dir, "a.csv", "ip,hostname,owner,criticality\n10.0.0.1,ws-1,finance,high\n"))
	iocs, _ := LoadIOCs([]string{writeFile(t, dir, "feed.txt", "example.net\n")})
	e := NewEnricher(inv, iocs, NewSightings())
	a := testAlert(1)
	a.Host, a.Threat = nil, nil
	a.Rule.Severity, a.Tags = "critical", []string{"beacon", "finance-watch"}
	line := alertLine(t, a)
	id, doc, what, err := e.Enrich(line)
	if err != nil || id != a.Event.ID {
		t.Fatalf("Enrich: %q %v", id, err)
	}
	if !what.Host || !what.Threat || !what.Sighting {
		t.Errorf("enrichment %+v, want all three", what)
	}
	if !strings.HasPrefix(string(doc), string(line[:len(line)-1])) {
		t.Error("the plugin's fields were not carried unchanged")
	}
	var got struct {
		Host   map[string]string `json:"host"`
		Threat struct {
			Indicator []string `json:"indicator"`
			Feed      string   `json:"feed"`
		} `json:"threat"`
		Beacongrid Sighting `json:"beacongrid"`
		Rule       struct {
			Severity string `json:"severity"`
		} `json:"rule"`
		Tags []string `json:"tags"`
	}
	if err := json.Unmarshal(doc, &got); err != nil {
		t.Fatalf("enriched document is not JSON: %v\n%s", err, doc)
	}
	if got.Host["name"] != "ws-1" || got.Host["owner"] != "finance" || got.Host["criticality"] != "high" {
		t.Errorf("host = %v", got.Host)
	}
	if strings.Join(got.Threat.Indicator, ",") != "example.net" || got.Threat.Feed != "feed" {
		t.Errorf("threat = %+v", got.Threat)
	}
	if !got.Beacongrid.DestinationFirstSeen.Equal(a.Timestamp) || got.Beacongrid.DestinationSources != 1 {
		t.Errorf("beacongrid = %+v", got.Beacongrid)
	}
	if got.Rule.Severity != "critical" || strings.Join(got.Tags, ",") != "beacon,finance-watch" {
		t.Errorf("rules' severity and tags not carried: %+v %v", got.Rule, got.Tags)
	}

	// A line that has host/threat already keeps its own (no duplicate key).
	b := testAlert(1)
	_, doc, what, _ = e.Enrich(alertLine(t, b))
	if what.Host || what.Threat || strings.Count(string(doc), `"host":`) != 1 || strings.Count(string(doc), `"threat":`) != 1 {
		t.Errorf("existing host/threat replaced or duplicated: %+v", what)
	}
	// No match, no field.
	c := testAlert(2)
	c.Host, c.Threat, c.Destination.Domain, c.Destination.IP = nil, nil, "fine.example.org", "192.0.2.1"
	_, doc, what, _ = e.Enrich(alertLine(t, c))
	if what.Host || what.Threat || strings.Contains(string(doc), `"threat"`) {
		t.Errorf("unmatched alert enriched: %+v", what)
	}
}

func TestSightingsFirstSeenAndPrevalence(t *testing.T) {
	s := NewSightings()
	t0 := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	s.Observe("10.0.0.1", "c2.example", t0.Add(time.Hour))
	got, _ := s.Observe("10.0.0.2", "c2.example", t0) // earlier alert arrives later
	if !got.DestinationFirstSeen.Equal(t0) || !got.FlowFirstSeen.Equal(t0) || got.DestinationSources != 2 {
		t.Errorf("after two sources: %+v", got)
	}
	got, _ = s.Observe("10.0.0.1", "c2.example", t0.Add(2*time.Hour))
	if !got.FlowFirstSeen.Equal(t0.Add(time.Hour)) || got.DestinationSources != 2 {
		t.Errorf("repeat source: %+v", got)
	}
	// Re-observing is idempotent, and state survives Save/Load.
	again, _ := s.Observe("10.0.0.1", "c2.example", t0.Add(2*time.Hour))
	if again != got {
		t.Errorf("re-delivery changed the sighting: %+v vs %+v", again, got)
	}
	path := filepath.Join(t.TempDir(), sightingsFile)
	if err := s.Save(path); err != nil {
		t.Fatal(err)
	}
	s2, err := LoadSightings(path)
	if err != nil {
		t.Fatal(err)
	}
	if after, _ := s2.Observe("10.0.0.1", "c2.example", t0.Add(2*time.Hour)); after != got {
		t.Errorf("after reload %+v, want %+v", after, got)
	}
	os.WriteFile(path, []byte("{"), 0o644)
	if _, err := LoadSightings(path); err == nil || !strings.Contains(err.Error(), "delete it") {
		t.Errorf("corrupt state: %v", err)
	}
}

func TestReloaderHotReloadsAndKeepsOldOnError(t *testing.T) {
	dir := t.TempDir()
	feed := writeFile(t, dir, "feed.txt", "old.example\n")
	invPath := writeFile(t, dir, "inv.csv", "ip,hostname\n10.0.0.1,before\n")
	m, _ := NewMetrics(prometheus.NewRegistry(), dir)
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	e, r, err := NewReloader(invPath, []string{feed}, nil, m, log)
	if err != nil {
		t.Fatal(err)
	}
	match := func(d string) bool { got, _ := e.iocs.Load().Match(d, netip.Addr{}); return len(got) > 0 }
	if !match("old.example") || value(t, m.Indicators) != 1 {
		t.Fatal("initial load")
	}
	// Replace the file the way an operator would: write a new one, rename over.
	writeFile(t, dir, "feed.tmp", "new.example\nother.example\n")
	os.Rename(filepath.Join(dir, "feed.tmp"), feed)
	writeFile(t, dir, "inv.csv", "ip,hostname\n10.0.0.1,after-change\n")
	r.Check()
	if match("old.example") || !match("new.example") || value(t, m.Indicators) != 2 {
		t.Error("IOC change not picked up")
	}
	if a := e.inv.Load().Lookup(netip.MustParseAddr("10.0.0.1")); a == nil || a.Hostname != "after-change" {
		t.Errorf("inventory change not picked up: %+v", a)
	}
	// A broken file is refused, counted, and the previous set stays.
	writeFile(t, dir, "feed.txt", "new.example\nhttp://broken/\n")
	r.Check()
	if !match("new.example") {
		t.Error("a failed reload dropped the previous indicators")
	}
	if v := value(t, m.Reloads.WithLabelValues("ioc", "failure")); v != 1 {
		t.Errorf("failed reloads = %v, want 1", v)
	}
	if v := value(t, m.Reloads.WithLabelValues("ioc", "success")); v != 1 {
		t.Errorf("successful reloads = %v, want 1", v)
	}
	// Unchanged files are not re-read.
	r.Check()
	if v := value(t, m.Reloads.WithLabelValues("ioc", "failure")); v != 1 {
		t.Errorf("unchanged file reloaded: failures = %v", v)
	}
	// A source that cannot be read at start is an error.
	if _, _, err := NewReloader("", []string{filepath.Join(dir, "missing.txt")}, nil, m, log); err == nil {
		t.Error("missing IOC file accepted at start")
	}
}

// TestRunEnrichesFromConfiguredFiles runs the whole sidecar with an
// inventory and an IOC list and checks the indexed document and the saved
// sightings.
func TestRunEnrichesFromConfiguredFiles(t *testing.T) {
	es := newFakeES(t)
	dir := t.TempDir()
	a := testAlert(9)
	a.Host, a.Threat = nil, nil
	writeSpool(t, dir, alertLine(t, a))
	cfg := testConfig(dir, es.URL())
	cfg.InventoryFile = writeFile(t, t.TempDir(), "inv.json", `[{"ip":"10.0.0.9","hostname":"ws-9","criticality":"low"}]`)
	cfg.IOCFiles = []string{writeFile(t, t.TempDir(), "intel.txt", "c2.example.net\n")}
	if err := Run(context.Background(), cfg, quietLog(), true); err != nil {
		t.Fatal(err)
	}
	doc, ok := es.doc(a.Event.ID)
	if !ok {
		t.Fatal("alert not indexed")
	}
	var got struct {
		Host       struct{ Name, Criticality string }
		Threat     struct{ Feed string }
		Beacongrid Sighting
	}
	if err := json.Unmarshal(doc, &got); err != nil {
		t.Fatal(err)
	}
	if got.Host.Name != "ws-9" || got.Threat.Feed != "intel" || got.Beacongrid.DestinationSources != 1 {
		t.Errorf("document enrichment = %+v", got)
	}
	s, err := LoadSightings(filepath.Join(dir, sightingsFile))
	if err != nil {
		t.Fatal(err)
	}
	if sg, _ := s.Observe("10.0.0.9", "c2.example.net", a.Timestamp); !sg.FlowFirstSeen.Equal(a.Timestamp) {
		t.Errorf("sightings not saved at shutdown: %+v", sg)
	}
	// A configured file that cannot be read stops the sidecar at start.
	cfg.IOCFiles = []string{filepath.Join(dir, "missing.txt")}
	if err := Run(context.Background(), cfg, quietLog(), true); err == nil || !strings.Contains(err.Error(), "missing.txt") {
		t.Errorf("Run with a missing IOC file = %v", err)
	}
}
