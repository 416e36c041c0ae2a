package cache

import (
	"sync"
	"sync/atomic"

	"github.com/cespare/xxhash/v2"
)

// source is per-source state shared by all its flows: a bitmap of the
// minutes in which the source sent anything, so features can tell "the
// flow is quiet" from "the host is off".
//
// The bitmap words are atomics so that the common case, a source already
// marked in this minute, costs two loads and no lock; changing the bitmap
// takes mu.
type source struct {
	mu     sync.Mutex
	ip     string
	last   atomic.Int32
	marked atomic.Int32 // 1 + a minute marked in bits, for a cheap check of the common case
	bits   [(Minutes + 63) / 64]atomic.Uint64
	flows  int32 // flows referencing this source; guarded by the table shard lock
}

func (s *source) mark(abs int32) {
	if s.marked.Load() == abs+1 && abs == s.last.Load() {
		// The newest minute, marked: its bit is set, as last has not
		// moved since (the common case).
		return
	}
	i := mod(abs)
	w, b := &s.bits[i>>6], uint64(1)<<(i&63)
	if abs <= s.last.Load() && w.Load()&b != 0 {
		return
	}
	s.mu.Lock()
	last := s.last.Load()
	if abs > last {
		if abs-last >= Minutes {
			for k := range s.bits {
				s.bits[k].Store(0)
			}
		} else {
			for m := last + 1; m <= abs; m++ {
				j := mod(m)
				s.bits[j>>6].And(^(uint64(1) << (j & 63)))
			}
		}
		s.last.Store(abs)
		last = abs
	}
	if abs > last-Minutes {
		w.Or(b)
		s.marked.Store(abs + 1)
	}
	s.mu.Unlock()
}

// online counts the minutes in [from, to] in which the source was active.
func (s *source) online(from, to int32) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	last := s.last.Load()
	if from <= last-Minutes {
		from = last - Minutes + 1
	}
	if to > last {
		to = last
	}
	n := 0
	for m := from; m <= to; m++ {
		i := mod(m)
		if s.bits[i>>6].Load()&(1<<(i&63)) != 0 {
			n++
		}
	}
	return n
}

const shards = 64

// dest is a destination shared by all flows to it: its name and how many
// tracked flows reach it (prevalence).
type dest struct {
	name  string
	flows int32 // guarded by the table shard lock
}

// table is a sharded map of sources and destinations, each reference
// counted by the flows that use them. Flows point at their source and
// destination instead of holding a key string of their own.
type table struct {
	nsrc   atomic.Int64
	bytes  atomic.Int64 // memory of the sources and destinations
	shards [shards]struct {
		mu   sync.Mutex
		srcs map[string]*source
		dsts map[string]*dest
	}
}

func newTable() *table {
	t := &table{}
	for i := range t.shards {
		t.shards[i].srcs = make(map[string]*source)
		t.shards[i].dsts = make(map[string]*dest)
	}
	return t
}

// acquire returns the source ip and destination dst, counting one more
// flow for each. ip and dst are copied when first seen.
func (t *table) acquire(ip, dst []byte) (*source, *dest) {
	sh := &t.shards[xxhash.Sum64(ip)%shards]
	sh.mu.Lock()
	s := sh.srcs[string(ip)]
	if s == nil {
		s = &source{ip: string(ip)}
		sh.srcs[s.ip] = s
		t.nsrc.Add(1)
		t.bytes.Add(sourceBytes(len(s.ip)))
	}
	s.flows++
	sh.mu.Unlock()
	dh := &t.shards[xxhash.Sum64(dst)%shards]
	dh.mu.Lock()
	d := dh.dsts[string(dst)]
	if d == nil {
		d = &dest{name: string(dst)}
		dh.dsts[d.name] = d
		t.bytes.Add(destBytes(len(d.name)))
	}
	d.flows++
	dh.mu.Unlock()
	return s, d
}

// acquireSource and acquireDest are acquire for n flows of one name at
// once (Restore). The name is kept, not copied.
func (t *table) acquireSource(ip string, n int32) *source {
	sh := &t.shards[xxhash.Sum64String(ip)%shards]
	sh.mu.Lock()
	defer sh.mu.Unlock()
	s := sh.srcs[ip]
	if s == nil {
		s = &source{ip: ip}
		sh.srcs[ip] = s
		t.nsrc.Add(1)
		t.bytes.Add(sourceBytes(len(ip)))
	}
	s.flows += n
	return s
}

func (t *table) acquireDest(name string, n int32) *dest {
	dh := &t.shards[xxhash.Sum64String(name)%shards]
	dh.mu.Lock()
	defer dh.mu.Unlock()
	d := dh.dsts[name]
	if d == nil {
		d = &dest{name: name}
		dh.dsts[name] = d
		t.bytes.Add(destBytes(len(name)))
	}
	d.flows += n
	return d
}

// release undoes acquire.
func (t *table) release(s *source, d *dest) {
	sh := &t.shards[xxhash.Sum64String(s.ip)%shards]
	sh.mu.Lock()
	if s.flows--; s.flows <= 0 {
		delete(sh.srcs, s.ip)
		t.nsrc.Add(-1)
		t.bytes.Add(-sourceBytes(len(s.ip)))
	}
	sh.mu.Unlock()
	dh := &t.shards[xxhash.Sum64String(d.name)%shards]
	dh.mu.Lock()
	if d.flows--; d.flows <= 0 {
		delete(dh.dsts, d.name)
		t.bytes.Add(-destBytes(len(d.name)))
	}
	dh.mu.Unlock()
}

func (t *table) prevalence(d *dest) int {
	dh := &t.shards[xxhash.Sum64String(d.name)%shards]
	dh.mu.Lock()
	n := d.flows
	dh.mu.Unlock()
	return int(n)
}

func (t *table) sources() int { return int(t.nsrc.Load()) }

// sourceBytes and destBytes are the memory of a source or destination with
// a name of n bytes: the struct, the name and a map slot.
func sourceBytes(n int) int64 { return 224 + nameBytes(n) + 40 }
func destBytes(n int) int64   { return 24 + nameBytes(n) + 40 }

// nameBytes rounds a string's length up to Go's small allocation classes.
func nameBytes(n int) int64 {
	switch {
	case n <= 8:
		return 8
	case n <= 128:
		return int64(n+15) &^ 15
	default:
		return int64(n+63) &^ 63
	}
}

// lookup returns the source for ip, or nil.
func (t *table) lookup(ip string) *source {
	sh := &t.shards[xxhash.Sum64String(ip)%shards]
	sh.mu.Lock()
	defer sh.mu.Unlock()
	return sh.srcs[ip]
}

// restore sets the source's online bitmap from a snapshot.
func (s *source) restore(last int32, bits *[(Minutes + 63) / 64]uint64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if last < s.last.Load() {
		return
	}
	s.last.Store(last)
	s.marked.Store(0)
	for i := range s.bits {
		s.bits[i].Store(bits[i])
	}
}
