package sim

import (
	"math"
	"strconv"
)

// browser is a person browsing the web while at their machine: bursts of
// page views separated by idle stretches (meetings, work in other
// programs); each page view opens connections to the site, its static and
// CDN hosts and third parties, reusing connections that are still open.
type browser struct {
	w      *world
	h      *host
	r      *rng
	favs   []*site
	favPop *weighted
	tg     *tag
	certTg *tag
	ocsp   []*endpoint
	open   map[*endpoint]int64 // endpoint -> end of the last connection to it
	reqs   []httpReq

	t        int64 // next page view
	burstEnd int64
}

// Browsing pace.
const (
	burstMean  = 9 * 60.0  // seconds of active browsing per burst, mean
	idleMean   = 16 * 60.0 // seconds between bursts, mean
	viewMedian = 20.0      // seconds between page views in a burst, median
	favShare   = 0.65      // share of page views that go to personal favourites
)

var ocspResponders = []string{"ocsp.digicert.com", "ocsp.pki.goog", "r3.o.lencr.org", "ocsp.sectigo.com"}

func newBrowser(w *world, h *host) *browser {
	b := &browser{
		w:      w,
		h:      h,
		r:      newRNG(w.cfg.Seed, "browser "+h.ip),
		tg:     w.label(KindBrowsing, "page views with their CDN and third-party hosts"),
		certTg: w.label(KindCertCheck, "OCSP lookups triggered by browsing"),
		open:   map[*endpoint]int64{},
	}
	for _, n := range ocspResponders {
		b.ocsp = append(b.ocsp, newEndpoint(n, provAkamai, 80))
	}
	// Favourites: a personal list drawn from global popularity, visited
	// with its own heavy-tailed preference.
	seen := map[*site]bool{}
	for k := b.r.between(12, 40); len(b.favs) < k; {
		s := w.web.sites[w.web.popularity.sample(b.r)]
		if !seen[s] {
			seen[s] = true
			b.favs = append(b.favs, s)
		}
	}
	b.favPop = newWeighted(zipfWeights(len(b.favs), 1.2))
	b.t = w.start
	b.newBurst(b.t)
	return b
}

// preferSite makes s the person's most visited site.
func (b *browser) preferSite(s *site) {
	for i, f := range b.favs {
		if f == s {
			b.favs[0], b.favs[i] = b.favs[i], b.favs[0]
			return
		}
	}
	b.favs[0] = s
}

func (b *browser) next() int64 { return b.t }

// newBurst moves b.t to the start of a burst at or after t when the user is
// at the machine.
func (b *browser) newBurst(t int64) {
	for {
		t = b.h.present.next(t)
		if t == never {
			b.t = never
			return
		}
		if on, _ := b.h.online.at(t); on {
			break
		}
		t = b.h.online.next(t)
	}
	b.t = t + secs(b.r.uniform(5, 120))
	b.burstEnd = b.t + secs(b.r.exp(burstMean))
}

func (b *browser) expand(g *gen) {
	b.pageView(g, b.t)
	gap := math.Min(math.Max(b.r.lognormal(viewMedian, 1.1), 1.5), 900)
	t := b.t + secs(gap)
	if t > b.burstEnd {
		b.newBurst(t + secs(b.r.exp(idleMean)))
		return
	}
	pres, _ := b.h.present.at(t)
	on, _ := b.h.online.at(t)
	if !pres || !on {
		b.newBurst(t)
		return
	}
	b.t = t
}

func (b *browser) pickSite() *site {
	if b.r.chance(favShare) {
		return b.favs[b.favPop.sample(b.r)]
	}
	return b.w.web.sites[b.w.web.popularity.sample(b.r)]
}

// pageView loads one page: the document, then its resources.
func (b *browser) pageView(g *gen, t int64) {
	r := b.r
	s := b.pickSite()
	if s.http {
		// Plain-HTTP site: document and static files over one or two
		// connections, several requests each.
		path := pagePath(r)
		b.reqs = b.reqs[:0]
		b.reqs = append(b.reqs, httpReq{method: "GET", uri: path, ua: b.h.ua, status: 200, resp: int64(r.lognormal(40000, 0.8)), mime: "text/html"})
		for k := r.between(1, 6); k > 0; k-- {
			b.reqs = append(b.reqs, b.staticReq(path, s.main.name))
		}
		end := g.httpConn(b.h, r, t, s.main, s.main.name, b.reqs, b.tg)
		b.open[s.main] = end
		for _, ep := range s.own {
			if r.chance(0.7) {
				b.reqs = b.reqs[:0]
				for k := r.between(1, 5); k > 0; k-- {
					b.reqs = append(b.reqs, b.staticReq(path, s.main.name))
				}
				g.httpConn(b.h, r, t+secs(r.uniform(0.1, 1.2)), ep, ep.name, b.reqs, b.tg)
			}
		}
	} else {
		b.tls(g, t, s.main, int64(r.lognormal(60000, 1.0)))
		for _, ep := range s.own {
			if r.chance(0.8) {
				b.tls(g, t+secs(r.uniform(0.1, 1.5)), ep, int64(r.lognormal(30000, 1.4)))
			}
		}
	}
	for _, ep := range s.third {
		if r.chance(0.6) {
			b.tls(g, t+secs(r.uniform(0.2, 3)), ep, int64(r.lognormal(15000, 1.5)))
		}
	}
	if r.chance(0.04) {
		ep := pick(r, b.ocsp)
		b.reqs = append(b.reqs[:0], httpReq{method: "POST", uri: "/", ua: "", status: 200, body: 83, resp: int64(r.between(471, 1900)), mime: "application/ocsp-response"})
		g.httpConn(b.h, r, t+secs(r.uniform(0.05, 0.3)), ep, ep.name, b.reqs, b.certTg)
	}
}

// tls opens a browser TLS connection unless one to ep is still open.
func (b *browser) tls(g *gen, t int64, ep *endpoint, down int64) {
	if until, ok := b.open[ep]; ok && until > t {
		return // HTTP keep-alive / HTTP/2: reuse the open connection
	}
	r := b.r
	_, seen := b.open[ep]
	dur := math.Min(0.3+r.exp(45), 300)
	b.open[ep] = g.tlsConn(b.h, r, t, ep, tlsSession{
		sni: ep.name, up: int64(r.between(700, 6000)), down: down, dur: dur,
		resumed: seen && r.chance(0.6), failed: r.chance(0.005), alpn: true,
	}, b.tg)
}

func (b *browser) staticReq(page, host string) httpReq {
	r := b.r
	var uri, mime string
	switch r.IntN(4) {
	case 0:
		uri, mime = "/static/js/app."+r.hexString(8)+".js", "text/plain"
	case 1:
		uri, mime = "/static/css/site."+r.hexString(8)+".css", "text/plain"
	default:
		uri, mime = "/images/"+pick(r, nameParts)+"-"+strconv.Itoa(r.IntN(900)+100)+".jpg", "image/jpeg"
	}
	return httpReq{method: "GET", uri: uri, referrer: "http://" + host + page, ua: b.h.ua, status: 200,
		resp: int64(r.lognormal(20000, 1.2)), mime: mime, think: r.uniform(0, 0.05)}
}

// pagePath returns a plausible document path.
func pagePath(r *rng) string {
	switch r.IntN(5) {
	case 0:
		return "/"
	case 1:
		return "/" + pick(r, nameParts) + "/" + pick(r, nameParts) + "-" + strconv.Itoa(r.IntN(99999)) + ".html"
	case 2:
		return "/article/" + strconv.Itoa(100000+r.IntN(900000))
	case 3:
		return "/search?q=" + pick(r, nameParts) + "+" + pick(r, nameParts)
	default:
		return "/" + pick(r, nameParts) + "/"
	}
}
