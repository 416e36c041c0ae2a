package instance

import (
	"fmt"
	"sync"

	"github.com/beacongrid/beacongrid/detect"
)

// Registry keeps the live instances of the plugin by id. Fluent Bit hands
// every instance the same plugin pointer, so the cgo layer stores only the
// id as the instance's context and looks the instance up on each call.
type Registry struct {
	mu    sync.RWMutex
	next  int
	insts map[int]*Instance
	// Load builds the model for a configuration.
	Load func(Config) (ModelHandle, error)
}

// ModelHandle is a loaded model.
type ModelHandle = interface {
	Predict([]float64) float64
	Version() string
	Threshold() float64
	FeatureNames() []string
}

// NewRegistry returns an empty registry that loads models with load.
func NewRegistry(load func(Config) (ModelHandle, error)) *Registry {
	return &Registry{insts: make(map[int]*Instance), Load: load}
}

// Open configures and starts a new instance and returns its id.
func (r *Registry) Open(g Getter) (int, error) {
	r.mu.Lock()
	r.next++
	id := r.next
	r.mu.Unlock()
	cfg, err := ParseConfig(g, fmt.Sprintf("beacongrid.%d", id-1))
	if err != nil {
		return 0, err
	}
	m, err := r.Load(cfg)
	if err != nil {
		return 0, err
	}
	in, err := New(cfg, NewLogger(cfg.Name), m)
	if err != nil {
		return 0, err
	}
	r.mu.Lock()
	r.insts[id] = in
	r.mu.Unlock()
	return id, nil
}

// Get returns the instance with id, or nil.
func (r *Registry) Get(id int) *Instance {
	r.mu.RLock()
	defer r.mu.RUnlock()
	return r.insts[id]
}

// Only returns the single live instance, or nil when there are none or
// several (the context-less Flush and Exit cannot tell them apart).
func (r *Registry) Only() *Instance {
	r.mu.RLock()
	defer r.mu.RUnlock()
	if len(r.insts) != 1 {
		return nil
	}
	for _, in := range r.insts {
		return in
	}
	return nil
}

// Close closes and forgets the instance with id.
func (r *Registry) Close(id int) {
	r.mu.Lock()
	in := r.insts[id]
	delete(r.insts, id)
	r.mu.Unlock()
	if in != nil {
		in.Close()
	}
}

// CloseAll closes every instance.
func (r *Registry) CloseAll() {
	r.mu.Lock()
	ids := make([]int, 0, len(r.insts))
	for id := range r.insts {
		ids = append(ids, id)
	}
	r.mu.Unlock()
	for _, id := range ids {
		r.Close(id)
	}
}

// LoadModel loads the model a configuration names (the embedded default
// when it names none).
func LoadModel(cfg Config) (ModelHandle, error) { return detect.OpenModel(cfg.ModelFile) }
