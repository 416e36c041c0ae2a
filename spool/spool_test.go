package spool

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"
)

func lines(recs []Record) []string {
	var out []string
	for _, r := range recs {
		out = append(out, string(r.Line))
	}
	return out
}

func TestWriteReadCommit(t *testing.T) {
	dir := t.TempDir()
	w, err := OpenWriter(WriterConfig{Dir: dir, SegmentBytes: 20, NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 10; i++ {
		if err := w.Append([]byte(fmt.Sprintf(`{"n":%d}`, i))); err != nil {
			t.Fatal(err)
		}
	}
	r, err := OpenReader(dir)
	if err != nil {
		t.Fatal(err)
	}
	recs, err := r.Next(4)
	if err != nil || len(recs) != 4 || string(recs[3].Line) != `{"n":3}` {
		t.Fatalf("first batch %q %v", lines(recs), err)
	}
	if err := r.Commit(recs[3].End); err != nil {
		t.Fatal(err)
	}
	// A new reader resumes from the checkpoint.
	r2, _ := OpenReader(dir)
	recs, _ = r2.Next(100)
	if len(recs) != 6 || string(recs[0].Line) != `{"n":4}` {
		t.Fatalf("after checkpoint: %q", lines(recs))
	}
	// Without a commit, the same lines come again (at-least-once).
	r3, _ := OpenReader(dir)
	again, _ := r3.Next(100)
	if len(again) != 6 {
		t.Fatalf("re-delivery: %d lines", len(again))
	}
	w.Close()
}

func TestSecondWriterRefused(t *testing.T) {
	dir := t.TempDir()
	w, err := OpenWriter(WriterConfig{Dir: dir, NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	if _, err := OpenWriter(WriterConfig{Dir: dir, NoSync: true}); err == nil {
		t.Fatal("a second writer opened the same spool")
	}
}

func TestTornTailOfSealedSegmentSkipped(t *testing.T) {
	dir := t.TempDir()
	w, _ := OpenWriter(WriterConfig{Dir: dir, NoSync: true})
	w.Append([]byte(`{"a":1}`))
	w.Close()
	// Simulate a crash mid-write: a partial line at the end of the segment.
	segs, _ := listSegments(dir)
	f, _ := os.OpenFile(segmentPath(dir, segs[0]), os.O_APPEND|os.O_WRONLY, 0)
	f.WriteString(`{"b":`)
	f.Close()
	// The restarted writer seals it by starting a new segment.
	w2, _ := OpenWriter(WriterConfig{Dir: dir, NoSync: true})
	w2.Append([]byte(`{"c":3}`))
	defer w2.Close()
	r, _ := OpenReader(dir)
	recs, err := r.Next(10)
	if err != nil {
		t.Fatal(err)
	}
	if got := lines(recs); len(got) != 2 || got[0] != `{"a":1}` || got[1] != `{"c":3}` {
		t.Fatalf("got %q", got)
	}
	if r.TornTails() != 1 {
		t.Fatalf("torn tails %d", r.TornTails())
	}
}

func TestUnsealedPartialLineWaits(t *testing.T) {
	dir := t.TempDir()
	w, _ := OpenWriter(WriterConfig{Dir: dir, NoSync: true})
	defer w.Close()
	w.Append([]byte(`{"a":1}`))
	f, _ := os.OpenFile(segmentPath(dir, w.seq), os.O_APPEND|os.O_WRONLY, 0)
	f.WriteString(`{"b":`)
	r, _ := OpenReader(dir)
	recs, _ := r.Next(10)
	if len(recs) != 1 {
		t.Fatalf("got %q", lines(recs))
	}
	f.WriteString("2}\n")
	f.Close()
	recs, _ = r.Next(10)
	if len(recs) != 1 || string(recs[0].Line) != `{"b":2}` {
		t.Fatalf("completed line: %q", lines(recs))
	}
}

func TestBacklogBound(t *testing.T) {
	dir := t.TempDir()
	w, _ := OpenWriter(WriterConfig{Dir: dir, MaxBytes: 100, SegmentBytes: 30, NoSync: true})
	defer w.Close()
	var err error
	for i := 0; i < 50 && err == nil; i++ {
		err = w.Append([]byte(`{"x":"0123456789"}`))
	}
	if err != ErrFull {
		t.Fatalf("got %v, want ErrFull", err)
	}
	// The refusal is immediate (no wait for space) and visible to the reader
	// side through the marker, with a count of refused appends.
	start := time.Now()
	if err := w.Append([]byte(`{"x":1}`)); err != ErrFull {
		t.Fatalf("second append: %v", err)
	}
	if d := time.Since(start); d > 100*time.Millisecond {
		t.Errorf("refused append took %s", d)
	}
	st, full := Full(dir)
	if !full || st.Refused != 2 || st.Since == "" {
		t.Fatalf("Full = %+v, %v; want 2 refusals", st, full)
	}
	// Delivering frees space; the next append succeeds and clears the mark.
	r, _ := OpenReader(dir)
	recs, _ := r.Next(100)
	if err := r.Commit(recs[len(recs)-1].End); err != nil {
		t.Fatal(err)
	}
	if err := w.Append([]byte(`{"x":2}`)); err != nil {
		t.Fatalf("append after delivery: %v", err)
	}
	if _, full := Full(dir); full {
		t.Fatal("marker not cleared by a successful append")
	}
}

func TestCommitDeletesDeliveredSegments(t *testing.T) {
	dir := t.TempDir()
	w, _ := OpenWriter(WriterConfig{Dir: dir, SegmentBytes: 10, NoSync: true})
	defer w.Close()
	for i := 0; i < 5; i++ {
		w.Append([]byte(fmt.Sprintf(`{"n":%d}`, i)))
	}
	r, _ := OpenReader(dir)
	recs, _ := r.Next(100)
	r.Commit(recs[len(recs)-1].End)
	m, _ := filepath.Glob(filepath.Join(dir, "seg-*"))
	if len(m) != 1 {
		t.Fatalf("%d segments left after committing all, want the newest only", len(m))
	}
}
