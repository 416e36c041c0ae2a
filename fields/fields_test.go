package fields

import "testing"

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
