package sidecar

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/aymanbagabas/go-udiff"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/beacongrid/beacongrid/rules"
)

// DefaultAdminListen is the admin endpoint's default address: loopback only.
const DefaultAdminListen = "127.0.0.1:9465"

// MinTokenLen is the shortest admin token accepted.
const MinTokenLen = 16

// RulesConfig is the sidecar's part in operator rules: it watches the rules
// file the plugin reads (hot reload, metrics) and serves an authenticated
// admin endpoint to view and install it.
type RulesConfig struct {
	// File is the rules file the plugin's rules_file names; "" turns the
	// rules and the admin endpoint off.
	File string
	// AdminListen is the admin endpoint's address (DefaultAdminListen); ""
	// turns the endpoint off. It is served only with at least one token.
	AdminListen string
	// TokenFile holds the admin bearer tokens, one a line: "name:token"
	// (changes are recorded as made by name) or a bare token (recorded by
	// the client's address). Blank lines and lines starting with # are
	// skipped. Each token is at least MinTokenLen bytes.
	TokenFile string
	// Tokens are tokens given directly, in addition to TokenFile's.
	Tokens []AdminToken
	// AuditLog is the append-only record of changes (JSON lines); default
	// File + ".audit.jsonl".
	AuditLog string
	// Poll is the rules watcher's poll interval (rules.WatchOptions.Poll).
	Poll time.Duration
}

// AdminToken is one admin bearer token and the name changes are recorded
// under ("" for the client's address).
type AdminToken struct {
	Name  string
	Token string
}

// AuditEntry is one line of the audit log.
type AuditEntry struct {
	Time       time.Time `json:"time"`
	Who        string    `json:"who"`    // the token's name, else the client's address
	Remote     string    `json:"remote"` // the client's address
	OldVersion string    `json:"old_version"`
	NewVersion string    `json:"new_version"`
	Diff       string    `json:"diff"` // unified diff of the file's old and new text
	Error      string    `json:"error,omitempty"`
}

// Rules keeps the sidecar's copy of the rules current and serves the admin
// endpoint. A nil *Rules (no rules file) does nothing.
type Rules struct {
	cfg    RulesConfig
	log    *slog.Logger
	cur    atomic.Pointer[rules.Set]
	watch  *rules.Watcher
	tokens []hashedToken
	mu     sync.Mutex // one change at a time
	srv    *http.Server
	ln     net.Listener
	done   chan struct{}

	denied, changes prometheus.Counter
}

type hashedToken struct {
	name string
	sum  [sha256.Size]byte
}

var tokenName = regexp.MustCompile(`^[A-Za-z0-9_.@-]+$`)

// ReadTokens parses a token file (see RulesConfig.TokenFile).
func ReadTokens(path string) ([]AdminToken, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("admin tokens: %w", err)
	}
	defer f.Close()
	var out []AdminToken
	sc := bufio.NewScanner(f)
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		t := AdminToken{Token: line}
		if name, tok, ok := strings.Cut(line, ":"); ok && tokenName.MatchString(name) {
			t = AdminToken{Name: name, Token: tok}
		}
		if len(t.Token) < MinTokenLen {
			// The message names the line, never the token.
			return nil, fmt.Errorf("admin tokens: %s:%d: token shorter than %d bytes", path, n, MinTokenLen)
		}
		out = append(out, t)
	}
	return out, sc.Err()
}

// StartRules loads the rules file, starts watching it, registers the rules
// metrics on reg and starts the admin endpoint when it has an address and
// tokens. It returns nil, nil when cfg.File is "".
func StartRules(cfg RulesConfig, reg prometheus.Registerer, log *slog.Logger) (*Rules, error) {
	if cfg.File == "" {
		return nil, nil
	}
	if log == nil {
		log = slog.Default()
	}
	if cfg.AuditLog == "" {
		cfg.AuditLog = cfg.File + ".audit.jsonl"
	}
	r := &Rules{cfg: cfg, log: log, done: make(chan struct{})}
	toks := cfg.Tokens
	if cfg.TokenFile != "" {
		more, err := ReadTokens(cfg.TokenFile)
		if err != nil {
			return nil, err
		}
		toks = append(append([]AdminToken(nil), toks...), more...)
	}
	for _, t := range toks {
		if len(t.Token) < MinTokenLen {
			return nil, fmt.Errorf("admin token %q: shorter than %d bytes", t.Name, MinTokenLen)
		}
		r.tokens = append(r.tokens, hashedToken{name: t.Name, sum: sha256.Sum256([]byte(t.Token))})
	}
	w, err := rules.NewWatcher(cfg.File, &r.cur, rules.WatchOptions{Poll: cfg.Poll, OnResult: r.logResult})
	if err != nil {
		return nil, err
	}
	r.watch = w
	if err := r.register(reg); err != nil {
		return nil, err
	}
	if err := w.Start(); err != nil {
		log.Warn("rules watch", "err", err)
	}
	log.Info("rules loaded", "file", cfg.File, "version", r.cur.Load().Version(), "rules", r.cur.Load().Counts())
	if cfg.AdminListen == "" || len(r.tokens) == 0 {
		if cfg.AdminListen != "" {
			log.Info("rules admin endpoint off: no admin token configured")
		}
		return r, nil
	}
	ln, err := net.Listen("tcp", cfg.AdminListen)
	if err != nil {
		w.Stop()
		return nil, fmt.Errorf("rules admin endpoint: %w", err)
	}
	if a, ok := ln.Addr().(*net.TCPAddr); ok && !a.IP.IsLoopback() {
		log.Warn("rules admin endpoint listens beyond loopback; put TLS in front of it", "addr", ln.Addr().String())
	}
	r.ln = ln
	r.srv = &http.Server{
		Handler:           r.Handler(),
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       10 * time.Second,
		WriteTimeout:      30 * time.Second,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
	}
	go func() {
		defer close(r.done)
		if err := r.srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Error("rules admin endpoint stopped", "err", err)
		}
	}()
	log.Info("rules admin endpoint listening", "addr", ln.Addr().String(), "audit", cfg.AuditLog)
	return r, nil
}

func (r *Rules) register(reg prometheus.Registerer) error {
	if reg == nil {
		return nil
	}
	const ns, sub = "beacongrid", "sidecar_rules"
	st := func() rules.WatchStats { return r.watch.Stats() }
	r.denied = prometheus.NewCounter(prometheus.CounterOpts{Namespace: ns, Subsystem: sub, Name: "admin_denied_total",
		Help: "Admin requests refused for a missing or wrong token."})
	r.changes = prometheus.NewCounter(prometheus.CounterOpts{Namespace: ns, Subsystem: sub, Name: "admin_changes_total",
		Help: "Rules versions installed through the admin endpoint."})
	for _, c := range []prometheus.Collector{
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Namespace: ns, Subsystem: sub, Name: "reload_success",
			Help: "1 if the last reload of the rules file succeeded, else 0 (the last good rules stay in force)."},
			func() float64 {
				if st().LastOK {
					return 1
				}
				return 0
			}),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Namespace: ns, Subsystem: sub, Name: "last_reload_success_timestamp_seconds",
			Help: "Unix time of the last successful load of the rules file."},
			func() float64 { return float64(st().LastSuccess.UnixNano()) / 1e9 }),
		prometheus.NewCounterFunc(prometheus.CounterOpts{Namespace: ns, Subsystem: sub, Name: "reload_failures_total",
			Help: "Reloads of the rules file refused (unreadable or invalid)."},
			func() float64 { return float64(st().Failures) }),
		prometheus.NewCounterFunc(prometheus.CounterOpts{Namespace: ns, Subsystem: sub, Name: "reloads_total",
			Help: "Reloads that put a new rules version in force."},
			func() float64 { return float64(st().Reloads) }),
		r.denied, r.changes,
	} {
		if err := reg.Register(c); err != nil {
			return err
		}
	}
	return nil
}

func (r *Rules) logResult(res rules.Result) {
	switch {
	case res.Err != nil:
		r.log.Error("rules reload refused; keeping the last good rules", "err", res.Err, "version", res.Old.Version())
	case res.Changed:
		r.log.Info("rules reloaded", "from", res.Old.Version(), "to", res.New.Version(), "rules", res.New.Counts())
	}
}

// Current returns the rules in force (nil for none).
func (r *Rules) Current() *rules.Set {
	if r == nil {
		return nil
	}
	return r.cur.Load()
}

// Addr is the admin endpoint's address, "" when it is off.
func (r *Rules) Addr() string {
	if r == nil || r.ln == nil {
		return ""
	}
	return r.ln.Addr().String()
}

// Stop stops the admin endpoint (waiting up to 5 s for requests in
// progress) and the watcher. It is nil-safe.
func (r *Rules) Stop() error {
	if r == nil {
		return nil
	}
	var err error
	if r.srv != nil {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		err = r.srv.Shutdown(ctx)
		cancel()
		<-r.done
	}
	r.watch.Stop()
	return err
}

// Handler serves the admin API: GET /admin/rules (the rules in force, JSON;
// ?format=yaml for the file as is), PUT or POST /admin/rules (install a new
// version: validated, written atomically, reloaded, audited; If-Match may
// name the version it replaces) and GET /admin/rules/audit (the audit log).
// Every request needs "Authorization: Bearer TOKEN".
func (r *Rules) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /admin/rules", r.auth(r.get))
	mux.HandleFunc("PUT /admin/rules", r.auth(r.put))
	mux.HandleFunc("POST /admin/rules", r.auth(r.put))
	mux.HandleFunc("GET /admin/rules/audit", r.auth(r.audit))
	return mux
}

type whoKey struct{}

// auth checks the bearer token against every configured token in constant
// time (hashes of equal length; no early exit).
func (r *Rules) auth(h http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, req *http.Request) {
		given, ok := strings.CutPrefix(req.Header.Get("Authorization"), "Bearer ")
		sum := sha256.Sum256([]byte(given))
		match := -1
		for i := range r.tokens {
			if subtle.ConstantTimeCompare(sum[:], r.tokens[i].sum[:]) == 1 {
				match = i
			}
		}
		if !ok || given == "" || match < 0 {
			if r.denied != nil {
				r.denied.Inc()
			}
			w.Header().Set("WWW-Authenticate", `Bearer realm="beacongrid rules"`)
			adminJSON(w, http.StatusUnauthorized, map[string]string{"error": "a valid bearer token is required"})
			return
		}
		who := r.tokens[match].name
		if who == "" {
			who = req.RemoteAddr
		}
		h(w, req.WithContext(context.WithValue(req.Context(), whoKey{}, who)))
	}
}

type rulesView struct {
	Version     string    `json:"version"`
	File        string    `json:"file"`
	Rules       string    `json:"rules"`
	Summary     string    `json:"summary"`
	LastOK      bool      `json:"last_reload_ok"`
	LastSuccess time.Time `json:"last_reload_success"`
	Failures    int64     `json:"reload_failures"`
	LastError   string    `json:"last_error,omitempty"`
}

func (r *Rules) get(w http.ResponseWriter, req *http.Request) {
	s := r.cur.Load()
	w.Header().Set("ETag", `"`+s.Version()+`"`)
	if req.URL.Query().Get("format") == "yaml" {
		w.Header().Set("Content-Type", "application/yaml")
		w.Write(s.Source())
		return
	}
	st := r.watch.Stats()
	adminJSON(w, http.StatusOK, rulesView{Version: s.Version(), File: r.cfg.File, Rules: string(s.Source()), Summary: s.Counts(),
		LastOK: st.LastOK, LastSuccess: st.LastSuccess.UTC(), Failures: st.Failures, LastError: st.LastError})
}

type errorView struct {
	Line    int    `json:"line"`
	Column  int    `json:"column,omitempty"`
	Path    string `json:"path,omitempty"`
	Message string `json:"message"`
	Hint    string `json:"hint,omitempty"`
}

func (r *Rules) put(w http.ResponseWriter, req *http.Request) {
	body, err := io.ReadAll(http.MaxBytesReader(w, req.Body, rules.MaxSize))
	if err != nil {
		adminJSON(w, http.StatusRequestEntityTooLarge, map[string]string{"error": err.Error()})
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	active := r.cur.Load()
	if m := strings.Trim(req.Header.Get("If-Match"), `"`); m != "" && m != active.Version() {
		adminJSON(w, http.StatusPreconditionFailed, map[string]string{"error": "the rules in force are version " + active.Version() + ", not " + m})
		return
	}
	// Validated before anything is written, by the plugin's own loader.
	s, err := rules.ParseNamed(filepath.Base(r.cfg.File), body)
	if err != nil {
		var el *rules.ErrorList
		out := map[string]any{"error": err.Error()}
		if errors.As(err, &el) {
			ev := make([]errorView, len(el.Errs))
			for i, e := range el.Errs {
				ev[i] = errorView{e.Line, e.Column, e.Path, e.Msg, e.Hint}
			}
			out["errors"] = ev
		}
		adminJSON(w, http.StatusBadRequest, out)
		return
	}
	if s.Version() == active.Version() {
		adminJSON(w, http.StatusOK, map[string]any{"version": s.Version(), "changed": false})
		return
	}
	who, _ := req.Context().Value(whoKey{}).(string)
	if err := r.install(body, who, req.RemoteAddr); err != nil {
		r.log.Error("rules install failed", "who", who, "err", err)
		adminJSON(w, http.StatusInternalServerError, map[string]string{"error": err.Error()})
		return
	}
	// The same reload every other trigger runs.
	res := r.watch.Reload()
	if res.Err != nil {
		adminJSON(w, http.StatusInternalServerError, map[string]string{"error": "written but not reloaded: " + res.Err.Error()})
		return
	}
	if r.changes != nil {
		r.changes.Inc()
	}
	r.log.Info("rules installed", "who", who, "remote", req.RemoteAddr, "from", active.Version(), "to", r.cur.Load().Version())
	adminJSON(w, http.StatusOK, map[string]any{"version": r.cur.Load().Version(), "previous": active.Version(), "changed": true})
}

// install records the change in the audit log, then replaces the file
// atomically: a temporary file in the same directory, synced, renamed over
// the file (over a symlink's target, so a symlinked layout stays), and the
// directory synced. No change is made that the audit log does not hold.
func (r *Rules) install(body []byte, who, remote string) error {
	target, err := filepath.EvalSymlinks(r.cfg.File)
	if err != nil {
		return err
	}
	old, err := os.ReadFile(target)
	if err != nil {
		return err
	}
	mode := os.FileMode(0o644)
	if fi, err := os.Stat(target); err == nil {
		mode = fi.Mode().Perm()
	}
	dir := filepath.Dir(target)
	tmp, err := os.CreateTemp(dir, ".rules-*.tmp")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name()) // after a successful rename: nothing to remove
	if _, err := tmp.Write(body); err == nil {
		err = tmp.Sync()
	}
	if err := errors.Join(err, tmp.Chmod(mode), tmp.Close()); err != nil {
		return err
	}
	name := filepath.Base(r.cfg.File)
	entry := AuditEntry{Time: time.Now().UTC(), Who: who, Remote: remote, OldVersion: rules.VersionOf(old),
		NewVersion: rules.VersionOf(body), Diff: udiff.Unified("a/"+name, "b/"+name, string(old), string(body))}
	if err := r.appendAudit(entry); err != nil {
		return fmt.Errorf("audit log: %w (nothing changed)", err)
	}
	if err := os.Rename(tmp.Name(), target); err != nil {
		entry.Error = err.Error()
		return errors.Join(err, r.appendAudit(entry))
	}
	if d, err := os.Open(dir); err == nil {
		d.Sync()
		d.Close()
	}
	return nil
}

func (r *Rules) appendAudit(e AuditEntry) error {
	b, err := json.Marshal(e)
	if err != nil {
		return err
	}
	f, err := os.OpenFile(r.cfg.AuditLog, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600)
	if err != nil {
		return err
	}
	_, err = f.Write(append(b, '\n'))
	if err == nil {
		err = f.Sync()
	}
	return errors.Join(err, f.Close())
}

func (r *Rules) audit(w http.ResponseWriter, _ *http.Request) {
	b, err := os.ReadFile(r.cfg.AuditLog)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		adminJSON(w, http.StatusInternalServerError, map[string]string{"error": err.Error()})
		return
	}
	w.Header().Set("Content-Type", "application/x-ndjson")
	w.Write(bytes.TrimLeft(b, "\n"))
}

func adminJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	enc.Encode(v)
}
