package sim

// This file turns sessions into log records the way Zeek would log them: a
// conn.log line for every connection plus the http.log lines of its
// requests or the ssl.log line of its handshake, all with one uid.

var dnsTag = &tag{label: Benign, kind: "benign-dns", detail: "lookups at the internal resolver"}

// rtt returns a round-trip time in seconds for the endpoint.
func (ep *endpoint) rtt(r *rng) float64 {
	if ep.local {
		return r.uniform(0.0003, 0.002)
	}
	base := 0.008 + float64(hashString(ep.addrs[0])%110)/1000
	return base * r.uniform(0.85, 1.3)
}

// resolve emits a DNS lookup for name unless the host has it cached, and
// returns the time at which the connection can start.
func (g *gen) resolve(h *host, r *rng, t int64, ep *endpoint) int64 {
	if ep.name == "" || ep.local {
		return t
	}
	if exp, ok := h.dnsCache[ep.name]; ok && exp > t {
		return t
	}
	ttl := []int64{60, 300, 300, 900, 3600}[hashString(ep.name)%5]
	h.dnsCache[ep.name] = t + ttl*usPerSec
	dur := r.uniform(0.001, 0.045)
	if r.chance(0.1) {
		dur += r.uniform(0.05, 0.3) // a cache miss at the resolver
	}
	ev := g.event(t, LogConn, dnsTag)
	ev.UID = r.zeekID('C')
	ev.SrcIP, ev.SrcPort = h.ip, 49152+r.IntN(16383)
	ev.DstIP, ev.DstPort, ev.Proto, ev.Service = resolverIP, 53, "udp", "dns"
	ev.Duration = dur
	ev.ReqBytes = int64(len(ep.name) + 18)
	ev.RespBytes = ev.ReqBytes + int64(r.between(16, 220))
	ev.ConnState, ev.History = "SF", "Dd"
	ev.OrigPkts, ev.RespPkts = 1, 1
	ev.LocalResp = true
	return t + secs(dur) + r.Int64N(2000)
}

// tcpHistory returns a conn_state and history for a completed TCP session.
func tcpHistory(r *rng) (state, history string) {
	switch x := r.IntN(100); {
	case x < 46:
		return "SF", "ShADadFf"
	case x < 62:
		return "SF", "ShADadfF"
	case x < 74:
		return "SF", "ShADdaFf"
	case x < 82:
		return "SF", "ShADadFfR"
	case x < 88:
		return "SF", "ShADdcaFf"
	case x < 93:
		return "RSTR", "ShADdar"
	case x < 97:
		return "RSTO", "ShADadR"
	default:
		return "S1", "ShADad"
	}
}

func packets(up, down int64, exchanges int) (orig, resp int64) {
	orig = 3 + up/1400 + down/2900 + int64(exchanges)
	resp = 2 + down/1400 + int64(exchanges)
	return orig, resp
}

// tcpConn emits the conn.log record of a TCP connection from h to ep.
func (g *gen) tcpConn(h *host, r *rng, t int64, ep *endpoint, addr string, sport int, uid, service, host string,
	up, down int64, dur float64, exchanges int, tg *tag) *Event {
	ev := g.event(t, LogConn, tg)
	ev.UID = uid
	ev.SrcIP, ev.SrcPort = h.ip, sport
	ev.DstIP, ev.DstPort, ev.Proto, ev.Service = addr, ep.port, "tcp", service
	ev.Host = host
	ev.Duration = dur
	ev.ReqBytes, ev.RespBytes = up, down
	ev.ConnState, ev.History = tcpHistory(r)
	ev.OrigPkts, ev.RespPkts = packets(up, down, exchanges)
	ev.LocalResp = ep.local
	return ev
}

// httpReq is one request/response exchange on an HTTP connection.
type httpReq struct {
	method, uri, referrer, ua, mime string
	status                          int
	body, resp                      int64
	// think is the pause in seconds before this request (after the
	// previous response); ignored for the first request.
	think float64
}

// httpConn emits one HTTP connection carrying reqs. hostHdr is the Host
// header (empty for none). It returns the connection's end.
func (g *gen) httpConn(h *host, r *rng, t int64, ep *endpoint, hostHdr string, reqs []httpReq, tg *tag) int64 {
	t = g.resolve(h, r, t, ep)
	addr := ep.addr(r)
	uid := r.zeekID('C')
	sport := h.ephemeral(r)
	rtt := ep.rtt(r)
	at := 1.5 * rtt // request after the handshake
	var up, down int64
	for i, q := range reqs {
		if i > 0 {
			at += q.think + r.uniform(0.0005, 0.004)
		}
		ev := g.event(t+secs(at), LogHTTP, tg)
		ev.UID = uid
		ev.SrcIP, ev.SrcPort, ev.DstIP, ev.DstPort, ev.Proto = h.ip, sport, addr, ep.port, "tcp"
		ev.Host = hostHdr
		ev.TransDepth = i + 1
		ev.Method, ev.URI, ev.Referrer, ev.UserAgent = q.method, q.uri, q.referrer, q.ua
		ev.StatusCode = q.status
		ev.ReqBytes, ev.RespBytes = q.body, q.resp
		if q.resp > 0 {
			ev.MimeType = q.mime
			ev.fuid = r.zeekID('F')
		}
		up += int64(len(q.uri)+len(q.ua)+len(hostHdr)+120+r.IntN(300)) + q.body
		down += int64(180+r.IntN(260)) + q.resp
		// Response time: server think time plus transfer.
		at += rtt + r.uniform(0.002, 0.08) + float64(q.resp)/4e6
	}
	linger := r.uniform(0.01, 0.2)
	if r.chance(0.5) {
		linger = r.uniform(1, 15) // keep-alive until the server's idle timeout
	}
	dur := at + linger
	g.tcpConn(h, r, t, ep, addr, sport, uid, "http", hostHdr, up, down, dur, len(reqs), tg)
	return t + secs(dur)
}

// tlsSession describes a TLS connection's application traffic.
type tlsSession struct {
	sni      string // server name sent; empty for none
	up, down int64  // application bytes each way
	dur      float64
	resumed  bool
	failed   bool // handshake not completed
	alpn     bool // client offers h2/http1.1
}

// tlsConn emits one TLS connection (conn.log + ssl.log). It returns the
// connection's end.
func (g *gen) tlsConn(h *host, r *rng, t int64, ep *endpoint, s tlsSession, tg *tag) int64 {
	if s.sni != "" {
		t = g.resolve(h, r, t, ep)
	}
	addr := ep.addr(r)
	uid := r.zeekID('C')
	sport := h.ephemeral(r)
	rtt := ep.rtt(r)

	ssl := g.event(t+secs(rtt*1.02+r.uniform(0.0001, 0.001)), LogSSL, tg)
	ssl.UID = uid
	ssl.SrcIP, ssl.SrcPort, ssl.DstIP, ssl.DstPort, ssl.Proto = h.ip, sport, addr, ep.port, "tcp"
	ssl.Host = s.sni
	ssl.Resumed = s.resumed
	up := int64(517 + r.IntN(120))
	down := int64(0)
	dur := s.dur
	if s.failed {
		ssl.Established = false
		dur = rtt*2 + r.uniform(0.001, 0.05)
		down = int64(r.IntN(2)) * int64(7+r.IntN(100))
	} else {
		ssl.Established = true
		ssl.TLSVersion, ssl.Cipher, ssl.Curve = ep.tlsVersion, ep.cipher, ep.curve
		if s.alpn && ep.h2 {
			ssl.NextProtocol = "h2"
		} else if s.alpn {
			ssl.NextProtocol = "http/1.1"
		}
		switch {
		case s.resumed:
			down = int64(150 + r.IntN(120))
			ssl.Curve = ""
		case ep.tlsVersion == "TLSv13":
			down = int64(2400 + r.IntN(2600)) // certificates encrypted: not logged
		default:
			down = int64(2900 + r.IntN(3200))
			ssl.Subject, ssl.Issuer = ep.subject, ep.issuer
			ssl.fuid = r.zeekID('F')
		}
		up += 80 + s.up
		down += s.down
		dur = max(dur, 2.2*rtt+0.0005) // at least the handshake
	}
	ev := g.tcpConn(h, r, t, ep, addr, sport, uid, "ssl", s.sni, up, down, dur, 2+int(s.up/800), tg)
	if s.failed {
		ev.ConnState, ev.History = "RSTR", "ShADdar"
		if down == 0 {
			ev.ConnState, ev.History = "RSTO", "ShADR"
		}
	}
	return t + secs(dur)
}

// rawConn emits a connection that Zeek logs only in conn.log (an opaque TCP
// protocol or UDP such as NTP). A named endpoint is resolved first; the
// name is not part of the record, so the flow is keyed by address and port.
func (g *gen) rawConn(h *host, r *rng, t int64, ep *endpoint, proto, service string, up, down int64, dur float64, tg *tag) {
	t = g.resolve(h, r, t, ep)
	addr := ep.addr(r)
	ev := g.event(t, LogConn, tg)
	ev.UID = r.zeekID('C')
	ev.SrcIP, ev.DstIP, ev.DstPort, ev.Proto, ev.Service = h.ip, addr, ep.port, proto, service
	ev.Duration = dur
	ev.ReqBytes, ev.RespBytes = up, down
	ev.LocalResp = ep.local
	if proto == "udp" {
		ev.SrcPort = h.ephemeral(r)
		if service == "ntp" && h.os == osLinux {
			ev.SrcPort = 123
		}
		ev.ConnState, ev.History = "SF", "Dd"
		ev.OrigPkts, ev.RespPkts = 1, 1
		return
	}
	ev.SrcPort = h.ephemeral(r)
	ev.ConnState, ev.History = tcpHistory(r)
	ev.OrigPkts, ev.RespPkts = packets(up, down, 2)
}
