package instance

import (
	"math"
	"math/rand/v2"
	"reflect"
	"testing"

	"github.com/beacongrid/beacongrid/fields"
	"github.com/beacongrid/beacongrid/plugin/chunk"
)

// mapEventRef is mapEvent as a loop over the slots, every value through
// setValue: the definition mapEvent's inline cases must agree with.
func mapEventRef(fe *fields.Event, fs []chunk.Value) (bad int, skip bool) {
	for slot := 0; slot < fields.NumSlots; slot++ {
		v := &fs[slot]
		if v.Kind == chunk.KindNone || v.Kind == chunk.KindNil {
			continue
		}
		if setValue(fe, slot, v) != nil {
			bad++
			skip = skip || slot != fields.Time && slot != fields.Size
		}
	}
	return bad, skip
}

// valuesOfEveryKind are decoded values of every kind, with the edges of
// the inline cases (seconds in [0, 1e12], ports up to 65535, sizes up to
// 2^62) on both sides.
var valuesOfEveryKind = func() []chunk.Value {
	vs := []chunk.Value{{Kind: chunk.KindNone}, {Kind: chunk.KindNil}, {Kind: chunk.KindBool, Bool: true}, {Kind: chunk.Kind(99)}}
	for _, s := range []string{"", "10.0.0.1", "example.com", "443", "-", "1419360720.5", "2024-01-02T03:04:05Z", "x,http", "http"} {
		vs = append(vs, chunk.Value{Kind: chunk.KindStr, Str: []byte(s)})
	}
	for _, u := range []uint64{0, 1, 80, 65535, 65536, 1700000000, 1 << 62, 1<<62 + 1, math.MaxUint64} {
		vs = append(vs, chunk.Value{Kind: chunk.KindUint, Uint: u})
	}
	for _, i := range []int64{-1, -65535, math.MinInt64} {
		vs = append(vs, chunk.Value{Kind: chunk.KindInt, Int: i})
	}
	for _, f := range []float64{0, 0.5, 1419360720.999, 1e12, 1e12 + 1, -0.5, -1e12, -1e13, 443, 70000, math.NaN(), math.Inf(1), math.Inf(-1)} {
		vs = append(vs, chunk.Value{Kind: chunk.KindFloat, Float: f})
	}
	return append(vs, chunk.Value{Kind: chunk.KindTime, Sec: 1700000000, Nsec: 5})
}()

// mapEvent sets the same Event, counts the same bad values and skips the
// same records as setValue slot by slot: every kind of value in every
// slot, and random records of them.
func TestMapEventMatchesSetValue(t *testing.T) {
	check := func(fs []chunk.Value) {
		t.Helper()
		var fast, ref fields.Event
		fast.Reset()
		ref.Reset()
		fb, fsk := mapEvent(&fast, fs)
		rb, rsk := mapEventRef(&ref, fs)
		if fb != rb || fsk != rsk || !reflect.DeepEqual(fast, ref) {
			t.Fatalf("values %+v: mapEvent %+v bad %d skip %v; setValue %+v bad %d skip %v", fs, fast, fb, fsk, ref, rb, rsk)
		}
	}
	for slot := 0; slot < fields.NumSlots; slot++ {
		for _, v := range valuesOfEveryKind {
			fs := make([]chunk.Value, fields.NumSlots)
			fs[slot] = v
			check(fs)
		}
	}
	rnd := rand.New(rand.NewPCG(1, 2))
	for i := 0; i < 20000; i++ {
		fs := make([]chunk.Value, fields.NumSlots)
		for slot := range fs {
			fs[slot] = valuesOfEveryKind[rnd.IntN(len(valuesOfEveryKind))]
		}
		check(fs)
	}
}
