package sidecar

import (
	"encoding/json"
	"reflect"
	"strings"
	"testing"

	"github.com/beacongrid/beacongrid/alert"
)

// legacyLine is a as a plugin before the string form wrote it: the matrix
// as a JSON array of 1440 numbers.
func legacyLine(t testing.TB, a alert.Alert) []byte {
	t.Helper()
	var doc map[string]any
	if err := json.Unmarshal(alertLine(t, a), &doc); err != nil {
		t.Fatal(err)
	}
	doc["beacon"].(map[string]any)["matrix"] = []uint16(a.Beacon.Matrix)
	b, err := json.Marshal(doc)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(b), `"matrix":[`) {
		t.Fatal("legacy line has no array matrix")
	}
	return b
}

// decodeAlert reads a document back into an alert.
func decodeAlert(t *testing.T, doc []byte) alert.Alert {
	t.Helper()
	var a alert.Alert
	if err := json.Unmarshal(doc, &a); err != nil {
		t.Fatalf("document does not decode as an alert: %v\n%.300s", err, doc)
	}
	return a
}

// TestUpgradeDeliversLegacySpoolLines: the spool holds lines of an older
// plugin (array matrix), then lines of the new one. The upgraded sidecar
// delivers all of them, none dead-lettered, each with the matrix in the
// string form and every other field as it was.
func TestUpgradeDeliversLegacySpoolLines(t *testing.T) {
	es := newFakeES(t)
	dir := t.TempDir()
	want := upgradeSpool(t, dir, testAlert, 100, 10, 200, 5)
	d, m := newTestDeliverer(t, testConfig(dir, es.URL()))
	drain(t, d)

	if dls := readDeadLetters(t, dir); len(dls) != 0 {
		t.Fatalf("%d dead letters, first %+v", len(dls), dls[0])
	}
	if docs, _, _ := es.snapshot(); docs != len(want) {
		t.Fatalf("%d documents, want %d", docs, len(want))
	}
	for _, a := range want {
		doc, ok := es.doc(a.Event.ID)
		if !ok {
			t.Fatalf("alert %s not indexed", a.Event.ID)
		}
		if !strings.Contains(string(doc), `"matrix":"`) {
			t.Fatalf("alert %s: matrix not in the string form: %.200s", a.Event.ID, doc)
		}
		if got := decodeAlert(t, doc); !reflect.DeepEqual(got, decodeAlert(t, alertLine(t, a))) {
			t.Fatalf("alert %s changed on the way:\n got %+v\nwant %+v", a.Event.ID, got, a)
		}
	}
	if v := value(t, m.Indexed); v != float64(len(want)) {
		t.Errorf("indexed = %v", v)
	}
}

// TestEnrichConvertsLegacyMatrix: with enrichment on, a legacy line is
// converted and enriched; its other fields keep their values.
func TestEnrichConvertsLegacyMatrix(t *testing.T) {
	dir := t.TempDir()
	inv, _ := LoadInventory(writeFile(t, dir, "a.csv", "ip,hostname,owner,criticality\n10.0.0.3,ws-3,ops,low\n"))
	e := NewEnricher(inv, nil, nil)
	a := testAlert(3)
	a.Host, a.Threat = nil, nil
	id, doc, what, err := e.Enrich(legacyLine(t, a))
	if err != nil || id != a.Event.ID || !what.Host {
		t.Fatalf("Enrich: %q %+v %v", id, what, err)
	}
	got := decodeAlert(t, doc)
	if got.Host == nil || got.Host.Name != "ws-3" {
		t.Fatalf("host = %+v", got.Host)
	}
	got.Host = nil
	if !reflect.DeepEqual(got, decodeAlert(t, alertLine(t, a))) {
		t.Fatalf("converted alert differs:\n got %+v\nwant %+v", got, a)
	}
	// A line in the string form is carried byte for byte.
	line := alertLine(t, a)
	if _, doc, _, _ := (*Enricher)(nil).Enrich(line); string(doc) != string(line) {
		t.Fatal("a string-form line was re-encoded")
	}
}

// TestBadMatricesAreDeadLettered: a matrix that is neither the string form
// nor a legacy array of 1440 uint16 is a malformed line, with an error
// naming beacon.matrix; a missing or null matrix is not.
func TestBadMatricesAreDeadLettered(t *testing.T) {
	es := newFakeES(t)
	dir := t.TempDir()
	bad := map[string]string{
		`{"event":{"id":"m1"},"beacon":{"matrix":"1,2"}}`:                                         "fill 2 minutes",
		`{"event":{"id":"m2"},"beacon":{"matrix":5}}`:                                             "is a JSON number",
		`{"event":{"id":"m3"},"beacon":{"matrix":[1,2,3]}}`:                                       "array of 3 numbers",
		`{"event":{"id":"m4"},"beacon":{"matrix":"0*1440"}}`:                                      "count is not",
		`{"event":{"id":"m5"},"beacon":{"matrix":{"a":1}}}`:                                       "is a JSON object",
		`{"event":{"id":"m6"},"beacon":{"matrix":[` + strings.Repeat("70000,", 1439) + `70000]}}`: "element 0 (70000) is not a count",
		`{"event":{"id":"m7"},"beacon":{"matrix":[` + strings.Repeat("1,", 1439) + `1.5]}}`:       "element 1439 (1.5)",
	}
	good := []string{
		`{"event":{"id":"g1"},"source":{"ip":"10.0.0.1"},"beacon":{"matrix":null}}`,
		`{"event":{"id":"g2"},"source":{"ip":"10.0.0.2"},"beacon":{}}`,
		`{"event":{"id":"g3"},"source":{"ip":"10.0.0.3"},"beacon":{"matrix":"*1440"}}`,
	}
	var lines [][]byte
	for l := range bad {
		lines = append(lines, []byte(l))
	}
	for _, l := range good {
		lines = append(lines, []byte(l))
	}
	writeSpool(t, dir, lines...)
	d, m := newTestDeliverer(t, testConfig(dir, es.URL()))
	drain(t, d)

	dls := readDeadLetters(t, dir)
	if len(dls) != len(bad) {
		t.Fatalf("%d dead letters, want %d: %+v", len(dls), len(bad), dls)
	}
	for _, dl := range dls {
		want := bad[dl.Line]
		if dl.Reason != ReasonMalformed || !strings.Contains(dl.Error, "beacon.matrix") || !strings.Contains(dl.Error, want) {
			t.Errorf("dead letter %.60s: %s %q, want a beacon.matrix error with %q", dl.Line, dl.Reason, shorten(dl.Error), want)
		}
	}
	for _, id := range []string{"g1", "g2", "g3"} {
		if _, ok := es.doc(id); !ok {
			t.Errorf("%s not indexed", id)
		}
	}
	if v := value(t, m.DeadLettered); v != float64(len(bad)) {
		t.Errorf("dead_lettered = %v", v)
	}
}

// BenchmarkEnrichLine is the sidecar's per-line check on a test alert: the
// JSON parse, event.id and the matrix's validation; for a legacy line also
// the conversion of the array.
func BenchmarkEnrichLine(b *testing.B) {
	for _, bc := range []struct {
		name string
		line []byte
	}{{"string", alertLine(b, testAlert(1))}, {"legacy", legacyLine(b, testAlert(1))}} {
		b.Run(bc.name, func(b *testing.B) {
			b.SetBytes(int64(len(bc.line)))
			b.ReportAllocs()
			for b.Loop() {
				if _, _, _, err := (*Enricher)(nil).Enrich(bc.line); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// upgradeSpool writes n lines of an older plugin (array matrix) of
// mk(from...) into dir's spool, then m new lines from writeAlerts(newFrom),
// and returns every alert written, in spool order.
func upgradeSpool(t *testing.T, dir string, mk func(int) alert.Alert, from, n, newFrom, m int) []alert.Alert {
	t.Helper()
	var want []alert.Alert
	var old [][]byte
	for i := 0; i < n; i++ {
		a := mk(from + i)
		want = append(want, a)
		old = append(old, legacyLine(t, a))
	}
	writeSpool(t, dir, old...)
	return append(want, writeAlerts(t, dir, newFrom, m)...)
}
