package fields

import (
	"bytes"
	"math"
	"math/rand/v2"
	"net/netip"
	"reflect"
	"strconv"
	"strings"
	"testing"
)

func TestFlow(t *testing.T) {
	f := func(src, domain, dstIP string, port int, service, wantSrc, wantDst string, wantOK bool) {
		t.Helper()
		var e Event
		e.Reset()
		e.Src, e.Domain, e.DstIP, e.DstPort, e.Service = []byte(src), []byte(domain), []byte(dstIP), port, []byte(service)
		s, d, _, ok := e.Flow(nil)
		if ok != wantOK || (ok && (string(s) != wantSrc || string(d) != wantDst)) {
			t.Fatalf("Flow(%q,%q,%q,%d,%q) = %q,%q,%v; want %q,%q,%v", src, domain, dstIP, port, service, s, d, ok, wantSrc, wantDst, wantOK)
		}
	}
	f("10.0.0.1", "Example.COM", "1.2.3.4", 80, "", "10.0.0.1", "example.com", true)
	f("10.0.0.1", "example.com:8080", "1.2.3.4", 8080, "", "10.0.0.1", "example.com", true)
	f("10.0.0.1", "example.com.", "", 0, "", "10.0.0.1", "example.com", true)
	f("10.0.0.1", "", "1.2.3.4", 443, "", "10.0.0.1", "1.2.3.4:443", true)
	f("10.0.0.1", "-", "1.2.3.4", 443, "", "10.0.0.1", "1.2.3.4:443", true)
	f("10.0.0.1", "1.2.3.4", "1.2.3.4", 80, "", "10.0.0.1", "1.2.3.4:80", true) // Host header holding an IP
	f("10.0.0.1", "1.2.3.4:8080", "1.2.3.4", 8080, "", "10.0.0.1", "1.2.3.4:8080", true)
	f("10.0.0.1", "1.2.3.4", "5.6.7.8", 80, "", "10.0.0.1", "5.6.7.8:80", true) // Host and address differ: the address
	f("10.0.0.1", "1.2.3.4", "2001:db8::1", 80, "", "10.0.0.1", "[2001:db8::1]:80", true)
	f("10.0.0.1", "1.2.3.4", "", 80, "", "", "", false) // an IP Host alone is no destination
	f("10.0.0.1", "CDN.Example.com", "", 0, "", "10.0.0.1", "cdn.example.com", true)
	f("fe80::1%eth0", "", "2001:db8::1", 443, "", "fe80::1", "[2001:db8::1]:443", true)
	f("not-an-ip", "example.com", "", 0, "", "", "", false)
	f("10.0.0.1", "", "", 0, "", "", "", false)
	f("10.0.0.1", "", "1.2.3.4", 443, "ssl", "", "", false) // the ssl log carries it
	f("10.0.0.1", "", "1.2.3.4", 53, "dns", "10.0.0.1", "1.2.3.4:53", true)
	f("10.0.0.1", "", "1.2.3.4", 80, "http,websocket", "", "", false)
}

func TestSetters(t *testing.T) {
	var e Event
	e.Reset()
	if err := e.SetText(Time, []byte("1419360720.123456")); err != nil || e.Sec != 1419360720 {
		t.Fatalf("epoch text: %v %d", err, e.Sec)
	}
	if err := e.SetText(Time, []byte("2026-11-25T10:00:00.5Z")); err != nil || e.Sec != 1795600800 {
		t.Fatalf("RFC 3339: %v %d", err, e.Sec)
	}
	for _, bad := range []string{"", "yesterday", "1e400", "99999999999999"} {
		if err := e.SetText(Time, []byte(bad)); err == nil {
			t.Fatalf("time %q accepted", bad)
		}
	}
	if err := e.SetText(DstPort, []byte("70000")); err == nil {
		t.Fatal("port 70000 accepted")
	}
	if err := e.SetInt(Src, 5); err == nil {
		t.Fatal("an integer source accepted")
	}
	if err := e.SetFloat(Time, 1e300); err == nil {
		t.Fatal("a time of 1e300 accepted")
	}
}

func TestClaimPriority(t *testing.T) {
	var e Event
	e.Reset()
	if !e.Claim(Domain, 1) || e.Claim(Domain, 1) || !e.Claim(Domain, 0) || e.Claim(Domain, 1) {
		t.Fatal("an earlier alias must win over a later one, whatever the record order")
	}
}

func TestFlowAllocatesNothing(t *testing.T) {
	var e Event
	e.Reset()
	e.Src, e.Domain = []byte("10.0.0.1"), []byte("Updates.Example.com")
	buf := make([]byte, 0, 128)
	n := testing.AllocsPerRun(1000, func() { _, _, buf, _ = e.Flow(buf) })
	if n != 0 {
		t.Fatalf("%v allocations per Flow", n)
	}
}

// apply fills an event from a record of text values through m, as the
// plugin and the replay command do (first alias wins, whatever the order).
func apply(t *testing.T, m Mapping, rec map[string]string) Event {
	t.Helper()
	var e Event
	e.Reset()
	for key, v := range rec {
		for slot, aliases := range m {
			for rank, a := range aliases {
				if a == key && e.Claim(slot, rank) {
					if err := e.SetText(slot, []byte(v)); err != nil {
						t.Fatalf("%s=%q: %v", key, v, err)
					}
				}
			}
		}
	}
	return e
}

// One record per log type, as Fluent Bit's parsers hand it over, through
// its preset: the flow and the time it makes.
func TestPresets(t *testing.T) {
	cases := []struct {
		preset   string
		rec      map[string]string
		src, dst string
		sec      int64 // 0: no time in the record (Fluent Bit's is used)
	}{
		{"zeek", map[string]string{"ts": "1700000000.25", "id.orig_h": "10.0.0.5", "id.resp_h": "93.184.216.34", "id.resp_p": "80", "host": "WWW.Example.com", "uri": "/"}, "10.0.0.5", "www.example.com", 1700000000},
		{"zeek", map[string]string{"ts": "1700000000", "id.orig_h": "10.0.0.5", "id.resp_h": "1.1.1.1", "id.resp_p": "53", "service": "dns"}, "10.0.0.5", "1.1.1.1:53", 1700000000},
		{"ecs", map[string]string{"@timestamp": "2023-11-14T22:13:20Z", "source.ip": "10.0.0.6", "destination.ip": "8.8.8.8", "destination.port": "443", "url.full": "https://dns.google/resolve?name=x"}, "10.0.0.6", "dns.google", 1700000000},
		// Squid native: a GET, a CONNECT (host:port) and a URL naming an IP.
		{"squid", map[string]string{"timestamp": "1700000000.450", "elapsed": "99", "client_ip": "192.168.0.68", "result": "TCP_MISS", "status": "200", "bytes": "507", "method": "GET", "url": "http://www.google.com/search?q=1", "user": "-", "hierarchy": "DIRECT", "server_ip": "74.125.39.104", "content_type": "text/html"}, "192.168.0.68", "www.google.com", 1700000000},
		{"squid", map[string]string{"timestamp": "1700000000.450", "client_ip": "192.168.0.68", "method": "CONNECT", "url": "Update.Vendor.example:443", "server_ip": "203.0.113.9"}, "192.168.0.68", "update.vendor.example", 1700000000},
		{"squid", map[string]string{"timestamp": "1700000000.450", "client_ip": "192.168.0.68", "url": "http://203.0.113.7:8080/gate.php", "server_ip": "203.0.113.7"}, "192.168.0.68", "203.0.113.7:8080", 1700000000},
		{"squid", map[string]string{"client_ip": "192.168.0.68", "url": "http://203.0.113.8/gate.php", "server_ip": "-"}, "192.168.0.68", "203.0.113.8:80", 0},
		{"squid", map[string]string{"client_ip": "192.168.0.68", "method": "CONNECT", "url": "[2001:db8::5]:443"}, "192.168.0.68", "[2001:db8::5]:443", 0},
		// Proxy JSON: Zscaler NSS names, W3C names, generic names.
		{"proxy", map[string]string{"time": "2023-11-14T22:13:20Z", "clientip": "10.1.1.1", "hostname": "api.example.net", "serverip": "198.51.100.1", "url": "api.example.net/v1"}, "10.1.1.1", "api.example.net", 1700000000},
		{"proxy", map[string]string{"c-ip": "10.1.1.2", "cs-host": "cdn.example.org", "s-ip": "198.51.100.2", "cs-uri-port": "443"}, "10.1.1.2", "cdn.example.org", 0},
		{"proxy", map[string]string{"src_ip": "10.1.1.3", "dest_ip": "198.51.100.3", "dest_port": "8443"}, "10.1.1.3", "198.51.100.3:8443", 0},
		{"proxy", map[string]string{"client_ip": "10.1.1.4", "url": "https://user@Login.Example.com:8443/x"}, "10.1.1.4", "login.example.com", 0},
		// Firewalls.
		{"paloalto", map[string]string{"src": "10.2.0.1", "dst": "203.0.113.50", "dport": "443", "bytes_sent": "1200", "app": "ssl"}, "10.2.0.1", "203.0.113.50:443", 0},
		{"paloalto", map[string]string{"src": "10.2.0.1", "dst": "203.0.113.50", "dport": "80", "misc": "evil.example/gate.php"}, "10.2.0.1", "evil.example", 0},
		{"fortinet", map[string]string{"srcip": "10.3.0.1", "dstip": "203.0.113.60", "dstport": "443", "hostname": "Portal.Example.com", "sentbyte": "512", "action": "accept"}, "10.3.0.1", "portal.example.com", 0},
		{"fortinet", map[string]string{"srcip": "10.3.0.2", "dstip": "203.0.113.61", "dstport": "22"}, "10.3.0.2", "203.0.113.61:22", 0},
		{"pfsense", map[string]string{"src": "10.4.0.1", "dst": "198.51.100.70", "dstport": "4444", "srcport": "51000", "action": "block"}, "10.4.0.1", "198.51.100.70:4444", 0},
		{"iptables", map[string]string{"SRC": "10.5.0.1", "DST": "198.51.100.80", "DPT": "8080", "SPT": "40000", "PROTO": "TCP"}, "10.5.0.1", "198.51.100.80:8080", 0},
		// Several presets at once: the first listed wins a slot.
		{"fortinet,proxy", map[string]string{"srcip": "10.6.0.1", "client_ip": "10.6.0.2", "hostname": "a.example"}, "10.6.0.1", "a.example", 0},
	}
	for _, c := range cases {
		m, err := Preset(c.preset)
		if err != nil {
			t.Fatal(err)
		}
		if err := m.Validate(); err != nil {
			t.Fatalf("%s: %v", c.preset, err)
		}
		e := apply(t, m, c.rec)
		src, dst, _, ok := e.Flow(nil)
		if !ok || string(src) != c.src || string(dst) != c.dst {
			t.Errorf("%s %v: flow %q -> %q (ok %v), want %q -> %q", c.preset, c.rec, src, dst, ok, c.src, c.dst)
		}
		if want := c.sec != 0; e.HasTime != want || e.Sec != c.sec {
			t.Errorf("%s %v: time %d (%v), want %d", c.preset, c.rec, e.Sec, e.HasTime, c.sec)
		}
	}
}

func TestPresetNames(t *testing.T) {
	def, err := Preset("")
	if err != nil || !reflect.DeepEqual(def, Default()) {
		t.Fatalf("empty preset: %v, %v", def, err)
	}
	if m, err := Preset(" Zeek , ecs "); err != nil || !reflect.DeepEqual(m, Default()) {
		t.Fatalf("names are trimmed and case-insensitive: %v", err)
	}
	for _, bad := range []string{"zeek,", "cisco", "zeek;ecs"} {
		if _, err := Preset(bad); err == nil || !strings.Contains(err.Error(), "known: ecs, fortinet") {
			t.Errorf("Preset(%q) = %v, want an error listing the presets", bad, err)
		}
	}
	for _, n := range PresetNames() {
		m, _ := Preset(n)
		if err := m.Validate(); err != nil {
			t.Errorf("preset %s: %v", n, err)
		}
	}
}

// isIPv4 says yes exactly where netip.ParseAddr parses an IPv4 address.
func TestIsIPv4MatchesNetip(t *testing.T) {
	check := func(s string) {
		a, err := netip.ParseAddr(s)
		if want := err == nil && a.Is4(); isIPv4([]byte(s)) != want {
			t.Fatalf("isIPv4(%q) = %v, netip says %v", s, !want, want)
		}
	}
	for _, s := range []string{"1.2.3.4", "0.0.0.0", "255.255.255.255", "256.1.1.1", "01.2.3.4", "1.2.3.04", "1.2.3", "1.2.3.4.5",
		"1..2.3", ".1.2.3", "1.2.3.", "1.2.3.4 ", " 1.2.3.4", "1.2.3.a", "::1", "::ffff:1.2.3.4", "1.2.3.4%eth0", "", "999.999.999.999",
		"10.0.0.1", "192.168.001.1", "1.0.0.0", "100.100.100.100", "1.2.3.-4", "1.2.3.+4", "0x1.2.3.4", "1.2.3.4:80"} {
		check(s)
	}
	rnd := rand.New(rand.NewPCG(1, 2))
	const alphabet = "0123456789.:a "
	for i := 0; i < 200000; i++ {
		b := make([]byte, 1+rnd.IntN(16))
		for j := range b {
			if rnd.IntN(4) == 0 {
				b[j] = alphabet[rnd.IntN(len(alphabet))]
			} else {
				b[j] = "0123456789."[rnd.IntN(11)]
			}
		}
		check(string(b))
	}
	// Near-valid addresses: four fields of 0-299, some with a leading zero,
	// some with a byte changed.
	for i := 0; i < 200000; i++ {
		var sb strings.Builder
		for f := 0; f < 4; f++ {
			if f > 0 {
				sb.WriteByte('.')
			}
			if rnd.IntN(8) == 0 {
				sb.WriteByte('0')
			}
			sb.WriteString(strconv.Itoa(rnd.IntN(300)))
		}
		b := []byte(sb.String())
		if rnd.IntN(4) == 0 {
			b[rnd.IntN(len(b))] = "0123456789.:a/ "[rnd.IntN(15)]
		}
		check(string(b))
	}
}

// cleanDomainRef is cleanDomain as first written, in the plainest terms:
// the reference the hot-path version must agree with.
func cleanDomainRef(d []byte) []byte {
	d = bytes.TrimSpace(d)
	if len(d) > 0 && d[0] == '[' {
		return nil
	}
	if i := bytes.LastIndexByte(d, ':'); i >= 0 && bytes.IndexByte(d[:i], ':') < 0 {
		d = d[:i]
	}
	d = bytes.TrimSuffix(d, []byte("."))
	if len(d) == 0 || (len(d) == 1 && d[0] == '-') || len(d) > 253 {
		return nil
	}
	if a, err := netip.ParseAddr(string(d)); err == nil && a.Is4() {
		return nil
	}
	return d
}

// cleanDomain agrees with cleanDomainRef on names, ports, IPs, spaces
// (ASCII and Unicode), brackets and random mixes of them.
func TestCleanDomainMatchesReference(t *testing.T) {
	check := func(s string) {
		t.Helper()
		got, want := cleanDomain([]byte(s)), cleanDomainRef([]byte(s))
		if !bytes.Equal(got, want) || (got == nil) != (want == nil) {
			t.Fatalf("cleanDomain(%q) = %q, reference %q", s, got, want)
		}
	}
	for _, s := range []string{"", "-", " - ", "example.com", "Example.COM.", "example.com:8080", "example.com.:443", "a:b:c",
		"[::1]:80", "1.2.3.4", "1.2.3.4:80", " 1.2.3.4 ", "01.2.3.4", "\u00a0example.com\u0085", "\texample.com\n", "x.", ".",
		"1.2.3.4.", strings.Repeat("a", 253), strings.Repeat("a", 254), strings.Repeat("a", 253) + ".", "é.example", "example.é"} {
		check(s)
	}
	rnd := rand.New(rand.NewPCG(3, 4))
	alphabet := []string{"a", "Z", "0", "1", "9", "2", "5", ".", ":", "-", " ", "\t", "[", "]", "\u00a0", "\u0085", "é", "\u2000"}
	for i := 0; i < 100000; i++ {
		var sb strings.Builder
		for j := rnd.IntN(16); j >= 0; j-- {
			sb.WriteString(alphabet[rnd.IntN(len(alphabet))])
		}
		check(sb.String())
	}
}

// SetFloat's shortcut for epoch-second times sets what setFloat sets.
func TestSetFloatTimeShortcut(t *testing.T) {
	for _, v := range []float64{0, 0.7, -0.5, -1, 1419360720.999999, 1e12, 1e12 + 1, -1e12, math.NaN(), math.Inf(1), math.Inf(-1), math.SmallestNonzeroFloat64} {
		var fast, ref Event
		fast.Reset()
		ref.Reset()
		errFast, errRef := fast.SetFloat(Time, v), ref.setFloat(Time, v)
		if (errFast == nil) != (errRef == nil) || !reflect.DeepEqual(fast, ref) {
			t.Fatalf("SetFloat(Time, %v) = %+v, %v; setFloat %+v, %v", v, fast, errFast, ref, errRef)
		}
	}
}
