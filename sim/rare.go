package sim

import "time"

// Rare benign periodic traffic: each of these runs on one host only, so a
// detector cannot discount it as "everybody does this".
const (
	KindDashboard = "benign-dashboard"   // a wall/desk dashboard refreshing every 60 s, day and night
	KindIoT       = "benign-iot-checkin" // an IoT device posting to its vendor every 300 s
	KindBackup    = "benign-backup"      // a server's nightly backup upload at 02:00
	KindCronPoll  = "benign-cron-poll"   // a server's cron job polling an API every 5 min on the clock
	KindServerAPI = "benign-server-api"  // servers' irregular calls to package registries and cloud APIs
	KindBrowsing  = "benign-browsing"    // people browsing the web
	KindCertCheck = "benign-cert-check"  // OCSP/CRL fetches (also triggered by browsing)
	KindNiche     = "benign-niche-agent" // a niche vendor's updater or push channel on a few hosts
)

func (w *world) addRareServices(r *rng) {
	pickHost := func(ok func(*host) bool) *host {
		var cands []*host
		for _, h := range w.hosts {
			if ok(h) && !h.used {
				cands = append(cands, h)
			}
		}
		if len(cands) == 0 {
			return nil
		}
		h := pick(r, cands)
		h.used = true
		return h
	}
	if h := pickHost(func(h *host) bool { return h.role == roleDesktop && h.os == osWindows }); h != nil {
		d := &svcDef{kind: KindDashboard, name: "dashboard-refresh", tr: tHTTP,
			names: []string{"status." + madeUpName(r)}, prov: provHosting, port: 80,
			period: [2]float64{60, 60}, jitter: 0.0008, burst: [2]int{2, 4},
			req: reqTmpl{method: "GET", uris: []string{"/dashboard/ops", "/api/status.json", "/api/metrics?range=1h", "/api/alerts"}, resp: [2]int{800, 25000}, mime: "application/json"}}
		w.actors = append(w.actors, newPeriodic(w, h, d, d.names))
	}
	if h := pickHost(func(h *host) bool { return h.role == roleIoT }); h != nil {
		vendor := pick(r, []string{"thermolink", "camsafe", "smartlume", "airsense", "doorbird"})
		d := &svcDef{kind: KindIoT, name: vendor + "-checkin", tr: tHTTP,
			names: []string{"api." + vendor + "-cloud.com"}, prov: provAWS, port: 80,
			period: [2]float64{300, 300}, burst: [2]int{1, 1},
			req: reqTmpl{method: "POST", uris: []string{"/v2/device/checkin"}, ua: vendor + "-fw/2.4.1", body: [2]int{120, 180}, resp: [2]int{40, 60}, mime: "application/json"}}
		w.actors = append(w.actors, newPeriodic(w, h, d, d.names))
	}
	if h := pickHost(func(h *host) bool { return h.role == roleServer }); h != nil {
		d := &svcDef{kind: KindCronPoll, name: "cron-api-poll", tr: tHTTPS,
			names: []string{"api.github.com"}, prov: provHosting, port: 443, align: true,
			period: [2]float64{300, 300}, burst: [2]int{1, 1}, up: [2]int{300, 600}, down: [2]int{1200, 6000}}
		w.actors = append(w.actors, newPeriodic(w, h, d, d.names))
	}
	if h := pickHost(func(h *host) bool { return h.role == roleServer }); h != nil {
		w.actors = append(w.actors, newBackup(w, h))
	}
	w.addNicheAgents(r, pickHost)
}

// addNicheAgents installs software few hosts run: a niche vendor's update
// checker (exact timer, 10 min to 2 h), licence check or push channel (a
// keepalive to a bare address every 5 to 30 min). On a lone host, or in a
// network where only one or two machines run it, prevalence cannot tell
// such traffic from C2; its timer (exact, with missed beats) can.
func (w *world) addNicheAgents(r *rng, pickHost func(func(*host) bool) *host) {
	n := max(1, len(w.hosts)/12)
	for i := 0; i < n; i++ {
		h := pickHost(func(h *host) bool { return h.role != roleIoT })
		if h == nil {
			return
		}
		vendor := madeUpName(r)
		var d *svcDef
		switch r.IntN(3) {
		case 0:
			d = &svcDef{kind: KindNiche, name: vendor + "-update", tr: tHTTP,
				names: []string{"update." + vendor + ".com"}, prov: provHosting, port: 80,
				periods: []float64{600, 1200, 1800, 3600, 3600, 7200}, skip: r.uniform(0.05, 0.3), burst: [2]int{1, 2},
				req: reqTmpl{method: "GET", uris: []string{"/v1/update.ver", "/latest.json"}, ua: vendor + "-updater/3.1", resp: [2]int{200, 4000}, mime: "application/octet-stream"}}
		case 1:
			d = &svcDef{kind: KindNiche, name: vendor + "-licence", tr: tHTTPS,
				names: []string{"licence." + vendor + ".com"}, prov: provAWS, port: 443,
				periods: []float64{900, 1200, 1680, 1800, 3600}, skip: r.uniform(0.05, 0.3), burst: [2]int{1, 2}, up: [2]int{300, 900}, down: [2]int{400, 3000}}
		default:
			port := pick(r, []int{443, 8883, 5223})
			d = &svcDef{kind: KindNiche, name: vendor + "-push", tr: tTCP,
				names: []string{"push." + vendor + ".com"}, prov: provHosting, port: port,
				periods: []float64{300, 300, 600, 900, 1800}, skip: r.uniform(0.05, 0.3), burst: [2]int{1, 1}, up: [2]int{60, 4000}, down: [2]int{40, 9000}}
		}
		w.actors = append(w.actors, newPeriodic(w, h, d, d.names))
	}
}

// backup is a nightly job uploading to object storage: many large uploads
// in a row for an hour or so, starting at 02:00 local time.
type backup struct {
	w   *world
	h   *host
	r   *rng
	ep  *endpoint
	tg  *tag
	day int
	t   int64 // next upload
	end int64 // end of tonight's job
}

func newBackup(w *world, h *host) *backup {
	b := &backup{w: w, h: h, r: newRNG(w.cfg.Seed, "backup "+h.ip)}
	b.ep = newEndpoint("backup-"+b.r.alnum(6)+".s3.eu-central-1.amazonaws.com", provAWS, 443)
	b.tg = w.label(KindBackup, "nightly upload at 02:00")
	b.schedule()
	return b
}

func (b *backup) schedule() {
	for ; b.day < b.w.cfg.Days+1; b.day++ {
		y, m, d := b.w.cfg.Start.Date()
		at := time.Date(y, m, d+b.day, 2, 0, 0, 0, b.w.cfg.Start.Location()).UnixMicro() + secs(b.r.uniform(1, 20))
		if at >= b.w.start {
			b.t = at
			b.end = at + secs(b.r.uniform(1800, 5400))
			b.day++
			return
		}
	}
	b.t = never
}

func (b *backup) next() int64 { return b.t }

func (b *backup) expand(g *gen) {
	r := b.r
	up := int64(r.between(5<<20, 64<<20))
	dur := float64(up)/r.uniform(8e6, 30e6) + r.uniform(0.2, 1)
	end := g.tlsConn(b.h, r, b.t, b.ep, tlsSession{sni: b.ep.name, up: up, down: int64(r.between(400, 900)), dur: dur, alpn: false}, b.tg)
	b.t = end + secs(r.uniform(0.05, 3))
	if b.t >= b.end {
		b.schedule()
	}
}

// serverAPI is a server's irregular outbound traffic: package downloads,
// container pulls, cloud API calls, webhooks. Poisson arrivals, busier by
// day.
type serverAPI struct {
	w   *world
	h   *host
	r   *rng
	eps []*endpoint
	pop *weighted
	tg  *tag
	t   int64
}

var serverAPIDests = []struct {
	host string
	prov *provider
}{
	{"api.github.com", provHosting}, {"pypi.org", provFastly}, {"files.pythonhosted.org", provFastly},
	{"registry-1.docker.io", provAWS}, {"production.cloudflare.docker.com", provCloudflare},
	{"s3.eu-central-1.amazonaws.com", provAWS}, {"sts.amazonaws.com", provAWS}, {"hooks.slack.com", provAWS},
	{"login.microsoftonline.com", provMicrosoft}, {"api.sendgrid.com", provCloudflare},
	{"proxy.golang.org", provGoogle}, {"registry.npmjs.org", provCloudflare}, {"objects.githubusercontent.com", provFastly},
}

func newServerAPI(w *world, h *host) *serverAPI {
	s := &serverAPI{w: w, h: h, r: newRNG(w.cfg.Seed, "server-api "+h.ip), tg: w.label(KindServerAPI, "irregular API and registry calls")}
	for _, d := range serverAPIDests {
		s.eps = append(s.eps, newEndpoint(d.host, d.prov, 443))
	}
	s.pop = newWeighted(zipfWeights(len(s.eps), 1.1))
	s.t = w.start
	s.advance()
	return s
}

func (s *serverAPI) next() int64 { return s.t }

func (s *serverAPI) advance() {
	hour := time.UnixMicro(s.t).In(s.w.cfg.Start.Location()).Hour()
	mean := 1800.0
	if hour >= 8 && hour < 19 {
		mean = 600
	}
	s.t += secs(s.r.exp(mean)) + 1
}

func (s *serverAPI) expand(g *gen) {
	r := s.r
	ep := s.eps[s.pop.sample(r)]
	t := s.t
	for n := r.between(1, 4); n > 0; n-- {
		down := int64(r.lognormal(20000, 1.8))
		end := g.tlsConn(s.h, r, t, ep, tlsSession{sni: ep.name, up: int64(r.between(300, 3000)), down: down,
			dur: 0.05 + float64(down)/5e6 + r.uniform(0, 1), resumed: r.chance(0.4), alpn: true}, s.tg)
		t = end + secs(r.uniform(0.01, 0.5))
	}
	s.advance()
}
