package rules

import (
	"os"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/beacongrid/beacongrid/fields"
)

var day = time.Date(2026, 11, 25, 0, 0, 0, 0, time.UTC)

func mustParse(t testing.TB, doc string) *Set {
	t.Helper()
	s, err := Parse([]byte(doc))
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestGoodFile(t *testing.T) {
	s, err := Load("testdata/good.yml")
	if err != nil {
		t.Fatal(err)
	}
	allow := func(src, dst string, want bool) {
		t.Helper()
		if _, ok := s.Allowed(src, dst, day); ok != want {
			t.Fatalf("Allowed(%s, %s) = %v, want %v", src, dst, ok, want)
		}
	}
	allow("10.0.0.1", "windowsupdate.com", true) // "*.x" matches x itself: a stated choice
	allow("10.0.0.1", "dl.delivery.windowsupdate.com", true)
	allow("10.0.0.1", "notwindowsupdate.com", false)
	allow("10.9.3.4", "198.51.100.7:443", true)
	allow("10.8.3.4", "198.51.100.7:443", false)
	allow("10.9.3.4", "198.51.100.7.example", false)
	allow("10.0.0.1", "old.example", false) // expired
	if why, ok := s.Denied("10.3.0.1", "a.b.evil.example", day); !ok || !strings.Contains(why, "4711") {
		t.Fatalf("deny: %q %v", why, ok)
	}
	if th, ok := s.Threshold("10.1.2.3"); !ok || th != 0.8 {
		t.Fatalf("group threshold %v %v", th, ok)
	}
	if th, ok := s.Threshold("10.3.2.3"); !ok || th != 0.95 {
		t.Fatalf("file threshold %v %v", th, ok)
	}
	if s.MinActive("10.2.0.5", 10) != 30 || s.MinActive("10.3.0.5", 10) != 10 || s.Severity("10.2.0.5") != "high" || len(s.Tags("10.1.0.1")) != 2 {
		t.Fatal("group settings not applied")
	}
	m := s.Mapping()
	if m[fields.Src][0] != "client_addr" || m[fields.Domain][0] != "sni" || len(m[fields.Src]) < 2 {
		t.Fatalf("mapping %v", m)
	}
	p := s.MappingFor("proxy.squid")
	if p[fields.Src][0] != "c_ip" || p[fields.Src][1] != "client_addr" || p[fields.Domain][0] != "cs_host" {
		t.Fatalf("input mapping %v", p)
	}
	if z := s.MappingFor("zeek.http"); z[fields.Src][0] != "client_addr" {
		t.Fatalf("unmatched tag gets %v", z)
	}
	// Extend builds on the plugin's presets; an input's own preset replaces them.
	base := fields.Zeek()
	if e := s.Extend(base, "zeek.http"); e[fields.Src][0] != "client_addr" || e[fields.Src][1] != "id.orig_h" || len(e[fields.Src]) != 2 {
		t.Fatalf("Extend(zeek) = %v", e[fields.Src])
	}
	ps := mustParse(t, "version: 1\ninputs:\n  - tag: fw.*\n    preset: ecs\n")
	if e := ps.Extend(base, "fw.pfsense"); e[fields.Src][0] != "source.ip" || slices.Contains(e[fields.Src], "id.orig_h") {
		t.Fatalf("input preset: %v", e[fields.Src])
	}
	if e := ps.Extend(base, "zeek.conn"); e[fields.Src][0] != "id.orig_h" {
		t.Fatalf("other tag: %v", e[fields.Src])
	}
	if len(s.Warnings()) != 1 || s.Warnings()[0].Line != 11 {
		t.Fatalf("warnings %v, want the expired entry on line 11", s.Warnings())
	}
	if s.Version() != VersionOf(s.Source()) || len(s.Version()) != 16 {
		t.Fatalf("version %q", s.Version())
	}
}

func TestNilSetIsNoRules(t *testing.T) {
	var s *Set
	if _, ok := s.Allowed("10.0.0.1", "x", time.Now()); ok {
		t.Fatal("nil set allowlisted")
	}
	if _, ok := s.Denied("10.0.0.1", "x", time.Now()); ok {
		t.Fatal("nil set denied")
	}
	if _, ok := s.Threshold("10.0.0.1"); ok || s.MinActive("x", 7) != 7 || s.Tags("") != nil {
		t.Fatal("nil set has settings")
	}
	if len(s.Mapping()[fields.Src]) == 0 || len(s.MappingFor("any")[fields.Src]) == 0 {
		t.Fatal("nil set has no default mapping")
	}
	f := Flow{Score: 0.9, ActiveMinutes: 20}
	if v := s.Eval(&f, 0.8, 10, day); !v.Alert || v.Suppressed || v.Rule != RuleModel || f.Threshold != 0.8 {
		t.Fatalf("nil set verdict %+v", v)
	}
	if v := s.Eval(&Flow{Score: 0.9, ActiveMinutes: 5}, 0.8, 10, day); v.Alert {
		t.Fatal("nil set alerts below min active")
	}
}

func TestEval(t *testing.T) {
	s, err := Load("testdata/good.yml")
	if err != nil {
		t.Fatal(err)
	}
	type want struct {
		alert, suppressed bool
		rule, by, sev     string
		tags              int
	}
	f := func(fl Flow, w want) {
		t.Helper()
		v := s.Eval(&fl, 0.9, 10, day)
		got := want{v.Alert, v.Suppressed, v.Rule, v.SuppressedBy, v.Severity, len(v.Tags)}
		if got != w {
			t.Fatalf("Eval(%+v) = %+v, want %+v", fl, got, w)
		}
	}
	beacon := Flow{Source: "10.3.0.1", Destination: "c2.example", Score: 0.97, ActiveMinutes: 100, Jitter: 0.3, Prevalence: 1, PeriodS: 60}
	// The file threshold (0.95) replaces the model's 0.9.
	f(beacon, want{alert: true, rule: RuleModel})
	low := beacon
	low.Score = 0.93
	f(low, want{rule: RuleModel})
	// Servers: threshold 0.8, min 30 active minutes, severity high, 2 tags.
	srv := low
	srv.Source = "10.1.4.4"
	f(srv, want{alert: true, rule: RuleModel, sev: "high", tags: 2})
	srv.ActiveMinutes = 20
	f(srv, want{rule: RuleModel, sev: "high", tags: 2})
	// A group's min_active_minutes can also be lower than the detector's.
	g := mustParse(t, "version: 1\ngroups:\n  - name: watch\n    sources: [10.7.0.0/16]\n    min_active_minutes: 3\n")
	if v := g.Eval(&Flow{Source: "10.7.0.1", Score: 0.99, ActiveMinutes: 4}, 0.9, 10, day); !v.Alert || v.Group != "watch" {
		t.Fatalf("group min 3: %+v", v)
	}
	// The detect expression raises what the model did not, with its tags after the group's.
	rare := low
	rare.Jitter, rare.PeriodS = 0.01, 300
	f(rare, want{alert: true, rule: "tight-rare-beacon", sev: "medium", tags: 1})
	rare.Source = "10.1.0.9"
	rare.Score = 0.5
	f(rare, want{alert: true, rule: "tight-rare-beacon", sev: "medium", tags: 3})
	// Allow and suppress silence; deny wins over both and over the score.
	upd := beacon
	upd.Destination = "x.windowsupdate.com"
	f(upd, want{alert: true, suppressed: true, rule: RuleModel, by: RuleAllow})
	mon := srv
	mon.ActiveMinutes, mon.Destination = 100, "nagios.corp.example"
	f(mon, want{alert: true, suppressed: true, rule: RuleModel, by: "corp-monitoring", sev: "high", tags: 2})
	evil := Flow{Source: "10.3.0.1", Destination: "cdn.evil.example", Score: 0.01, ActiveMinutes: 1}
	f(evil, want{alert: true, rule: RuleDeny, sev: "critical", tags: 1})
	// Eval fills the group and the threshold for the expressions.
	fl := srv
	s.Eval(&fl, 0.9, 10, day)
	if fl.Group != "servers" || fl.Threshold != 0.8 {
		t.Fatalf("flow after Eval %+v", fl)
	}
}

func TestExpiryIsCheckedAtEvalTime(t *testing.T) {
	s := mustParse(t, "version: 1\nallow:\n  - destination: a.example\n    expires: 2026-11-25T12:00:00Z\n")
	fl := Flow{Source: "10.0.0.1", Destination: "a.example", Score: 1, ActiveMinutes: 100}
	if v := s.Eval(&fl, 0.9, 10, day.Add(11*time.Hour)); !v.Suppressed {
		t.Fatal("entry not in force before it expires")
	}
	if v := s.Eval(&fl, 0.9, 10, day.Add(13*time.Hour)); v.Suppressed {
		t.Fatal("entry in force after it expired")
	}
}

func TestExpressionRuntimeErrorIsFalseAndCounted(t *testing.T) {
	// int() of a name that is not a number compiles but fails at run time.
	s := mustParse(t, "version: 1\ndetect:\n  - name: d\n    expr: int(destination) > 0\n")
	v := s.Eval(&Flow{Destination: "c2.example", ActiveMinutes: 20}, 0.9, 10, day)
	if v.Alert || s.EvalErrors() != 1 {
		t.Fatalf("verdict %+v, %d eval errors; want no alert and 1 error", v, s.EvalErrors())
	}
}

func TestMatchTag(t *testing.T) {
	f := func(p, tag string, want bool) {
		t.Helper()
		if MatchTag(p, tag) != want {
			t.Fatalf("MatchTag(%q, %q) != %v", p, tag, want)
		}
	}
	f("*", "anything", true)
	f("proxy.*", "proxy.squid", true)
	f("proxy.*", "proxy.", true)
	f("proxy.*", "zeek.http", false)
	f("*.http", "zeek.http", true)
	f("a*b*c", "axxbyyc", true)
	f("a*b*c", "axxbyy", false)
	f("zeek.http", "zeek.http", true)
	f("zeek.http", "zeek.https", false)
}

// BenchmarkEval measures what the rules add to one scored flow that does
// not alert (the common case: every rule that could raise it is tried) and
// one that does (allow and suppress rules are tried too). "heavy" is a file
// of 40 allow, 10 deny, 8 groups, 3 detect and 3 suppress rules; "typical"
// is testdata/good.yml (3 allow, 1 deny, 1 group, 1 detect, 1 suppress).
//
//	go test -run '^$' -bench Eval -benchmem ./rules
func BenchmarkEval(b *testing.B) {
	good, err := os.ReadFile("testdata/good.yml")
	if err != nil {
		b.Fatal(err)
	}
	for _, f := range []struct{ name, doc string }{{"heavy", heavyRules()}, {"typical", string(good)}} {
		b.Run(f.name, func(b *testing.B) { benchEval(b, mustParse(b, f.doc)) })
	}
}

func heavyRules() string {
	var doc strings.Builder
	doc.WriteString("version: 1\nallow:\n")
	for i := range 40 {
		doc.WriteString("  - destination: \"*.vendor" + strconv.Itoa(i) + ".example\"\n    reason: vendor\n")
	}
	doc.WriteString("deny:\n")
	for i := range 10 {
		doc.WriteString("  - destination: bad" + strconv.Itoa(i) + ".example\n")
	}
	doc.WriteString("groups:\n")
	for i := range 8 {
		doc.WriteString("  - name: g" + strconv.Itoa(i) + "\n    sources: [10." + strconv.Itoa(i+1) + ".0.0/16]\n    threshold: 0.8\n    tags: [t]\n")
	}
	doc.WriteString(`detect:
  - name: d1
    expr: jitter < 0.02 && prevalence <= 2 && active_minutes >= 60
  - name: d2
    expr: group == "g3" && score > 0.5 && period >= 60
  - name: d3
    expr: destination_is_ip && requests > 1000 && online_minutes > 0 && active_minutes * 10 > online_minutes * 9
suppress:
  - name: s1
    expr: destination endsWith ".corp.example"
  - name: s2
    expr: group == "g7" && period < 30
  - name: s3
    expr: prevalence > sources / 2
`)
	return doc.String()
}

func benchEval(b *testing.B, s *Set) {
	for _, c := range []struct {
		name string
		fl   Flow
	}{
		{"no-alert", Flow{Source: "10.9.3.4", Destination: "cdn.other.example", Score: 0.2, ActiveMinutes: 120, Requests: 300, Jitter: 0.4, PeriodS: 120, Prevalence: 5, Sources: 100, OnlineMinutes: 600}},
		{"alert", Flow{Source: "10.5.3.4", Destination: "c2.other.example", Score: 0.99, ActiveMinutes: 120, Requests: 300, Jitter: 0.1, PeriodS: 60, Prevalence: 1, Sources: 100, OnlineMinutes: 600}},
	} {
		b.Run(c.name, func(b *testing.B) {
			var sink bool
			b.ReportAllocs()
			var fl Flow // kept across calls, as the detector keeps it
			for b.Loop() {
				fl.Source, fl.Destination, fl.Score, fl.ActiveMinutes = c.fl.Source, c.fl.Destination, c.fl.Score, c.fl.ActiveMinutes
				fl.Requests, fl.Jitter, fl.PeriodS, fl.Prevalence = c.fl.Requests, c.fl.Jitter, c.fl.PeriodS, c.fl.Prevalence
				fl.Sources, fl.OnlineMinutes = c.fl.Sources, c.fl.OnlineMinutes
				v := s.Eval(&fl, 0.9, 10, day)
				sink = sink != v.Alert
			}
			_ = sink
		})
	}
}

// TestListFirstMatch: the first entry in file order that is in force and
// covers the flow decides, whether it is found by name or by scan.
func TestListFirstMatch(t *testing.T) {
	s := mustParse(t, `version: 1
allow:
  - destination: "*.example.com"
    source: 10.1.0.0/16
    reason: one
  - destination: a.b.example.com
    reason: two
  - destination: "*.b.example.com"
    reason: three
    expires: 2020-01-01
  - source: 10.2.0.0/16
    reason: four
  - destination: 203.0.113.0/24
    reason: five
  - destination: "*.b.example.com"
    reason: six
`)
	f := func(src, dst, want string) {
		t.Helper()
		why, ok := s.Allowed(src, dst, day)
		if want == "" && ok || want != "" && why != want {
			t.Fatalf("Allowed(%s, %s) = %q %v, want %q", src, dst, why, ok, want)
		}
	}
	f("10.1.0.1", "a.b.example.com", "one")
	f("10.3.0.1", "a.b.example.com", "two")
	f("10.3.0.1", "x.b.example.com", "six") // three has expired
	f("10.2.0.1", "x.b.example.com", "four")
	f("10.1.0.1", "example.com", "one")
	f("10.3.0.1", "example.com", "")
	f("10.3.0.1", "b.example.com", "six")
	f("10.3.0.1", "203.0.113.9:443", "five")
	f("10.3.0.1", "a.b.example.com.evil", "")
	f("10.3.0.1", "xa.b.example.com", "six")
}

// The example in docs/rules.md is a valid file and says what the tests of
// testdata/good.yml check.
func TestDocExampleParses(t *testing.T) {
	b, err := os.ReadFile("../docs/rules.md")
	if err != nil {
		t.Fatal(err)
	}
	_, rest, ok := strings.Cut(string(b), "```yaml\n")
	doc, _, ok2 := strings.Cut(rest, "```")
	if !ok || !ok2 {
		t.Fatal("docs/rules.md has no yaml example")
	}
	s, err := Parse([]byte(doc))
	if err != nil {
		t.Fatalf("the documented example is refused:\n%v", err)
	}
	if s.Counts() != "2 allow, 1 deny, 1 groups, 1 inputs, 1 detect, 1 suppress" {
		t.Fatalf("example holds %s", s.Counts())
	}
	if _, ok := s.Allowed("10.0.0.1", "windowsupdate.com", day); !ok {
		t.Fatal("the documented choice: *.windowsupdate.com matches windowsupdate.com")
	}
}

// A model alert on a destination whose prevalence_share is above the wide
// share (0.5, or the file's wide_share) is silenced as RuleWide; a deny
// entry on it still alerts, and an allow entry keeps its own name.
func TestEvalWideShare(t *testing.T) {
	parse := func(src string) *Set {
		t.Helper()
		s, err := Parse([]byte(src))
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	now := time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)
	flow := func(share float64) *Flow {
		return &Flow{Source: "10.0.0.1", Destination: "update.example.com", Score: 0.99, ActiveMinutes: 100, PrevalenceShare: share}
	}
	for _, c := range []struct {
		name, rules string
		share       float64
		suppressed  bool
		by, rule    string
	}{
		{"no rules, niche", "", 0.1, false, "", RuleModel},
		{"no rules, wide", "", 0.6, true, RuleWide, RuleModel},
		{"no rules, at the share", "", 0.5, false, "", RuleModel},
		{"default share", "version: 1\n", 0.6, true, RuleWide, RuleModel},
		{"wide_share 0.8, below", "version: 1\nwide_share: 0.8\n", 0.6, false, "", RuleModel},
		{"wide_share 0.8, above", "version: 1\nwide_share: 0.8\n", 0.9, true, RuleWide, RuleModel},
		{"wide_share 1 turns it off", "version: 1\nwide_share: 1\n", 1, false, "", RuleModel},
		{"deny still alerts", "version: 1\ndeny:\n  - destination: update.example.com\n", 0.9, false, "", RuleDeny},
		{"allow keeps its name", "version: 1\nallow:\n  - destination: update.example.com\n", 0.9, true, RuleAllow, RuleModel},
	} {
		var s *Set
		if c.rules != "" {
			s = parse(c.rules)
		}
		v := s.Eval(flow(c.share), 0.95, 10, now)
		if !v.Alert || v.Suppressed != c.suppressed || v.SuppressedBy != c.by || v.Rule != c.rule {
			t.Errorf("%s: got alert %v suppressed %v by %q rule %q, want suppressed %v by %q rule %q",
				c.name, v.Alert, v.Suppressed, v.SuppressedBy, v.Rule, c.suppressed, c.by, c.rule)
		}
	}
}
