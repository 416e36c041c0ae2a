package sidecar

import (
	"bytes"
	"encoding/csv"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/beacongrid/beacongrid/alert"
	"github.com/valyala/fastjson"
)

// Asset is one inventory entry: the context added as host.* to alerts
// whose source.ip it covers.
type Asset struct {
	Prefix      netip.Prefix // a single address is a /32 or /128
	Hostname    string
	Owner       string
	Criticality string
}

// Inventory maps source addresses to assets. An exact address wins over a
// prefix; among prefixes the longest wins. A nil *Inventory finds nothing.
type Inventory struct {
	exact    map[netip.Addr]*Asset
	prefixes []*Asset // longest first
}

// Len is the number of entries.
func (inv *Inventory) Len() int {
	if inv == nil {
		return 0
	}
	return len(inv.exact) + len(inv.prefixes)
}

// Lookup returns the asset for ip, or nil.
func (inv *Inventory) Lookup(ip netip.Addr) *Asset {
	if inv == nil || !ip.IsValid() {
		return nil
	}
	ip = ip.Unmap()
	if a := inv.exact[ip]; a != nil {
		return a
	}
	for _, a := range inv.prefixes {
		if a.Prefix.Contains(ip) {
			return a
		}
	}
	return nil
}

// LoadInventory reads an asset inventory: a JSON array of objects, or CSV
// with a header row, chosen by the file's first non-blank byte ('[' is
// JSON). Both have the columns (keys) ip, hostname, owner, criticality; ip
// is an address or a CIDR prefix and is required, the others are optional
// (at least one must be set). Unknown columns are an error, so a typo does
// not silently drop context. Errors name the file and the line (CSV) or
// entry (JSON).
func LoadInventory(path string) (*Inventory, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("inventory: %w", err)
	}
	var rows []map[string]string
	where := func(i int) string { return fmt.Sprintf("%s: entry %d", path, i+1) }
	if t := bytes.TrimSpace(b); len(t) > 0 && t[0] == '[' {
		dec := json.NewDecoder(bytes.NewReader(t))
		dec.DisallowUnknownFields()
		var entries []struct {
			IP          string `json:"ip"`
			Hostname    string `json:"hostname"`
			Owner       string `json:"owner"`
			Criticality string `json:"criticality"`
		}
		if err := dec.Decode(&entries); err != nil {
			return nil, fmt.Errorf("inventory %s: %w", path, err)
		}
		for _, e := range entries {
			rows = append(rows, map[string]string{"ip": e.IP, "hostname": e.Hostname, "owner": e.Owner, "criticality": e.Criticality})
		}
	} else {
		r := csv.NewReader(bytes.NewReader(b))
		r.Comment = '#'
		r.TrimLeadingSpace = true
		header, err := r.Read()
		if err != nil {
			return nil, fmt.Errorf("inventory %s: header: %w", path, err)
		}
		known := map[string]bool{"ip": true, "hostname": true, "owner": true, "criticality": true}
		for i, h := range header {
			header[i] = strings.ToLower(strings.TrimSpace(h))
			if !known[header[i]] {
				return nil, fmt.Errorf("inventory %s: unknown column %q (want ip, hostname, owner, criticality)", path, h)
			}
		}
		if !slices.Contains(header, "ip") {
			return nil, fmt.Errorf("inventory %s: no ip column", path)
		}
		for {
			rec, err := r.Read()
			if err == io.EOF {
				break
			}
			if err != nil {
				return nil, fmt.Errorf("inventory %s: %w", path, err)
			}
			row := map[string]string{}
			for i, v := range rec {
				row[header[i]] = strings.TrimSpace(v)
			}
			rows = append(rows, row)
		}
		line := func(i int) string { return fmt.Sprintf("%s: data row %d", path, i+1) }
		where = line
	}
	inv := &Inventory{exact: map[netip.Addr]*Asset{}}
	for i, row := range rows {
		p, err := parseAddrOrPrefix(row["ip"])
		if err != nil {
			return nil, fmt.Errorf("inventory %s: %w", where(i), err)
		}
		a := &Asset{Prefix: p, Hostname: row["hostname"], Owner: row["owner"], Criticality: strings.ToLower(row["criticality"])}
		if a.Hostname == "" && a.Owner == "" && a.Criticality == "" {
			return nil, fmt.Errorf("inventory %s: %s has no hostname, owner or criticality", where(i), row["ip"])
		}
		if p.IsSingleIP() {
			if _, dup := inv.exact[p.Addr()]; dup {
				return nil, fmt.Errorf("inventory %s: %s listed twice", where(i), p.Addr())
			}
			inv.exact[p.Addr()] = a
		} else {
			inv.prefixes = append(inv.prefixes, a)
		}
	}
	sort.SliceStable(inv.prefixes, func(i, j int) bool { return inv.prefixes[i].Prefix.Bits() > inv.prefixes[j].Prefix.Bits() })
	return inv, nil
}

func parseAddrOrPrefix(s string) (netip.Prefix, error) {
	s = strings.TrimSpace(s)
	if strings.Contains(s, "/") {
		p, err := netip.ParsePrefix(s)
		if err != nil {
			return netip.Prefix{}, fmt.Errorf("%q is not an address or CIDR prefix", s)
		}
		return p.Masked(), nil
	}
	a, err := netip.ParseAddr(s)
	if err != nil {
		return netip.Prefix{}, fmt.Errorf("%q is not an address or CIDR prefix", s)
	}
	a = a.Unmap()
	return netip.PrefixFrom(a, a.BitLen()), nil
}

// IOCSet holds threat-intelligence indicators: addresses, CIDR prefixes and
// domains, each with the feed (file) it came from. A nil *IOCSet matches
// nothing.
type IOCSet struct {
	addrs    map[netip.Addr]string
	prefixes []iocPrefix
	domains  map[string]string
	n        int
}

type iocPrefix struct {
	p    netip.Prefix
	feed string
}

// Len is the number of indicators.
func (s *IOCSet) Len() int {
	if s == nil {
		return 0
	}
	return s.n
}

// Match returns the indicators matching a destination and the feed of the
// first: the address (exact or in a prefix), and the domain or any parent
// domain of it ("evil.example" matches "a.b.evil.example").
func (s *IOCSet) Match(domain string, ip netip.Addr) (indicators []string, feed string) {
	if s == nil {
		return nil, ""
	}
	add := func(ind, f string) {
		if feed == "" {
			feed = f
		}
		indicators = append(indicators, ind)
	}
	if d := normDomain(domain); d != "" {
		for {
			if f, ok := s.domains[d]; ok {
				add(d, f)
			}
			i := strings.IndexByte(d, '.')
			if i < 0 {
				break
			}
			d = d[i+1:]
		}
	}
	if ip.IsValid() {
		ip = ip.Unmap()
		if f, ok := s.addrs[ip]; ok {
			add(ip.String(), f)
		}
		for _, p := range s.prefixes {
			if p.p.Contains(ip) {
				add(p.p.String(), p.feed)
			}
		}
	}
	return indicators, feed
}

func normDomain(d string) string {
	return strings.TrimSuffix(strings.ToLower(strings.TrimSpace(d)), ".")
}

// LoadIOCs reads indicator list files: one indicator per line (an IP
// address, a CIDR prefix or a domain name), blank lines and lines starting
// with # ignored, text after whitespace on a line ignored (a comment). The
// feed of an indicator is its file's base name without extension. Anything
// else on a line (a URL, a malformed address) is an error naming the file
// and line: a feed that half loads would hide its gaps.
func LoadIOCs(paths []string) (*IOCSet, error) {
	s := &IOCSet{addrs: map[netip.Addr]string{}, domains: map[string]string{}}
	for _, path := range paths {
		feed := strings.TrimSuffix(filepath.Base(path), filepath.Ext(path))
		b, err := os.ReadFile(path)
		if err != nil {
			return nil, fmt.Errorf("IOC list: %w", err)
		}
		for n, line := range strings.Split(string(b), "\n") {
			line = strings.TrimSpace(line)
			if line == "" || line[0] == '#' {
				continue
			}
			if i := strings.IndexAny(line, " \t"); i >= 0 {
				line = line[:i]
			}
			if err := s.add(line, feed); err != nil {
				return nil, fmt.Errorf("IOC list %s:%d: %w", path, n+1, err)
			}
		}
	}
	return s, nil
}

func (s *IOCSet) add(ind, feed string) error {
	if strings.ContainsAny(ind, ":/") || isDigitsAndDots(ind) {
		p, err := parseAddrOrPrefix(ind)
		if err != nil {
			return err
		}
		if p.IsSingleIP() {
			if _, dup := s.addrs[p.Addr()]; !dup {
				s.addrs[p.Addr()] = feed
				s.n++
			}
		} else {
			s.prefixes = append(s.prefixes, iocPrefix{p, feed})
			s.n++
		}
		return nil
	}
	d := normDomain(ind)
	if !validDomain(d) {
		return fmt.Errorf("%q is not an IP address, CIDR prefix or domain name", ind)
	}
	if _, dup := s.domains[d]; !dup {
		s.domains[d] = feed
		s.n++
	}
	return nil
}

func isDigitsAndDots(s string) bool {
	return strings.Trim(s, "0123456789.") == ""
}

func validDomain(d string) bool {
	if d == "" || len(d) > 253 || strings.HasPrefix(d, ".") || strings.Contains(d, "..") {
		return false
	}
	for _, r := range d {
		if !(r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || r == '-' || r == '.' || r == '_') {
			return false
		}
	}
	return true
}

// Sightings tracks, across every alert this sidecar delivers, when a
// destination and a flow were first alerted on and how many distinct
// sources alerted on a destination: the collector-wide first-seen and
// prevalence. Both only grow by a minimum and a set union, so delivering
// an alert twice changes nothing. Memory is bounded: beyond MaxDestinations
// destinations or MaxFlows flows, new ones are not tracked (counted by
// Untracked) and their alerts carry no first-seen.
type Sightings struct {
	mu        sync.Mutex
	dsts      map[string]*dstSighting
	flows     map[string]int64 // src\x00dst -> first unix ms
	untracked atomic.Int64
	dirty     bool
}

// Bounds of Sightings.
const (
	MaxDestinations       = 100_000
	MaxFlows              = 500_000
	MaxSourcesPerDst      = 10_000
	sightingsFile         = "sightings.json"
	sightingsSaveInterval = 30 * time.Second
)

type dstSighting struct {
	First   int64               `json:"first"` // unix ms
	Sources map[string]struct{} `json:"-"`
	List    []string            `json:"sources"`
}

// Sighting is what Sightings adds to an alert, as the "beacongrid" object.
type Sighting struct {
	DestinationFirstSeen time.Time `json:"destination_first_seen"`
	FlowFirstSeen        time.Time `json:"flow_first_seen"`
	DestinationSources   int       `json:"destination_sources"` // distinct sources alerting on the destination
}

// NewSightings returns empty Sightings.
func NewSightings() *Sightings {
	return &Sightings{dsts: map[string]*dstSighting{}, flows: map[string]int64{}}
}

// Untracked counts alerts whose destination or flow did not fit the bounds.
func (s *Sightings) Untracked() int64 { return s.untracked.Load() }

// Observe records an alert of src to dst at t and returns the sighting,
// false when it is not tracked.
func (s *Sightings) Observe(src, dst string, t time.Time) (Sighting, bool) {
	ms := t.UnixMilli()
	s.mu.Lock()
	defer s.mu.Unlock()
	d := s.dsts[dst]
	if d == nil {
		if len(s.dsts) >= MaxDestinations {
			s.untracked.Add(1)
			return Sighting{}, false
		}
		d = &dstSighting{First: ms, Sources: map[string]struct{}{}}
		s.dsts[dst] = d
		s.dirty = true
	}
	if ms < d.First {
		d.First, s.dirty = ms, true
	}
	if _, ok := d.Sources[src]; !ok && len(d.Sources) < MaxSourcesPerDst {
		d.Sources[src] = struct{}{}
		s.dirty = true
	}
	key := src + "\x00" + dst
	f, ok := s.flows[key]
	switch {
	case !ok && len(s.flows) >= MaxFlows:
		s.untracked.Add(1)
		return Sighting{}, false
	case !ok || ms < f:
		s.flows[key], f, s.dirty = ms, ms, true
	}
	return Sighting{
		DestinationFirstSeen: time.UnixMilli(d.First).UTC(),
		FlowFirstSeen:        time.UnixMilli(f).UTC(),
		DestinationSources:   len(d.Sources),
	}, true
}

type sightingsState struct {
	Destinations map[string]*dstSighting `json:"destinations"`
	Flows        map[string]int64        `json:"flows"`
}

// Save writes the state to path atomically, if it changed since the last
// Save or Load.
func (s *Sightings) Save(path string) error {
	s.mu.Lock()
	if !s.dirty {
		s.mu.Unlock()
		return nil
	}
	for _, d := range s.dsts {
		d.List = d.List[:0]
		for src := range d.Sources {
			d.List = append(d.List, src)
		}
	}
	// Marshalled under the lock: Observe changes the maps.
	b, err := json.Marshal(sightingsState{Destinations: s.dsts, Flows: s.flows})
	for _, d := range s.dsts {
		d.List = nil
	}
	s.dirty = false
	s.mu.Unlock()
	if err != nil {
		return fmt.Errorf("sightings: %w", err)
	}
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, b, 0o640); err != nil {
		return fmt.Errorf("sightings: %w", err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return fmt.Errorf("sightings: %w", err)
	}
	return nil
}

// LoadSightings reads state written by Save; a missing file is empty state.
func LoadSightings(path string) (*Sightings, error) {
	s := NewSightings()
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return s, nil
	}
	if err != nil {
		return nil, fmt.Errorf("sightings: %w", err)
	}
	var st sightingsState
	if err := json.Unmarshal(b, &st); err != nil {
		return nil, fmt.Errorf("sightings %s: %w (delete it to start afresh)", path, err)
	}
	for k, d := range st.Destinations {
		d.Sources = make(map[string]struct{}, len(d.List))
		for _, src := range d.List {
			d.Sources[src] = struct{}{}
		}
		d.List = nil
		s.dsts[k] = d
	}
	if st.Flows != nil {
		s.flows = st.Flows
	}
	return s, nil
}

// Enricher turns a spool line into the document indexed: it checks the
// line (a JSON object with a usable event.id) and appends host.* from the
// inventory, threat.* from the IOC lists and beacongrid.* from Sightings,
// each only when the line does not have that key already. The plugin's own
// fields, the rules' rule.severity and tags among them, are carried
// unchanged: the line is extended, not re-encoded, except that a legacy
// beacon.matrix array is rewritten in the string form of alert.Matrix.
// Safe for concurrent use; a nil *Enricher only checks (event.id and
// beacon.matrix) and converts.
type Enricher struct {
	inv       atomic.Pointer[Inventory]
	iocs      atomic.Pointer[IOCSet]
	sightings *Sightings
	parsers   fastjson.ParserPool
}

// NewEnricher returns an Enricher with the given sources; any may be nil.
func NewEnricher(inv *Inventory, iocs *IOCSet, s *Sightings) *Enricher {
	e := &Enricher{sightings: s}
	e.inv.Store(inv)
	e.iocs.Store(iocs)
	return e
}

// SetInventory and SetIOCs swap in a reloaded source; nil clears it.
func (e *Enricher) SetInventory(inv *Inventory) { e.inv.Store(inv) }
func (e *Enricher) SetIOCs(s *IOCSet)           { e.iocs.Store(s) }

// Enrichment says what Enrich added.
type Enrichment struct {
	Host, Threat, Sighting bool
}

var checkParsers fastjson.ParserPool

// Enrich returns the document id and source for line, or why the line
// cannot be a document.
func (e *Enricher) Enrich(line []byte) (id string, doc []byte, what Enrichment, err error) {
	pool := &checkParsers
	if e != nil {
		pool = &e.parsers
	}
	p := pool.Get()
	defer pool.Put(p)
	trimmed := bytes.TrimSpace(line)
	v, perr := p.ParseBytes(trimmed)
	if perr != nil {
		return "", nil, what, errors.New("not valid JSON")
	}
	if v.Type() != fastjson.TypeObject {
		return "", nil, what, errors.New("not a JSON object")
	}
	ev := v.Get("event")
	switch {
	case ev == nil || ev.Type() == fastjson.TypeNull:
		return "", nil, what, errors.New("no event.id")
	case ev.Type() != fastjson.TypeObject:
		return "", nil, what, fmt.Errorf("unexpected shape: event is a %s", ev.Type())
	}
	idv := ev.Get("id")
	switch {
	case idv == nil:
		return "", nil, what, errors.New("no event.id")
	case idv.Type() == fastjson.TypeNull:
		return "", nil, what, errors.New("event.id is empty")
	case idv.Type() != fastjson.TypeString:
		return "", nil, what, errors.New("event.id is not a string")
	}
	id = string(idv.GetStringBytes())
	switch {
	case strings.TrimSpace(id) == "":
		return "", nil, what, errors.New("event.id is empty")
	case len(id) > maxIDLen:
		return "", nil, what, fmt.Errorf("event.id is longer than %d bytes", maxIDLen)
	}
	if b := v.Get("beacon"); b != nil && b.Get("matrix") != nil {
		legacy, err := checkMatrix(b)
		if err != nil {
			return "", nil, what, err
		}
		if legacy {
			// Rewritten in the string form; the rest of the line is
			// re-encoded as fastjson holds it (same keys, order, numbers).
			line = v.MarshalTo(nil)
			trimmed = line
		}
	}
	if e == nil {
		return id, line, what, nil
	}
	src := string(v.GetStringBytes("source", "ip"))
	dstDomain := string(v.GetStringBytes("destination", "domain"))
	dstIP, _ := netip.ParseAddr(string(v.GetStringBytes("destination", "ip")))
	srcIP, _ := netip.ParseAddr(src)

	var extra []byte
	field := func(name string, val any) {
		b, err := json.Marshal(val)
		if err != nil {
			return
		}
		extra = append(extra, ',', '"')
		extra = append(extra, name...)
		extra = append(extra, '"', ':')
		extra = append(extra, b...)
	}
	if v.Get("host") == nil {
		if a := e.inv.Load().Lookup(srcIP); a != nil {
			field("host", alert.Host{Name: a.Hostname, Owner: a.Owner, Criticality: a.Criticality})
			what.Host = true
		}
	}
	if v.Get("threat") == nil {
		if inds, feed := e.iocs.Load().Match(dstDomain, dstIP); len(inds) > 0 {
			field("threat", alert.Threat{Indicator: inds, Feed: feed})
			what.Threat = true
		}
	}
	if e.sightings != nil && v.Get("beacongrid") == nil && src != "" {
		dst := normDomain(dstDomain)
		if dst == "" && dstIP.IsValid() {
			dst = dstIP.String()
		}
		ts, terr := time.Parse(time.RFC3339Nano, string(v.GetStringBytes("@timestamp")))
		if dst != "" && terr == nil {
			if s, ok := e.sightings.Observe(src, dst, ts); ok {
				field("beacongrid", s)
				what.Sighting = true
			}
		}
	}
	if len(extra) == 0 {
		return id, line, what, nil
	}
	// trimmed is an object: it ends with '}'. An empty object has no
	// event.id, so there is a field before the closing brace.
	doc = make([]byte, 0, len(trimmed)+len(extra))
	doc = append(doc, trimmed[:len(trimmed)-1]...)
	doc = append(doc, extra...)
	doc = append(doc, '}')
	return id, doc, what, nil
}

// checkMatrix checks the matrix of beacon: the string form of
// alert.Matrix, or null. A legacy array of numbers (a spool line from a
// plugin that wrote the matrix so) is replaced in beacon by the string
// form, and legacy is true; any other value is an error.
func checkMatrix(beacon *fastjson.Value) (legacy bool, err error) {
	mv := beacon.Get("matrix")
	switch mv.Type() {
	case fastjson.TypeNull:
		return false, nil
	case fastjson.TypeString:
		return false, alert.CheckMatrix(mv.GetStringBytes())
	case fastjson.TypeArray:
		arr, _ := mv.Array()
		if len(arr) != alert.MatrixLen {
			return false, fmt.Errorf("beacon.matrix: array of %d numbers, want %d", len(arr), alert.MatrixLen)
		}
		var m [alert.MatrixLen]uint16
		for i, x := range arr {
			n, err := x.Uint()
			if err != nil || n > 65535 {
				return false, fmt.Errorf("beacon.matrix: element %d (%s) is not a count 0..65535", i, shorten(x.String()))
			}
			m[i] = uint16(n)
		}
		s, err := alert.AppendMatrix(nil, m[:])
		if err != nil {
			return false, err
		}
		var a fastjson.Arena
		beacon.Set("matrix", a.NewStringBytes(s))
		return true, nil
	}
	return false, fmt.Errorf("beacon.matrix is a JSON %s, want a string", mv.Type())
}

// fileStamp identifies a file's version for change detection.
type fileStamp struct {
	size int64
	mod  time.Time
}

func stamps(paths []string) []fileStamp {
	out := make([]fileStamp, len(paths))
	for i, p := range paths {
		if fi, err := os.Stat(p); err == nil {
			out[i] = fileStamp{fi.Size(), fi.ModTime()}
		}
	}
	return out
}

// Reloader reloads the IOC lists and the inventory when their files change
// (size or modification time, checked every interval), the way an operator
// replaces them (write in place or rename over). A reload builds the whole
// new set first; if that fails, it is logged and counted and the old set
// stays in force.
type Reloader struct {
	e         *Enricher
	inventory string
	iocs      []string
	log       *slog.Logger
	m         *Metrics
	invStamp  []fileStamp
	iocStamp  []fileStamp
}

// NewReloader loads the files once (an error here stops the sidecar: a
// configured source that cannot be read at start is a mistake to fix) and
// returns the Enricher using them and a Reloader for later changes.
func NewReloader(inventory string, iocs []string, s *Sightings, m *Metrics, log *slog.Logger) (*Enricher, *Reloader, error) {
	r := &Reloader{inventory: inventory, iocs: iocs, log: log, m: m}
	var inv *Inventory
	var set *IOCSet
	var err error
	if inventory != "" {
		r.invStamp = stamps([]string{inventory})
		if inv, err = LoadInventory(inventory); err != nil {
			return nil, nil, err
		}
	}
	if len(iocs) > 0 {
		r.iocStamp = stamps(iocs)
		if set, err = LoadIOCs(iocs); err != nil {
			return nil, nil, err
		}
	}
	r.e = NewEnricher(inv, set, s)
	r.gauges()
	return r.e, r, nil
}

func (r *Reloader) gauges() {
	if r.m == nil {
		return
	}
	r.m.Assets.Set(float64(r.e.inv.Load().Len()))
	r.m.Indicators.Set(float64(r.e.iocs.Load().Len()))
}

// Check reloads what changed since the last Check.
func (r *Reloader) Check() {
	if r.inventory != "" {
		if st := stamps([]string{r.inventory}); !slices.Equal(st, r.invStamp) {
			r.invStamp = st
			inv, err := LoadInventory(r.inventory)
			r.result("inventory", err)
			if err == nil {
				r.e.SetInventory(inv)
				r.log.Info("inventory reloaded", "path", r.inventory, "assets", inv.Len())
			}
		}
	}
	if len(r.iocs) > 0 {
		if st := stamps(r.iocs); !slices.Equal(st, r.iocStamp) {
			r.iocStamp = st
			set, err := LoadIOCs(r.iocs)
			r.result("ioc", err)
			if err == nil {
				r.e.SetIOCs(set)
				r.log.Info("IOC lists reloaded", "files", len(r.iocs), "indicators", set.Len())
			}
		}
	}
	r.gauges()
}

func (r *Reloader) result(what string, err error) {
	res := "success"
	if err != nil {
		res = "failure"
		r.log.Error("reload failed; keeping the previous "+what, "err", err)
	}
	if r.m != nil {
		r.m.Reloads.WithLabelValues(what, res).Inc()
	}
}
