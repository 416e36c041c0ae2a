package chunk

// KeySet is a Matcher built from a list of aliases per slot. Lookups do not
// allocate. A KeySet is immutable after NewKeySet and safe for concurrent use.
//
// Paths are bucketed by a 9-bit signature of their length and last byte:
// most unwanted keys are rejected by one load of an empty bucket, and a
// wanted key costs one string comparison.
type KeySet struct {
	keyHead    [sigSize]uint32 // first entry (index+1) of each key bucket, 0 if none
	prefixHead [sigSize]uint32 // same for prefixes
	entries    []ksEntry
	slots      int
}

type ksEntry struct {
	key        string
	slot       int32 // -1 for a prefix-only entry
	rank       int32
	prefix     bool   // some key starts with key + "."
	nextKey    uint32 // next entry (index+1) in the same key bucket
	nextPrefix uint32 // next entry (index+1) in the same prefix bucket
}

const sigSize = 512

// sig is the bucket of path: a mix of its length and last byte.
func sig(path []byte) uint {
	n := len(path)
	if n == 0 {
		return 0
	}
	return (uint(n)*67 + uint(path[n-1])) & (sigSize - 1)
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
	ks := &KeySet{slots: len(slots)}
	index := map[string]int{}
	add := func(key string, slot, rank int32, prefix bool) {
		i, ok := index[key]
		if !ok {
			i = len(ks.entries)
			index[key] = i
			ks.entries = append(ks.entries, ksEntry{key: key, slot: -1})
		}
		e := &ks.entries[i]
		if prefix {
			e.prefix = true
		} else if e.slot < 0 {
			e.slot, e.rank = slot, rank
		}
	}
	for slot, aliases := range slots {
		for rank, key := range aliases {
			add(key, int32(slot), int32(rank), false)
			for i := 0; i < len(key); i++ {
				if key[i] == '.' {
					add(key[:i], 0, 0, true)
				}
			}
		}
	}
	for i := range ks.entries {
		e := &ks.entries[i]
		s := sig([]byte(e.key))
		if e.slot >= 0 {
			e.nextKey, ks.keyHead[s] = ks.keyHead[s], uint32(i+1)
		}
		if e.prefix {
			e.nextPrefix, ks.prefixHead[s] = ks.prefixHead[s], uint32(i+1)
		}
	}
	return ks
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
	for i := ks.keyHead[sig(path)]; i != 0; {
		e := &ks.entries[i-1]
		if e.key == string(path) {
			return int(e.slot), int(e.rank)
		}
		i = e.nextKey
	}
	return -1, 0
}

// WantPrefix implements PrefixMatcher: it reports whether some path of ks
// starts with prefix + ".".
func (ks *KeySet) WantPrefix(prefix []byte) bool {
	if ks == nil {
		return false
	}
	for i := ks.prefixHead[sig(prefix)]; i != 0; {
		e := &ks.entries[i-1]
		if e.key == string(prefix) {
			return true
		}
		i = e.nextPrefix
	}
	return false
}
