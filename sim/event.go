package sim

import (
	"net/netip"
	"strconv"
	"strings"
	"time"
)

// Log names, the values of Event.Log.
const (
	LogHTTP = "http"
	LogConn = "conn"
	LogSSL  = "ssl"
)

// Labels, the values of Event.Label and of truth.csv's label column.
const (
	Malicious = "malicious"
	Benign    = "benign"
)

// Event is one log record: a line of http.log, conn.log or ssl.log. Every
// HTTP and TLS connection produces one conn event and one or more http
// events or one ssl event sharing its UID; DNS, NTP and raw TCP traffic
// produce conn events only.
type Event struct {
	Time time.Time // Zeek's ts: connection start (conn, ssl) or request time (http)
	Log  string    // LogHTTP, LogConn or LogSSL
	UID  string    // Zeek connection uid, shared by the records of one connection

	SrcIP   string
	SrcPort int
	DstIP   string
	DstPort int
	Proto   string // "tcp" or "udp"

	// Host is the HTTP Host header (http) or the TLS SNI (ssl, and the conn
	// event of an HTTP/TLS connection); it may be empty.
	Host string

	// http.log
	Method     string
	URI        string
	Referrer   string
	UserAgent  string
	StatusCode int
	TransDepth int
	MimeType   string // response MIME type, empty if no body

	// conn.log; for http and ssl events ReqBytes/RespBytes are the request
	// and response body lengths of that record.
	Service   string // "http", "ssl", "dns", "ntp" or empty
	Duration  float64
	ReqBytes  int64
	RespBytes int64
	ConnState string
	History   string
	OrigPkts  int64
	RespPkts  int64
	LocalResp bool // destination inside the monitored network

	// ssl.log
	TLSVersion   string
	Cipher       string
	Curve        string
	Resumed      bool
	Established  bool
	NextProtocol string
	Subject      string
	Issuer       string

	// Ground truth of the event's own activity. A flow's label in
	// truth.csv is malicious if any of its events is.
	Label  string // Malicious or Benign
	Kind   string // e.g. "c2-jittered", "benign-browsing"
	Detail string // parameters of the activity, e.g. "interval=300s jitter=0.30"

	fuid string // file id of the response body (http)
}

// FlowKey returns the destination part of the flow an event belongs to, as
// the detector keys flows: the HTTP Host or TLS SNI when present and not an
// IP literal, else "ip:port" (see the function FlowKey). The conn event of an HTTP or TLS connection
// carries the same Host as its http/ssl records, so all records of one
// connection fall into the same flow.
func (ev *Event) FlowKey() string { return FlowKey(ev.Host, ev.DstIP, ev.DstPort) }

// FlowKey builds a flow destination key from a host name (HTTP Host or TLS
// SNI, possibly empty) and the responder's address and port: the name,
// lower-cased and without a port or trailing dot, or, when there is no name
// or it is an IP address literal, "ip:port" ("[v6]:port" for IPv6).
func FlowKey(host, ip string, port int) string {
	if name := cleanName(host); name != "" {
		return name
	}
	if a, err := netip.ParseAddr(ip); err == nil && a.Is6() {
		return netip.AddrPortFrom(a, uint16(port)).String()
	}
	return ip + ":" + strconv.Itoa(port)
}

// cleanName normalises a host name for a flow key; it returns "" for an
// empty name or an IP literal.
func cleanName(h string) string {
	h = strings.TrimSpace(h)
	if h == "" || h[0] == '[' {
		return ""
	}
	if i := strings.LastIndexByte(h, ':'); i >= 0 && !strings.Contains(h[:i], ":") {
		h = h[:i]
	}
	h = strings.TrimSuffix(h, ".")
	if h == "" || h == "-" {
		return ""
	}
	if digitsAndDots(h) || strings.Contains(h, ":") {
		if _, err := netip.ParseAddr(h); err == nil {
			return ""
		}
	}
	for i := 0; i < len(h); i++ {
		if 'A' <= h[i] && h[i] <= 'Z' {
			return strings.ToLower(h)
		}
	}
	return h
}

// digitsAndDots is a cheap test for a possible IPv4 literal (a failed
// netip.ParseAddr allocates its error).
func digitsAndDots(s string) bool {
	for i := 0; i < len(s); i++ {
		if (s[i] < '0' || s[i] > '9') && s[i] != '.' {
			return false
		}
	}
	return true
}

// Field is one key/value pair of a Zeek log record, the value as Zeek's TSV
// writer prints it ("-" unset, "(empty)" an empty set).
type Field struct {
	Key   string
	Value string
}

// Fields returns the event's Zeek log record (http.log, conn.log or ssl.log
// according to ev.Log) with Zeek's field names in Zeek's column order.
func (ev Event) Fields() []Field {
	cols := columnsFor(ev.Log)
	out := make([]Field, len(cols))
	var buf []byte
	for i, c := range cols {
		buf = c.value(buf[:0], &ev)
		out[i] = Field{Key: c.name, Value: string(buf)}
	}
	return out
}

// column is one field of a Zeek log: name, Zeek type and how to print it.
type column struct {
	name  string
	typ   string
	value func(dst []byte, ev *Event) []byte
}

const (
	unsetField = "-"
	emptyField = "(empty)"
)

var (
	commonCols = []column{
		{"ts", "time", func(d []byte, e *Event) []byte { return appendTime(d, e.Time) }},
		{"uid", "string", func(d []byte, e *Event) []byte { return appendString(d, e.UID) }},
		{"id.orig_h", "addr", func(d []byte, e *Event) []byte { return appendString(d, e.SrcIP) }},
		{"id.orig_p", "port", func(d []byte, e *Event) []byte { return strconv.AppendInt(d, int64(e.SrcPort), 10) }},
		{"id.resp_h", "addr", func(d []byte, e *Event) []byte { return appendString(d, e.DstIP) }},
		{"id.resp_p", "port", func(d []byte, e *Event) []byte { return strconv.AppendInt(d, int64(e.DstPort), 10) }},
	}

	httpCols = append(append([]column(nil), commonCols...), []column{
		{"trans_depth", "count", func(d []byte, e *Event) []byte { return strconv.AppendInt(d, int64(e.TransDepth), 10) }},
		{"method", "string", func(d []byte, e *Event) []byte { return appendString(d, e.Method) }},
		{"host", "string", func(d []byte, e *Event) []byte { return appendString(d, e.Host) }},
		{"uri", "string", func(d []byte, e *Event) []byte { return appendString(d, e.URI) }},
		{"referrer", "string", func(d []byte, e *Event) []byte { return appendString(d, e.Referrer) }},
		{"user_agent", "string", func(d []byte, e *Event) []byte { return appendString(d, e.UserAgent) }},
		{"request_body_len", "count", func(d []byte, e *Event) []byte { return strconv.AppendInt(d, e.ReqBytes, 10) }},
		{"response_body_len", "count", func(d []byte, e *Event) []byte { return strconv.AppendInt(d, e.RespBytes, 10) }},
		{"status_code", "count", func(d []byte, e *Event) []byte { return appendCount(d, e.StatusCode) }},
		{"status_msg", "string", func(d []byte, e *Event) []byte { return appendString(d, statusMsg(e.StatusCode)) }},
		{"info_code", "count", unset},
		{"info_msg", "string", unset},
		{"filename", "string", unset},
		{"tags", "set[enum]", empty},
		{"username", "string", unset},
		{"password", "string", unset},
		{"proxied", "set[string]", unset},
		{"orig_fuids", "vector[string]", unset},
		{"orig_mime_types", "vector[string]", unset},
		{"resp_fuids", "vector[string]", func(d []byte, e *Event) []byte { return appendString(d, e.fuid) }},
		{"resp_mime_types", "vector[string]", func(d []byte, e *Event) []byte { return appendString(d, e.MimeType) }},
	}...)

	connCols = append(append([]column(nil), commonCols...), []column{
		{"proto", "enum", func(d []byte, e *Event) []byte { return appendString(d, e.Proto) }},
		{"service", "string", func(d []byte, e *Event) []byte { return appendString(d, e.Service) }},
		{"duration", "interval", func(d []byte, e *Event) []byte { return strconv.AppendFloat(d, e.Duration, 'f', 6, 64) }},
		{"orig_bytes", "count", func(d []byte, e *Event) []byte { return strconv.AppendInt(d, e.ReqBytes, 10) }},
		{"resp_bytes", "count", func(d []byte, e *Event) []byte { return strconv.AppendInt(d, e.RespBytes, 10) }},
		{"conn_state", "string", func(d []byte, e *Event) []byte { return appendString(d, e.ConnState) }},
		{"local_orig", "bool", func(d []byte, e *Event) []byte { return append(d, 'T') }},
		{"local_resp", "bool", func(d []byte, e *Event) []byte { return appendBool(d, e.LocalResp) }},
		{"missed_bytes", "count", func(d []byte, e *Event) []byte { return append(d, '0') }},
		{"history", "string", func(d []byte, e *Event) []byte { return appendString(d, e.History) }},
		{"orig_pkts", "count", func(d []byte, e *Event) []byte { return strconv.AppendInt(d, e.OrigPkts, 10) }},
		{"orig_ip_bytes", "count", func(d []byte, e *Event) []byte {
			return strconv.AppendInt(d, e.ReqBytes+e.OrigPkts*ipOverhead(e.Proto), 10)
		}},
		{"resp_pkts", "count", func(d []byte, e *Event) []byte { return strconv.AppendInt(d, e.RespPkts, 10) }},
		{"resp_ip_bytes", "count", func(d []byte, e *Event) []byte {
			return strconv.AppendInt(d, e.RespBytes+e.RespPkts*ipOverhead(e.Proto), 10)
		}},
		{"tunnel_parents", "set[string]", empty},
	}...)

	sslCols = append(append([]column(nil), commonCols...), []column{
		{"version", "string", func(d []byte, e *Event) []byte { return appendString(d, e.TLSVersion) }},
		{"cipher", "string", func(d []byte, e *Event) []byte { return appendString(d, e.Cipher) }},
		{"curve", "string", func(d []byte, e *Event) []byte { return appendString(d, e.Curve) }},
		{"server_name", "string", func(d []byte, e *Event) []byte { return appendString(d, e.Host) }},
		{"resumed", "bool", func(d []byte, e *Event) []byte { return appendBool(d, e.Resumed) }},
		{"last_alert", "string", unset},
		{"next_protocol", "string", func(d []byte, e *Event) []byte { return appendString(d, e.NextProtocol) }},
		{"established", "bool", func(d []byte, e *Event) []byte { return appendBool(d, e.Established) }},
		{"cert_chain_fuids", "vector[string]", func(d []byte, e *Event) []byte { return appendString(d, e.fuid) }},
		{"client_cert_chain_fuids", "vector[string]", func(d []byte, e *Event) []byte {
			if e.fuid == "" {
				return append(d, unsetField...)
			}
			return append(d, emptyField...)
		}},
		{"subject", "string", func(d []byte, e *Event) []byte { return appendString(d, e.Subject) }},
		{"issuer", "string", func(d []byte, e *Event) []byte { return appendString(d, e.Issuer) }},
		{"client_subject", "string", unset},
		{"client_issuer", "string", unset},
		{"validation_status", "string", func(d []byte, e *Event) []byte {
			if e.Issuer == "" {
				return append(d, unsetField...)
			}
			return append(d, "ok"...)
		}},
		{"notary.first_seen", "count", unset},
		{"notary.last_seen", "count", unset},
		{"notary.times_seen", "count", unset},
		{"notary.valid", "bool", unset},
	}...)
)

func columnsFor(log string) []column {
	switch log {
	case LogHTTP:
		return httpCols
	case LogSSL:
		return sslCols
	default:
		return connCols
	}
}

// ColumnNames returns the Zeek field names of a log ("http", "conn", "ssl")
// in column order.
func ColumnNames(log string) []string {
	cols := columnsFor(log)
	out := make([]string, len(cols))
	for i, c := range cols {
		out[i] = c.name
	}
	return out
}

func unset(d []byte, _ *Event) []byte { return append(d, unsetField...) }
func empty(d []byte, _ *Event) []byte { return append(d, emptyField...) }

func ipOverhead(proto string) int64 {
	if proto == "udp" {
		return 28
	}
	return 52 // IPv4 + TCP with timestamps
}

// appendTime prints seconds since the epoch with microseconds, like Zeek.
func appendTime(d []byte, t time.Time) []byte {
	us := t.UnixMicro()
	sec, frac := us/1e6, us%1e6
	if frac < 0 {
		sec, frac = sec-1, frac+1e6
	}
	d = strconv.AppendInt(d, sec, 10)
	d = append(d, '.')
	var b [6]byte
	for i := 5; i >= 0; i-- {
		b[i] = byte('0' + frac%10)
		frac /= 10
	}
	return append(d, b[:]...)
}

func appendBool(d []byte, b bool) []byte {
	if b {
		return append(d, 'T')
	}
	return append(d, 'F')
}

func appendCount(d []byte, n int) []byte {
	if n <= 0 {
		return append(d, unsetField...)
	}
	return strconv.AppendInt(d, int64(n), 10)
}

// appendString prints a string field: "-" when unset (empty), with
// non-printable bytes, tabs and backslashes escaped as \xHH like Zeek.
func appendString(d []byte, s string) []byte {
	if s == "" {
		return append(d, unsetField...)
	}
	if s == unsetField || s == emptyField {
		// A literal value that would read back as unset/empty.
		d = append(d, `\x`...)
		d = appendHex(d, s[0])
		return append(d, s[1:]...)
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c < 0x20 || c == 0x7f || c == '\\' {
			d = append(d, `\x`...)
			d = appendHex(d, c)
			continue
		}
		d = append(d, c)
	}
	return d
}

func appendHex(d []byte, c byte) []byte {
	const hexd = "0123456789abcdef"
	return append(d, hexd[c>>4], hexd[c&15])
}

func statusMsg(code int) string {
	switch code {
	case 200:
		return "OK"
	case 204:
		return "No Content"
	case 206:
		return "Partial Content"
	case 301:
		return "Moved Permanently"
	case 302:
		return "Found"
	case 304:
		return "Not Modified"
	case 400:
		return "Bad Request"
	case 403:
		return "Forbidden"
	case 404:
		return "Not Found"
	case 500:
		return "Internal Server Error"
	case 503:
		return "Service Unavailable"
	}
	return ""
}
