package sidecar

import (
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"os"
	"strings"
	"time"
)

// Environment variables read by LoadEnv. Each secret may instead be given as
// a file path in the variable of the same name with the suffix _FILE (for
// container secrets); setting both is an error.
const (
	EnvURL      = "BEACONGRID_ES_URL"      // comma-separated addresses
	EnvAPIKey   = "BEACONGRID_ES_API_KEY"  // base64 "id:key", as Elasticsearch returns it
	EnvUsername = "BEACONGRID_ES_USERNAME" // basic auth user
	EnvPassword = "BEACONGRID_ES_PASSWORD" // basic auth password
	fileSuffix  = "_FILE"
)

// Defaults applied by DefaultConfig.
const (
	DefaultIndex          = "beacongrid-alerts"
	DefaultListen         = "127.0.0.1:9464"
	DefaultBatchSize      = 1000
	DefaultFlushInterval  = time.Second
	DefaultPollInterval   = 500 * time.Millisecond
	DefaultRequestTimeout = 30 * time.Second
	DefaultMinBackoff     = 500 * time.Millisecond
	DefaultMaxBackoff     = 30 * time.Second
	DefaultRetention      = 90 * 24 * time.Hour
	DefaultIOCReload      = 10 * time.Second
	DefaultWorkers        = 2
)

// Targets (Config.Target): where alerts are stored.
const (
	TargetAuto       = "auto"        // a data stream when the cluster supports it, else an index
	TargetIndex      = "index"       // always a plain index
	TargetDataStream = "data-stream" // always a data stream; Setup fails without the API
)

// Modes (ESIndexer.Mode): what Setup chose.
const (
	ModeIndex      = "index"
	ModeDataStream = "data_stream"
)

const redacted = "[REDACTED]"

// Config is the sidecar's configuration. It is a plain value; build it with
// DefaultConfig, fill it from flags and LoadEnv, then call Validate.
//
// APIKey and Password are secrets: String and LogValue redact them, so a
// Config may be logged as is.
type Config struct {
	// SpoolDir is the spool directory the plugin writes (required).
	SpoolDir string
	// Addresses are the Elasticsearch base URLs, http or https, without
	// credentials (required).
	Addresses []string
	// Index is the target index or data stream, and the name and pattern of
	// the index template (and ILM policy) installed at start.
	Index string
	// Target is TargetAuto (default), TargetIndex or TargetDataStream.
	Target string
	// Retention is how long the ILM policy keeps an index after rollover
	// (data streams with ILM only).
	Retention time.Duration

	// APIKey (base64 "id:key") takes the place of Username/Password; at most
	// one of the two kinds may be set.
	APIKey   string
	Username string
	Password string
	// CAFile is a PEM file of CA certificates trusted for https addresses,
	// instead of the system pool.
	CAFile string

	// BatchSize is the most spool lines sent in one bulk request.
	BatchSize int
	// Workers is how many bulk requests may be in flight at once. The spool
	// position is still committed in order: a batch's lines are committed
	// only once it and every batch before it are delivered.
	Workers int
	// FlushInterval is the longest a partial batch waits for more lines
	// before it is sent.
	FlushInterval time.Duration
	// PollInterval is how often an idle spool is read again.
	PollInterval time.Duration
	// RequestTimeout bounds one request to Elasticsearch.
	RequestTimeout time.Duration
	// MinBackoff and MaxBackoff bound the wait between retries; the wait
	// doubles from MinBackoff up to MaxBackoff.
	MinBackoff time.Duration
	MaxBackoff time.Duration

	// InventoryFile is an asset inventory (CSV or JSON, see LoadInventory)
	// used to add host.* to alerts by source IP; "" for none.
	InventoryFile string
	// IOCFiles are threat-intelligence indicator lists (see LoadIOCs)
	// matched against the destination; reloaded when they change.
	IOCFiles []string
	// IOCReload is how often the IOC files (and the inventory) are checked
	// for changes.
	IOCReload time.Duration

	// Listen is the address of the /metrics, /healthz, /readyz server; ""
	// disables it.
	Listen string
	// Rules is the rules file the sidecar watches and the admin endpoint
	// that installs new versions of it (admin.go).
	Rules RulesConfig

	// WebToken is the bearer token of the alerts page (/ui/ on Listen); ""
	// leaves the page off. A secret, like APIKey.
	WebToken string
}

// DefaultConfig returns a Config with every default set and nothing else.
func DefaultConfig() Config {
	return Config{
		Index:          DefaultIndex,
		Target:         TargetAuto,
		Retention:      DefaultRetention,
		Workers:        DefaultWorkers,
		IOCReload:      DefaultIOCReload,
		Listen:         DefaultListen,
		BatchSize:      DefaultBatchSize,
		FlushInterval:  DefaultFlushInterval,
		PollInterval:   DefaultPollInterval,
		RequestTimeout: DefaultRequestTimeout,
		MinBackoff:     DefaultMinBackoff,
		MaxBackoff:     DefaultMaxBackoff,
	}
}

// Env is where LoadEnv reads variables and secret files; tests replace it.
type Env struct {
	Lookup   func(key string) (string, bool)
	ReadFile func(path string) ([]byte, error)
}

// OSEnv reads the process environment and file system.
func OSEnv() Env { return Env{Lookup: os.LookupEnv, ReadFile: os.ReadFile} }

// LoadEnv fills, from env, the credentials and, when c.Addresses is empty,
// the addresses (EnvURL). A secret read from a file has surrounding white
// space (the trailing newline) trimmed.
func (c *Config) LoadEnv(env Env) error {
	if len(c.Addresses) == 0 {
		if v, ok := env.Lookup(EnvURL); ok && strings.TrimSpace(v) != "" {
			addrs, err := ParseAddresses([]string{v})
			if err != nil {
				return fmt.Errorf("%s: %w", EnvURL, err)
			}
			c.Addresses = addrs
		}
	}
	for _, s := range []struct {
		key string
		dst *string
	}{
		{EnvAPIKey, &c.APIKey},
		{EnvUsername, &c.Username},
		{EnvPassword, &c.Password},
		{EnvWebToken, &c.WebToken},
	} {
		v, ok, err := env.value(s.key)
		if err != nil {
			return err
		}
		if ok {
			*s.dst = v
		}
	}
	return nil
}

// value returns the variable key, or the content of the file named by
// key_FILE.
func (env Env) value(key string) (string, bool, error) {
	v, inline := env.Lookup(key)
	path, fromFile := env.Lookup(key + fileSuffix)
	switch {
	case inline && fromFile:
		return "", false, fmt.Errorf("both %s and %s are set; set one", key, key+fileSuffix)
	case inline:
		return v, true, nil
	case !fromFile:
		return "", false, nil
	}
	if path == "" {
		return "", false, fmt.Errorf("%s is set but empty", key+fileSuffix)
	}
	b, err := env.ReadFile(path)
	if err != nil {
		// The error names the path, never the content.
		return "", false, fmt.Errorf("%s: %w", key+fileSuffix, err)
	}
	return strings.TrimSpace(string(b)), true, nil
}

// ParseAddresses splits comma-separated values, trims them and checks each
// is an http(s) URL with a host and no credentials, path, query or fragment.
// A trailing slash is removed.
func ParseAddresses(values []string) ([]string, error) {
	var out []string
	for _, v := range values {
		for _, a := range strings.Split(v, ",") {
			a = strings.TrimSpace(a)
			if a == "" {
				continue
			}
			norm, err := checkAddress(a)
			if err != nil {
				return nil, err
			}
			out = append(out, norm)
		}
	}
	return out, nil
}

func checkAddress(a string) (string, error) {
	u, err := url.Parse(a)
	if err != nil {
		// url.Error repeats the input, which may hold a password.
		return "", fmt.Errorf("address %q is not a URL", redactURL(a))
	}
	switch {
	case u.Scheme != "http" && u.Scheme != "https":
		return "", fmt.Errorf("address %q: scheme must be http or https", redactURL(a))
	case u.Host == "":
		return "", fmt.Errorf("address %q has no host", redactURL(a))
	case u.User != nil:
		return "", fmt.Errorf("address %q holds credentials; use %s/%s or %s instead",
			redactURL(a), EnvUsername, EnvPassword, EnvAPIKey)
	case u.RawQuery != "" || u.Fragment != "":
		return "", fmt.Errorf("address %q must not have a query or fragment", a)
	case strings.Trim(u.Path, "/") != "":
		return "", fmt.Errorf("address %q must not have a path", a)
	}
	return u.Scheme + "://" + u.Host, nil
}

// redactURL hides everything between "://" and the last "@" of s.
func redactURL(s string) string {
	at := strings.LastIndex(s, "@")
	i := strings.Index(s, "://")
	if at < 0 || i < 0 || at < i {
		return s
	}
	return s[:i+3] + redacted + s[at:]
}

// Validate reports the first thing wrong with c, in words an operator can
// act on.
func (c Config) Validate() error {
	var errs []error
	add := func(format string, a ...any) { errs = append(errs, fmt.Errorf(format, a...)) }
	if c.SpoolDir == "" {
		add("spool directory is not set")
	}
	if len(c.Addresses) == 0 {
		add("no Elasticsearch address: use --es or %s", EnvURL)
	}
	if _, err := ParseAddresses(c.Addresses); err != nil {
		errs = append(errs, err)
	}
	if err := checkIndexName(c.Index); err != nil {
		errs = append(errs, err)
	}
	if c.APIKey != "" && (c.Username != "" || c.Password != "") {
		add("both an API key and a username/password are set; use one")
	}
	if (c.Username == "") != (c.Password == "") {
		add("username and password must be set together")
	}
	switch c.Target {
	case TargetAuto, TargetIndex, TargetDataStream:
	default:
		add("target must be %s, %s or %s, got %q", TargetAuto, TargetIndex, TargetDataStream, c.Target)
	}
	if c.Workers < 1 || c.Workers > 64 {
		add("workers must be 1..64, got %d", c.Workers)
	}
	if c.BatchSize < 1 {
		add("batch size must be at least 1, got %d", c.BatchSize)
	}
	for _, d := range []struct {
		name string
		v    time.Duration
	}{
		{"flush interval", c.FlushInterval},
		{"poll interval", c.PollInterval},
		{"request timeout", c.RequestTimeout},
		{"min backoff", c.MinBackoff},
		{"max backoff", c.MaxBackoff},
		{"retention", c.Retention},
		{"IOC reload interval", c.IOCReload},
	} {
		if d.v <= 0 {
			add("%s must be positive, got %s", d.name, d.v)
		}
	}
	if c.MaxBackoff < c.MinBackoff {
		add("max backoff %s is below min backoff %s", c.MaxBackoff, c.MinBackoff)
	}
	return errors.Join(errs...)
}

// checkIndexName applies Elasticsearch's index name rules.
func checkIndexName(name string) error {
	switch {
	case name == "":
		return errors.New("index name is empty")
	case name != strings.ToLower(name):
		return fmt.Errorf("index name %q must be lower case", name)
	case strings.HasPrefix(name, "_") || strings.HasPrefix(name, "-") || strings.HasPrefix(name, "+"):
		return fmt.Errorf("index name %q must not start with _, - or +", name)
	case name == "." || name == "..":
		return fmt.Errorf("index name %q is not allowed", name)
	case len(name) > 255:
		return fmt.Errorf("index name is longer than 255 bytes")
	case strings.ContainsAny(name, `\/*?"<>| ,#:`):
		return fmt.Errorf(`index name %q must not contain any of \ / * ? " < > | space , # :`, name)
	}
	return nil
}

// auth names the kind of credentials configured, never their value.
func (c Config) auth() string {
	switch {
	case c.APIKey != "":
		return "api_key"
	case c.Username != "":
		return "basic"
	default:
		return "none"
	}
}

func secret(s string) string {
	if s == "" {
		return ""
	}
	return redacted
}

// String describes c with secrets redacted.
func (c Config) String() string {
	return fmt.Sprintf("spool=%s es=%s index=%s target=%s retention=%s auth=%s username=%s api_key=%s password=%s ca_file=%s "+
		"batch=%d workers=%d flush=%s poll=%s timeout=%s backoff=%s..%s inventory=%s ioc=%s listen=%s web_token=%s",
		c.SpoolDir, strings.Join(c.Addresses, ","), c.Index, c.Target, c.Retention, c.auth(), c.Username,
		secret(c.APIKey), secret(c.Password), c.CAFile, c.BatchSize, c.Workers, c.FlushInterval,
		c.PollInterval, c.RequestTimeout, c.MinBackoff, c.MaxBackoff, c.InventoryFile,
		strings.Join(c.IOCFiles, ","), c.Listen, secret(c.WebToken))
}

// LogValue implements slog.LogValuer with secrets redacted.
func (c Config) LogValue() slog.Value {
	return slog.GroupValue(
		slog.String("spool", c.SpoolDir),
		slog.Any("es", c.Addresses),
		slog.String("index", c.Index),
		slog.String("target", c.Target),
		slog.String("retention", c.Retention.String()),
		slog.String("auth", c.auth()),
		slog.String("username", c.Username),
		slog.String("api_key", secret(c.APIKey)),
		slog.String("password", secret(c.Password)),
		slog.String("ca_file", c.CAFile),
		slog.Int("batch", c.BatchSize),
		slog.Int("workers", c.Workers),
		slog.String("inventory", c.InventoryFile),
		slog.Any("ioc", c.IOCFiles),
		slog.String("flush", c.FlushInterval.String()),
		slog.String("poll", c.PollInterval.String()),
		slog.String("timeout", c.RequestTimeout.String()),
		slog.String("min_backoff", c.MinBackoff.String()),
		slog.String("max_backoff", c.MaxBackoff.String()),
		slog.String("listen", c.Listen),
		slog.String("web_token", secret(c.WebToken)),
	)
}

// GoString makes %#v redact too.
func (c Config) GoString() string { return "sidecar.Config{" + c.String() + "}" }
