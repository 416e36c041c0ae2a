package sim

import (
	"fmt"
	"math"
	"strconv"
	"time"
)

// c2Transport is how an implant talks to its server.
type c2Transport uint8

const (
	c2HTTPS    c2Transport = iota // TLS with SNI: flow keyed by the C2 name
	c2HTTP                        // HTTP with a Host name
	c2HTTPIP                      // HTTP to a bare address (Host is the IP): keyed ip:80
	c2TLSNoSNI                    // TLS without SNI: keyed ip:443
	c2TCP                         // opaque TCP protocol: conn.log only, keyed ip:port
)

func (t c2Transport) String() string {
	return [...]string{"https", "http", "http-ip", "tls-nosni", "tcp"}[t]
}

// implant is one piece of malware on one host calling its C2 server. Each
// sleep is interval*(1-U(0,jitter)), the way common C2 frameworks apply
// jitter; during operator sessions it calls every few seconds.
type implant struct {
	w        *world
	h        *host
	kind     string
	ep       *endpoint
	tr       c2Transport
	interval int64 // µs
	jitter   float64
	gate     spans // when it can call out (nil: always)
	ops      spans // operator sessions (interactive)
	opGap    [2]float64
	uris     []string
	ua       string
	r        *rng
	tg       *tag
	t        int64
	reqs     []httpReq
	perCall  int // requests (HTTP) or connections per callback: check-in, then fetch or report
}

func (m *implant) next() int64 { return m.t }

func (m *implant) expand(g *gen) {
	t := m.t
	m.beacon(g, t)
	interactive, _ := m.ops.at(t)
	if m.ops == nil {
		interactive = false
	}
	var sleep int64
	if interactive {
		sleep = secs(m.r.uniform(m.opGap[0], m.opGap[1]))
	} else {
		sleep = int64(float64(m.interval) * (1 - m.r.uniform(0, m.jitter)))
	}
	cand := t + max(sleep, 1)
	on, end := m.gate.at(t)
	if on && cand < end {
		m.t = cand
		return
	}
	if !on {
		end = t
	}
	// The host went off (laptop asleep, end of working hours) before the
	// timer fired. A timer that ran out while it was off fires soon after
	// the next start; a later one fires on time if the host is on then.
	reopen := m.gate.next(end)
	if reopen == never || cand <= reopen {
		m.resume(reopen)
		return
	}
	if ok, _ := m.gate.at(cand); ok {
		m.t = cand
		return
	}
	m.resume(m.gate.next(cand))
}

// resume schedules the first call after the host or window opens at t.
func (m *implant) resume(t int64) {
	if t == never {
		m.t = never
		return
	}
	_, end := m.gate.at(t)
	d := secs(m.r.uniform(1, math.Min(120, float64(m.interval)/1e6)))
	if t+d >= end {
		d = (end - t) / 2
	}
	m.t = t + d
}

func (m *implant) beacon(g *gen, t int64) {
	r := m.r
	tasked := r.chance(0.05)
	switch m.tr {
	case c2HTTPS, c2TLSNoSNI:
		sni := m.ep.name
		if m.tr == c2TLSNoSNI {
			sni = ""
		}
		down := int64(r.between(60, 420))
		up := int64(r.between(180, 700))
		dur := r.uniform(0.08, 1.2)
		if tasked {
			down += int64(r.lognormal(20000, 1.5))
			up += int64(r.lognormal(3000, 1.5))
			dur += r.uniform(0.5, 5)
		}
		g.tlsConn(m.h, r, t, m.ep, tlsSession{sni: sni, up: up, down: down, dur: dur, resumed: r.chance(0.5), failed: r.chance(0.01)}, m.tg)
		at := t
		for k := 1; k < m.perCall; k++ {
			at += secs(r.uniform(0.05, 2)) // a parallel or follow-up connection
			g.tlsConn(m.h, r, at, m.ep, tlsSession{sni: sni, up: int64(r.between(180, 700)), down: int64(r.between(60, 420)), dur: r.uniform(0.08, 1.2), resumed: true}, m.tg)
		}
	case c2HTTP, c2HTTPIP:
		host := m.ep.name
		if m.tr == c2HTTPIP {
			host = m.ep.addrs[0]
		}
		q := httpReq{method: "GET", uri: pick(r, m.uris), ua: m.ua, status: 200, resp: int64(r.between(0, 260)), mime: "text/plain"}
		if r.chance(0.02) {
			q.status, q.resp, q.mime = 404, int64(r.between(150, 300)), "text/html"
		}
		if q.resp == 0 {
			q.mime = ""
		}
		m.reqs = append(m.reqs[:0], q)
		for k := 1; k < m.perCall; k++ {
			m.reqs = append(m.reqs, httpReq{method: pick(r, []string{"GET", "POST"}), uri: pick(r, m.uris), ua: m.ua, status: 200,
				body: int64(r.between(0, 400)), resp: int64(r.between(0, 260)), mime: "text/plain", think: r.uniform(0.05, 2)})
		}
		if tasked {
			m.reqs[0].resp = int64(r.lognormal(20000, 1.5))
			m.reqs[0].mime = "application/octet-stream"
			m.reqs = append(m.reqs, httpReq{method: "POST", uri: pick(r, m.uris), ua: m.ua, status: 200,
				body: int64(r.lognormal(3000, 1.5)), resp: 0, think: r.uniform(0.2, 4)})
		}
		g.httpConn(m.h, r, t, m.ep, host, m.reqs, m.tg)
	case c2TCP:
		up, down := int64(r.between(40, 200)), int64(r.between(20, 120))
		if tasked {
			down += int64(r.lognormal(20000, 1.5))
			up += int64(r.lognormal(3000, 1.5))
		}
		g.rawConn(m.h, r, t, m.ep, "tcp", "", up, down, r.uniform(0.05, 1.5), m.tg)
	}
}

// C2 server names.
var (
	c2Words = []string{"update", "cdn", "static", "api", "sync", "cloud", "secure", "login", "content", "delivery",
		"metrics", "telemetry", "assets", "media", "service", "check", "portal", "data", "node", "edge"}
	c2TLDs = []string{".com", ".net", ".info", ".top", ".xyz", ".online", ".site", ".live", ".cc"}
	c2URIs = [][]string{
		{"/jquery-3.3.1.min.js", "/jquery-3.3.2.min.js"},
		{"/api/v1/updates", "/api/v1/status"},
		{"/submit.php", "/news.php"},
		{"/__utm.gif", "/pixel.gif"},
		{"/en_US/all.js", "/ca"},
		{"/login.php", "/"},
		{"/wp-content/plugins/cache/check.php"},
	}
)

func c2Name(r *rng) string {
	switch r.IntN(3) {
	case 0:
		return r.alnum(r.between(8, 12)) + pick(r, c2TLDs)
	case 1:
		return pick(r, c2Words) + "." + pick(r, c2Words) + "-" + pick(r, c2Words) + pick(r, c2TLDs)
	default:
		return pick(r, c2Words) + "-" + pick(r, c2Words) + pick(r, c2TLDs)
	}
}

// c2Endpoint creates a C2 server for the given transport.
func c2Endpoint(r *rng, tr c2Transport) *endpoint {
	name := c2Name(r)
	switch tr {
	case c2HTTPS:
		return newEndpoint(name, provVPS, pick(r, []int{443, 443, 443, 8443}))
	case c2HTTP:
		return newEndpoint(name, provVPS, pick(r, []int{80, 80, 8080}))
	case c2HTTPIP:
		return fixedEndpoint("", provVPS.addrFor(name, 0), 80, false)
	case c2TLSNoSNI:
		return fixedEndpoint("", provVPS.addrFor(name, 0), 443, false)
	default:
		// Opaque protocols still usually resolve a name first.
		return newEndpoint(name, provVPS, pick(r, []int{443, 4444, 8080, 8443, 1337}))
	}
}

func randomTransport(r *rng) c2Transport {
	switch x := r.IntN(100); {
	case x < 45:
		return c2HTTPS
	case x < 65:
		return c2HTTP
	case x < 80:
		return c2HTTPIP
	case x < 90:
		return c2TLSNoSNI
	default:
		return c2TCP
	}
}

// newImplant builds an implant of kind on h; ep may be nil for a fresh C2
// server.
func (w *world) newImplant(r *rng, h *host, kind string, ep *endpoint, tr c2Transport, intervalS, jitter float64) *implant {
	m := &implant{
		w: w, h: h, kind: kind, tr: tr, jitter: jitter,
		interval: secs(intervalS),
		r:        newRNG(w.cfg.Seed, fmt.Sprintf("implant %d %s %s", len(w.implants), kind, h.ip)),
		uris:     pick(r, c2URIs),
		ua:       pick(r, uaImplants),
	}
	if r.chance(0.3) {
		m.ua = h.ua // blends in with the host's browser
	}
	// Many families send more than one request per callback (Kovter in
	// the CTU capture: two HTTP requests a second apart every 120 s).
	m.perCall = 1
	if u := m.r.Float64(); u < 0.1 {
		m.perCall = 3
	} else if u < 0.35 {
		m.perCall = 2
	}
	if ep == nil {
		ep = c2Endpoint(r, tr)
	}
	m.ep = ep
	m.gate = h.online
	h.used = true
	w.implants = append(w.implants, m)
	w.actors = append(w.actors, m)
	return m
}

// niceInterval rounds a sleep the way operators configure them: to 5 s
// below two minutes, to 30 s below half an hour, else to the minute.
func niceInterval(s float64) float64 {
	step := 60.0
	switch {
	case s < 120:
		step = 5
	case s < 1800:
		step = 30
	}
	return math.Max(step, math.Round(s/step)*step)
}

// c2Jitter draws an implant's jitter: a fifth of implants sleep a fixed
// interval (much commodity malware does: Kovter in the CTU capture polls
// every 120 s to the second), the rest U(0, 50 %).
func c2Jitter(r *rng) float64 {
	if r.chance(0.2) {
		return 0
	}
	return pct(r.uniform(0, 0.5))
}

// pct rounds a jitter to a whole percent, as operators configure it.
func pct(x float64) float64 { return math.Round(x*100) / 100 }

// start sets the detail and the first call once gate and ops are final.
func (m *implant) start(extra string) {
	if m.perCall > 1 && m.tr != c2TCP {
		extra = fmt.Sprintf(" per-callback=%d", m.perCall) + extra
	}
	m.tg = &tag{label: Malicious, kind: m.kind, detail: fmt.Sprintf("interval=%gs jitter=%.2f transport=%s%s",
		float64(m.interval)/1e6, m.jitter, m.tr, extra)}
	t := m.w.start + m.r.Int64N(m.interval)
	if on, _ := m.gate.at(t); on {
		m.t = t
	} else {
		m.resume(m.gate.next(t))
	}
}

// officeHours returns the spans [from, to) hours on each workday.
func officeHours(cfg Config, from, to float64) spans {
	out := spans{}
	y, mo, d := cfg.Start.Date()
	for day := 0; day < cfg.Days; day++ {
		midnight := time.Date(y, mo, d+day, 0, 0, 0, 0, cfg.Start.Location())
		if wd := midnight.Weekday(); wd == time.Saturday || wd == time.Sunday {
			continue
		}
		base := midnight.UnixMicro()
		out = append(out, span{base + secs(from*3600), base + secs(to*3600)})
	}
	return out
}

// intersect returns the intersection of two span lists (nil = always).
func intersect(a, b spans) spans {
	if a == nil {
		return b
	}
	if b == nil {
		return a
	}
	out := spans{}
	for _, x := range a {
		for _, y := range b {
			if lo, hi := max(x.from, y.from), min(x.to, y.to); lo < hi {
				out = append(out, span{lo, hi})
			}
		}
	}
	return out
}

// addImplants places the random implants and the explicit beacons.
func (w *world) addImplants(r *rng) error {
	cfg := w.cfg
	// Explicit beacons first: their hosts are fixed.
	for i, b := range cfg.Beacons {
		h := w.hostByIP(b.Src)
		name, port, isAddr, err := splitDst(b.Dst)
		if err != nil {
			return err
		}
		var tr c2Transport
		var ep *endpoint
		switch b.Transport {
		case "https":
			tr = c2HTTPS
			if isAddr {
				tr = c2TLSNoSNI
			}
			port = cmp0(port, 443)
		case "http":
			tr = c2HTTP
			if isAddr {
				tr = c2HTTPIP
			}
			port = cmp0(port, 80)
		default:
			tr = c2TCP
			port = cmp0(port, 443)
		}
		if isAddr {
			ep = fixedEndpoint("", name, port, false)
		} else {
			ep = newEndpoint(name, provVPS, port)
		}
		m := w.newImplant(newRNG(cfg.Seed, "beacon "+strconv.Itoa(i)), h, b.Kind, ep, tr, b.Interval.Seconds(), b.Jitter)
		m.perCall = 1 // an explicit beacon makes exactly one request per callback
		m.gate = h.online
		if b.OfficeHours {
			m.gate = intersect(h.online, officeHours(cfg, 8, 18))
		}
		m.start(" configured")
	}
	if cfg.C2PerHundred < 0 {
		return nil
	}
	n := int(math.Round(float64(cfg.Hosts) * cfg.C2PerHundred / 100))
	var kinds []string
	if cfg.Hosts >= 50 {
		kinds = append(kinds, C2Kinds...)
		n -= len(C2Kinds) + 2 // the shared server takes 3 hosts
	}
	filler := []string{KindC2Jittered, KindC2Jittered, KindC2Jittered, KindC2Laptop, KindC2Laptop,
		KindC2OfficeHours, KindC2LongSleep, KindC2LongSleep, KindC2Interactive, KindC2CDNHidden}
	for ; n > 0; n-- {
		kinds = append(kinds, pick(r, filler))
	}
	for _, k := range kinds {
		w.addImplant(r, k)
	}
	if cfg.TrainingMix {
		w.addTrainingMix(newRNG(cfg.Seed, "training mix"))
	}
	return nil
}

// addSharedServer adds one C2 server and configuration shared by n hosts,
// each with its own timer.
func (w *world) addSharedServer(r *rng, n int) {
	tr := randomTransport(r)
	ep := c2Endpoint(r, tr)
	interval, jitter := niceInterval(r.logUniform(60, 1800)), c2Jitter(r)
	for i := 0; i < n; i++ {
		h := w.freeHost(r, roleDesktop, roleLaptop, roleServer)
		if h == nil {
			return
		}
		w.newImplant(r, h, KindC2SharedServer, ep, tr, interval, jitter).start(fmt.Sprintf(" server shared by %d hosts", n))
	}
}

// addTrainingMix adds the implants of Config.TrainingMix from a random
// stream of their own, so the rest of the day is that of the same config
// without it.
func (w *world) addTrainingMix(r *rng) {
	// Shared servers of 2 to hosts/12 hosts (at least 3, at most 10).
	most := min(max(w.cfg.Hosts/12, 3), 10)
	for k := r.between(1, 3); k > 0; k-- {
		w.addSharedServer(r, r.between(2, most))
	}
	// Every-minute beacons (30-120 s) on always-on hosts and on a laptop.
	for k := r.between(1, 2); k > 0; k-- {
		if h := w.freeHost(r, roleDesktop, roleServer); h != nil {
			w.newImplant(r, h, KindC2Jittered, nil, randomTransport(r), niceInterval(r.logUniform(30, 120)), c2Jitter(r)).start(" every minute")
		}
	}
	if h := w.freeHost(r, roleLaptop); h != nil {
		w.newImplant(r, h, KindC2Laptop, nil, randomTransport(r), niceInterval(r.logUniform(30, 120)), c2Jitter(r)).start(" every minute while the laptop is on")
	}
	// The kinds a network below 50 hosts does not otherwise get for sure.
	w.addImplant(r, KindC2CDNHidden)
	w.addImplant(r, KindC2OfficeHours)
	w.addImplant(r, KindC2Interactive)
}

func cmp0(x, def int) int {
	if x == 0 {
		return def
	}
	return x
}

// freeHost picks an unused host of one of the roles that is on the network
// at some time (and has a user at it, for roles with users), else any
// unused host.
func (w *world) freeHost(r *rng, roles ...role) *host {
	var cands []*host
	for _, h := range w.hosts {
		active := (h.online == nil || len(h.online) > 0) && (!h.hasUser() || len(h.present) > 0)
		if !h.used && hasRole(roles, h.role) && active {
			cands = append(cands, h)
		}
	}
	if len(cands) == 0 {
		for _, h := range w.hosts {
			if !h.used {
				cands = append(cands, h)
			}
		}
	}
	if len(cands) == 0 {
		return nil
	}
	return pick(r, cands)
}

func (w *world) addImplant(r *rng, kind string) {
	switch kind {
	case KindC2Jittered:
		h := w.freeHost(r, roleDesktop, roleServer)
		if h == nil {
			return
		}
		w.newImplant(r, h, kind, nil, randomTransport(r), niceInterval(r.logUniform(30, 7200)), c2Jitter(r)).start("")
	case KindC2Laptop:
		h := w.freeHost(r, roleLaptop)
		if h == nil {
			return
		}
		w.newImplant(r, h, kind, nil, randomTransport(r), niceInterval(r.logUniform(60, 900)), c2Jitter(r)).start(" while the laptop is on")
	case KindC2OfficeHours:
		h := w.freeHost(r, roleDesktop)
		if h == nil {
			return
		}
		m := w.newImplant(r, h, kind, nil, randomTransport(r), niceInterval(r.logUniform(120, 1800)), c2Jitter(r))
		from, to := r.uniform(7.5, 9), r.uniform(16.5, 18.5)
		m.gate = intersect(h.online, officeHours(w.cfg, from, to))
		m.start(fmt.Sprintf(" hours=%02d:%02d-%02d:%02d weekdays", int(from), int(from*60)%60, int(to), int(to*60)%60))
	case KindC2LongSleep:
		h := w.freeHost(r, roleDesktop, roleServer)
		if h == nil {
			return
		}
		w.newImplant(r, h, kind, nil, randomTransport(r), niceInterval(r.uniform(1800, 3600)), c2Jitter(r)).start("")
	case KindC2Interactive:
		h := w.freeHost(r, roleDesktop, roleServer)
		if h == nil {
			return
		}
		m := w.newImplant(r, h, kind, nil, randomTransport(r), niceInterval(r.logUniform(300, 1800)), pct(r.uniform(0.1, 0.5)))
		m.perCall = 1 // operator sessions already make bursts
		m.opGap = [2]float64{1, 5}
		m.ops = spans{}
		y, mo, d := w.cfg.Start.Date()
		for day := 0; day < w.cfg.Days; day++ {
			base := time.Date(y, mo, d+day, 0, 0, 0, 0, w.cfg.Start.Location()).UnixMicro()
			var today []span
			for k := r.between(1, 3); k > 0; k-- {
				from := base + secs(r.uniform(8, 20)*3600)
				today = append(today, span{from, from + secs(r.uniform(5, 30)*60)})
			}
			m.ops = append(m.ops, mergeSpans(today)...)
		}
		m.start(" operator-sessions=1-3/day calls-every=1-5s")
	case KindC2SharedServer:
		w.addSharedServer(r, 3)
	case KindC2CDNHidden:
		h := w.freeHost(r, roleDesktop, roleLaptop)
		if h == nil || !h.hasUser() {
			return
		}
		var br *browser
		for _, a := range w.actors {
			if b, ok := a.(*browser); ok && b.h == h {
				br = b
			}
		}
		// A CDN host of one of the victim's favourite sites, made the
		// victim's most visited site so that the beacon hides in
		// genuine traffic to the same name.
		var s *site
		for _, f := range br.favs {
			if f.cdn != nil {
				s = f
				break
			}
		}
		if s == nil {
			for _, f := range w.web.sites {
				if f.cdn != nil {
					s = f
					break
				}
			}
		}
		br.preferSite(s)
		w.newImplant(r, h, kind, s.cdn, c2HTTPS, niceInterval(r.logUniform(120, 900)), pct(r.uniform(0.1, 0.5))).start(" via a CDN host the user also browses")
	}
}

// mergeSpans sorts and merges overlapping spans.
func mergeSpans(s []span) []span {
	for i := 1; i < len(s); i++ {
		for j := i; j > 0 && s[j].from < s[j-1].from; j-- {
			s[j], s[j-1] = s[j-1], s[j]
		}
	}
	var out []span
	for _, x := range s {
		if n := len(out); n > 0 && x.from <= out[n-1].to {
			out[n-1].to = max(out[n-1].to, x.to)
			continue
		}
		out = append(out, x)
	}
	return out
}
