package cache

import (
	"sync"
	"sync/atomic"
)

// source is per-source state shared by all its flows: a bitmap of the
// minutes in which the source sent anything, so features can tell "the
// flow is quiet" from "the host is off".
type source struct {
	mu    sync.Mutex
	ip    string
	last  int32
	bits  [(Minutes + 63) / 64]uint64
	flows int32 // flows referencing this source; guarded by the table shard lock
}

func (s *source) mark(abs int32) {
	s.mu.Lock()
	if abs > s.last {
		if abs-s.last >= Minutes {
			s.bits = [len(s.bits)]uint64{}
		} else {
			for m := s.last + 1; m <= abs; m++ {
				i := mod(m)
				s.bits[i>>6] &^= 1 << (i & 63)
			}
		}
		s.last = abs
	}
	if abs > s.last-Minutes {
		i := mod(abs)
		s.bits[i>>6] |= 1 << (i & 63)
	}
	s.mu.Unlock()
}

// online counts the minutes in [from, to] in which the source was active.
func (s *source) online(from, to int32) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	if from <= s.last-Minutes {
		from = s.last - Minutes + 1
	}
	if to > s.last {
		to = s.last
	}
	n := 0
	for m := from; m <= to; m++ {
		i := mod(m)
		if s.bits[i>>6]&(1<<(i&63)) != 0 {
			n++
		}
	}
	return n
}

func mod(m int32) int {
	i := int(m) % Minutes
	if i < 0 {
		i += Minutes
	}
	return i
}

const shards = 64

// table is a sharded map of sources and of per-destination flow counts
// (prevalence). Both are reference counted by the flows that use them.
type table struct {
	nsrc   atomic.Int64
	shards [shards]struct {
		mu   sync.Mutex
		srcs map[string]*source
		dsts map[string]int32
	}
}

func newTable() *table {
	t := &table{}
	for i := range t.shards {
		t.shards[i].srcs = make(map[string]*source)
		t.shards[i].dsts = make(map[string]int32)
	}
	return t
}

// acquire returns the source for ip and counts one more flow to dst.
func (t *table) acquire(ip, dst string, hSrc, hDst uint64) *source {
	sh := &t.shards[hSrc%shards]
	sh.mu.Lock()
	s := sh.srcs[ip]
	if s == nil {
		s = &source{ip: ip}
		sh.srcs[ip] = s
		t.nsrc.Add(1)
	}
	s.flows++
	sh.mu.Unlock()
	dh := &t.shards[hDst%shards]
	dh.mu.Lock()
	dh.dsts[dst]++
	dh.mu.Unlock()
	return s
}

// release undoes acquire.
func (t *table) release(s *source, dst string, hSrc, hDst uint64) {
	sh := &t.shards[hSrc%shards]
	sh.mu.Lock()
	s.flows--
	if s.flows <= 0 {
		delete(sh.srcs, s.ip)
		t.nsrc.Add(-1)
	}
	sh.mu.Unlock()
	dh := &t.shards[hDst%shards]
	dh.mu.Lock()
	if dh.dsts[dst]--; dh.dsts[dst] <= 0 {
		delete(dh.dsts, dst)
	}
	dh.mu.Unlock()
}

func (t *table) prevalence(dst string, hDst uint64) int {
	dh := &t.shards[hDst%shards]
	dh.mu.Lock()
	n := dh.dsts[dst]
	dh.mu.Unlock()
	return int(n)
}

func (t *table) sources() int { return int(t.nsrc.Load()) }
