package sim

import (
	"fmt"
	"strings"
)

type transport uint8

const (
	tHTTPS transport = iota // TLS with SNI: conn.log + ssl.log
	tHTTP                   // plain HTTP: conn.log + http.log
	tTCP                    // opaque TCP: conn.log only
	tUDP                    // UDP: conn.log only
)

func (t transport) String() string { return [...]string{"https", "http", "tcp", "udp"}[t] }

// reqTmpl is the HTTP request a service sends at each check.
type reqTmpl struct {
	method string
	uris   []string
	ua     string
	body   [2]int
	resp   [2]int
	mime   string
}

// svcDef is a periodic background service: software that checks in with a
// server on a timer.
type svcDef struct {
	kind  string // truth kind
	name  string // detail
	roles []role
	oses  []osKind
	share float64 // fraction of eligible hosts running it
	apps  bool    // a user application (runs while the user's session does)

	tr     transport
	names  []string // DNS names; one is chosen per host unless rotate/each
	rotate bool     // every check picks one of names
	each   bool     // one independent timer per name (NTP sources)
	prov   *provider
	addr   string // fixed address (internal services)
	local  bool
	port   int

	period  [2]float64 // seconds; each host draws its period from this range
	periods []float64  // or one of these
	jitter  float64    // 0: exact timer; else each sleep is period*(1+U(-jitter,jitter))
	skip    float64    // probability that a check is missed
	pattern []float64  // checks at these offsets (s) within each period
	burst   [2]int     // requests (HTTP) or connections (TLS) per check
	onWake  bool       // checks whenever the host comes online
	align   bool       // timer aligned to the clock (cron): checks at multiples of the period

	req      reqTmpl
	up, down [2]int // TLS / raw application bytes per connection
	service  string // conn.log service of raw connections
}

var (
	userRoles  = []role{roleLaptop, roleDesktop}
	allPCs     = []role{roleLaptop, roleDesktop, roleServer}
	servers    = []role{roleServer}
	windows    = []osKind{osWindows}
	anyOS      = []osKind{osWindows, osMac, osLinux}
	desktopOSs = []osKind{osWindows, osMac}
)

// sharedServices are run by most hosts of a kind; their flows are periodic
// and benign. Periods and patterns follow what such software does (and what
// real captures show: exact timers with missed beats, fixed multi-request
// cycles, small symmetric jitter).
var sharedServices = []*svcDef{
	{kind: "benign-os-update", name: "windows-update", roles: allPCs, oses: windows, share: 0.97,
		tr: tHTTPS, names: []string{"settings-win.data.microsoft.com", "fe3.delivery.mp.microsoft.com"}, prov: provMicrosoft, port: 443,
		periods: []float64{900, 1800}, skip: 0.35, burst: [2]int{1, 2}, up: [2]int{400, 1500}, down: [2]int{1500, 9000}},
	{kind: "benign-os-update", name: "delivery-optimization", roles: userRoles, oses: windows, share: 0.85,
		tr: tHTTPS, names: []string{"array604.prod.do.dsp.mp.microsoft.com", "array614.prod.do.dsp.mp.microsoft.com", "array615.prod.do.dsp.mp.microsoft.com"}, rotate: true, prov: provMicrosoft, port: 443,
		period: [2]float64{3000, 3600}, jitter: 0.15, skip: 0.1, burst: [2]int{1, 1}, up: [2]int{300, 900}, down: [2]int{800, 3000}},
	{kind: "benign-os-update", name: "apt-update", roles: servers, oses: []osKind{osLinux}, share: 0.9,
		tr: tHTTP, names: []string{"security.ubuntu.com", "archive.ubuntu.com"}, prov: provHosting, port: 80,
		period: [2]float64{43200, 43200}, jitter: 0.25, burst: [2]int{2, 4},
		req: reqTmpl{method: "GET", uris: []string{"/ubuntu/dists/jammy-security/InRelease", "/ubuntu/dists/jammy-updates/InRelease", "/ubuntu/dists/jammy/InRelease"}, ua: "Debian APT-HTTP/1.3 (2.4.11)", resp: [2]int{0, 130000}, mime: "text/plain"}},
	{kind: "benign-os-update", name: "macos-softwareupdate", roles: userRoles, oses: []osKind{osMac}, share: 0.95,
		tr: tHTTPS, names: []string{"swscan.apple.com", "gdmf.apple.com"}, prov: provApple, port: 443,
		period: [2]float64{3600, 3600}, jitter: 0.3, skip: 0.2, burst: [2]int{1, 2}, up: [2]int{400, 900}, down: [2]int{2000, 40000}},

	{kind: "benign-antivirus", name: "av-livegrid", roles: allPCs, oses: windows, share: 0.95,
		tr: tHTTP, names: []string{"i4.c.eset.com", "i3.c.eset.com"}, prov: provESET, port: 80,
		period: [2]float64{1200, 1200}, skip: 0.15, burst: [2]int{1, 1},
		req: reqTmpl{method: "POST", uris: []string{"/livegrid"}, body: [2]int{180, 420}, resp: [2]int{300, 900}, mime: "application/octet-stream"}},
	{kind: "benign-antivirus", name: "av-update", roles: allPCs, oses: windows, share: 0.95,
		tr: tHTTP, names: []string{"update.eset.com"}, prov: provESET, port: 80,
		period: [2]float64{3600, 3600}, skip: 0.15, burst: [2]int{2, 2},
		req: reqTmpl{method: "GET", uris: []string{"/v1/updlist.ver", "/eset_upd/update.ver"}, ua: "EES Update (Windows; U; 64bit; BPC 9.0.2046.0; OS: 10.0.19043 SP 0.0 NT; TDB 53827)", resp: [2]int{400, 5000}, mime: "application/octet-stream"}},
	{kind: "benign-antivirus", name: "av-pico", roles: allPCs, oses: windows, share: 0.95,
		tr: tHTTP, names: []string{"pico.eset.com"}, prov: provESET, port: 80,
		period: [2]float64{600, 600}, skip: 0.3, burst: [2]int{1, 2},
		req: reqTmpl{method: "GET", uris: []string{"/pico/1/139483.pic", "/pico/1/139484.pic"}, ua: "EES Update (Windows; U; 64bit; BPC 9.0.2046.0; OS: 10.0.19043 SP 0.0 NT; TDB 53827)", resp: [2]int{60, 400}, mime: "application/octet-stream"}},
	{kind: "benign-antivirus", name: "clamav-freshclam", roles: servers, oses: []osKind{osLinux}, share: 0.5,
		tr: tHTTP, names: []string{"database.clamav.net"}, prov: provCloudflare, port: 80,
		period: [2]float64{7200, 7200}, skip: 0.02, burst: [2]int{1, 2},
		req: reqTmpl{method: "GET", uris: []string{"/daily.cvd", "/bytecode.cvd"}, ua: "ClamAV/1.0.1 (OS: linux-gnu, ARCH: x86_64, CPU: x86_64)", resp: [2]int{0, 2000}, mime: "application/octet-stream"}},

	{kind: "benign-telemetry", name: "windows-telemetry", roles: userRoles, oses: windows, share: 0.95,
		tr: tHTTPS, names: []string{"v10.events.data.microsoft.com"}, prov: provMicrosoft, port: 443,
		period: [2]float64{1798, 1800}, pattern: []float64{0, 79, 363}, jitter: 0.002, skip: 0.1, burst: [2]int{1, 1}, up: [2]int{1500, 12000}, down: [2]int{300, 900}},
	{kind: "benign-telemetry", name: "office-telemetry", roles: userRoles, oses: desktopOSs, share: 0.75, apps: true,
		tr: tHTTPS, names: []string{"nexusrules.officeapps.live.com", "self.events.data.microsoft.com"}, rotate: true, prov: provMicrosoft, port: 443,
		period: [2]float64{3600, 3600}, jitter: 0.05, burst: [2]int{1, 1}, up: [2]int{800, 5000}, down: [2]int{400, 2000}},
	{kind: "benign-telemetry", name: "browser-update-check", roles: userRoles, oses: anyOS, share: 0.8,
		tr: tHTTPS, names: []string{"update.googleapis.com"}, prov: provGoogle, port: 443,
		period: [2]float64{18000, 18000}, jitter: 0.1, burst: [2]int{1, 1}, up: [2]int{900, 2500}, down: [2]int{600, 3000}},

	{kind: "benign-monitoring", name: "zabbix-agent", roles: servers, oses: anyOS, share: 1,
		tr: tTCP, addr: zabbixIP, local: true, port: 10051,
		period: [2]float64{60, 60}, burst: [2]int{1, 1}, up: [2]int{90, 400}, down: [2]int{60, 120}},
	{kind: "benign-monitoring", name: "apm-agent", roles: servers, oses: anyOS, share: 0.4,
		tr: tHTTPS, names: []string{"collector.newrelic.com"}, prov: provFastly, port: 443,
		period: [2]float64{60, 60}, jitter: 0.03, burst: [2]int{1, 1}, up: [2]int{2000, 20000}, down: [2]int{100, 300}},
	{kind: "benign-monitoring", name: "mgmt-agent", roles: allPCs, oses: windows, share: 0.95,
		tr: tHTTPS, names: []string{"sccm.corp.internal"}, addr: mgmtIP, local: true, port: 443,
		period: [2]float64{3600, 3600}, jitter: 0.1, burst: [2]int{1, 3}, up: [2]int{800, 4000}, down: [2]int{1000, 20000}},

	{kind: "benign-mail", name: "mail-sync", roles: userRoles, oses: desktopOSs, share: 0.85, apps: true,
		tr: tHTTPS, names: []string{"outlook.office365.com"}, prov: provMicrosoft, port: 443,
		period: [2]float64{300, 300}, jitter: 0.1, skip: 0.05, burst: [2]int{1, 2}, up: [2]int{600, 3000}, down: [2]int{800, 30000}},
	{kind: "benign-mail", name: "imap-poll", roles: userRoles, oses: []osKind{osLinux, osMac}, share: 0.5, apps: true,
		tr: tHTTPS, names: []string{"imap.gmail.com"}, prov: provGoogle, port: 993,
		period: [2]float64{600, 600}, burst: [2]int{1, 1}, up: [2]int{300, 800}, down: [2]int{300, 20000}},

	{kind: "benign-chat", name: "teams-keepalive", roles: userRoles, oses: desktopOSs, share: 0.8, apps: true,
		tr: tHTTPS, names: []string{"presence.teams.microsoft.com", "teams.events.data.microsoft.com"}, rotate: true, prov: provMicrosoft, port: 443,
		period: [2]float64{120, 120}, jitter: 0.1, skip: 0.05, burst: [2]int{1, 1}, up: [2]int{300, 1500}, down: [2]int{200, 2000}},
	{kind: "benign-chat", name: "slack-keepalive", roles: userRoles, oses: anyOS, share: 0.3, apps: true,
		tr: tHTTPS, names: []string{"wss-primary.slack.com"}, prov: provAWS, port: 443,
		period: [2]float64{60, 60}, jitter: 0.25, skip: 0.1, burst: [2]int{1, 1}, up: [2]int{200, 800}, down: [2]int{150, 1500}},

	{kind: "benign-cloud-sync", name: "dropbox-notify", roles: userRoles, oses: anyOS, share: 0.25, apps: true,
		tr: tHTTPS, names: []string{"bolt.dropbox.com", "t8.dropbox.com"}, prov: provDropbox, port: 443,
		period: [2]float64{900, 960}, jitter: 0.03, skip: 0.15, burst: [2]int{1, 1}, up: [2]int{300, 900}, down: [2]int{200, 600}},
	{kind: "benign-cloud-sync", name: "onedrive-sync", roles: userRoles, oses: windows, share: 0.6, apps: true,
		tr: tHTTPS, names: []string{"skyapi.onedrive.live.com", "g.live.com"}, rotate: true, prov: provMicrosoft, port: 443,
		period: [2]float64{3600, 3600}, jitter: 0.05, skip: 0.05, burst: [2]int{1, 2}, up: [2]int{500, 3000}, down: [2]int{500, 8000}},

	{kind: "benign-cert-check", name: "crl-fetch", roles: allPCs, oses: windows, share: 0.9,
		tr: tHTTP, names: []string{"ctldl.windowsupdate.com", "crl.microsoft.com"}, rotate: true, prov: provAkamai, port: 80,
		period: [2]float64{14400, 14400}, jitter: 0.25, burst: [2]int{1, 2},
		req: reqTmpl{method: "GET", uris: []string{"/msdownload/update/v3/static/trustedr/en/disallowedcertstl.cab", "/pki/crl/products/MicRooCerAut2011_2011_03_22.crl"}, ua: "Microsoft-CryptoAPI/10.0", resp: [2]int{0, 6000}, mime: "application/vnd.ms-cab-compressed"}},
	{kind: "benign-cert-check", name: "ocsp-refresh", roles: servers, oses: anyOS, share: 0.6,
		tr: tHTTP, names: []string{"r3.o.lencr.org"}, prov: provAkamai, port: 80,
		period: [2]float64{3600, 3600}, jitter: 0.05, burst: [2]int{1, 1},
		req: reqTmpl{method: "POST", uris: []string{"/"}, ua: "Go-http-client/1.1", body: [2]int{85, 85}, resp: [2]int{503, 503}, mime: "application/ocsp-response"}},

	{kind: "benign-ntp", name: "ntp-domain", roles: allPCs, oses: windows, share: 1,
		tr: tUDP, addr: dcIP, local: true, port: 123, service: "ntp",
		period: [2]float64{3600, 3600}, burst: [2]int{1, 1}, up: [2]int{48, 48}, down: [2]int{48, 48}},
	{kind: "benign-ntp", name: "ntp-pool", roles: []role{roleServer, roleDesktop, roleIoT}, oses: []osKind{osLinux, osEmbedded}, share: 1,
		tr: tUDP, names: []string{"0.pool.ntp.org", "1.pool.ntp.org", "2.pool.ntp.org", "3.pool.ntp.org"}, each: true, prov: provHosting, port: 123, service: "ntp",
		period: [2]float64{1024, 1024}, jitter: 0.01, burst: [2]int{1, 1}, up: [2]int{48, 48}, down: [2]int{48, 48}},
	{kind: "benign-ntp", name: "ntp-apple", roles: userRoles, oses: []osKind{osMac}, share: 1,
		tr: tUDP, names: []string{"time.apple.com"}, prov: provApple, port: 123, service: "ntp",
		period: [2]float64{1800, 1800}, jitter: 0.05, burst: [2]int{1, 1}, up: [2]int{48, 48}, down: [2]int{48, 48}},

	{kind: "benign-connectivity-check", name: "ncsi", roles: userRoles, oses: windows, share: 1, onWake: true,
		tr: tHTTP, names: []string{"www.msftncsi.com"}, prov: provAkamai, port: 80,
		period: [2]float64{10800, 10800}, jitter: 0.4, burst: [2]int{1, 1},
		req: reqTmpl{method: "GET", uris: []string{"/ncsi.txt"}, ua: "Microsoft NCSI", resp: [2]int{14, 14}, mime: "text/plain"}},
	{kind: "benign-connectivity-check", name: "captive-portal-check", roles: userRoles, oses: []osKind{osMac}, share: 1, onWake: true,
		tr: tHTTP, names: []string{"captive.apple.com"}, prov: provAkamai, port: 80,
		period: [2]float64{10800, 10800}, jitter: 0.4, burst: [2]int{1, 1},
		req: reqTmpl{method: "GET", uris: []string{"/hotspot-detect.html"}, ua: "CaptiveNetworkSupport-481.60.2 wispr", resp: [2]int{68, 68}, mime: "text/html"}},
}

// addServices starts the shared services the host runs.
func (w *world) addServices(h *host) {
	r := newRNG(w.cfg.Seed, "services "+h.ip)
	for _, d := range sharedServices {
		if !hasRole(d.roles, h.role) || !hasOS(d.oses, h.os) {
			continue
		}
		if !r.chance(d.share) {
			continue
		}
		if d.each {
			for _, n := range d.names {
				w.actors = append(w.actors, newPeriodic(w, h, d, []string{n}))
			}
			continue
		}
		names := d.names
		if len(names) == 0 {
			names = []string{""} // a bare address
		}
		if len(names) > 1 && !d.rotate {
			names = []string{pick(r, names)}
		}
		w.actors = append(w.actors, newPeriodic(w, h, d, names))
	}
	if h.role == roleServer {
		w.actors = append(w.actors, newServerAPI(w, h))
	}
}

func hasRole(rs []role, x role) bool {
	for _, r := range rs {
		if r == x {
			return true
		}
	}
	return false
}

func hasOS(os []osKind, x osKind) bool {
	for _, o := range os {
		if o == x {
			return true
		}
	}
	return false
}

// endpointFor returns the endpoint of a service destination. Addresses are
// a pure function of the name, so every host reaches the same servers.
func (w *world) endpointFor(d *svcDef, name string) *endpoint {
	if d.addr != "" {
		return fixedEndpoint(name, d.addr, d.port, d.local)
	}
	return newEndpoint(name, d.prov, d.port)
}

// periodic runs one service on one host.
type periodic struct {
	w    *world
	h    *host
	d    *svcDef
	eps  []*endpoint
	tg   *tag
	r    *rng
	gate spans // when the service can run (nil: always)

	period int64 // µs
	anchor int64 // start of the current cycle / exact timer base
	k      int   // checks since anchor (exact) or index in pattern
	t      int64 // next check
}

func newPeriodic(w *world, h *host, d *svcDef, names []string) *periodic {
	p := &periodic{w: w, h: h, d: d, r: newRNG(w.cfg.Seed, "svc "+d.name+" "+h.ip+" "+strings.Join(names, ","))}
	for _, n := range names {
		p.eps = append(p.eps, w.endpointFor(d, n))
	}
	per := p.r.uniform(d.period[0], d.period[1])
	if len(d.periods) > 0 {
		per = pick(p.r, d.periods)
	}
	p.period = secs(per)
	detail := fmt.Sprintf("service=%s period=%gs", d.name, per)
	if d.jitter > 0 {
		detail += fmt.Sprintf(" jitter=+-%g%%", d.jitter*100)
	} else {
		detail += " timer=exact"
	}
	if d.skip > 0 {
		detail += fmt.Sprintf(" missed=%g%%", d.skip*100)
	}
	if len(d.pattern) > 0 {
		detail += fmt.Sprintf(" pattern=%v", d.pattern)
	}
	p.tg = w.label(d.kind, detail)
	p.gate = serviceGate(h, d.apps)
	p.anchor = w.start + p.r.Int64N(p.period)
	if d.align {
		p.anchor = w.start + secs(p.r.uniform(0.3, 2.5))
	}
	p.t = p.anchor
	if on, _ := p.gate.at(p.t); !on {
		p.wake(p.gate.next(p.t))
	}
	return p
}

// serviceGate returns when a service on h can run.
func serviceGate(h *host, app bool) spans {
	if !app || !h.hasUser() || h.appsAlways {
		return h.online
	}
	if h.role == roleLaptop {
		return h.online
	}
	return workdays(h.present)
}

// workdays merges presence spans into one span per working day (the user's
// session from arrival to departure).
func workdays(s spans) spans {
	out := spans{}
	for _, x := range s {
		if n := len(out); n > 0 && x.from-out[n-1].to < 4*usPerH {
			out[n-1].to = x.to
			continue
		}
		out = append(out, x)
	}
	return out
}

// wake restarts the timers when the host comes online at t: overdue checks
// fire a little after wake-up.
func (p *periodic) wake(t int64) {
	if t == never {
		p.t = never
		return
	}
	_, end := p.gate.at(t)
	delay := secs(p.r.uniform(3, 90))
	if t+delay >= end {
		delay = (end - t) / 2
	}
	p.t = t + delay
	p.anchor = p.t
	p.k = 0
}

func (p *periodic) next() int64 { return p.t }

func (p *periodic) expand(g *gen) {
	t := p.t
	if !p.r.chance(p.d.skip) {
		p.check(g, t)
	}
	// Next check on the timer.
	d := p.d
	var cand int64
	switch {
	case len(d.pattern) > 0:
		p.k++
		if p.k == len(d.pattern) {
			p.k = 0
			p.anchor += p.period
		}
		cand = p.anchor + secs(d.pattern[p.k]) + secs(p.r.uniform(-1, 1)*d.jitter*float64(p.period)/1e6)
	case d.jitter == 0:
		p.k++
		cand = p.anchor + int64(p.k)*p.period + secs(p.r.uniform(0, 0.3))
	default:
		cand = t + int64(float64(p.period)*(1+p.r.uniform(-d.jitter, d.jitter)))
	}
	if cand <= t {
		cand = t + 1
	}
	on, end := p.gate.at(t)
	if on && cand < end {
		p.t = cand
		return
	}
	if !on {
		end = t
	}
	// The host went to sleep before the timer fired.
	reopen := p.gate.next(end)
	if reopen == never || cand <= reopen || d.onWake {
		p.wake(reopen)
		return
	}
	if ok, _ := p.gate.at(cand); ok {
		p.t = cand
		return
	}
	p.wake(p.gate.next(cand))
}

// check performs one check-in.
func (p *periodic) check(g *gen, t int64) {
	d, r := p.d, p.r
	n := r.between(d.burst[0], max(d.burst[0], d.burst[1]))
	ep := p.eps[0]
	if len(p.eps) > 1 {
		ep = pick(r, p.eps)
	}
	switch d.tr {
	case tHTTP:
		reqs := make([]httpReq, n)
		for i := range reqs {
			q := httpReq{method: d.req.method, uri: d.req.uris[i%len(d.req.uris)], ua: d.req.ua, status: 200,
				body: int64(r.between(d.req.body[0], d.req.body[1])), resp: int64(r.between(d.req.resp[0], d.req.resp[1])),
				mime: d.req.mime, think: r.uniform(0, 0.02)}
			if q.resp == 0 && q.method == "GET" {
				q.status = 304
			}
			reqs[i] = q
		}
		g.httpConn(p.h, r, t, ep, ep.name, reqs, p.tg)
	case tHTTPS:
		for i := 0; i < n; i++ {
			g.tlsConn(p.h, r, t, ep, tlsSession{
				sni: ep.name, up: int64(r.between(d.up[0], d.up[1])), down: int64(r.between(d.down[0], d.down[1])),
				dur: r.uniform(0.1, 2) + r.exp(3), resumed: r.chance(0.3), failed: r.chance(0.01), alpn: ep.port == 443,
			}, p.tg)
			t += secs(r.uniform(0.2, 8))
		}
	case tTCP, tUDP:
		proto := "tcp"
		dur := r.uniform(0.002, 0.05)
		if d.tr == tUDP {
			proto = "udp"
			dur = r.uniform(0.0005, 0.03)
		}
		for i := 0; i < n; i++ {
			g.rawConn(p.h, r, t, ep, proto, d.service, int64(r.between(d.up[0], d.up[1])), int64(r.between(d.down[0], d.down[1])), dur, p.tg)
			t += secs(r.uniform(0.05, 1))
		}
	}
}
