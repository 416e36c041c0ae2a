// Package chunk reads the msgpack chunks that Fluent Bit hands to a Go output
// plugin, in place and without allocating per record.
//
// # Accepted layouts
//
// A chunk is a sequence of msgpack objects written back to back, with no
// outer array and no count. Each top-level object is one event:
//
//	[[timestamp, metadata], body]   Fluent Bit v2+ (metadata is skipped unread)
//	[timestamp, body]               legacy
//
// Every msgpack width is accepted for every header: fixarray/array16/array32,
// fixmap/map16/map32, fixstr/str8/str16/str32 and bin8/bin16/bin32 (keys and
// values). Fluent Bit v4.2.8 writes array32 event headers, newer versions
// fixarray.
//
// The timestamp may be
//   - the EventTime extension (type 0, 8 bytes: big-endian uint32 seconds,
//     uint32 nanoseconds) in any ext width (fixext8, ext8/16/32 of length 8);
//   - the msgpack timestamp extension (type -1, 4, 8 or 12 bytes);
//   - a non-negative integer (seconds);
//   - a finite non-negative float (seconds with a fraction).
//
// Group markers, events whose timestamp seconds are 0xFFFFFFFF (group start)
// or 0xFFFFFFFE (group end), also written as the integers -1 and -2, are
// skipped and counted in [Stats.GroupMarkers]; they are never delivered.
//
// Well-formed msgpack of the wrong shape (a top-level object that is not a
// two-element array, a bad timestamp, a body that is not a map) is skipped as
// a whole and counted in [Stats.BadEvents]; reading continues with the next
// object. Malformed msgpack (truncation, an invalid type byte) stops the
// reader with a [*ChunkError]: msgpack cannot resynchronise, but every event
// wholly before the fault has already been delivered.
//
// # Keys and paths
//
// Body keys are matched by a [Matcher] (usually a [KeySet]) against their path.
// A top-level key's path is the key itself, so flat dotted keys such as
// "id.orig_h" match as they are. Nested maps are flattened into dotted paths:
// {"id": {"orig_h": "1.2.3.4"}} yields the path "id.orig_h". Maps nested more
// than [MaxDepth] levels deep (the body is level 1) and nested paths longer
// than [MaxPath] bytes are skipped and counted; the event is still delivered.
// Non-string keys are skipped with their values.
//
// # Lifetimes
//
// The Reader never copies the chunk. The chunk passed to [Reader.Reset] must
// not change while it is read, and every [Value.Str] delivered points into it:
// such slices are valid only until the chunk is released, which for a plugin
// is the end of the flush callback (Fluent Bit owns that C memory). Copy what
// must outlive the flush. An [Event]'s Fields are overwritten by the next call
// to [Reader.Next].
//
// A Reader is not safe for concurrent use; with Fluent Bit workers > 0 use one
// Reader per flush, for example via [GetReader] and [PutReader].
package chunk
