package cache

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io/fs"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
)

// views returns every tracked flow's View by key.
func views(s *Store) map[string]View {
	out := map[string]View{}
	s.Range(func(f *Flow) bool {
		var v View
		s.Snapshot(f, &v)
		out[f.Key()] = v
		return true
	})
	return out
}

// fill gives s a mix of flows: dense beacons, sparse periodic flows,
// one-offs, late events and marks.
func fill(t testing.TB, s *Store) {
	t.Helper()
	base := t0.Unix()
	for m := 0; m < 600; m++ {
		sec := base + int64(m*60)
		s.Observe([]byte("10.0.0.1"), []byte("dense.example"), sec, 100)
		s.Observe([]byte("10.0.0.1"), []byte("dense.example"), sec+30, 120)
		if m%17 == 0 {
			s.Observe([]byte("10.0.0.2"), []byte("sparse.example"), sec, -1)
		}
		s.Observe([]byte("10.0.1."+strconv.Itoa(m%50)), []byte("oneoff"+strconv.Itoa(m)+".example"), sec, 5)
	}
	s.Observe([]byte("10.0.0.2"), []byte("sparse.example"), base+60*5, 1) // late
	f, _, r := s.Observe([]byte("10.0.0.1"), []byte("[2001:db8::1]:443"), base+600*60, 7)
	if r != Counted {
		t.Fatal(r)
	}
	f.SetMarks(Marks{NextScore: 123, AlertMinute: 456, AlertScore: 0.75})
	s.Wait()
}

func TestSnapshotRoundTrip(t *testing.T) {
	a := newStore(t, Config{Now: fixedNow})
	fill(t, a)
	path := filepath.Join(t.TempDir(), "state.bgs")
	wst, err := a.WriteSnapshot(path)
	if err != nil {
		t.Fatal(err)
	}
	want := views(a)
	if wst.Flows != len(want) || int64(wst.Sources) != a.Stats().Sources {
		t.Fatalf("wrote %+v; store has %d flows, %d sources", wst, len(want), a.Stats().Sources)
	}
	b := newStore(t, Config{Now: fixedNow})
	rst, err := b.Restore(path)
	if err != nil {
		t.Fatal(err)
	}
	got := views(b)
	if rst.Flows != len(want) || len(got) != len(want) || b.Stats().Restored != int64(len(want)) {
		t.Fatalf("restored %+v, %d views, want %d", rst, len(got), len(want))
	}
	for k, w := range want {
		if g, ok := got[k]; !ok || g != w {
			t.Fatalf("flow %q: restored view differs\n got %+v\nwant %+v", k, summary(g), summary(w))
		}
	}
	if b.Watermark() != a.Watermark() || b.Stats().Bytes != a.Stats().Bytes || b.Stats().Sources != a.Stats().Sources {
		t.Fatalf("watermark %d/%d bytes %d/%d sources %d/%d", b.Watermark(), a.Watermark(),
			b.Stats().Bytes, a.Stats().Bytes, b.Stats().Sources, a.Stats().Sources)
	}
	// The restored store keeps counting where the old one stopped.
	f, _, _ := b.Observe([]byte("10.0.0.1"), []byte("dense.example"), t0.Unix()+599*60+10, 1)
	var v View
	b.Snapshot(f, &v)
	if v.Counts[Minutes-2] != 3 { // minute 599 had 2 events before
		t.Fatalf("minute 599 after restore + 1: %d", v.Counts[Minutes-2])
	}
}

func summary(v View) string {
	n := 0
	for _, c := range v.Counts {
		n += int(c)
	}
	return fmt.Sprintf("%s>%s end=%d events=%d first=%d last=%d gaps=%d/%.3f/%.3f size=%.3f/%.3f online=%d prev=%d src=%d marks=%+v",
		v.Src, v.Dst, v.End, n, v.FirstSec, v.LastSec, v.Gaps, v.GapMean, v.GapCV, v.SizeMean, v.SizeCV, v.SrcOnline, v.Prevalence, v.Sources, v.Marks)
}

// Every damaged or foreign file is refused with an error that says why,
// and the store stays empty.
func TestRestoreRefusesBadFiles(t *testing.T) {
	a := newStore(t, Config{Now: fixedNow})
	fill(t, a)
	dir := t.TempDir()
	good := filepath.Join(dir, "good")
	if _, err := a.WriteSnapshot(good); err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(good)
	if err != nil {
		t.Fatal(err)
	}
	withCRC := func(b []byte) []byte { // re-checksummed, so only the content is wrong
		b = append([]byte(nil), b[:len(b)-4]...)
		return binary.LittleEndian.AppendUint32(b, crc32c(b))
	}
	version2 := append([]byte(nil), data...)
	binary.LittleEndian.PutUint32(version2[8:], 2)
	flipped := append([]byte(nil), data...)
	flipped[len(flipped)/2] ^= 0x10
	window := append([]byte(nil), data[:12]...)
	window = binary.AppendVarint(window, 60) // a one-hour window
	window = append(window, data[13:]...)
	cases := []struct {
		name string
		data []byte
		want string
	}{
		{"empty", nil, "too short"},
		{"foreign", []byte("{\"flows\": [1, 2, 3], \"version\": 1}\n"), "not a beacongrid state snapshot"},
		{"wrong magic", append([]byte("BGSTATF\n"), data[8:]...), "not a beacongrid state snapshot"},
		{"wrong version", version2, "format version 2, this build reads version 1"},
		{"truncated", data[:len(data)*2/3], "checksum mismatch"},
		{"truncated, re-checksummed", withCRC(data[:len(data)*2/3]), "unexpected end of data"},
		{"flipped bit", flipped, "checksum mismatch"},
		{"other window, re-checksummed", withCRC(window), "window of 60 minutes"},
		{"trailing data, re-checksummed", withCRC(append(append([]byte(nil), data[:len(data)-4]...), 0, 0, 0, 0, 0)), "after the end"},
	}
	for _, c := range cases {
		path := filepath.Join(dir, strings.ReplaceAll(c.name, " ", "_"))
		if err := os.WriteFile(path, c.data, 0o644); err != nil {
			t.Fatal(err)
		}
		s := newStore(t, Config{Now: fixedNow})
		_, err := s.Restore(path)
		if err == nil || !errors.Is(err, ErrSnapshot) || !strings.Contains(err.Error(), c.want) || !strings.Contains(err.Error(), path) {
			t.Errorf("%s: error %v, want ErrSnapshot with %q and the path", c.name, err, c.want)
		}
		if st := s.Stats(); st.Flows != 0 || st.Sources != 0 || st.Bytes != 0 || s.Watermark() != 0 {
			t.Errorf("%s: the store is not empty after a refused restore: %+v", c.name, st)
		}
	}
	s := newStore(t, Config{Now: fixedNow})
	if _, err := s.Restore(filepath.Join(dir, "missing")); !errors.Is(err, fs.ErrNotExist) || errors.Is(err, ErrSnapshot) {
		t.Errorf("missing file: %v", err)
	}
}

// A snapshot taken while workers count is consistent and complete for the
// flows that existed before it started; run with -race.
func TestSnapshotDuringObserve(t *testing.T) {
	s := newStore(t, Config{Now: fixedNow})
	fill(t, s)
	path := filepath.Join(t.TempDir(), "state.bgs")
	var wg sync.WaitGroup
	stop := make(chan struct{})
	for w := 0; w < 2; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				s.Observe([]byte("10.0.2."+strconv.Itoa(w)), []byte("w"+strconv.Itoa(i%500)+".example"), t0.Unix()+int64(i%36000), 1)
			}
		}()
	}
	var err error
	for i := 0; i < 5 && err == nil; i++ {
		_, err = s.WriteSnapshot(path)
	}
	close(stop)
	wg.Wait()
	if err != nil {
		t.Fatal(err)
	}
	b := newStore(t, Config{Now: fixedNow})
	if _, err := b.Restore(path); err != nil {
		t.Fatal(err)
	}
	if got := views(b); got["10.0.0.1\x00dense.example"].GapMean != 30 {
		t.Fatalf("dense flow after a concurrent snapshot: %s", summary(got["10.0.0.1\x00dense.example"]))
	}
	if m, _ := filepath.Glob(filepath.Join(filepath.Dir(path), ".state.bgs.tmp-*")); len(m) != 0 {
		t.Fatalf("temporary files left behind: %v", m)
	}
}

// A snapshot larger than the restoring store's bound: what does not fit is
// dropped, the accounting stays exact and the store keeps working.
func TestRestoreIntoSmallerStore(t *testing.T) {
	a := newStore(t, Config{MaxBytes: 64 << 20, Now: fixedNow})
	for i := 0; i < 40000; i++ {
		a.Observe([]byte("10.3."+strconv.Itoa(i/250)+"."+strconv.Itoa(i%250)), []byte("d"+strconv.Itoa(i)+".example"), t0.Unix()+int64(i%3600), 1)
	}
	b, st := restoreInto(t, a, 2<<20)
	bs := b.Stats()
	if st.Flows == 0 || st.Flows >= 40000 || bs.Restored != int64(st.Flows) {
		t.Fatalf("restored %d of 40000 flows into a 2 MiB store (%+v)", st.Flows, bs)
	}
	var n, bytes int64
	b.Range(func(f *Flow) bool { n++; bytes += f.cost(); return true })
	if n != bs.Flows || bytes != bs.Bytes {
		t.Fatalf("Range %d flows %d bytes; Stats %+v", n, bytes, bs)
	}
	if _, _, r := b.Observe([]byte("10.0.0.1"), []byte("after.example"), t0.Unix()+3600, 1); r != Counted {
		t.Fatalf("after restore: %v", r)
	}
}

// testdata/state-v1.bgs was written by the store before its hot-path
// redesign (commit dc4a2f8) from fill: the current store restores it to
// the flows fill gives it now, every view equal.
func TestRestoreSnapshotOfEarlierBuild(t *testing.T) {
	a := newStore(t, Config{Now: fixedNow})
	fill(t, a)
	want := views(a)
	b := newStore(t, Config{Now: fixedNow})
	st, err := b.Restore(filepath.Join("testdata", "state-v1.bgs"))
	if err != nil {
		t.Fatal(err)
	}
	got := views(b)
	if st.Flows != len(want) || len(got) != len(want) {
		t.Fatalf("restored %+v, %d views, want %d flows", st, len(got), len(want))
	}
	for k, w := range want {
		if g, ok := got[k]; !ok || g != w {
			t.Fatalf("flow %q: restored view differs\n got %+v\nwant %+v", k, summary(g), summary(w))
		}
	}
}

// counts.load, which Restore uses, gives what adding the same cells one at
// a time gives: the same cells, base, window end, array length (so the
// same bytes) and form, sparse and dense.
func TestCountsLoadMatchesAdd(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for _, n := range []int{1, 2, 3, 5, 9, 17, 40, 100, 255, 511, 512, 513, 700, Minutes} {
		for rep := 0; rep < 3; rep++ {
			last := int32(30_000_000 + rng.IntN(5000))
			mins := rng.Perm(Minutes)[:n]
			slices.Sort(mins)
			mins[n-1] = Minutes - 1 // the newest cell is the window's end
			mins = slices.Compact(mins)
			var want, got counts
			var cells []minuteCount
			for _, m := range mins {
				abs, c := last-Minutes+1+int32(m), uint16(1+rng.IntN(0xfffe))
				want.add(abs, c)
				cells = append(cells, minuteCount{abs, c})
			}
			got.load(cells)
			if got.base != want.base || got.last != want.last || got.n != want.n || got.c != want.c || got.bytes() != want.bytes() {
				t.Fatalf("%d cells: load gives base %d last %d n %d cap %d bytes %d, add base %d last %d n %d cap %d bytes %d",
					len(cells), got.base, got.last, got.n, got.c, got.bytes(), want.base, want.last, want.n, want.c, want.bytes())
			}
			var gv, wv [Minutes]uint16
			got.snapshot(last, &gv)
			want.snapshot(last, &wv)
			if gv != wv || got.cellCount() != len(cells) {
				t.Fatalf("%d cells: loaded counts differ from added ones (%d cells counted)", len(cells), got.cellCount())
			}
		}
	}
}

// After a restore that keeps only part of a snapshot, every source and
// destination is referenced exactly by the flows kept: the shared bytes
// and the source count are those of the kept flows' names, and releasing
// every flow leaves nothing behind.
func TestRestoreSharedNamesCounted(t *testing.T) {
	a := newStore(t, Config{MaxBytes: 64 << 20, Now: fixedNow})
	for i := 0; i < 20000; i++ {
		a.Observe([]byte("10.4.0."+strconv.Itoa(i%97)), []byte("d"+strconv.Itoa(i%1500)+".example"), t0.Unix()+int64(i%3600), 1)
	}
	b, st := restoreInto(t, a, 2<<20)
	srcs, dsts := map[string]int{}, map[string]int{}
	var fs []*Flow
	b.Range(func(f *Flow) bool { srcs[f.Src()]++; dsts[f.Dst()]++; fs = append(fs, f); return true })
	var shared int64
	for s := range srcs {
		shared += sourceBytes(len(s))
	}
	for d := range dsts {
		shared += destBytes(len(d))
	}
	bs := b.Stats()
	if st.Flows == 0 || len(fs) != st.Flows || bs.Sources != int64(len(srcs)) || bs.SharedBytes != shared {
		t.Fatalf("restored %d flows, Range %d; sources %d, want %d; shared bytes %d, want %d",
			st.Flows, len(fs), bs.Sources, len(srcs), bs.SharedBytes, shared)
	}
	for _, f := range fs {
		if p := b.tab.prevalence(f.dst); p != dsts[f.Dst()] {
			t.Fatalf("%s: prevalence %d, %d flows kept", f.Dst(), p, dsts[f.Dst()])
		}
	}
	for _, f := range fs {
		b.release(f)
	}
	if bs := b.Stats(); bs.Flows != 0 || bs.Bytes != 0 || bs.Sources != 0 || bs.SharedBytes != 0 {
		t.Fatalf("after releasing every flow: %+v", bs)
	}
}

// restoreInto writes a snapshot of a and restores it into a new store of
// maxBytes, returning that store (settled) and what Restore reported.
func restoreInto(t *testing.T, a *Store, maxBytes int64) (*Store, SnapshotStats) {
	t.Helper()
	a.Wait()
	path := filepath.Join(t.TempDir(), "state.bgs")
	if _, err := a.WriteSnapshot(path); err != nil {
		t.Fatal(err)
	}
	b := newStore(t, Config{MaxBytes: maxBytes, Now: fixedNow})
	st, err := b.Restore(path)
	if err != nil {
		t.Fatal(err)
	}
	b.Wait()
	return b, st
}
