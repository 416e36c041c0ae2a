package cache

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"hash"
	"hash/crc32"
	"io"
	"math"
	"os"
	"path/filepath"
	"time"
)

// Snapshot file format (version 1). Integers are unsigned or zig-zag
// varints unless stated; floats are 8-byte little-endian IEEE 754.
//
//	magic    "BGSTATE\n"
//	version  uint32 little-endian (1)
//	minutes  varint: the window length the counts were kept for (Minutes)
//	wm       varint: the watermark (Unix minute)
//	flows    each: key length (>= 3; 0 ends the list), key bytes, source
//	         length, first and last event second, events, gap count, mean,
//	         m2, size count, mean, m2, marks (next score, alert minute as
//	         varints, alert score as float32 bits), last minute, number of
//	         cells, then per cell its minute as a gap from the previous one
//	         (the first from last-Minutes) and its count
//	sources  count, then each: address length and bytes, last minute, and
//	         the (Minutes+63)/64 words of its online bitmap (uint64 LE)
//	crc      CRC-32C (Castagnoli) of every byte before it, uint32 LE
//
// A file is written to a temporary name in the same directory, synced and
// renamed over the old one, so a crash leaves the old snapshot or the new
// one, never a mix.
const (
	snapMagic   = "BGSTATE\n"
	snapVersion = 1
)

// ErrSnapshot is wrapped by every error Restore returns for a file it
// refuses (foreign, wrong version, truncated, corrupt).
var ErrSnapshot = errors.New("invalid state snapshot")

var crcTable = crc32.MakeTable(crc32.Castagnoli)

// SnapshotStats describes one written or restored snapshot.
type SnapshotStats struct {
	Flows, Sources int
	Bytes          int64
	Took           time.Duration
}

type hashWriter struct {
	w io.Writer
	h hash.Hash32
}

func (hw hashWriter) Write(p []byte) (int, error) {
	hw.h.Write(p)
	return hw.w.Write(p)
}

// WriteSnapshot writes every tracked flow to path atomically. It may run
// concurrently with Observe: each flow is copied under its own lock (one
// flow at a time, never more than a few microseconds), and ristretto's
// locks are held only to collect the flow pointers. No other lock is
// taken.
func (s *Store) WriteSnapshot(path string) (SnapshotStats, error) {
	start := time.Now()
	var st SnapshotStats
	dir := filepath.Dir(path)
	tmp, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return st, fmt.Errorf("cache: snapshot: %w", err)
	}
	defer os.Remove(tmp.Name()) // fails harmlessly after the rename
	h := crc32.New(crcTable)
	bw := bufio.NewWriterSize(hashWriter{tmp, h}, 1<<20)
	n, err := s.encode(bw, &st)
	if err == nil {
		err = bw.Flush()
	}
	if err == nil {
		_, err = tmp.Write(binary.LittleEndian.AppendUint32(nil, h.Sum32()))
		n += 4
	}
	if err == nil {
		err = tmp.Sync()
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp.Name(), path)
	}
	if err == nil {
		if d, derr := os.Open(dir); derr == nil {
			d.Sync() // make the rename durable; not all file systems support it
			d.Close()
		}
	}
	if err != nil {
		return st, fmt.Errorf("cache: snapshot %s: %w", path, err)
	}
	st.Bytes, st.Took = n, time.Since(start)
	return st, nil
}

func (s *Store) encode(w *bufio.Writer, st *SnapshotStats) (int64, error) {
	var n int64
	buf := make([]byte, 0, 64<<10)
	put := func() error {
		k, err := w.Write(buf)
		n += int64(k)
		buf = buf[:0]
		return err
	}
	buf = append(buf, snapMagic...)
	buf = binary.LittleEndian.AppendUint32(buf, snapVersion)
	buf = binary.AppendVarint(buf, Minutes)
	buf = binary.AppendVarint(buf, int64(s.wm.Load()))
	// Collect first, encode after: ristretto's shard locks are held while
	// its iterator runs.
	var fs []*Flow
	s.Range(func(f *Flow) bool { fs = append(fs, f); return true })
	srcs := make(map[*source]struct{})
	for _, f := range fs {
		var ok bool
		if buf, ok = f.appendTo(buf); !ok {
			continue
		}
		srcs[f.src] = struct{}{}
		st.Flows++
		if len(buf) > 32<<10 {
			if err := put(); err != nil {
				return n, err
			}
		}
	}
	buf = binary.AppendUvarint(buf, 0)
	buf = binary.AppendUvarint(buf, uint64(len(srcs)))
	for src := range srcs {
		buf = src.appendTo(buf)
		st.Sources++
		if len(buf) > 32<<10 {
			if err := put(); err != nil {
				return n, err
			}
		}
	}
	return n, put()
}

// appendTo appends the flow's record; false if the flow is released.
func (f *Flow) appendTo(b []byte) ([]byte, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.state.Load()&released != 0 || f.empty() {
		return b, false
	}
	b = binary.AppendUvarint(b, uint64(len(f.src.ip)+1+len(f.dst.name)))
	b = append(append(append(b, f.src.ip...), 0), f.dst.name...)
	b = binary.AppendUvarint(b, uint64(len(f.src.ip)))
	b = binary.AppendUvarint(b, uint64(f.firstSec))
	b = binary.AppendUvarint(b, uint64(f.lastSec))
	b = binary.AppendUvarint(b, uint64(f.events))
	b = appendWelford(b, f.gapN, &f.gap)
	b = appendWelford(b, f.sizeN, &f.size)
	b = binary.AppendVarint(b, int64(f.marks.NextScore))
	b = binary.AppendVarint(b, int64(f.marks.AlertMinute))
	b = binary.LittleEndian.AppendUint32(b, math.Float32bits(f.marks.AlertScore))
	b = binary.AppendVarint(b, int64(f.last))
	b = binary.AppendUvarint(b, uint64(f.cellCount()))
	prev := f.last - Minutes
	f.each(func(abs int32, n uint16) {
		b = binary.AppendUvarint(b, uint64(abs-prev))
		b = binary.AppendUvarint(b, uint64(n))
		prev = abs
	})
	return b, true
}

func appendWelford(b []byte, n uint32, w *welford) []byte {
	b = binary.AppendUvarint(b, uint64(n))
	b = binary.LittleEndian.AppendUint64(b, math.Float64bits(w.mean))
	return binary.LittleEndian.AppendUint64(b, math.Float64bits(w.m2))
}

func (s *source) appendTo(b []byte) []byte {
	s.mu.Lock()
	defer s.mu.Unlock()
	b = binary.AppendUvarint(b, uint64(len(s.ip)))
	b = append(b, s.ip...)
	b = binary.AppendVarint(b, int64(s.last.Load()))
	for i := range s.bits {
		b = binary.LittleEndian.AppendUint64(b, s.bits[i].Load())
	}
	return b
}

// Restore loads a snapshot written by WriteSnapshot into the store, which
// must be new (no Observe yet). The whole file is checked (magic, version,
// window, checksum, every field) before anything is applied: on any error
// the store is left unchanged and the error wraps ErrSnapshot (or the
// file's open/read error, e.g. fs.ErrNotExist).
//
// Restored flows are offered to ristretto like new ones; those it refuses
// stay pending as long as they are active (see settle) and the others are
// dropped (Stats.Restored counts the kept ones).
// ristretto's frequency sketch is not saved: a restored flow's frequency
// starts to count at its first event.
func (s *Store) Restore(path string) (SnapshotStats, error) {
	start := time.Now()
	var st SnapshotStats
	fh, err := os.Open(path)
	if err != nil {
		return st, fmt.Errorf("cache: restore: %w", err)
	}
	defer fh.Close()
	fi, err := fh.Stat()
	if err != nil {
		return st, fmt.Errorf("cache: restore: %w", err)
	}
	bad := func(format string, a ...any) error {
		return fmt.Errorf("cache: restore %s: %w: %s", path, ErrSnapshot, fmt.Sprintf(format, a...))
	}
	size := fi.Size()
	if size < int64(len(snapMagic))+4+4 {
		return st, bad("%d bytes is too short to be a snapshot", size)
	}
	// Pass 1: the checksum, streaming (CRC-32C is hardware-accelerated).
	h := crc32.New(crcTable)
	if _, err := io.CopyBuffer(h, io.NewSectionReader(fh, 0, size-4), make([]byte, 1<<20)); err != nil {
		return st, fmt.Errorf("cache: restore: %w", err)
	}
	var tail [4]byte
	if _, err := fh.ReadAt(tail[:], size-4); err != nil {
		return st, fmt.Errorf("cache: restore: %w", err)
	}
	// Check magic and version before the checksum, for a clearer message.
	var head [12]byte
	if _, err := fh.ReadAt(head[:], 0); err != nil {
		return st, fmt.Errorf("cache: restore: %w", err)
	}
	if string(head[:8]) != snapMagic {
		return st, bad("not a beacongrid state snapshot (starts with %q)", head[:8])
	}
	if v := binary.LittleEndian.Uint32(head[8:]); v != snapVersion {
		return st, bad("format version %d, this build reads version %d", v, snapVersion)
	}
	if got, want := h.Sum32(), binary.LittleEndian.Uint32(tail[:]); got != want {
		return st, bad("checksum mismatch (crc32c %08x, file says %08x): the file is corrupt or truncated", got, want)
	}
	// Pass 2: decode everything without touching the store.
	d := newDecoder(s, io.NewSectionReader(fh, 12, size-16))
	snap, err := d.decode()
	if err != nil {
		return st, bad("%v", err)
	}
	s.install(snap)
	st.Flows, st.Sources, st.Bytes, st.Took = int(s.restored.Load()), len(snap.srcs), size, time.Since(start)
	return st, nil
}

// snapshot is a decoded file. The flows' sources and destinations are
// interned while decoding (a source has many flows, a destination often
// too): each distinct name is one string, hashed once, and is acquired
// from the store's table once for all its flows.
type snapshot struct {
	wm     int32
	flows  [][]restoredFlow // in chunks of flowChunk, so that no array is copied as it grows
	nflows int
	bytes  int64    // of the flows
	names  [2]names // sources, destinations
	srcs   []restoredSource
}

const flowChunk = 1 << 14

type restoredFlow struct {
	f        *Flow
	h        uint64 // Store.hash of its key
	src, dst int32  // indexes into snapshot.names
	cost     int64  // its bytes, taken while it is in the CPU's cache
}

// names interns the sources (or destinations) of a snapshot's flows.
type names struct {
	idx  map[string]int32
	name []string
	refs []int32 // flows using the name
}

func (n *names) intern(s *Store, b []byte) int32 {
	if i, ok := n.idx[string(b)]; ok {
		n.refs[i]++
		return i
	}
	i := int32(len(n.name))
	str := string(b)
	n.idx[str] = i
	n.name = append(n.name, str)
	n.refs = append(n.refs, 1)
	return i
}

type restoredSource struct {
	ip   string
	last int32
	bits [(Minutes + 63) / 64]uint64
}

// decoder reads a snapshot from a window of a buffered reader: fields are
// decoded from the window in place (binary.Uvarint on a slice, no call per
// byte), which is refilled whenever it holds less than the next field may
// need. The window is never longer than the reader's buffer, so the file
// is streamed, not read whole into memory.
type decoder struct {
	s     *Store // for the hash seed only: decoding never touches the store
	r     *bufio.Reader
	b     []byte // the window: r's next bytes
	p     int    // bytes of b consumed
	eof   bool   // b holds everything that is left
	err   error
	key   []byte // the current flow's key
	cells []minuteCount
}

const decodeWindow = 64 << 10

func newDecoder(s *Store, r io.Reader) *decoder {
	return &decoder{s: s, r: bufio.NewReaderSize(r, 1<<20), cells: make([]minuteCount, 0, Minutes)}
}

var errTruncated = errors.New("unexpected end of data")

// refill makes the window start at the first unconsumed byte and hold as
// much as the reader can give, up to decodeWindow bytes.
func (d *decoder) refill() {
	if d.eof || d.err != nil {
		return
	}
	d.r.Discard(d.p)
	d.p = 0
	b, err := d.r.Peek(decodeWindow)
	d.b = b
	switch {
	case err == io.EOF:
		d.eof = true
	case err != nil:
		d.err = err
	}
}

// rawUvarint reads a varint; the one-byte case (most fields) is inlined.
func (d *decoder) rawUvarint() uint64 {
	if p := d.p; p < len(d.b) && d.b[p] < 0x80 {
		d.p = p + 1
		return uint64(d.b[p])
	}
	return d.longUvarint()
}

func (d *decoder) longUvarint() uint64 {
	if d.err != nil {
		return 0
	}
	if len(d.b)-d.p < binary.MaxVarintLen64 {
		d.refill()
	}
	v, n := binary.Uvarint(d.b[d.p:])
	switch {
	case n > 0:
		d.p += n
		return v
	case n == 0:
		d.fail(errTruncated)
	default:
		d.fail(errors.New("varint overflows a 64-bit integer"))
	}
	return 0
}

func (d *decoder) uvarint(limit uint64, what string) uint64 {
	v := d.rawUvarint()
	if v > limit {
		return d.outOfRange(v, limit, what)
	}
	return v
}

func (d *decoder) outOfRange(v, limit uint64, what string) uint64 {
	if d.err == nil {
		d.err = fmt.Errorf("%s %d out of range (max %d)", what, v, limit)
	}
	return 0
}

func (d *decoder) varint(lo, hi int64, what string) int64 {
	ux := d.rawUvarint()
	v := int64(ux >> 1) // zig-zag, as binary.Varint
	if ux&1 != 0 {
		v = ^v
	}
	if v < lo || v > hi {
		return d.varintOutOfRange(v, lo, hi, what)
	}
	return v
}

func (d *decoder) varintOutOfRange(v, lo, hi int64, what string) int64 {
	if d.err == nil {
		d.err = fmt.Errorf("%s %d out of range [%d, %d]", what, v, lo, hi)
	}
	return 0
}

func (d *decoder) fail(err error) {
	if d.err == nil {
		d.err = err
	}
}

// fixed returns the next n bytes (n <= decodeWindow), valid until the
// next read; nil after an error.
func (d *decoder) fixed(n int) []byte {
	if d.err != nil {
		return nil
	}
	if len(d.b)-d.p < n {
		d.refill()
		if d.err == nil && len(d.b)-d.p < n {
			d.fail(errTruncated)
		}
		if d.err != nil {
			return nil
		}
	}
	b := d.b[d.p : d.p+n : d.p+n]
	d.p += n
	return b
}

func (d *decoder) u32() uint32 {
	b := d.fixed(4)
	if b == nil {
		return 0
	}
	return binary.LittleEndian.Uint32(b)
}

func (d *decoder) u64() uint64 {
	b := d.fixed(8)
	if b == nil {
		return 0
	}
	return binary.LittleEndian.Uint64(b)
}

func (d *decoder) float(what string) float64 {
	v := math.Float64frombits(d.u64())
	if d.err == nil && (math.IsNaN(v) || math.IsInf(v, 0)) {
		d.err = fmt.Errorf("%s is not finite", what)
	}
	return v
}

func (d *decoder) decode() (*snapshot, error) {
	sn := &snapshot{}
	for i := range sn.names {
		sn.names[i].idx = make(map[string]int32)
	}
	if m := d.varint(0, math.MaxInt32, "window"); d.err == nil && m != Minutes {
		return nil, fmt.Errorf("window of %d minutes, this build keeps %d", m, Minutes)
	}
	sn.wm = int32(d.varint(math.MinInt32+Minutes, math.MaxInt32, "watermark"))
	var chunk []restoredFlow
	for d.err == nil {
		if len(chunk) == cap(chunk) {
			if chunk != nil {
				sn.flows = append(sn.flows, chunk)
			}
			chunk = make([]restoredFlow, 0, flowChunk)
		}
		if !d.flow(sn, &chunk) {
			break
		}
		sn.nflows++
	}
	if len(chunk) > 0 {
		sn.flows = append(sn.flows, chunk)
	}
	nsrc := d.uvarint(1<<32, "sources")
	for i := uint64(0); i < nsrc && d.err == nil; i++ {
		var rs restoredSource
		rs.ip = string(d.fixed(int(d.uvarint(MaxKeyLen, "address length"))))
		rs.last = int32(d.varint(math.MinInt32+Minutes, int64(sn.wm), "source minute"))
		for j := range rs.bits {
			rs.bits[j] = d.u64()
		}
		sn.srcs = append(sn.srcs, rs)
	}
	if d.err != nil {
		return nil, d.err
	}
	if d.refill(); d.err != nil {
		return nil, d.err
	}
	if d.p < len(d.b) {
		return nil, errors.New("data after the end of the snapshot")
	}
	return sn, nil
}

// flow decodes one flow record and appends it to *chunk; false at the end
// marker or an error.
func (d *decoder) flow(sn *snapshot, chunk *[]restoredFlow) bool {
	kl := int(d.uvarint(MaxKeyLen, "key length"))
	if kl == 0 || d.err != nil {
		return false
	}
	d.key = append(d.key[:0], d.fixed(kl)...) // the window moves on refills
	key := d.key
	sl := int(d.uvarint(uint64(kl), "source length"))
	if d.err == nil && (sl == 0 || sl >= kl-1 || key[sl] != 0) {
		d.err = fmt.Errorf("flow key %q: bad source length %d", key, sl)
	}
	if d.err != nil {
		return false
	}
	f := &Flow{}
	f.firstSec = uint32(d.uvarint(math.MaxUint32, "first second"))
	f.lastSec = uint32(d.uvarint(math.MaxUint32, "last second"))
	f.events = uint32(d.uvarint(math.MaxUint32, "events"))
	f.gapN = uint32(d.uvarint(math.MaxUint32, "gaps"))
	f.gap.mean, f.gap.m2 = d.float("gap mean"), d.float("gap m2")
	f.sizeN = uint32(d.uvarint(math.MaxUint32, "sizes"))
	f.size.mean, f.size.m2 = d.float("size mean"), d.float("size m2")
	f.marks.NextScore = int32(d.varint(math.MinInt32, math.MaxInt32, "next score"))
	f.marks.AlertMinute = int32(d.varint(math.MinInt32, math.MaxInt32, "alert minute"))
	f.marks.AlertScore = math.Float32frombits(d.u32())
	last := int32(d.varint(math.MinInt32+Minutes, int64(sn.wm), "last minute"))
	nc := int(d.uvarint(Minutes, "cells"))
	if d.err == nil && nc == 0 {
		d.err = fmt.Errorf("flow %q has no counts", key)
	}
	cells := d.cells[:0]
	prev := last - Minutes
	for i := 0; i < nc && d.err == nil; i++ {
		abs := prev + int32(d.uvarint(uint64(last-prev), "cell minute"))
		n := d.uvarint(0xffff, "cell count")
		if d.err == nil && (abs == prev || n == 0) {
			d.err = fmt.Errorf("flow %q: cells out of order or empty", key)
		}
		cells = append(cells, minuteCount{abs, uint16(n)})
		prev = abs
	}
	if d.err == nil && prev != last {
		d.err = fmt.Errorf("flow %q: newest cell %d is not its last minute %d", key, prev, last)
	}
	if d.err != nil {
		return false
	}
	f.counts.load(cells)
	if !f.counts.mature() {
		f.state.Store(statusYoung) // back to the nursery (install)
	}
	cost := f.bytes()
	sn.bytes += cost
	si, di := sn.names[0].intern(d.s, key[:sl]), sn.names[1].intern(d.s, key[sl+1:])
	k := append(key[:sl], key[sl+1:]...) // source and destination back to back, as Store.hash hashes them
	*chunk = append(*chunk, restoredFlow{
		f: f, src: si, dst: di,
		h:    d.s.hash(k[:sl], k[sl:]),
		cost: cost,
	})
	return true
}

// install adds decoded flows and sources to the store.
func (s *Store) install(sn *snapshot) {
	for wm := s.wm.Load(); sn.wm > wm && !s.wm.CompareAndSwap(wm, sn.wm); wm = s.wm.Load() {
	}
	// Each source and destination is acquired once for all its flows; the
	// memory they take is charged before the flows are offered.
	srcs := make([]*source, len(sn.names[0].name))
	for i, ip := range sn.names[0].name {
		srcs[i] = s.tab.acquireSource(ip, sn.names[0].refs[i])
	}
	dsts := make([]*dest, len(sn.names[1].name))
	for i, name := range sn.names[1].name {
		dsts[i] = s.tab.acquireDest(name, sn.names[1].refs[i])
	}
	s.chargeShared()
	// The flows are prepared in the file's order (their data lies in that
	// order in memory), then offered to ristretto grouped by its store
	// shard (key mod 256), so that it fills one shard's map at a time:
	// the hashes are seeded per process, so the file's order is random
	// to this store's maps.
	var at [257]int32 // counting sort by shard: at[k+1] counts shard k
	for _, chunk := range sn.flows {
		for i := range chunk {
			rf := &chunk[i]
			rf.f.src, rf.f.dst = srcs[rf.src], dsts[rf.dst]
			at[rf.h%256+1]++
		}
	}
	s.flows.Add(int64(sn.nflows))
	s.bytes.Add(sn.bytes)
	for k := 1; k < len(at); k++ {
		at[k] += at[k-1]
	}
	// The offers are copied, not indexed: the Set loop then reads them in
	// order (the scatter writes 256 sequential streams).
	type offer struct {
		h    uint64
		f    *Flow
		cost int64
	}
	offers := make([]offer, sn.nflows)
	for _, chunk := range sn.flows {
		for i := range chunk {
			rf := &chunk[i]
			k := rf.h % 256
			offers[at[k]] = offer{rf.h, rf.f, rf.cost}
			at[k]++
		}
	}
	for _, o := range offers {
		if o.f.state.Load() == statusYoung {
			s.restoreYoung(o.h, o.f)
			continue
		}
		for !s.rc.Set(o.h, o.f, o.cost) {
			s.rc.Wait() // the buffer is full: let ristretto catch up
		}
	}
	for i := range sn.srcs {
		rs := &sn.srcs[i]
		if src := s.tab.lookup(rs.ip); src != nil {
			src.restore(rs.last, &rs.bits)
		}
	}
	// When Wait returns, ristretto has decided on every Set and called
	// back for each flow it refused or evicted (settle: pending, status
	// refused, or released). A flow still in flight is held. No Get is
	// made here: a restored flow's first event reaches ristretto's Get
	// through lookup, which is when its frequency starts to count.
	s.rc.Wait()
	for _, chunk := range sn.flows {
		for i := range chunk {
			rf := &chunk[i]
			f := rf.f
			switch st := f.state.Load(); {
			case st == statusYoung:
				s.restored.Add(1)
			case st == statusInFlight:
				f.setStatus(statusAdmitted)
				s.restored.Add(1)
			case st&released == 0 && s.pendingHolds(rf.h, f): // refused, and kept pending by settle
				s.restored.Add(1)
			default:
				s.release(f)
			}
		}
	}
}

func crc32c(b []byte) uint32 { return crc32.Checksum(b, crcTable) }

// restoreYoung puts a restored young flow into its nursery (a restored
// flow may then be the one evicted to make room).
func (s *Store) restoreYoung(h uint64, f *Flow) {
	p := &s.pending[h%shards]
	p.mu.Lock()
	defer p.mu.Unlock()
	s.enterNursery(p, h, f)
}

// pendingHolds reports whether the pending table holds f under h.
func (s *Store) pendingHolds(h uint64, f *Flow) bool {
	p := &s.pending[h%shards]
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.m[h] == f && !f.isReleased()
}
