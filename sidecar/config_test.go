package sidecar

import (
	"bytes"
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

const (
	secretKey = "c2VrcmV0LWFwaS1rZXk6dmFsdWU=" // must never be printed
	secretPW  = "hunter2-Pa55"                 // must never be printed
)

// mapEnv is an Env over a map of variables and a map of files.
func mapEnv(vars, files map[string]string) Env {
	return Env{
		Lookup: func(k string) (string, bool) { v, ok := vars[k]; return v, ok },
		ReadFile: func(p string) ([]byte, error) {
			if v, ok := files[p]; ok {
				return []byte(v), nil
			}
			return nil, &fs.PathError{Op: "open", Path: p, Err: fs.ErrNotExist}
		},
	}
}

func TestLoadEnv(t *testing.T) {
	for _, tc := range []struct {
		name    string
		start   []string // addresses already set (from flags)
		vars    map[string]string
		files   map[string]string
		want    Config // only Addresses, APIKey, Username, Password are compared
		wantErr string
	}{
		{name: "nothing set"},
		{
			name: "url list",
			vars: map[string]string{EnvURL: " http://a:9200/, https://b:9243 ,"},
			want: Config{Addresses: []string{"http://a:9200", "https://b:9243"}},
		},
		{
			name:  "flags win over env url",
			start: []string{"http://flag:9200"},
			vars:  map[string]string{EnvURL: "http://env:9200"},
			want:  Config{Addresses: []string{"http://flag:9200"}},
		},
		{
			name:    "url with credentials refused",
			vars:    map[string]string{EnvURL: "http://elastic:" + secretPW + "@a:9200"},
			wantErr: "holds credentials",
		},
		{name: "bad scheme", vars: map[string]string{EnvURL: "ftp://a"}, wantErr: "scheme"},
		{name: "path refused", vars: map[string]string{EnvURL: "http://a:9200/es"}, wantErr: "path"},
		{
			name: "api key inline",
			vars: map[string]string{EnvAPIKey: secretKey},
			want: Config{APIKey: secretKey},
		},
		{
			name:  "api key from file, newline trimmed",
			vars:  map[string]string{EnvAPIKey + "_FILE": "/run/secrets/key"},
			files: map[string]string{"/run/secrets/key": secretKey + "\n"},
			want:  Config{APIKey: secretKey},
		},
		{
			name:  "basic auth, password from file",
			vars:  map[string]string{EnvUsername: "beacongrid", EnvPassword + "_FILE": "/pw"},
			files: map[string]string{"/pw": secretPW + "\r\n"},
			want:  Config{Username: "beacongrid", Password: secretPW},
		},
		{
			name:    "both inline and file",
			vars:    map[string]string{EnvPassword: secretPW, EnvPassword + "_FILE": "/pw"},
			wantErr: "both " + EnvPassword + " and " + EnvPassword + "_FILE",
		},
		{
			name:    "missing file names the path",
			vars:    map[string]string{EnvAPIKey + "_FILE": "/nope"},
			wantErr: "/nope",
		},
		{
			name:    "empty file variable",
			vars:    map[string]string{EnvAPIKey + "_FILE": ""},
			wantErr: "is set but empty",
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := DefaultConfig()
			c.Addresses = tc.start
			err := c.LoadEnv(mapEnv(tc.vars, tc.files))
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("err = %v, want %q", err, tc.wantErr)
				}
				assertNoSecret(t, err.Error())
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(c.Addresses, tc.want.Addresses) || c.APIKey != tc.want.APIKey ||
				c.Username != tc.want.Username || c.Password != tc.want.Password {
				t.Errorf("got addresses=%v username=%q (secrets compared too), want %v %q",
					c.Addresses, c.Username, tc.want.Addresses, tc.want.Username)
			}
		})
	}
}

func TestValidate(t *testing.T) {
	valid := func() Config {
		c := DefaultConfig()
		c.SpoolDir = "/var/spool/beacongrid"
		c.Addresses = []string{"http://127.0.0.1:9200"}
		return c
	}
	for _, tc := range []struct {
		name    string
		change  func(*Config)
		wantErr string
	}{
		{name: "defaults plus required", change: func(*Config) {}},
		{name: "no spool", change: func(c *Config) { c.SpoolDir = "" }, wantErr: "spool directory"},
		{name: "no address", change: func(c *Config) { c.Addresses = nil }, wantErr: EnvURL},
		{name: "bad address", change: func(c *Config) { c.Addresses = []string{"localhost:9200"} }, wantErr: "scheme"},
		{name: "upper-case index", change: func(c *Config) { c.Index = "Alerts" }, wantErr: "lower case"},
		{name: "index with star", change: func(c *Config) { c.Index = "alerts*" }, wantErr: "must not contain"},
		{name: "index starting with _", change: func(c *Config) { c.Index = "_x" }, wantErr: "must not start"},
		{name: "empty index", change: func(c *Config) { c.Index = "" }, wantErr: "empty"},
		{
			name:    "api key and basic",
			change:  func(c *Config) { c.APIKey, c.Username, c.Password = secretKey, "u", secretPW },
			wantErr: "use one",
		},
		{name: "user without password", change: func(c *Config) { c.Username = "u" }, wantErr: "together"},
		{name: "password without user", change: func(c *Config) { c.Password = secretPW }, wantErr: "together"},
		{name: "basic ok", change: func(c *Config) { c.Username, c.Password = "u", secretPW }},
		{name: "zero batch", change: func(c *Config) { c.BatchSize = 0 }, wantErr: "batch size"},
		{name: "zero poll", change: func(c *Config) { c.PollInterval = 0 }, wantErr: "poll interval"},
		{
			name:    "backoff inverted",
			change:  func(c *Config) { c.MinBackoff, c.MaxBackoff = time.Minute, time.Second },
			wantErr: "below min backoff",
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := valid()
			tc.change(&c)
			err := c.Validate()
			if tc.wantErr == "" {
				if err != nil {
					t.Fatalf("Validate = %v", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Fatalf("Validate = %v, want %q", err, tc.wantErr)
			}
			assertNoSecret(t, err.Error())
		})
	}
}

func assertNoSecret(t *testing.T, s string) {
	t.Helper()
	for _, secret := range []string{secretKey, secretPW, base64.StdEncoding.EncodeToString([]byte("u:" + secretPW))} {
		if strings.Contains(s, secret) {
			t.Fatalf("secret leaked into %q", s)
		}
	}
}

func TestConfigRedactsSecrets(t *testing.T) {
	c := DefaultConfig()
	c.SpoolDir = "/spool"
	c.Addresses = []string{"https://es:9200"}
	c.APIKey = secretKey
	c.Username = "beacongrid"
	c.Password = secretPW
	c.WebToken = "web-token-never-logged"

	var logs bytes.Buffer
	jsonLog := slog.New(slog.NewJSONHandler(&logs, nil))
	textLog := slog.New(slog.NewTextHandler(&logs, nil))
	jsonLog.Info("config", "config", c)
	textLog.Info("config", "config", c)
	jsonLog.Info("config", "config", &c)
	outputs := []string{
		c.String(),
		fmt.Sprint(c), fmt.Sprintf("%v", c), fmt.Sprintf("%+v", c), fmt.Sprintf("%#v", c),
		fmt.Sprintf("%v", &c), fmt.Sprintf("%s", c),
		logs.String(),
	}
	for _, out := range outputs {
		assertNoSecret(t, out)
		if strings.Contains(out, c.WebToken) {
			t.Fatalf("web token leaked into %q", out)
		}
		if !strings.Contains(out, redacted) {
			t.Errorf("output does not show that a secret is set: %s", out)
		}
	}
	if !strings.Contains(logs.String(), `"username":"beacongrid"`) || !strings.Contains(logs.String(), `"auth":"api_key"`) {
		t.Errorf("useful non-secret fields missing from the log: %s", logs.String())
	}
}

// TestRunLogsNoSecret runs the whole sidecar with credentials against the
// fake Elasticsearch and checks that the credentials were sent but never
// logged, even at debug level.
func TestRunLogsNoSecret(t *testing.T) {
	es := newFakeES(t)
	dir := t.TempDir()
	writeAlerts(t, dir, 0, 3)
	writeSpool(t, dir, []byte("garbage"))
	cfg := testConfig(dir, es.URL())
	cfg.Username, cfg.Password = "u", secretPW
	var logs bytes.Buffer
	log := slog.New(slog.NewJSONHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	if err := Run(context.Background(), cfg, log, true); err != nil {
		t.Fatal(err)
	}
	if docs, _, _ := es.snapshot(); docs != 3 {
		t.Fatalf("docs = %d, want 3", docs)
	}
	basic := "Basic " + base64.StdEncoding.EncodeToString([]byte("u:"+secretPW))
	es.set(func(f *fakeES) {
		if !f.auth[basic] {
			t.Errorf("credentials not sent; saw %d distinct Authorization headers", len(f.auth))
		}
	})
	assertNoSecret(t, logs.String())
	if !strings.Contains(logs.String(), "dead-lettered") {
		t.Errorf("malformed line not logged: %s", logs.String())
	}
}

func TestRunRefusesInvalidConfig(t *testing.T) {
	err := Run(context.Background(), Config{}, nil, true)
	if err == nil || !strings.Contains(err.Error(), "spool directory is not set") {
		t.Fatalf("Run = %v", err)
	}
}

func TestCAFile(t *testing.T) {
	dir := t.TempDir()
	bad := filepath.Join(dir, "bad.pem")
	if err := os.WriteFile(bad, []byte("not a certificate"), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg := testConfig(dir, "https://127.0.0.1:9200")
	for file, want := range map[string]string{bad: "no PEM certificate", filepath.Join(dir, "missing.pem"): "CA file"} {
		cfg.CAFile = file
		if _, err := NewESIndexer(cfg); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("NewESIndexer(%s) = %v, want %q", file, err, want)
		}
	}
}

func TestRequestErrorPermanent(t *testing.T) {
	for status, want := range map[int]bool{0: false, 400: true, 401: true, 403: true, 404: true,
		408: false, 429: false, 500: false, 503: false} {
		e := &RequestError{Op: "x", Status: status, Err: errors.New("boom")}
		if e.Permanent() != want {
			t.Errorf("status %d: Permanent = %v", status, !want)
		}
	}
}

func TestTLSWithCAFile(t *testing.T) {
	es, ca := newFakeESTLS(t)
	dir := t.TempDir()
	writeAlerts(t, dir, 0, 2)
	cfg := testConfig(dir, es.URL())

	// Without the CA the server is not trusted.
	idx, err := NewESIndexer(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := idx.Setup(context.Background()); err == nil || !strings.Contains(err.Error(), "certificate") {
		t.Fatalf("Setup without CA = %v, want a certificate error", err)
	}

	cfg.CAFile = filepath.Join(dir, "ca.pem")
	if err := os.WriteFile(cfg.CAFile, ca, 0o600); err != nil {
		t.Fatal(err)
	}
	d, _ := newTestDeliverer(t, cfg)
	drain(t, d)
	if docs, _, _ := es.snapshot(); docs != 2 {
		t.Fatalf("docs = %d over TLS, want 2", docs)
	}
}
