package rules

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// badDocs are malformed rules documents, each with text its error must
// contain: the line (and column where one is known), the path and the
// message.
var badDocs = []struct{ doc, want string }{
	{"thresold: 0.5\n", "rules:1: field thresold not found"},
	{"version: 1\nthreshold: high\n", "rules:2: cannot unmarshal !!str `high` into float64"},
	{"version: 1\nthreshold: 1.5\n", "rules:2:12: threshold: 1.5 is outside 0..1"},
	{"version: 1\nwide_share: 1.5\n", "rules:2:13: wide_share: 1.5 is outside 0..1"},
	{"version: 1\nwide_share: -0.1\n", "rules:2:13: wide_share: -0.1 is outside 0..1"},
	{"version: 2\n", "rules:1:10: version: 2 is not supported (hint: use 1)"},
	{"threshold: 0.5\n", "rules:1:1: version is missing"},
	{"", "rules:1: the document is empty"},
	{"# only a comment\n", "rules:1: the document is empty"},
	{"version: 1\n---\nversion: 1\n", "rules:2:1: a second YAML document"},
	{"version: 1\nallow:\n  - reason: x\n", "rules:3:5: allow[0]: give a source, a destination or both"},
	{"version: 1\nallow:\n  - source: 10.0.0.0/33\n", "rules:3:13: allow[0].source: \"10.0.0.0/33\" is not a CIDR"},
	{"version: 1\nallow:\n  - destination: 10.0.0.1\n  - destination: 'foo.*.com'\n", "rules:4:18: allow[1].destination: \"foo.*.com\": a wildcard"},
	{"version: 1\nallow:\n  - destination: '*.'\n", "rules:3:18: allow[0].destination"},
	{"version: 1\nallow:\n  - destination: 'a b'\n", "rules:3:18: allow[0].destination: \"a b\" is not a domain"},
	{"version: 1\nallow:\n  - destination: a.example\n    severity: high\n", "rules:3:5: allow[0]: severity and tags have no effect"},
	{"version: 1\nallow:\n  - source: 10.0.0.1\n    expires: tomorrow\n", "rules:4: expires: \"tomorrow\" is not a time"},
	{"version: 1\ndeny:\n  - source: 10.0.0.x\n", "rules:3:13: deny[0].source"},
	{"version: 1\ndeny:\n  - destination: x.example\n    severity: urgent\n", "rules:4:15: deny[0].severity: \"urgent\" is not a severity"},
	{"version: 1\ngroups:\n  - name: g\n    sources: []\n", "rules:3:5: groups[0]: sources is empty"},
	{"version: 1\ngroups:\n  - name: g\n    sources: [x]\n", "rules:4:15: groups[0].sources[0]"},
	{"version: 1\ngroups:\n  - name: g\n    sources:\n      - 10.0.0.1\n      - nope\n", "rules:6:9: groups[0].sources[1]"},
	{"version: 1\ngroups:\n  - name: g\n    sources: [10.0.0.1]\n    severity: urgent\n", "rules:5:15: groups[0].severity"},
	{"version: 1\ngroups:\n  - name: g\n    sources: [10.0.0.1]\n    threshold: -1\n", "rules:5:16: groups[0].threshold"},
	{"version: 1\ngroups:\n  - name: g\n    sources: [10.0.0.1]\n    min_active_minutes: 2000\n", "rules:5:25: groups[0].min_active_minutes"},
	{"version: 1\ngroups:\n  - name: g\n    sources: [10.0.0.1]\n  - name: g\n    sources: [10.0.0.2]\n", "rules:5:11: groups[1].name: \"g\" is used"},
	{"version: 1\ngroups:\n  - sources: [10.0.0.1]\n", "rules:3:5: groups[0]: name is empty"},
	{"version: 1\nfields:\n  sauce: [a]\n", "rules:3:10: fields.sauce: unknown slot"},
	{"version: 1\nfields:\n  source: ['']\n", "rules:3:12: fields.source[0]"},
	{"version: 1\nfields:\n  source: a\n", "rules:3: cannot unmarshal"},
	{"version: 1\ninputs:\n  - tag: ''\n    fields: {source: [a]}\n", "rules:3:5: inputs[0]: tag is empty"},
	{"version: 1\ninputs:\n  - tag: x\n", "rules:3:5: inputs[0]: neither fields nor preset"},
	{"version: 1\ninputs:\n  - tag: x\n    preset: zeek,nope\n", "rules:4:13: inputs[0].preset: fields: unknown preset \"nope\""},
	{"version: 1\ninputs:\n  - tag: x\n    fields:\n      sauce: [a]\n", "rules:5:14: inputs[0].fields.sauce"},
	{"version: 1\ndetect:\n  - name: d\n    expr: jitter <\n", "rules:4:18: detect[0].expr: unexpected token EOF"},
	{"version: 1\ndetect:\n  - name: d\n    expr: jiter < 0.1\n", "rules:4:11: detect[0].expr: unknown name jiter"},
	{"version: 1\ndetect:\n  - name: d\n    expr: 'prevalence < 2 && jiter < 0.1'\n", "rules:4:30: detect[0].expr: unknown name jiter"},
	{"version: 1\ndetect:\n  - name: d\n    expr: period + 1\n", "rules:4:11: detect[0].expr: expected bool"},
	{"version: 1\ndetect:\n  - name: d\n    expr: |\n      jitter < 0.1 &&\n      prevalence <\n", "rules:6: detect[0].expr: unexpected token EOF"},
	{"version: 1\nsuppress:\n  - name: s\n    expr: ''\n", "rules:3:5: suppress[0]: expr is empty"},
	{"version: 1\nsuppress:\n  - name: s\n    expr: 'true'\n  - name: s\n    expr: 'false'\n", "rules:5:11: suppress[1].name"},
	{"version: 1\nsuppress:\n  - name: s\n    expr: 'true'\n    severity: high\n", "rules:3:5: suppress[0]: severity and tags have no effect"},
	{"version: 1\nallow: [\n", "rules:2: did not find expected node content"},
	{"- a\n- b\n", "rules:1: cannot unmarshal !!seq"},
	{"version: 1\n\tthreshold: 1\n", "rules:2: found a tab character that violates indentation (hint: indent with spaces"},
	{"version: 1\nversion: 1\n", "rules:2: mapping key \"version\" already defined"},
	{"version: 1\nallow:\n  - destination: a.example\n    destination: b.example\n", "rules:4: mapping key \"destination\" already defined"},
	{"version: 1\nallow: {destination: a}\n", "rules:2: cannot unmarshal !!map"},
}

// TestBadFiles: every malformed document is refused with every error
// naming its line, nothing panics.
func TestBadFiles(t *testing.T) {
	for _, c := range badDocs {
		s, err := Parse([]byte(c.doc))
		if err == nil || s != nil {
			t.Errorf("Parse(%q) accepted", c.doc)
			continue
		}
		var el *ErrorList
		if !errors.As(err, &el) || len(el.Errs) == 0 {
			t.Errorf("Parse(%q): %T %v is not an ErrorList", c.doc, err, err)
			continue
		}
		for _, e := range el.Errs {
			if e.Line <= 0 || e.Line > strings.Count(c.doc, "\n")+1 {
				t.Errorf("Parse(%q): error %q names no line of the document", c.doc, e.Error())
			}
		}
		if !strings.Contains(err.Error(), c.want) {
			t.Errorf("Parse(%q):\n%v\nwant it to contain %q", c.doc, err, c.want)
		}
	}
	// A type error does not hide the problems after it.
	_, err := Parse([]byte("version: 1\nallow:\n  - destination: a.example\n    expires: next week\ngroups:\n  - name: g\n    sources: [10.300.0.0/16]\n"))
	if err == nil || !strings.Contains(err.Error(), "rules:4: expires: \"next week\" is not a time") || !strings.Contains(err.Error(), "\nrules:7:15: groups[0].sources[0]") {
		t.Fatalf("want both errors, in line order: %v", err)
	}
	// Several errors are all reported, each on its own line.
	_, err = Parse([]byte("version: 3\nthreshold: 2\ngroups:\n  - name: g\n    sources: [nope]\n"))
	if err == nil || strings.Count(err.Error(), "\n") != 2 {
		t.Fatalf("want 3 errors, got %v", err)
	}
}

// TestBadFilesKeepPreviousRules: a watcher handed each malformed file in
// turn refuses it, counts it, and keeps the last good rules in force.
func TestBadFilesKeepPreviousRules(t *testing.T) {
	path := filepath.Join(t.TempDir(), "rules.yml")
	good := "version: 1\nallow:\n  - destination: a.example\n"
	writeFile(t, path, good)
	var cur atomic.Pointer[Set]
	var results []Result
	w, err := NewWatcher(path, &cur, WatchOptions{Poll: -1, NoNotify: true, OnResult: func(r Result) { results = append(results, r) }})
	if err != nil {
		t.Fatal(err)
	}
	want := cur.Load()
	for i, c := range badDocs {
		writeFile(t, path, c.doc)
		r := w.Reload()
		if r.Err == nil || r.Changed || cur.Load() != want {
			t.Fatalf("%q: result %+v; the good rules must stay", c.doc, r)
		}
		if !strings.HasPrefix(r.Err.Error(), path+":") {
			t.Fatalf("%q: error %q does not name the file and line", c.doc, r.Err)
		}
		if st := w.Stats(); st.Failures != int64(i+1) || st.LastOK || st.Version != want.Version() {
			t.Fatalf("stats %+v after %d bad files", st, i+1)
		}
	}
	if len(results) != len(badDocs) {
		t.Fatalf("%d results reported, want %d", len(results), len(badDocs))
	}
	if _, ok := cur.Load().Allowed("10.0.0.1", "a.example", time.Now()); !ok {
		t.Fatal("the good rules are not in force")
	}
}

func TestLoadNamesFile(t *testing.T) {
	_, err := Load("testdata/bad.yml")
	if err == nil || !strings.HasPrefix(err.Error(), "testdata/bad.yml:4:13: allow[1].source:") {
		t.Fatalf("error %v does not start with file:line:column", err)
	}
	if _, err := Load("testdata/missing.yml"); err == nil || !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("missing file: %v", err)
	}
}

// FuzzParse: no document panics the loader, and a refused one names a line.
//
//	go test -run '^$' -fuzz FuzzParse -fuzztime 60s ./rules
func FuzzParse(f *testing.F) {
	for _, s := range []string{
		"version: 1\nthreshold: 0.9\n",
		"version: 1\nallow:\n  - destination: '*.x.com'\n    expires: 2030-01-01T00:00:00Z\n",
		"version: 1\ndeny:\n  - source: 10.0.0.0/8\n    destination: 1.2.3.4\n",
		"version: 1\ngroups:\n  - name: g\n    sources: [10.0.0.0/8]\n    severity: high\n",
		"version: 1\ndetect:\n  - name: d\n    expr: jitter < 0.1 && prevalence <= 2\n",
		"version: 1\nsuppress:\n  - name: s\n    expr: destination endsWith '.corp'\n",
		"version: 1\ninputs:\n  - tag: proxy.*\n    fields:\n      source: [c]\n",
		"version: 1\nfields:\n  source: [a]\n",
	} {
		f.Add([]byte(s))
	}
	for _, c := range badDocs {
		f.Add([]byte(c.doc))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		s, err := Parse(b)
		if err != nil {
			var el *ErrorList
			if s != nil || !errors.As(err, &el) || len(el.Errs) == 0 {
				t.Fatalf("bad refusal: %v", err)
			}
			for _, e := range el.Errs {
				if e.Line <= 0 {
					t.Fatalf("error without a line: %v", e)
				}
			}
			return
		}
		fl := Flow{Source: "10.1.2.3", Destination: "a.x.com", Score: 0.99, ActiveMinutes: 100}
		s.Eval(&fl, 0.5, 10, time.Now())
		s.MappingFor("proxy.a")
	})
}

func writeFile(t testing.TB, path, s string) {
	t.Helper()
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, []byte(s), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, path); err != nil {
		t.Fatal(err)
	}
}
