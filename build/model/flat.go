package model

import (
	"bufio"
	"bytes"
	"cmp"
	"fmt"
	"math"
	"math/bits"
	"slices"
	"strings"

	"github.com/dmitryikh/leaves/util"
)

// flat is the ensemble laid out for scoring one row at a time, for models
// whose splits are all plain numerical ones (x <= threshold, NaN taken as
// 0; what training on beacongrid's features gives) and whose trees have at
// most 32 leaves (LightGBM's default num_leaves is 31). It evaluates the
// trees the QuickScorer way (Lucchese et al., SIGIR 2015): each tree keeps a
// bit per leaf, numbered left to right;
// every split whose test is false for the row (x > threshold, the row goes
// right) clears the leaves of its left subtree; the row's leaf is then the
// lowest bit left in each tree. The splits are kept per feature, sorted by
// threshold, so the false ones are a prefix found by one scan per feature:
// no branch per node depends on the data, where leaves' walk (kept as the
// reference, and for every other model) mispredicts at about every other
// node and makes a method call and several flag tests at each.
//
// It reads the same tree blocks as leaves, with leaves' own parameter reader
// (util.ReadParamsUntilBlank, strconv.ParseFloat), takes the same decision
// at every split as leaves' numericalDecision, and sums the trees' leaf
// values in tree order starting from 0, as leaves does: the raw score is
// the same double.
type flat struct {
	// The splits on feature j are splits[off[j]:off[j+1]], by threshold
	// ascending.
	splits    []flatSplit
	off       []int32
	values    []float64 // leaf values, tree after tree, left to right
	base      []int32   // per tree: index of its first leaf in values
	nFeatures int
}

// flatSplit is a split's threshold (as its order key), the tree it belongs
// to and its left subtree's leaves, which a row failing it rules out.
type flatSplit struct {
	key   uint64
	clear uint32
	tree  uint32
}

// orderKey maps a float64 to a uint64 with the same order: the bits with
// the sign set for a positive number, all bits flipped for a negative one.
// -0 is taken as +0 (they compare equal as floats). For numbers other than
// NaN, a <= b exactly when orderKey(a) <= orderKey(b).
func orderKey(v float64) uint64 {
	if v == 0 {
		v = 0
	}
	b := math.Float64bits(v)
	return b ^ (uint64(int64(b)>>63) | 1<<63)
}

// errNotFlat means the model has something flat does not evaluate
// (categorical splits, splits that treat NaN or zero as missing, trees of
// more than 32 leaves, more than stackTrees trees, several classes, averaged
// output): the model is then
// scored by leaves alone.
var errNotFlat = fmt.Errorf("model not representable in the flat layout")

// compileFlat reads the LightGBM model text into a flat ensemble. It
// returns errNotFlat for models it does not handle and another error for
// text it cannot read (leaves has already accepted the text by then).
func compileFlat(txt []byte, nFeatures, nTrees int) (*flat, error) {
	if nFeatures > maxFlatFeatures {
		return nil, errNotFlat
	}
	r := bufio.NewReader(bytes.NewReader(txt))
	hdr, err := util.ReadParamsUntilBlank(r)
	if err != nil {
		return nil, fmt.Errorf("header: %v", err)
	}
	if n, err := hdr.ToInt("num_class"); err != nil || n != 1 || hdr.Contains("average_output") || nTrees > stackTrees {
		return nil, errNotFlat
	}
	f := &flat{nFeatures: nFeatures}
	byFeat := make([][]flatSplit, nFeatures)
	for i := 0; i < nTrees; i++ {
		p, err := util.ReadParamsUntilBlank(r)
		if err != nil {
			return nil, fmt.Errorf("tree %d: %v", i, err)
		}
		leafValues, err := p.ToFloat64Slice("leaf_value")
		if err != nil {
			return nil, fmt.Errorf("tree %d: %v", i, err)
		}
		nl, err := p.ToInt("num_leaves")
		if err != nil || nl < 1 || nl != len(leafValues) {
			return nil, fmt.Errorf("tree %d: num_leaves does not match leaf_value", i)
		}
		if nc, err := p.ToInt("num_cat"); err != nil || nc != 0 {
			return nil, errNotFlat
		}
		var left, right []int32
		var feat, decision []uint32
		var thr []float64
		if nl > 1 {
			if left, err = p.ToInt32Slice("left_child"); err == nil {
				if right, err = p.ToInt32Slice("right_child"); err == nil {
					if feat, err = p.ToUint32Slice("split_feature"); err == nil {
						if decision, err = p.ToUint32Slice("decision_type"); err == nil {
							thr, err = p.ToFloat64Slice("threshold")
						}
					}
				}
			}
			if err != nil {
				return nil, fmt.Errorf("tree %d: %v", i, err)
			}
			if len(left) != nl-1 || len(right) != nl-1 || len(feat) != nl-1 || len(decision) != nl-1 || len(thr) != nl-1 {
				return nil, fmt.Errorf("tree %d: split arrays do not all hold num_leaves-1 = %d values", i, nl-1)
			}
			for k, d := range decision {
				// Only numerical splits with missing type None: NaN is 0
				// and the decision is x <= threshold (leaves'
				// numericalDecision). Anything else stays with leaves.
				if d&1 != 0 || (d>>2)&3 != 0 || math.IsNaN(thr[k]) {
					return nil, errNotFlat
				}
				if int(feat[k]) >= nFeatures {
					return nil, fmt.Errorf("tree %d: split on feature %d of %d", i, feat[k], nFeatures)
				}
			}
		}
		if nl > 32 || len(f.values)+nl > math.MaxInt32 {
			return nil, errNotFlat
		}
		// In order: each split and leaf is reached exactly once, else the
		// text is not a tree. Leaves are numbered left to right.
		seen := make([]bool, 2*nl)
		tree := int32(len(f.base))
		first := len(f.values)
		var walk func(c int32, depth int) (lo, hi int, err error)
		walk = func(c int32, depth int) (lo, hi int, err error) {
			key := int(c)
			if c < 0 {
				key = nl - 1 + int(^c)
			}
			if key < 0 || key >= len(seen) || (c >= 0 && int(c) >= nl-1) || (c < 0 && int(^c) >= nl) || seen[key] || depth > nl {
				return 0, 0, fmt.Errorf("tree %d: node %d is not a tree node, or a child twice", i, c)
			}
			seen[key] = true
			if c < 0 {
				lo = len(f.values) - first
				f.values = append(f.values, leafValues[^c])
				return lo, lo + 1, nil
			}
			lo, mid, err := walk(left[c], depth+1)
			if err != nil {
				return 0, 0, err
			}
			_, hi, err = walk(right[c], depth+1)
			if err != nil {
				return 0, 0, err
			}
			j := feat[c]
			byFeat[j] = append(byFeat[j], flatSplit{orderKey(thr[c]), (uint32(1)<<(mid-lo) - 1) << lo, uint32(tree)})
			return lo, hi, nil
		}
		root := int32(0)
		if nl == 1 {
			root = ^int32(0)
		}
		if _, _, err := walk(root, 0); err != nil {
			return nil, err
		}
		f.base = append(f.base, int32(first))
	}
	line := ""
	for line == "" && err == nil {
		line, err = r.ReadString('\n')
		line = strings.TrimSpace(line)
	}
	if line != "end of trees" {
		return nil, fmt.Errorf("%d trees read, then %q instead of \"end of trees\"", nTrees, line)
	}
	f.off = make([]int32, 1, nFeatures+1)
	for _, es := range byFeat {
		slices.SortFunc(es, func(a, b flatSplit) int { return cmp.Compare(a.key, b.key) })
		f.splits = append(f.splits, es...)
		f.off = append(f.off, int32(len(f.splits)))
	}
	return f, nil
}

// maxFlatFeatures bounds the features compileFlat accepts.
const maxFlatFeatures = 1 << 16

// stackTrees is the most trees a flat model has: predictRaw keeps a word
// per tree on the stack.
const stackTrees = 1024

// predictRaw returns the raw score (sum of leaf values) of x, which has
// nFeatures values, after LightGBM's zero rule (|x| <= lgbZero is 0) and
// the NaN rule of every split (NaN is 0).
func (f *flat) predictRaw(x []float64) float64 {
	// Per tree, the leaves ruled out so far. Tree numbers are below
	// stackTrees (compileFlat), so the mask is the bounds check.
	var cleared [stackTrees]uint32
	off := f.off[:f.nFeatures+1]
	for j, v := range x[:f.nFeatures] {
		if math.Abs(v) <= lgbZero || v != v {
			v = 0
		}
		xk := orderKey(v)
		// The splits with threshold < x, the false ones, come first.
		for _, s := range f.splits[off[j]:off[j+1]] {
			if s.key >= xk {
				break
			}
			cleared[s.tree&(stackTrees-1)] |= s.clear
		}
	}
	sum := 0.0
	for t, b := range f.base {
		sum += f.values[int(b)+bits.TrailingZeros32(^cleared[t&(stackTrees-1)])]
	}
	return sum
}
