package detect

import (
	"fmt"
	"strings"

	"github.com/beacongrid/beacongrid/alert"
	"github.com/beacongrid/beacongrid/build/model"
)

// OpenModel loads the model at path (a LightGBM text file with its .json
// metadata beside it), or the embedded default model when path is "". It
// refuses a model trained on other features than this build computes.
func OpenModel(path string) (Model, error) {
	var m *model.Model
	var err error
	if path == "" {
		m, err = model.Default()
	} else {
		m, err = model.Load(path, strings.TrimSuffix(path, ".txt")+".json")
	}
	if err != nil {
		return nil, err
	}
	if err := m.CheckFeatures(FeatureNames); err != nil {
		return nil, fmt.Errorf("model %s: %w", m.Version(), err)
	}
	return explained{m}, nil
}

// explained adapts model.Model to Explainer. Its Predict is the model's
// own score; services most hosts use are silenced by the Detector's
// decision (rules.DefaultWideShare, rules.RuleWide), not here.
type explained struct{ *model.Model }

func (e explained) Explain(features []float64, top int) []alert.Reason {
	return e.Model.Explain(features, top, make([]alert.Reason, 0, top))
}

// WithThreshold returns m with its alert threshold replaced by t.
func WithThreshold(m Model, t float64) Model { return thresholdModel{m, t} }

type thresholdModel struct {
	Model
	t float64
}

func (m thresholdModel) Threshold() float64 { return m.t }

// Explain keeps the wrapped model's explanations.
func (m thresholdModel) Explain(features []float64, top int) []alert.Reason {
	if ex, ok := m.Model.(Explainer); ok {
		return ex.Explain(features, top)
	}
	return nil
}
