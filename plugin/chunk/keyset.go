package chunk

import "encoding/binary"

// KeySet is a Matcher built from a list of aliases per slot. Lookups do not
// allocate. A KeySet is immutable after NewKeySet and safe for concurrent use.
//
// Keys are found by a multiplicative hash of their length and last eight
// bytes, with a multiplier chosen when the set is built so that no two keys
// share a bucket (they may, in a huge set; buckets are chained). Most
// unwanted keys stop at one load of an empty bucket; a key in a bucket is
// compared exactly, by length and then as 8-byte words.
type KeySet struct {
	// The fields the Reader's loop reads come first: at offsets below 4 KiB
	// their loads are also its nil checks.
	mult    uint64
	entries []ksEntry
	// Copies of the Reader's lookup tables, indexed from the KeySet pointer
	// the scanner holds anyway (a global table costs an address load more).
	keyHead    [256]uint8        // keyHead
	size       [256]uint8        // scalarSize
	keyMask    [256]uint64       // keyMask
	table      [tableSize]uint32 // first key entry (index+1) of each bucket, 0 if none
	prefixHead [sigSize]uint32
	slots      int
}

type ksEntry struct {
	last       uint64 // lastWord(key)
	first      uint64 // the first 8 bytes of key when longer than 8
	n          int    // len(key)
	key        []byte
	slot       int32 // -1 for a prefix-only entry
	rank       int32
	prefix     bool   // some key starts with key + "."
	nextKey    uint32 // next entry (index+1) in the same key bucket
	nextPrefix uint32 // next entry (index+1) in the same prefix bucket
}

const (
	sigSize   = 512
	tableBits = 10
	tableSize = 1 << tableBits
)

// sig is the bucket of a prefix: a mix of its length and last byte.
func sig(path []byte) uint {
	n := len(path)
	if n == 0 {
		return 0
	}
	return (uint(n)*67 + uint(path[n-1])) & (sigSize - 1)
}

// lastWord is the word a key is hashed by: its last 8 bytes as a
// little-endian integer; a key shorter than 8 bytes sits in the high bytes,
// the low ones zero. It is what the Reader computes in place from the 8
// bytes of the chunk that end with the key, masked to the key's length.
func lastWord(key []byte) uint64 {
	n := len(key)
	if n >= 8 {
		return binary.LittleEndian.Uint64(key[n-8:])
	}
	var pad [8]byte
	copy(pad[8-n:], key)
	return binary.LittleEndian.Uint64(pad[:])
}

// highMask[n] keeps the high n bytes of a word (n <= 8).
var highMask = [9]uint64{0, 0xff << 56, 0xffff << 48, 0xffffff << 40, 0xffffffff << 32, 0xffffffffff << 24, 0xffffffffffff << 16, 0xffffffffffffff << 8, 0xffffffffffffffff}

// bucket is the table index of a key of length n whose lastWord is w.
func (ks *KeySet) bucket(w uint64, n int) uint64 {
	return ((w ^ uint64(n)) * ks.mult) >> (64 - tableBits)
}

// NewKeySet builds a KeySet: slots[i] lists the paths that fill slot i, most
// preferred first. When several aliases of a slot occur in one record, the
// one listed first wins whatever the record order: with
// slots[i] = {"host", "id.resp_h"}, "host" wins over "id.resp_h". A path is a
// top-level key, flat or dotted ("id.orig_h"), or the dotted path of a key in
// nested maps ({"id": {"orig_h": ...}} also matches "id.orig_h").
//
// A path listed in more than one slot belongs to the first slot that lists
// it; its later listings are ignored.
func NewKeySet(slots [][]string) *KeySet {
	ks := &KeySet{slots: len(slots), size: scalarSize, keyMask: keyMask, keyHead: keyHead}
	index := map[string]int{}
	add := func(key string, slot, rank int32, prefix bool) {
		i, ok := index[key]
		if !ok {
			i = len(ks.entries)
			index[key] = i
			e := ksEntry{key: []byte(key), n: len(key), last: lastWord([]byte(key)), slot: -1}
			if len(key) > 8 {
				e.first = binary.LittleEndian.Uint64(e.key)
			}
			ks.entries = append(ks.entries, e)
		}
		e := &ks.entries[i]
		if prefix {
			e.prefix = true
		} else if e.slot < 0 {
			e.slot, e.rank = slot, min(rank, nilRank-1)
		}
	}
	for slot, aliases := range slots {
		for rank, key := range aliases {
			add(key, int32(slot), int32(min(rank, nilRank-1)), false)
			for i := 0; i < len(key); i++ {
				if key[i] == '.' {
					add(key[:i], 0, 0, true)
				}
			}
		}
	}
	ks.buildTable()
	for i := range ks.entries {
		e := &ks.entries[i]
		if e.prefix {
			s := sig(e.key)
			e.nextPrefix, ks.prefixHead[s] = ks.prefixHead[s], uint32(i+1)
		}
	}
	return ks
}

// buildTable chooses the multiplier of the hash: the first of 256 tried
// that puts every key in a bucket of its own, or else the one with the
// fewest keys sharing a bucket. Sharing costs speed, never correctness:
// buckets are chained.
func (ks *KeySet) buildTable() {
	best, bestShared := uint64(0), -1
	seed := uint64(0)
	for try := 0; try < 256 && bestShared != 0; try++ {
		seed += 0x9e3779b97f4a7c15 // splitmix64
		m := seed
		m = (m ^ m>>30) * 0xbf58476d1ce4e5b9
		m = (m ^ m>>27) * 0x94d049bb133111eb
		ks.mult = (m ^ m>>31) | 1
		if shared := ks.fill(); bestShared < 0 || shared < bestShared {
			best, bestShared = ks.mult, shared
		}
	}
	ks.mult = best
	ks.fill()
}

// fill fills the table for ks.mult and returns the number of keys that
// share a bucket with an earlier one.
func (ks *KeySet) fill() (shared int) {
	ks.table = [tableSize]uint32{}
	for i := range ks.entries {
		e := &ks.entries[i]
		if e.slot < 0 {
			continue
		}
		h := ks.bucket(e.last, e.n)
		if ks.table[h] != 0 {
			shared++
		}
		e.nextKey, ks.table[h] = ks.table[h], uint32(i+1)
	}
	return shared
}

// Slots returns the number of slots, the slots argument for Reader.Reset.
func (ks *KeySet) Slots() int {
	if ks == nil {
		return 0
	}
	return ks.slots
}

// Match implements Matcher: it returns the slot of path and the position of
// path in that slot's alias list, or -1. A nil KeySet matches nothing.
func (ks *KeySet) Match(path []byte) (slot, rank int) {
	if ks == nil {
		return -1, 0
	}
	if e := ks.find(path); e != nil {
		return int(e.slot), int(e.rank)
	}
	return -1, 0
}

// find returns the key entry of path, or nil.
func (ks *KeySet) find(path []byte) *ksEntry {
	for i := ks.table[ks.bucket(lastWord(path), len(path))]; i != 0; {
		e := &ks.entries[i-1]
		if string(e.key) == string(path) {
			return e
		}
		i = e.nextKey
	}
	return nil
}

// WantPrefix implements PrefixMatcher: it reports whether some path of ks
// starts with prefix + ".".
func (ks *KeySet) WantPrefix(prefix []byte) bool {
	if ks == nil {
		return false
	}
	for i := ks.prefixHead[sig(prefix)]; i != 0; {
		e := &ks.entries[i-1]
		if string(e.key) == string(prefix) {
			return true
		}
		i = e.nextPrefix
	}
	return false
}
