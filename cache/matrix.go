package cache

import "math"

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
// that ends at the flow's newest minute (last), in 32 bytes plus its cells.
// Most flows touch few minutes and keep a short slice of 4-byte cells
// sorted by minute; a flow active in more than denseAfter minutes switches
// to a dense ring of Minutes uint16 counts indexed by abs mod Minutes (2880
// bytes, the size a 30 s beacon needs anyway), kept in the same slice.
//
// Sparse cells store their minute as an offset from base, which is at most
// Minutes-1 minutes before the oldest minute the window can hold; when a
// long-lived flow's window moves more than 45 days past base, the cells are
// rebased. base is denseBase in the dense form.
//
// counts is not safe for concurrent use; Flow guards it with its mutex.
type counts struct {
	base  int32 // minute of offset 0 (sparse form), or denseBase
	last  int32 // newest minute seen; valid minutes are (last-Minutes, last]
	cells []cell
}

func (c *counts) empty() bool   { return c.cells == nil }
func (c *counts) isDense() bool { return c.base == denseBase }

// at and set read and write the dense ring at index i (abs mod Minutes).
func (c *counts) at(i int) uint16 {
	if i&1 == 0 {
		return c.cells[i>>1].off
	}
	return c.cells[i>>1].n
}

func (c *counts) set(i int, v uint16) {
	if i&1 == 0 {
		c.cells[i>>1].off = v
	} else {
		c.cells[i>>1].n = v
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
	// Sparse: most events land in the newest minute, so search from the end.
	j := len(c.cells)
	for j > 0 && c.cells[j-1].off > off {
		j--
	}
	if j > 0 && c.cells[j-1].off == off {
		c.cells[j-1].n = satAdd(c.cells[j-1].n, n)
		return true
	}
	if len(c.cells) >= denseAfter {
		c.toDense()
		return c.add(abs, n)
	}
	if j == len(c.cells) {
		c.cells = append(c.cells, cell{off: off, n: n})
		return true
	}
	c.cells = append(c.cells, cell{})
	copy(c.cells[j+1:], c.cells[j:])
	c.cells[j] = cell{off: off, n: n}
	return true
}

// advance moves the window end to abs (> last), forgetting minutes that
// fall out of the window.
func (c *counts) advance(abs int32) {
	if c.isDense() {
		if abs-c.last >= Minutes {
			clear(c.cells)
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
	k := 0
	for k < len(c.cells) && c.base+int32(c.cells[k].off) < lo {
		k++
	}
	if k > 0 {
		n := copy(c.cells, c.cells[k:])
		c.cells = c.cells[:n]
	}
	if abs-c.base > maxOff {
		d := lo - c.base
		for i := range c.cells {
			c.cells[i].off -= uint16(d)
		}
		c.base = lo
	}
}

func (c *counts) toDense() {
	d := make([]cell, denseCells)
	old := c.cells
	base := c.base
	c.cells, c.base = d, denseBase
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
	for _, x := range c.cells {
		fn(c.base+int32(x.off), x.n)
	}
}

// cellCount returns the number of minutes with a count in the window.
func (c *counts) cellCount() int {
	if !c.isDense() {
		return len(c.cells)
	}
	n := 0
	for _, x := range c.cells {
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
	for _, x := range c.cells {
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
	return cap(c.cells) * 4 // append rounds cap up to the allocation class
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
