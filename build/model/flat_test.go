package model

import (
	"math"
	"math/rand"
	"strings"
	"testing"
)

// flatRows draws rows for m: each feature is one of the model's own split
// thresholds (exactly, or one ulp either side), a value between, or an edge
// value (0, -0, NaN, ±inf, tiny numbers either side of LightGBM's zero
// threshold), so every branch of every split is taken somewhere.
func flatRows(m *Model, n int, seed int64) [][]float64 {
	r := rand.New(rand.NewSource(seed))
	thr := make([][]float64, m.NumFeatures())
	for j := range thr {
		for _, s := range m.flat.splits[m.flat.off[j]:m.flat.off[j+1]] {
			thr[j] = append(thr[j], keyValue(s.key))
		}
	}
	edge := []float64{0, math.Copysign(0, -1), math.NaN(), math.Inf(1), math.Inf(-1),
		1e-35, -1e-35, 5e-36, lgbZero, -lgbZero, 2e-35, 1e308, -1e308}
	rows := make([][]float64, n)
	for i := range rows {
		row := make([]float64, m.NumFeatures())
		for j := range row {
			ts := thr[j]
			switch k := r.Intn(10); {
			case k < 2 || len(ts) == 0:
				row[j] = edge[r.Intn(len(edge))]
			case k < 5:
				row[j] = ts[r.Intn(len(ts))]
			case k < 7:
				row[j] = math.Nextafter(ts[r.Intn(len(ts))], math.Inf(2*r.Intn(2)-1))
			default:
				a, b := ts[r.Intn(len(ts))], ts[r.Intn(len(ts))]
				row[j] = a + (b-a)*r.Float64()
			}
		}
		rows[i] = row
	}
	return rows
}

// keyValue inverts orderKey.
func keyValue(k uint64) float64 {
	if k>>63 != 0 {
		return math.Float64frombits(k ^ 1<<63)
	}
	return math.Float64frombits(^k)
}

// TestOrderKey checks that order keys order numbers as <= does.
func TestOrderKey(t *testing.T) {
	r := rand.New(rand.NewSource(2))
	vals := []float64{0, math.Copysign(0, -1), math.Inf(1), math.Inf(-1), math.MaxFloat64, -math.MaxFloat64,
		math.SmallestNonzeroFloat64, -math.SmallestNonzeroFloat64, 1, -1, 0.5, -0.5}
	for range 200 {
		vals = append(vals, r.NormFloat64()*math.Pow(10, float64(r.Intn(40)-20)))
	}
	for _, a := range vals {
		if a != 0 && keyValue(orderKey(a)) != a {
			t.Fatalf("keyValue(orderKey(%v)) = %v", a, keyValue(orderKey(a)))
		}
		for _, b := range vals {
			if (a <= b) != (orderKey(a) <= orderKey(b)) {
				t.Fatalf("%v <= %v is %v, keys %d <= %d", a, b, a <= b, orderKey(a), orderKey(b))
			}
		}
	}
}

// TestFlatMatchesLeaves checks that the flat evaluator gives exactly
// leaves' score, bit for bit, for the default model, on rows that hit every
// split's threshold and edge values.
func TestFlatMatchesLeaves(t *testing.T) {
	m := mustDefault(t)
	if m.flat == nil {
		t.Fatal("default model: not compiled to the flat layout")
	}
	if len(m.flat.base) != m.raw.NEstimators() {
		t.Fatalf("%d flat trees, leaves has %d", len(m.flat.base), m.raw.NEstimators())
	}
	for i, row := range append(flatRows(m, 20000, 1), sampleRows(t, m)...) {
		got, want := m.predict(row), m.predictLeaves(row)
		if math.Float64bits(got) != math.Float64bits(want) {
			t.Fatalf("row %d %v: flat %.17g, leaves %.17g", i, row, got, want)
		}
	}
}

// TestFlatDeclines checks which models the flat layout refuses: one whose
// splits treat NaN as missing (the parity model; it is scored by leaves,
// and TestParity checks it), one with a categorical split, and model text
// whose trees are not trees.
func TestFlatDeclines(t *testing.T) {
	pm, err := Load("testdata/parity_model.txt", "testdata/parity_model.json")
	if err != nil {
		t.Fatal(err)
	}
	if pm.flat != nil {
		t.Errorf("parity model (NaN as missing) compiled to the flat layout")
	}
	s := string(defaultText)
	nf, nt := mustDefault(t).NumFeatures(), mustDefault(t).raw.NEstimators()
	if _, err := compileFlat(defaultText, nf, nt); err != nil {
		t.Fatalf("default model text: %v", err)
	}
	i := strings.Index(s, "\nleft_child=")
	j := strings.Index(s[i+1:], "\n") + i + 1
	f := strings.Fields(strings.TrimPrefix(s[i+1:j], "left_child="))
	f[0] = "0" // the root's left child is the root: a cycle
	bad := s[:i+1] + "left_child=" + strings.Join(f, " ") + s[j:]
	if _, err := compileFlat([]byte(bad), nf, nt); err == nil || err == errNotFlat {
		t.Errorf("a tree with a cycle: got %v, want an error", err)
	}
	k := strings.Index(s, "\nnum_cat=0")
	cat := s[:k] + "\nnum_cat=1" + s[k+len("\nnum_cat=0"):]
	if _, err := compileFlat([]byte(cat), nf, nt); err != errNotFlat {
		t.Errorf("num_cat=1: got %v, want errNotFlat", err)
	}
	if _, err := compileFlat(defaultText, nf, nt+1); err == nil {
		t.Errorf("one tree more than the text holds: no error")
	}
}

func BenchmarkPredictLeaves(b *testing.B) {
	m := mustDefault(b)
	rows := sampleRows(b, m)
	b.ReportAllocs()
	var sink float64
	for i := 0; b.Loop(); i++ {
		sink += m.predictLeaves(rows[i%len(rows)])
	}
	_ = sink
}
