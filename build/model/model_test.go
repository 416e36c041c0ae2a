package model

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io/fs"
	"math"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
)

func mustDefault(t testing.TB) *Model {
	t.Helper()
	m, err := Default()
	if err != nil {
		t.Fatalf("Default: %v", err)
	}
	return m
}

// sampleRows returns feature rows from the committed parity CSV (it has the
// same 16 synthetic features as the bootstrap default model) that fit m.
func sampleRows(t testing.TB, m *Model) [][]float64 {
	t.Helper()
	names, _, rows, _, err := readParityCSV("testdata/parity.csv")
	if err != nil {
		t.Fatal(err)
	}
	if m.CheckFeatures(names) != nil {
		// A retrained default model with other features: use its baseline
		// and perturbations of it.
		base := make([]float64, m.NumFeatures())
		copy(base, m.baseline)
		rows = nil
		for i := range 64 {
			r := append([]float64(nil), base...)
			for j := range r {
				if math.IsNaN(r[j]) {
					r[j] = 0
				}
				r[j] *= 1 + float64((i*7+j*3)%11-5)/10
			}
			rows = append(rows, r)
		}
	}
	return rows
}

func TestDefault(t *testing.T) {
	m := mustDefault(t)
	m2 := mustDefault(t)
	if m != m2 {
		t.Error("Default returned two different models")
	}
	if m.Version() == "" || m.NumFeatures() == 0 || len(m.FeatureNames()) != m.NumFeatures() {
		t.Fatalf("version %q, %d features, names %v", m.Version(), m.NumFeatures(), m.FeatureNames())
	}
	if th := m.Threshold(); !(th > 0 && th <= 1) {
		t.Errorf("threshold %v outside (0, 1]", th)
	}
	md := m.Metadata()
	if md.LightGBM != "3.3.5" {
		t.Errorf("trained with lightgbm %q, want 3.3.5", md.LightGBM)
	}
	if !strings.HasSuffix(md.Version, md.ModelSHA256[:12]) {
		t.Errorf("version %q does not end with the model hash %q", md.Version, md.ModelSHA256[:12])
	}
	// The copies handed out must not alias the model.
	names := m.FeatureNames()
	names[0] = "mutated"
	md.Features[0] = "mutated"
	if m.FeatureNames()[0] == "mutated" {
		t.Error("FeatureNames or Metadata aliases the model's feature names")
	}
	for _, row := range sampleRows(t, m) {
		if p := m.Predict(row); !(p >= 0 && p <= 1) {
			t.Fatalf("Predict = %v, not a probability", p)
		}
	}
}

func TestDefaultMatchesMetadataHash(t *testing.T) {
	m := mustDefault(t)
	txt, err := os.ReadFile("beacongrid.txt")
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(txt, defaultText) {
		t.Fatal("embedded text differs from beacongrid.txt")
	}
	sum := sha256Hex(txt)
	if m.Metadata().ModelSHA256 != sum {
		t.Errorf("beacongrid.json model_sha256 %s, beacongrid.txt hashes to %s: the two files are from different trainings",
			m.Metadata().ModelSHA256, sum)
	}
}

func TestLoadErrors(t *testing.T) {
	txt, err := os.ReadFile("testdata/parity_model.txt")
	if err != nil {
		t.Fatal(err)
	}
	meta, err := os.ReadFile("testdata/parity_model.json")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := LoadBytes(txt, meta); err != nil {
		t.Fatalf("good model: %v", err)
	}
	metaWith := func(edit func(map[string]any)) []byte {
		var v map[string]any
		if err := json.Unmarshal(meta, &v); err != nil {
			t.Fatal(err)
		}
		edit(v)
		b, err := json.Marshal(v)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	cut := bytes.Index(txt, []byte("Tree=1\n"))
	cases := []struct {
		name      string
		txt, meta []byte
		is        error
		msg       string
	}{
		{"v4 header", bytes.Replace(txt, []byte("version=v3"), []byte("version=v4"), 1), meta, ErrUnsupportedFormat, "LightGBM 3.3.x"},
		{"v1 header", bytes.Replace(txt, []byte("version=v3"), []byte("version=v1"), 1), meta, ErrUnsupportedFormat, "version=v1"},
		{"no version", bytes.Replace(txt, []byte("version=v3\n"), nil, 1), meta, ErrInvalidModel, "no version"},
		{"empty text", nil, meta, ErrInvalidModel, "empty"},
		{"not lightgbm", []byte("{\"name\":\"tree\"}\n\nx"), meta, ErrUnsupportedFormat, "does not start"},
		{"garbage", []byte("\x00\x01binary junk"), meta, ErrInvalidModel, "no header block"},
		{"truncated", txt[:cut+100], meta, ErrInvalidModel, "truncated"},
		{"corrupt tree", bytes.Replace(txt, []byte("leaf_value="), []byte("leaf_value=x"), 1), meta, ErrInvalidModel, "LightGBM model text"},
		{"regression objective", bytes.Replace(txt, []byte("objective=binary sigmoid:1"), []byte("objective=regression"), 1), meta, ErrInvalidModel, "not a binary classifier"},
		{"bad json", txt, []byte("{"), ErrInvalidModel, "metadata JSON"},
		{"no version in meta", txt, metaWith(func(v map[string]any) { delete(v, "version") }), ErrInvalidModel, "no version"},
		{"feature count", txt, metaWith(func(v map[string]any) {
			v["features"] = v["features"].([]any)[:3]
			v["baseline"] = map[string]any{}
		}), ErrInvalidModel, "the metadata lists 3"},
		{"feature order", txt, metaWith(func(v map[string]any) {
			f := v["features"].([]any)
			f[0], f[1] = f[1], f[0]
		}), ErrInvalidModel, "feature 0"},
		{"duplicate feature", txt, metaWith(func(v map[string]any) {
			f := v["features"].([]any)
			f[1] = f[0]
		}), ErrInvalidModel, "repeated"},
		{"negative threshold", txt, metaWith(func(v map[string]any) { v["threshold"] = -0.5 }), ErrInvalidModel, "threshold"},
		{"unknown baseline", txt, metaWith(func(v map[string]any) { v["baseline"].(map[string]any)["nope"] = 1.0 }), ErrInvalidModel, "nope"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			m, err := LoadBytes(c.txt, c.meta)
			if err == nil {
				t.Fatalf("loaded %v, want an error", m.Version())
			}
			if !errors.Is(err, c.is) {
				t.Errorf("error %q does not wrap %v", err, c.is)
			}
			if !strings.Contains(err.Error(), c.msg) {
				t.Errorf("error %q does not mention %q", err, c.msg)
			}
		})
	}
}

func TestLoadFiles(t *testing.T) {
	m, err := Load("testdata/parity_model.txt", "testdata/parity_model.json")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(m.Version(), "parity-test-") {
		t.Errorf("version %q", m.Version())
	}
	dir := t.TempDir()
	_, err = Load(filepath.Join(dir, "missing.txt"), "testdata/parity_model.json")
	if !errors.Is(err, fs.ErrNotExist) || !strings.Contains(err.Error(), "missing.txt") {
		t.Errorf("missing text: %v", err)
	}
	_, err = Load("testdata/parity_model.txt", filepath.Join(dir, "missing.json"))
	if !errors.Is(err, fs.ErrNotExist) || !strings.Contains(err.Error(), "missing.json") {
		t.Errorf("missing metadata: %v", err)
	}
	bad := filepath.Join(dir, "v4.txt")
	txt, _ := os.ReadFile("testdata/parity_model.txt")
	if err := os.WriteFile(bad, bytes.Replace(txt, []byte("version=v3"), []byte("version=v4"), 1), 0o644); err != nil {
		t.Fatal(err)
	}
	_, err = Load(bad, "testdata/parity_model.json")
	if !errors.Is(err, ErrUnsupportedFormat) || !strings.Contains(err.Error(), bad) {
		t.Errorf("v4 file: %v", err)
	}
}

func TestCheckFeatures(t *testing.T) {
	m := mustDefault(t)
	names := m.FeatureNames()
	if err := m.CheckFeatures(names); err != nil {
		t.Fatal(err)
	}
	if err := m.CheckFeatures(names[1:]); err == nil {
		t.Error("shorter list accepted")
	}
	names[2], names[3] = names[3], names[2]
	if err := m.CheckFeatures(names); err == nil || !strings.Contains(err.Error(), "feature 2") {
		t.Errorf("swapped names: %v", err)
	}
}

func TestPredictWrongLengthPanics(t *testing.T) {
	m := mustDefault(t)
	for _, n := range []int{0, m.NumFeatures() - 1, m.NumFeatures() + 1} {
		func() {
			defer func() {
				if recover() == nil {
					t.Errorf("Predict with %d features did not panic", n)
				}
			}()
			m.Predict(make([]float64, n))
		}()
	}
}

func TestPredictDoesNotAllocate(t *testing.T) {
	if raceEnabled {
		t.Skip("allocation counts are meaningless under -race")
	}
	m := mustDefault(t)
	row := sampleRows(t, m)[0]
	if n := testing.AllocsPerRun(1000, func() { m.Predict(row) }); n != 0 {
		t.Errorf("Predict allocates %v times per call", n)
	}
	dst := make([]Reason, 0, 3)
	if n := testing.AllocsPerRun(200, func() { dst = m.Explain(row, 3, dst) }); n != 0 {
		t.Errorf("Explain with a reused dst allocates %v times per call", n)
	}
}

func TestPredictConcurrent(t *testing.T) {
	m := mustDefault(t)
	rows := sampleRows(t, m)
	rows = rows[:min(len(rows), 150)]
	want := make([]float64, len(rows))
	for i, r := range rows {
		want[i] = m.Predict(r)
	}
	var wg sync.WaitGroup
	errs := make(chan string, 6)
	for g := range 6 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for rep := range 4 {
				for i := range rows {
					k := (i + g*31 + rep) % len(rows)
					if got := m.Predict(rows[k]); got != want[k] {
						errs <- "concurrent Predict differs from serial"
						return
					}
				}
				m.Explain(rows[rep%len(rows)], 3, nil)
			}
		}()
	}
	wg.Wait()
	close(errs)
	for e := range errs {
		t.Error(e)
	}
}

func TestExplain(t *testing.T) {
	m := mustDefault(t)
	// Find a row that scores high, so there is something to explain.
	var row []float64
	for _, r := range sampleRows(t, m) {
		if m.Predict(r) >= m.Threshold() {
			row = r
			break
		}
	}
	if row == nil {
		t.Skip("no sample row reaches the threshold of this model")
	}
	before := append([]float64(nil), row...)
	base := m.Predict(row)
	all := m.Explain(row, 0, nil)
	if len(all) == 0 {
		t.Fatalf("no reasons for a row scoring %v", base)
	}
	idx := make(map[string]int)
	for i, n := range m.FeatureNames() {
		idx[n] = i
	}
	for k, r := range all {
		if !(r.Contribution > 0) {
			t.Errorf("reason %d %+v: contribution not positive", k, r)
		}
		if k > 0 && r.Contribution > all[k-1].Contribution {
			t.Errorf("reasons not sorted: %+v after %+v", r, all[k-1])
		}
		i := idx[r.Feature]
		if r.Value != row[i] {
			t.Errorf("reason %+v: value, want %v", r, row[i])
		}
		x := append([]float64(nil), row...)
		x[i] = m.baseline[i]
		if want := base - m.Predict(x); r.Contribution != want {
			t.Errorf("reason %+v: contribution, want %v", r, want)
		}
	}
	for i := range row {
		if math.Float64bits(row[i]) != math.Float64bits(before[i]) {
			t.Fatal("Explain modified its input")
		}
	}
	top := m.Explain(row, 2, make([]Reason, 5))
	if len(top) != min(2, len(all)) {
		t.Fatalf("top 2: got %d reasons", len(top))
	}
	for k := range top {
		if top[k] != all[k] {
			t.Errorf("top[%d] = %+v, want %+v", k, top[k], all[k])
		}
	}
	// NaN and infinite values are never reported (they cannot go into JSON).
	x := append([]float64(nil), row...)
	for i := range x {
		if i%2 == 0 {
			x[i] = math.NaN()
		} else {
			x[i] = math.Inf(1)
		}
	}
	if rs := m.Explain(x, 0, nil); len(rs) != 0 {
		t.Errorf("reasons for non-finite values: %+v", rs)
	}
}

func TestInsertReason(t *testing.T) {
	var rs []Reason
	for i, c := range []float64{0.1, 0.5, 0.3, 0.5, 0.05, 0.4} {
		rs = insertReason(rs, 3, Reason{Feature: string(rune('a' + i)), Contribution: c})
	}
	got := ""
	for _, r := range rs {
		got += r.Feature
	}
	if got != "bdf" {
		t.Errorf("top 3 = %q, want \"bdf\" (ties keep feature order)", got)
	}
}

func BenchmarkPredict(b *testing.B) {
	m := mustDefault(b)
	rows := sampleRows(b, m)
	b.ReportAllocs()
	var sink float64
	for i := 0; b.Loop(); i++ {
		sink += m.Predict(rows[i%len(rows)])
	}
	_ = sink
}

func BenchmarkPredictParallel(b *testing.B) {
	m := mustDefault(b)
	rows := sampleRows(b, m)
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		i := 0
		var sink float64
		for pb.Next() {
			sink += m.Predict(rows[i%len(rows)])
			i++
		}
		_ = sink
	})
}

func BenchmarkExplain(b *testing.B) {
	m := mustDefault(b)
	rows := sampleRows(b, m)
	dst := make([]Reason, 0, 5)
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		dst = m.Explain(rows[i%len(rows)], 5, dst)
	}
}

func BenchmarkLoadDefault(b *testing.B) {
	b.ReportAllocs()
	for b.Loop() {
		if _, err := LoadBytes(defaultText, defaultMeta); err != nil {
			b.Fatal(err)
		}
	}
}

func sha256Hex(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}
