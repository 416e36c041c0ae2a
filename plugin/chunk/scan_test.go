package chunk

import (
	"encoding/binary"
	"fmt"
	"math"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/beacongrid/beacongrid/internal/flbtest"
	"github.com/tinylib/msgp/msgp"
)

// scalarSize is the size msgp.Skip gives every type it covers, and it
// covers exactly the types whose first byte tells their size.
func TestScalarSizeMatchesMsgp(t *testing.T) {
	for lead := 0; lead < 256; lead++ {
		b := make([]byte, 64)
		b[0] = byte(lead)
		o, err := msgp.Skip(b)
		sz := int(scalarSize[lead])
		switch t0 := msgp.NextType(b); {
		case sz > 0:
			if err != nil || len(b)-len(o) != sz {
				t.Errorf("lead %#x: scalarSize %d, msgp.Skip %d (%v)", lead, sz, len(b)-len(o), err)
			}
		case t0 == msgp.MapType, t0 == msgp.ArrayType, t0 == msgp.StrType, t0 == msgp.BinType,
			t0 == msgp.ExtensionType, t0 == msgp.TimeType, lead == 0xc1:
			// Sized by what follows the first byte: not for scalarSize.
		default:
			t.Errorf("lead %#x (%v): scalarSize 0", lead, t0)
		}
	}
}

// keyHead is the header-plus-key length msgp reads for a fixstr key, and 0
// for every other first byte.
func TestKeyHeadMatchesMsgp(t *testing.T) {
	for c := 0; c < 256; c++ {
		b := make([]byte, 64)
		b[0] = byte(c)
		want := 0
		if s, o, err := msgp.ReadStringZC(b); err == nil && c&0xe0 == 0xa0 {
			want = len(b) - len(o)
			if want != 1+len(s) {
				t.Fatalf("lead %#x: msgp read %d bytes for %d", c, want, len(s))
			}
		}
		if int(keyHead[c]) != want {
			t.Errorf("lead %#x: keyHead %d, want %d", c, keyHead[c], want)
		}
	}
}

// A KeySet not built by NewKeySet (no tables) matches nothing, and the
// scanner reads past its pairs as readPair does.
func TestScanZeroKeySet(t *testing.T) {
	var ks KeySet
	sameRead(t, "zero KeySet", zeekChunk(3, false), &ks, 2, 1)
	fast, _, err := readEvents(zeekChunk(3, false), &ks, 2, false)
	if err != nil || len(fast) != 3 || fast[0].Fields[0].Kind != KindNone {
		t.Fatalf("%d events, %v", len(fast), err)
	}
}

// readEvents reads chunk with r (scanPairs on or off) into a comparable
// summary: every event, then the stats and the error.
func readEvents(chunk []byte, m Matcher, slots int, noScan bool) ([]Event, Stats, error) {
	var r Reader
	var ev Event
	r.Reset(chunk, m, slots)
	r.noScan = noScan
	var out []Event
	for r.Next(&ev) {
		out = append(out, Event{Sec: ev.Sec, Nsec: ev.Nsec, Fields: append([]Value(nil), ev.Fields...)})
	}
	return out, r.Stats(), r.Err()
}

// sameRead checks that scanPairs delivers what readPair alone (msgp's
// readers) delivers from chunk[:cut] for every cut, step bytes apart.
func sameRead(t *testing.T, name string, chunk []byte, m Matcher, slots, step int) {
	t.Helper()
	cuts := []int{len(chunk)}
	for c := 0; c < len(chunk); c += step {
		cuts = append(cuts, c)
	}
	for _, c := range cuts {
		b := chunk[:c:c]
		fast, fs, ferr := readEvents(b, m, slots, false)
		ref, rs, rerr := readEvents(b, m, slots, true)
		if len(fast) != len(ref) || fs != rs || fmt.Sprint(ferr) != fmt.Sprint(rerr) {
			t.Fatalf("%s cut at %d of %d: scan %d events %+v %v; msgp %d events %+v %v (chunk %x)",
				name, c, len(chunk), len(fast), fs, ferr, len(ref), rs, rerr, b)
		}
		for i := range fast {
			if !sameEvent(&fast[i], &ref[i]) {
				t.Fatalf("%s cut at %d: event %d: scan %s, msgp %s (chunk %x)", name, c, i, fmtEvent(&fast[i]), fmtEvent(&ref[i]), b)
			}
		}
	}
}

// collidingKeys is fuzzKeys with a multiplier that puts keys in shared
// buckets, so that scanPairs meets chained buckets.
func collidingKeys(slots [][]string) *KeySet {
	ks := NewKeySet(slots)
	ks.mult = 1 // the top bits of the last key byte: many keys per bucket
	ks.fill()
	return ks
}

// randomKey returns a key that is wanted (one of keys) half of the time,
// else of a length around the 8- and 16-byte word edges.
func randomKey(rnd *rand.Rand, keys []string) string {
	if rnd.IntN(2) == 0 {
		return keys[rnd.IntN(len(keys))]
	}
	n := []int{0, 1, 2, 7, 8, 9, 15, 16, 17, 24, 31, 40}[rnd.IntN(12)]
	k := []byte(strings.Repeat("k", n))
	for i := range k {
		k[i] = "abcdefgh._"[rnd.IntN(10)]
	}
	if n > 0 && rnd.IntN(3) == 0 { // close to a wanted key: same length and ends
		w := keys[rnd.IntN(len(keys))]
		if len(w) > 2 {
			k = []byte(w[:1] + strings.Repeat("z", len(w)-2) + w[len(w)-1:])
		}
	}
	return string(k)
}

// randomValue returns an encoded value of any msgpack type and width.
func randomValue(rnd *rand.Rand, depth int) []byte {
	var b []byte
	switch rnd.IntN(22) {
	case 0:
		b = append(b, byte(rnd.IntN(0x80))) // positive fixint
	case 1:
		b = append(b, byte(0xe0+rnd.IntN(32))) // negative fixint
	case 2:
		b = msgp.AppendUint8(b, uint8(rnd.Uint32()))
	case 3:
		b = append(b, 0xcd)
		b = binary.BigEndian.AppendUint16(b, uint16(rnd.Uint32()))
	case 4:
		b = append(b, 0xce)
		b = binary.BigEndian.AppendUint32(b, rnd.Uint32())
	case 5:
		b = append(b, 0xcf)
		b = binary.BigEndian.AppendUint64(b, rnd.Uint64())
	case 6:
		b = append(b, 0xd0, byte(rnd.Uint32()))
	case 7:
		b = append(b, 0xd1)
		b = binary.BigEndian.AppendUint16(b, uint16(rnd.Uint32()))
	case 8:
		b = append(b, 0xd2)
		b = binary.BigEndian.AppendUint32(b, rnd.Uint32())
	case 9:
		b = append(b, 0xd3)
		b = binary.BigEndian.AppendUint64(b, rnd.Uint64())
	case 10:
		b = msgp.AppendFloat64(b, []float64{rnd.Float64() * 1e9, math.NaN(), math.Inf(-1), -0.0}[rnd.IntN(4)])
	case 11:
		b = msgp.AppendFloat32(b, float32(rnd.NormFloat64()))
	case 12:
		b = msgp.AppendNil(b)
	case 13:
		b = msgp.AppendBool(b, rnd.IntN(2) == 0)
	case 14:
		b = msgp.AppendString(b, strings.Repeat("s", []int{0, 5, 31, 32, 200, 255, 256, 300}[rnd.IntN(8)]))
	case 15:
		s := strings.Repeat("w", rnd.IntN(40))
		switch rnd.IntN(3) { // forced widths: str8, str16, str32
		case 0:
			b = append(append(b, 0xd9, byte(len(s))), s...)
		case 1:
			b = append(binary.BigEndian.AppendUint16(append(b, 0xda), uint16(len(s))), s...)
		default:
			b = append(binary.BigEndian.AppendUint32(append(b, 0xdb), uint32(len(s))), s...)
		}
	case 16:
		b = msgp.AppendBytes(b, []byte(strings.Repeat("x", rnd.IntN(20))))
	case 17:
		b = enc(b, et{rnd.Uint32(), rnd.Uint32()})
	case 18:
		b = appendExt(b, int8(rnd.IntN(5)), make([]byte, []int{1, 2, 4, 8, 16, 3}[rnd.IntN(6)]))
	case 19, 20: // arrays: fixarray of scalars and str8 (scanned), or of anything
		n := rnd.IntN(5)
		if rnd.IntN(4) == 0 {
			b = binary.BigEndian.AppendUint16(append(b, 0xdc), uint16(n))
		} else {
			b = msgp.AppendArrayHeader(b, uint32(n))
		}
		for i := 0; i < n; i++ {
			if depth < 2 {
				b = append(b, randomValue(rnd, depth+1)...)
			} else {
				b = append(b, 1)
			}
		}
	default: // a nested map
		if depth >= 2 {
			return append(b, 0x80)
		}
		n := rnd.IntN(4)
		b = msgp.AppendMapHeader(b, uint32(n))
		for i := 0; i < n; i++ {
			b = msgp.AppendString(b, []string{"orig_h", "resp_h", "b", "c", "x"}[rnd.IntN(5)])
			b = append(b, randomValue(rnd, depth+1)...)
		}
	}
	return b
}

// appendExt appends an extension of type typ with payload data in its
// shortest encoding.
func appendExt(b []byte, typ int8, data []byte) []byte {
	switch len(data) {
	case 1, 2, 4, 8, 16:
		b = append(b, map[int]byte{1: 0xd4, 2: 0xd5, 4: 0xd6, 8: 0xd7, 16: 0xd8}[len(data)], byte(typ))
	default:
		b = append(b, 0xc7, byte(len(data)), byte(typ))
	}
	return append(b, data...)
}

// randomChunk returns n events of random bodies in random layouts.
func randomChunk(rnd *rand.Rand, n int, keys []string) []byte {
	var b []byte
	for i := 0; i < n; i++ {
		var body []byte
		pairs := rnd.IntN(20)
		if rnd.IntN(3) == 0 {
			body = binary.BigEndian.AppendUint16(append(body, 0xde), uint16(pairs))
		} else {
			body = msgp.AppendMapHeader(body, uint32(pairs))
		}
		for j := 0; j < pairs; j++ {
			k := randomKey(rnd, keys)
			switch rnd.IntN(8) { // key encodings
			case 0:
				body = append(append(body, 0xd9, byte(len(k))), k...)
			case 1:
				body = append(binary.BigEndian.AppendUint16(append(body, 0xda), uint16(len(k))), k...)
			case 2:
				body = msgp.AppendBytes(body, []byte(k))
			case 3:
				if rnd.IntN(4) == 0 {
					body = msgp.AppendInt(body, j) // not a string key
					break
				}
				fallthrough
			default:
				body = msgp.AppendString(body, k)
			}
			body = append(body, randomValue(rnd, 0)...)
		}
		ts := []any{et{uint32(1700000000 + i), uint32(i)}, uint64(1700000000 + i), 1700000000.5 + float64(i), et{0xFFFFFFFF, 0}}[rnd.IntN(4)]
		var ev any = v2(ts, raw(body))
		switch rnd.IntN(4) {
		case 0:
			ev = legacy(ts, raw(body))
		case 1:
			ev = w32{arr{w32{arr{ts, obj{}}}, raw(body)}}
		}
		b = enc(b, ev)
	}
	return b
}

// scanPairs delivers exactly what the msgp-only path does:
// on the fuzz corpus, the fuzz seeds, Zeek records and random records of
// every type and width, whole and cut at every byte (every few bytes for
// long chunks), with KeySets that keep keys apart and that share buckets.
func TestScanMatchesMsgp(t *testing.T) {
	corpus, err := flbtest.ReadFuzzCorpus("testdata/fuzz/FuzzReader")
	if err != nil {
		t.Fatal(err)
	}
	inputs := map[string][]byte{}
	for name, c := range corpus {
		inputs["corpus/"+name] = c
	}
	for i, s := range fuzzSeeds() {
		inputs[fmt.Sprintf("seed/%d", i)] = s
	}
	inputs["zeek/flat"] = zeekChunk(20, false)
	inputs["zeek/nested"] = zeekChunk(20, true)
	keys := []string{"v", "a.b", "host", "id.resp_h", "id.orig_h", "source.ip", "a.b.c.d.e.f.g.h", "", "ts", "id.orig_p",
		"request_body_len", "destination.domain", "tls.client.server_name", "12345678", "1234567890abcdef"}
	slots := [][]string{keys[0:2], keys[2:4], keys[4:6], keys[6:8], keys[8:10], keys[10:12], keys[12:]}
	rnd := rand.New(rand.NewPCG(5, 6))
	for i := 0; i < 300; i++ {
		inputs[fmt.Sprintf("random/%d", i)] = randomChunk(rnd, 1+rnd.IntN(4), keys)
	}
	matchers := map[string]*KeySet{
		"fuzzKeys": fuzzKeys, "zeekKeys": zeekKeys(), "wide": NewKeySet(slots), "colliding": collidingKeys(slots),
	}
	for name, in := range inputs {
		for mname, ks := range matchers {
			sameRead(t, name+"/"+mname, in, ks, ks.Slots(), len(in)/128+1)
		}
		// eventHead's word compares agree with eventHeadAny at every
		// event, whole and cut.
		for b := in; len(b) > 0; {
			for c := 0; c <= len(b) && c < 40; c++ {
				s1, n1, p1, q1, ok1 := eventHead(b[:c:c])
				s2, n2, p2, q2, ok2 := eventHeadAny(b[:c:c])
				if ok1 != ok2 || ok1 && (s1 != s2 || n1 != n2 || p1 != p2 || q1 != q2) {
					t.Fatalf("%s: eventHead(%x) = %v %v %v %v %v, eventHeadAny %v %v %v %v %v", name, b[:c], s1, n1, p1, q1, ok1, s2, n2, p2, q2, ok2)
				}
			}
			o, err := msgp.Skip(b)
			if err != nil {
				break
			}
			b = o
		}
	}
}

// A KeySet puts the keys of a usual configuration in buckets of their own
// (the hot path then never walks a chain), and finds every key whatever
// the buckets.
func TestKeySetBuckets(t *testing.T) {
	var all []string
	for _, keys := range [][]string{{"ts", "@timestamp"}, {"id.orig_h", "source.ip", "client.ip"}, {"host", "server_name", "destination.domain", "url.domain", "tls.client.server_name"},
		{"id.resp_h", "destination.ip"}, {"id.resp_p", "destination.port"}, {"request_body_len", "orig_bytes", "source.bytes"}, {"service"}, {"url.original", "url.full"}} {
		all = append(all, keys...)
	}
	ks := NewKeySet([][]string{all})
	if shared := ks.fill(); shared != 0 {
		t.Fatalf("%d keys share a bucket", shared)
	}
	for _, k := range []*KeySet{ks, collidingKeys([][]string{all})} {
		for i, key := range all {
			if s, r := k.Match([]byte(key)); s != 0 || r != i {
				t.Fatalf("Match(%q) = %d, %d; want 0, %d", key, s, r, i)
			}
		}
	}
}

// A body that starts before offset 7 (a legacy event with a fixint
// timestamp, first in the chunk) is read by readPair up to where scanPairs
// can take over; the events after it by scanPairs.
func TestScanEarlyBody(t *testing.T) {
	chunk := chunkOf(legacy(1, obj{"v", "x", "host", "h"}), legacy(2, obj{"host", "g", "v", 7}))
	sameRead(t, "early body", chunk, fuzzKeys, fuzzKeys.Slots(), 1)
	evs, _, err := readEvents(chunk, fuzzKeys, fuzzKeys.Slots(), false)
	if err != nil || len(evs) != 2 {
		t.Fatalf("%d events, %v", len(evs), err)
	}
	for i, want := range []string{`1.000000000 0=str:"x" 1=str:"h"`, `2.000000000 0=uint:7 1=str:"g"`} {
		if got := fmtEvent(&evs[i]); got != want {
			t.Errorf("event %d: %s, want %s", i, got, want)
		}
	}
}
