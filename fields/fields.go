// Package fields turns a log record into the one event the detector counts:
// when it happened, who sent it, and where it went. A Mapping names which
// record keys feed each slot; presets (Preset) cover Zeek, ECS, Squid and
// other web proxies, and the common firewalls.
//
// An Event's byte slices point into the record it was read from (a Fluent
// Bit chunk, a line of a log file): they are valid only until that record's
// buffer is released, and the Event must be Reset before reuse.
package fields

import (
	"bytes"
	"encoding/binary"
	"errors"
	"math"
	"math/bits"
	"net/netip"
	"strconv"
	"time"
	"unsafe"
)

// Slots: the parts of an event a record can supply.
const (
	Time    = iota // event time: epoch seconds (int, float or text) or RFC 3339 text
	Src            // source IP
	Domain         // destination domain (HTTP Host, TLS SNI, ECS destination.domain)
	DstIP          // destination IP
	DstPort        // destination port
	Size           // request size in bytes
	Service        // Zeek conn service (to skip connections the http/ssl logs already carry)
	URL            // request URL (proxy logs): its host is the domain when no domain key is set
	NumSlots
)

// SlotNames names the slots as rules files and docs spell them.
var SlotNames = [NumSlots]string{"time", "source", "domain", "destination_ip", "destination_port", "bytes", "service", "url"}

// Mapping lists, per slot, the record keys (dotted paths) that feed it, in
// priority order: when a record has several, the first listed wins.
type Mapping [NumSlots][]string

// Merge returns a mapping with the keys of a first, then those of b.
func Merge(a, b Mapping) Mapping {
	var m Mapping
	for i := range m {
		m[i] = appendUnique(append([]string(nil), a[i]...), b[i]...)
	}
	return m
}

func appendUnique(dst []string, keys ...string) []string {
outer:
	for _, k := range keys {
		for _, d := range dst {
			if d == k {
				continue outer
			}
		}
		dst = append(dst, k)
	}
	return dst
}

// Validate reports a mapping that cannot make a flow.
func (m Mapping) Validate() error {
	if len(m[Src]) == 0 {
		return errors.New("fields: no key maps the source")
	}
	if len(m[Domain]) == 0 && len(m[DstIP]) == 0 {
		return errors.New("fields: no key maps the destination (domain or destination_ip)")
	}
	return nil
}

// Slots returns the mapping as a slot -> keys table (for key matchers).
func (m Mapping) Slots() [][]string { return m[:] }

// Event is one parsed record. Byte slices alias the record's buffer.
type Event struct {
	Sec     int64 // Unix seconds; valid when HasTime
	HasTime bool
	Src     []byte
	Domain  []byte
	DstIP   []byte
	DstPort int
	Size    int64 // -1 when unknown
	Service []byte
	URL     []byte
	prio    [NumSlots]int8 // priority of the alias that set each slot (lower wins)
}

// Reset clears e for the next record.
func (e *Event) Reset() {
	// Cleared in place, then the two non-zero fields: building the value
	// and copying it over e costs twice the stores.
	*e = Event{}
	e.Size, e.prio = -1, noClaims
}

// noClaims is prio with no slot claimed.
var noClaims = [NumSlots]int8{math.MaxInt8, math.MaxInt8, math.MaxInt8, math.MaxInt8, math.MaxInt8, math.MaxInt8, math.MaxInt8, math.MaxInt8}

// ErrType is returned when a value has the wrong type for its slot.
var ErrType = errors.New("fields: value has the wrong type")

// Claim reports whether alias number prio of slot may set it (no alias
// listed earlier already did) and records the claim.
func (e *Event) Claim(slot, prio int) bool {
	if prio >= int(e.prio[slot]) {
		return false
	}
	e.prio[slot] = int8(min(prio, math.MaxInt8-1))
	return true
}

// SetText sets slot from a text value.
func (e *Event) SetText(slot int, v []byte) error {
	switch slot { // the commonest slots inline, the others in setText
	case Src:
		e.Src = v
	case Domain:
		e.Domain = v
	default:
		return e.setText(slot, v)
	}
	return nil
}

func (e *Event) setText(slot int, v []byte) error {
	if slot == DstIP { // the commonest of the rest, before the switch's tests
		e.DstIP = v
		return nil
	}
	switch slot {
	case Time:
		sec, err := parseTime(v)
		if err != nil {
			return err
		}
		e.Sec, e.HasTime = sec, true
	case Src:
		e.Src = v
	case Domain:
		e.Domain = v
	case DstIP:
		e.DstIP = v
	case DstPort:
		n, err := strconv.ParseUint(bstr(v), 10, 16)
		if err != nil {
			return ErrType
		}
		e.DstPort = int(n)
	case Size:
		n, err := strconv.ParseInt(bstr(v), 10, 64)
		if err != nil {
			return ErrType
		}
		e.Size = n
	case Service:
		e.Service = v
	case URL:
		e.URL = v
	}
	return nil
}

// SetInt sets slot from an integer value.
func (e *Event) SetInt(slot int, v int64) error {
	switch slot {
	case Time:
		e.Sec, e.HasTime = v, true
	case DstPort:
		if v < 0 || v > 65535 {
			return ErrType
		}
		e.DstPort = int(v)
	case Size:
		e.Size = v
	default:
		return ErrType
	}
	return nil
}

// SetFloat sets slot from a float value.
func (e *Event) SetFloat(slot int, v float64) error {
	if slot == Time && v >= 0 && v <= 1e12 { // the usual, epoch seconds, as setFloat sets them
		e.Sec, e.HasTime = int64(v), true
		return nil
	}
	return e.setFloat(slot, v)
}

func (e *Event) setFloat(slot int, v float64) error {
	if math.IsNaN(v) || math.IsInf(v, 0) {
		return ErrType
	}
	switch slot {
	case Time:
		if v < -1e12 || v > 1e12 {
			return ErrType
		}
		e.Sec, e.HasTime = int64(math.Floor(v)), true
	case DstPort:
		return e.SetInt(slot, int64(v))
	case Size:
		e.Size = int64(v)
	default:
		return ErrType
	}
	return nil
}

// SkipServices lists Zeek conn services whose connections the http and ssl
// logs already carry (with their domain): such conn records are not counted
// again.
var SkipServices = [][]byte{[]byte("http"), []byte("ssl")}

// Flow writes the flow's source and destination into buf (reused) and
// returns them. The destination is the domain when the record names one
// (lowercased, without port or trailing dot), else the host of its URL
// when that is a name, else ip:port. ok is false when
// the record cannot make a flow: no valid source IP, no destination, or a
// conn record for a service the other logs carry.
func (e *Event) Flow(buf []byte) (src, dst, out []byte, ok bool) {
	if len(e.Service) > 0 {
		for _, s := range SkipServices {
			if containsToken(e.Service, s) {
				return nil, nil, buf, false
			}
		}
	}
	if isIPv4(e.Src) { // canonical already: copied as it is
		buf = appendShort(buf[:0], e.Src)
	} else {
		a, err := netip.ParseAddr(bstr(e.Src))
		if err != nil {
			return nil, nil, buf, false
		}
		buf = a.WithZone("").AppendTo(buf[:0])
	}
	n := len(buf)
	d, domainIP := e.Domain, []byte(nil)
	if len(d) == len(e.DstIP) && len(e.URL) == 0 && bytes.Equal(d, e.DstIP) && isIPv4(d) {
		// The usual Host header naming the server's address (and no URL
		// whose host could name the server): that address with the port is
		// the destination, as cleanDomainIP and the branch below find at
		// greater cost.
		buf = appendPort(append(appendShort(buf, d), ':'), e.DstPort)
		return buf[:n:n], buf[n:], buf, true
	}
	lower := false
	if plainDomain(d) { // the usual: a clean lower-case name or an IPv4 address
		if d[len(d)-1]-'0' <= 9 && isIPv4(d) {
			d, domainIP = nil, d
		}
	} else {
		d, domainIP = cleanDomainIP(d)
		lower = true
	}
	if len(d) == 0 && len(e.URL) > 0 {
		d, lower = cleanDomain(urlHost(e.URL)), true
	}
	buf = appendShort(buf, d)
	if lower {
		lowerASCII(buf[n:])
	}
	if len(d) == 0 {
		ipText, port := e.DstIP, e.DstPort
		if len(ipText) == 1 && ipText[0] == '-' { // unset, as Zeek and Squid write it
			ipText = nil
		}
		if len(e.URL) > 0 && (port == 0 || len(ipText) == 0) {
			h, p := urlAddr(e.URL)
			if port == 0 {
				port = p
			}
			if len(ipText) == 0 {
				ipText = h
			}
		}
		// The destination IP is often the domain value just found to be
		// an IPv4 address (a Host header naming the server's address).
		if bytes.Equal(ipText, domainIP) && len(domainIP) > 0 || isIPv4(ipText) {
			buf = appendPort(append(appendShort(buf, ipText), ':'), port)
		} else {
			ip, err := netip.ParseAddr(bstr(ipText))
			if err != nil {
				return nil, nil, buf, false
			}
			buf = netip.AddrPortFrom(ip.WithZone(""), uint16(port)).AppendTo(buf)
		}
	}
	return buf[:n:n], buf[n:], buf, true
}

// plainDomain reports whether cleanDomainIP would return d unchanged (as
// the name, or as the IPv4 address when it is one) and d has no upper-case
// letter: 1 to 253 bytes, not "-", ends that need no trimming, no '[' first,
// no dot last, and no byte in ':' to 'Z' (the colon, ";<=>?@" and the
// upper-case letters), eight bytes at a time.
func plainDomain(d []byte) bool {
	const ones, high, low7 = 0x0101010101010101, 0x8080808080808080, 0x7f7f7f7f7f7f7f7f
	n := len(d)
	if n == 0 || n > 253 {
		return false
	}
	if first, last := d[0], d[n-1]; first-'!' >= 0x7f-'!' || last-'!' >= 0x7f-'!' || first == '[' || last == '.' || n == 1 && first == '-' {
		return false
	}
	var w uint64 // bytes of d, eight at a time
	switch {
	case n >= 8:
		for i := 0; i < n-8; i += 8 {
			w = binary.LittleEndian.Uint64(d[i:])
			if a := w & low7; (a+(0x80-':')*ones)&^(a+(0x80-'Z'-1)*ones)&^w&high != 0 {
				return false
			}
		}
		w = binary.LittleEndian.Uint64(d[n-8:])
	case n >= 4: // two words of four, overlapping
		w = uint64(binary.LittleEndian.Uint32(d)) | uint64(binary.LittleEndian.Uint32(d[n-4:]))<<32
	default:
		for _, c := range d {
			w = w<<8 | uint64(c)
		}
	}
	a := w & low7
	return (a+(0x80-':')*ones)&^(a+(0x80-'Z'-1)*ones)&^w&high == 0
}

// lowerASCII lower-cases the ASCII letters of b in place, eight bytes at a
// time.
func lowerASCII(b []byte) {
	const high, low7 = 0x8080808080808080, 0x7f7f7f7f7f7f7f7f
	n := len(b)
	if n < 8 {
		for i, c := range b {
			if c-'A' < 26 {
				b[i] = c + ('a' - 'A')
			}
		}
		return
	}
	for i := 0; ; i += 8 {
		if i > n-8 { // the last word overlaps the one before: lower-casing twice changes nothing
			i = n - 8
		}
		w := binary.LittleEndian.Uint64(b[i:])
		a := w & low7
		up := (a + (0x80-'A')*0x0101010101010101) &^ (a + (0x80-'Z'-1)*0x0101010101010101) &^ w & high
		binary.LittleEndian.PutUint64(b[i:], w|up>>2) // 0x80 >> 2 is 'a' - 'A'
		if i == n-8 {
			break
		}
	}
}

// appendShort is append(buf, s...) without runtime.memmove's call for
// the 8 to 16 bytes of most addresses and names: two 8-byte copies, the
// second overlapping the first.
func appendShort(buf, s []byte) []byte {
	n, m := len(buf), len(s)
	if m < 8 || m > 16 || cap(buf)-n < m {
		return append(buf, s...)
	}
	buf = buf[:n+m]
	// Array copies, not binary's Uint64 and PutUint64, whose inlined calls
	// each leave a NOP in the code.
	*(*[8]byte)(buf[n:]) = *(*[8]byte)(s)
	*(*[8]byte)(buf[n+m-8:]) = *(*[8]byte)(s[m-8:])
	return buf
}

// appendPort appends uint16(port) in decimal, as strconv.AppendUint would.
func appendPort(buf []byte, port int) []byte {
	p := uint(uint16(port))
	switch {
	case p < 10:
		return append(buf, byte('0'+p))
	case p < 100:
		return append(buf, byte('0'+p/10), byte('0'+p%10))
	case p < 1000:
		return append(buf, byte('0'+p/100), byte('0'+p/10%10), byte('0'+p%10))
	}
	return strconv.AppendUint(buf, uint64(p), 10)
}

// cleanDomain strips a port, a trailing dot and surrounding space; it
// returns nil for values that are not domain names (empty, "-", an IP).
// It runs on every record: space is trimmed only when an end byte could be
// space (ASCII space or control, or a byte of a multi-byte character), and
// the IPv4 check only runs on a name that ends with a digit
// (TestCleanDomainMatchesReference holds it to the plain definition).
func cleanDomain(d []byte) []byte {
	d, _ = cleanDomainIP(d)
	return d
}

// cleanDomainIP is cleanDomain that also returns the IPv4 address the
// value held, if that is why it returned nil.
func cleanDomainIP(d []byte) (name, ip4 []byte) {
	if n := len(d); n > 0 && (d[0] <= ' ' || d[0] >= 0x80 || d[n-1] <= ' ' || d[n-1] >= 0x80) {
		d = bytes.TrimSpace(d)
	}
	if len(d) > 0 && d[0] == '[' { // [v6]:port
		return nil, nil
	}
	if i := bytes.IndexByte(d, ':'); i >= 0 && bytes.IndexByte(d[i+1:], ':') < 0 { // one colon: host:port
		d = d[:i]
	}
	if n := len(d); n > 0 && d[n-1] == '.' {
		d = d[:n-1]
	}
	n := len(d)
	if n == 0 || (n == 1 && d[0] == '-') || n > 253 {
		return nil, nil
	}
	if d[n-1]-'0' <= 9 && isIPv4(d) {
		return nil, d
	}
	return d, nil
}

// isIPv4 reports whether b is an IPv4 address in the dotted-decimal form
// netip.ParseAddr accepts (four decimal fields 0-255 without leading
// zeros), which is also its canonical text. It is netip's rule without its
// cost on the hot path, where the flow key needs only the yes or no
// (TestIsIPv4MatchesNetip holds it to netip). It classifies eight bytes at
// a time (every byte a digit or a dot, where the dots are), then checks the
// four fields between the three dots.
func isIPv4(b []byte) bool {
	n := len(b)
	if n < 7 || n > 15 {
		return false
	}
	if n == 7 {
		return isIPv4Seven(b)
	}
	// Bytes 0-7 and n-8..n-1 (overlapping): together all n.
	lo := binary.LittleEndian.Uint64(b)
	dlo, ok := digitsAndDots(lo)
	if !ok {
		return false
	}
	dhi, ok := digitsAndDots(binary.LittleEndian.Uint64(b[n-8:]))
	if !ok {
		return false
	}
	dots := dlo | dhi<<(n-8)       // bit i: b[i] is a dot
	d1 := dots & (dots - 1)        // without the first dot
	d2 := d1 & (d1 - 1)            // without the first two
	if d2 == 0 || d2&(d2-1) != 0 { // not three dots
		return false
	}
	p1, p2, p3 := bits.TrailingZeros64(dots), bits.TrailingZeros64(d1), bits.TrailingZeros64(d2)
	// The first field from lo: reading its bytes again would make the
	// compiler assemble lo from single bytes.
	f1 := bits.ReverseBytes32(uint32(lo) << 8) // b[0]<<16 | b[1]<<8 | b[2]
	first := p1 == 1 || p1 == 2 && byte(lo) != '0' || p1 == 3 && byte(lo) != '0' && f1 <= '2'<<16|'5'<<8|'5'
	return first && octet(b, p1+1, p2) && octet(b, p2+1, p3) && octet(b, p3+1, n)
}

// isIPv4Seven is isIPv4 of 7 bytes: d.d.d.d. Inlined into isIPv4, which
// then makes no call and needs no stack frame (the flow key went from 443
// to 427 instructions per record, build/bench/instructions.sh); its byte
// reads no longer break up isIPv4's 8-byte loads.
func isIPv4Seven(b []byte) bool {
	return len(b) == 7 && b[0]-'0' <= 9 && b[1] == '.' && b[2]-'0' <= 9 && b[3] == '.' && b[4]-'0' <= 9 && b[5] == '.' && b[6]-'0' <= 9
}

// digitsAndDots reports whether the 8 bytes of w (little-endian) are all
// ASCII digits or dots, and returns a bit per byte that is a dot (bit i for
// byte i).
func digitsAndDots(w uint64) (dots uint64, ok bool) {
	const ones, high, low7 = 0x0101010101010101, 0x8080808080808080, 0x7f7f7f7f7f7f7f7f
	// For bytes below 0x80, adding to them carries into no other; a byte
	// of 0x80 or more fails the check below whatever its carries did.
	dot := ^((w ^ '.'*ones) + low7) & high               // 0x80 where the byte is '.'
	notDigit := ((w ^ '0'*ones) + (0x80-10)*ones) & high // 0x80 where the byte xor '0' is 10 or more
	if (w|notDigit&^dot)&high != 0 {
		return 0, false
	}
	return ((dot >> 7) * 0x0102040810204080) >> 56, true
}

// octet reports whether the digits b[s:e] are a decimal 0-255 without a
// leading zero.
// It reads b[s:e] without bounds checks: 0 <= s and e <= len(b).
func octet(b []byte, s, e int) bool {
	// The address b[s] is formed only when the field is not empty (s < e):
	// a field at the end may start at len(b).
	switch e - s {
	case 1:
		return true
	case 2:
		return *(*byte)(unsafe.Add(unsafe.Pointer(unsafe.SliceData(b)), s)) != '0'
	case 3: // "100" to "255", compared as text
		p := unsafe.Add(unsafe.Pointer(unsafe.SliceData(b)), s)
		c0 := *(*byte)(p)
		return c0 != '0' && uint(c0)<<16|uint(*(*byte)(unsafe.Add(p, 1)))<<8|uint(*(*byte)(unsafe.Add(p, 2))) <= '2'<<16|'5'<<8|'5'
	}
	return false
}

// urlHost returns the host[:port] of a URL: "http://user@Host:8080/p?q"
// gives "Host:8080"; a proxy CONNECT target "host:443" is returned as it is.
func urlHost(u []byte) []byte {
	if i := bytes.Index(u, []byte("://")); i >= 0 {
		u = u[i+3:]
	}
	for i, c := range u {
		if c == '/' || c == '?' || c == '#' {
			u = u[:i]
			break
		}
	}
	if i := bytes.LastIndexByte(u, '@'); i >= 0 {
		u = u[i+1:]
	}
	return u
}

// urlAddr splits the host of a URL into host and port: "[2001:db8::1]:8443"
// gives "2001:db8::1" and 8443; without a port, http and https URLs give 80
// and 443, others 0.
func urlAddr(u []byte) (host []byte, port int) {
	h := urlHost(u)
	switch {
	case bytes.HasPrefix(u, []byte("https://")):
		port = 443
	case bytes.HasPrefix(u, []byte("http://")):
		port = 80
	}
	var p []byte
	if len(h) > 0 && h[0] == '[' {
		i := bytes.IndexByte(h, ']')
		if i < 0 {
			return nil, port
		}
		if rest := h[i+1:]; len(rest) > 1 && rest[0] == ':' {
			p = rest[1:]
		}
		h = h[1:i]
	} else if i := bytes.LastIndexByte(h, ':'); i >= 0 && bytes.IndexByte(h[:i], ':') < 0 {
		h, p = h[:i], h[i+1:]
	}
	if len(p) > 0 {
		n := 0
		for _, c := range p {
			if c < '0' || c > '9' || n > 65535 {
				return h, port
			}
			n = n*10 + int(c-'0')
		}
		if n <= 65535 {
			port = n
		}
	}
	return h, port
}

func containsToken(list, tok []byte) bool {
	for len(list) > 0 {
		i := bytes.IndexByte(list, ',')
		var t []byte
		if i < 0 {
			t, list = list, nil
		} else {
			t, list = list[:i], list[i+1:]
		}
		if bytes.Equal(bytes.TrimSpace(t), tok) {
			return true
		}
	}
	return false
}

// parseTime reads epoch seconds ("1419360720.123456", "1419360720") or an
// RFC 3339 timestamp.
func parseTime(v []byte) (int64, error) {
	if len(v) == 0 {
		return 0, ErrType
	}
	if c := v[0]; c >= '0' && c <= '9' && bytes.IndexByte(v, '-') < 0 {
		f, err := strconv.ParseFloat(bstr(v), 64)
		if err != nil || f > 1e12 {
			return 0, ErrType
		}
		return int64(math.Floor(f)), nil
	}
	t, err := time.Parse(time.RFC3339Nano, bstr(v))
	if err != nil {
		return 0, ErrType
	}
	return t.Unix(), nil
}

// bstr views b as a string without copying; the string must not outlive b.
func bstr(b []byte) string { return unsafe.String(unsafe.SliceData(b), len(b)) }
