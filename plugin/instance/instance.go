// Package instance is everything one [OUTPUT] section of the beacongrid
// Fluent Bit plugin does, as plain Go: read its configuration, count the
// records of each flushed chunk into the edge state, score due flows and
// hand alerts to the spool. The cgo layer (package main in plugin/) only
// forwards Fluent Bit's calls here, so all of this is testable without cgo.
//
// Lifetimes: a chunk passed to Flush is valid only during the call; nothing
// here keeps a reference to it. An Instance lives from New to Close; Flush
// may be called concurrently (Fluent Bit "workers N") but never after Close.
package instance

import (
	"fmt"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/beacongrid/beacongrid/alert"
	"github.com/beacongrid/beacongrid/cache"
	"github.com/beacongrid/beacongrid/detect"
	"github.com/beacongrid/beacongrid/fields"
	"github.com/beacongrid/beacongrid/plugin/chunk"
	"github.com/beacongrid/beacongrid/rules"
	"github.com/beacongrid/beacongrid/spool"
)

// Fluent Bit return codes.
const (
	FLBError = 0
	FLBOK    = 1
	FLBRetry = 2
)

// Stats are an instance's counters.
type Stats struct {
	Chunks        int64
	BadChunks     int64 // chunks cut short by malformed msgpack
	BadEvents     int64 // well-formed events of the wrong shape
	BadFields     int64 // fields of the wrong type
	GroupMarkers  int64
	Detector      detect.Stats
	Rules         rules.WatchStats // zero without a rules file
	Cache         cache.Stats
	AlertsSpooled int64
	AlertsDropped int64 // alerts lost because the memory buffer overflowed
	SpoolErrors   int64
}

// Instance is one configured output.
type Instance struct {
	cfg   Config
	log   *Logger
	store *cache.Store
	det   *detect.Detector
	obs   observer // det; the allocation tests put a flow-key counter here
	rules atomic.Pointer[rules.Set]
	watch *rules.Watcher // nil without a rules file
	state *stateKeeper   // nil without a state file
	stats *metricsWriter // nil without a metrics file
	base  fields.Mapping // the presets' mapping, which the rules extend
	keys  atomic.Pointer[keyTable]
	sink  *spoolSink
	pool  sync.Pool

	chunks, badChunks, badEvents, badFields, groups atomic.Int64
}

type flushState struct {
	ev    chunk.Event
	fe    fields.Event
	batch detect.Batch
}

// New builds an instance from its configuration: it loads the model and
// rules, opens the spool and starts the spool writer.
func New(cfg Config, log *Logger, m detect.Model) (*Instance, error) {
	in := &Instance{cfg: cfg, log: log}
	if cfg.RulesFile != "" {
		w, err := rules.NewWatcher(cfg.RulesFile, &in.rules, rules.WatchOptions{OnResult: in.logReload})
		if err != nil {
			return nil, err
		}
		in.watch = w
	}
	var err error
	if in.base, err = fields.Preset(cfg.Preset); err != nil {
		return nil, err
	}
	in.keysFor(in.rules.Load())
	store, err := cache.New(cache.Config{MaxBytes: cfg.MaxMemory, MaxFuture: cfg.MaxFuture})
	if err != nil {
		return nil, err
	}
	w, err := spool.OpenWriter(spool.WriterConfig{Dir: cfg.SpoolDir, MaxBytes: cfg.SpoolMax})
	if err != nil {
		store.Close()
		return nil, err
	}
	in.sink = newSpoolSink(w, cfg.AlertBuffer, log)
	if cfg.Threshold > 0 {
		m = detect.WithThreshold(m, cfg.Threshold)
	}
	host, _ := os.Hostname()
	in.det, err = detect.New(store, m, &in.rules, in.sink, detect.Config{
		MinActive:  cfg.MinActive,
		ScoreEvery: cfg.ScoreEvery,
		Observer:   alert.Observer{Hostname: host, Name: cfg.Name},
	})
	if err != nil {
		in.sink.close()
		store.Close()
		return nil, err
	}
	in.store = store
	in.obs = in.det
	in.state = openState(cfg, store, log)
	in.stats = openMetrics(in)
	if in.watch != nil {
		if err := in.watch.Start(); err != nil {
			log.Warn("%v", err)
		}
		log.Info("rules %s: version %s (%s)", cfg.RulesFile, in.rules.Load().Version(), in.rules.Load().Counts())
	}
	in.pool.New = func() any {
		return &flushState{ev: chunk.Event{Fields: make([]chunk.Value, fields.NumSlots)}}
	}
	log.Info("started: spool=%s model=%s threshold=%.3f max_memory=%d", cfg.SpoolDir, m.Version(), m.Threshold(), cfg.MaxMemory)
	return in, nil
}

// Flush counts every event of a chunk. It always returns FLBOK: a chunk
// that is malformed part-way has its good events counted and the rest
// counted as bad; retrying it could only double-count.
func (in *Instance) Flush(data []byte, tag string) int {
	in.chunks.Add(1)
	st := in.pool.Get().(*flushState)
	r := chunk.GetReader()
	r.Reset(data, in.keysFor(in.rules.Load()).forTag(tag), fields.NumSlots)
	ev, fe := &st.ev, &st.fe
	for r.Next(ev) {
		fe.Reset()
		bad, skip := mapEvent(fe, ev.Fields)
		if bad > 0 {
			in.badFields.Add(int64(bad))
		}
		if skip {
			continue
		}
		if !fe.HasTime && ev.Sec > 0 {
			fe.Sec, fe.HasTime = ev.Sec, true
		}
		in.obs.Add(&st.batch, fe)
	}
	in.obs.Flush(&st.batch)
	s := r.Stats()
	in.badEvents.Add(int64(s.BadEvents))
	in.groups.Add(int64(s.GroupMarkers))
	if err := r.Err(); err != nil {
		if in.badChunks.Add(1) <= 10 {
			in.log.Warn("tag %s: %v (events before the fault were counted)", tag, err)
		}
	}
	chunk.PutReader(r)
	in.pool.Put(st)
	return FLBOK
}

// Every slot has its line in mapEvent.
var _ = [1]struct{}{}[fields.NumSlots-8]

// mapEvent sets fe, just Reset, from the values the reader decoded, one per
// slot (at least fields.NumSlots of them). It returns how many were of the
// wrong type for their slot and whether the record is to be skipped: a
// mistyped time falls back to Fluent Bit's timestamp and a mistyped size
// is ignored, a mistyped flow field skips the record. Each slot's usual
// kind is set inline (a number of seconds, text, a port or a size), every
// other one through setValue; the result is the same
// (TestMapEventMatchesSetValue). Without a loop and a switch over the slots
// this takes about a fifth of the instructions.
func mapEvent(fe *fields.Event, fs []chunk.Value) (bad int, skip bool) {
	fs = fs[:fields.NumSlots]
	set := func(slot int) { // any other kind: the general path
		if v := &fs[slot]; v.Kind != chunk.KindNone && v.Kind != chunk.KindNil && setValue(fe, slot, v) != nil {
			bad++
			skip = skip || slot != fields.Time && slot != fields.Size
		}
	}
	if v := &fs[fields.Time]; v.Kind == chunk.KindFloat && v.Float >= 0 && v.Float <= 1e12 {
		fe.Sec, fe.HasTime = int64(v.Float), true // epoch seconds, as fields.Event.SetFloat sets them
	} else {
		set(fields.Time)
	}
	if v := &fs[fields.Src]; v.Kind == chunk.KindStr {
		fe.Src = v.Str
	} else {
		set(fields.Src)
	}
	if v := &fs[fields.Domain]; v.Kind == chunk.KindStr {
		fe.Domain = v.Str
	} else {
		set(fields.Domain)
	}
	if v := &fs[fields.DstIP]; v.Kind == chunk.KindStr {
		fe.DstIP = v.Str
	} else {
		set(fields.DstIP)
	}
	if v := &fs[fields.DstPort]; v.Kind == chunk.KindUint && v.Uint <= 65535 {
		fe.DstPort = int(v.Uint)
	} else {
		set(fields.DstPort)
	}
	if v := &fs[fields.Size]; v.Kind == chunk.KindUint && v.Uint <= 1<<62 {
		fe.Size = int64(v.Uint)
	} else {
		set(fields.Size)
	}
	if v := &fs[fields.Service]; v.Kind == chunk.KindStr {
		fe.Service = v.Str
	} else {
		set(fields.Service)
	}
	if v := &fs[fields.URL]; v.Kind == chunk.KindStr {
		fe.URL = v.Str
	} else {
		set(fields.URL)
	}
	return bad, skip
}

// setValue sets slot of fe from a decoded value of any kind but KindNone
// and KindNil, with fields.Event's setters.
func setValue(fe *fields.Event, slot int, v *chunk.Value) error {
	switch v.Kind {
	case chunk.KindStr:
		return fe.SetText(slot, v.Str)
	case chunk.KindUint:
		if v.Uint > 1<<62 {
			return fields.ErrType
		}
		return fe.SetInt(slot, int64(v.Uint))
	case chunk.KindInt:
		return fe.SetInt(slot, v.Int)
	case chunk.KindFloat:
		return fe.SetFloat(slot, v.Float)
	case chunk.KindTime:
		if slot != fields.Time {
			return fields.ErrType
		}
		return fe.SetInt(slot, int64(v.Sec))
	}
	return fields.ErrType
}

// observer counts mapped events in batches: the detector.
type observer interface {
	Add(b *detect.Batch, e *fields.Event)
	Flush(b *detect.Batch)
}

// Add and FlushBatch count events that the caller decoded and mapped
// itself (the fluent-bit-go comparison plugin of build/bench does), as
// Flush counts its own: Add gathers them in b, FlushBatch counts what b
// holds; call it at the end of each chunk.
func (in *Instance) Add(b *detect.Batch, e *fields.Event) { in.det.Add(b, e) }

// FlushBatch: see Add.
func (in *Instance) FlushBatch(b *detect.Batch) { in.det.Flush(b) }

// Log returns the instance's logger.
func (in *Instance) Log() *Logger { return in.log }

// Stats returns the instance's counters.
func (in *Instance) Stats() Stats {
	return Stats{
		Chunks: in.chunks.Load(), BadChunks: in.badChunks.Load(), BadEvents: in.badEvents.Load(),
		BadFields: in.badFields.Load(), GroupMarkers: in.groups.Load(),
		Detector: in.det.Stats(), Cache: in.store.Stats(), Rules: in.rulesStats(),
		AlertsSpooled: in.sink.spooled.Load(), AlertsDropped: in.sink.dropped.Load(), SpoolErrors: in.sink.errors.Load(),
	}
}

// Close scores every tracked flow one last time, writes pending alerts to
// the spool and releases everything. Call it after the last Flush returned.
func (in *Instance) Close() {
	in.stopRules()
	in.det.Sweep()
	in.sink.close()
	in.state.close()
	in.stats.close()
	s := in.Stats()
	in.store.Close()
	in.log.Info("stopped: chunks=%d events=%d flows=%d alerts=%d spooled=%d dropped=%d bad_chunks=%d bad_events=%d bad_fields=%d too_old=%d too_new=%d",
		s.Chunks, s.Detector.Events, s.Cache.Flows, s.Detector.Alerts, s.AlertsSpooled, s.AlertsDropped,
		s.BadChunks, s.BadEvents, s.BadFields, s.Cache.TooOld, s.Cache.TooNew)
}

// Logger writes Fluent Bit style log lines: [time] [level] [output:beacongrid:NAME] msg.
type Logger struct {
	name string
	mu   sync.Mutex
}

// NewLogger returns a logger for instance name ("" for the plugin as a
// whole).
func NewLogger(name string) *Logger { return &Logger{name: name} }

func (l *Logger) printf(level, format string, a ...any) {
	l.mu.Lock()
	defer l.mu.Unlock()
	scope := "output:beacongrid"
	if l.name != "" {
		scope += ":" + l.name
	}
	fmt.Fprintf(os.Stderr, "[%s] [%5s] [%s] %s\n",
		time.Now().Format("2006/01/02 15:04:05"), level, scope, fmt.Sprintf(format, a...))
}

// Info logs at info level.
func (l *Logger) Info(format string, a ...any) { l.printf("info", format, a...) }

// Warn logs at warn level.
func (l *Logger) Warn(format string, a ...any) { l.printf("warn", format, a...) }

// Error logs at error level.
func (l *Logger) Error(format string, a ...any) { l.printf("error", format, a...) }
