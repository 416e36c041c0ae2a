package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func runRulesCheck(t *testing.T, doc string) (string, error) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "rules.yml")
	if err := os.WriteFile(path, []byte(doc), 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := newRulesCmd()
	var out bytes.Buffer
	cmd.SetOut(&out)
	cmd.SetErr(&out)
	cmd.SetArgs([]string{"check", path})
	err := cmd.Execute()
	return strings.ReplaceAll(out.String(), path, "FILE"), err
}

func TestRulesCheck(t *testing.T) {
	out, err := runRulesCheck(t, "version: 1\nallow:\n  - destination: '*.example.com'\n    reason: vendor\n")
	if err != nil || !strings.Contains(out, "FILE: ok, version ") || !strings.Contains(out, "1 allow") {
		t.Fatalf("good file: %v\n%s", err, out)
	}
	out, err = runRulesCheck(t, "version: 1\ngroups:\n  - name: g\n    sources: [10.0.0.0/8, 10.0.0.300]\n    severity: urgent\ndetect:\n  - name: d\n    expr: jitter < 0.1 && prevalance <= 2\n")
	if err == nil || !strings.Contains(err.Error(), "3 error(s)") {
		t.Fatalf("bad file accepted: %v\n%s", err, out)
	}
	want := []string{
		"FILE:4:27: groups[0].sources[1]: \"10.0.0.300\" is not an IP address or CIDR\n" +
			"     4 |     sources: [10.0.0.0/8, 10.0.0.300]\n" +
			"       |                           ^\n" +
			"       hint: an IP or CIDR such as 10.1.0.0/16\n",
		"FILE:5:15: groups[0].severity: \"urgent\" is not a severity\n",
		"FILE:8:27: detect[0].expr: unknown name prevalance",
	}
	for _, w := range want {
		if !strings.Contains(out, w) {
			t.Errorf("output lacks %q:\n%s", w, out)
		}
	}
	// Errors come in file order.
	if strings.Index(out, "FILE:4:") > strings.Index(out, "FILE:8:") {
		t.Errorf("errors not in line order:\n%s", out)
	}
	out, err = runRulesCheck(t, "version: 1\nallow:\n  - destination: old.example\n    expires: 2020-01-01\n")
	if err != nil || !strings.Contains(out, "FILE: warning: 4:14: allow[0].expires: already expired") {
		t.Fatalf("expired entry: %v\n%s", err, out)
	}
	cmd := newRulesCmd()
	cmd.SetOut(&bytes.Buffer{})
	cmd.SetErr(&bytes.Buffer{})
	cmd.SetArgs([]string{"check", filepath.Join(t.TempDir(), "missing.yml")})
	if err := cmd.Execute(); err == nil {
		t.Fatal("a missing file passed the check")
	}
}
