package cache

import (
	"math"
	"slices"
	"unsafe"
)

// Minutes is the length of the sliding window in minutes (24 h).
const Minutes = 24 * 60

// denseAfter is the number of sparse cells after which a flow's counts move
// to a dense ring: 512 cells of 4 bytes cost 2 KiB, the dense ring 2880
// bytes, and a sparse slice that grew once more would cost 4 KiB.
const denseAfter = 512

// denseCells is the length of the cells slice that holds a dense ring: two
// uint16 counts per 4-byte cell.
const denseCells = Minutes / 2

// denseBytes is the allocation of a dense ring: 2880 bytes in the 3072-byte
// size class.
const denseBytes = 3072

// denseBase marks the dense form in counts.base.
const denseBase = math.MinInt32

// maxOff is the largest cell offset from a flow's base minute.
const maxOff = 0xffff

// cell is one minute with at least one event: minute base+off holds n.
type cell struct {
	off uint16
	n   uint16
}

// counts holds one flow's per-minute event counts over the sliding window
// that ends at the flow's newest minute (last), in 24 bytes plus its cells.
// Most flows touch few minutes and keep a short array of 4-byte cells
// sorted by minute; a flow active in more than denseAfter minutes switches
// to a dense ring of Minutes uint16 counts indexed by abs mod Minutes (2880
// bytes, the size a 30 s beacon needs anyway), kept in the same array.
// The array is held as a pointer and two 16-bit lengths rather than a
// slice (24 bytes), which keeps Flow in the 112-byte allocation class.
// Sparse cells grow by about a quarter at a time to the next allocation
// size class, not by doubling: a flow's cells waste little room, and the
// garbage of growing (five times the final size, against twice for
// doubling) stays small next to the rest of the store's.
//
// Sparse cells store their minute as an offset from base, which is at most
// Minutes-1 minutes before the oldest minute the window can hold; when a
// long-lived flow's window moves more than 45 days past base, the cells are
// rebased. base is denseBase in the dense form.
//
// counts is not safe for concurrent use; Flow guards it with its mutex.
type counts struct {
	p    *cell  // the cells' array; nil before the first event
	base int32  // minute of offset 0 (sparse form), or denseBase
	last int32  // newest minute seen; valid minutes are (last-Minutes, last]
	n, c uint16 // cells in use and the array's length
	// events is the flow's number of events (wraps; the pending table
	// compares it), kept by Flow: here it fills the struct's last word.
	events uint32
}

// cells returns the cells in use, with the array's length as capacity.
func (c *counts) cells() []cell {
	if c.p == nil {
		return nil
	}
	return unsafe.Slice(c.p, int(c.c))[:c.n]
}

// setCells makes s (non-nil) the cells.
func (c *counts) setCells(s []cell) {
	c.p, c.n, c.c = unsafe.SliceData(s), uint16(len(s)), uint16(cap(s))
}

func (c *counts) empty() bool   { return c.p == nil }
func (c *counts) isDense() bool { return c.base == denseBase }

// mature reports whether the counts have cells for matureMinutes minutes.
func (c *counts) mature() bool { return c.isDense() || int(c.n) >= matureMinutes }

// at and set read and write the dense ring at index i (abs mod Minutes).
func (c *counts) at(i int) uint16 {
	x := unsafe.Slice(c.p, denseCells)[i>>1]
	if i&1 == 0 {
		return x.off
	}
	return x.n
}

func (c *counts) set(i int, v uint16) {
	x := &unsafe.Slice(c.p, denseCells)[i>>1]
	if i&1 == 0 {
		x.off = v
	} else {
		x.n = v
	}
}

// add counts n events at Unix minute abs. It returns false if abs lies
// before this flow's window.
func (c *counts) add(abs int32, n uint16) bool {
	if c.empty() {
		c.last = abs
		c.base = abs - Minutes + 1
	}
	if abs > c.last {
		c.advance(abs)
	} else if abs <= c.last-Minutes {
		return false
	}
	if c.isDense() {
		i := mod(abs)
		c.set(i, satAdd(c.at(i), n))
		return true
	}
	off := uint16(abs - c.base)
	// Sparse: most events land in the newest minute, so look there first,
	// then in the cells before it.
	if c.n > 0 {
		if x := (*cell)(unsafe.Add(unsafe.Pointer(c.p), 4*(int(c.n)-1))); x.off == off {
			x.n = satAdd(x.n, n)
			return true
		}
	}
	cells := c.cells()
	j := len(cells) // where the new cell goes: after every cell, for an event in a new minute
	if j > 0 && cells[j-1].off > off {
		// A late event: binary search for the first cell at or after
		// its minute (the last cell is after it). A flow of hundreds of
		// cells receiving a late hour of logs costs a handful of steps per
		// event, not a walk back through the cells.
		lo, hi := 0, j-1
		// The cells' minutes are distinct and ascending, so the cell
		// that many cells back from the newest is at or before the
		// event's minute: the search starts there, and ends there for a
		// flow active in every minute since (a replayed hour of logs).
		if g := j - 1 - int(cells[j-1].off-off); g > 0 {
			if lo = g; cells[g].off == off {
				cells[g].n = satAdd(cells[g].n, n)
				return true
			}
		}
		for lo < hi {
			if m := int(uint(lo+hi) >> 1); cells[m].off < off {
				lo = m + 1
			} else {
				hi = m
			}
		}
		if j = lo; cells[j].off == off {
			cells[j].n = satAdd(cells[j].n, n)
			return true
		}
	}
	if len(cells) >= denseAfter {
		c.toDense()
		return c.add(abs, n)
	}
	if len(cells) == cap(cells) {
		// Grow to the allocation size class that holds a quarter more.
		g := slices.Grow([]cell(nil), len(cells)+1+len(cells)/4)
		cells = append(g, cells...)
	}
	cells = cells[:len(cells)+1]
	copy(cells[j+1:], cells[j:])
	cells[j] = cell{off: off, n: n}
	c.setCells(cells)
	return true
}

// minuteCount is a minute and its count, as a snapshot stores them.
type minuteCount struct {
	abs int32
	n   uint16
}

// load sets empty counts to cells (minutes ascending and in one window,
// counts not 0, at least one). The result is what adding the cells one
// at a time gives, array length included (so the same bytes), with one
// allocation.
func (c *counts) load(cells []minuteCount) {
	c.last = cells[len(cells)-1].abs
	if len(cells) > denseAfter {
		c.setCells(make([]cell, denseCells))
		c.base = denseBase
		for _, x := range cells {
			c.set(mod(x.abs), x.n)
		}
		return
	}
	c.base = cells[0].abs - Minutes + 1
	s := slices.Grow([]cell(nil), int(grownCap[len(cells)]))[:len(cells)]
	for i, x := range cells {
		s[i] = cell{off: uint16(x.abs - c.base), n: x.n}
	}
	c.setCells(s)
}

// grownCap[n] is the array length of sparse counts that grew to n cells
// one cell at a time (add's growth).
var grownCap = func() (t [denseAfter + 1]uint16) {
	c := 0
	for n := 1; n <= denseAfter; n++ {
		if n > c {
			c = cap(slices.Grow([]cell(nil), c+1+c/4))
		}
		t[n] = uint16(c)
	}
	return t
}()

// advance moves the window end to abs (> last), forgetting minutes that
// fall out of the window.
func (c *counts) advance(abs int32) {
	if c.isDense() {
		if abs-c.last >= Minutes {
			clear(c.cells())
		} else {
			for m := c.last + 1; m <= abs; m++ {
				c.set(mod(m), 0)
			}
		}
		c.last = abs
		return
	}
	c.last = abs
	lo := abs - Minutes + 1 // oldest minute kept
	cells := c.cells()
	k := 0
	for k < len(cells) && c.base+int32(cells[k].off) < lo {
		k++
	}
	if k > 0 {
		cells = cells[:copy(cells, cells[k:])]
		c.setCells(cells)
	}
	if abs-c.base > maxOff {
		d := lo - c.base
		for i := range cells {
			cells[i].off -= uint16(d)
		}
		c.base = lo
	}
}

func (c *counts) toDense() {
	old := c.cells()
	base := c.base
	c.setCells(make([]cell, denseCells))
	c.base = denseBase
	for _, x := range old {
		c.set(mod(base+int32(x.off)), x.n)
	}
}

// each calls fn for every minute of the flow's window with a count, oldest
// first.
func (c *counts) each(fn func(abs int32, n uint16)) {
	if c.isDense() {
		for m := c.last - Minutes + 1; m <= c.last; m++ {
			if n := c.at(mod(m)); n != 0 {
				fn(m, n)
			}
		}
		return
	}
	for _, x := range c.cells() {
		fn(c.base+int32(x.off), x.n)
	}
}

// cellCount returns the number of minutes with a count in the window.
func (c *counts) cellCount() int {
	if !c.isDense() {
		return int(c.n)
	}
	n := 0
	for _, x := range c.cells() {
		if x.off != 0 {
			n++
		}
		if x.n != 0 {
			n++
		}
	}
	return n
}

// snapshot writes the counts of the Minutes minutes ending at end into dst,
// oldest first: dst[Minutes-1] is minute end. Minutes after the flow's own
// window (end > last) read as zero.
func (c *counts) snapshot(end int32, dst *[Minutes]uint16) {
	*dst = [Minutes]uint16{}
	start := end - Minutes + 1
	lo := start
	if w := c.last - Minutes + 1; w > lo {
		lo = w
	}
	hi := end
	if c.last < hi {
		hi = c.last
	}
	if c.isDense() {
		for m := lo; m <= hi; m++ {
			dst[m-start] = c.at(mod(m))
		}
		return
	}
	for _, x := range c.cells() {
		if abs := c.base + int32(x.off); abs >= lo && abs <= hi {
			dst[abs-start] = x.n
		}
	}
}

// bytes is the heap this counts holds beyond its own struct.
func (c *counts) bytes() int {
	if c.isDense() {
		return denseBytes
	}
	return int(c.c) * 4 // the array's length is its allocation class
}

func satAdd(a, b uint16) uint16 {
	if s := uint32(a) + uint32(b); s < 0xffff {
		return uint16(s)
	}
	return 0xffff
}

func mod(m int32) int {
	i := int(m) % Minutes
	if i < 0 {
		i += Minutes
	}
	return i
}
