package alert

import (
	"encoding/json"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
)

// randomMatrix draws a matrix of one of the shapes alerts have: mostly
// zeros with a period, every minute, long runs, or any uint16 anywhere.
func randomMatrix(r *rand.Rand) Matrix {
	m := make(Matrix, MatrixLen)
	switch r.IntN(5) {
	case 0: // periodic, small counts
		p := 1 + r.IntN(90)
		for i := r.IntN(p); i < MatrixLen; i += p {
			m[i] = uint16(1 + r.IntN(3))
		}
	case 1: // every minute, jittered counts
		for i := range m {
			m[i] = uint16(r.IntN(4))
		}
	case 2: // runs of equal values
		for i := 0; i < MatrixLen; {
			k := min(1+r.IntN(200), MatrixLen-i)
			v := uint16(r.IntN(3) * r.IntN(70000/3))
			for j := i; j < i+k; j++ {
				m[j] = v
			}
			i += k
		}
	case 3: // the full range, anywhere
		for i := range m {
			if r.IntN(3) == 0 {
				m[i] = uint16(r.Uint32())
			}
		}
	case 4: // the extremes
		for i := range m {
			m[i] = []uint16{0, 1, 9, 10, 65535}[r.IntN(5)]
		}
	}
	return m
}

// TestMatrixRoundTrip is the property: for any matrix, JSON encoding then
// decoding gives it back exactly, through a single JSON string, never
// longer than the legacy array of numbers.
func TestMatrixRoundTrip(t *testing.T) {
	r := rand.New(rand.NewPCG(7, 11))
	for n := 0; n < 3000; n++ {
		m := randomMatrix(r)
		b, err := json.Marshal(m)
		if err != nil {
			t.Fatal(err)
		}
		var s string
		if err := json.Unmarshal(b, &s); err != nil {
			t.Fatalf("not a JSON string: %.80s: %v", b, err)
		}
		var got Matrix
		if err := json.Unmarshal(b, &got); err != nil {
			t.Fatalf("decode %.80s: %v", b, err)
		}
		if !slices.Equal(got, m) {
			t.Fatalf("round trip differs: %.120s", b)
		}
		legacy, _ := json.Marshal([]uint16(m))
		if len(b) > len(legacy) {
			t.Fatalf("encoding %d bytes, longer than the array (%d)", len(b), len(legacy))
		}
	}
}

// f-tests of the grammar: the documented examples, in both directions.
func TestMatrixExamples(t *testing.T) {
	f := func(want string, set func(m Matrix)) {
		t.Helper()
		m := make(Matrix, MatrixLen)
		set(m)
		b, err := AppendMatrix(nil, m)
		if err != nil {
			t.Fatal(err)
		}
		if string(b) != want {
			t.Fatalf("encoded %q, want %q", b, want)
		}
		got := make([]uint16, MatrixLen)
		if err := ParseMatrix(got, []byte(want)); err != nil {
			t.Fatalf("parse %q: %v", want, err)
		}
		if !slices.Equal(got, m) {
			t.Fatalf("parse %q: cells differ", want)
		}
	}
	f("*1440", func(Matrix) {})
	f("1*1440", func(m Matrix) {
		for i := range m {
			m[i] = 1
		}
	})
	f("3*60,*1380", func(m Matrix) {
		for i := 0; i < 60; i++ {
			m[i] = 3
		}
	})
	f("1,,,,2,*1435", func(m Matrix) { m[0], m[4] = 1, 2 })
	// Short runs stay plain: ",," (two zeros) is shorter than "*2", "7,7"
	// is as short as "7*2".
	f(",,65535,7,7,*1435", func(m Matrix) { m[2], m[3], m[4] = 65535, 7, 7 })
	f("*1439,1", func(m Matrix) { m[1439] = 1 })
	// A beacon every 5 minutes: the count, then a run of four zeros ("*4"
	// is shorter than the three commas of four plain zeros).
	every5 := strings.TrimSuffix(strings.Repeat("2,*4,", 288), ",")
	f(every5, func(m Matrix) {
		for i := 0; i < MatrixLen; i += 5 {
			m[i] = 2
		}
	})
}

func TestParseMatrixErrors(t *testing.T) {
	f := func(s, want string) {
		t.Helper()
		err := ParseMatrix(make([]uint16, MatrixLen), []byte(s))
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Fatalf("ParseMatrix(%.40q) = %v, want an error with %q", s, err, want)
		}
		if cerr := CheckMatrix([]byte(s)); cerr == nil || cerr.Error() != err.Error() {
			t.Fatalf("CheckMatrix(%.40q) = %v, ParseMatrix says %v", s, cerr, err)
		}
	}
	f("", "fill 1 minutes")
	f("*1439", "fill 1439 minutes")
	f("*1441", "repeat is not")
	f("*1440,", "runs past minute 1439")
	f("0,*1439", "count is not")
	f("01,*1439", "count is not")
	f("65536,*1439", "count is not")
	f("-1,*1439", "count is not")
	f("1*1,*1439", "repeat is not")
	f("1*,*1439", "repeat is not")
	f("*01440", "repeat is not")
	f("1 ,*1439", "count is not")
	f("1**2,*1438", "repeat is not")
	f("[1,2]", "count is not")
	if err := ParseMatrix(make([]uint16, 10), []byte("*1440")); err == nil {
		t.Fatal("decoding into 10 cells succeeded")
	}
}

func TestMatrixJSON(t *testing.T) {
	// The legacy array form is read, so older spool lines still decode.
	legacy := make([]uint16, MatrixLen)
	legacy[3], legacy[1439] = 40000, 1
	b, _ := json.Marshal(legacy)
	var m Matrix
	if err := json.Unmarshal(b, &m); err != nil || !slices.Equal(m, legacy) {
		t.Fatalf("legacy array: %v", err)
	}
	// null is nil, both ways.
	if err := json.Unmarshal([]byte("null"), &m); err != nil || m != nil {
		t.Fatalf("null: %v %v", m, err)
	}
	if b, _ := json.Marshal(Beacon{}); strings.Contains(string(b), "matrix") {
		t.Fatalf("a beacon without matrix has one: %s", b)
	}
	// A JSON string with escapes is unquoted first.
	if err := json.Unmarshal([]byte(`"\u002a1440"`), &m); err != nil || len(m) != MatrixLen || m[0] != 0 {
		t.Fatalf("escaped string: %v", err)
	}
	for _, bad := range []string{`[1,2,3]`, `"1"`, `5`, `{}`, `true`, `[70000]`} {
		if err := json.Unmarshal([]byte(bad), &m); err == nil || !strings.Contains(err.Error(), "matrix") {
			t.Errorf("Unmarshal(%s) = %v, want a beacon.matrix error", bad, err)
		}
	}
	if _, err := json.Marshal(Matrix{1, 2}); err == nil {
		t.Fatal("a 2-cell matrix was encoded")
	}
}

// FuzzParseMatrix: any input either fails with an error or decodes to a
// matrix whose encoding decodes to the same cells (and is never longer
// than the input: the encoder's form is the shortest the grammar allows
// for each run).
func FuzzParseMatrix(f *testing.F) {
	r := rand.New(rand.NewPCG(1, 2))
	for i := 0; i < 8; i++ {
		b, _ := AppendMatrix(nil, randomMatrix(r))
		f.Add(b)
	}
	f.Add([]byte("*1440"))
	f.Add([]byte("1,1,1*1438"))
	f.Fuzz(func(t *testing.T, s []byte) {
		m := make([]uint16, MatrixLen)
		err := ParseMatrix(m, s)
		if cerr := CheckMatrix(s); (cerr == nil) != (err == nil) {
			t.Fatalf("CheckMatrix(%q) = %v, ParseMatrix says %v", s, cerr, err)
		}
		if err != nil {
			return
		}
		enc, err := AppendMatrix(nil, m)
		if err != nil {
			t.Fatal(err)
		}
		if len(enc) > len(s) {
			t.Fatalf("canonical form %q is longer than the input %q", enc, s)
		}
		back := make([]uint16, MatrixLen)
		if err := ParseMatrix(back, enc); err != nil || !slices.Equal(back, m) {
			t.Fatalf("re-encoding %q -> %q does not round trip: %v", s, enc, err)
		}
	})
}

func TestParseMatrixAllocatesNothing(t *testing.T) {
	m := randomMatrix(rand.New(rand.NewPCG(3, 4)))
	s, _ := AppendMatrix(nil, m)
	dst := make([]uint16, MatrixLen)
	if n := testing.AllocsPerRun(100, func() { _ = ParseMatrix(dst, s) }); n != 0 {
		t.Fatalf("%v allocations per parse", n)
	}
}

// BenchmarkMatrix encodes and decodes the matrix of a beacon every 5
// minutes with small counts (288 active minutes).
func BenchmarkMatrix(b *testing.B) {
	m := make(Matrix, MatrixLen)
	for i := 0; i < MatrixLen; i += 5 {
		m[i] = uint16(1 + i%3)
	}
	s, _ := AppendMatrix(nil, m)
	b.Run("append", func(b *testing.B) {
		b.SetBytes(int64(len(s)))
		b.ReportAllocs()
		buf := make([]byte, 0, 4096)
		for b.Loop() {
			buf, _ = AppendMatrix(buf[:0], m)
		}
	})
	b.Run("check", func(b *testing.B) {
		b.SetBytes(int64(len(s)))
		b.ReportAllocs()
		for b.Loop() {
			if err := CheckMatrix(s); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("marshal", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := json.Marshal(m); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("parse", func(b *testing.B) {
		b.SetBytes(int64(len(s)))
		b.ReportAllocs()
		dst := make([]uint16, MatrixLen)
		for b.Loop() {
			if err := ParseMatrix(dst, s); err != nil {
				b.Fatal(err)
			}
		}
	})
}
