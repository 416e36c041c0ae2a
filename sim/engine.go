package sim

import (
	"time"
)

// actor is one source of activity: a person browsing, a periodic service on
// one host, an implant. Actors produce sessions (connections, page views,
// check-ins) in order of their start times.
type actor interface {
	// next returns the start of the next session in µs, or never.
	next() int64
	// expand emits the events of that session, all at or after its start,
	// and advances to the following session.
	expand(g *gen)
}

// pending is an event waiting in the merge heap.
type pending struct {
	us  int64
	seq uint64
	ev  Event
}

func (a *pending) less(b *pending) bool {
	return a.us < b.us || (a.us == b.us && a.seq < b.seq)
}

type actorSlot struct {
	t   int64
	idx int
}

// gen merges the actors' sessions into one time-ordered event stream. It
// keeps only the events of sessions that have started but whose events are
// not yet due, so memory stays proportional to the number of actors.
type gen struct {
	w      *world
	loc    *time.Location
	events []*pending // binary min-heap by (us, seq)
	free   []*pending
	seq    uint64
	acts   []actorSlot // binary min-heap by (t, idx)
}

// Generate simulates cfg and calls fn for every event in time order (ties in
// a fixed order). The same Config always yields the same events.
func Generate(cfg Config, fn func(Event)) error {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return err
	}
	w, err := buildWorld(cfg)
	if err != nil {
		return err
	}
	w.run(fn)
	return nil
}

func (w *world) run(fn func(Event)) {
	g := &gen{w: w, loc: w.cfg.Start.Location()}
	for i, a := range w.actors {
		if t := a.next(); t < w.end {
			g.pushActor(actorSlot{t, i})
		}
	}
	for {
		for len(g.acts) > 0 && (len(g.events) == 0 || g.acts[0].t <= g.events[0].us) {
			slot := g.acts[0]
			a := w.actors[slot.idx]
			a.expand(g)
			if t := a.next(); t < w.end {
				if t < slot.t {
					panic("sim: actor went back in time")
				}
				g.acts[0].t = t
				g.downActor(0)
			} else {
				g.popActor()
			}
		}
		if len(g.events) == 0 {
			return
		}
		p := g.popEvent()
		p.ev.Time = time.UnixMicro(p.us).In(g.loc)
		fn(p.ev)
		g.free = append(g.free, p)
	}
}

// event schedules a new event at us and returns it for the caller to fill.
func (g *gen) event(us int64, log string, tg *tag) *Event {
	var p *pending
	if n := len(g.free); n > 0 {
		p = g.free[n-1]
		g.free = g.free[:n-1]
		p.ev = Event{}
	} else {
		p = new(pending)
	}
	p.us = us
	p.seq = g.seq
	g.seq++
	p.ev.Log = log
	p.ev.Label, p.ev.Kind, p.ev.Detail = tg.label, tg.kind, tg.detail
	g.events = append(g.events, p)
	g.upEvent(len(g.events) - 1)
	return &p.ev
}

func (g *gen) upEvent(i int) {
	h := g.events
	for i > 0 {
		parent := (i - 1) / 2
		if !h[i].less(h[parent]) {
			break
		}
		h[i], h[parent] = h[parent], h[i]
		i = parent
	}
}

func (g *gen) popEvent() *pending {
	h := g.events
	top := h[0]
	n := len(h) - 1
	h[0] = h[n]
	h[n] = nil
	g.events = h[:n]
	h = g.events
	i := 0
	for {
		l := 2*i + 1
		if l >= n {
			break
		}
		m := l
		if r := l + 1; r < n && h[r].less(h[l]) {
			m = r
		}
		if !h[m].less(h[i]) {
			break
		}
		h[i], h[m] = h[m], h[i]
		i = m
	}
	return top
}

func slotLess(a, b actorSlot) bool { return a.t < b.t || (a.t == b.t && a.idx < b.idx) }

func (g *gen) pushActor(s actorSlot) {
	g.acts = append(g.acts, s)
	i := len(g.acts) - 1
	for i > 0 {
		parent := (i - 1) / 2
		if !slotLess(g.acts[i], g.acts[parent]) {
			break
		}
		g.acts[i], g.acts[parent] = g.acts[parent], g.acts[i]
		i = parent
	}
}

func (g *gen) popActor() {
	n := len(g.acts) - 1
	g.acts[0] = g.acts[n]
	g.acts = g.acts[:n]
	if n > 0 {
		g.downActor(0)
	}
}

func (g *gen) downActor(i int) {
	h := g.acts
	n := len(h)
	for {
		l := 2*i + 1
		if l >= n {
			return
		}
		m := l
		if r := l + 1; r < n && slotLess(h[r], h[l]) {
			m = r
		}
		if !slotLess(h[m], h[i]) {
			return
		}
		h[i], h[m] = h[m], h[i]
		i = m
	}
}
