// Package flbtest lets the project's tests drive a Fluent Bit Go output plugin
// without Fluent Bit: it writes chunk files in the formats Fluent Bit hands to
// outputs, builds the C test host (build/flbhost/flbhost.c) and c-shared Go
// plugins, and runs the host against a plugin, parsing what it reports.
//
// A typical test:
//
//	host := flbtest.BuildHost(t)
//	so := flbtest.BuildPlugin(t, "./plugin") // slow: prefer once per test binary
//	file := filepath.Join(t.TempDir(), "chunk.bin")
//	err := flbtest.WriteChunk(file, []flbtest.Event{{Time: now, Record: map[string]any{"msg": "hi"}}})
//	res, err := flbtest.Run(ctx, flbtest.HostOptions{
//		Host: host, Plugin: so,
//		Instances: []flbtest.Instance{{Name: "beacongrid", Props: map[string]string{"key": "value"}}},
//		Chunks:    []flbtest.Chunk{{Instance: 0, Tag: "zeek.conn", File: file}},
//	})
//	// res.Flushes[0].RC == 1, res.Records == 1, ...
//
// The host reproduces the facts of /work/shared/fluent-bit-go-abi.md; see
// build/flbhost/README.md.
package flbtest

import (
	"encoding/binary"
	"fmt"
	"math"
	"os"
	"sort"
	"time"

	"github.com/tinylib/msgp/msgp"
)

// Group marks an event as an OpenTelemetry group marker.
type Group int

const (
	// NoGroup is an ordinary log event.
	NoGroup Group = iota
	// GroupStart is a group start marker: timestamp seconds 0xFFFFFFFF, the
	// body holds the group attributes.
	GroupStart
	// GroupEnd is a group end marker: timestamp seconds 0xFFFFFFFE.
	GroupEnd
)

// Group marker timestamp seconds, as Fluent Bit encodes them (the int32
// values -1 and -2 written as uint32).
const (
	GroupStartSeconds uint32 = 0xFFFFFFFF
	GroupEndSeconds   uint32 = 0xFFFFFFFE
)

// Event is one Fluent Bit log event.
type Event struct {
	// Time is the event timestamp. It must lie in [1970, 2106) for the
	// EventTime encoding.
	Time time.Time
	// Record is the body map. Values may be any type msgp.AppendIntf
	// accepts, nested map[string]any and []any, or Raw (a time.Time value
	// would get msgp's own extension type, not Fluent Bit's). Map keys
	// are written in sorted order so that chunks are reproducible.
	Record map[string]any
	// Metadata is the v2 metadata map (ignored by the legacy format).
	Metadata map[string]any
	// Group makes the event a group marker; its Time is then ignored.
	Group Group
}

// Raw is a pre-encoded msgpack value written verbatim, e.g. to use a width
// the encoder would not choose (str32, uint64 for a small number...).
type Raw []byte

// Format is the event layout.
type Format int

const (
	// FormatV2 is Fluent Bit 2+'s [[timestamp, metadata], body].
	FormatV2 Format = iota
	// FormatLegacy is [timestamp, body].
	FormatLegacy
)

// TimeFormat is how a timestamp is encoded.
type TimeFormat int

const (
	// TimeEventTime is msgpack ext type 0 with 8 bytes: big-endian uint32
	// seconds and uint32 nanoseconds (fixext8 0xd7 0x00).
	TimeEventTime TimeFormat = iota
	// TimeInt is a positive integer of seconds, packed as msgpack uint.
	TimeInt
	// TimeFloat is a float64 of seconds.
	TimeFloat
)

type chunkConfig struct {
	format   Format
	time     TimeFormat
	fixArray bool
	binKeys  bool
}

// ChunkOption changes how events are encoded.
type ChunkOption func(*chunkConfig)

// WithFormat selects the event layout (default FormatV2).
func WithFormat(f Format) ChunkOption { return func(c *chunkConfig) { c.format = f } }

// WithTimeFormat selects the timestamp encoding of ordinary events (default
// TimeEventTime). Group markers always use EventTime, as in Fluent Bit.
func WithTimeFormat(t TimeFormat) ChunkOption { return func(c *chunkConfig) { c.time = t } }

// WithFixArray writes the event's outer arrays as fixarray (0x92), as newer
// Fluent Bit does. The default is array32 (0xdd 00 00 00 02), as v4.2.8 does.
func WithFixArray() ChunkOption { return func(c *chunkConfig) { c.fixArray = true } }

// WithBinKeys writes map keys as msgpack bin instead of str.
func WithBinKeys() ChunkOption { return func(c *chunkConfig) { c.binKeys = true } }

// AppendEventTime appends t as a Fluent Bit EventTime (ext type 0).
func AppendEventTime(b []byte, t time.Time) ([]byte, error) {
	sec := t.Unix()
	if sec < 0 || sec > math.MaxUint32 {
		return b, fmt.Errorf("flbtest: time %v does not fit an EventTime", t)
	}
	return appendEventTimeRaw(b, uint32(sec), uint32(t.Nanosecond()))
}

func appendEventTimeRaw(b []byte, sec, nsec uint32) ([]byte, error) {
	var data [8]byte
	binary.BigEndian.PutUint32(data[0:4], sec)
	binary.BigEndian.PutUint32(data[4:8], nsec)
	return msgp.AppendExtension(b, &msgp.RawExtension{Type: 0, Data: data[:]})
}

func appendPairHeader(b []byte, cfg *chunkConfig) []byte {
	if cfg.fixArray {
		return msgp.AppendArrayHeader(b, 2)
	}
	// array32 with two elements, the width Fluent Bit v4.2.8 emits.
	return append(b, 0xdd, 0x00, 0x00, 0x00, 0x02)
}

func (cfg *chunkConfig) appendTime(b []byte, e Event) ([]byte, error) {
	switch e.Group {
	case GroupStart:
		return appendEventTimeRaw(b, GroupStartSeconds, 0)
	case GroupEnd:
		return appendEventTimeRaw(b, GroupEndSeconds, 0)
	case NoGroup:
	default:
		return b, fmt.Errorf("flbtest: unknown group marker %d", e.Group)
	}
	switch cfg.time {
	case TimeEventTime:
		return AppendEventTime(b, e.Time)
	case TimeInt:
		if e.Time.Unix() < 0 {
			return b, fmt.Errorf("flbtest: time %v is before 1970", e.Time)
		}
		// msgpack-c (and so Fluent Bit) packs a non-negative integer
		// with the unsigned formats.
		return msgp.AppendUint64(b, uint64(e.Time.Unix())), nil
	case TimeFloat:
		return msgp.AppendFloat64(b, float64(e.Time.UnixNano())/1e9), nil
	default:
		return b, fmt.Errorf("flbtest: unknown time format %d", cfg.time)
	}
}

// AppendEvent appends one event in the chosen format.
func AppendEvent(b []byte, e Event, opts ...ChunkOption) ([]byte, error) {
	cfg := chunkConfig{}
	for _, o := range opts {
		o(&cfg)
	}
	return cfg.appendEvent(b, e)
}

func (cfg *chunkConfig) appendEvent(b []byte, e Event) ([]byte, error) {
	var err error
	b = appendPairHeader(b, cfg)
	if cfg.format == FormatV2 {
		b = appendPairHeader(b, cfg)
	} else if cfg.format != FormatLegacy {
		return b, fmt.Errorf("flbtest: unknown format %d", cfg.format)
	}
	if b, err = cfg.appendTime(b, e); err != nil {
		return b, err
	}
	if cfg.format == FormatV2 {
		if b, err = cfg.appendMap(b, e.Metadata); err != nil {
			return b, err
		}
	}
	return cfg.appendMap(b, e.Record)
}

// EncodeChunk encodes events back to back, as Fluent Bit passes them to a
// flush: no outer array, no count.
func EncodeChunk(events []Event, opts ...ChunkOption) ([]byte, error) {
	cfg := chunkConfig{}
	for _, o := range opts {
		o(&cfg)
	}
	var b []byte
	for i, e := range events {
		var err error
		if b, err = cfg.appendEvent(b, e); err != nil {
			return nil, fmt.Errorf("event %d: %w", i, err)
		}
	}
	return b, nil
}

// WriteChunk writes EncodeChunk(events, opts...) to path.
func WriteChunk(path string, events []Event, opts ...ChunkOption) error {
	b, err := EncodeChunk(events, opts...)
	if err != nil {
		return err
	}
	return os.WriteFile(path, b, 0o644)
}

func (cfg *chunkConfig) appendKey(b []byte, k string) []byte {
	if cfg.binKeys {
		return msgp.AppendBytes(b, []byte(k))
	}
	return msgp.AppendString(b, k)
}

func (cfg *chunkConfig) appendMap(b []byte, m map[string]any) ([]byte, error) {
	if len(m) > math.MaxUint32 {
		return b, fmt.Errorf("flbtest: map too large")
	}
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	b = msgp.AppendMapHeader(b, uint32(len(m)))
	for _, k := range keys {
		var err error
		b = cfg.appendKey(b, k)
		if b, err = cfg.appendValue(b, m[k]); err != nil {
			return b, fmt.Errorf("key %q: %w", k, err)
		}
	}
	return b, nil
}

func (cfg *chunkConfig) appendValue(b []byte, v any) ([]byte, error) {
	switch x := v.(type) {
	case Raw:
		if _, err := msgp.Skip(x); err != nil {
			return b, fmt.Errorf("flbtest: Raw value is not msgpack: %w", err)
		}
		return append(b, x...), nil
	case map[string]any:
		return cfg.appendMap(b, x)
	case map[string]string:
		m := make(map[string]any, len(x))
		for k, s := range x {
			m[k] = s
		}
		return cfg.appendMap(b, m)
	case []any:
		b = msgp.AppendArrayHeader(b, uint32(len(x)))
		for i, e := range x {
			var err error
			if b, err = cfg.appendValue(b, e); err != nil {
				return b, fmt.Errorf("index %d: %w", i, err)
			}
		}
		return b, nil
	default:
		return msgp.AppendIntf(b, v)
	}
}
