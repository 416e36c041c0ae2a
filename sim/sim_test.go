package sim

import (
	"bytes"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/beacongrid/beacongrid/logread"
)

// newTestWorld builds the world of cfg.
func newTestWorld(t testing.TB, cfg Config) *world {
	t.Helper()
	cfg, err := cfg.withDefaults()
	if err != nil {
		t.Fatal(err)
	}
	w, err := buildWorld(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return w
}

// runWorld builds the world of cfg and runs it through fn.
func runWorld(t testing.TB, cfg Config, fn func(ev *Event)) *world {
	t.Helper()
	w := newTestWorld(t, cfg)
	w.run(func(ev Event) { fn(&ev) })
	return w
}

func hashDir(t *testing.T, dir string) map[string][32]byte {
	t.Helper()
	out := map[string][32]byte{}
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range ents {
		b, err := os.ReadFile(filepath.Join(dir, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		out[e.Name()] = sha256.Sum256(b)
	}
	return out
}

func TestDeterministic(t *testing.T) {
	cfg := Config{Hosts: 30, Days: 1, Seed: 42}
	a, b, c := t.TempDir(), t.TempDir(), t.TempDir()
	for _, dir := range []string{a, b} {
		if _, err := WriteDir(cfg, dir, WriteOptions{Gzip: true}); err != nil {
			t.Fatal(err)
		}
	}
	ha, hb := hashDir(t, a), hashDir(t, b)
	if len(ha) != 4 {
		t.Fatalf("files %v, want 3 logs and truth.csv", ha)
	}
	for name, h := range ha {
		if hb[name] != h {
			t.Errorf("%s differs between two runs with the same seed", name)
		}
	}
	cfg.Seed = 43
	if _, err := WriteDir(cfg, c, WriteOptions{Gzip: true}); err != nil {
		t.Fatal(err)
	}
	if hashDir(t, c)["conn.log.gz"] == ha["conn.log.gz"] {
		t.Error("a different seed gives the same conn.log")
	}
}

// TestLogsConsistent checks the stream: time order, and that every HTTP/TLS
// record has exactly one conn record with the same uid, 5-tuple and name,
// spanning it.
func TestLogsConsistent(t *testing.T) {
	type connInfo struct {
		ev    Event
		https int
		ssls  int
	}
	conns := map[string]*connInfo{}
	var last time.Time
	var n int
	var children []Event
	runWorld(t, Config{Hosts: 40, Seed: 5}, func(ev *Event) {
		n++
		if ev.Time.Before(last) {
			t.Fatalf("event %d at %v before %v", n, ev.Time, last)
		}
		last = ev.Time
		if ev.UID == "" || ev.SrcIP == "" || ev.DstIP == "" || ev.DstPort == 0 || ev.Label == "" || ev.Kind == "" {
			t.Fatalf("incomplete event %+v", ev)
		}
		if ev.Log == LogConn {
			if _, dup := conns[ev.UID]; dup {
				t.Fatalf("uid %s used by two connections", ev.UID)
			}
			conns[ev.UID] = &connInfo{ev: *ev}
			return
		}
		children = append(children, *ev)
	})
	for _, ch := range children {
		c, ok := conns[ch.UID]
		if !ok {
			t.Fatalf("%s record %s has no conn record", ch.Log, ch.UID)
		}
		ce := c.ev
		if ce.SrcIP != ch.SrcIP || ce.SrcPort != ch.SrcPort || ce.DstIP != ch.DstIP || ce.DstPort != ch.DstPort || ce.Host != ch.Host {
			t.Fatalf("%s record and conn differ:\n%+v\n%+v", ch.Log, ch, ce)
		}
		end := ce.Time.Add(time.Duration(ce.Duration * float64(time.Second)))
		if ch.Time.Before(ce.Time) || ch.Time.After(end) {
			t.Fatalf("%s record at %v outside its connection %v..%v", ch.Log, ch.Time, ce.Time, end)
		}
		if ch.Label != ce.Label || ch.Kind != ce.Kind {
			t.Fatalf("labels differ between %s and conn of %s", ch.Log, ch.UID)
		}
		if ch.Log == LogHTTP {
			c.https++
			if ce.Service != "http" {
				t.Fatalf("conn of an http record has service %q", ce.Service)
			}
		} else {
			c.ssls++
			if ce.Service != "ssl" {
				t.Fatalf("conn of an ssl record has service %q", ce.Service)
			}
		}
	}
	for uid, c := range conns {
		switch c.ev.Service {
		case "http":
			if c.https == 0 {
				t.Fatalf("http conn %s without http records", uid)
			}
		case "ssl":
			if c.ssls != 1 {
				t.Fatalf("ssl conn %s with %d ssl records", uid, c.ssls)
			}
		}
	}
	if n < 10000 {
		t.Errorf("only %d events for 40 hosts in a day", n)
	}
}

func localClock(ev *Event) (weekday time.Weekday, hour float64) {
	lt := ev.Time.In(DefaultStart.Location())
	return lt.Weekday(), float64(lt.Hour()) + float64(lt.Minute())/60
}

// TestSchedules checks a week: laptops are silent at night and at
// weekends, nobody browses then, servers talk every hour.
func TestSchedules(t *testing.T) {
	cfg := Config{Hosts: 50, Days: 7, Seed: 9}
	w := newTestWorld(t, cfg)
	roles := map[string]role{}
	for _, h := range w.hosts {
		roles[h.ip] = h.role
	}
	serverHours := map[string]map[int]bool{}
	laptopDays := map[time.Weekday]int{}
	w.run(func(e Event) {
		ev := &e
		wd, hour := localClock(ev)
		weekend := wd == time.Saturday || wd == time.Sunday
		switch roles[ev.SrcIP] {
		case roleLaptop:
			if weekend || hour < 6 || hour >= 21 {
				t.Fatalf("laptop traffic on %v at %.2f h: %+v", wd, hour, ev)
			}
			laptopDays[wd]++
		case roleServer:
			if serverHours[ev.SrcIP] == nil {
				serverHours[ev.SrcIP] = map[int]bool{}
			}
			serverHours[ev.SrcIP][int(ev.Time.Sub(DefaultStart).Hours())] = true
		}
		if ev.Kind == KindBrowsing && (weekend || hour < 6 || hour >= 21) {
			t.Fatalf("browsing on %v at %.2f h", wd, hour)
		}
	})
	for _, wd := range []time.Weekday{time.Monday, time.Tuesday, time.Wednesday, time.Thursday, time.Friday} {
		if laptopDays[wd] < 1000 {
			t.Errorf("laptops quiet on %v: %d events", wd, laptopDays[wd])
		}
	}
	for ip, hours := range serverHours {
		if len(hours) != 7*24 {
			t.Errorf("server %s silent in %d of 168 hours", ip, 168-len(hours))
		}
	}
	if len(serverHours) == 0 {
		t.Error("no server traffic")
	}
}

// beaconStarts collects the start of every malicious connection per
// source.
func beaconStarts(t testing.TB, cfg Config) (*world, map[string][]int64) {
	starts := map[string][]int64{}
	w := runWorld(t, cfg, func(ev *Event) {
		if ev.Label == Malicious && ev.Log == LogConn {
			starts[ev.SrcIP] = append(starts[ev.SrcIP], ev.Time.UnixMicro())
		}
	})
	return w, starts
}

// callbacks drops the extra connections of multi-connection callbacks
// (perCall > 1): those start within 5 s of the callback's first one, and no
// implant sleeps that little.
func callbacks(ts []int64, perCall int) []int64 {
	if perCall <= 1 {
		return ts
	}
	var out []int64
	for _, t := range ts {
		if len(out) == 0 || t-out[len(out)-1] > 5*1000*1000 {
			out = append(out, t)
		}
	}
	return out
}

// dnsSlack is the most a DNS lookup can delay a connection after the
// implant's wake-up.
const dnsSlack = 400 * 1000 // µs

// TestImplantSleeps checks every implant's sleeps against
// interval*(1-U(0,jitter)), and operator bursts.
func TestImplantSleeps(t *testing.T) {
	for _, seed := range []int64{1, 2} {
		w, starts := beaconStarts(t, Config{Hosts: 120, Days: 2, Seed: seed, C2PerHundred: 12})
		kinds := map[string]bool{}
		for _, m := range w.implants {
			kinds[m.kind] = true
			ts := callbacks(starts[m.h.ip], m.perCall)
			if len(ts) < 3 {
				t.Errorf("%s implant on %s: only %d beacons", m.kind, m.h.ip, len(ts))
				continue
			}
			lo := int64(float64(m.interval)*(1-m.jitter)) - dnsSlack
			hi := m.interval + dnsSlack
			checked, bursts := 0, 0
			for i := 1; i < len(ts); i++ {
				a, b := ts[i-1], ts[i]
				inA, endA := m.gate.at(a)
				inB, _ := m.gate.at(b)
				if !inA || !inB {
					t.Fatalf("%s implant on %s calls while off at %v", m.kind, m.h.ip, time.UnixMicro(b))
				}
				if b >= endA {
					continue // across an off period
				}
				gap := b - a
				if op, _ := m.ops.at(a); m.ops != nil && op {
					if gap < secs(1)-dnsSlack || gap > secs(5)+dnsSlack {
						t.Errorf("operator-session gap %v", time.Duration(gap*1000))
					}
					bursts++
					continue
				}
				if gap < lo || gap > hi {
					t.Errorf("%s implant on %s (interval %v jitter %.2f): gap %v outside [%v, %v]",
						m.kind, m.h.ip, time.Duration(m.interval*1000), m.jitter, time.Duration(gap*1000), time.Duration(lo*1000), time.Duration(hi*1000))
				}
				checked++
			}
			if checked == 0 {
				t.Errorf("%s implant on %s: no sleep checked", m.kind, m.h.ip)
			}
			if m.kind == KindC2Interactive && bursts < 50 {
				t.Errorf("interactive implant: %d operator calls in 2 days", bursts)
			}
		}
		for _, k := range C2Kinds {
			if !kinds[k] {
				t.Errorf("seed %d: no %s implant", seed, k)
			}
		}
	}
}

// TestJitterDistribution checks that sleeps fill [I(1-j), I] uniformly.
func TestJitterDistribution(t *testing.T) {
	for _, jitter := range []float64{0, 0.2, 0.5} {
		cfg := SimpleBeacon(3, "10.9.9.9", "beacon.test.example", jitter, 11)
		_, starts := beaconStarts(t, cfg)
		ts := starts["10.9.9.9"]
		if len(ts) < 1400 {
			t.Fatalf("jitter %.1f: %d beacons in a day, want about %d", jitter, len(ts), int(86400/(60*(1-jitter/2))))
		}
		var gaps []float64
		for i := 1; i < len(ts); i++ {
			gaps = append(gaps, float64(ts[i]-ts[i-1])/1e6)
		}
		sort.Float64s(gaps)
		slack := float64(dnsSlack) / 1e6
		lo, hi := 60*(1-jitter), 60.0
		if gaps[0] < lo-slack || gaps[len(gaps)-1] > hi+slack {
			t.Errorf("jitter %.1f: gaps span %.2f..%.2f s, want within [%.1f, %.1f]", jitter, gaps[0], gaps[len(gaps)-1], lo, hi)
		}
		// Quartiles of U(lo, hi).
		for _, q := range []float64{0.25, 0.5, 0.75} {
			got := gaps[int(q*float64(len(gaps)))]
			want := hi - (1-q)*(hi-lo)
			if math.Abs(got-want) > 0.05*(hi-lo)+slack {
				t.Errorf("jitter %.1f: %.0f%% quantile %.2f s, want %.2f s", jitter, q*100, got, want)
			}
		}
	}
}

func TestOfficeHoursImplants(t *testing.T) {
	cfg := Config{Hosts: 60, Days: 7, Seed: 4}
	w := newTestWorld(t, cfg)
	office := map[string]bool{}
	for _, m := range w.implants {
		if m.kind == KindC2OfficeHours {
			office[m.h.ip] = true
		}
	}
	days := map[string]map[time.Weekday]bool{}
	w.run(func(e Event) {
		ev := &e
		if ev.Label != Malicious || !office[ev.SrcIP] {
			return
		}
		wd, hour := localClock(ev)
		if wd == time.Saturday || wd == time.Sunday || hour < 7.5 || hour >= 18.5 {
			t.Fatalf("office-hours implant active on %v at %.2f h", wd, hour)
		}
		if days[ev.SrcIP] == nil {
			days[ev.SrcIP] = map[time.Weekday]bool{}
		}
		days[ev.SrcIP][wd] = true
	})
	if len(office) == 0 {
		t.Fatal("no office-hours implant")
	}
	for ip := range office {
		if len(days[ip]) != 5 {
			t.Errorf("office-hours implant on %s active on %d weekdays, want 5", ip, len(days[ip]))
		}
	}
}

// readLogs reads the logs of dir with logread and returns each log's
// records as maps.
func readLogs(t *testing.T, dir string, gz bool) map[string][]map[string]string {
	out := map[string][]map[string]string{}
	for _, log := range []string{LogConn, LogHTTP, LogSSL} {
		r, err := logread.Open(filepath.Join(dir, LogFileName(log, gz)))
		if err != nil {
			t.Fatal(err)
		}
		for {
			rec := map[string]string{}
			ok, err := r.Next(func(k, v []byte) { rec[string(k)] = string(v) })
			if err != nil {
				t.Fatalf("%s: %v", log, err)
			}
			if !ok {
				break
			}
			out[log] = append(out[log], rec)
		}
		r.Close()
	}
	return out
}

// TestRoundTrip writes logs and reads them back with logread: each record
// equals the event's Fields(), and the flows in the logs are exactly the
// rows of truth.csv.
func TestRoundTrip(t *testing.T) {
	for _, gz := range []bool{false, true} {
		cfg := Config{Hosts: 50, Seed: 77}
		if gz {
			cfg = Config{Hosts: 8, Seed: 78, Beacons: []Beacon{{Src: "10.10.0.11", Dst: "c2.example.org", Transport: "http"}}}
		}
		dir := t.TempDir()
		sum, err := WriteDir(cfg, dir, WriteOptions{Gzip: gz})
		if err != nil {
			t.Fatal(err)
		}
		logs := readLogs(t, dir, gz)
		idx := map[string]int{}
		err = Generate(cfg, func(ev Event) {
			i := idx[ev.Log]
			idx[ev.Log]++
			if i >= len(logs[ev.Log]) {
				t.Fatalf("%s.log has fewer records than events", ev.Log)
			}
			rec := logs[ev.Log][i]
			n := 0
			for _, f := range ev.Fields() {
				if f.Value == "-" || f.Value == "(empty)" {
					continue
				}
				n++
				if rec[f.Key] != f.Value {
					t.Fatalf("%s record %d field %s: read %q, event %q", ev.Log, i, f.Key, rec[f.Key], f.Value)
				}
			}
			if n != len(rec) {
				t.Fatalf("%s record %d: %d fields read, %d in the event", ev.Log, i, len(rec), n)
			}
		})
		if err != nil {
			t.Fatal(err)
		}
		for log, recs := range logs {
			if idx[log] != len(recs) || sum.Events[log] != len(recs) {
				t.Errorf("%s: %d records, %d events, summary %d", log, len(recs), idx[log], sum.Events[log])
			}
		}

		// Flows as a detector keys them: http host / ssl server_name, else
		// ip:port; a conn record takes the key of its http/ssl records.
		keyOf := map[string]string{}
		flows := map[[2]string]bool{}
		for _, log := range []string{LogHTTP, LogSSL} {
			field := map[string]string{LogHTTP: "host", LogSSL: "server_name"}[log]
			for _, rec := range logs[log] {
				port, _ := strconv.Atoi(rec["id.resp_p"])
				k := FlowKey(rec[field], rec["id.resp_h"], port)
				keyOf[rec["uid"]] = k
				flows[[2]string{rec["id.orig_h"], k}] = true
			}
		}
		for _, rec := range logs[LogConn] {
			k, ok := keyOf[rec["uid"]]
			if !ok {
				k = rec["id.resp_h"] + ":" + rec["id.resp_p"]
			}
			flows[[2]string{rec["id.orig_h"], k}] = true
		}
		f, err := os.Open(filepath.Join(dir, "truth.csv"))
		if err != nil {
			t.Fatal(err)
		}
		rows, err := ReadTruthCSV(f)
		f.Close()
		if err != nil {
			t.Fatal(err)
		}
		truth := map[[2]string]TruthRow{}
		for _, r := range rows {
			truth[[2]string{r.Src, r.Dst}] = r
			if !flows[[2]string{r.Src, r.Dst}] {
				t.Errorf("truth row %v does not appear in the logs", r)
			}
			if (r.Label == Malicious) != strings.HasPrefix(r.Kind, "c2-") || r.Detail == "" {
				t.Errorf("inconsistent truth row %v", r)
			}
		}
		for fl := range flows {
			if _, ok := truth[fl]; !ok {
				t.Errorf("flow %v in the logs has no truth row", fl)
			}
		}
		if len(rows) != sum.Flows || sum.Malicious < min(len(C2Kinds), len(cfg.Beacons)+cfg.Hosts/50*len(C2Kinds)) {
			t.Errorf("%d truth rows, summary %d flows, %d malicious", len(rows), sum.Flows, sum.Malicious)
		}
	}
}

// TestHeadersLikeRealZeek compares our header lines with the real Zeek logs
// in the shared data directory.
func TestHeadersLikeRealZeek(t *testing.T) {
	data := filepath.Join("..", "..", "shared", "data", "ctu-normal-40-day1")
	if _, err := os.Stat(data); err != nil {
		t.Skipf("real Zeek logs not available: %s is absent (the shared data directory beside the repository)", data)
	}
	dir := t.TempDir()
	if _, err := WriteDir(Config{Hosts: 5, Seed: 1}, dir, WriteOptions{LabelColumns: true}); err != nil {
		t.Fatal(err)
	}
	headers := func(p string) map[string]string {
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		h := map[string]string{}
		for _, l := range strings.Split(string(b), "\n") {
			if !strings.HasPrefix(l, "#") {
				continue
			}
			k, v, _ := strings.Cut(l, "\t")
			if strings.HasPrefix(l, "#separator ") {
				k, v = "#separator", strings.TrimPrefix(l, "#separator ")
			}
			h[k] = v
		}
		return h
	}
	for _, log := range []string{LogConn, LogHTTP, LogSSL} {
		real := headers(filepath.Join(data, log+".log.labeled"))
		ours := headers(filepath.Join(dir, log+".log"))
		for _, k := range []string{"#separator", "#set_separator", "#empty_field", "#unset_field", "#path", "#fields", "#types"} {
			if real[k] != ours[k] {
				t.Errorf("%s %s:\n ours %q\n real %q", log, k, ours[k], real[k])
			}
		}
		for _, k := range []string{"#open", "#close"} {
			if _, err := time.Parse(zeekTime, ours[k]); err != nil {
				t.Errorf("%s %s %q: %v", log, k, ours[k], err)
			}
		}
	}
}

// TestRealism checks properties the detector must not be able to shortcut.
func TestRealism(t *testing.T) {
	cfg := Config{Hosts: 150, Seed: 21}
	truth := NewTruth()
	browse := map[string]int{}             // domain -> connections
	shared := map[string]map[string]bool{} // periodic destination -> sources
	var hidden []Event
	var backupHours []float64
	browsedBy := map[[2]string]bool{}
	w := runWorld(t, cfg, func(ev *Event) {
		truth.Add(ev)
		if ev.Log != LogConn {
			return
		}
		key := ev.FlowKey()
		switch {
		case ev.Kind == KindBrowsing:
			browse[key]++
			browsedBy[[2]string{ev.SrcIP, key}] = true
		case ev.Kind == KindBackup:
			_, h := localClock(ev)
			backupHours = append(backupHours, h)
		case ev.Kind == KindC2CDNHidden:
			hidden = append(hidden, *ev)
		case ev.Label == Benign && ev.Kind != "benign-dns":
			if shared[key] == nil {
				shared[key] = map[string]bool{}
			}
			shared[key][ev.SrcIP] = true
		}
	})
	// Heavy-tailed browsing over many destinations.
	counts := make([]int, 0, len(browse))
	total := 0
	for _, c := range browse {
		counts = append(counts, c)
		total += c
	}
	sort.Sort(sort.Reverse(sort.IntSlice(counts)))
	top := 0
	for _, c := range counts[:len(counts)/20] {
		top += c
	}
	if len(counts) < 500 || float64(top) < 0.4*float64(total) {
		t.Errorf("browsing: %d domains, top 5%% carry %.0f%% of connections", len(counts), 100*float64(top)/float64(total))
	}
	// Periodic services shared by most hosts.
	widest := 0
	for _, srcs := range shared {
		widest = max(widest, len(srcs))
	}
	if widest < len(w.hosts)*3/4 {
		t.Errorf("the most widely shared benign destination has %d of %d hosts", widest, len(w.hosts))
	}
	// Rare periodic benign flows: one host each.
	kinds := map[string]int{}
	for _, r := range truth.Rows() {
		kinds[r.Kind]++
	}
	for _, k := range []string{KindDashboard, KindIoT, KindBackup, KindCronPoll} {
		if kinds[k] != 1 {
			t.Errorf("%d flows of %s, want 1", kinds[k], k)
		}
	}
	for _, h := range backupHours {
		if h < 2 || h > 4 {
			t.Errorf("backup upload at %.2f h", h)
		}
	}
	// The CDN-hidden beacon shares its flow with the victim's browsing.
	if len(hidden) == 0 {
		t.Fatal("no CDN-hidden beacon")
	}
	row, _ := truth.Lookup(hidden[0].SrcIP, hidden[0].FlowKey())
	if row.Kind != KindC2CDNHidden || browse[hidden[0].FlowKey()] == 0 {
		t.Errorf("CDN-hidden flow %s: truth %v, %d browsing connections to it", hidden[0].FlowKey(), row, browse[hidden[0].FlowKey()])
	}
	browsedByVictim := browsedBy[[2]string{hidden[0].SrcIP, hidden[0].FlowKey()}]
	if !browsedByVictim {
		t.Error("the CDN-hidden victim never browses the beacon's CDN host")
	}
}

func TestImplantCounts(t *testing.T) {
	count := func(cfg Config) (flows map[string]int, srcs int) {
		truth := NewTruth()
		if err := Generate(cfg, func(ev Event) { truth.Add(&ev) }); err != nil {
			t.Fatal(err)
		}
		flows = map[string]int{}
		seen := map[string]bool{}
		for _, r := range truth.Rows() {
			if r.Label == Malicious {
				flows[r.Kind]++
				seen[r.Src] = true
			}
		}
		return flows, len(seen)
	}
	flows, _ := count(Config{Hosts: 50, Seed: 3})
	for _, k := range C2Kinds {
		if flows[k] == 0 {
			t.Errorf("50 hosts: no %s flow", k)
		}
	}
	if flows[KindC2SharedServer] != 3 {
		t.Errorf("shared server: %d flows, want 3", flows[KindC2SharedServer])
	}
	if _, srcs := count(Config{Hosts: 100, Seed: 3, C2PerHundred: 12}); srcs != 12 {
		t.Errorf("100 hosts at 12 per 100: %d implanted hosts, want 12", srcs)
	}
	if f, _ := count(Config{Hosts: 50, Seed: 3, C2PerHundred: -1}); len(f) != 0 {
		t.Errorf("C2 disabled, got %v", f)
	}
}

func TestSimpleBeacon(t *testing.T) {
	for _, tc := range []struct {
		dst, key, service string
	}{
		{"update-check.c2-e2e.example", "update-check.c2-e2e.example", "ssl"},
		{"203.0.113.7:8443", "203.0.113.7:8443", ""},
	} {
		cfg := SimpleBeacon(20, "10.20.30.40", tc.dst, 0.2, 7)
		truth := NewTruth()
		var starts []int64
		err := Generate(cfg, func(ev Event) {
			truth.Add(&ev)
			if ev.Label == Malicious && ev.Log == LogConn {
				starts = append(starts, ev.Time.UnixMicro())
				if ev.SrcIP != "10.20.30.40" || ev.FlowKey() != tc.key || ev.Service != tc.service {
					t.Fatalf("beacon event %+v", ev)
				}
			}
		})
		if err != nil {
			t.Fatal(err)
		}
		var mal []TruthRow
		benignFromSrc := 0
		for _, r := range truth.Rows() {
			if r.Label == Malicious {
				mal = append(mal, r)
			} else if r.Src == "10.20.30.40" {
				benignFromSrc++
			}
		}
		if len(mal) != 1 || mal[0].Src != "10.20.30.40" || mal[0].Dst != tc.key || mal[0].Kind != KindC2Jittered {
			t.Errorf("malicious rows %v, want exactly one for %s", mal, tc.key)
		}
		if benignFromSrc == 0 {
			t.Error("the beacon's host has no benign traffic")
		}
		if n := len(starts); n < 1500 || n > 1700 {
			t.Errorf("%d beacons in a day at 60 s with 20%% jitter", n)
		}
	}
}

func TestConfigErrors(t *testing.T) {
	for _, cfg := range []Config{
		{Hosts: -1},
		{Days: -2},
		{C2PerHundred: 80},
		{Beacons: []Beacon{{Src: "nope", Dst: "x.example"}}},
		{Beacons: []Beacon{{Src: "10.0.0.1", Dst: "203.0.113.1"}}},
		{Beacons: []Beacon{{Src: "10.0.0.1", Dst: "x.example", Jitter: 1.5}}},
		{Beacons: []Beacon{{Src: "10.0.0.1", Dst: "x.example", Transport: "smtp"}}},
		{Beacons: []Beacon{{Src: "10.0.0.1", Dst: "x.example", Interval: time.Millisecond}}},
	} {
		if err := Generate(cfg, func(Event) {}); err == nil {
			t.Errorf("config %+v accepted", cfg)
		}
	}
}

func TestFlowKey(t *testing.T) {
	for _, tc := range []struct {
		host, ip string
		port     int
		want     string
	}{
		{"example.com", "1.2.3.4", 443, "example.com"},
		{"", "1.2.3.4", 443, "1.2.3.4:443"},
		{"1.2.3.4", "1.2.3.4", 80, "1.2.3.4:80"},
		{"1.2.3.4:8080", "1.2.3.4", 8080, "1.2.3.4:8080"},
		{"[2001:db8::1]:80", "2001:db8::1", 80, "[2001:db8::1]:80"},
		{"Example.COM.", "1.2.3.4", 443, "example.com"},
		{"example.com:8080", "1.2.3.4", 8080, "example.com"},
		{"-", "1.2.3.4", 80, "1.2.3.4:80"},
		{"2001:db8::1", "2001:db8::1", 443, "[2001:db8::1]:443"},
	} {
		if got := FlowKey(tc.host, tc.ip, tc.port); got != tc.want {
			t.Errorf("FlowKey(%q, %q, %d) = %q, want %q", tc.host, tc.ip, tc.port, got, tc.want)
		}
	}
}

func TestFieldsEscaping(t *testing.T) {
	ev := Event{Log: LogHTTP, Time: DefaultStart.Add(1500 * time.Microsecond), URI: "/a\tb\\c", UserAgent: "-", Host: "h"}
	got := map[string]string{}
	for _, f := range ev.Fields() {
		got[f.Key] = f.Value
	}
	if got["uri"] != `/a\x09b\x5cc` || got["user_agent"] != `\x2d` || got["ts"] != "1709510400.001500" || got["referrer"] != "-" || got["tags"] != "(empty)" {
		t.Errorf("fields %v", got)
	}
	if names := ColumnNames(LogHTTP); names[0] != "ts" || len(names) != len(ev.Fields()) {
		t.Errorf("ColumnNames %v", names)
	}
}

func TestSummaryAndTruthCSV(t *testing.T) {
	dir := t.TempDir()
	sum, err := WriteDir(Config{Hosts: 10, Seed: 2}, dir, WriteOptions{})
	if err != nil {
		t.Fatal(err)
	}
	s := sum.String()
	for _, want := range []string{"records: conn=", "benign-browsing", "hosts: laptop="} {
		if !strings.Contains(s, want) {
			t.Errorf("summary lacks %q:\n%s", want, s)
		}
	}
	b, err := os.ReadFile(filepath.Join(dir, "truth.csv"))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.HasPrefix(b, []byte("src,dst,label,kind,detail\n")) {
		t.Errorf("truth.csv starts %q", b[:40])
	}
	if _, err := ReadTruthCSV(strings.NewReader("a,b\n")); err == nil {
		t.Error("bad truth header accepted")
	}
	if _, err := ReadTruthCSV(strings.NewReader("")); !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Errorf("empty truth: %v", err)
	}
}

// TestSpeed guards the generation speed of the demo's scale.
func TestSpeed(t *testing.T) {
	if testing.Short() {
		t.Skip("short")
	}
	began := time.Now()
	n := 0
	if err := Generate(Config{Hosts: 150, Days: 1, Seed: 1}, func(Event) { n++ }); err != nil {
		t.Fatal(err)
	}
	el := time.Since(began)
	t.Logf("150 hosts x 1 day: %d events in %v (%.0f events/s)", n, el, float64(n)/el.Seconds())
	if el > 30*time.Second {
		t.Errorf("generation took %v", el)
	}
}

func BenchmarkGenerate150Hosts(b *testing.B) {
	for i := 0; i < b.N; i++ {
		n := 0
		if err := Generate(Config{Hosts: 150, Days: 1, Seed: int64(i)}, func(Event) { n++ }); err != nil {
			b.Fatal(err)
		}
		b.ReportMetric(float64(n), "events/op")
	}
}

func BenchmarkWriteDir150Hosts(b *testing.B) {
	dir := b.TempDir()
	for i := 0; i < b.N; i++ {
		if _, err := WriteDir(Config{Hosts: 150, Days: 1, Seed: 1}, filepath.Join(dir, fmt.Sprint(i)), WriteOptions{Gzip: true}); err != nil {
			b.Fatal(err)
		}
	}
}

// The training mix adds shared servers of 2 to hosts/12 hosts (at least 3,
// at most 10), every-minute beacons and the kinds a small network lacks, on
// top of the same random implants as without it.
func TestTrainingMix(t *testing.T) {
	for _, hosts := range []int{30, 150} {
		cfg := Config{Hosts: hosts, Seed: 5, C2PerHundred: 10}
		plain := newTestWorld(t, cfg)
		cfg.TrainingMix = true
		mix := newTestWorld(t, cfg)
		if len(mix.implants) <= len(plain.implants) {
			t.Fatalf("%d hosts: %d implants with the mix, %d without", hosts, len(mix.implants), len(plain.implants))
		}
		for i, m := range plain.implants {
			o := mix.implants[i]
			if o.h.ip != m.h.ip || o.kind != m.kind || o.interval != m.interval || o.jitter != m.jitter || epKey(o.ep) != epKey(m.ep) {
				t.Errorf("%d hosts: implant %d differs with the mix: %s %s vs %s %s", hosts, i, o.h.ip, o.kind, m.h.ip, m.kind)
			}
		}
		most := min(max(hosts/12, 3), 10)
		shared := map[string]int{}
		kinds := map[string]int{}
		fast := 0
		for _, m := range mix.implants[len(plain.implants):] {
			kinds[m.kind]++
			if m.kind == KindC2SharedServer {
				shared[epKey(m.ep)]++
			}
			if m.interval <= 120e6 && (m.kind == KindC2Jittered || m.kind == KindC2Laptop) {
				fast++
			}
		}
		if len(shared) == 0 {
			t.Errorf("%d hosts: no shared server added", hosts)
		}
		for ep, n := range shared {
			if n < 2 || n > most {
				t.Errorf("%d hosts: server %s shared by %d hosts, want 2..%d", hosts, ep, n, most)
			}
		}
		if fast < 2 {
			t.Errorf("%d hosts: %d beacons every 30-120 s added, want at least 2", hosts, fast)
		}
		for _, k := range []string{KindC2CDNHidden, KindC2OfficeHours, KindC2Interactive} {
			if kinds[k] == 0 {
				t.Errorf("%d hosts: no %s added", hosts, k)
			}
		}
	}
}

func epKey(e *endpoint) string { return fmt.Sprint(e.name, e.addrs, e.port) }
