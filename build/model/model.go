// Package model loads beacongrid's beacon classifier, a LightGBM
// gradient-boosted tree ensemble, and scores per-flow feature vectors with
// it in pure Go through github.com/dmitryikh/leaves.
//
// A model is two files written together by build/train/train.py:
//
//   - the LightGBM text model (header version=v3: leaves reads only v2 and
//     v3, and LightGBM 4.x writes v4, so training pins LightGBM 3.3.5);
//   - a JSON metadata file: version id, feature names in input order, the
//     calibrated alert threshold, and the benign baseline value of every
//     feature used by Explain.
//
// Default returns the model embedded in the binary (beacongrid.txt and
// beacongrid.json in this directory), which `make train` rewrites.
//
// # Lifetimes and concurrency
//
// A *Model is immutable once Load, LoadBytes or Default has returned it: it
// keeps no reference to the caller's byte slices, needs no Close, and every
// method is safe for concurrent use by any number of goroutines. Keep one for
// the life of the process; to swap models at run time (a reload), load the
// new one first and publish it with an atomic.Pointer[Model], letting
// goroutines still scoring with the old one finish with it. Default parses
// the embedded model once, on its first call, and returns the same *Model to
// every caller after that.
//
// Predict is the hot path: it does not allocate and takes no lock (sync.Pools
// supply the working memory). For a model of plain numerical splits, such as
// the default one, it runs flat.go's evaluator, which gives leaves' score bit
// for bit in about a third of the time (flat_test.go checks the two agree);
// other models go through leaves. The scores it returns equal LightGBM's own
// Booster.predict to within 1e-9 (in practice bit for bit): parity_test.go
// proves it on committed rows, and `make parity` proves it again against
// LightGBM running live.
package model

import (
	"bufio"
	"bytes"
	_ "embed"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"os"
	"strconv"
	"strings"
	"sync"

	"github.com/beacongrid/beacongrid/alert"
	"github.com/dmitryikh/leaves"
	"github.com/dmitryikh/leaves/transformation"
)

var (
	// ErrUnsupportedFormat is wrapped by load errors for model text that is
	// not a LightGBM text model leaves can read (notably version=v4).
	ErrUnsupportedFormat = errors.New("unsupported model format")
	// ErrInvalidModel is wrapped by load errors for model text or metadata
	// that is corrupt, truncated or inconsistent with each other.
	ErrInvalidModel = errors.New("invalid model")
)

// Reason is one feature's contribution to a score, as Explain reports it.
// It is the alert document's type, so reasons go into an alert unchanged.
type Reason = alert.Reason

// Metadata is the content of the model's JSON metadata file.
type Metadata struct {
	// Version identifies the model: a date-based prefix and the first 12 hex
	// digits of the SHA-256 of the model text.
	Version string `json:"version"`
	// Features are the feature names in model input order.
	Features []string `json:"features"`
	// Threshold is the score at or above which a flow is a beacon.
	Threshold float64 `json:"threshold"`
	// Baseline is each feature's median over benign training flows; null
	// when the feature was always missing.
	Baseline map[string]*float64 `json:"baseline"`
	// LightGBM is the version of LightGBM that trained the model.
	LightGBM    string          `json:"lightgbm"`
	TrainedAt   string          `json:"trained_at"`
	TrainRows   int             `json:"train_rows"`
	ValidRows   int             `json:"valid_rows,omitempty"`
	ModelSHA256 string          `json:"model_sha256,omitempty"`
	Metrics     json.RawMessage `json:"metrics,omitempty"`
}

// Model is a loaded classifier. See the package doc for its lifetime.
type Model struct {
	// raw scores without leaves' transformation: leaves' sigmoid path
	// allocates on every call, so Predict applies the sigmoid itself (the
	// same formula as LightGBM's binary objective and leaves' own).
	raw *leaves.Ensemble
	// flat scores the same trees faster (flat.go); nil when the model has
	// something it does not handle, and leaves scores alone.
	flat     *flat
	meta     Metadata
	features []string
	baseline []float64 // NaN where the metadata has no baseline
	out      sync.Pool // *[1]float64: leaves' output buffer escapes to the heap
	scratch  sync.Pool // *[]float64 of len(features), for Explain
}

//go:embed beacongrid.txt
var defaultText []byte

//go:embed beacongrid.json
var defaultMeta []byte

var loadDefault = sync.OnceValues(func() (*Model, error) {
	m, err := LoadBytes(defaultText, defaultMeta)
	if err != nil {
		return nil, fmt.Errorf("embedded default model: %w", err)
	}
	return m, nil
})

// Default returns the model embedded in the binary. It is parsed on the
// first call; every call returns the same *Model (or the same error).
func Default() (*Model, error) { return loadDefault() }

// Load reads a model from its LightGBM text file and its JSON metadata file.
// A missing file gives an error that wraps fs.ErrNotExist.
func Load(txtPath, jsonPath string) (*Model, error) {
	txt, err := os.ReadFile(txtPath)
	if err != nil {
		return nil, fmt.Errorf("model: read model text: %w", err)
	}
	meta, err := os.ReadFile(jsonPath)
	if err != nil {
		return nil, fmt.Errorf("model: read model metadata: %w", err)
	}
	m, err := LoadBytes(txt, meta)
	if err != nil {
		return nil, fmt.Errorf("%w (files %s, %s)", err, txtPath, jsonPath)
	}
	return m, nil
}

// LoadBytes builds a model from the LightGBM model text and the metadata
// JSON. It checks that the two belong together: same features in the same
// order, a binary (sigmoid) objective, a finite threshold. The slices are not
// retained.
func LoadBytes(txt, meta []byte) (*Model, error) {
	hdr, err := readHeader(txt)
	if err != nil {
		return nil, err
	}
	var md Metadata
	if err := json.Unmarshal(meta, &md); err != nil {
		return nil, fmt.Errorf("model: %w: metadata JSON: %v", ErrInvalidModel, err)
	}
	if err := md.validate(); err != nil {
		return nil, err
	}
	if hdr.nFeatures != len(md.Features) {
		return nil, fmt.Errorf("model: %w: the model text has %d features (max_feature_idx=%d), the metadata lists %d",
			ErrInvalidModel, hdr.nFeatures, hdr.nFeatures-1, len(md.Features))
	}
	if hdr.featureNames != nil {
		for i, n := range hdr.featureNames {
			if n != md.Features[i] {
				return nil, fmt.Errorf("model: %w: feature %d is %q in the model text but %q in the metadata",
					ErrInvalidModel, i, n, md.Features[i])
			}
		}
	}

	// loadTransformation=true makes leaves parse and check the objective;
	// only binary with sigmoid:1 yields a logistic transformation.
	ens, err := leaves.LGEnsembleFromReader(bufio.NewReader(bytes.NewReader(txt)), true)
	if err != nil {
		return nil, fmt.Errorf("model: %w: LightGBM model text: %v", ErrInvalidModel, err)
	}
	if ens.Transformation().Type() != transformation.Logistic {
		return nil, fmt.Errorf("model: %w: objective %q is not a binary classifier (want \"binary sigmoid:1\")",
			ErrInvalidModel, hdr.objective)
	}
	if ens.NOutputGroups() != 1 || ens.NRawOutputGroups() != 1 {
		return nil, fmt.Errorf("model: %w: %d output groups, want 1", ErrInvalidModel, ens.NRawOutputGroups())
	}
	if ens.NEstimators() != hdr.nTrees {
		return nil, fmt.Errorf("model: %w: read %d trees, header announces %d", ErrInvalidModel, ens.NEstimators(), hdr.nTrees)
	}
	if ens.NFeatures() != len(md.Features) {
		return nil, fmt.Errorf("model: %w: leaves reads %d features, the metadata lists %d",
			ErrInvalidModel, ens.NFeatures(), len(md.Features))
	}

	fl, err := compileFlat(txt, len(md.Features), hdr.nTrees)
	switch {
	case errors.Is(err, errNotFlat):
		fl = nil
	case err != nil:
		return nil, fmt.Errorf("model: %w: LightGBM model text: %v", ErrInvalidModel, err)
	}

	m := &Model{
		raw:      ens.EnsembleWithRawPredictions(),
		flat:     fl,
		meta:     md,
		features: md.Features,
		baseline: make([]float64, len(md.Features)),
	}
	for i, name := range md.Features {
		if b := md.Baseline[name]; b != nil {
			m.baseline[i] = *b
		} else {
			m.baseline[i] = math.NaN()
		}
	}
	n := len(md.Features)
	m.out.New = func() any { return new([1]float64) }
	m.scratch.New = func() any { s := make([]float64, n); return &s }
	return m, nil
}

// header is what LoadBytes reads from the model text itself before handing
// it to leaves, to give clear errors leaves does not.
type header struct {
	nFeatures    int
	nTrees       int
	objective    string
	featureNames []string // nil when the file has no feature_names line
}

func readHeader(txt []byte) (header, error) {
	var h header
	if len(bytes.TrimSpace(txt)) == 0 {
		return h, fmt.Errorf("model: %w: the model text is empty", ErrInvalidModel)
	}
	end := bytes.Index(txt, []byte("\n\n"))
	if end < 0 {
		return h, fmt.Errorf("model: %w: the model text has no header block (truncated or not a LightGBM text model)", ErrInvalidModel)
	}
	lines := strings.Split(strings.ReplaceAll(string(txt[:end]), "\r", ""), "\n")
	if lines[0] != "tree" {
		return h, fmt.Errorf("model: %w: the model text does not start with \"tree\" (not a LightGBM text model: a binary or JSON dump?)", ErrUnsupportedFormat)
	}
	kv := make(map[string]string, len(lines))
	for _, l := range lines[1:] {
		if k, v, ok := strings.Cut(l, "="); ok {
			kv[k] = v
		}
	}
	switch v := kv["version"]; v {
	case "v2", "v3":
	case "v4":
		return h, fmt.Errorf("model: %w: the model text is LightGBM format version=v4, written by LightGBM 4.x; "+
			"the Go reader (leaves) reads only v2/v3: retrain with LightGBM 3.3.x (`make train` uses the pinned 3.3.5)", ErrUnsupportedFormat)
	case "":
		return h, fmt.Errorf("model: %w: the model text header has no version line", ErrInvalidModel)
	default:
		return h, fmt.Errorf("model: %w: LightGBM format version=%s; the Go reader reads only v2/v3 (LightGBM 3.3.x)", ErrUnsupportedFormat, v)
	}
	mfi, err := strconv.Atoi(kv["max_feature_idx"])
	if err != nil || mfi < 0 {
		return h, fmt.Errorf("model: %w: bad or missing max_feature_idx %q", ErrInvalidModel, kv["max_feature_idx"])
	}
	h.nFeatures = mfi + 1
	h.objective = kv["objective"]
	if fn, ok := kv["feature_names"]; ok {
		h.featureNames = strings.Fields(fn)
		if len(h.featureNames) != h.nFeatures {
			return h, fmt.Errorf("model: %w: %d feature_names for max_feature_idx=%d", ErrInvalidModel, len(h.featureNames), mfi)
		}
	}
	ts := strings.Fields(kv["tree_sizes"])
	if len(ts) == 0 {
		return h, fmt.Errorf("model: %w: no tree_sizes in the header", ErrInvalidModel)
	}
	h.nTrees = len(ts)
	// The trees must all be there: leaves would otherwise fail with a terse
	// parse error deep in a truncated file.
	total := 0
	for _, s := range ts {
		n, err := strconv.Atoi(s)
		if err != nil || n <= 0 {
			return h, fmt.Errorf("model: %w: bad tree_sizes entry %q", ErrInvalidModel, s)
		}
		total += n
	}
	if rest := len(txt) - (end + 2); rest < total {
		return h, fmt.Errorf("model: %w: the model text is truncated: %d bytes of trees, header announces %d",
			ErrInvalidModel, max(rest, 0), total)
	}
	return h, nil
}

func (md *Metadata) validate() error {
	if md.Version == "" {
		return fmt.Errorf("model: %w: metadata has no version", ErrInvalidModel)
	}
	if len(md.Features) == 0 {
		return fmt.Errorf("model: %w: metadata lists no features", ErrInvalidModel)
	}
	seen := make(map[string]bool, len(md.Features))
	for _, f := range md.Features {
		if f == "" || seen[f] {
			return fmt.Errorf("model: %w: metadata feature name %q is empty or repeated", ErrInvalidModel, f)
		}
		seen[f] = true
	}
	if math.IsNaN(md.Threshold) || math.IsInf(md.Threshold, 0) || md.Threshold < 0 {
		return fmt.Errorf("model: %w: metadata threshold %v is not a finite non-negative number", ErrInvalidModel, md.Threshold)
	}
	for name, b := range md.Baseline {
		if !seen[name] {
			return fmt.Errorf("model: %w: metadata baseline names unknown feature %q", ErrInvalidModel, name)
		}
		if b != nil && (math.IsNaN(*b) || math.IsInf(*b, 0)) {
			return fmt.Errorf("model: %w: metadata baseline of %q is not finite", ErrInvalidModel, name)
		}
	}
	return nil
}

// Version returns the model's version id, for alert documents and logs.
func (m *Model) Version() string { return m.meta.Version }

// Threshold returns the calibrated alert threshold: a flow is a beacon when
// Predict returns a score >= Threshold.
func (m *Model) Threshold() float64 { return m.meta.Threshold }

// FeatureNames returns the feature names in input order. The slice is a
// copy.
func (m *Model) FeatureNames() []string { return append([]string(nil), m.features...) }

// NumFeatures returns the length Predict and Explain expect.
func (m *Model) NumFeatures() int { return len(m.features) }

// Metadata returns a copy of the model's metadata.
func (m *Model) Metadata() Metadata {
	md := m.meta
	md.Features = append([]string(nil), md.Features...)
	md.Baseline = make(map[string]*float64, len(m.meta.Baseline))
	for k, v := range m.meta.Baseline {
		if v != nil {
			c := *v
			v = &c
		}
		md.Baseline[k] = v
	}
	md.Metrics = append(json.RawMessage(nil), md.Metrics...)
	return md
}

// CheckFeatures reports whether names are exactly the model's features in
// the model's order. Call it once at start-up with the feature extractor's
// names (detect.FeatureNames) so a model trained on other features is refused
// instead of silently scoring garbage.
func (m *Model) CheckFeatures(names []string) error {
	if len(names) != len(m.features) {
		return fmt.Errorf("model %s expects %d features, the extractor produces %d: retrain the model (make train)",
			m.meta.Version, len(m.features), len(names))
	}
	for i, n := range names {
		if n != m.features[i] {
			return fmt.Errorf("model %s expects feature %d to be %q, the extractor produces %q: retrain the model (make train)",
				m.meta.Version, i, m.features[i], n)
		}
	}
	return nil
}

// Predict returns the beacon probability, in [0, 1], of one feature vector
// laid out as FeatureNames. NaN means missing and follows the learned
// default direction, as in LightGBM. It does not allocate and is safe for
// concurrent use. It panics if len(features) != NumFeatures(), a programming
// error (the feature layout is fixed by code, not by input).
func (m *Model) Predict(features []float64) float64 {
	if len(features) != len(m.features) {
		panic(fmt.Sprintf("model.Predict: %d features, model %s takes %d", len(features), m.meta.Version, len(m.features)))
	}
	return m.predict(features)
}

// PredictReference is Predict through leaves' own tree walk rather than
// the flat evaluator (flat.go): the same score, bit for bit, more slowly.
// It is there for checks and benchmarks that compare the two.
func (m *Model) PredictReference(features []float64) float64 {
	if len(features) != len(m.features) {
		panic(fmt.Sprintf("model.PredictReference: %d features, model %s takes %d", len(features), m.meta.Version, len(m.features)))
	}
	return m.predictLeaves(features)
}

// lgbZero is LightGBM's kZeroThreshold, a float (1e-35f) widened to double:
// LightGBM treats |x| <= lgbZero as zero, leaves compares against the double
// 1e-35. Values in between would take different branches, so they are made
// exactly zero first (they never arise from real features, but a parity
// probe found them).
const lgbZero = 1.0000000180025095e-35

func (m *Model) predict(features []float64) float64 {
	if m.flat != nil {
		return sigmoid(m.flat.predictRaw(features))
	}
	return m.predictLeaves(features)
}

// predictLeaves is predict through leaves' own evaluator.
func (m *Model) predictLeaves(features []float64) float64 {
	for i, x := range features {
		if x != 0 && math.Abs(x) <= lgbZero {
			sp := m.scratch.Get().(*[]float64)
			z := *sp
			copy(z, features)
			for j := i; j < len(z); j++ {
				if math.Abs(z[j]) <= lgbZero {
					z[j] = 0
				}
			}
			p := m.predictRaw(z)
			m.scratch.Put(sp)
			return p
		}
	}
	return m.predictRaw(features)
}

func (m *Model) predictRaw(features []float64) float64 {
	out := m.out.Get().(*[1]float64)
	// Cannot fail: the feature count and output size were checked above and
	// at load.
	_ = m.raw.Predict(features, 0, out[:])
	raw := out[0]
	m.out.Put(out)
	return sigmoid(raw)
}

// sigmoid is LightGBM's binary objective output transformation for
// sigmoid:1, 1/(1+exp(-x)), written as LightGBM and leaves write it.
func sigmoid(x float64) float64 { return 1.0 / (1.0 + math.Exp(-x)) }

// Explain tells which features pushed the score of features up, by
// counterfactual: for each feature i it replaces features[i] with the benign
// baseline value from the metadata, re-scores, and takes the drop in score as
// i's contribution. It appends to dst[:0] the features with a positive
// contribution, largest first (ties in feature order), at most top of them
// (all when top <= 0), and returns the result; pass a reused dst to avoid
// allocating.
//
// Features whose value is NaN or infinite are left out, since the reasons go
// into JSON alert documents that cannot carry such numbers; so are features
// without a baseline or already at it. Contributions are not additive: each
// is measured with all other features as given. Explain costs
// NumFeatures()+1 predictions; call it for alerts, not for every flow. It
// panics if len(features) != NumFeatures().
func (m *Model) Explain(features []float64, top int, dst []Reason) []Reason {
	if len(features) != len(m.features) {
		panic(fmt.Sprintf("model.Explain: %d features, model %s takes %d", len(features), m.meta.Version, len(m.features)))
	}
	dst = dst[:0]
	base := m.predict(features)
	sp := m.scratch.Get().(*[]float64)
	x := *sp
	copy(x, features)
	for i, v := range features {
		b := m.baseline[i]
		if math.IsNaN(b) || math.IsNaN(v) || math.IsInf(v, 0) || v == b {
			continue
		}
		x[i] = b
		c := base - m.predict(x)
		x[i] = v
		if !(c > 0) {
			continue
		}
		dst = insertReason(dst, top, Reason{Feature: m.features[i], Value: v, Contribution: c})
	}
	m.scratch.Put(sp)
	return dst
}

// insertReason inserts r into rs, kept sorted by contribution descending
// and, when top > 0, at most top long.
func insertReason(rs []Reason, top int, r Reason) []Reason {
	pos := len(rs)
	for pos > 0 && rs[pos-1].Contribution < r.Contribution {
		pos--
	}
	if top > 0 && pos >= top {
		return rs
	}
	if top <= 0 || len(rs) < top {
		rs = append(rs, Reason{})
	}
	copy(rs[pos+1:], rs[pos:])
	rs[pos] = r
	return rs
}
