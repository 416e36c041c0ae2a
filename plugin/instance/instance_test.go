package instance

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/tinylib/msgp/msgp"

	"github.com/beacongrid/beacongrid/detect"
	"github.com/beacongrid/beacongrid/internal/flbtest"
)

// regularModel scores by the share of regular gaps (a stand-in for the
// trained model, so these tests do not depend on its quality).
type regularModel struct{}

func (regularModel) Predict(f []float64) float64 { return f[8] }
func (regularModel) Version() string             { return "test" }
func (regularModel) Threshold() float64          { return 0.95 }
func (regularModel) FeatureNames() []string      { return detect.FeatureNames }

func newInstance(t *testing.T) (*Instance, string) {
	t.Helper()
	dir := t.TempDir()
	cfg, err := ParseConfig(MapGetter{"spool_dir": dir}, "test")
	if err != nil {
		t.Fatal(err)
	}
	in, err := New(cfg, NewLogger("test"), regularModel{})
	if err != nil {
		t.Fatal(err)
	}
	return in, dir
}

func zeek(ts time.Time, src, host string) map[string]any {
	return map[string]any{"ts": float64(ts.UnixNano()) / 1e9, "uid": "C1", "id.orig_h": src, "id.orig_p": 50000,
		"id.resp_h": "203.0.113.5", "id.resp_p": 80, "method": "GET", "host": host, "uri": "/", "request_body_len": 0}
}

func encode(t *testing.T, evs []flbtest.Event, opts ...flbtest.ChunkOption) []byte {
	t.Helper()
	b, err := flbtest.EncodeChunk(evs, opts...)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func spooled(t *testing.T, dir string) []map[string]any {
	t.Helper()
	var out []map[string]any
	m, _ := filepath.Glob(filepath.Join(dir, "seg-*.jsonl"))
	for _, p := range m {
		b, _ := os.ReadFile(p)
		for _, l := range strings.Split(strings.TrimSpace(string(b)), "\n") {
			if l == "" {
				continue
			}
			var a map[string]any
			if err := json.Unmarshal([]byte(l), &a); err != nil {
				t.Fatal(err)
			}
			out = append(out, a)
		}
	}
	return out
}

func TestFlushCountsAndAlerts(t *testing.T) {
	in, dir := newInstance(t)
	start := time.Now().Add(-6 * time.Hour).Truncate(time.Hour)
	var evs []flbtest.Event
	for i := 0; i < 240; i++ {
		ts := start.Add(time.Duration(i) * time.Minute)
		evs = append(evs, flbtest.Event{Time: ts, Record: zeek(ts, "10.0.0.7", "c2.example")})
	}
	for _, format := range []flbtest.ChunkOption{flbtest.WithFormat(flbtest.FormatV2), flbtest.WithFormat(flbtest.FormatLegacy)} {
		if rc := in.Flush(encode(t, evs[:120], format), "zeek.http"); rc != FLBOK {
			t.Fatalf("rc %d", rc)
		}
	}
	if rc := in.Flush(encode(t, evs[120:]), "zeek.http"); rc != FLBOK {
		t.Fatalf("rc %d", rc)
	}
	st := in.Stats()
	in.Close()
	if st.Detector.Events != 360 || st.Cache.Counted != 360 {
		t.Fatalf("events %d counted %d, want 360", st.Detector.Events, st.Cache.Counted)
	}
	alerts := spooled(t, dir)
	if len(alerts) != 1 {
		t.Fatalf("%d alerts spooled, want 1", len(alerts))
	}
	if alerts[0]["source"].(map[string]any)["ip"] != "10.0.0.7" {
		t.Fatalf("alert %v", alerts[0])
	}
}

// Bad input is counted and skipped; the flush returns OK and nothing panics.
func TestFlushBadInput(t *testing.T) {
	in, _ := newInstance(t)
	defer in.Close()
	now := time.Now().Add(-time.Hour)
	good := encode(t, []flbtest.Event{{Time: now, Record: zeek(now, "10.0.0.1", "a.example")}})

	// A record that is not a map: [[ts, {}], "text"].
	notMap := msgp.AppendArrayHeader(nil, 2)
	notMap = msgp.AppendArrayHeader(notMap, 2)
	notMap = msgp.AppendInt64(notMap, now.Unix())
	notMap = msgp.AppendMapHeader(notMap, 0)
	notMap = msgp.AppendString(notMap, "text")

	mistyped := encode(t, []flbtest.Event{
		{Time: now, Record: map[string]any{"ts": "yesterday", "id.orig_h": "10.0.0.1", "host": "a.example"}},
		{Time: now, Record: map[string]any{"ts": 1.0, "id.orig_h": 42, "host": "a.example"}},
		{Time: now, Record: map[string]any{"id.orig_h": "10.0.0.1", "id.resp_h": "1.2.3.4", "id.resp_p": "eighty"}},
		{Time: now, Record: map[string]any{"host": "a.example"}}, // no source
	})
	future := encode(t, []flbtest.Event{{Time: now, Record: zeek(now.Add(48*time.Hour), "10.0.0.1", "a.example")}})

	chunks := map[string][]byte{
		"truncated":   good[:len(good)-7],
		"garbage":     {0xc1, 0xff, 0x00, 0x13},
		"not a map":   notMap,
		"mistyped":    mistyped,
		"future":      future,
		"good after":  append(append([]byte{}, good...), 0xc1),
		"empty":       {},
		"top-level 7": {0x07},
	}
	for name, c := range chunks {
		if rc := in.Flush(c, "t"); rc != FLBOK {
			t.Fatalf("%s: rc %d, want FLB_OK", name, rc)
		}
	}
	st := in.Stats()
	if st.BadChunks < 3 {
		t.Errorf("bad chunks %d, want >= 3 (truncated, garbage, trailing byte)", st.BadChunks)
	}
	if st.BadEvents < 2 {
		t.Errorf("bad events %d, want >= 2 (not a map, top-level int)", st.BadEvents)
	}
	if st.BadFields < 3 {
		t.Errorf("bad fields %d, want >= 3", st.BadFields)
	}
	if st.Cache.TooNew != 1 {
		t.Errorf("too new %d, want 1", st.Cache.TooNew)
	}
	// The good record before the trailing byte, and the record whose
	// mistyped time fell back to Fluent Bit's timestamp.
	if st.Cache.Counted != 2 {
		t.Errorf("counted %d, want 2", st.Cache.Counted)
	}
}
