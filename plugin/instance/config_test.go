package instance

import (
	"strings"
	"testing"
	"time"
)

func TestParseConfigDefaults(t *testing.T) {
	c, err := ParseConfig(MapGetter{"spool_dir": "/tmp/s"}, "beacongrid.0")
	if err != nil {
		t.Fatal(err)
	}
	if c.Name != "beacongrid.0" || c.MaxMemory != 256<<20 || c.MinActive != 10 || c.ScoreEvery != 5 || c.MaxFuture != 10*time.Minute || c.Threshold != 0 {
		t.Fatalf("defaults %+v", c)
	}
}

func TestParseConfigValues(t *testing.T) {
	c, err := ParseConfig(MapGetter{"spool_dir": "/tmp/s", "instance_name": "edge1", "threshold": "0.9", "max_memory": "64MiB",
		"min_active_minutes": "10", "score_every": "2", "max_future": "1h", "spool_max": "2GiB"}, "x")
	if err != nil {
		t.Fatal(err)
	}
	if c.Name != "edge1" || c.Threshold != 0.9 || c.MaxMemory != 64<<20 || c.MinActive != 10 || c.ScoreEvery != 2 || c.MaxFuture != time.Hour || c.SpoolMax != 2<<30 {
		t.Fatalf("parsed %+v", c)
	}
}

func TestParseConfigBad(t *testing.T) {
	for _, tc := range []struct {
		props MapGetter
		want  string
	}{
		{MapGetter{}, "spool_dir: required"},
		{MapGetter{"spool_dir": "s", "threshold": "2"}, "threshold"},
		{MapGetter{"spool_dir": "s", "threshold": "abc"}, "threshold"},
		{MapGetter{"spool_dir": "s", "max_memory": "lots"}, "max_memory"},
		{MapGetter{"spool_dir": "s", "max_memory": "10KiB"}, "max_memory"},
		{MapGetter{"spool_dir": "s", "min_active_minutes": "0"}, "min_active_minutes"},
		{MapGetter{"spool_dir": "s", "score_every": "-1"}, "score_every"},
		{MapGetter{"spool_dir": "s", "max_future": "soon"}, "max_future"},
		{MapGetter{"spool_dir": "s", "model_file": "/nonexistent/model.txt"}, "model_file"},
		{MapGetter{"spool_dir": "s", "preset": "cisco"}, `preset: fields: unknown preset "cisco"`},
	} {
		_, err := ParseConfig(tc.props, "x")
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%v: error %v, want %q", tc.props, err, tc.want)
		}
	}
}

func TestParseBytes(t *testing.T) {
	for in, want := range map[string]int64{"512": 512, "64KiB": 64 << 10, "256MiB": 256 << 20, "1GiB": 1 << 30, "2GB": 2e9, "3 M": 3 << 20} {
		if got, err := ParseBytes(in); err != nil || got != want {
			t.Errorf("ParseBytes(%q) = %d, %v; want %d", in, got, err, want)
		}
	}
	for _, bad := range []string{"", "x", "-1", "1TB"} {
		if _, err := ParseBytes(bad); err == nil {
			t.Errorf("ParseBytes(%q) accepted", bad)
		}
	}
}
