package rules

import (
	"strings"
	"testing"
	"time"

	"github.com/beacongrid/beacongrid/fields"
)

func TestGoodFile(t *testing.T) {
	s, err := Load("testdata/good.yml")
	if err != nil {
		t.Fatal(err)
	}
	now := time.Date(2026, 11, 25, 0, 0, 0, 0, time.UTC)
	allow := func(src, dst string, want bool) {
		t.Helper()
		if _, ok := s.Allowed(src, dst, now); ok != want {
			t.Fatalf("Allowed(%s, %s) = %v, want %v", src, dst, ok, want)
		}
	}
	allow("10.0.0.1", "windowsupdate.com", true) // "*.x" matches x itself: a stated choice
	allow("10.0.0.1", "dl.delivery.windowsupdate.com", true)
	allow("10.0.0.1", "notwindowsupdate.com", false)
	allow("10.9.3.4", "198.51.100.7:443", true)
	allow("10.8.3.4", "198.51.100.7:443", false)
	allow("10.0.0.1", "old.example", false) // expired
	if th, ok := s.Threshold("10.1.2.3"); !ok || th != 0.8 {
		t.Fatalf("group threshold %v %v", th, ok)
	}
	if th, ok := s.Threshold("10.3.2.3"); !ok || th != 0.95 {
		t.Fatalf("file threshold %v %v", th, ok)
	}
	if s.MinActive("10.2.0.5") != 30 || s.Severity("10.2.0.5", "") != "high" || len(s.Tags("10.1.0.1", "")) != 2 {
		t.Fatal("group settings not applied")
	}
	m := s.Mapping()
	if m[fields.Src][0] != "client_addr" || m[fields.Domain][0] != "sni" || len(m[fields.Src]) < 2 {
		t.Fatalf("mapping %v", m)
	}
}

func TestNilSetIsNoRules(t *testing.T) {
	var s *Set
	if _, ok := s.Allowed("10.0.0.1", "x", time.Now()); ok {
		t.Fatal("nil set allowlisted")
	}
	if _, ok := s.Threshold("10.0.0.1"); ok || s.MinActive("x") != 0 || s.Tags("", "") != nil {
		t.Fatal("nil set has settings")
	}
	if len(s.Mapping()[fields.Src]) == 0 {
		t.Fatal("nil set has no default mapping")
	}
}

func TestBadFiles(t *testing.T) {
	f := func(doc, want string) {
		t.Helper()
		_, err := Parse([]byte(doc))
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Fatalf("Parse(%q): error %v, want it to contain %q", doc, err, want)
		}
	}
	f("thresold: 0.5\n", "line 1: field thresold not found")
	f("threshold: high\n", "cannot unmarshal")
	f("threshold: 1.5\n", "outside 0..1")
	f("version: 2\n", "not supported")
	f("allow:\n  - reason: x\n", "allow[0]: give a source")
	f("allow:\n  - source: 10.0.0.0/33\n", "allow[0].source")
	f("allow:\n  - destination: 'foo.*.com'\n", "wildcard")
	f("groups:\n  - name: g\n    sources: []\n", "sources is empty")
	f("groups:\n  - name: g\n    sources: [x]\n    severity: urgent\n", "severity")
	f("fields:\n  sauce: [a]\n", "unknown slot")
	f("allow: [\n", "yaml")
}
