package instance

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/beacongrid/beacongrid/fields"
)

// Getter reads one configuration key; a missing key reads as "". The
// plugin's Getter wraps Fluent Bit's property lookup (case-insensitive,
// ${ENV} already expanded); tests use a map.
type Getter interface {
	Get(key string) string
}

// MapGetter is a Getter over a map (tests, the replay command).
type MapGetter map[string]string

// Get implements Getter.
func (m MapGetter) Get(key string) string { return m[strings.ToLower(key)] }

// Config is an instance's configuration, read once at Init.
type Config struct {
	Name        string        // instance name in logs and alerts (property instance_name, else "beacongrid.N")
	SpoolDir    string        // where alerts are handed to the sidecar (required)
	ModelFile   string        // LightGBM text model; "" uses the embedded default
	RulesFile   string        // YAML rules; "" for none
	Threshold   float64       // overrides the model's threshold when > 0
	MaxMemory   int64         // bytes of flow state (cache bound)
	MinActive   int           // fewest active minutes before scoring
	ScoreEvery  int           // minutes between rescoring a busy flow
	MaxFuture   time.Duration // how far past the wall clock an event may lie
	SpoolMax    int64         // bound on undelivered spool bytes
	AlertBuffer int           // alerts held in memory while the spool is unwritable
	Preset      string        // field mapping presets, comma-separated (fields.Preset); "" for fields.DefaultPreset

	// Edge state snapshots (state.go).
	StateFile     string        // "" for none (property "off"); default spool_dir/state.bgs
	StateInterval time.Duration // between snapshots

	// Counters in the Prometheus text format (metrics.go).
	MetricsFile     string        // "" for none (property "off"); default spool_dir/metrics.prom
	MetricsInterval time.Duration // between writes
}

// Keys lists every configuration key the plugin reads (docs/configuration.md).
var Keys = []string{"spool_dir", "model_file", "rules_file", "threshold", "max_memory",
	"min_active_minutes", "score_every", "max_future", "spool_max", "alert_buffer", "instance_name", "preset",
	"state_file", "state_interval", "metrics_file", "metrics_interval"}

// ParseConfig reads and validates the configuration, returning every
// problem at once.
func ParseConfig(g Getter, defaultName string) (Config, error) {
	c := Config{
		Name:        defaultName,
		MaxMemory:   256 << 20,
		MinActive:   10,
		ScoreEvery:  5,
		MaxFuture:   10 * time.Minute,
		SpoolMax:    1 << 30,
		AlertBuffer: 10000,
	}
	c.StateInterval = 5 * time.Minute
	c.MetricsInterval = 15 * time.Second
	var errs []error
	if v := strings.TrimSpace(g.Get("instance_name")); v != "" {
		c.Name = v
	}
	c.SpoolDir = strings.TrimSpace(g.Get("spool_dir"))
	if c.SpoolDir == "" {
		errs = append(errs, errors.New("spool_dir: required (a directory the sidecar reads alerts from)"))
	}
	c.ModelFile = strings.TrimSpace(g.Get("model_file"))
	if c.ModelFile != "" {
		if _, err := os.Stat(c.ModelFile); err != nil {
			errs = append(errs, fmt.Errorf("model_file: %w", err))
		}
	}
	c.RulesFile = strings.TrimSpace(g.Get("rules_file"))
	c.Preset = strings.TrimSpace(g.Get("preset"))
	if _, err := fields.Preset(c.Preset); err != nil {
		errs = append(errs, fmt.Errorf("preset: %w", err))
	}
	if v := g.Get("threshold"); v != "" {
		f, err := strconv.ParseFloat(strings.TrimSpace(v), 64)
		if err != nil || f <= 0 || f > 1 {
			errs = append(errs, fmt.Errorf("threshold: %q is not a number in (0, 1]", v))
		}
		c.Threshold = f
	}
	if v := g.Get("max_memory"); v != "" {
		n, err := ParseBytes(v)
		if err != nil || n < 1<<20 {
			errs = append(errs, fmt.Errorf("max_memory: %q is not a size of at least 1MiB (e.g. 256MiB)", v))
		}
		c.MaxMemory = n
	}
	if v := g.Get("spool_max"); v != "" {
		n, err := ParseBytes(v)
		if err != nil || n < 1<<20 {
			errs = append(errs, fmt.Errorf("spool_max: %q is not a size of at least 1MiB (e.g. 1GiB)", v))
		}
		c.SpoolMax = n
	}
	intKey := func(key string, dst *int, lo, hi int) {
		v := g.Get(key)
		if v == "" {
			return
		}
		n, err := strconv.Atoi(strings.TrimSpace(v))
		if err != nil || n < lo || n > hi {
			errs = append(errs, fmt.Errorf("%s: %q is not a whole number from %d to %d", key, v, lo, hi))
			return
		}
		*dst = n
	}
	intKey("min_active_minutes", &c.MinActive, 1, 1440)
	intKey("score_every", &c.ScoreEvery, 1, 1440)
	intKey("alert_buffer", &c.AlertBuffer, 1, 10_000_000)
	// durationKey reads a duration of at least lo; atLeast and e word the
	// error.
	durationKey := func(key string, dst *time.Duration, lo time.Duration, atLeast, e string) {
		v := g.Get(key)
		if v == "" {
			return
		}
		d, err := time.ParseDuration(strings.TrimSpace(v))
		if err != nil || d < lo {
			errs = append(errs, fmt.Errorf("%s: %q is not %s (e.g. %s)", key, v, atLeast, e))
		}
		*dst = d
	}
	// fileKey reads a file path: "off" for none, default name in the spool
	// directory.
	fileKey := func(key string, dst *string, name string) {
		switch v := strings.TrimSpace(g.Get(key)); {
		case strings.EqualFold(v, "off"):
		case v != "":
			*dst = v
		case c.SpoolDir != "":
			*dst = filepath.Join(c.SpoolDir, name)
		}
	}
	durationKey("max_future", &c.MaxFuture, time.Nanosecond, "a positive duration", "10m")
	fileKey("state_file", &c.StateFile, "state.bgs")
	durationKey("state_interval", &c.StateInterval, 10*time.Second, "a duration of at least 10s", "5m")
	fileKey("metrics_file", &c.MetricsFile, "metrics.prom")
	durationKey("metrics_interval", &c.MetricsInterval, time.Second, "a duration of at least 1s", "15s")
	if len(errs) > 0 {
		return c, errors.Join(errs...)
	}
	return c, nil
}

// ParseBytes reads a size such as "512", "64KiB", "256MiB", "1GiB", "1GB".
func ParseBytes(s string) (int64, error) {
	s = strings.TrimSpace(s)
	units := []struct {
		suffix string
		mult   int64
	}{{"KiB", 1 << 10}, {"MiB", 1 << 20}, {"GiB", 1 << 30}, {"KB", 1e3}, {"MB", 1e6}, {"GB", 1e9}, {"K", 1 << 10}, {"M", 1 << 20}, {"G", 1 << 30}, {"B", 1}}
	mult := int64(1)
	for _, u := range units {
		if strings.HasSuffix(s, u.suffix) {
			s, mult = strings.TrimSpace(strings.TrimSuffix(s, u.suffix)), u.mult
			break
		}
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil || n < 0 || n > (1<<62)/mult {
		return 0, fmt.Errorf("bad size %q", s)
	}
	return n * mult, nil
}
