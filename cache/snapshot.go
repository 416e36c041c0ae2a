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
	// Pass 1: the checksum, streaming.
	h := crc32.New(crcTable)
	if _, err := io.Copy(h, io.NewSectionReader(fh, 0, size-4)); err != nil {
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
	d := decoder{r: bufio.NewReaderSize(io.NewSectionReader(fh, 12, size-16), 1<<20)}
	snap, err := d.decode()
	if err != nil {
		return st, bad("%v", err)
	}
	s.install(snap)
	st.Flows, st.Sources, st.Bytes, st.Took = int(s.restored.Load()), len(snap.srcs), size, time.Since(start)
	return st, nil
}

type snapshot struct {
	wm    int32
	flows []restoredFlow
	srcs  []restoredSource
}

type restoredFlow struct {
	f   *Flow
	key []byte // src + "\x00" + dst
	sl  int    // source length
}

type restoredSource struct {
	ip   string
	last int32
	bits [(Minutes + 63) / 64]uint64
}

type decoder struct {
	r   *bufio.Reader
	err error
}

var errTruncated = errors.New("unexpected end of data")

func (d *decoder) uvarint(limit uint64, what string) uint64 {
	if d.err != nil {
		return 0
	}
	v, err := binary.ReadUvarint(d.r)
	if err != nil {
		d.fail(err)
		return 0
	}
	if v > limit {
		d.err = fmt.Errorf("%s %d out of range (max %d)", what, v, limit)
		return 0
	}
	return v
}

func (d *decoder) varint(lo, hi int64, what string) int64 {
	if d.err != nil {
		return 0
	}
	v, err := binary.ReadVarint(d.r)
	if err != nil {
		d.fail(err)
		return 0
	}
	if v < lo || v > hi {
		d.err = fmt.Errorf("%s %d out of range [%d, %d]", what, v, lo, hi)
		return 0
	}
	return v
}

func (d *decoder) fail(err error) {
	if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
		err = errTruncated
	}
	d.err = err
}

func (d *decoder) bytes(n int) []byte {
	if d.err != nil {
		return nil
	}
	b := make([]byte, n)
	if _, err := io.ReadFull(d.r, b); err != nil {
		d.fail(err)
		return nil
	}
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

func (d *decoder) fixed(n int) []byte {
	if d.err != nil {
		return nil
	}
	b, err := d.r.Peek(n)
	if err != nil {
		d.fail(err)
		return nil
	}
	d.r.Discard(n)
	return b
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
	if m := d.varint(0, math.MaxInt32, "window"); d.err == nil && m != Minutes {
		return nil, fmt.Errorf("window of %d minutes, this build keeps %d", m, Minutes)
	}
	sn.wm = int32(d.varint(math.MinInt32+Minutes, math.MaxInt32, "watermark"))
	for d.err == nil {
		rf, ok := d.flow(sn.wm)
		if !ok {
			break
		}
		sn.flows = append(sn.flows, rf)
	}
	nsrc := d.uvarint(1<<32, "sources")
	for i := uint64(0); i < nsrc && d.err == nil; i++ {
		var rs restoredSource
		rs.ip = string(d.bytes(int(d.uvarint(MaxKeyLen, "address length"))))
		rs.last = int32(d.varint(math.MinInt32+Minutes, int64(sn.wm), "source minute"))
		for j := range rs.bits {
			rs.bits[j] = d.u64()
		}
		sn.srcs = append(sn.srcs, rs)
	}
	if d.err != nil {
		return nil, d.err
	}
	if _, err := d.r.ReadByte(); err != io.EOF {
		return nil, errors.New("data after the end of the snapshot")
	}
	return sn, nil
}

// flow decodes one flow record; false at the end marker or an error.
func (d *decoder) flow(wm int32) (restoredFlow, bool) {
	kl := int(d.uvarint(MaxKeyLen, "key length"))
	if kl == 0 || d.err != nil {
		return restoredFlow{}, false
	}
	key := d.bytes(kl)
	sl := int(d.uvarint(uint64(kl), "source length"))
	if d.err == nil && (sl == 0 || sl >= kl-1 || key[sl] != 0) {
		d.err = fmt.Errorf("flow key %q: bad source length %d", key, sl)
	}
	if d.err != nil {
		return restoredFlow{}, false
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
	last := int32(d.varint(math.MinInt32+Minutes, int64(wm), "last minute"))
	nc := int(d.uvarint(Minutes, "cells"))
	if d.err == nil && nc == 0 {
		d.err = fmt.Errorf("flow %q has no counts", key)
	}
	prev := last - Minutes
	for i := 0; i < nc && d.err == nil; i++ {
		abs := prev + int32(d.uvarint(uint64(last-prev), "cell minute"))
		n := d.uvarint(0xffff, "cell count")
		if d.err == nil && (abs == prev || n == 0) {
			d.err = fmt.Errorf("flow %q: cells out of order or empty", key)
		}
		if d.err == nil {
			f.add(abs, uint16(n))
		}
		prev = abs
	}
	if d.err == nil && f.last != last {
		d.err = fmt.Errorf("flow %q: newest cell %d is not its last minute %d", key, f.last, last)
	}
	if d.err != nil {
		return restoredFlow{}, false
	}
	return restoredFlow{f: f, key: key, sl: sl}, true
}

// install adds decoded flows and sources to the store.
func (s *Store) install(sn *snapshot) {
	for wm := s.wm.Load(); sn.wm > wm && !s.wm.CompareAndSwap(wm, sn.wm); wm = s.wm.Load() {
	}
	// The flows are prepared in the file's order (their data lies in that
	// order in memory), then offered to ristretto grouped by its store
	// shard (key mod 256), so that it fills one shard's map at a time:
	// the hashes are seeded per process, so the file's order is random
	// to this store's maps.
	type offer struct {
		h    uint64
		f    *Flow
		cost int64
	}
	hs := make([]uint64, len(sn.flows))
	offers := make([]offer, len(sn.flows))
	var at [257]int // counting sort by shard: at[k+1] counts shard k
	for i, rf := range sn.flows {
		f := rf.f
		h := s.hash(rf.key[:rf.sl], rf.key[rf.sl+1:])
		hs[i] = h
		f.src, f.dst = s.tab.acquire(rf.key[:rf.sl], rf.key[rf.sl+1:])
		s.flows.Add(1)
		s.bytes.Add(f.bytes())
		at[h%256+1]++
	}
	for k := 1; k < len(at); k++ {
		at[k] += at[k-1]
	}
	for i, rf := range sn.flows {
		k := hs[i] % 256
		offers[at[k]] = offer{hs[i], rf.f, rf.f.bytes()}
		at[k]++
	}
	for _, o := range offers {
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
	for i, rf := range sn.flows {
		f := rf.f
		switch st := f.state.Load(); {
		case st == statusInFlight:
			f.setStatus(statusAdmitted)
			s.restored.Add(1)
		case st&released == 0 && s.pendingHolds(hs[i], f): // refused, and kept pending by settle
			s.restored.Add(1)
		default:
			s.release(f)
		}
	}
}

func crc32c(b []byte) uint32 { return crc32.Checksum(b, crcTable) }

// pendingHolds reports whether the pending table holds f under h.
func (s *Store) pendingHolds(h uint64, f *Flow) bool {
	p := &s.pending[h%shards]
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.m[h] == f && !f.isReleased()
}
