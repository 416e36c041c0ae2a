package chunk

import (
	"encoding/binary"
	"math"
	"unsafe"
)

// The scanner reads the chunk through a base pointer and offsets, without
// Go's bounds checks. Every read names the check that keeps it inside the
// chunk: a byte at base+i needs 0 <= i < end, the 8 bytes at base+i (a
// little-endian word, or be64) 0 <= i && i+8 <= end, be16 and be32 i+2
// and i+4 <= end, where end is len(b) of the slice base points into.
//
// The byte and word reads are written out in scanPairs and eventHead,
// *(*byte)(unsafe.Add(base, i)) and binary.LittleEndian.Uint64 of
// (*[8]byte)(unsafe.Add(base, i)), not calls of helpers: each inlined
// helper left an inline mark, a NOP, in the loop (the reader went from
// 1259 to 1153 instructions per record, build/bench/instructions.sh).

// be16, be32 and be64 return the big-endian integer at base+i.
func be16(base unsafe.Pointer, i int) uint16 {
	return binary.BigEndian.Uint16((*[2]byte)(unsafe.Add(base, i))[:])
}

func be32(base unsafe.Pointer, i int) uint32 {
	return binary.BigEndian.Uint32((*[4]byte)(unsafe.Add(base, i))[:])
}

func be64(base unsafe.Pointer, i int) uint64 {
	return binary.BigEndian.Uint64((*[8]byte)(unsafe.Add(base, i))[:])
}

// setStr sets v's Kind to KindStr and v.Str to b[i:i+n:i+n] for
// 0 <= i, i+n <= end, where b is the slice base points into, as Go's
// slicing would: an empty slice points at base (never past the end). It
// writes the slice's three words itself: unsafe.Slice would check that
// the address and n do not overflow, which they cannot here.
func (v *Value) setStr(base unsafe.Pointer, i int, n uint8) {
	if n == 0 {
		i = 0
	}
	h := (*sliceHeader)(unsafe.Pointer(&v.Str))
	v.Kind, h.data, h.len, h.cap = KindStr, unsafe.Add(base, i), int(n), int(n)
}

// sliceHeader is the layout of a slice (see unsafe.Slice); data is a
// pointer, so a store to it has the write barrier a []byte store has.
type sliceHeader struct {
	data     unsafe.Pointer
	len, cap int
}

// fbase returns the address of the first Value of *fp.
func fbase(fp *[]Value) unsafe.Pointer { return unsafe.Pointer(unsafe.SliceData(*fp)) }

// setInt sets v to the signed integer x: KindUint when it is >= 0, as
// msgp's readers deliver it (see Value).
func (v *Value) setInt(x int64) {
	if x >= 0 {
		v.Kind, v.Uint = KindUint, uint64(x)
	} else {
		v.Kind, v.Int = KindInt, x
	}
}

// keyHead[c] is 1 + the length of a fixstr key whose first byte is c: the
// offset of its value from the key's start; 0 for any other first byte.
var keyHead = func() (t [256]uint8) {
	for c := 0xa0; c < 0xc0; c++ {
		t[c] = uint8(1 + c&0x1f)
	}
	return t
}()

// keyMask[n] keeps the bytes of the word that ends with a key of n bytes
// that belong to the key: highMask[n] below 8 bytes, all of them from 8 on.
var keyMask = func() (t [256]uint64) {
	for n := range t {
		t[n] = highMask[min(n, 8)]
	}
	return t
}()

// scanPairs reads the pairs at b[p:], at most n, as long as each has a
// fixstr or str8 key, a value wholly in b, and is one of
//   - an unwanted key (most stop at one load of an empty bucket) with a
//     scalar value, a str8/str16, or a fixarray of such;
//   - a wanted key with a value of a common type (positive fixint, fixstr,
//     str8, nil, uint8/16/32, int16/32, float64), decoded in place.
//
// It returns the position of the first pair it did not read and the pairs
// left, that one included, for readPair: a nested map, a rarer type, a long
// key in a wanted bucket, a fault. It is the hot path of the reader and
// makes no call, so Go keeps its state in registers; it reads b without
// bounds checks (see at). What it decodes is what readPair decodes with
// msgp's readers (TestScanMatchesMsgp).
func (r *Reader) scanPairs(b []byte, p int, n uint32, f []Value) (int, uint32) {
	end := len(b)
	// p >= 7 makes the end of every key, past p, at least 8: the word that
	// ends with a key lies in b. (Only a legacy event with a one-byte
	// timestamp puts its body before offset 7; readPair reads it.)
	if n == 0 || p < 7 || p >= end {
		return p, n
	}
	ks := r.ks
	if len(f) < ks.slots || len(r.rank) < ks.slots {
		return p, n // fewer slots than the KeySet has: readPair checks each
	}
	base := unsafe.Pointer(unsafe.SliceData(b))
	left := int(n) // pairs left, this one included
	// f is read through a pointer: in memory, not in registers held
	// through the loop for the few wanted pairs.
	fp := &f
pairs:
	for {
		// Loop invariant: 7 <= p < end and left > 0.
		c := *(*byte)(unsafe.Add(base, p)) // p < end
		h := int(ks.keyHead[c])
		k1 := p + h // fixstr: most keys
		if h == 0 {
			if c != 0xd9 || p+1 >= end { // str8
				break
			}
			h = 2 + int(*(*byte)(unsafe.Add(base, p+1))) // p+1 < end
			k1 = p + h
			h-- // as if the header were one byte
		}
		kn := h - 1
		// The key is b[k1-kn:k1], its value starts at b[k1]; k1 > p >= 7.
		if k1 >= end {
			break
		}
		// k1-8 >= 0, k1 < end: the word that ends with the key, and the
		// value's first byte; q is the value's end if scalar, else k1.
		w := binary.LittleEndian.Uint64((*[8]byte)(unsafe.Add(base, k1-8))[:]) & ks.keyMask[uint8(kn)]
		lead := *(*byte)(unsafe.Add(base, k1))
		q := k1 + int(ks.size[lead])
		if i := ks.table[((w^uint64(kn))*ks.mult)>>(64-tableBits)]; i != 0 {
			// i-1 < len(ks.entries): the table holds entry indexes + 1.
			e := (*ksEntry)(unsafe.Add(unsafe.Pointer(unsafe.SliceData(ks.entries)), uintptr(i-1)*unsafe.Sizeof(ksEntry{})))
			// kn > 8: k1-kn+8 < k1 < end.
			if e.n == kn && e.last == w && (kn <= 8 || binary.LittleEndian.Uint64((*[8]byte)(unsafe.Add(base, k1-kn))[:]) == e.first) {
				if kn > 16 {
					break // the middle bytes: readPair
				}
				slot, rank := uint(int(e.slot)), e.rank
				if lead == 0xc0 {
					rank = nilRank
				}
				// slot < ks.slots <= len(f), len(r.rank) (checked above).
				if slot >= uint(ks.slots) {
					goto skip
				}
				v := (*Value)(unsafe.Add(fbase(fp), slot*uint(unsafe.Sizeof(Value{}))))
				vr := (*int32)(unsafe.Add(unsafe.Pointer(unsafe.SliceData(r.rank)), slot*4))
				if v.Kind != KindNone && rank >= *vr {
					goto skip
				}
				// Wanted: decode the value into its slot. Below, the value
				// is b[k1:q] and q <= end. Each case sets Kind and the
				// field it names (the only one a Value defines); the two
				// string cases meet at str, one place for the pointer
				// store and its write barrier. A case that gives up sets
				// nothing.
				if q > end {
					break
				}
				var so int   // a string's offset
				var sl uint8 // and length
				switch {
				case lead&0xe0 == 0xa0: // fixstr
					so, sl = k1+1, lead&0x1f
					goto str
				case lead < 0x80: // positive fixint
					v.Kind, v.Uint = KindUint, uint64(lead)
				case lead == 0xcb: // float64: q = k1+9
					v.Kind, v.Float = KindFloat, math.Float64frombits(be64(base, k1+1))
				case lead == 0xd1: // int16: q = k1+3
					v.setInt(int64(int16(be16(base, k1+1))))
				case lead == 0xcd: // uint16: q = k1+3
					v.Kind, v.Uint = KindUint, uint64(be16(base, k1+1))
				case lead == 0xd9: // str8: q = k1 here
					if k1+1 >= end {
						break pairs
					}
					sl = *(*byte)(unsafe.Add(base, k1+1)) // k1+1 < end
					if q = k1 + 2 + int(sl); q > end {
						break pairs
					}
					so = k1 + 2
					goto str
				case lead == 0xd2: // int32: q = k1+5
					v.setInt(int64(int32(be32(base, k1+1))))
				case lead == 0xce: // uint32: q = k1+5
					v.Kind, v.Uint = KindUint, uint64(be32(base, k1+1))
				case lead == 0xcc: // uint8: q = k1+2, k1+1 < end
					v.Kind, v.Uint = KindUint, uint64(*(*byte)(unsafe.Add(base, k1+1)))
				case lead == 0xc0:
					v.Kind = KindNil
				default: // the other types: readPair
					break pairs
				}
				*vr = rank
				goto next
			str:
				v.setStr(base, so, sl)
				*vr = rank
				goto next
			} else if e.nextKey != 0 {
				break // a shared bucket: readPair walks it
			}
		}
		// Not wanted: step over the value.
	skip:
		if q == k1 {
			switch {
			case lead == 0xd9 && k1+1 < end: // str8
				q = k1 + 2 + int(*(*byte)(unsafe.Add(base, k1+1))) // k1+1 < end
			case lead == 0xda && k1+2 < end: // str16
				q = k1 + 3 + int(be16(base, k1+1)) // k1+2 < end
			case lead&0xf0 == 0x90: // fixarray of scalars and str8
				q = k1 + 1
				for m := lead & 0x0f; m > 0; m-- {
					if q >= end {
						break pairs
					}
					el := *(*byte)(unsafe.Add(base, q)) // q < end
					sz := int(ks.size[el])
					if sz == 0 {
						if el != 0xd9 || q+1 >= end {
							break pairs
						}
						sz = 2 + int(*(*byte)(unsafe.Add(base, q+1))) // q+1 < end
					}
					q += sz
				}
			default:
				break pairs
			}
		}
	next:
		// The pair is b[p:q]. Keep the invariant: q < end, or stop.
		if q >= end {
			if q == end {
				p, left = q, left-1
			}
			break
		}
		p = q
		if left--; left == 0 {
			break
		}
	}
	return p, uint32(left)
}
