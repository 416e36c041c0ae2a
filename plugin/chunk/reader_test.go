package chunk

import (
	"encoding/binary"
	"errors"
	"math"
	"slices"
	"strings"
	"testing"
	"unsafe"

	"github.com/tinylib/msgp/msgp"
)

// testKeys is the KeySet used by most tests:
//
//	0: v        1: host, id.resp_h        2: id.orig_h, source.ip
var testKeys = NewKeySet([][]string{
	{"v"},
	{"host", "id.resp_h"},
	{"id.orig_h", "source.ip"},
})

func extRaw(lead []byte, typ int8, data []byte) raw {
	return raw(append(append(append([]byte{}, lead...), byte(typ)), data...))
}

func be(sec, nsec uint32) []byte {
	return binary.BigEndian.AppendUint32(binary.BigEndian.AppendUint32(nil, sec), nsec)
}

func TestReaderTimestamps(t *testing.T) {
	// want: "sec.nsec" of a delivered event, "bad", or "marker".
	f := func(name string, ts any, want string) {
		t.Helper()
		for _, layout := range []string{"v2", "legacy"} {
			ev := v2(ts, obj{"v", 1})
			if layout == "legacy" {
				ev = legacy(ts, obj{"v", 1})
			}
			got, st, err := readAll(chunkOf(ev, v2(et{7, 8}, obj{"v", 2})), testKeys, 3)
			if err != nil {
				t.Fatalf("%s/%s: unexpected error %v", name, layout, err)
			}
			last := "7.000000008 0=uint:2"
			var res string
			switch {
			case len(got) == 2 && got[1] == last && st.Events == 2:
				res = strings.TrimSuffix(got[0], " 0=uint:1")
			case len(got) == 1 && got[0] == last && st.BadEvents == 1:
				res = "bad"
			case len(got) == 1 && got[0] == last && st.GroupMarkers == 1:
				res = "marker"
			default:
				t.Fatalf("%s/%s: got %q, stats %+v", name, layout, got, st)
			}
			if res != want {
				t.Fatalf("%s/%s: got %s, want %s", name, layout, res, want)
			}
		}
	}

	// EventTime in every ext width.
	f("fixext8", et{1700000000, 123456789}, "1700000000.123456789")
	f("ext8 len 8", extRaw([]byte{0xc7, 8}, 0, be(1, 2)), "1.000000002")
	f("ext16 len 8", extRaw([]byte{0xc8, 0, 8}, 0, be(3, 4)), "3.000000004")
	f("ext32 len 8", extRaw([]byte{0xc9, 0, 0, 0, 8}, 0, be(5, 6)), "5.000000006")
	f("fixext4 type 0", extRaw([]byte{0xd6}, 0, be(1, 0)[:4]), "bad")
	f("ext8 len 12 type 0", extRaw([]byte{0xc7, 12}, 0, append(be(1, 2), 0, 0, 0, 0)), "bad")
	f("fixext8 type 1", extRaw([]byte{0xd7}, 1, be(1, 2)), "bad")
	f("EventTime max sec", et{0xFFFFFFFD, 999999999}, "4294967293.999999999")

	// msgpack timestamp extension (-1): 32, 64 and 96 bit.
	f("ts32", extRaw([]byte{0xd6}, -1, be(1700000000, 0)[:4]), "1700000000.000000000")
	f("ts64", extRaw([]byte{0xd7}, -1, binary.BigEndian.AppendUint64(nil, 5<<34|1700000000)), "1700000000.000000005")
	f("ts64 bad nsec", extRaw([]byte{0xd7}, -1, binary.BigEndian.AppendUint64(nil, 1000000000<<34|1)), "bad")
	f("ts96", extRaw([]byte{0xc7, 12}, -1, binary.BigEndian.AppendUint64(binary.BigEndian.AppendUint32(nil, 9), 1700000000)), "1700000000.000000009")
	f("ts96 negative", extRaw([]byte{0xc7, 12}, -1, binary.BigEndian.AppendUint64(binary.BigEndian.AppendUint32(nil, 0), 1<<63)), "bad")
	f("ts other len", extRaw([]byte{0xd5}, -1, []byte{1, 2}), "bad")

	// Integers in every width and signedness.
	f("fixint", 5, "5.000000000")
	f("uint8", raw{0xcc, 200}, "200.000000000")
	f("uint16", raw{0xcd, 1, 0}, "256.000000000")
	f("uint32", uint64(1700000000), "1700000000.000000000")
	f("uint64", raw{0xcf, 0, 0, 0, 0, 0x65, 0x53, 0xf1, 0x00}, "1700000000.000000000")
	f("int64 positive", raw{0xd3, 0, 0, 0, 0, 0x65, 0x53, 0xf1, 0x00}, "1700000000.000000000")
	f("zero", 0, "0.000000000")
	f("negative", -5, "bad")
	f("uint64 > MaxInt64", uint64(1<<63), "bad")

	// Floats.
	f("float64", 1.5, "1.500000000")
	f("float32", float32(2.25), "2.250000000")
	f("float64 zeek", 1700000000.25, "1700000000.250000000")
	f("negative float", -1.0, "bad")
	f("NaN", math.NaN(), "bad")
	f("Inf", math.Inf(1), "bad")
	f("too big float", 1e19, "bad")

	// Group markers.
	f("group start", et{0xFFFFFFFF, 0}, "marker")
	f("group end", et{0xFFFFFFFE, 0}, "marker")
	f("group start int", -1, "marker")
	f("group end int", -2, "marker")
	f("group start uint", uint64(0xFFFFFFFF), "marker")
	f("group end uint", uint64(0xFFFFFFFE), "marker")
	f("group start uint64 max", uint64(math.MaxUint64), "marker")

	// Not timestamps.
	f("string", "now", "bad")
	f("nil", nil, "bad")
	f("bool", true, "bad")
	f("map", obj{}, "bad")
}

func TestReaderShapes(t *testing.T) {
	// want lists the delivered events; bad and markers are the counts.
	f := func(name string, chunk []byte, want []string, bad, markers uint64) {
		t.Helper()
		got, st, err := readAll(chunk, testKeys, 3)
		if err != nil {
			t.Fatalf("%s: unexpected error %v", name, err)
		}
		if !slices.Equal(got, want) {
			t.Fatalf("%s: got %q, want %q", name, got, want)
		}
		if st.BadEvents != bad || st.GroupMarkers != markers || st.Events != uint64(len(want)) {
			t.Fatalf("%s: stats %+v, want bad %d, markers %d", name, st, bad, markers)
		}
	}
	good := v2(et{1, 0}, obj{"v", "ok"})
	ok := "1.000000000 0=str:\"ok\""

	f("empty chunk", nil, nil, 0, 0)
	f("one v2", chunkOf(good), []string{ok}, 0, 0)
	f("v2 array32 headers", chunkOf(w32{arr{w32{arr{et{1, 0}, obj{}}}, obj{"v", "ok"}}}), []string{ok}, 0, 0)
	f("v2 array16 headers", chunkOf(w16{arr{w16{arr{et{1, 0}, obj{}}}, obj{"v", "ok"}}}), []string{ok}, 0, 0)
	f("legacy array32", chunkOf(w32{arr{et{1, 0}, obj{"v", "ok"}}}), []string{ok}, 0, 0)
	f("v2 metadata skipped", chunkOf(arr{arr{et{1, 0}, obj{"v", "meta", "x", arr{1, obj{"y", 2}}}}, obj{"v", "ok"}}), []string{ok}, 0, 0)
	f("v2 header without metadata", chunkOf(arr{arr{et{1, 0}}, obj{"v", "ok"}}), []string{ok}, 0, 0)
	f("v2 header with extra element", chunkOf(arr{arr{et{1, 0}, obj{}, "extra"}, obj{"v", "ok"}}), []string{ok}, 0, 0)
	f("v2 empty header", chunkOf(arr{arr{}, obj{"v", 1}}, good), []string{ok}, 1, 0)
	f("top-level map", chunkOf(obj{"v", 1}, good), []string{ok}, 1, 0)
	f("top-level string", chunkOf("hello", good), []string{ok}, 1, 0)
	f("top-level int and nil", chunkOf(1, nil, good), []string{ok}, 2, 0)
	f("array of 1", chunkOf(arr{et{1, 0}}, good), []string{ok}, 1, 0)
	f("array of 3", chunkOf(arr{et{1, 0}, obj{"v", 1}, obj{}}, good), []string{ok}, 1, 0)
	f("empty array", chunkOf(arr{}, good), []string{ok}, 1, 0)
	f("body string", chunkOf(v2(et{1, 0}, "body"), good), []string{ok}, 1, 0)
	f("body array", chunkOf(v2(et{1, 0}, arr{"v", 1}), good), []string{ok}, 1, 0)
	f("body nil", chunkOf(legacy(et{1, 0}, nil), good), []string{ok}, 1, 0)
	f("empty body", chunkOf(v2(et{1, 0}, obj{})), []string{"1.000000000"}, 0, 0)
	f("group", chunkOf(
		v2(et{0xFFFFFFFF, 0}, obj{"resource", obj{"attributes", obj{"host.name", "x"}}}),
		good,
		v2(et{0xFFFFFFFE, 0}, obj{}),
	), []string{ok}, 0, 2)
	f("marker with bad body still a marker", chunkOf(v2(et{0xFFFFFFFF, 0}, "x"), good), []string{ok}, 0, 1)
	f("many", chunkOf(good, good, "junk", good), []string{ok, ok, ok}, 1, 0)
}

func TestReaderKeysAndValues(t *testing.T) {
	// body is decoded with testKeys; want is the rendered event.
	f := func(name string, body any, want string) {
		t.Helper()
		got, st, err := readAll(chunkOf(v2(et{1, 0}, body)), testKeys, 3)
		if err != nil || len(got) != 1 || st.Events != 1 {
			t.Fatalf("%s: got %q, %+v, %v", name, got, st, err)
		}
		if got[0] != "1.000000000"+want {
			t.Fatalf("%s: got %q, want %q", name, got[0], "1.000000000"+want)
		}
	}

	// Key encodings.
	f("fixstr key", obj{"v", 1}, " 0=uint:1")
	f("str8 key", obj{w8{"v"}, 1}, " 0=uint:1")
	f("str16 key", obj{w16{"v"}, 1}, " 0=uint:1")
	f("str32 key", obj{w32{"v"}, 1}, " 0=uint:1")
	f("bin8 key", obj{[]byte("v"), 1}, " 0=uint:1")
	f("bin16 key", obj{w16{[]byte("v")}, 1}, " 0=uint:1")
	f("bin32 key", obj{w32{[]byte("v")}, 1}, " 0=uint:1")
	f("int key skipped", obj{1, "x", "v", 2}, " 0=uint:2")
	f("map key skipped", obj{obj{"v", 1}, "x", "v", 2}, " 0=uint:2")
	f("nil key skipped", obj{nil, obj{"v", 1}, "v", 3}, " 0=uint:3")
	f("unknown keys", obj{"a", 1, "bb", "x", "ccc", arr{1, 2}, "v", 4, "zz", obj{"q", 1}}, " 0=uint:4")

	// Body map widths.
	f("map16 body", w16{obj{"v", 1}}, " 0=uint:1")
	f("map32 body", w32{obj{"v", 1}}, " 0=uint:1")

	// String and bin values.
	f("fixstr", obj{"v", "abc"}, ` 0=str:"abc"`)
	f("empty str", obj{"v", ""}, ` 0=str:""`)
	f("str8", obj{"v", w8{"abc"}}, ` 0=str:"abc"`)
	f("str16", obj{"v", w16{"abc"}}, ` 0=str:"abc"`)
	f("str32", obj{"v", w32{"abc"}}, ` 0=str:"abc"`)
	f("long str", obj{"v", strings.Repeat("x", 70000)}, ` 0=str:"`+strings.Repeat("x", 70000)+`"`)
	f("bin8", obj{"v", []byte{1, 2}}, ` 0=str:"\x01\x02"`)
	f("bin16", obj{"v", w16{[]byte("ab")}}, ` 0=str:"ab"`)
	f("bin32", obj{"v", w32{[]byte("ab")}}, ` 0=str:"ab"`)

	// Integers: non-negative ones are uint whatever their encoding.
	f("positive fixint", obj{"v", 127}, " 0=uint:127")
	f("uint8", obj{"v", raw{0xcc, 255}}, " 0=uint:255")
	f("uint16", obj{"v", raw{0xcd, 0xff, 0xff}}, " 0=uint:65535")
	f("uint32", obj{"v", raw{0xce, 0xff, 0xff, 0xff, 0xff}}, " 0=uint:4294967295")
	f("uint64", obj{"v", uint64(math.MaxUint64)}, " 0=uint:18446744073709551615")
	f("int8 positive", obj{"v", raw{0xd0, 5}}, " 0=uint:5")
	f("int64 positive", obj{"v", raw{0xd3, 0, 0, 0, 0, 0, 0, 0, 7}}, " 0=uint:7")
	f("negative fixint", obj{"v", -32}, " 0=int:-32")
	f("int8", obj{"v", raw{0xd0, 0x80}}, " 0=int:-128")
	f("int16", obj{"v", -30000}, " 0=int:-30000")
	f("int32", obj{"v", -2000000000}, " 0=int:-2000000000")
	f("int64", obj{"v", int64(math.MinInt64)}, " 0=int:-9223372036854775808")

	// Other scalars.
	f("float64", obj{"v", 1.25}, " 0=float:1.25")
	f("float32", obj{"v", float32(0.5)}, " 0=float:0.5")
	f("true", obj{"v", true}, " 0=bool:true")
	f("false", obj{"v", false}, " 0=bool:false")
	f("nil", obj{"v", nil}, " 0=nil")
	f("EventTime", obj{"v", et{10, 20}}, " 0=time:10.000000020")
	f("EventTime ext8", obj{"v", extRaw([]byte{0xc7, 8}, 0, be(10, 20))}, " 0=time:10.000000020")

	// Unsupported value types leave the slot empty.
	f("array value", obj{"v", arr{1, 2}}, "")
	f("other ext", obj{"v", extRaw([]byte{0xd4}, 5, []byte{1})}, "")
	f("ts ext value", obj{"v", extRaw([]byte{0xd6}, -1, be(1, 0)[:4])}, "")
	f("EventTime wrong len", obj{"v", extRaw([]byte{0xd6}, 0, be(1, 0)[:4])}, "")

	// Several slots.
	f("all slots", obj{"host", "h", "v", 1, "id.orig_h", "1.2.3.4"}, ` 0=uint:1 1=str:"h" 2=str:"1.2.3.4"`)
}

func TestReaderNested(t *testing.T) {
	f := func(name string, body any, want string, deep, long uint64) {
		t.Helper()
		got, st, err := readAll(chunkOf(v2(et{1, 0}, body)), testKeys, 3)
		if err != nil || len(got) != 1 {
			t.Fatalf("%s: got %q, %+v, %v", name, got, st, err)
		}
		if got[0] != "1.000000000"+want {
			t.Fatalf("%s: got %q, want %q", name, got[0], "1.000000000"+want)
		}
		if st.DeepMaps != deep || st.LongPaths != long {
			t.Fatalf("%s: stats %+v, want deep %d, long %d", name, st, deep, long)
		}
	}
	f("flat dotted", obj{"id.orig_h", "1.1.1.1", "id.resp_h", "2.2.2.2"}, ` 1=str:"2.2.2.2" 2=str:"1.1.1.1"`, 0, 0)
	f("nested", obj{"id", obj{"orig_h", "1.1.1.1", "orig_p", 5, "resp_h", "2.2.2.2"}}, ` 1=str:"2.2.2.2" 2=str:"1.1.1.1"`, 0, 0)
	f("nested map32", obj{"id", w32{obj{"orig_h", "1.1.1.1"}}}, ` 2=str:"1.1.1.1"`, 0, 0)
	f("nested bin key", obj{[]byte("id"), obj{[]byte("orig_h"), "1.1.1.1"}}, ` 2=str:"1.1.1.1"`, 0, 0)
	f("nested then flat", obj{"source", obj{"ip", "3.3.3.3"}, "v", 1}, ` 0=uint:1 2=str:"3.3.3.3"`, 0, 0)
	f("mixed depth", obj{"id", obj{"orig", obj{"h", "x"}}}, "", 0, 0) // id.orig.h is not id.orig_h
	f("unwanted nested skipped", obj{"kubernetes", obj{"v", 1, "labels", obj{"a", "b"}}, "v", 2}, " 0=uint:2", 0, 0)
	f("nested key named like top-level", obj{"x", obj{"v", 1}}, "", 0, 0)
	f("empty nested", obj{"id", obj{}, "v", 1}, " 0=uint:1", 0, 0)
	f("nested array ignored", obj{"id", obj{"orig_h", arr{"a"}}}, "", 0, 0)

	deep := NewKeySet([][]string{{"a.b.c.d.e.f.g.h"}, {"a.b.c.d.e.f.g.h.i"}, {"z"}})
	nest := func(keys string, leaf any) any {
		v := leaf
		for i := len(keys) - 1; i >= 0; i-- {
			v = obj{keys[i : i+1], v}
		}
		return v
	}
	g := func(name string, body any, want string, deepMaps uint64) {
		t.Helper()
		got, st, err := readAll(chunkOf(v2(et{1, 0}, body)), deep, 3)
		if err != nil || len(got) != 1 || got[0] != "1.000000000"+want || st.DeepMaps != deepMaps {
			t.Fatalf("%s: got %q, %+v, %v; want %q, deep %d", name, got, st, err, want, deepMaps)
		}
	}
	g("depth 8 ok", nest("abcdefgh", 1), " 0=uint:1", 0)
	g("depth 9 skipped", nest("abcdefghi", 1), "", 1)
	g("depth 9 skipped, rest read", obj{"a", nest("bcdefghi", 1), "z", 2}, " 2=uint:2", 1)
	g("very deep skipped without recursion", obj{"a", nest("bcdefgh"+strings.Repeat("x", 40000), 1), "z", 3}, " 2=uint:3", 1)

	long := strings.Repeat("k", 200)
	lk := NewKeySet([][]string{{long + "." + long}, {long}, {"z"}})
	h := func(name string, body any, want string, longPaths uint64) {
		t.Helper()
		got, st, err := readAll(chunkOf(v2(et{1, 0}, body)), lk, 3)
		if err != nil || len(got) != 1 || got[0] != "1.000000000"+want || st.LongPaths != longPaths {
			t.Fatalf("%s: got %q, %+v, %v; want %q, long %d", name, got, st, err, want, longPaths)
		}
	}
	h("long top-level key matched in place", obj{long, 1, "z", 2}, " 1=uint:1 2=uint:2", 0)
	h("long nested path skipped", obj{long, obj{long, 1}, "z", 2}, " 2=uint:2", 1)
	h("too long map prefix skipped", obj{strings.Repeat("k", 300), obj{"a", 1}, "z", 2}, " 2=uint:2", 1)
}

func TestReaderPriority(t *testing.T) {
	f := func(name string, body any, want string) {
		t.Helper()
		got, _, err := readAll(chunkOf(v2(et{1, 0}, body)), testKeys, 3)
		if err != nil || len(got) != 1 || got[0] != "1.000000000"+want {
			t.Fatalf("%s: got %q, %v; want %q", name, got, err, want)
		}
	}
	f("first alias first", obj{"host", "h", "id.resp_h", "ip"}, ` 1=str:"h"`)
	f("first alias last", obj{"id.resp_h", "ip", "host", "h"}, ` 1=str:"h"`)
	f("second alias alone", obj{"id.resp_h", "ip"}, ` 1=str:"ip"`)
	f("nested second alias loses", obj{"source", obj{"ip", "b"}, "id.orig_h", "a"}, ` 2=str:"a"`)
	f("nested first alias wins", obj{"source.ip", "b", "id", obj{"orig_h", "a"}}, ` 2=str:"a"`)
	f("duplicate key: first wins", obj{"v", 1, "v", 2}, " 0=uint:1")
	f("nil loses to any alias", obj{"host", nil, "id.resp_h", "ip"}, ` 1=str:"ip"`)
	f("nil replaced later", obj{"id.resp_h", nil, "host", "h"}, ` 1=str:"h"`)
	f("nil then nil", obj{"host", nil, "id.resp_h", nil}, " 1=nil")
	f("unsupported first alias does not block", obj{"host", arr{1}, "id.resp_h", "ip"}, ` 1=str:"ip"`)
	f("value after nil of better rank", obj{"host", nil, "host", "h"}, ` 1=str:"h"`)
}

// mapMatcher is a Matcher that is not a KeySet (no PrefixMatcher either).
type mapMatcher map[string][2]int

func (m mapMatcher) Match(path []byte) (int, int) {
	if v, ok := m[string(path)]; ok {
		return v[0], v[1]
	}
	return -1, 0
}

func TestReaderCustomMatcher(t *testing.T) {
	m := mapMatcher{"a.b": {0, 0}, "c": {1, 0}, "d": {7, 0}, "e": {-5, 0}, "f": {1, 1 << 40}}
	got, _, err := readAll(chunkOf(v2(et{1, 0}, obj{"a", obj{"b", 1, "x", obj{"y", 1}}, "d", 3, "e", 4, "f", 5, "c", 2})), m, 2)
	want := []string{"1.000000000 0=uint:1 1=uint:2"}
	if err != nil || !slices.Equal(got, want) {
		t.Fatalf("got %q, %v; want %q", got, err, want)
	}
}

func TestReaderNoSlots(t *testing.T) {
	chunk := chunkOf(v2(et{1, 2}, obj{"v", 1, "n", obj{"v", 2}}), legacy(3, obj{}))
	want := []string{"1.000000002", "3.000000000"}
	for _, c := range []struct {
		m     Matcher
		slots int
	}{{nil, 0}, {nil, 3}, {testKeys, 0}, {testKeys, -1}} {
		got, _, err := readAll(chunk, c.m, c.slots)
		if err != nil || !slices.Equal(got, want) {
			t.Fatalf("%v/%d: got %q, %v", c.m, c.slots, got, err)
		}
	}
}

func TestReaderMalformed(t *testing.T) {
	// want is the events delivered before the fault, off the reported offset.
	f := func(name string, chunk []byte, want []string, off int) {
		t.Helper()
		got, _, err := readAll(chunk, testKeys, 3)
		if !slices.Equal(got, want) {
			t.Fatalf("%s: got %q, want %q", name, got, want)
		}
		var ce *ChunkError
		if !errors.As(err, &ce) {
			t.Fatalf("%s: got error %v, want a *ChunkError", name, err)
		}
		if ce.Offset != off {
			t.Fatalf("%s: offset %d, want %d (%v)", name, ce.Offset, off, err)
		}
		if ce.Error() == "" || ce.Unwrap() == nil {
			t.Fatalf("%s: empty error", name)
		}
	}
	good := chunkOf(v2(et{1, 0}, obj{"v", "ok"}))
	ok := `1.000000000 0=str:"ok"`
	n := len(good)

	f("invalid byte", append(slices.Clone(good), 0xc1), []string{ok}, n)
	f("invalid byte in body", chunkOf(raw(good), v2(et{1, 0}, obj{"v", raw{0xc1}})), []string{ok}, n+16)
	f("truncated header", append(slices.Clone(good), 0xdd, 0, 0), []string{ok}, n)
	f("truncated ts", chunkOf(raw(good), raw{0x92, 0x92, 0xd7, 0}), []string{ok}, n+2)
	f("truncated string", chunkOf(raw(good), raw(chunkOf(v2(et{1, 0}, obj{"v", "abcdef"}))[:n+2])), []string{ok}, n+16)
	f("huge map count", chunkOf(raw(good), v2(et{1, 0}, raw{0xdf, 0xff, 0xff, 0xff, 0xff, 0xa1, 'v', 1})), []string{ok}, n+21)
	f("huge array in bad event", chunkOf(raw(good), raw{0xdd, 0xff, 0xff, 0xff, 0xff, 1, 2}), []string{ok}, n+5)
	f("cut bad event", append(slices.Clone(good), raw(chunkOf("abc"))[:2]...), []string{ok}, n)
	f("cut marker", chunkOf(raw(good), raw(chunkOf(v2(et{0xFFFFFFFF, 0}, obj{"a", 1})))[:16]), []string{ok}, n+16)

	// Once failed, a Reader stays failed.
	var r Reader
	var ev Event
	r.Reset([]byte{0xc1}, testKeys, 3)
	if r.Next(&ev) || r.Next(&ev) || r.Err() == nil {
		t.Fatal("Next after error")
	}
	var ce *ChunkError
	if !errors.As(r.Err(), &ce) || !errors.Is(r.Err(), ce.Err) {
		t.Fatal("not a ChunkError")
	}
	var ip msgp.InvalidPrefixError
	if !errors.As(r.Err(), &ip) {
		t.Fatalf("want InvalidPrefixError, got %v", r.Err())
	}
}

func TestReaderTruncatedEveryByte(t *testing.T) {
	chunk := chunkOf(
		v2(et{1, 0}, obj{"v", "a", "id", obj{"orig_h", "x"}}),
		v2(et{0xFFFFFFFF, 0}, obj{"g", 1}),
		"bad",
		legacy(2.5, w32{obj{w16{"host"}, w32{"h"}}}),
		w32{arr{w32{arr{et{3, 0}, obj{}}}, obj{"v", []byte("b")}}},
	)
	checkCuts(t, chunk, testKeys, 3)
}

// checkCuts checks that decoding chunk[:c] delivers exactly the events of
// chunk that end at or before c, and fails cleanly only at object boundaries.
func checkCuts(t testing.TB, chunk []byte, m Matcher, slots int) {
	checkCutsStep(t, chunk, m, slots, 1)
}

// checkCutsStep is checkCuts at every step-th byte, plus the end.
func checkCutsStep(t testing.TB, chunk []byte, m Matcher, slots, step int) {
	t.Helper()
	var r Reader
	var ev Event
	r.Reset(chunk, m, slots)
	var all []Event
	var ends []int
	for r.Next(&ev) {
		all = append(all, Event{Sec: ev.Sec, Nsec: ev.Nsec, Fields: slices.Clone(ev.Fields)})
		ends = append(ends, r.Offset())
	}
	fullErr := r.Err()

	// Top-level object boundaries, with msgp.Skip as the oracle.
	bounds := map[int]bool{0: true}
	for b := chunk; len(b) > 0; {
		o, err := msgp.Skip(b)
		if err != nil {
			break
		}
		b = o
		bounds[len(chunk)-len(b)] = true
	}
	if (fullErr == nil) != bounds[len(chunk)] {
		t.Fatalf("full decode error %v disagrees with msgp.Skip (chunk %x)", fullErr, chunk)
	}
	stop := len(chunk)
	if fullErr != nil {
		stop = fullErr.(*ChunkError).Offset
	}

	// Cuts: every step-th byte, the end, and around the first boundaries.
	cuts := []int{len(chunk)}
	for c := 0; c < len(chunk); c += step {
		cuts = append(cuts, c)
	}
	if step > 1 {
		for c := range bounds {
			if len(cuts) < 512 {
				cuts = append(cuts, c, max(c-1, 0), min(c+1, len(chunk)))
			}
		}
	}
	slices.Sort(cuts)
	for _, c := range slices.Compact(cuts) {
		// The events of chunk[:c] are the first of all, up to the cut.
		r.Reset(chunk[:c:c], m, slots)
		n := 0
		for r.Next(&ev) {
			if n >= len(all) || !sameEvent(&ev, &all[n]) {
				t.Fatalf("cut at %d of %d: event %d is %s, want %d events (chunk %x)", c, len(chunk), n, fmtEvent(&ev), len(all), chunk)
			}
			n++
		}
		want := 0
		for want < len(ends) && ends[want] <= c {
			want++
		}
		if n != want {
			t.Fatalf("cut at %d of %d: %d events, want %d (chunk %x)", c, len(chunk), n, want, chunk)
		}
		if err := r.Err(); c <= stop && (err == nil) != bounds[c] {
			t.Fatalf("cut at %d of %d: error %v, boundary %v (chunk %x)", c, len(chunk), err, bounds[c], chunk)
		}
	}
}

// sameEvent compares events; Str values must be the very same bytes of the
// chunk, not copies (an empty slice may point anywhere: a slice at the end of
// a full-capacity slice points to its start).
func sameEvent(a, b *Event) bool {
	if a.Sec != b.Sec || a.Nsec != b.Nsec || len(a.Fields) != len(b.Fields) {
		return false
	}
	for i := range a.Fields {
		if !sameValue(a.Fields[i], b.Fields[i]) {
			return false
		}
	}
	return true
}

// sameValue reports whether x and y are the same value: the same Kind and
// the same field named by it (the only one a Value defines), a string by
// the same bytes of the chunk.
func sameValue(x, y Value) bool {
	if x.Kind != y.Kind {
		return false
	}
	switch x.Kind {
	case KindStr:
		return len(x.Str) == len(y.Str) && (len(x.Str) == 0 || unsafe.SliceData(x.Str) == unsafe.SliceData(y.Str))
	case KindInt:
		return x.Int == y.Int
	case KindUint:
		return x.Uint == y.Uint
	case KindFloat:
		return x.Float == y.Float || math.IsNaN(x.Float) && math.IsNaN(y.Float)
	case KindBool:
		return x.Bool == y.Bool
	case KindTime:
		return x.Sec == y.Sec && x.Nsec == y.Nsec
	}
	return true
}

func TestReaderReuse(t *testing.T) {
	var r Reader
	var ev Event
	r.Reset(chunkOf(v2(et{1, 0}, obj{"v", 1, "host", "h"})), testKeys, 3)
	if !r.Next(&ev) || fmtEvent(&ev) != `1.000000000 0=uint:1 1=str:"h"` {
		t.Fatalf("first: %s", fmtEvent(&ev))
	}
	// Fields are cleared between events and across Reset.
	r.Reset(chunkOf(v2(et{2, 0}, obj{"v", 2}), v2(et{3, 0}, obj{})), testKeys, 3)
	if !r.Next(&ev) || fmtEvent(&ev) != "2.000000000 0=uint:2" {
		t.Fatalf("second: %s", fmtEvent(&ev))
	}
	if !r.Next(&ev) || fmtEvent(&ev) != "3.000000000" {
		t.Fatalf("third: %s", fmtEvent(&ev))
	}
	if r.Next(&ev) || r.Err() != nil || r.Stats().Events != 2 || r.Offset() != r.Offset() {
		t.Fatalf("end: %v %+v", r.Err(), r.Stats())
	}
	// Fewer slots shrink Fields; more grow it.
	r.Reset(chunkOf(v2(et{4, 0}, obj{"v", 4})), testKeys, 1)
	if !r.Next(&ev) || len(ev.Fields) != 1 || fmtEvent(&ev) != "4.000000000 0=uint:4" {
		t.Fatalf("fourth: %s", fmtEvent(&ev))
	}
	// Stats and errors are reset.
	r.Reset([]byte{0xc1}, testKeys, 3)
	r.Next(&ev)
	r.Reset(nil, testKeys, 3)
	if r.Next(&ev) || r.Err() != nil || r.Stats() != (Stats{}) {
		t.Fatal("Reset did not clear the error")
	}
	var zero Reader
	if zero.Next(&ev) || zero.Err() != nil {
		t.Fatal("zero Reader")
	}
}

func TestGetPutReader(t *testing.T) {
	r := GetReader()
	r.Reset(chunkOf(v2(et{1, 0}, obj{"v", 1})), testKeys, 3)
	var ev Event
	if !r.Next(&ev) {
		t.Fatal(r.Err())
	}
	PutReader(r)
	if r.chunk != nil || r.m != nil {
		t.Fatal("PutReader kept references")
	}
	if GetReader() == nil {
		t.Fatal("nil reader")
	}
}

func TestKeySet(t *testing.T) {
	ks := NewKeySet([][]string{
		{"ts"},
		{"id.orig_h", "source.ip", "a.b.c"},
		{"host", "ts", "id.resp_h"}, // "ts" already belongs to slot 0
		{"", "id.orig_h.x"},
		{"source.ip"}, // already slot 1
	})
	if ks.Slots() != 5 {
		t.Fatalf("Slots %d", ks.Slots())
	}
	f := func(path string, slot, rank int) {
		t.Helper()
		s, r := ks.Match([]byte(path))
		if s != slot || r != rank {
			t.Fatalf("Match(%q) = %d, %d; want %d, %d", path, s, r, slot, rank)
		}
	}
	f("ts", 0, 0)
	f("id.orig_h", 1, 0)
	f("source.ip", 1, 1)
	f("a.b.c", 1, 2)
	f("host", 2, 0)
	f("id.resp_h", 2, 2)
	f("", 3, 0)
	f("id.orig_h.x", 3, 1)
	f("id", -1, 0)
	f("a.b", -1, 0)
	f("id.orig_p", -1, 0)
	f("TS", -1, 0)
	f(strings.Repeat("x", 1000), -1, 0)

	p := func(prefix string, want bool) {
		t.Helper()
		if got := ks.WantPrefix([]byte(prefix)); got != want {
			t.Fatalf("WantPrefix(%q) = %v", prefix, got)
		}
	}
	p("id", true)
	p("source", true)
	p("a", true)
	p("a.b", true)
	p("id.orig_h", true)
	p("a.b.c", false)
	p("host", false)
	p("i", false)
	p("", false)

	var nilKS *KeySet
	if s, _ := nilKS.Match([]byte("x")); s != -1 || nilKS.WantPrefix([]byte("x")) || nilKS.Slots() != 0 {
		t.Fatal("nil KeySet")
	}
	if got, _, err := readAll(chunkOf(v2(et{1, 0}, obj{"x", obj{"y", 1}})), nilKS, 2); err != nil || len(got) != 1 {
		t.Fatalf("nil KeySet in a Reader: %q, %v", got, err)
	}

	empty := NewKeySet(nil)
	if s, _ := empty.Match([]byte("x")); s != -1 || empty.WantPrefix(nil) || empty.Slots() != 0 {
		t.Fatal("empty KeySet")
	}

	// Many keys: every one is found.
	var many [][]string
	for i := 0; i < 300; i++ {
		many = append(many, []string{strings.Repeat("k", i%40) + string(rune('a'+i%26)) + "." + string(rune('a'+i/26))})
	}
	mk := NewKeySet(many)
	for i, keys := range many {
		if s, r := mk.Match([]byte(keys[0])); s != i || r != 0 {
			t.Fatalf("many: Match(%q) = %d, %d; want %d", keys[0], s, r, i)
		}
	}
}

func TestKindString(t *testing.T) {
	if KindTime.String() != "time" || KindNone.String() != "none" || Kind(99).String() != "Kind(99)" {
		t.Fatal("Kind.String")
	}
}

func TestReaderZeroAllocs(t *testing.T) {
	for _, name := range []string{"flat", "nested"} {
		chunk := zeekChunk(100, name == "nested")
		chunk = append(chunk, chunkOf(
			v2(et{0xFFFFFFFF, 0}, obj{"a", 1}),
			"bad event",
			v2(et{1, 0}, obj{"id.orig_h", nil, "host", arr{1}, "id", obj{"resp_h", "x", "deep", obj{"a", obj{"b", obj{"c", obj{"d", obj{"e", obj{"f", obj{"g", obj{"h", 1}}}}}}}}}}),
			v2(et{1, 0}, obj{"v", 1.5, "t", true, "n", -3, "e", et{1, 2}, "b", []byte("x")}),
		)...)
		ks := zeekKeys()
		var r Reader
		var ev Event
		r.Reset(chunk, ks, ks.Slots())
		r.Next(&ev) // grow ev.Fields
		allocs := testing.AllocsPerRun(100, func() {
			r.Reset(chunk, ks, ks.Slots())
			for r.Next(&ev) {
			}
			if r.Err() != nil {
				t.Fatal(r.Err())
			}
		})
		if allocs != 0 {
			t.Fatalf("%s: %v allocs per chunk, want 0", name, allocs)
		}
		// Also through the Matcher interface and PrefixMatcher-less matchers.
		var m Matcher = mapMatcher{"host": {0, 0}}
		allocs = testing.AllocsPerRun(100, func() {
			r.Reset(chunk, m, 1)
			for r.Next(&ev) {
			}
		})
		if allocs != 0 {
			t.Fatalf("%s: %v allocs per chunk with a custom Matcher, want 0", name, allocs)
		}
	}
}
