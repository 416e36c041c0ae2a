package flbtest_test

import (
	"bytes"
	"encoding/binary"
	"math"
	"os"
	"path/filepath"
	"reflect"
	"testing"
	"time"
	"unsafe"

	"github.com/fluent/fluent-bit-go/output"
	"github.com/tinylib/msgp/msgp"

	"github.com/beacongrid/beacongrid/internal/flbtest"
)

var t0 = time.Unix(0x65000000, 1)

func TestEncodeV2Array32Bytes(t *testing.T) {
	got, err := flbtest.EncodeChunk([]flbtest.Event{{Time: t0, Record: map[string]any{"k": "v"}}})
	if err != nil {
		t.Fatal(err)
	}
	want := []byte{
		0xdd, 0, 0, 0, 2, // [
		0xdd, 0, 0, 0, 2, // [
		0xd7, 0x00, 0x65, 0, 0, 0, 0, 0, 0, 1, // EventTime
		0x80,                       // {} metadata ]
		0x81, 0xa1, 'k', 0xa1, 'v', // {"k": "v"} ]
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("got % x\nwant % x", got, want)
	}
}

func TestEncodeV2FixArrayBytes(t *testing.T) {
	got, err := flbtest.EncodeChunk([]flbtest.Event{{Time: t0, Record: map[string]any{"k": "v"}}}, flbtest.WithFixArray())
	if err != nil {
		t.Fatal(err)
	}
	want := []byte{0x92, 0x92, 0xd7, 0x00, 0x65, 0, 0, 0, 0, 0, 0, 1, 0x80, 0x81, 0xa1, 'k', 0xa1, 'v'}
	if !bytes.Equal(got, want) {
		t.Fatalf("got % x\nwant % x", got, want)
	}
}

// readPair reads a two-element array header of any width.
func readPair(t *testing.T, b []byte) []byte {
	t.Helper()
	n, rest, err := msgp.ReadArrayHeaderBytes(b)
	if err != nil || n != 2 {
		t.Fatalf("want a 2-array, got n=%d err=%v", n, err)
	}
	return rest
}

func readEventTime(t *testing.T, b []byte) (sec, nsec uint32, rest []byte) {
	t.Helper()
	ext := msgp.RawExtension{Type: 0}
	rest, err := msgp.ReadExtensionBytes(b, &ext)
	if err != nil || len(ext.Data) != 8 {
		t.Fatalf("want ext 0 with 8 bytes: %v (% x)", err, ext.Data)
	}
	return binary.BigEndian.Uint32(ext.Data), binary.BigEndian.Uint32(ext.Data[4:]), rest
}

func TestEncodeLegacyTimestamps(t *testing.T) {
	rec := map[string]any{"a": int64(1)}
	b, err := flbtest.EncodeChunk([]flbtest.Event{{Time: t0, Record: rec}},
		flbtest.WithFormat(flbtest.FormatLegacy), flbtest.WithTimeFormat(flbtest.TimeInt))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.HasPrefix(b, []byte{0xdd, 0, 0, 0, 2}) {
		t.Fatalf("legacy event should start with array32: % x", b)
	}
	rest := readPair(t, b)
	if msgp.NextType(rest) != msgp.UintType {
		t.Fatalf("int timestamp should be a msgpack uint: % x", rest)
	}
	sec, rest, err := msgp.ReadInt64Bytes(rest)
	if err != nil || sec != t0.Unix() {
		t.Fatalf("int timestamp: %d %v", sec, err)
	}
	body, rest, err := msgp.ReadIntfBytes(rest)
	if err != nil || len(rest) != 0 || !reflect.DeepEqual(body, map[string]any{"a": int64(1)}) {
		t.Fatalf("body %#v rest % x err %v", body, rest, err)
	}

	tf := time.Unix(1700000000, 500_000_000)
	b, err = flbtest.EncodeChunk([]flbtest.Event{{Time: tf, Record: rec}},
		flbtest.WithFormat(flbtest.FormatLegacy), flbtest.WithTimeFormat(flbtest.TimeFloat))
	if err != nil {
		t.Fatal(err)
	}
	f, _, err := msgp.ReadFloat64Bytes(readPair(t, b))
	if err != nil || math.Abs(f-1700000000.5) > 1e-6 {
		t.Fatalf("float timestamp: %v %v", f, err)
	}
}

func TestEncodeGroupMarkersAndNestedMaps(t *testing.T) {
	events := []flbtest.Event{
		{Group: flbtest.GroupStart, Record: map[string]any{"resource": map[string]any{"service.name": "zeek"}}},
		{Time: t0, Metadata: map[string]any{"otlp": map[string]any{"severity": "info"}},
			Record: map[string]any{"id.orig_h": "10.0.0.1", "nested": map[string]any{"x": []any{int64(1), "two", map[string]any{"y": true}}}, "raw": flbtest.Raw{0xda, 0, 1, 'z'}}},
		{Group: flbtest.GroupEnd},
	}
	b, err := flbtest.EncodeChunk(events)
	if err != nil {
		t.Fatal(err)
	}
	again, _ := flbtest.EncodeChunk(events)
	if !bytes.Equal(b, again) {
		t.Fatal("encoding is not deterministic")
	}
	wantSec := []uint32{flbtest.GroupStartSeconds, uint32(t0.Unix()), flbtest.GroupEndSeconds}
	wantBody := []any{
		map[string]any{"resource": map[string]any{"service.name": "zeek"}},
		map[string]any{"id.orig_h": "10.0.0.1", "nested": map[string]any{"x": []any{int64(1), "two", map[string]any{"y": true}}}, "raw": "z"},
		map[string]any{},
	}
	rest := b
	for i := range events {
		rest = readPair(t, rest)
		rest = readPair(t, rest)
		sec, _, r := readEventTime(t, rest)
		if sec != wantSec[i] {
			t.Errorf("event %d: seconds %#x, want %#x", i, sec, wantSec[i])
		}
		var meta, body any
		if meta, r, err = msgp.ReadIntfBytes(r); err != nil {
			t.Fatal(err)
		}
		if i == 1 && !reflect.DeepEqual(meta, map[string]any{"otlp": map[string]any{"severity": "info"}}) {
			t.Errorf("metadata %#v", meta)
		}
		if body, rest, err = msgp.ReadIntfBytes(r); err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(body, wantBody[i]) {
			t.Errorf("event %d: body %#v, want %#v", i, body, wantBody[i])
		}
	}
	if len(rest) != 0 {
		t.Fatalf("%d trailing bytes", len(rest))
	}
}

func TestEncodeBinKeysAndErrors(t *testing.T) {
	b, err := flbtest.AppendEvent(nil, flbtest.Event{Time: t0, Record: map[string]any{"k": "v"}}, flbtest.WithBinKeys(), flbtest.WithFixArray())
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.HasSuffix(b, []byte{0x81, 0xc4, 1, 'k', 0xa1, 'v'}) {
		t.Fatalf("bin key not used: % x", b)
	}
	if _, err := flbtest.EncodeChunk([]flbtest.Event{{Time: time.Unix(-1, 0)}}); err == nil {
		t.Error("a time before 1970 should not fit an EventTime")
	}
	if _, err := flbtest.EncodeChunk([]flbtest.Event{{Time: t0, Record: map[string]any{"r": flbtest.Raw{0xda, 0}}}}); err == nil {
		t.Error("a truncated Raw value should be rejected")
	}
}

// The reference decoder (fluent-bit-go's output.GetRecord) must read what
// the encoder writes: EventTime v2 and legacy, array32 and fixarray.
func TestChunksDecodeWithFluentBitGo(t *testing.T) {
	rec := map[string]any{"msg": "hello", "n": int64(3)}
	cases := []struct {
		name string
		opts []flbtest.ChunkOption
	}{
		{"v2-array32", nil},
		{"v2-fixarray", []flbtest.ChunkOption{flbtest.WithFixArray()}},
		{"legacy-eventtime", []flbtest.ChunkOption{flbtest.WithFormat(flbtest.FormatLegacy)}},
		{"legacy-int", []flbtest.ChunkOption{flbtest.WithFormat(flbtest.FormatLegacy), flbtest.WithTimeFormat(flbtest.TimeInt)}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			ts := time.Unix(1700000000, 123456789)
			path := filepath.Join(t.TempDir(), "chunk.bin")
			if err := flbtest.WriteChunk(path, []flbtest.Event{{Time: ts, Record: rec}, {Time: ts, Record: rec}}, tc.opts...); err != nil {
				t.Fatal(err)
			}
			b, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			dec := output.NewDecoder(unsafe.Pointer(&b[0]), len(b))
			for i := 0; i < 2; i++ {
				ret, tsv, got := output.GetRecord(dec)
				if ret != 0 {
					t.Fatalf("record %d: GetRecord returned %d", i, ret)
				}
				switch v := tsv.(type) {
				case output.FLBTime:
					if !v.Time.Equal(ts) {
						t.Errorf("time %v, want %v", v.Time, ts)
					}
				case uint64:
					if int64(v) != ts.Unix() {
						t.Errorf("time %d, want %d", v, ts.Unix())
					}
				default:
					t.Errorf("timestamp type %T", tsv)
				}
				var msg string
				switch v := got["msg"].(type) {
				case []byte:
					msg = string(v)
				case string:
					msg = v
				}
				if msg != "hello" || len(got) != 2 {
					t.Errorf("record %#v", got)
				}
			}
			if ret, _, _ := output.GetRecord(dec); ret != -1 {
				t.Errorf("expected end of chunk, got %d", ret)
			}
		})
	}
}

func TestReadZeekTSV(t *testing.T) {
	p := filepath.Join(t.TempDir(), "http.log")
	log := "#separator \\x09\n#fields\tts\tid.orig_h\tid.resp_p\thost\ttags\tlabel\n#types\ttime\taddr\tport\tstring\tset[enum]\tstring\n" +
		"1655071298.201945\t147.32.81.167\t80\ti4.c.eset.com\t(empty)\tBenign\n" +
		"1655071299.5\t147.32.81.167\t443\t-\tA,B\tBenign\n"
	if err := os.WriteFile(p, []byte(log), 0o644); err != nil {
		t.Fatal(err)
	}
	recs, err := flbtest.ReadZeekTSV(p, 0, "label")
	if err != nil {
		t.Fatal(err)
	}
	want := []map[string]any{
		{"ts": 1655071298.201945, "id.orig_h": "147.32.81.167", "id.resp_p": int64(80), "host": "i4.c.eset.com"},
		{"ts": 1655071299.5, "id.orig_h": "147.32.81.167", "id.resp_p": int64(443), "tags": []any{"A", "B"}},
	}
	if !reflect.DeepEqual(recs, want) {
		t.Fatalf("got %v\nwant %v", recs, want)
	}
	end := time.Unix(1700000000, 0)
	evs := flbtest.Rebase(recs, end, 10*time.Second)
	if !evs[0].Time.Equal(end.Add(-10*time.Second)) || evs[1].Record["ts"] != float64(1699999995) {
		t.Fatalf("rebased %v %v", evs[0].Time, evs[1].Record["ts"])
	}
	if _, err := flbtest.ReadZeekTSV(p, 1); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte("1\t2\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := flbtest.ReadZeekTSV(p, 0); err == nil {
		t.Fatal("a log without headers accepted")
	}
}
