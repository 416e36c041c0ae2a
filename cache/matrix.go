package cache

// Minutes is the length of the sliding window in minutes (24 h).
const Minutes = 24 * 60

// denseAfter is the number of sparse cells after which a flow's counts move
// to a dense ring: 64 cells of 8 bytes cost 512 bytes, the dense ring 2880.
const denseAfter = 64

// cell is one minute with at least one event: abs is the Unix minute.
type cell struct {
	abs int32
	n   uint16
}

// counts holds one flow's per-minute event counts over the sliding window
// that ends at the flow's newest minute (last). Most flows touch few minutes
// and keep a short sorted slice of cells; a flow active in more than
// denseAfter minutes switches to a dense ring indexed by abs mod Minutes.
//
// counts is not safe for concurrent use; Flow guards it with its mutex.
type counts struct {
	last  int32 // newest minute seen; valid minutes are (last-Minutes, last]
	cells []cell
	dense *[Minutes]uint16
}

// add counts n events at Unix minute abs. It returns false if abs lies
// before this flow's window.
func (c *counts) add(abs int32, n uint16) bool {
	if c.cells == nil && c.dense == nil {
		c.last = abs
	}
	if abs > c.last {
		c.advance(abs)
	} else if abs <= c.last-Minutes {
		return false
	}
	if c.dense != nil {
		i := int(abs) % Minutes
		if i < 0 {
			i += Minutes
		}
		c.dense[i] = satAdd(c.dense[i], n)
		return true
	}
	// Sparse: most events land in the newest minute, so search from the end.
	j := len(c.cells)
	for j > 0 && c.cells[j-1].abs > abs {
		j--
	}
	if j > 0 && c.cells[j-1].abs == abs {
		c.cells[j-1].n = satAdd(c.cells[j-1].n, n)
		return true
	}
	if len(c.cells) >= denseAfter {
		c.toDense()
		return c.add(abs, n)
	}
	c.cells = append(c.cells, cell{})
	copy(c.cells[j+1:], c.cells[j:])
	c.cells[j] = cell{abs: abs, n: n}
	return true
}

// advance moves the window end to abs (> last), forgetting minutes that
// fall out of the window.
func (c *counts) advance(abs int32) {
	if c.dense != nil {
		if abs-c.last >= Minutes {
			*c.dense = [Minutes]uint16{}
		} else {
			for m := c.last + 1; m <= abs; m++ {
				i := int(m) % Minutes
				if i < 0 {
					i += Minutes
				}
				c.dense[i] = 0
			}
		}
	} else {
		cut := abs - Minutes
		k := 0
		for k < len(c.cells) && c.cells[k].abs <= cut {
			k++
		}
		if k > 0 {
			n := copy(c.cells, c.cells[k:])
			c.cells = c.cells[:n]
		}
	}
	c.last = abs
}

func (c *counts) toDense() {
	d := new([Minutes]uint16)
	for _, x := range c.cells {
		i := int(x.abs) % Minutes
		if i < 0 {
			i += Minutes
		}
		d[i] = x.n
	}
	c.dense = d
	c.cells = nil
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
	if c.dense != nil {
		for m := lo; m <= hi; m++ {
			i := int(m) % Minutes
			if i < 0 {
				i += Minutes
			}
			dst[m-start] = c.dense[i]
		}
		return
	}
	for _, x := range c.cells {
		if x.abs >= lo && x.abs <= hi {
			dst[x.abs-start] = x.n
		}
	}
}

// bytes is the heap this counts holds beyond its own struct.
func (c *counts) bytes() int {
	n := cap(c.cells) * 8
	if c.dense != nil {
		n += Minutes * 2
	}
	return n
}

func satAdd(a, b uint16) uint16 {
	if s := uint32(a) + uint32(b); s < 0xffff {
		return uint16(s)
	}
	return 0xffff
}
