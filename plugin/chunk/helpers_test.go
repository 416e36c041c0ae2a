package chunk

import (
	"encoding/binary"
	"fmt"
	"math"
	"strings"

	"github.com/tinylib/msgp/msgp"
)

// A tiny msgpack builder for tests, on top of msgp's Append* functions. Values:
//
//	obj{k1, v1, k2, v2}  map in this key order      arr{...}  array
//	string, []byte, int, int64, uint64, float64, float32, bool, nil
//	et{sec, nsec}        EventTime ext as fixext8   raw(...)  bytes as they are
//	w16{v}, w32{v}       obj/arr/string/[]byte with a 16/32-bit length header
//	w8{v}                string with a str8 header
type (
	obj []any
	arr []any
	raw []byte
	et  struct{ sec, nsec uint32 }
	w8  struct{ v any }
	w16 struct{ v any }
	w32 struct{ v any }
)

func (e *et) ExtensionType() int8 { return 0 }
func (e *et) Len() int            { return 8 }
func (e *et) MarshalBinaryTo(b []byte) error {
	binary.BigEndian.PutUint32(b, e.sec)
	binary.BigEndian.PutUint32(b[4:], e.nsec)
	return nil
}
func (e *et) UnmarshalBinary(b []byte) error {
	e.sec, e.nsec = binary.BigEndian.Uint32(b), binary.BigEndian.Uint32(b[4:])
	return nil
}

func enc(b []byte, v any) []byte {
	switch v := v.(type) {
	case raw:
		return append(b, v...)
	case obj:
		b = msgp.AppendMapHeader(b, uint32(len(v)/2))
		return encAll(b, v)
	case arr:
		b = msgp.AppendArrayHeader(b, uint32(len(v)))
		return encAll(b, v)
	case w8:
		s := v.v.(string)
		return append(append(b, 0xd9, byte(len(s))), s...)
	case w16:
		return encWide(b, v.v, 2)
	case w32:
		return encWide(b, v.v, 4)
	case string:
		return msgp.AppendString(b, v)
	case []byte:
		return msgp.AppendBytes(b, v)
	case int:
		return msgp.AppendInt64(b, int64(v))
	case int64:
		return msgp.AppendInt64(b, v)
	case uint64:
		return msgp.AppendUint64(b, v)
	case float64:
		return msgp.AppendFloat64(b, v)
	case float32:
		return msgp.AppendFloat32(b, v)
	case bool:
		return msgp.AppendBool(b, v)
	case nil:
		return msgp.AppendNil(b)
	case et:
		b, err := msgp.AppendExtension(b, &v)
		if err != nil {
			panic(err)
		}
		return b
	}
	panic(fmt.Sprintf("enc: unsupported %T", v))
}

func encAll(b []byte, vs []any) []byte {
	for _, x := range vs {
		b = enc(b, x)
	}
	return b
}

// encWide writes v with a length header of w (2 or 4) bytes.
func encWide(b []byte, v any, w int) []byte {
	hdr := func(lead16, lead32 byte, n int) {
		if w == 2 {
			b = binary.BigEndian.AppendUint16(append(b, lead16), uint16(n))
		} else {
			b = binary.BigEndian.AppendUint32(append(b, lead32), uint32(n))
		}
	}
	switch v := v.(type) {
	case obj:
		hdr(0xde, 0xdf, len(v)/2)
		return encAll(b, v)
	case arr:
		hdr(0xdc, 0xdd, len(v))
		return encAll(b, v)
	case string:
		hdr(0xda, 0xdb, len(v))
		return append(b, v...)
	case []byte:
		if w == 2 {
			b = binary.BigEndian.AppendUint16(append(b, 0xc5), uint16(len(v)))
		} else {
			b = binary.BigEndian.AppendUint32(append(b, 0xc6), uint32(len(v)))
		}
		return append(b, v...)
	}
	panic(fmt.Sprintf("encWide: unsupported %T", v))
}

// v2 is a Fluent Bit v2 event [[ts, {}], body]; legacy is [ts, body].
func v2(ts, body any) arr     { return arr{arr{ts, obj{}}, body} }
func legacy(ts, body any) arr { return arr{ts, body} }

// chunkOf concatenates the encoding of objects.
func chunkOf(objects ...any) []byte {
	var b []byte
	for _, o := range objects {
		b = enc(b, o)
	}
	return b
}

// fmtEvent renders an event compactly: "sec.nsec slot=kind:value ...".
func fmtEvent(ev *Event) string {
	var sb strings.Builder
	fmt.Fprintf(&sb, "%d.%09d", ev.Sec, ev.Nsec)
	for i, v := range ev.Fields {
		if v.Kind == KindNone {
			continue
		}
		fmt.Fprintf(&sb, " %d=%s", i, fmtValue(v))
	}
	return sb.String()
}

func fmtValue(v Value) string {
	switch v.Kind {
	case KindStr:
		return fmt.Sprintf("str:%q", v.Str)
	case KindInt:
		return fmt.Sprintf("int:%d", v.Int)
	case KindUint:
		return fmt.Sprintf("uint:%d", v.Uint)
	case KindFloat:
		if math.IsNaN(v.Float) {
			return "float:NaN"
		}
		return fmt.Sprintf("float:%g", v.Float)
	case KindBool:
		return fmt.Sprintf("bool:%t", v.Bool)
	case KindNil:
		return "nil"
	case KindTime:
		return fmt.Sprintf("time:%d.%09d", v.Sec, v.Nsec)
	}
	return v.Kind.String()
}

// readAll decodes chunk and returns the rendered events, the stats and the
// error.
func readAll(chunk []byte, m Matcher, slots int) ([]string, Stats, error) {
	var r Reader
	var ev Event
	r.Reset(chunk, m, slots)
	var got []string
	for r.Next(&ev) {
		got = append(got, fmtEvent(&ev))
	}
	return got, r.Stats(), r.Err()
}
