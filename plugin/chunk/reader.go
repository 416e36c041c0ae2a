package chunk

import (
	"encoding/binary"
	"fmt"
	"math"
	"sync"
	"unsafe"

	"github.com/tinylib/msgp/msgp"
)

const (
	// MaxDepth is the deepest map level that is flattened into paths; the
	// body map is level 1. Deeper maps are skipped and counted in
	// Stats.DeepMaps.
	MaxDepth = 8

	// MaxPath is the longest nested path, in bytes, that is built and matched.
	// Longer nested paths are skipped and counted in Stats.LongPaths.
	// Top-level keys are matched in place and are not limited.
	MaxPath = 256
)

// Kind tells which field of a Value holds the decoded value.
type Kind uint8

// Value kinds.
const (
	// KindNone: the slot was not found in the record (or only with a value of
	// an unsupported type: array, map, or an extension other than EventTime).
	KindNone Kind = iota
	// KindStr: Str holds a msgpack str or bin, pointing into the chunk.
	KindStr
	// KindInt: Int holds a negative integer.
	KindInt
	// KindUint: Uint holds a non-negative integer, whatever its encoding
	// (positive fixint, uint8..64, or int8..64 carrying a value >= 0).
	KindUint
	// KindFloat: Float holds a float32 or float64.
	KindFloat
	// KindBool: Bool holds the value.
	KindBool
	// KindNil: the key is present with a nil value.
	KindNil
	// KindTime: Sec and Nsec hold an EventTime extension (type 0, 8 bytes).
	KindTime
)

var kindNames = [...]string{"none", "str", "int", "uint", "float", "bool", "nil", "time"}

func (k Kind) String() string {
	if int(k) < len(kindNames) {
		return kindNames[k]
	}
	return fmt.Sprintf("Kind(%d)", uint8(k))
}

// Value is one decoded record field. Only the field named by Kind is set.
//
// Str points into the chunk given to Reader.Reset: it is valid until the chunk
// is released (the end of the flush). Copy it to keep it longer.
type Value struct {
	Kind      Kind
	Bool      bool
	Sec, Nsec uint32
	Str       []byte
	Int       int64
	Uint      uint64
	Float     float64
}

// Event is one decoded event.
type Event struct {
	// Sec and Nsec are the event timestamp, Sec >= 0. Nsec is as encoded
	// (EventTime nanoseconds are not range-checked, as in Fluent Bit).
	Sec, Nsec int64
	// Fields has one Value per slot (the slots argument of Reader.Reset);
	// Kind is KindNone for slots absent from the record (the other fields
	// of such a slot are undefined). It is reused by every call to
	// Reader.Next.
	Fields []Value
}

// Stats counts what a Reader met since the last Reset.
type Stats struct {
	// Events is the number of events delivered by Next.
	Events uint64
	// GroupMarkers is the number of group start/end markers skipped.
	GroupMarkers uint64
	// BadEvents is the number of well-formed objects of the wrong shape
	// skipped: not a two-element array, bad timestamp, body not a map.
	BadEvents uint64
	// DeepMaps is the number of maps nested deeper than MaxDepth skipped
	// inside delivered events.
	DeepMaps uint64
	// LongPaths is the number of nested keys skipped because their path is
	// longer than MaxPath.
	LongPaths uint64
}

// ChunkError reports malformed msgpack. Decoding stops at the fault; the
// events before it were delivered.
type ChunkError struct {
	// Offset is the byte offset in the chunk where decoding failed: the
	// start of the object that could not be read.
	Offset int
	// Err is the msgp error, for example msgp.ErrShortBytes for a truncated
	// chunk or msgp.InvalidPrefixError.
	Err error
}

func (e *ChunkError) Error() string {
	return fmt.Sprintf("chunk: malformed msgpack at offset %d: %v", e.Offset, e.Err)
}

func (e *ChunkError) Unwrap() error { return e.Err }

// Matcher maps a record key path to a field slot.
//
// Match returns the slot for path, or slot -1 when the field is not wanted,
// and the rank of path among the slot's aliases: when several aliases of one
// slot occur in a record, the lowest rank wins. Match must not keep path,
// which is valid only during the call, and must not allocate.
type Matcher interface {
	Match(path []byte) (slot, rank int)
}

// PrefixMatcher may be implemented by a Matcher to let the Reader skip nested
// maps that hold no wanted key. WantPrefix reports whether any wanted path
// starts with prefix followed by a dot. The Reader calls it with the path of
// a nested map before descending into it; path is valid only during the call.
type PrefixMatcher interface {
	WantPrefix(prefix []byte) bool
}

// nilRank is the rank of a nil value: any non-nil alias beats it.
const nilRank = math.MaxInt32

type frame struct {
	left uint32 // key/value pairs left in this map
	plen int    // length of this map's path prefix in Reader.path
}

// Reader decodes the events of a Fluent Bit chunk in place.
//
// The zero Reader reads an empty chunk; call Reset before use. A Reader may be
// reused for any number of chunks and allocates nothing per event once
// Event.Fields has grown to the number of slots.
type Reader struct {
	chunk []byte // the whole chunk
	pos   int    // the offset of its unread rest

	m     Matcher
	ks    *KeySet // m when it is a *KeySet: called without an interface call
	pm    PrefixMatcher
	slots int
	rank  []int32 // rank of the value held in each slot of the current event

	noScan bool // tests: read every pair with readPair (msgp), not scanPairs

	err   error
	stats Stats

	stack [MaxDepth + 1]frame // indexed by map level
	path  [MaxPath]byte
}

// Reset makes r read chunk, matching body keys with m into slots fields.
// chunk must not change until r is done with it, and every Str delivered from
// it is valid only as long as chunk is (for a plugin: until the flush returns).
// m may be nil, and slots 0, to read timestamps only. Slots returned by m
// outside [0, slots) are ignored.
func (r *Reader) Reset(chunk []byte, m Matcher, slots int) {
	if slots < 0 {
		slots = 0
	}
	r.chunk = chunk
	r.pos = 0
	if ks, ok := m.(*KeySet); ok && ks == nil {
		m = nil // a nil *KeySet wants nothing
	}
	r.m = m
	r.ks, _ = m.(*KeySet)
	r.pm, _ = m.(PrefixMatcher)
	r.slots = slots
	if cap(r.rank) < slots {
		r.rank = make([]int32, slots)
	}
	r.rank = r.rank[:slots]
	r.err = nil
	r.stats = Stats{}
}

// Err returns nil if reading stopped at the clean end of the chunk, or a
// *ChunkError if the chunk is malformed.
func (r *Reader) Err() error { return r.err }

// Stats returns the counts since the last Reset.
func (r *Reader) Stats() Stats { return r.stats }

// Offset returns the number of chunk bytes consumed: after Next returns true
// it is the offset just past the delivered event.
func (r *Reader) Offset() int { return r.pos }

var readerPool sync.Pool

// GetReader returns a Reader from a pool. Return it with PutReader.
func GetReader() *Reader {
	if v := readerPool.Get(); v != nil {
		return v.(*Reader)
	}
	return &Reader{}
}

// PutReader drops r's reference to its chunk and matcher and returns r to the
// pool. r must not be used afterwards.
func PutReader(r *Reader) {
	r.Reset(nil, nil, 0)
	readerPool.Put(r)
}

type status uint8

const (
	stEvent status = iota
	stMarker
	stBad
)

// Next decodes the next event into ev, reusing ev.Fields. It returns false at
// the end of the chunk or on malformed msgpack; Err tells which. Group markers
// and events of the wrong shape are skipped and counted in Stats. The
// contents of ev are undefined after Next returns false.
func (r *Reader) Next(ev *Event) bool {
	if r.err != nil {
		return false
	}
	if cap(ev.Fields) < r.slots {
		ev.Fields = make([]Value, r.slots)
	}
	if len(ev.Fields) != r.slots {
		ev.Fields = ev.Fields[:r.slots]
	}
	if r.ks != nil && r.slots > 0 {
		// The usual event, read as readEvent and readBody would read it,
		// with calls fewer: the head Fluent Bit writes, and a KeySet.
		if sec, nsec, n, p, ok := eventHead(r.chunk[r.pos:]); ok {
			ev.Sec, ev.Nsec = sec, nsec
			resetFields(ev.Fields)
			p += r.pos
			if !r.noScan {
				p, n = r.scanPairs(r.chunk, p, n, ev.Fields)
			}
			var err error
			if n > 0 {
				p, err = r.readPairs(p, n, ev.Fields)
			}
			r.pos = p
			if err != nil {
				r.err = &ChunkError{Offset: p, Err: err}
				return false
			}
			r.stats.Events++
			return true
		}
	}
	for r.pos < len(r.chunk) {
		start := r.chunk[r.pos:]
		st, b, err := r.readEvent(start, ev)
		if err == nil && st == stBad {
			b, err = skipN(start, 1)
		}
		if err != nil {
			r.pos = len(r.chunk) - len(b)
			r.err = &ChunkError{Offset: r.pos, Err: err}
			return false
		}
		r.pos = len(r.chunk) - len(b)
		switch st {
		case stEvent:
			r.stats.Events++
			return true
		case stMarker:
			r.stats.GroupMarkers++
		default:
			r.stats.BadEvents++
		}
	}
	return false
}

// resetFields marks every slot of f absent for the next event: only Kind,
// which every reader of a Value checks first (the other fields are those
// of an earlier event until a value is decoded into the slot). Clearing
// the whole Values costs a call to the runtime's memclr and its write
// barrier check, about 100 instructions per event of 8 slots.
func resetFields(f []Value) {
	for ; len(f) >= 4; f = f[4:] { // four a round: the loop's own work would be most of it
		f[0].Kind, f[1].Kind, f[2].Kind, f[3].Kind = KindNone, KindNone, KindNone, KindNone
	}
	for i := range f {
		f[i].Kind = KindNone
	}
}

// readEvent reads the event at the start of b. It returns the status and the
// rest of b after the event, or stBad as soon as the shape is wrong (the
// caller then skips the whole object), or an error with b positioned at the
// object that failed.
func (r *Reader) readEvent(b []byte, ev *Event) (status, []byte, error) {
	if sec, nsec, n, p, ok := eventHead(b); ok {
		ev.Sec, ev.Nsec = sec, nsec
		resetFields(ev.Fields)
		b, err := r.readBody(b[p:], n, ev.Fields)
		if err != nil {
			return 0, b, err
		}
		return stEvent, b, nil
	}
	if len(b) == 0 || !isArray(b[0]) {
		return stBad, b, nil
	}
	n, o, err := arrayHeader(b)
	if err != nil {
		return 0, b, err
	}
	if n != 2 {
		return stBad, b, nil
	}
	b = o

	var sec, nsec int64
	var ok bool
	if len(b) > 0 && isArray(b[0]) {
		// v2: [[ts, metadata], body]
		hn, o, err := arrayHeader(b)
		if err != nil {
			return 0, b, err
		}
		if hn == 0 {
			return stBad, b, nil
		}
		b = o
		sec, nsec, ok, o, err = readTime(b)
		if err != nil {
			return 0, b, err
		}
		if !ok {
			return stBad, b, nil
		}
		// Skip the metadata (and any further header element) unread.
		if hn == 2 && len(o) > 0 && o[0] == 0x80 { // {}: the usual metadata
			b = o[1:]
		} else if b, err = skipN(o, uint64(hn)-1); err != nil {
			return 0, b, err
		}
	} else {
		// legacy: [ts, body]
		sec, nsec, ok, o, err = readTime(b)
		if err != nil {
			return 0, b, err
		}
		if !ok {
			return stBad, b, nil
		}
		b = o
	}

	switch sec {
	case 0xFFFFFFFF, 0xFFFFFFFE, -1, -2:
		b, err = skipN(b, 1) // group attributes or empty body
		return stMarker, b, err
	}
	if sec < 0 {
		return stBad, b, nil
	}

	if len(b) == 0 {
		return 0, b, msgp.ErrShortBytes
	}
	if !isMap(b[0]) {
		return stBad, b, nil
	}
	sz, o, err := mapHeader(b)
	if err != nil {
		return 0, b, err
	}
	ev.Sec, ev.Nsec = sec, nsec
	resetFields(ev.Fields)
	if b, err = r.readBody(o, sz, ev.Fields); err != nil {
		return 0, b, err
	}
	return stEvent, b, nil
}

// eventHead reads the head of the event at the start of b when it has the
// layout Fluent Bit writes: a two-element fixarray or array32, in v2 a
// nested [EventTime, {}] (fixarray or array32), else an EventTime (fixext8),
// then a fixmap or map16 body header; no group marker. It returns the
// timestamp, the body's pair count and its offset, or ok false for any
// other head, which the general path of readEvent then reads.
func eventHead(b []byte) (sec, nsec int64, n uint32, p int, ok bool) {
	// The two heads Fluent Bit writes, compared as words: v4.2.8's
	// [[EventTime, {}], body] with array32 headers, and the fixarray one.
	const v4 = 0xdd_00_00_00_02_dd_00_00_00_02_d7_00 // 12 bytes, big-endian
	var t int                                        // the offset of the EventTime's payload
	switch {
	case len(b) >= 23 && binary.BigEndian.Uint64(b) == v4>>32 && binary.BigEndian.Uint32(b[8:]) == v4&0xffffffff && b[20] == 0x80:
		t = 12
	case len(b) >= 15 && binary.BigEndian.Uint32(b) == 0x92_92_d7_00 && b[12] == 0x80:
		t = 4
	default:
		return eventHeadAny(b)
	}
	// len(b) >= t+11: the payload is b[t:t+8], {} is b[t+8], the body's
	// header starts at b[t+9] (read without bounds checks, see at).
	base := unsafe.Pointer(unsafe.SliceData(b))
	sec, nsec = int64(binary.BigEndian.Uint32((*[4]byte)(unsafe.Add(base, t))[:])), int64(binary.BigEndian.Uint32((*[4]byte)(unsafe.Add(base, t+4))[:]))
	if sec >= 0xFFFFFFFE { // a group marker
		return 0, 0, 0, 0, false
	}
	p = t + 9
	switch h := *(*byte)(unsafe.Add(base, p)); {
	case h&0xf0 == 0x80: // fixmap
		return sec, nsec, uint32(h & 0x0f), p + 1, true
	case h == 0xde && p+3 <= len(b): // map16: p+1, p+2 < len(b)
		return sec, nsec, uint32(binary.BigEndian.Uint16((*[2]byte)(unsafe.Add(base, p+1))[:])), p + 3, true
	}
	return eventHeadAny(b)
}

// eventHeadAny is eventHead for any of the layouts it accepts.
func eventHeadAny(b []byte) (sec, nsec int64, n uint32, p int, ok bool) {
	if p = pairHeader(b, 0); p == 0 {
		return
	}
	v2 := false
	if q := pairHeader(b, p); q > p {
		p, v2 = q, true
	}
	if p+10 > len(b) || b[p] != 0xd7 || b[p+1] != 0 {
		return
	}
	sec, nsec = int64(binary.BigEndian.Uint32(b[p+2:])), int64(binary.BigEndian.Uint32(b[p+6:]))
	if sec >= 0xFFFFFFFE { // a group marker
		return
	}
	if p += 10; v2 {
		if p >= len(b) || b[p] != 0x80 { // metadata other than {}
			return
		}
		p++
	}
	switch {
	case p < len(b) && b[p]&0xf0 == 0x80: // fixmap
		return sec, nsec, uint32(b[p] & 0x0f), p + 1, true
	case p+3 <= len(b) && b[p] == 0xde: // map16
		return sec, nsec, uint32(binary.BigEndian.Uint16(b[p+1:])), p + 3, true
	}
	return
}

// pairHeader returns the offset after the header of a two-element array at
// b[p], a fixarray (0x92) or an array32 (0xdd 0 0 0 2), or p for any other
// object.
func pairHeader(b []byte, p int) int {
	if p < len(b) && b[p] == 0x92 {
		return p + 1
	}
	if p+5 <= len(b) && b[p] == 0xdd && binary.BigEndian.Uint32(b[p+1:]) == 2 {
		return p + 5
	}
	return p
}

// readTime reads an event timestamp. ok is false for a well-formed object
// that is not a valid timestamp; err is set for malformed msgpack. Integer
// timestamps are returned as they are (negative ones included, which the
// caller checks for group markers); the seconds of a float must lie in
// [0, 2^63).
func readTime(b []byte) (sec, nsec int64, ok bool, o []byte, err error) {
	if len(b) >= 10 && b[0] == 0xd7 && b[1] == 0 { // fixext8 EventTime: the usual
		return int64(binary.BigEndian.Uint32(b[2:])), int64(binary.BigEndian.Uint32(b[6:])), true, b[10:], nil
	}
	switch msgp.NextType(b) {
	case msgp.ExtensionType, msgp.TimeType:
		typ, data, o, err := readExt(b)
		if err != nil {
			return 0, 0, false, b, err
		}
		sec, nsec, ok = extTime(typ, data)
		return sec, nsec, ok, o, nil
	case msgp.UintType:
		u, o, err := msgp.ReadUint64Bytes(b)
		if err != nil {
			return 0, 0, false, b, err
		}
		return int64(u), 0, true, o, nil // > MaxInt64 wraps negative: marker or bad
	case msgp.IntType:
		i, o, err := msgp.ReadInt64Bytes(b)
		if err != nil {
			return 0, 0, false, b, err
		}
		return i, 0, true, o, nil
	case msgp.Float64Type, msgp.Float32Type:
		f, o, err := msgp.ReadFloat64Bytes(b)
		if err != nil {
			return 0, 0, false, b, err
		}
		if !(f >= 0 && f < 1<<63) {
			return 0, 0, false, o, nil
		}
		s := math.Floor(f)
		ns := int64((f - s) * 1e9)
		if ns > 999999999 {
			ns = 999999999
		}
		return int64(s), ns, true, o, nil
	case msgp.InvalidType:
		if len(b) == 0 {
			return 0, 0, false, b, msgp.ErrShortBytes
		}
		_, err := msgp.Skip(b)
		return 0, 0, false, b, err
	default:
		return 0, 0, false, b, nil
	}
}

// extTime decodes the payload of a timestamp extension.
func extTime(typ int8, data []byte) (sec, nsec int64, ok bool) {
	switch {
	case typ == 0 && len(data) == 8: // Fluent Bit EventTime
		return int64(binary.BigEndian.Uint32(data)), int64(binary.BigEndian.Uint32(data[4:])), true
	case typ == msgp.MsgTimeExtension:
		switch len(data) {
		case 4:
			return int64(binary.BigEndian.Uint32(data)), 0, true
		case 8:
			v := binary.BigEndian.Uint64(data)
			nsec = int64(v >> 34)
			return int64(v & (1<<34 - 1)), nsec, nsec <= 999999999
		case 12:
			nsec = int64(binary.BigEndian.Uint32(data))
			sec = int64(binary.BigEndian.Uint64(data[4:]))
			return sec, nsec, nsec <= 999999999 && sec >= 0
		}
	}
	return 0, 0, false
}

// readExt reads the extension object at the start of b and returns its type,
// its payload (pointing into b) and the rest of b. b must start with an ext
// type byte.
func readExt(b []byte) (typ int8, data, o []byte, err error) {
	if len(b) < 2 {
		return 0, nil, b, msgp.ErrShortBytes
	}
	var size, off int
	switch b[0] {
	case 0xd4, 0xd5, 0xd6, 0xd7, 0xd8: // fixext1/2/4/8/16
		size, off = 1<<(b[0]-0xd4), 2
	case 0xc7: // ext8
		if len(b) < 3 {
			return 0, nil, b, msgp.ErrShortBytes
		}
		size, off = int(b[1]), 3
	case 0xc8: // ext16
		if len(b) < 4 {
			return 0, nil, b, msgp.ErrShortBytes
		}
		size, off = int(binary.BigEndian.Uint16(b[1:])), 4
	case 0xc9: // ext32
		if len(b) < 6 {
			return 0, nil, b, msgp.ErrShortBytes
		}
		size, off = int(binary.BigEndian.Uint32(b[1:])), 6
	default:
		return 0, nil, b, msgp.InvalidPrefixError(b[0])
	}
	if size < 0 || len(b)-off < size { // size < 0: ext32 overflowing a 32-bit int
		return 0, nil, b, msgp.ErrShortBytes
	}
	return int8(b[off-1]), b[off : off+size : off+size], b[off+size:], nil
}

// readBody reads the n key/value pairs of the body map at the start of b into
// f. This loop handles the top level, where the path is the key itself.
// scanPairs reads the common pairs, and readPair each pair scanPairs
// stops at.
func (r *Reader) readBody(b []byte, n uint32, f []Value) ([]byte, error) {
	if len(f) == 0 || r.m == nil {
		return skipN(b, 2*uint64(n))
	}
	if r.ks == nil {
		return r.readBodyMatcher(b, n, f)
	}
	p, err := r.readPairs(len(r.chunk)-len(b), n, f)
	return r.chunk[p:], err
}

// readPairs reads the n top-level pairs at r.chunk[p:] into f with a KeySet,
// scanPairs the common ones and readPair each one scanPairs stops at. It
// returns the position after the pairs, or of the object that failed.
// Positions count in the whole chunk: scanPairs reads the 8 bytes that end
// with a key, which may start before the body.
func (r *Reader) readPairs(p int, n uint32, f []Value) (int, error) {
	c := r.chunk
	for {
		if !r.noScan {
			p, n = r.scanPairs(c, p, n, f)
		}
		if n == 0 {
			return p, nil
		}
		var err error
		if p, err = r.readPair(c, p, f); err != nil {
			return p, err
		}
		n--
	}
}

// readPair reads the pair at b[p] of the body map, a top-level key and its
// value, into f or past it, with msgp's readers, and returns the position
// after the pair, or the position of the object that failed.
func (r *Reader) readPair(b []byte, p int, f []Value) (int, error) {
	key, o, skipped, err := readKey(b[p:])
	if err != nil || skipped { // skipped: not a string key, the pair was skipped
		return len(b) - len(o), err
	}
	if len(o) > 0 && isMap(o[0]) {
		o, err = r.readTopMap(key, o, f)
	} else {
		o, err = r.readField(key, o, f)
	}
	return len(b) - len(o), err
}

// readBodyMatcher is readBody for a Matcher other than a KeySet.
func (r *Reader) readBodyMatcher(b []byte, n uint32, f []Value) ([]byte, error) {
	for ; n > 0; n-- {
		key, o, skipped, err := readKey(b)
		if err != nil || skipped {
			if b = o; err != nil {
				return b, err
			}
			continue
		}
		b = o
		if len(b) > 0 && isMap(b[0]) {
			b, err = r.readTopMap(key, b, f)
		} else {
			b, err = r.readField(key, b, f)
		}
		if err != nil {
			return b, err
		}
	}
	return b, nil
}

// readKey reads a str or bin key. For any other key type it skips the key and
// its value and reports skipped.
func readKey(b []byte) (key, o []byte, skipped bool, err error) {
	switch msgp.NextType(b) {
	case msgp.StrType:
		key, o, err = msgp.ReadStringZC(b)
	case msgp.BinType:
		key, o, err = msgp.ReadBytesZC(b)
	default:
		o, err = skipN(b, 2)
		return nil, o, true, err
	}
	if err != nil {
		return nil, b, false, err
	}
	return key, o, false, nil
}

// readTopMap flattens the nested map at the start of b, the value of the
// top-level key, unless it is too long or unwanted.
func (r *Reader) readTopMap(key, b []byte, f []Value) ([]byte, error) {
	switch {
	case len(key) >= MaxPath:
		r.stats.LongPaths++
		return skipN(b, 1)
	case r.ks != nil && !r.ks.WantPrefix(key), r.ks == nil && r.pm != nil && !r.pm.WantPrefix(key):
		return skipN(b, 1)
	}
	sz, o, err := msgp.ReadMapHeaderBytes(b)
	if err != nil {
		return b, err
	}
	copy(r.path[:], key)
	return r.readNested(o, sz, len(key), f)
}

// readField matches path and decodes the value at the start of b into its
// slot, or skips it.
func (r *Reader) readField(path, b []byte, f []Value) ([]byte, error) {
	var slot, rank int
	if r.ks != nil {
		slot, rank = r.ks.Match(path)
	} else {
		slot, rank = r.m.Match(path)
	}
	if uint(slot) >= uint(len(f)) {
		return skipValue(b)
	}
	return r.readValue(b, &f[slot], slot, rank)
}

// readNested reads the n pairs of the nested map at the start of b, whose
// path r.path[:plen] is at level 2, and of the maps nested in it, down to
// MaxDepth levels. It walks them iteratively: parents are saved in r.stack.
func (r *Reader) readNested(b []byte, n uint32, plen int, f []Value) ([]byte, error) {
	const level0 = 2 // the body is level 1
	left, level := n, level0
	for {
		if left == 0 {
			if level == level0 {
				return b, nil
			}
			level--
			left, plen = r.stack[level].left, r.stack[level].plen
			continue
		}
		left--

		var key []byte
		var err error
		if k := fixstrLen(b) + 1; k > 0 && k < len(b) {
			key, b = b[1:k:k], b[k:]
		} else {
			var skipped bool
			if key, b, skipped, err = readKey(b); err != nil {
				return b, err
			}
			if skipped {
				continue
			}
		}

		if plen+1+len(key) > MaxPath {
			r.stats.LongPaths++
			if b, err = skipValue(b); err != nil {
				return b, err
			}
			continue
		}
		r.path[plen] = '.'
		copy(r.path[plen+1:], key)
		path := r.path[:plen+1+len(key)]

		if len(b) == 0 || !isMap(b[0]) {
			if b, err = r.readField(path, b, f); err != nil {
				return b, err
			}
			continue
		}

		// A map inside: descend, unless too deep, too long or unwanted.
		skip := false
		switch {
		case level >= MaxDepth:
			r.stats.DeepMaps++
			skip = true
		case len(path) >= MaxPath:
			r.stats.LongPaths++
			skip = true
		case r.ks != nil:
			skip = !r.ks.WantPrefix(path)
		case r.pm != nil:
			skip = !r.pm.WantPrefix(path)
		}
		if skip {
			if b, err = skipN(b, 1); err != nil {
				return b, err
			}
			continue
		}
		sz, o, err := msgp.ReadMapHeaderBytes(b)
		if err != nil {
			return b, err
		}
		b = o
		r.stack[level] = frame{left: left, plen: plen}
		level++
		left, plen = sz, len(path)
	}
}

// readValue decodes the value at the start of b into v unless v already holds
// a value of a better rank; unsupported types are skipped and leave v alone.
func (r *Reader) readValue(b []byte, v *Value, slot, rank int) ([]byte, error) {
	if len(b) == 0 {
		return b, msgp.ErrShortBytes
	}
	lead := b[0]
	switch {
	case lead == 0xc0: // nil
		rank = nilRank
	case rank >= nilRank:
		rank = nilRank - 1
	case rank < math.MinInt32:
		rank = math.MinInt32
	}
	if v.Kind != KindNone && int32(rank) >= r.rank[slot] {
		return skipValue(b) // first of equal rank wins
	}
	t := msgp.NextType(b)
	var o []byte
	var err error
	switch t {
	case msgp.StrType:
		var s []byte
		if s, o, err = msgp.ReadStringZC(b); err == nil {
			*v = Value{Kind: KindStr, Str: s}
		}
	case msgp.BinType:
		var s []byte
		if s, o, err = msgp.ReadBytesZC(b); err == nil {
			*v = Value{Kind: KindStr, Str: s}
		}
	case msgp.UintType:
		var u uint64
		if u, o, err = msgp.ReadUint64Bytes(b); err == nil {
			*v = Value{Kind: KindUint, Uint: u}
		}
	case msgp.IntType:
		var i int64
		if i, o, err = msgp.ReadInt64Bytes(b); err == nil {
			if i >= 0 {
				*v = Value{Kind: KindUint, Uint: uint64(i)}
			} else {
				*v = Value{Kind: KindInt, Int: i}
			}
		}
	case msgp.Float64Type, msgp.Float32Type:
		var x float64
		if x, o, err = msgp.ReadFloat64Bytes(b); err == nil {
			*v = Value{Kind: KindFloat, Float: x}
		}
	case msgp.BoolType:
		var x bool
		if x, o, err = msgp.ReadBoolBytes(b); err == nil {
			*v = Value{Kind: KindBool, Bool: x}
		}
	case msgp.NilType:
		*v = Value{Kind: KindNil}
		o = b[1:]
	case msgp.ExtensionType:
		var typ int8
		var data []byte
		if typ, data, o, err = readExt(b); err == nil {
			if typ != 0 || len(data) != 8 {
				return o, nil // not EventTime: ignored
			}
			*v = Value{Kind: KindTime, Sec: binary.BigEndian.Uint32(data), Nsec: binary.BigEndian.Uint32(data[4:])}
		}
	default: // arrays, other extensions: ignored
		return skipN(b, 1)
	}
	if err != nil {
		return b, err
	}
	r.rank[slot] = int32(rank)
	return o, nil
}

// arrayHeader reads an array header: fixarray and array32 (the widths
// Fluent Bit writes for events) inline, others with msgp.
func arrayHeader(b []byte) (uint32, []byte, error) {
	if len(b) > 0 && b[0]&0xf0 == 0x90 {
		return uint32(b[0] & 0x0f), b[1:], nil
	}
	if len(b) >= 5 && b[0] == 0xdd {
		return binary.BigEndian.Uint32(b[1:]), b[5:], nil
	}
	return msgp.ReadArrayHeaderBytes(b)
}

// mapHeader reads a map header: fixmap and map16 inline, others with msgp.
func mapHeader(b []byte) (uint32, []byte, error) {
	if len(b) > 0 && b[0]&0xf0 == 0x80 {
		return uint32(b[0] & 0x0f), b[1:], nil
	}
	if len(b) >= 3 && b[0] == 0xde {
		return uint32(binary.BigEndian.Uint16(b[1:])), b[3:], nil
	}
	return msgp.ReadMapHeaderBytes(b)
}

// fixstrLen returns the length of the fixstr at the start of b, or -1.
func fixstrLen(b []byte) int {
	if len(b) > 0 && b[0]&0xe0 == 0xa0 {
		return int(b[0] & 0x1f)
	}
	return -1
}

// isMap reports whether lead is the first byte of a map.
func isMap(lead byte) bool { return lead&0xf0 == 0x80 || lead == 0xde || lead == 0xdf }

// isArray reports whether lead is the first byte of an array.
func isArray(lead byte) bool { return lead&0xf0 == 0x90 || lead == 0xdc || lead == 0xdd }

// scalarSize is the encoded size of a msgpack object by its first byte for
// the types whose size that byte tells: fixint, fixstr, nil, bool, floats
// and sized integers; 0 for every other type (containers, str8/16/32,
// bin, ext, and the invalid 0xc1). TestScalarSizeMatchesMsgp holds it to
// msgp.Skip.
var scalarSize = func() (t [256]uint8) {
	for i := range t {
		switch {
		case i < 0x80 || i >= 0xe0: // positive and negative fixint
			t[i] = 1
		case i&0xe0 == 0xa0: // fixstr
			t[i] = 1 + uint8(i&0x1f)
		}
	}
	for lead, n := range map[byte]uint8{
		0xc0: 1, 0xc2: 1, 0xc3: 1, // nil, false, true
		0xca: 5, 0xcb: 9, // float32, float64
		0xcc: 2, 0xcd: 3, 0xce: 5, 0xcf: 9, // uint8..64
		0xd0: 2, 0xd1: 3, 0xd2: 5, 0xd3: 9, // int8..64
	} {
		t[lead] = n
	}
	return t
}()

// skipValue skips one msgpack object at the start of b: containers with
// skipN, the common scalars (fixint, str up to 64 KiB, fixed-width numbers,
// nil, bool) inline, the rest with msgp.Skip.
func skipValue(b []byte) ([]byte, error) {
	if len(b) == 0 {
		return b, msgp.ErrShortBytes
	}
	lead := b[0]
	switch {
	case lead < 0x80 || lead >= 0xe0: // positive and negative fixint
		return b[1:], nil
	case lead&0xe0 == 0xa0: // fixstr
		if n := 1 + int(lead&0x1f); n <= len(b) {
			return b[n:], nil
		}
		return b, msgp.ErrShortBytes
	case lead == 0xd9: // str8
		if len(b) >= 2 {
			if n := 2 + int(b[1]); n <= len(b) {
				return b[n:], nil
			}
		}
		return b, msgp.ErrShortBytes
	case isMap(lead) || isArray(lead):
		return skipN(b, 1)
	case lead == 0xda: // str16
		if len(b) >= 3 {
			if n := 3 + int(binary.BigEndian.Uint16(b[1:])); n <= len(b) {
				return b[n:], nil
			}
		}
		return b, msgp.ErrShortBytes
	}
	if n := scalarSize[lead]; n > 0 {
		if int(n) <= len(b) {
			return b[n:], nil
		}
		return b, msgp.ErrShortBytes
	}
	o, err := msgp.Skip(b)
	if err != nil {
		return b, err
	}
	return o, nil
}

// skipN skips n consecutive msgpack objects at the start of b. It walks
// nested arrays and maps with a counter instead of recursion, so any nesting
// depth costs no stack. On error it returns b positioned at the object that
// failed.
func skipN(b []byte, n uint64) ([]byte, error) {
	for n > 0 {
		if uint64(len(b)) < n { // every object takes at least one byte
			return b, msgp.ErrShortBytes
		}
		n--
		switch lead := b[0]; {
		case lead < 0x80 || lead >= 0xe0: // fixint
			b = b[1:]
			continue
		case lead&0xe0 == 0xa0: // fixstr
			k := 1 + int(lead&0x1f)
			if k > len(b) {
				return b, msgp.ErrShortBytes
			}
			b = b[k:]
			continue
		case lead&0xf0 == 0x80: // fixmap
			n += 2 * uint64(lead&0x0f)
			b = b[1:]
			continue
		case lead&0xf0 == 0x90: // fixarray
			n += uint64(lead & 0x0f)
			b = b[1:]
			continue
		}
		switch msgp.NextType(b) {
		case msgp.MapType:
			sz, o, err := msgp.ReadMapHeaderBytes(b)
			if err != nil {
				return b, err
			}
			b = o
			n += 2 * uint64(sz)
		case msgp.ArrayType:
			sz, o, err := msgp.ReadArrayHeaderBytes(b)
			if err != nil {
				return b, err
			}
			b = o
			n += uint64(sz)
		default:
			o, err := msgp.Skip(b)
			if err != nil {
				return b, err
			}
			b = o
		}
	}
	return b, nil
}
