package instance

import (
	"github.com/beacongrid/beacongrid/fields"
	"github.com/beacongrid/beacongrid/plugin/chunk"
	"github.com/beacongrid/beacongrid/rules"
)

// keyTable is the chunk key sets of one rules Set: its default mapping and
// one per input (Fluent Bit tag pattern). It is derived from the Set in
// force, so a reload swaps only the rules pointer; the first flush after it
// builds the new table (the only allocation a reload costs the flush path).
type keyTable struct {
	set    *rules.Set
	def    *chunk.KeySet
	tags   []string
	inputs []*chunk.KeySet
}

// keysFor returns the key table of rs, building it when rs is not the Set
// the current table was built from. Concurrent flushes may both build it;
// either result is correct.
func (in *Instance) keysFor(rs *rules.Set) *keyTable {
	if kt := in.keys.Load(); kt != nil && kt.set == rs {
		return kt
	}
	kt := &keyTable{set: rs, def: chunk.NewKeySet(fields.Merge(rs.Extra(), in.base).Slots())}
	tags, maps := rs.Inputs(in.base)
	for i := range tags {
		kt.tags = append(kt.tags, tags[i])
		kt.inputs = append(kt.inputs, chunk.NewKeySet(maps[i].Slots()))
	}
	in.keys.Store(kt)
	return kt
}

// forTag returns the key set for a chunk tagged tag: the first input whose
// pattern matches, else the default. It allocates nothing.
func (kt *keyTable) forTag(tag string) *chunk.KeySet {
	for i, p := range kt.tags {
		if rules.MatchTag(p, tag) {
			return kt.inputs[i]
		}
	}
	return kt.def
}

// logReload logs a reload attempt of the rules file.
func (in *Instance) logReload(r rules.Result) {
	switch {
	case r.Err != nil:
		in.log.Error("rules: %v (keeping version %s)", r.Err, r.Old.Version())
	case r.Changed:
		in.log.Info("rules reloaded: version %s -> %s (%s)", r.Old.Version(), r.New.Version(), r.New.Counts())
	}
}

// stopRules stops the watcher and logs its counters.
func (in *Instance) stopRules() {
	if in.watch == nil {
		return
	}
	in.watch.Stop()
	st := in.watch.Stats()
	in.log.Info("rules stopped: version=%s reloads=%d failures=%d last_ok=%v", st.Version, st.Reloads, st.Failures, st.LastOK)
}

func (in *Instance) rulesStats() rules.WatchStats {
	if in.watch == nil {
		return rules.WatchStats{}
	}
	return in.watch.Stats()
}
