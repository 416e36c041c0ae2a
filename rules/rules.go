// Package rules holds the operator's rules: allowlists, thresholds per
// source group, severity and tags, and field mappings. A Set is built whole
// and validated by Load/Parse, then never mutated: readers share it through
// an atomic pointer and a reload swaps the pointer once.
//
// Every method of *Set is nil-safe: a nil Set means "no rules" (model
// threshold, nothing allowlisted, the default field mapping).
package rules

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"os"
	"strings"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/beacongrid/beacongrid/fields"
)

// File is the YAML schema of a rules file (docs/rules.md).
type File struct {
	Version int `yaml:"version"`
	// Threshold overrides the model's calibrated threshold (0..1).
	Threshold float64 `yaml:"threshold"`
	// Allow silences alerts on matching flows.
	Allow []AllowEntry `yaml:"allow"`
	// Groups tune detection per source group; the first matching group wins.
	Groups []Group `yaml:"groups"`
	// Fields adds record keys to the built-in Zeek and ECS mappings.
	Fields map[string][]string `yaml:"fields"`
}

// AllowEntry matches flows by source and/or destination.
type AllowEntry struct {
	// Source is an IP or CIDR; empty matches any source.
	Source string `yaml:"source"`
	// Destination is an exact domain, "*.example.com" (example.com and every
	// subdomain), an IP or a CIDR; empty matches any destination.
	Destination string    `yaml:"destination"`
	Reason      string    `yaml:"reason"`
	Expires     time.Time `yaml:"expires"`
}

// Group applies settings to sources in its CIDRs.
type Group struct {
	Name      string   `yaml:"name"`
	Sources   []string `yaml:"sources"`
	Threshold float64  `yaml:"threshold"`
	// MinActive is the fewest active minutes before a flow can alert.
	MinActive int      `yaml:"min_active_minutes"`
	Severity  string   `yaml:"severity"`
	Tags      []string `yaml:"tags"`
}

// Set is a validated, immutable rule set.
type Set struct {
	file    File
	allow   []allow
	groups  []group
	mapping fields.Mapping
}

type allow struct {
	src     []netip.Prefix
	dst     dstMatch
	reason  string
	expires time.Time
}

type dstMatch struct {
	any    bool
	exact  string
	suffix string // ".example.com"
	pfx    netip.Prefix
	isPfx  bool
}

type group struct {
	Group
	nets []netip.Prefix
}

// Load reads and validates a rules file.
func Load(path string) (*Set, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("rules: %w", err)
	}
	s, err := Parse(b)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return s, nil
}

var validSeverity = map[string]bool{"": true, "low": true, "medium": true, "high": true, "critical": true}

// Parse validates a rules document and returns every problem found.
func Parse(b []byte) (*Set, error) {
	var f File
	dec := yaml.NewDecoder(bytes.NewReader(b))
	dec.KnownFields(true)
	if err := dec.Decode(&f); err != nil && !errors.Is(err, io.EOF) {
		return nil, fmt.Errorf("rules: %w", err)
	}
	var errs []error
	bad := func(format string, a ...any) { errs = append(errs, fmt.Errorf(format, a...)) }
	if f.Version != 0 && f.Version != 1 {
		bad("version: %d is not supported (use 1)", f.Version)
	}
	if f.Threshold < 0 || f.Threshold > 1 {
		bad("threshold: %v is outside 0..1", f.Threshold)
	}
	s := &Set{file: f, mapping: fields.Default()}
	for i, a := range f.Allow {
		e := allow{reason: a.Reason, expires: a.Expires}
		if a.Source == "" && a.Destination == "" {
			bad("allow[%d]: give a source, a destination or both", i)
		}
		if a.Source != "" {
			p, err := prefix(a.Source)
			if err != nil {
				bad("allow[%d].source: %v", i, err)
			}
			e.src = []netip.Prefix{p}
		}
		d, err := parseDst(a.Destination)
		if err != nil {
			bad("allow[%d].destination: %v", i, err)
		}
		e.dst = d
		s.allow = append(s.allow, e)
	}
	for i, g := range f.Groups {
		gg := group{Group: g}
		if len(g.Sources) == 0 {
			bad("groups[%d] (%s): sources is empty", i, g.Name)
		}
		for _, src := range g.Sources {
			p, err := prefix(src)
			if err != nil {
				bad("groups[%d] (%s).sources: %v", i, g.Name, err)
			}
			gg.nets = append(gg.nets, p)
		}
		if g.Threshold < 0 || g.Threshold > 1 {
			bad("groups[%d] (%s).threshold: %v is outside 0..1", i, g.Name, g.Threshold)
		}
		if g.MinActive < 0 {
			bad("groups[%d] (%s).min_active_minutes: must not be negative", i, g.Name)
		}
		if !validSeverity[g.Severity] {
			bad("groups[%d] (%s).severity: %q is not one of low, medium, high, critical", i, g.Name, g.Severity)
		}
		s.groups = append(s.groups, gg)
	}
	var extra fields.Mapping
	for k, keys := range f.Fields {
		slot := -1
		for i, n := range fields.SlotNames {
			if n == k {
				slot = i
			}
		}
		if slot < 0 {
			bad("fields.%s: unknown slot (one of %s)", k, strings.Join(fields.SlotNames[:], ", "))
			continue
		}
		extra[slot] = keys
	}
	s.mapping = fields.Merge(extra, fields.Default())
	if len(errs) > 0 {
		return nil, fmt.Errorf("rules: %w", errors.Join(errs...))
	}
	return s, nil
}

func prefix(s string) (netip.Prefix, error) {
	if strings.Contains(s, "/") {
		p, err := netip.ParsePrefix(s)
		return p.Masked(), err
	}
	a, err := netip.ParseAddr(s)
	if err != nil {
		return netip.Prefix{}, err
	}
	return netip.PrefixFrom(a, a.BitLen()), nil
}

func parseDst(s string) (dstMatch, error) {
	s = strings.ToLower(strings.TrimSpace(s))
	switch {
	case s == "":
		return dstMatch{any: true}, nil
	case strings.HasPrefix(s, "*."):
		return dstMatch{suffix: s[1:], exact: s[2:]}, nil
	case strings.Contains(s, "*"):
		return dstMatch{}, fmt.Errorf("%q: a wildcard is only allowed as a leading \"*.\"", s)
	}
	if p, err := prefix(s); err == nil {
		return dstMatch{pfx: p, isPfx: true}, nil
	}
	return dstMatch{exact: strings.TrimSuffix(s, ".")}, nil
}

func (d dstMatch) match(dst string) bool {
	switch {
	case d.any:
		return true
	case d.isPfx:
		a, err := netip.ParseAddrPort(dst)
		if err != nil {
			return false
		}
		return d.pfx.Contains(a.Addr())
	case d.suffix != "":
		return dst == d.exact || strings.HasSuffix(dst, d.suffix)
	default:
		return dst == d.exact
	}
}

// Allowed reports whether an allowlist entry in force at now covers the
// flow, and its reason.
func (s *Set) Allowed(src, dst string, now time.Time) (string, bool) {
	if s == nil {
		return "", false
	}
	var a netip.Addr
	for _, e := range s.allow {
		if !e.expires.IsZero() && now.After(e.expires) {
			continue
		}
		if len(e.src) > 0 {
			if !a.IsValid() {
				a, _ = netip.ParseAddr(src)
			}
			if !e.src[0].Contains(a) {
				continue
			}
		}
		if e.dst.match(dst) {
			return e.reason, true
		}
	}
	return "", false
}

func (s *Set) group(src string) *group {
	if s == nil || len(s.groups) == 0 {
		return nil
	}
	a, err := netip.ParseAddr(src)
	if err != nil {
		return nil
	}
	for i := range s.groups {
		for _, p := range s.groups[i].nets {
			if p.Contains(a) {
				return &s.groups[i]
			}
		}
	}
	return nil
}

// Threshold returns the threshold for src, if the rules set one.
func (s *Set) Threshold(src string) (float64, bool) {
	if g := s.group(src); g != nil && g.Threshold > 0 {
		return g.Threshold, true
	}
	if s != nil && s.file.Threshold > 0 {
		return s.file.Threshold, true
	}
	return 0, false
}

// MinActive returns the fewest active minutes for src to alert (0: no rule).
func (s *Set) MinActive(src string) int {
	if g := s.group(src); g != nil {
		return g.MinActive
	}
	return 0
}

// Severity returns the severity the rules give alerts from src ("" for the model's).
func (s *Set) Severity(src, dst string) string {
	if g := s.group(src); g != nil {
		return g.Severity
	}
	return ""
}

// Tags returns the tags the rules give alerts from src.
func (s *Set) Tags(src, dst string) []string {
	if g := s.group(src); g != nil {
		return g.Tags
	}
	return nil
}

// Mapping returns the field mapping: the built-in presets plus the rules' keys.
func (s *Set) Mapping() fields.Mapping {
	if s == nil {
		return fields.Default()
	}
	return s.mapping
}
