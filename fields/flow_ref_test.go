package fields

import (
	"bytes"
	"net/netip"
	"strconv"
	"testing"
)

// flowRef is Flow in the plainest terms (netip for every address, a byte
// loop for the lower-casing): the reference the hot-path Flow must agree
// with, byte for byte.
func flowRef(e *Event) (src, dst string, ok bool) {
	for _, s := range SkipServices {
		for _, t := range bytes.Split(e.Service, []byte(",")) {
			if bytes.Equal(bytes.TrimSpace(t), s) {
				return "", "", false
			}
		}
	}
	a, err := netip.ParseAddr(string(e.Src))
	if err != nil {
		return "", "", false
	}
	src = a.WithZone("").String()
	d := cleanDomainRef(e.Domain)
	if len(d) == 0 && len(e.URL) > 0 {
		d = cleanDomainRef(urlHost(e.URL))
	}
	if len(d) > 0 {
		low := []byte(string(d))
		for i, c := range low {
			if 'A' <= c && c <= 'Z' {
				low[i] = c + 'a' - 'A'
			}
		}
		return src, string(low), true
	}
	ipText, port := e.DstIP, e.DstPort
	if string(ipText) == "-" {
		ipText = nil
	}
	if len(e.URL) > 0 && (port == 0 || len(ipText) == 0) {
		h, p := urlAddr(e.URL)
		if port == 0 {
			port = p
		}
		if len(ipText) == 0 {
			ipText = h
		}
	}
	ip, err := netip.ParseAddr(string(ipText))
	if err != nil {
		return "", "", false
	}
	return src, netip.AddrPortFrom(ip.WithZone(""), uint16(port)).String(), true
}

// checkFlow holds Flow, isIPv4 and cleanDomain to their references on one
// record.
func checkFlow(t *testing.T, src, domain, dstIP string, port int, service, url string) {
	t.Helper()
	var e Event
	e.Reset()
	e.Src, e.Domain, e.DstIP, e.DstPort, e.Service, e.URL = []byte(src), []byte(domain), []byte(dstIP), port, []byte(service), []byte(url)
	wantSrc, wantDst, wantOK := flowRef(&e)
	for _, buf := range [][]byte{nil, make([]byte, 3, 300)} { // fresh and reused buffers
		s, d, _, ok := e.Flow(buf)
		if ok != wantOK || ok && (string(s) != wantSrc || string(d) != wantDst) {
			t.Fatalf("Flow(src %q, domain %q, dst %q, port %d, service %q, url %q) = %q, %q, %v; reference %q, %q, %v",
				src, domain, dstIP, port, service, url, s, d, ok, wantSrc, wantDst, wantOK)
		}
	}
	for _, s := range []string{src, domain, dstIP, url} {
		a, err := netip.ParseAddr(s)
		if want := err == nil && a.Is4(); isIPv4([]byte(s)) != want {
			t.Fatalf("isIPv4(%q) = %v, netip says %v", s, !want, want)
		}
		got, want := cleanDomain([]byte(s)), cleanDomainRef([]byte(s))
		if !bytes.Equal(got, want) || (got == nil) != (want == nil) {
			t.Fatalf("cleanDomain(%q) = %q, reference %q", s, got, want)
		}
	}
}

// flowSeeds are records of every shape Flow handles: names, IPs, ports,
// spaces, brackets, services, URLs.
var flowSeeds = []struct {
	src, domain, dstIP string
	port               int
	service, url       string
}{
	{"10.0.0.1", "Example.COM", "1.2.3.4", 80, "", ""},
	{"192.168.1.113", "82.245.149.235", "82.245.149.235", 80, "", ""},
	{"147.32.81.167", "pico.eset.com", "91.228.167.132", 80, "", ""},
	{"147.32.81.167", "-", "91.228.167.132", 8008, "", ""},
	{"10.0.0.1", "example.com:8080", "", 8080, "", ""},
	{"10.0.0.1", " ExAmPlE.CoM. ", "", 0, "", ""},
	{"10.0.0.1", "\u00a0ABCDEFGHIJKLMNOPQRSTUVWXYZ.example\u0085", "", 0, "", ""},
	{"10.0.0.1", "1.2.3.4:8080", "1.2.3.4", 8080, "", ""},
	{"10.0.0.1", "1.2.3.4", "5.6.7.8", 443, "", ""},
	{"10.0.0.1", "01.2.3.4", "5.6.7.8", 443, "", ""},
	{"10.0.0.1", "[2001:db8::1]:443", "2001:db8::1", 443, "", ""},
	{"fe80::1%eth0", "", "::ffff:1.2.3.4", 65535, "", ""},
	{"1.2.3.4 ", "a.example", "", 0, "", ""},
	{"256.1.1.1", "a.example", "", 0, "", ""},
	{"10.0.0.1", "", "1.2.3.4", 443, "ssl", ""},
	{"10.0.0.1", "", "1.2.3.4", 53, " dns , x", ""},
	{"10.0.0.1", "", "-", 0, "", "http://user@Login.Example.com:8443/x"},
	{"10.0.0.1", "1.2.3.4", "1.2.3.4", 80, "", "http://Named.example/x"}, // an IP Host, a URL naming the server
	{"10.0.0.1", "1.2.3.4", "1.2.3.4", 0, "", "http://1.2.3.4:81/x"},
	{"10.0.0.1", "", "", 0, "", "https://203.0.113.7/gate.php"},
	{"10.0.0.1", "", "", 0, "", "[2001:db8::5]:443"},
	{"10.0.0.1", "", "203.0.113.9", 70000, "", "Update.Vendor.example:443"},
	{"10.0.0.1", "é.EXAMPLE", "", -1, "", ""},
	{"10.0.0.1", "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa", "1.1.1.1", 1, "", ""},
}

// Flow agrees with flowRef on the seed records (the fuzz corpus in short).
func TestFlowMatchesReference(t *testing.T) {
	for _, s := range flowSeeds {
		checkFlow(t, s.src, s.domain, s.dstIP, s.port, s.service, s.url)
	}
	// Every port width, and the lower-casing at every length and offset.
	for _, p := range []int{0, 1, 9, 10, 99, 100, 999, 1000, 9999, 10000, 65535, 65536, -1} {
		checkFlow(t, "10.0.0.1", "", "1.2.3.4", p, "", "")
		checkFlow(t, "10.0.0.1", "1.2.3.4", "1.2.3.4", p, "", "")
	}
	const letters = "AbCdEfGhIjKlMnOpQrStUvWxYz@[`{Z.0123456789-_\x80\xff"
	for n := 1; n <= len(letters); n++ {
		for off := 0; off+n <= len(letters); off++ {
			checkFlow(t, "10.0.0."+strconv.Itoa(n), letters[off:off+n], "", 0, "", "")
		}
	}
}

// FuzzFlow holds Flow (and isIPv4 and cleanDomain on every value) to the
// plain reference: go test -run '^$' -fuzz FuzzFlow -fuzztime 2m ./fields
func FuzzFlow(f *testing.F) {
	for _, s := range flowSeeds {
		f.Add(s.src, s.domain, s.dstIP, s.port, s.service, s.url)
	}
	f.Fuzz(func(t *testing.T, src, domain, dstIP string, port int, service, url string) {
		checkFlow(t, src, domain, dstIP, port, service, url)
	})
}

// benchRecords are flow-key inputs in the proportions of the Zeek http
// records of BenchmarkFlushZeekHTTP: mostly a Host header that is the
// server's IPv4 address, else a name, a few with no Host.
var benchRecords = []struct{ src, domain, dstIP string }{
	{"192.168.1.113", "82.245.149.235", "82.245.149.235"},
	{"192.168.1.113", "189.90.217.247", "189.90.217.247"},
	{"147.32.81.167", "pico.eset.com", "91.228.167.132"},
	{"192.168.1.113", "198.36.88.21", "198.36.88.21"},
	{"147.32.81.167", "update.eset.com", "91.228.165.44"},
	{"192.168.1.113", "189.241.104.183", "189.241.104.183"},
	{"147.32.81.167", "i4.c.eset.com", "91.228.165.44"},
	{"192.168.1.113", "-", "23.4.249.223"},
	{"192.168.1.113", "www.Microsoft.com", "23.4.249.223"},
	{"147.32.81.167", "82.245.149.235", "82.245.149.235"},
}

// BenchmarkFlow is the flow key alone on benchRecords:
// go test -run '^$' -bench Flow ./fields
func BenchmarkFlow(b *testing.B) {
	evs := make([]Event, len(benchRecords))
	for i, r := range benchRecords {
		evs[i].Reset()
		evs[i].Src, evs[i].Domain, evs[i].DstIP, evs[i].DstPort = []byte(r.src), []byte(r.domain), []byte(r.dstIP), 80
	}
	buf := make([]byte, 0, 256)
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		for j := range evs {
			_, _, buf, _ = evs[j].Flow(buf)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*len(evs)), "ns/flow")
}

// appendPort writes every port as strconv does, and wraps as uint16.
func TestAppendPort(t *testing.T) {
	for p := -1; p <= 65536; p++ {
		if got, want := string(appendPort([]byte("x:"), p)), "x:"+strconv.Itoa(int(uint16(p))); got != want {
			t.Fatalf("appendPort(%d) = %q, want %q", p, got, want)
		}
	}
}

// BenchmarkIsIPv4 is the IPv4 check alone on the addresses of benchRecords:
// go test -run '^$' -bench IsIPv4 ./fields
func BenchmarkIsIPv4(b *testing.B) {
	var addrs [][]byte
	for _, r := range benchRecords {
		addrs = append(addrs, []byte(r.src), []byte(r.dstIP), []byte(r.domain))
	}
	n := 0
	for i := 0; i < b.N; i++ {
		for _, a := range addrs {
			if isIPv4(a) {
				n++
			}
		}
	}
	if n == 0 {
		b.Fatal("no address")
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*len(addrs)), "ns/check")
}
