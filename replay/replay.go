// Package replay feeds log files through the detector offline, in event
// time order across files (Zeek writes http, ssl and conn logs side by side;
// counting one file after the other would make the later ones "late").
package replay

import (
	"container/heap"
	"fmt"
	"io"

	"github.com/beacongrid/beacongrid/fields"
	"github.com/beacongrid/beacongrid/logread"
)

// Stats counts what a replay read.
type Stats struct {
	Records  int64
	BadLines int64 // lines a reader could not parse (skipped)
	BadField int64 // fields with a value of the wrong type
	Files    int
}

// Matcher finds a record key's slot and its rank among the slot's aliases.
type Matcher map[string][2]int

// NewMatcher builds a Matcher for m.
func NewMatcher(m fields.Mapping) Matcher {
	out := make(Matcher)
	for slot, keys := range m {
		for rank, k := range keys {
			if _, dup := out[k]; !dup {
				out[k] = [2]int{slot, rank}
			}
		}
	}
	return out
}

// Run reads files and calls fn with every record in event time order (a
// k-way merge of the files, each assumed roughly sorted). Records without a
// time are passed in file order. badLine, if not nil, hears every line
// error; reading continues after it.
func Run(files []string, m Matcher, fn func(*fields.Event), badLine func(error)) (Stats, error) {
	return RunExtra(files, m, nil, func(e *fields.Event, _ [][]byte) { fn(e) }, badLine)
}

// RunExtra is Run that also hands fn the values of the record keys named in
// extra (nil when a record lacks one), in that order: for example the label
// columns of a labelled capture. The values are valid only during the call.
func RunExtra(files []string, m Matcher, extra []string, fn func(e *fields.Event, extra [][]byte), badLine func(error)) (Stats, error) {
	st := Stats{Files: len(files)}
	var ex map[string]int
	if len(extra) > 0 {
		ex = make(map[string]int, len(extra))
		for i, k := range extra {
			if _, dup := ex[k]; !dup {
				ex[k] = i
			}
		}
	}
	h := &cursorHeap{}
	for _, p := range files {
		r, err := logread.Open(p)
		if err != nil {
			closeAll(*h)
			return st, fmt.Errorf("replay: %w", err)
		}
		c := &cursor{r: r, m: m, st: &st, bad: badLine, ex: ex, extra: make([][]byte, len(extra)), exSpan: make([][2]int, len(extra))}
		if err := c.advance(); err != nil {
			closeAll(*h)
			r.Close()
			return st, err
		}
		if c.ok {
			heap.Push(h, c)
		} else {
			r.Close()
		}
	}
	for h.Len() > 0 {
		c := (*h)[0]
		fn(&c.ev, c.extra)
		if err := c.advance(); err != nil {
			closeAll(*h)
			return st, err
		}
		if c.ok {
			heap.Fix(h, 0)
		} else {
			heap.Pop(h)
			c.r.Close()
		}
	}
	return st, nil
}

// cursor holds the next record of one file, with owned copies of its bytes.
type cursor struct {
	r   *logread.Reader
	m   Matcher
	st  *Stats
	bad func(error)
	ev  fields.Event
	buf []byte
	ok  bool
	// Extra keys: index by key, values (slices of buf) and their spans.
	ex     map[string]int
	extra  [][]byte
	exSpan [][2]int
}

func (c *cursor) advance() error {
	for {
		c.ev.Reset()
		c.buf = c.buf[:0]
		type span struct{ slot, lo, hi int }
		var spans [fields.NumSlots]span
		n := 0
		for i := range c.exSpan {
			c.exSpan[i] = [2]int{-1, -1}
		}
		ok, err := c.r.Next(func(k, v []byte) {
			if c.ex != nil {
				if i, found := c.ex[string(k)]; found {
					lo := len(c.buf)
					c.buf = append(c.buf, v...)
					c.exSpan[i] = [2]int{lo, len(c.buf)}
				}
			}
			sr, found := c.m[string(k)]
			if !found || !c.ev.Claim(sr[0], sr[1]) {
				return
			}
			lo := len(c.buf)
			c.buf = append(c.buf, v...)
			// Record spans; slices are taken after all appends (buf may move).
			for i := 0; i < n; i++ {
				if spans[i].slot == sr[0] {
					spans[i] = span{sr[0], lo, len(c.buf)}
					return
				}
			}
			spans[n] = span{sr[0], lo, len(c.buf)}
			n++
		})
		if err != nil {
			if err == io.EOF {
				c.ok = false
				return nil
			}
			if logread.IsLineError(err) {
				c.st.BadLines++
				if c.bad != nil {
					c.bad(err)
				}
				continue
			}
			return fmt.Errorf("replay: %w", err)
		}
		if !ok {
			c.ok = false
			return nil
		}
		c.st.Records++
		for _, s := range spans[:n] {
			if err := c.ev.SetText(s.slot, c.buf[s.lo:s.hi:s.hi]); err != nil {
				c.st.BadField++
			}
		}
		for i, sp := range c.exSpan {
			c.extra[i] = nil
			if sp[0] >= 0 {
				c.extra[i] = c.buf[sp[0]:sp[1]:sp[1]]
			}
		}
		c.ok = true
		return nil
	}
}

func closeAll(cs []*cursor) {
	for _, c := range cs {
		c.r.Close()
	}
}

type cursorHeap []*cursor

func (h cursorHeap) Len() int { return len(h) }
func (h cursorHeap) Less(i, j int) bool {
	a, b := &h[i].ev, &h[j].ev
	if a.HasTime != b.HasTime {
		return !a.HasTime
	}
	return a.Sec < b.Sec
}
func (h cursorHeap) Swap(i, j int) { h[i], h[j] = h[j], h[i] }
func (h *cursorHeap) Push(x any)   { *h = append(*h, x.(*cursor)) }
func (h *cursorHeap) Pop() any {
	old := *h
	c := old[len(old)-1]
	*h = old[:len(old)-1]
	return c
}
