// Package spool is the durable, local hand-off between the plugin (one
// writer) and the sidecar (one reader): a directory of append-only segment
// files holding one JSON document per line, and a checkpoint file that
// records how far the reader has delivered.
//
// Semantics that matter:
//   - A line is durable once Append returns: Append writes whole lines and
//     fsyncs before returning.
//   - A writer always starts a new segment when it opens the directory. Every
//     segment but the newest is therefore sealed: nothing will be appended to
//     it again. A sealed segment whose last line has no newline (the writer
//     crashed mid-write) has that torn tail skipped and counted, never parsed.
//   - The reader delivers at least once: it returns lines after the
//     checkpoint, and only Commit moves the checkpoint. A crash between
//     delivery and Commit re-delivers, so consumers must be idempotent (the
//     sidecar uses deterministic document ids).
//   - Commit deletes segments that lie wholly before the checkpoint.
//   - One writer and one reader per directory; the writer holds an flock on
//     the directory's lock file so a second writer fails with a clear error.
package spool

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

const (
	segPrefix      = "seg-"
	segSuffix      = ".jsonl"
	checkpointName = "checkpoint.json"
	lockName       = "writer.lock"
	// FullMarker is the file, in the spool directory, that exists while
	// the backlog is full: the writer creates it when Append returns ErrFull
	// and removes it at the next successful Append. It holds the time the
	// backlog filled and how many appends were refused since, as JSON, so
	// the reader side (the sidecar's metrics) sees back-pressure.
	FullMarker = "backlog-full.json"
)

// FullState is the content of FullMarker.
type FullState struct {
	Since   string `json:"since"`   // RFC 3339
	Refused int64  `json:"refused"` // Append calls refused with ErrFull
}

// ErrFull is returned by Append when the spool holds MaxBytes already.
var ErrFull = errors.New("spool: backlog is full")

// WriterConfig configures a Writer.
type WriterConfig struct {
	// Dir is the spool directory; it is created (0750) if missing.
	Dir string
	// SegmentBytes is the size after which a new segment is started.
	// Default 8 MiB; at most MaxBytes/4.
	SegmentBytes int64
	// MaxBytes bounds the bytes held in undelivered segments; Append returns
	// ErrFull beyond it. 0 means 1 GiB.
	MaxBytes int64
	// NoSync skips fsync (tests and benchmarks only).
	NoSync bool
}

// Writer appends lines to the spool. It is safe for concurrent use.
type Writer struct {
	cfg  WriterConfig
	mu   sync.Mutex
	lock *os.File
	f    *os.File
	seq  uint64
	size int64

	full FullState // Refused > 0 while the backlog is full
	now  func() time.Time
}

// OpenWriter opens dir for appending, starting a new segment.
func OpenWriter(cfg WriterConfig) (*Writer, error) {
	if cfg.Dir == "" {
		return nil, errors.New("spool: empty directory")
	}
	if cfg.SegmentBytes <= 0 {
		cfg.SegmentBytes = 8 << 20
	}
	if cfg.MaxBytes <= 0 {
		cfg.MaxBytes = 1 << 30
	}
	// A full backlog frees space only as the reader deletes sealed,
	// delivered segments; the newest segment is never deleted. So a full
	// backlog must span several segments.
	if cfg.SegmentBytes > cfg.MaxBytes/4 {
		cfg.SegmentBytes = max(cfg.MaxBytes/4, 1)
	}
	if err := os.MkdirAll(cfg.Dir, 0o750); err != nil {
		return nil, fmt.Errorf("spool: %w", err)
	}
	lf, err := os.OpenFile(filepath.Join(cfg.Dir, lockName), os.O_CREATE|os.O_RDWR, 0o640)
	if err != nil {
		return nil, fmt.Errorf("spool: %w", err)
	}
	if err := syscall.Flock(int(lf.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		lf.Close()
		return nil, fmt.Errorf("spool: directory %s is in use by another writer: %w", cfg.Dir, err)
	}
	segs, err := listSegments(cfg.Dir)
	if err != nil {
		lf.Close()
		return nil, err
	}
	w := &Writer{cfg: cfg, lock: lf, now: time.Now}
	if n := len(segs); n > 0 {
		w.seq = segs[n-1]
	}
	if err := w.rotate(); err != nil {
		lf.Close()
		return nil, err
	}
	return w, nil
}

func (w *Writer) rotate() error {
	if w.f != nil {
		if err := w.f.Close(); err != nil {
			return fmt.Errorf("spool: %w", err)
		}
	}
	w.seq++
	f, err := os.OpenFile(segmentPath(w.cfg.Dir, w.seq), os.O_CREATE|os.O_EXCL|os.O_WRONLY|os.O_APPEND, 0o640)
	if err != nil {
		return fmt.Errorf("spool: %w", err)
	}
	w.f = f
	w.size = 0
	if !w.cfg.NoSync {
		syncDir(w.cfg.Dir)
	}
	return nil
}

// Append writes each line (without its newline; a line must not contain one)
// and makes them durable before it returns.
func (w *Writer) Append(lines ...[]byte) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.f == nil {
		return errors.New("spool: writer is closed")
	}
	var n int64
	for _, l := range lines {
		if bytes.IndexByte(l, '\n') >= 0 {
			return errors.New("spool: line contains a newline")
		}
		n += int64(len(l)) + 1
	}
	if held, err := dirBytes(w.cfg.Dir); err == nil && held+n > w.cfg.MaxBytes {
		w.markFull()
		return ErrFull
	}
	if w.size > 0 && w.size+n > w.cfg.SegmentBytes {
		if err := w.rotate(); err != nil {
			return err
		}
	}
	buf := make([]byte, 0, n)
	for _, l := range lines {
		buf = append(buf, l...)
		buf = append(buf, '\n')
	}
	if _, err := w.f.Write(buf); err != nil {
		return fmt.Errorf("spool: %w", err)
	}
	w.size += n
	if !w.cfg.NoSync {
		if err := w.f.Sync(); err != nil {
			return fmt.Errorf("spool: %w", err)
		}
	}
	if w.full.Refused > 0 {
		w.full = FullState{}
		os.Remove(filepath.Join(w.cfg.Dir, FullMarker))
	}
	return nil
}

// markFull records a refused Append in FullMarker (best effort: the marker
// is for monitoring; ErrFull is the signal that matters).
func (w *Writer) markFull() {
	if w.full.Refused == 0 {
		w.full.Since = w.now().UTC().Format(time.RFC3339)
	}
	w.full.Refused++
	b, _ := json.Marshal(w.full)
	tmp := filepath.Join(w.cfg.Dir, FullMarker+".tmp")
	if os.WriteFile(tmp, b, 0o640) == nil {
		os.Rename(tmp, filepath.Join(w.cfg.Dir, FullMarker))
	}
}

// Full reads FullMarker in dir: whether the writer found the backlog full
// at its last Append, and since when and how often.
func Full(dir string) (FullState, bool) {
	b, err := os.ReadFile(filepath.Join(dir, FullMarker))
	if err != nil {
		return FullState{}, false
	}
	var st FullState
	if json.Unmarshal(b, &st) != nil {
		return FullState{}, false
	}
	return st, true
}

// Close closes the current segment and releases the directory lock.
func (w *Writer) Close() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.f == nil {
		return nil
	}
	err := w.f.Close()
	w.f = nil
	w.lock.Close()
	return err
}

// Position is a place in the spool: a segment number and a byte offset in it.
type Position struct {
	Segment uint64 `json:"segment"`
	Offset  int64  `json:"offset"`
}

// Record is one line read from the spool.
type Record struct {
	Line []byte   // without the newline; owned by the caller
	End  Position // position just after this line
}

// Reader reads lines after the checkpoint. Not safe for concurrent use.
type Reader struct {
	dir  string
	pos  Position // next unread position (may be ahead of the checkpoint)
	torn int64    // torn tails skipped
}

// OpenReader opens dir for reading from its checkpoint.
func OpenReader(dir string) (*Reader, error) {
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return nil, fmt.Errorf("spool: %w", err)
	}
	r := &Reader{dir: dir}
	b, err := os.ReadFile(filepath.Join(dir, checkpointName))
	switch {
	case errors.Is(err, os.ErrNotExist):
	case err != nil:
		return nil, fmt.Errorf("spool: %w", err)
	default:
		if err := json.Unmarshal(b, &r.pos); err != nil {
			return nil, fmt.Errorf("spool: corrupt checkpoint %s: %w", filepath.Join(dir, checkpointName), err)
		}
	}
	return r, nil
}

// Position returns the next unread position.
func (r *Reader) Position() Position { return r.pos }

// TornTails returns how many torn segment tails were skipped.
func (r *Reader) TornTails() int64 { return r.torn }

// Next returns up to max complete lines after the read position, and
// advances the read position past them. It returns no records and no error
// when nothing new is there.
func (r *Reader) Next(max int) ([]Record, error) {
	segs, err := listSegments(r.dir)
	if err != nil {
		return nil, err
	}
	var out []Record
	for i, seq := range segs {
		if seq < r.pos.Segment {
			continue
		}
		if seq > r.pos.Segment {
			r.pos = Position{Segment: seq}
		}
		sealed := i < len(segs)-1
		recs, end, torn, err := readSegment(r.dir, seq, r.pos.Offset, max-len(out), sealed)
		if err != nil {
			return out, err
		}
		out = append(out, recs...)
		r.pos.Offset = end
		if torn {
			r.torn++
		}
		if len(out) >= max {
			return out, nil
		}
	}
	return out, nil
}

func readSegment(dir string, seq uint64, off int64, max int, sealed bool) (recs []Record, end int64, torn bool, err error) {
	f, err := os.Open(segmentPath(dir, seq))
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil, off, false, nil
		}
		return nil, off, false, fmt.Errorf("spool: %w", err)
	}
	defer f.Close()
	if _, err := f.Seek(off, io.SeekStart); err != nil {
		return nil, off, false, fmt.Errorf("spool: %w", err)
	}
	br := bufio.NewReaderSize(f, 64<<10)
	end = off
	for len(recs) < max {
		line, err := br.ReadBytes('\n')
		if err == io.EOF {
			if len(line) > 0 && sealed {
				// A sealed segment never grows: this tail is torn.
				return recs, end + int64(len(line)), true, nil
			}
			return recs, end, false, nil
		}
		if err != nil {
			return recs, end, false, fmt.Errorf("spool: %w", err)
		}
		end += int64(len(line))
		recs = append(recs, Record{Line: line[:len(line)-1], End: Position{Segment: seq, Offset: end}})
	}
	return recs, end, false, nil
}

// Commit records p as delivered: it writes the checkpoint atomically and
// deletes segments that lie wholly before p.
func (r *Reader) Commit(p Position) error {
	b, _ := json.Marshal(p)
	tmp := filepath.Join(r.dir, checkpointName+".tmp")
	f, err := os.OpenFile(tmp, os.O_CREATE|os.O_TRUNC|os.O_WRONLY, 0o640)
	if err != nil {
		return fmt.Errorf("spool: %w", err)
	}
	if _, err := f.Write(b); err != nil {
		f.Close()
		return fmt.Errorf("spool: %w", err)
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return fmt.Errorf("spool: %w", err)
	}
	f.Close()
	if err := os.Rename(tmp, filepath.Join(r.dir, checkpointName)); err != nil {
		return fmt.Errorf("spool: %w", err)
	}
	syncDir(r.dir)
	segs, err := listSegments(r.dir)
	if err != nil {
		return err
	}
	// Never delete the newest segment: the writer may still append to it.
	for i, seq := range segs {
		if seq < p.Segment && i < len(segs)-1 {
			os.Remove(segmentPath(r.dir, seq))
		}
	}
	return nil
}

// Backlog returns the bytes held in segment files (delivered or not).
func Backlog(dir string) (int64, error) { return dirBytes(dir) }

func dirBytes(dir string) (int64, error) {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return 0, err
	}
	var n int64
	for _, e := range ents {
		if strings.HasPrefix(e.Name(), segPrefix) {
			if fi, err := e.Info(); err == nil {
				n += fi.Size()
			}
		}
	}
	return n, nil
}

func segmentPath(dir string, seq uint64) string {
	return filepath.Join(dir, fmt.Sprintf("%s%016d%s", segPrefix, seq, segSuffix))
}

func listSegments(dir string) ([]uint64, error) {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("spool: %w", err)
	}
	var out []uint64
	for _, e := range ents {
		n := e.Name()
		if !strings.HasPrefix(n, segPrefix) || !strings.HasSuffix(n, segSuffix) {
			continue
		}
		v, err := strconv.ParseUint(strings.TrimSuffix(strings.TrimPrefix(n, segPrefix), segSuffix), 10, 64)
		if err != nil {
			continue
		}
		out = append(out, v)
	}
	sort.Slice(out, func(i, j int) bool { return out[i] < out[j] })
	return out, nil
}

func syncDir(dir string) {
	if d, err := os.Open(dir); err == nil {
		d.Sync()
		d.Close()
	}
}
