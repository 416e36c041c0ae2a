package sim

import (
	"fmt"
	"strings"
)

// endpoint is a destination: a name served from a provider's addresses, or
// a fixed address.
type endpoint struct {
	name  string   // DNS name, also HTTP Host / TLS SNI; empty for bare addresses
	addrs []string // addresses it resolves to (rotated per connection)
	port  int
	local bool // inside the monitored network

	// TLS parameters of the server, fixed per endpoint.
	tlsVersion string
	cipher     string
	curve      string
	subject    string
	issuer     string
	h2         bool
}

func newEndpoint(name string, p *provider, port int) *endpoint {
	ep := &endpoint{name: name, port: port}
	n := max(1, p.addrs)
	for k := 0; k < n; k++ {
		ep.addrs = append(ep.addrs, p.addrFor(name, k))
	}
	ep.setTLS(hashString(name))
	return ep
}

func fixedEndpoint(name, addr string, port int, local bool) *endpoint {
	ep := &endpoint{name: name, addrs: []string{addr}, port: port, local: local}
	ep.setTLS(hashString(name + addr))
	return ep
}

// setTLS derives the server's TLS configuration from h.
func (ep *endpoint) setTLS(h uint64) {
	if h%100 < 62 {
		ep.tlsVersion = "TLSv13"
		ep.cipher = tls13Ciphers[(h>>8)%uint64(len(tls13Ciphers))]
	} else {
		ep.tlsVersion = "TLSv12"
		ep.cipher = tls12Ciphers[(h>>8)%uint64(len(tls12Ciphers))]
	}
	ep.curve = "x25519"
	if (h>>16)%4 == 0 {
		ep.curve = "secp256r1"
	}
	ep.issuer = issuers[(h>>24)%uint64(len(issuers))]
	if ep.name != "" {
		ep.subject = "CN=" + ep.name
		if (h>>32)%3 == 0 {
			ep.subject = "CN=*." + registered(ep.name)
		}
	}
	ep.h2 = (h>>40)%5 != 0
}

func (ep *endpoint) addr(r *rng) string {
	if len(ep.addrs) == 1 {
		return ep.addrs[0]
	}
	return ep.addrs[r.IntN(len(ep.addrs))]
}

// site is a web site: a main host and the hosts its pages load from.
type site struct {
	main  *endpoint
	own   []*endpoint // the site's own static/CDN hosts
	third []*endpoint // shared third parties
	cdn   *endpoint   // a site-specific CDN host (cloudfront, azureedge...), may be nil
	http  bool        // served over plain HTTP
}

// web is the browsing universe.
type web struct {
	sites      []*site
	popularity *weighted
	third      []*endpoint
	thirdPop   *weighted
}

func buildWeb(r *rng, nSites int) *web {
	w := &web{}
	for _, tp := range thirdParties {
		w.third = append(w.third, newEndpoint(tp.host, tp.prov, 443))
	}
	w.thirdPop = newWeighted(zipfWeights(len(w.third), 0.9))
	seen := map[string]bool{}
	for _, ts := range topSites {
		s := &site{main: newEndpoint(ts.host, ts.prov, 443)}
		seen[registered(ts.host)] = true
		w.addResources(r, s, ts.prov, registered(ts.host))
		w.sites = append(w.sites, s)
	}
	hosting := []*provider{provHosting, provHosting, provHosting, provHosting, provCloudflare, provCloudflare, provCloudflare, provAWS, provAWS, provAkamai, provFastly}
	for len(w.sites) < nSites {
		reg := madeUpName(r)
		if seen[reg] {
			continue
		}
		seen[reg] = true
		p := pick(r, hosting)
		name := reg
		if r.chance(0.6) {
			name = "www." + reg
		}
		s := &site{http: r.chance(0.07)}
		port := 443
		if s.http {
			port = 80
		}
		s.main = newEndpoint(name, p, port)
		w.addResources(r, s, p, reg)
		w.sites = append(w.sites, s)
	}
	w.popularity = newWeighted(zipfWeights(len(w.sites), 1.0))
	return w
}

// addResources gives a site its own static hosts, maybe a dedicated CDN
// host, and a few third parties.
func (w *web) addResources(r *rng, s *site, p *provider, reg string) {
	port := s.main.port
	for _, sub := range []string{"static.", "cdn.", "img.", "api."} {
		if r.chance(0.3) {
			s.own = append(s.own, newEndpoint(sub+reg, p, port))
		}
	}
	if !s.http {
		label := strings.SplitN(reg, ".", 2)[0]
		switch x := r.Float64(); {
		case x < 0.22:
			s.cdn = newEndpoint("d"+r.alnum(13)+".cloudfront.net", provCloudFront, 443)
		case x < 0.30:
			s.cdn = newEndpoint(label+"-"+r.alnum(6)+".azureedge.net", provMicrosoft, 443)
		case x < 0.38:
			s.cdn = newEndpoint(label+".akamaized.net", provAkamai, 443)
		}
		if s.cdn != nil {
			s.own = append(s.own, s.cdn)
		}
	}
	for k := r.between(1, 6); k > 0; k-- {
		tp := w.third[w.thirdPop.sample(r)]
		dup := false
		for _, x := range s.third {
			dup = dup || x == tp
		}
		if !dup {
			s.third = append(s.third, tp)
		}
	}
}

// world is everything an actor may refer to.
type world struct {
	cfg      Config
	start    int64 // µs
	end      int64
	hosts    []*host
	web      *web
	resolver *endpoint
	actors   []actor
	implants []*implant
}

func (w *world) label(kind, detail string) *tag {
	lbl := Benign
	if strings.HasPrefix(kind, "c2-") {
		lbl = Malicious
	}
	return &tag{label: lbl, kind: kind, detail: detail}
}

// tag is the ground truth attached to the events of one activity.
type tag struct {
	label, kind, detail string
}

// buildWorld creates hosts, the web, services and implants.
func buildWorld(cfg Config) (*world, error) {
	w := &world{cfg: cfg, start: cfg.Start.UnixMicro()}
	w.end = cfg.Start.AddDate(0, 0, cfg.Days).UnixMicro()
	r := newRNG(cfg.Seed, "world")
	w.hosts = buildHosts(cfg, r)
	w.web = buildWeb(newRNG(cfg.Seed, "web"), 1500)
	w.resolver = fixedEndpoint("", resolverIP, 53, true)

	// Explicit beacons may name sources that are not simulated hosts.
	for _, b := range cfg.Beacons {
		if w.hostByIP(b.Src) == nil {
			h := &host{idx: len(w.hosts), ip: b.Src, role: roleDesktop, os: osWindows,
				dnsCache: map[string]int64{}, appsAlways: true}
			h.name = fmt.Sprintf("desktop-%03d", h.idx)
			h.ua = uaWindowsBrowsers[0]
			h.online, h.present = userSchedule(cfg, roleDesktop, newRNG(cfg.Seed, "beacon-host "+b.Src))
			w.hosts = append(w.hosts, h)
		}
	}

	for _, h := range w.hosts {
		if h.hasUser() {
			w.actors = append(w.actors, newBrowser(w, h))
		}
		w.addServices(h)
	}
	w.addRareServices(newRNG(cfg.Seed, "rare"))
	if err := w.addImplants(newRNG(cfg.Seed, "implants")); err != nil {
		return nil, err
	}
	return w, nil
}

func (w *world) hostByIP(ip string) *host {
	for _, h := range w.hosts {
		if h.ip == ip {
			return h
		}
	}
	return nil
}
