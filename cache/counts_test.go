package cache

import (
	"fmt"
	"math/rand/v2"
	"testing"
)

// model is the obvious implementation of counts: a map of minute -> count,
// cut to the window ending at the newest minute.
type model struct {
	last int32
	m    map[int32]int
	seen bool
}

func (o *model) add(abs int32) bool {
	if !o.seen {
		o.seen, o.last, o.m = true, abs, map[int32]int{}
	}
	if abs <= o.last-Minutes {
		return false
	}
	if abs > o.last {
		o.last = abs
		for k := range o.m {
			if k <= abs-Minutes {
				delete(o.m, k)
			}
		}
	}
	o.m[abs] = min(o.m[abs]+1, 0xffff)
	return true
}

func checkCounts(t *testing.T, name string, c *counts, o *model) {
	t.Helper()
	var got [Minutes]uint16
	c.snapshot(o.last, &got)
	for i, n := range got {
		abs := o.last - Minutes + 1 + int32(i)
		if int(n) != o.m[abs] {
			t.Fatalf("%s: minute %d: got %d, want %d", name, abs, n, o.m[abs])
		}
	}
	cells := 0
	c.each(func(abs int32, n uint16) {
		cells++
		if int(n) != o.m[abs] {
			t.Fatalf("%s: each: minute %d: got %d, want %d", name, abs, n, o.m[abs])
		}
	})
	if cells != len(o.m) || c.cellCount() != len(o.m) {
		t.Fatalf("%s: %d cells by each, %d by cellCount, want %d", name, cells, c.cellCount(), len(o.m))
	}
}

// Random event streams (in order, late, out of order, too old, long
// silences, dense bursts) against the model, over 120 days so that the
// sparse cells are rebased several times.
func TestCountsAgainstModel(t *testing.T) {
	for seed := uint64(1); seed <= 40; seed++ {
		r := rand.New(rand.NewPCG(seed, 7))
		var c counts
		var o model
		now := int32(29_000_000)
		rate := []int{1, 5, 30, 200, 1440}[seed%5] // events per day
		for day := 0; day < 120; day++ {
			for k := 0; k < rate; k++ {
				now += int32(r.IntN(2 * Minutes / rate))
				abs := now
				switch r.IntN(10) {
				case 0: // late, maybe before the window
					abs -= int32(r.IntN(Minutes + 200))
				case 1: // a long silence
					now += int32(r.IntN(3 * Minutes))
					abs = now
				}
				if c.add(abs, 1) != o.add(abs) {
					t.Fatalf("seed %d: add(%d) disagrees with the model", seed, abs)
				}
			}
			if day%10 == 9 {
				checkCounts(t, "random", &c, &o)
			}
		}
		checkCounts(t, "random", &c, &o)
	}
}

func TestCountsDenseAndBack(t *testing.T) {
	var c counts
	var o model
	m := int32(30_000_000)
	for i := int32(0); i < 3*Minutes; i++ { // a 30 s beacon for three days
		for k := 0; k < 2; k++ {
			c.add(m+i, 1)
			o.add(m + i)
		}
	}
	if !c.isDense() || c.bytes() != denseBytes {
		t.Fatalf("a flow active every minute is not dense (%d bytes)", c.bytes())
	}
	checkCounts(t, "dense", &c, &o)
	// Late events inside the window count in their own minute.
	late := m + 3*Minutes - 100
	c.add(late, 1)
	o.add(late)
	checkCounts(t, "dense late", &c, &o)
	// After a silence longer than the window the ring is empty but for the new minute.
	c.add(m+5*Minutes, 1)
	o.add(m + 5*Minutes)
	checkCounts(t, "dense after silence", &c, &o)
}

func TestWelfordMerge(t *testing.T) {
	xs := []float64{3, 9, 27, 1, 4, 4, 100, 2}
	var all, a, b welford
	var na, nb, nall uint32
	for i, x := range xs {
		all.add(&nall, x)
		if i < 3 {
			a.add(&na, x)
		} else {
			b.add(&nb, x)
		}
	}
	a.merge(&na, &b, nb)
	if na != nall || abs(a.mean-all.mean) > 1e-9 || abs(a.m2-all.m2) > 1e-6 {
		t.Fatalf("merged %d %v %v, want %d %v %v", na, a.mean, a.m2, nall, all.mean, all.m2)
	}
}

func abs(x float64) float64 {
	if x < 0 {
		return -x
	}
	return x
}

// Sparse cells grow by about a quarter at a time: the array never holds
// much more room than the cells need (doubling would waste up to half).
func TestCountsCellsGrowByAQuarter(t *testing.T) {
	var c counts
	base := int32(29_000_000)
	for k := 0; k < denseAfter; k++ {
		c.add(base+int32(2*k), 1)
		n, capacity := int(c.n), int(c.c)
		if n != k+1 || capacity < n || capacity > n+n*3/8+2 {
			t.Fatalf("after %d minutes: %d cells in an array of %d", k+1, n, capacity)
		}
	}
	c.add(base+2*denseAfter, 1)
	if !c.isDense() || c.bytes() != denseBytes || c.cellCount() != denseAfter+1 {
		t.Fatalf("after %d minutes: dense %v, %d bytes, %d cells", denseAfter+1, c.isDense(), c.bytes(), c.cellCount())
	}
}

// Late events over a flow's recent minutes, as a replayed hour of logs
// brings them (in order, each minute again), for flows active in every
// minute, every other minute and in random minutes: the cell found by the
// guess from the newest cell, by the search after it, or a new cell, all
// as the model counts.
func TestCountsLateReplay(t *testing.T) {
	for _, every := range []int{1, 2, 3, 0} {
		r := rand.New(rand.NewPCG(uint64(every), 9))
		var c counts
		var o model
		start := int32(29_000_000)
		active := func(m int) bool { return every == 0 && r.IntN(3) == 0 || every > 0 && m%every == 0 }
		for m := 0; m < 120; m++ {
			if active(m) {
				c.add(start+int32(m), 1)
				o.add(start + int32(m))
			}
		}
		for pass := 0; pass < 3; pass++ {
			for m := 60; m < 120; m++ {
				if abs := start + int32(m); active(m) || pass == 2 {
					if c.add(abs, 1) != o.add(abs) {
						t.Fatalf("every %d: add(%d) disagrees with the model", every, abs)
					}
				}
			}
			checkCounts(t, fmt.Sprintf("late replay, every %d, pass %d", every, pass), &c, &o)
		}
	}
}
