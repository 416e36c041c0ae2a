package sidecar

import (
	"bufio"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/beacongrid/beacongrid/rules"
)

const (
	adminTok = "s3cret-token-for-alice"
	bareTok  = "another-token-without-a-name"
	rulesOld = "version: 1\nallow:\n  - destination: a.example\n    reason: vendor\n"
	rulesNew = "version: 1\nallow:\n  - destination: a.example\n    reason: vendor\n  - destination: '*.b.example'\n    reason: lab\n"
	rulesBad = "version: 1\nallow:\n  - destination: a.example\n  - source: 10.0.0.0/33\n"
)

func testLogger() *slog.Logger {
	return slog.New(slog.NewTextHandler(io.Discard, nil))
}

func startTestRules(t *testing.T, file string, listen string) (*Rules, *prometheus.Registry) {
	t.Helper()
	reg := prometheus.NewRegistry()
	r, err := StartRules(RulesConfig{File: file, AdminListen: listen, Poll: 50 * time.Millisecond,
		Tokens: []AdminToken{{Name: "alice", Token: adminTok}, {Token: bareTok}}}, reg, testLogger())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Stop() })
	return r, reg
}

func writeRules(t *testing.T, dir, doc string) string {
	t.Helper()
	path := filepath.Join(dir, "rules.yml")
	if err := os.WriteFile(path, []byte(doc), 0o640); err != nil {
		t.Fatal(err)
	}
	return path
}

func do(t *testing.T, h http.Handler, method, path, token, body string, hdr ...string) (*httptest.ResponseRecorder, map[string]any) {
	t.Helper()
	req := httptest.NewRequest(method, path, strings.NewReader(body))
	req.RemoteAddr = "192.0.2.10:5555"
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	var m map[string]any
	if strings.HasPrefix(rec.Header().Get("Content-Type"), "application/json") {
		if err := json.Unmarshal(rec.Body.Bytes(), &m); err != nil {
			t.Fatalf("%s %s: bad JSON %q", method, path, rec.Body.String())
		}
	}
	return rec, m
}

func readAudit(t *testing.T, path string) []AuditEntry {
	t.Helper()
	f, err := os.Open(path)
	if os.IsNotExist(err) {
		return nil
	}
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var out []AuditEntry
	sc := bufio.NewScanner(f)
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		var e AuditEntry
		if err := json.Unmarshal(sc.Bytes(), &e); err != nil {
			t.Fatal(err)
		}
		out = append(out, e)
	}
	return out
}

func TestAdminRequiresToken(t *testing.T) {
	r, reg := startTestRules(t, writeRules(t, t.TempDir(), rulesOld), "")
	h := r.Handler()
	for _, tok := range []string{"", "wrong-token-wrong-token", adminTok + "x", adminTok[:len(adminTok)-1]} {
		for _, m := range []string{"GET", "PUT"} {
			if rec, _ := do(t, h, m, "/admin/rules", tok, rulesNew); rec.Code != http.StatusUnauthorized || rec.Header().Get("WWW-Authenticate") == "" {
				t.Fatalf("%s with token %q: %d", m, tok, rec.Code)
			}
		}
	}
	req := httptest.NewRequest("GET", "/admin/rules", nil)
	req.Header.Set("Authorization", "Basic "+adminTok)
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	if rec.Code != http.StatusUnauthorized {
		t.Fatalf("Basic scheme accepted: %d", rec.Code)
	}
	if v := gather(t, reg, "beacongrid_sidecar_rules_admin_denied_total"); v != 9 {
		t.Fatalf("denied counter %v, want 9", v)
	}
	if r.Current().Version() != rules.VersionOf([]byte(rulesOld)) {
		t.Fatal("an unauthenticated PUT changed the rules")
	}
}

func TestAdminGet(t *testing.T) {
	r, _ := startTestRules(t, writeRules(t, t.TempDir(), rulesOld), "")
	rec, m := do(t, r.Handler(), "GET", "/admin/rules", adminTok, "")
	v := rules.VersionOf([]byte(rulesOld))
	if rec.Code != 200 || m["version"] != v || m["rules"] != rulesOld || m["last_reload_ok"] != true || rec.Header().Get("ETag") != `"`+v+`"` {
		t.Fatalf("GET: %d %v", rec.Code, m)
	}
	rec, _ = do(t, r.Handler(), "GET", "/admin/rules?format=yaml", bareTok, "")
	if rec.Code != 200 || rec.Body.String() != rulesOld {
		t.Fatalf("GET yaml: %d %q", rec.Code, rec.Body.String())
	}
}

func TestAdminInstall(t *testing.T) {
	dir := t.TempDir()
	file := writeRules(t, dir, rulesOld)
	r, reg := startTestRules(t, file, "")
	h := r.Handler()
	oldV, newV := rules.VersionOf([]byte(rulesOld)), rules.VersionOf([]byte(rulesNew))

	// An invalid version is refused with its lines; nothing is written or recorded.
	rec, m := do(t, h, "PUT", "/admin/rules", adminTok, rulesBad)
	errs, _ := m["errors"].([]any)
	if rec.Code != http.StatusBadRequest || len(errs) != 1 || errs[0].(map[string]any)["line"].(float64) != 4 ||
		!strings.Contains(m["error"].(string), "rules.yml:4:13: allow[1].source") {
		t.Fatalf("bad PUT: %d %v", rec.Code, m)
	}
	if b, _ := os.ReadFile(file); string(b) != rulesOld || r.Current().Version() != oldV || readAudit(t, file+".audit.jsonl") != nil {
		t.Fatal("a refused version changed the file, the rules or the audit log")
	}
	// A stale If-Match is refused.
	if rec, _ := do(t, h, "PUT", "/admin/rules", adminTok, rulesNew, "If-Match", `"0000000000000000"`); rec.Code != http.StatusPreconditionFailed {
		t.Fatalf("stale If-Match: %d", rec.Code)
	}
	// A valid version is written, in force at once, and recorded.
	before, _ := os.Stat(file)
	rec, m = do(t, h, "PUT", "/admin/rules", adminTok, rulesNew, "If-Match", `"`+oldV+`"`)
	if rec.Code != 200 || m["version"] != newV || m["previous"] != oldV || m["changed"] != true {
		t.Fatalf("PUT: %d %v", rec.Code, m)
	}
	if _, ok := r.Current().Allowed("10.0.0.1", "x.b.example", time.Now()); !ok || r.Current().Version() != newV {
		t.Fatal("the installed version is not in force")
	}
	after, _ := os.Stat(file)
	if b, _ := os.ReadFile(file); string(b) != rulesNew || os.SameFile(before, after) || after.Mode().Perm() != 0o640 {
		t.Fatalf("file %q mode %v: want the new text written by rename, mode kept", b, after.Mode())
	}
	if left, _ := filepath.Glob(filepath.Join(dir, ".rules-*")); len(left) != 0 {
		t.Fatalf("temporary files left: %v", left)
	}
	// The same text again is no change and no record.
	if rec, m := do(t, h, "POST", "/admin/rules", bareTok, rulesNew); rec.Code != 200 || m["changed"] != false {
		t.Fatalf("same PUT: %d %v", rec.Code, m)
	}
	// Back to the old text, by a bare token: recorded under the client's address.
	if rec, _ := do(t, h, "POST", "/admin/rules", bareTok, rulesOld); rec.Code != 200 {
		t.Fatalf("POST: %d", rec.Code)
	}
	audit := readAudit(t, file+".audit.jsonl")
	if len(audit) != 2 {
		t.Fatalf("%d audit entries, want 2: %+v", len(audit), audit)
	}
	a := audit[0]
	if a.Who != "alice" || a.Remote != "192.0.2.10:5555" || a.OldVersion != oldV || a.NewVersion != newV || time.Since(a.Time) > time.Minute ||
		!strings.Contains(a.Diff, "--- a/rules.yml\n+++ b/rules.yml\n") || !strings.Contains(a.Diff, "\n+  - destination: '*.b.example'\n") {
		t.Fatalf("audit entry %+v", a)
	}
	if audit[1].Who != "192.0.2.10:5555" || !strings.Contains(audit[1].Diff, "\n-    reason: lab\n") {
		t.Fatalf("second audit entry %+v", audit[1])
	}
	rec, _ = do(t, h, "GET", "/admin/rules/audit", adminTok, "")
	if rec.Code != 200 || strings.Count(rec.Body.String(), "\n") != 2 {
		t.Fatalf("GET audit: %d %q", rec.Code, rec.Body.String())
	}
	if gather(t, reg, "beacongrid_sidecar_rules_admin_changes_total") != 2 || gather(t, reg, "beacongrid_sidecar_rules_reloads_total") != 2 {
		t.Fatal("change metrics")
	}
}

// TestAdminInstallKeepsSymlinks: with a ConfigMap-like layout (the file a
// symlink), the target is replaced and the symlink stays.
func TestAdminInstallKeepsSymlinks(t *testing.T) {
	dir := t.TempDir()
	data := filepath.Join(dir, "..data")
	os.Mkdir(data, 0o755)
	writeRules(t, data, rulesOld)
	link := filepath.Join(dir, "rules.yml")
	if err := os.Symlink("..data/rules.yml", link); err != nil {
		t.Fatal(err)
	}
	r, _ := startTestRules(t, link, "")
	if rec, _ := do(t, r.Handler(), "PUT", "/admin/rules", adminTok, rulesNew); rec.Code != 200 {
		t.Fatalf("PUT: %d", rec.Code)
	}
	if fi, err := os.Lstat(link); err != nil || fi.Mode()&os.ModeSymlink == 0 {
		t.Fatal("the symlink was replaced")
	}
	if b, _ := os.ReadFile(filepath.Join(data, "rules.yml")); string(b) != rulesNew {
		t.Fatal("the target was not updated")
	}
}

// TestSidecarRulesHotReload: the sidecar's watcher follows a file changed
// by other means, keeps the last good rules on a bad one and says so in
// its metrics; the endpoint listens on loopback over real TCP.
func TestSidecarRulesHotReload(t *testing.T) {
	dir := t.TempDir()
	file := writeRules(t, dir, rulesOld)
	r, reg := startTestRules(t, file, "127.0.0.1:0")
	if !strings.HasPrefix(r.Addr(), "127.0.0.1:") {
		t.Fatalf("admin endpoint on %q", r.Addr())
	}
	replace := func(doc string) {
		tmp := file + ".new"
		os.WriteFile(tmp, []byte(doc), 0o644)
		os.Rename(tmp, file)
	}
	wait := func(what string, cond func() bool) {
		t.Helper()
		for deadline := time.Now().Add(2 * time.Second); !cond(); time.Sleep(5 * time.Millisecond) {
			if time.Now().After(deadline) {
				t.Fatalf("%s: not within 2 s", what)
			}
		}
	}
	replace(rulesNew)
	wait("new version", func() bool { return r.Current().Version() == rules.VersionOf([]byte(rulesNew)) })
	replace(rulesBad)
	wait("failure", func() bool { return gather(t, reg, "beacongrid_sidecar_rules_reload_failures_total") == 1 })
	if gather(t, reg, "beacongrid_sidecar_rules_reload_success") != 0 || r.Current().Version() != rules.VersionOf([]byte(rulesNew)) {
		t.Fatal("a bad file must keep the last good rules and set reload_success to 0")
	}
	if ts := gather(t, reg, "beacongrid_sidecar_rules_last_reload_success_timestamp_seconds"); time.Since(time.Unix(int64(ts), 0)) > time.Minute {
		t.Fatalf("last success timestamp %v", ts)
	}
	req, _ := http.NewRequest("GET", "http://"+r.Addr()+"/admin/rules", nil)
	req.Header.Set("Authorization", "Bearer "+adminTok)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	json.NewDecoder(resp.Body).Decode(&m)
	resp.Body.Close()
	if resp.StatusCode != 200 || m["last_reload_ok"] != false || !strings.Contains(m["last_error"].(string), "rules.yml:4:13") {
		t.Fatalf("GET over TCP: %d %v", resp.StatusCode, m)
	}
}

func TestReadTokens(t *testing.T) {
	path := filepath.Join(t.TempDir(), "tokens")
	os.WriteFile(path, []byte("# admins\nalice:"+adminTok+"\n\n"+bareTok+"\n"), 0o600)
	toks, err := ReadTokens(path)
	if err != nil || len(toks) != 2 || toks[0] != (AdminToken{"alice", adminTok}) || toks[1] != (AdminToken{"", bareTok}) {
		t.Fatalf("tokens %v %v", toks, err)
	}
	os.WriteFile(path, []byte("bob:short\n"), 0o600)
	if _, err := ReadTokens(path); err == nil || strings.Contains(err.Error(), "short") && !strings.Contains(err.Error(), ":1:") {
		t.Fatalf("short token: %v", err)
	} else if strings.Contains(err.Error(), "bob:short") {
		t.Fatal("the error shows the token")
	}
	if r, err := StartRules(RulesConfig{}, nil, nil); r != nil || err != nil || r.Stop() != nil || r.Current() != nil {
		t.Fatal("no rules file must be a nil, harmless *Rules")
	}
	if _, err := StartRules(RulesConfig{File: writeRules(t, t.TempDir(), rulesBad)}, nil, testLogger()); err == nil {
		t.Fatal("an invalid rules file at start was accepted")
	}
}

func gather(t *testing.T, reg *prometheus.Registry, name string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() == name {
			m := mf.GetMetric()[0]
			switch {
			case m.Counter != nil:
				return m.Counter.GetValue()
			case m.Gauge != nil:
				return m.Gauge.GetValue()
			}
		}
	}
	t.Fatalf("no metric %s", name)
	return 0
}
