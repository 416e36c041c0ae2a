package model

import (
	"bufio"
	"bytes"
	"fmt"
	"math"
	"strings"

	"github.com/dmitryikh/leaves/util"
)

// flat is the ensemble laid out for scoring one row at a time, for models
// whose splits are all plain numerical ones (x <= threshold, NaN taken as
// 0), which is what training on beacongrid's features gives. Every tree is
// stored in preorder, leaves included, in one slice of 16-byte nodes: a
// split's left child is the next node, a leaf is a node that steps to
// itself. Trees are walked four at a time, each a fixed number of steps
// (the deepest of the four), with the child picked by a conditional move:
// no branch depends on the data, and the four chains of loads overlap.
// leaves' own evaluator (kept as the reference, and for every other model)
// makes a method call and several flag tests per node and a mispredicted
// branch at about every other one.
//
// It reads the same tree blocks as leaves, with leaves' own parameter reader
// (util.ReadParamsUntilBlank, strconv.ParseFloat), reaches the same leaf as
// leaves' numericalDecision for every row, and sums the trees' leaf values
// in tree order starting from 0, as leaves does: the raw score is the same
// double.
type flat struct {
	nodes     []flatNode
	values    []float64 // per node: the leaf value (0 for splits)
	roots     []int32   // per tree: its root node
	steps     []uint8   // per group of four trees (and the rest): the deepest leaf's depth
	nFeatures int
}

// flatNode is one split or leaf. A split goes to the next node when
// x[feat] <= thr and to right otherwise; a leaf has thr NaN (no x is <=
// NaN) and right pointing at itself.
type flatNode struct {
	thr   float64
	right int32
	feat  uint16
}

// errNotFlat means the model has something flat does not evaluate
// (categorical splits, several classes, averaged output, too many
// features): the model is then scored by leaves alone.
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
	if n, err := hdr.ToInt("num_class"); err != nil || n != 1 || hdr.Contains("average_output") {
		return nil, errNotFlat
	}
	f := &flat{nFeatures: nFeatures}
	depths := make([]int, 0, nTrees)
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
		if len(f.nodes)+2*nl > math.MaxInt32 {
			return nil, errNotFlat
		}
		// Preorder: each split and leaf is reached exactly once, else the
		// text is not a tree.
		seen := make([]bool, 2*nl)
		depth := 0
		var emit func(c int32, d int) error
		emit = func(c int32, d int) error {
			key := int(c)
			if c < 0 {
				key = nl - 1 + int(^c)
			}
			if key < 0 || key >= len(seen) || (c >= 0 && int(c) >= nl-1) || (c < 0 && int(^c) >= nl) || seen[key] {
				return fmt.Errorf("tree %d: node %d is not a tree node, or a child twice", i, c)
			}
			seen[key] = true
			at := int32(len(f.nodes))
			if c < 0 {
				f.nodes = append(f.nodes, flatNode{thr: math.NaN(), right: at})
				f.values = append(f.values, leafValues[^c])
				depth = max(depth, d)
				return nil
			}
			f.nodes = append(f.nodes, flatNode{thr: thr[c], feat: uint16(feat[c])})
			f.values = append(f.values, 0)
			if err := emit(left[c], d+1); err != nil {
				return err
			}
			f.nodes[at].right = int32(len(f.nodes))
			return emit(right[c], d+1)
		}
		f.roots = append(f.roots, int32(len(f.nodes)))
		root := int32(0)
		if nl == 1 {
			root = ^int32(0)
		}
		if err := emit(root, 0); err != nil {
			return nil, err
		}
		if depth > math.MaxUint8 {
			return nil, errNotFlat
		}
		depths = append(depths, depth)
	}
	line := ""
	for line == "" && err == nil {
		line, err = r.ReadString('\n')
		line = strings.TrimSpace(line)
	}
	if line != "end of trees" {
		return nil, fmt.Errorf("%d trees read, then %q instead of \"end of trees\"", nTrees, line)
	}
	for g := 0; g < len(depths); g += 4 {
		m := 0
		for _, d := range depths[g:min(g+4, len(depths))] {
			m = max(m, d)
		}
		f.steps = append(f.steps, uint8(m))
	}
	return f, nil
}

// maxFlatFeatures bounds the row copy predict keeps on the stack.
const maxFlatFeatures = 64

// predictRaw returns the raw score (sum of leaf values) of x, which has
// nFeatures values, after LightGBM's zero rule (|x| <= lgbZero is 0) and
// the NaN rule of every split (NaN is 0).
func (f *flat) predictRaw(features []float64) float64 {
	var x [maxFlatFeatures]float64
	for i, v := range features[:f.nFeatures] {
		if !(math.Abs(v) <= lgbZero || v != v) {
			x[i] = v
		}
	}
	nodes, values, roots := f.nodes, f.values, f.roots
	sum := 0.0
	g := 0
	for ; g+4 <= len(roots); g += 4 {
		a, b, c, d := roots[g], roots[g+1], roots[g+2], roots[g+3]
		for s := f.steps[g/4]; s > 0; s-- {
			a, b, c, d = step(nodes, &x, a), step(nodes, &x, b), step(nodes, &x, c), step(nodes, &x, d)
		}
		sum += values[a]
		sum += values[b]
		sum += values[c]
		sum += values[d]
	}
	for ; g < len(roots); g++ {
		a := roots[g]
		for s := f.steps[len(f.steps)-1]; s > 0; s-- {
			a = step(nodes, &x, a)
		}
		sum += values[a]
	}
	return sum
}

// step moves from node n to its child for row x (a leaf stays).
func step(nodes []flatNode, x *[maxFlatFeatures]float64, n int32) int32 {
	nd := &nodes[n]
	next := n + 1
	if !(x[nd.feat&(maxFlatFeatures-1)] <= nd.thr) {
		next = nd.right
	}
	return next
}
