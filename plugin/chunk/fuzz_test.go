package chunk

import (
	"errors"
	"fmt"
	"math"
	"strings"
	"testing"
	"time"
	"unsafe"

	"github.com/tinylib/msgp/msgp"
)

// fuzzKeys covers flat, nested and aliased paths.
var fuzzKeys = NewKeySet([][]string{
	{"v", "a.b"},
	{"host", "id.resp_h"},
	{"id.orig_h", "source.ip"},
	{"a.b.c.d.e.f.g.h", ""},
})

func fuzzSeeds() [][]byte {
	good := chunkOf(
		v2(et{1700000000, 5}, obj{"v", "x", "host", "h", "id", obj{"orig_h", "1.2.3.4", "resp_h", nil}}),
		legacy(uint64(1700000001), obj{"id.orig_h", []byte("b"), "n", -3, "f", 1.5}),
		v2(et{0xFFFFFFFF, 0}, obj{"resource", obj{"k", "v"}}),
		legacy(1.25, w32{obj{w16{"v"}, w32{"s"}, "t", true, "e", et{1, 2}}}),
		v2(et{0xFFFFFFFE, 0}, obj{}),
	)
	seeds := [][]byte{
		nil,
		good,
		good[:len(good)/2],
		good[:len(good)-1],
		chunkOf(w32{arr{w32{arr{et{1, 0}, obj{}}}, obj{"a", obj{"b", obj{"c", obj{"d", obj{"e", obj{"f", obj{"g", obj{"h", obj{"i", 1}}}}}}}}}}}),
		chunkOf("junk", obj{"v", 1}, arr{1, 2, 3}, legacy(-1, "x"), v2(et{1, 0}, arr{})),
		chunkOf(extRaw([]byte{0xc7, 12}, -1, make([]byte, 12)), extRaw([]byte{0xd6}, 0, []byte{1, 2, 3, 4})),
		chunkOf(v2(et{1, 0}, obj{strings.Repeat("k", 300), obj{"x", 1}, 1, 2, nil, 3})),
		zeekChunk(3, false),
		zeekChunk(2, true),
		{0xc1},
		{0xdd, 0xff, 0xff, 0xff, 0xff},
		{0x92, 0x92, 0xd7, 0x00, 0, 0, 0, 1, 0, 0, 0, 0, 0x80, 0xdf, 0xff, 0xff, 0xff, 0xff},
		{0x92, 0xcb, 0x7f, 0xf8, 0, 0, 0, 0, 0, 1, 0x80},
	}
	// A little pseudo-random noise.
	x := uint32(1)
	for i := 0; i < 4; i++ {
		var b []byte
		for j := 0; j < 64; j++ {
			x = x*1664525 + 1013904223
			b = append(b, byte(x>>24))
		}
		seeds = append(seeds, b)
	}
	return seeds
}

// FuzzReader checks that no input panics, that every Str points into the
// chunk, that Err agrees with msgp.Skip about well-formedness, that a
// chunk cut at any byte delivers exactly the events wholly before the cut,
// and that the scanner delivers what the msgp-only path does.
func FuzzReader(f *testing.F) {
	for _, s := range fuzzSeeds() {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		// The fuzzer does not time inputs out: crash the worker on a hang so
		// that the input is saved. Generous: a normal input takes < 1 ms.
		tm := time.AfterFunc(20*time.Second, func() { panic(fmt.Sprintf("input hangs: %x", data)) })
		defer tm.Stop()
		checkInvariants(t, data, fuzzKeys, fuzzKeys.Slots())
		checkInvariants(t, data, mapMatcher{"v": {0, 0}, "a.b": {1, math.MaxInt}, "x": {9, 0}}, 2)
		// Every cut of small inputs, about 256 cuts of larger ones: the
		// check costs a decode per cut.
		if len(data) <= 8<<10 {
			checkCutsStep(t, data, fuzzKeys, fuzzKeys.Slots(), len(data)/256+1)
			// The scanner's fast paths read what msgp's readers read.
			sameRead(t, "fuzz", data, fuzzKeys, fuzzKeys.Slots(), len(data)/64+1)
		}
	})
}

func checkInvariants(t *testing.T, data []byte, m Matcher, slots int) {
	var r Reader
	var ev Event
	r.Reset(data, m, slots)
	events := uint64(0)
	for r.Next(&ev) {
		events++
		if len(ev.Fields) != slots {
			t.Fatalf("%d fields, want %d", len(ev.Fields), slots)
		}
		for _, v := range ev.Fields {
			if v.Kind > KindTime {
				t.Fatalf("bad kind %d", v.Kind)
			}
			if len(v.Str) > 0 && !inside(v.Str, data) {
				t.Fatalf("Str %q does not point into the chunk", v.Str)
			}
		}
	}
	st := r.Stats()
	if st.Events != events {
		t.Fatalf("Stats.Events %d, delivered %d", st.Events, events)
	}
	if err := r.Err(); err != nil {
		var ce *ChunkError
		if !errors.As(err, &ce) || ce.Offset < 0 || ce.Offset > len(data) || ce.Err == nil {
			t.Fatalf("bad error %#v", err)
		}
	}
	if r.Offset() < 0 || r.Offset() > len(data) {
		t.Fatalf("offset %d", r.Offset())
	}
}

func inside(s, chunk []byte) bool {
	if len(chunk) == 0 {
		return false
	}
	p, lo := uintptr(unsafe.Pointer(unsafe.SliceData(s))), uintptr(unsafe.Pointer(unsafe.SliceData(chunk)))
	return p >= lo && p+uintptr(len(s)) <= lo+uintptr(len(chunk))
}

func TestFuzzSeeds(t *testing.T) {
	for _, s := range fuzzSeeds() {
		checkInvariants(t, s, fuzzKeys, fuzzKeys.Slots())
		checkCutsStep(t, s, fuzzKeys, fuzzKeys.Slots(), 1)
	}
	// msgp.Skip agrees on a well-formed chunk.
	if _, err := msgp.Skip(fuzzSeeds()[1]); err != nil {
		t.Fatal(err)
	}
}
