// Package rules holds the operator's rules: allow and deny lists, thresholds
// and minimum observation per source group, severity and tags, field
// mappings (global and per Fluent Bit tag), and detection and suppression
// expressions over a scored flow's features (github.com/expr-lang/expr,
// compiled once at load). docs/rules.md describes the file.
//
// A Set is built whole and validated by Load/Parse, then never mutated:
// readers share it through an atomic pointer and a reload (Watcher) swaps
// the pointer once. Every error names its line (file:line:column when
// loaded from a file). Every method of *Set is nil-safe: a nil Set means "no
// rules" (model threshold, nothing allowlisted, the default field mapping).
package rules

import (
	"bytes"
	"cmp"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"os"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/expr-lang/expr"
	"github.com/expr-lang/expr/vm"
	"gopkg.in/yaml.v3"

	"github.com/beacongrid/beacongrid/fields"
)

// File is the YAML schema of a rules file (docs/rules.md).
type File struct {
	// Version is the schema version; required, 1.
	Version int `yaml:"version"`
	// Threshold overrides the model's calibrated threshold (0 < t <= 1).
	Threshold float64 `yaml:"threshold"`
	// WideShare overrides the detector's share of sources (0 < s <= 1)
	// above which a destination is a service most hosts use, whose alerts
	// the detector silences (detect.DefaultWideShare; 1 turns it off).
	WideShare float64 `yaml:"wide_share"`
	// Allow silences alerts on matching flows.
	Allow []ListEntry `yaml:"allow"`
	// Deny makes matching flows alert whenever they are scored, whatever
	// the model's score or the flow's activity; deny wins over allow and
	// suppression.
	Deny []ListEntry `yaml:"deny"`
	// Groups tune detection per source group; the first matching group wins.
	Groups []Group `yaml:"groups"`
	// Fields adds record keys to the built-in Zeek and ECS mappings.
	Fields map[string][]string `yaml:"fields"`
	// Inputs add record keys for chunks of matching Fluent Bit tags, tried
	// before Fields and the built-in keys; the first matching input wins.
	Inputs []Input `yaml:"inputs"`
	// Detect raises an alert when an expression holds for a scored flow the
	// model did not flag.
	Detect []ExprRule `yaml:"detect"`
	// Suppress silences an alert when an expression holds.
	Suppress []ExprRule `yaml:"suppress"`
}

// ListEntry matches flows by source and/or destination.
type ListEntry struct {
	// Source is an IP or CIDR; empty matches any source.
	Source string `yaml:"source"`
	// Destination is an exact domain, "*.example.com" (example.com itself
	// and every subdomain), an IP or a CIDR; empty matches any destination.
	Destination string `yaml:"destination"`
	Reason      string `yaml:"reason"`
	// Expires, when set, ends the entry (RFC 3339 time or a date).
	Expires Expiry `yaml:"expires"`
	// Severity and Tags (deny entries only) go into the alert.
	Severity string   `yaml:"severity"`
	Tags     []string `yaml:"tags"`
}

// Expiry is an optional end time, written as RFC 3339 or YYYY-MM-DD (UTC
// midnight).
type Expiry struct{ time.Time }

// UnmarshalYAML reads an Expiry, refusing other text with its line.
func (e *Expiry) UnmarshalYAML(n *yaml.Node) error {
	if n.Kind == yaml.ScalarNode {
		for _, layout := range []string{time.RFC3339Nano, "2006-01-02"} {
			if t, err := time.Parse(layout, n.Value); err == nil {
				e.Time = t
				return nil
			}
		}
	}
	return &yaml.TypeError{Errors: []string{fmt.Sprintf("line %d: expires: %q is not a time (use RFC 3339, e.g. 2027-01-31T00:00:00Z, or 2027-01-31)", n.Line, n.Value)}}
}

// Group applies settings to sources in its CIDRs.
type Group struct {
	Name    string   `yaml:"name"`
	Sources []string `yaml:"sources"`
	// Threshold replaces the file's (or model's) threshold for the group.
	Threshold float64 `yaml:"threshold"`
	// MinActive, when set, replaces the plugin's min_active_minutes for the
	// group: the fewest active minutes before a flow is scored.
	MinActive int      `yaml:"min_active_minutes"`
	Severity  string   `yaml:"severity"`
	Tags      []string `yaml:"tags"`
}

// Input is a field mapping for the chunks of matching Fluent Bit tags.
type Input struct {
	// Tag is a Fluent Bit tag pattern; "*" matches any run of characters.
	Tag string `yaml:"tag"`
	// Preset names built-in presets (fields.Preset, comma-separated) that
	// replace the plugin's for these chunks; empty keeps the plugin's.
	Preset string              `yaml:"preset"`
	Fields map[string][]string `yaml:"fields"`
}

// ExprRule is a named boolean expression over a Flow.
type ExprRule struct {
	Name     string   `yaml:"name"`
	Expr     string   `yaml:"expr"`
	Reason   string   `yaml:"reason"`
	Severity string   `yaml:"severity"`
	Tags     []string `yaml:"tags"`
}

// Flow is what expressions see of a scored flow: the names in its expr tags.
type Flow struct {
	Source        string  `expr:"source"`
	Destination   string  `expr:"destination"` // domain, or ip:port ([v6]:port)
	DestinationIP bool    `expr:"destination_is_ip"`
	Group         string  `expr:"group"`     // name of the source's group, "" if none
	Score         float64 `expr:"score"`     // model probability
	Threshold     float64 `expr:"threshold"` // threshold in force for the flow
	PeriodS       float64 `expr:"period"`    // seconds between requests (median gap)
	Jitter        float64 `expr:"jitter"`
	ActiveMinutes int     `expr:"active_minutes"`
	Requests      int     `expr:"requests"`
	Prevalence    int     `expr:"prevalence"`     // sources that reach the destination
	Sources       int     `expr:"sources"`        // sources tracked in all
	OnlineMinutes int     `expr:"online_minutes"` // minutes the source sent anything
	// PrevalenceShare is the detector's prevalence_share feature: the share
	// of sources that reach the destination (at least 20 counted).
	PrevalenceShare float64 `expr:"prevalence_share"`

	// vm runs the expressions (reused: a Flow kept by its caller, as the
	// detector does, costs no VM per evaluation). Not safe for concurrent
	// use: one Flow per goroutine.
	vm vm.VM
}

// ExprNames lists the names an expression may use.
var ExprNames = []string{"source", "destination", "destination_is_ip", "group", "score", "threshold",
	"period", "jitter", "active_minutes", "requests", "prevalence", "sources", "online_minutes", "prevalence_share"}

// Set is a validated, immutable rule set.
type Set struct {
	file     File
	src      []byte
	version  string
	allow    entryList
	deny     entryList
	groups   []group
	extra    fields.Mapping // the file's own keys
	mapping  fields.Mapping // extra, then fields.Default()
	inputs   []input
	detect   programs
	suppress programs
	warnings []Error
	// evalErrors counts expression runs that failed (taken as false).
	evalErrors *atomic.Int64
}

type entry struct {
	src      netip.Prefix
	hasSrc   bool
	dst      dstMatch
	reason   string
	expires  time.Time
	severity string
	tags     []string
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

type input struct {
	tag       string
	extra     fields.Mapping // the input's keys, then the file's
	preset    fields.Mapping // the input's presets; valid when hasPreset
	hasPreset bool
}

type program struct {
	ExprRule
	prog *vm.Program
}

// programs are a list's expressions, each compiled alone (for its errors
// and as a fallback) and all together into one program that returns the
// index of the first that holds, or len(list): one VM run per list instead
// of one per expression.
type programs struct {
	list []program
	all  *vm.Program
}

// compileAll builds the combined program. Each expression sits in
// parentheses on lines of its own, so a trailing comment cannot swallow
// what follows.
func compileAll(list []program) (*vm.Program, error) {
	if len(list) == 0 {
		return nil, nil
	}
	var b strings.Builder
	for i, p := range list {
		fmt.Fprintf(&b, "(\n%s\n) ? %d : ", p.Expr, i)
	}
	// "None" is len(list), not -1: a small non-negative int is boxed
	// without an allocation.
	fmt.Fprintf(&b, "%d", len(list))
	return expr.Compile(b.String(), expr.Env(Flow{}), expr.AsInt())
}

// first returns the index of the first expression that holds for f, or -1.
func (s *Set) first(ps *programs, f *Flow) int {
	if ps.all == nil {
		return -1
	}
	out, err := f.vm.Run(ps.all, f)
	if err == nil {
		if i, ok := out.(int); ok && i < len(ps.list) {
			return i
		}
		return -1
	}
	// One expression failed: run them one by one, each failure counted
	// and taken as false.
	for i := range ps.list {
		if s.run(ps.list[i].prog, f) {
			return i
		}
	}
	return -1
}

// Error is one problem in a rules document, at a line and column (1-based;
// Column 0 when YAML gives none).
type Error struct {
	Line, Column int
	Path         string // e.g. allow[2].source
	Msg          string
	Hint         string // how to fix it, may be empty
}

func (e Error) Error() string {
	var b strings.Builder
	if e.Column > 0 {
		fmt.Fprintf(&b, "%d:%d: ", e.Line, e.Column)
	} else {
		fmt.Fprintf(&b, "%d: ", e.Line)
	}
	if e.Path != "" {
		b.WriteString(e.Path + ": ")
	}
	b.WriteString(e.Msg)
	if e.Hint != "" {
		b.WriteString(" (hint: " + e.Hint + ")")
	}
	return b.String()
}

// ErrorList is every problem found in one document.
type ErrorList struct {
	File string // "" when parsed from bytes
	Errs []Error
}

func (l *ErrorList) Error() string {
	name := l.File
	if name == "" {
		name = "rules"
	}
	lines := make([]string, len(l.Errs))
	for i, e := range l.Errs {
		lines[i] = name + ":" + e.Error()
	}
	return strings.Join(lines, "\n")
}

// MaxSize bounds a rules document (bytes).
const MaxSize = 4 << 20

// Load reads and validates a rules file. A refused file's error is an
// *ErrorList naming path, or an *os.PathError.
func Load(path string) (*Set, error) {
	b, err := readFile(path)
	if err != nil {
		return nil, err
	}
	return ParseNamed(path, b)
}

func readFile(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("rules: %w", err)
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, MaxSize+1))
	if err != nil {
		return nil, fmt.Errorf("rules: %s: %w", path, err)
	}
	if len(b) > MaxSize {
		return nil, &ErrorList{File: path, Errs: []Error{{Line: 1, Msg: fmt.Sprintf("larger than %d bytes", MaxSize)}}}
	}
	return b, nil
}

// ParseNamed is Parse with errors naming the document name.
func ParseNamed(name string, b []byte) (*Set, error) {
	s, err := Parse(b)
	if el, ok := err.(*ErrorList); ok {
		el.File = name
	}
	return s, err
}

var validSeverity = map[string]bool{"": true, "low": true, "medium": true, "high": true, "critical": true}

var yamlLine = regexp.MustCompile(`line (\d+): (.*)`)

// Parse validates a rules document and returns every problem found, as an
// *ErrorList.
func Parse(b []byte) (*Set, error) {
	el := &ErrorList{}
	if len(b) > MaxSize {
		el.Errs = append(el.Errs, Error{Line: 1, Msg: fmt.Sprintf("larger than %d bytes", MaxSize)})
		return nil, el
	}
	var f File
	dec := yaml.NewDecoder(bytes.NewReader(b))
	dec.KnownFields(true)
	err := dec.Decode(&f)
	if errors.Is(err, io.EOF) {
		// An empty document is refused: a file caught half-written would
		// otherwise silently drop every rule.
		el.Errs = append(el.Errs, Error{Line: 1, Msg: "the document is empty", Hint: "write `version: 1` for a file with no rules"})
		return nil, el
	}
	if err != nil {
		el.Errs = yamlErrors(err)
		// After type errors the decoder has filled in what it could:
		// validate the rest too, so one run lists every problem. Other
		// errors (syntax) leave nothing to check.
		var te *yaml.TypeError
		if !errors.As(err, &te) {
			return nil, el
		}
	}
	var more yaml.Node
	switch err := dec.Decode(&more); {
	case err == nil:
		el.Errs = append(el.Errs, Error{Line: max(more.Line, 1), Column: more.Column, Msg: "a second YAML document", Hint: "one rules file holds one document; remove the `---`"})
		return nil, el
	case !errors.Is(err, io.EOF):
		el.Errs = yamlErrors(err)
		return nil, el
	}
	var root yaml.Node
	_ = yaml.Unmarshal(b, &root) // decoded above, so this succeeds
	bad := func(path []any, hint string, format string, a ...any) {
		l, c := find(&root, path)
		el.Errs = append(el.Errs, Error{Line: l, Column: c, Path: pathString(path), Msg: fmt.Sprintf(format, a...), Hint: hint})
	}
	p := func(a ...any) []any { return a }

	switch f.Version {
	case 1:
	case 0:
		bad(p(), "start the file with `version: 1`", "version is missing")
	default:
		bad(p("version"), "use 1", "%d is not supported", f.Version)
	}
	if f.Threshold < 0 || f.Threshold > 1 {
		bad(p("threshold"), "a probability, e.g. 0.9", "%v is outside 0..1", f.Threshold)
	}
	if f.WideShare < 0 || f.WideShare > 1 {
		bad(p("wide_share"), "a share of sources, e.g. 0.5", "%v is outside 0..1", f.WideShare)
	}
	s := &Set{file: f, src: append([]byte(nil), b...), evalErrors: new(atomic.Int64)}
	s.version = VersionOf(b)
	list := func(name string, in []ListEntry) []entry {
		out := make([]entry, 0, len(in))
		for i, a := range in {
			e := entry{reason: a.Reason, expires: a.Expires.Time, severity: a.Severity, tags: a.Tags}
			if a.Source == "" && a.Destination == "" {
				bad(p(name, i), "an entry with neither would match every flow", "give a source, a destination or both")
			}
			if a.Source != "" {
				pf, err := prefix(a.Source)
				if err != nil {
					bad(p(name, i, "source"), "an IP or CIDR such as 10.1.0.0/16", "%v", err)
				}
				e.src, e.hasSrc = pf, true
			}
			d, err := parseDst(a.Destination)
			if err != nil {
				bad(p(name, i, "destination"), "a domain, *.domain, IP or CIDR", "%v", err)
			}
			e.dst = d
			if name == "allow" && (a.Severity != "" || len(a.Tags) > 0) {
				bad(p(name, i), "allow entries silence alerts; put severity and tags on deny entries or groups", "severity and tags have no effect here")
			}
			if !validSeverity[a.Severity] {
				bad(p(name, i, "severity"), "one of low, medium, high, critical", "%q is not a severity", a.Severity)
			}
			if !e.expires.IsZero() && e.expires.Before(time.Now()) {
				l, c := find(&root, p(name, i, "expires"))
				s.warnings = append(s.warnings, Error{Line: l, Column: c, Path: pathString(p(name, i, "expires")),
					Msg: "already expired: the entry has no effect"})
			}
			out = append(out, e)
		}
		return out
	}
	s.allow = newEntryList(list("allow", f.Allow))
	s.deny = newEntryList(list("deny", f.Deny))
	names := map[string]bool{}
	for i, g := range f.Groups {
		gg := group{Group: g}
		if g.Name == "" {
			bad(p("groups", i), "alerts and expressions refer to it", "name is empty")
		} else if names[g.Name] {
			bad(p("groups", i, "name"), "", "%q is used by an earlier group", g.Name)
		}
		names[g.Name] = true
		if len(g.Sources) == 0 {
			bad(p("groups", i), "list IPs or CIDRs", "sources is empty")
		}
		for j, src := range g.Sources {
			pf, err := prefix(src)
			if err != nil {
				bad(p("groups", i, "sources", j), "an IP or CIDR such as 10.1.0.0/16", "%v", err)
			}
			gg.nets = append(gg.nets, pf)
		}
		if g.Threshold < 0 || g.Threshold > 1 {
			bad(p("groups", i, "threshold"), "a probability, e.g. 0.8", "%v is outside 0..1", g.Threshold)
		}
		if g.MinActive < 0 || g.MinActive > 1440 {
			bad(p("groups", i, "min_active_minutes"), "minutes of a day, 1..1440", "%d is outside 0..1440", g.MinActive)
		}
		if !validSeverity[g.Severity] {
			bad(p("groups", i, "severity"), "one of low, medium, high, critical", "%q is not a severity", g.Severity)
		}
		s.groups = append(s.groups, gg)
	}
	mapping := func(path []any, m map[string][]string) fields.Mapping {
		var extra fields.Mapping
		for k, keys := range m {
			slot := -1
			for i, n := range fields.SlotNames {
				if n == k {
					slot = i
				}
			}
			if slot < 0 {
				bad(append(path, k), "one of "+strings.Join(fields.SlotNames[:], ", "), "unknown slot %q", k)
				continue
			}
			for j, key := range keys {
				if strings.TrimSpace(key) == "" || key != strings.TrimSpace(key) || strings.HasPrefix(key, ".") || strings.HasSuffix(key, ".") || strings.Contains(key, "..") {
					bad(append(path, k, j), "a record key such as client_addr or id.orig_h", "%q is not a key", key)
				}
			}
			extra[slot] = keys
		}
		return extra
	}
	s.extra = mapping(p("fields"), f.Fields)
	s.mapping = fields.Merge(s.extra, fields.Default())
	for i, in := range f.Inputs {
		if strings.TrimSpace(in.Tag) == "" {
			bad(p("inputs", i), "a Fluent Bit tag or pattern such as proxy.*", "tag is empty")
		}
		if len(in.Fields) == 0 && in.Preset == "" {
			bad(p("inputs", i), "map at least one slot, e.g. fields: {source: [client_ip]}, or name a preset", "neither fields nor preset")
		}
		e := input{tag: in.Tag, extra: fields.Merge(mapping(p("inputs", i, "fields"), in.Fields), s.extra)}
		if in.Preset != "" {
			pm, err := fields.Preset(in.Preset)
			if err != nil {
				bad(p("inputs", i, "preset"), "one or more of "+strings.Join(fields.PresetNames(), ", "), "%v", err)
			}
			e.preset, e.hasPreset = pm, true
		}
		s.inputs = append(s.inputs, e)
	}
	compile := func(name string, in []ExprRule) []program {
		var out []program
		seen := map[string]bool{}
		for i, r := range in {
			if r.Name == "" {
				bad(p(name, i), "alerts carry it as rule.name", "name is empty")
			} else if seen[r.Name] {
				bad(p(name, i, "name"), "", "%q is used by an earlier rule", r.Name)
			}
			seen[r.Name] = true
			if !validSeverity[r.Severity] {
				bad(p(name, i, "severity"), "one of low, medium, high, critical", "%q is not a severity", r.Severity)
			}
			if name == "suppress" && (r.Severity != "" || len(r.Tags) > 0) {
				bad(p(name, i), "a suppressed alert is not raised", "severity and tags have no effect here")
			}
			if strings.TrimSpace(r.Expr) == "" {
				bad(p(name, i), "e.g. expr: jitter < 0.1 && prevalence <= 2", "expr is empty")
				continue
			}
			prog, err := expr.Compile(r.Expr, expr.Env(Flow{}), expr.AsBool())
			if err != nil {
				path := p(name, i, "expr")
				l, c := exprPos(&root, path, err)
				el.Errs = append(el.Errs, Error{Line: l, Column: c, Path: pathString(path), Msg: oneLine(err.Error()),
					Hint: "a true/false expression over " + strings.Join(ExprNames, ", ")})
				continue
			}
			out = append(out, program{ExprRule: r, prog: prog})
		}
		return out
	}
	for _, l := range []struct {
		dst  *programs
		name string
		in   []ExprRule
	}{{&s.detect, "detect", f.Detect}, {&s.suppress, "suppress", f.Suppress}} {
		l.dst.list = compile(l.name, l.in)
		if len(el.Errs) == 0 {
			all, err := compileAll(l.dst.list)
			if err != nil {
				bad(p(l.name), "", "the expressions do not combine: %s", oneLine(err.Error()))
			}
			l.dst.all = all
		}
	}
	if len(el.Errs) > 0 {
		slices.SortStableFunc(el.Errs, func(a, b Error) int { return cmp.Or(a.Line-b.Line, a.Column-b.Column) })
		return nil, el
	}
	return s, nil
}

// VersionOf returns the version of a rules document: the first 8 bytes of
// its SHA-256, in hex.
func VersionOf(b []byte) string {
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:8])
}

// yamlErrors turns a YAML decoding error into Errors with lines.
func yamlErrors(err error) []Error {
	var te *yaml.TypeError
	msgs := []string{err.Error()}
	if errors.As(err, &te) {
		msgs = te.Errors
	}
	out := make([]Error, 0, len(msgs))
	for _, m := range msgs {
		e := Error{Msg: strings.TrimPrefix(m, "yaml: ")}
		if sm := yamlLine.FindStringSubmatch(m); sm != nil {
			e.Line, _ = strconv.Atoi(sm[1])
			e.Msg = sm[2]
		}
		if e.Line <= 0 {
			e.Line = 1 // the document as a whole
		}
		e.Hint = yamlHint(e.Msg)
		out = append(out, e)
	}
	return out
}

func yamlHint(msg string) string {
	switch {
	case strings.Contains(msg, "(use "):
		return ""
	case strings.Contains(msg, "not found in type"):
		return "a misspelt or unknown key; see docs/rules.md for the schema"
	case strings.Contains(msg, "cannot unmarshal !!seq"):
		return "a list is given where a single value belongs"
	case strings.Contains(msg, "cannot unmarshal !!map"):
		return "a mapping is given where a single value or list belongs"
	case strings.Contains(msg, "cannot unmarshal"):
		return "the value has the wrong type; see docs/rules.md"
	case strings.Contains(msg, "tab"), strings.Contains(msg, "cannot start any token"):
		return "indent with spaces, not tabs; quote values that start with @, ` or %"
	case strings.Contains(msg, "already defined"):
		return "a key appears twice in the same mapping"
	}
	return "check the YAML syntax on this line and the one before"
}

var exprAt = regexp.MustCompile(`\((\d+):(\d+)\)`)

// exprPos places an expression's compile error in the file: the error's
// (line:column, 1-based) within the expression, offset by where the expression's
// YAML value starts (a literal or folded block starts on the next line).
func exprPos(root *yaml.Node, path []any, err error) (int, int) {
	l, c := find(root, path)
	n := node(root, path)
	sm := exprAt.FindStringSubmatch(err.Error())
	if n == nil || n.Kind != yaml.ScalarNode || sm == nil {
		return l, c
	}
	el, _ := strconv.Atoi(sm[1])
	ec, _ := strconv.Atoi(sm[2])
	switch n.Style {
	case yaml.LiteralStyle:
		lines := strings.Split(n.Value, "\n")
		if el < 1 || el > len(lines) {
			return l, c
		}
		return n.Line + el, 0 // the block's indentation is not known here
	case 0, yaml.TaggedStyle:
		if el == 1 && !strings.Contains(n.Value, "\n") {
			return n.Line, n.Column + ec - 1
		}
	case yaml.SingleQuotedStyle, yaml.DoubleQuotedStyle:
		if el == 1 && !strings.Contains(n.Value, "\n") && !strings.ContainsAny(n.Value, `'"\\`) {
			return n.Line, n.Column + ec
		}
	}
	return l, c
}

// node returns the node at path, or nil.
func node(n *yaml.Node, path []any) *yaml.Node {
	n = docRoot(n)
	for _, step := range path {
		if _, n = child(n, step); n == nil {
			return nil
		}
	}
	return n
}

// docRoot is the top node of a document node, or n itself.
func docRoot(n *yaml.Node) *yaml.Node {
	if n.Kind == yaml.DocumentNode && len(n.Content) > 0 {
		return n.Content[0]
	}
	return n
}

// child takes one path step from n: a map key (string) or a sequence index
// (int). It returns the value and, for a map, its key node; nil when n has
// no such child. A repeated key yields its last value, as decoding does.
func child(n *yaml.Node, step any) (key, val *yaml.Node) {
	switch k := step.(type) {
	case string:
		if n.Kind == yaml.MappingNode {
			for i := 0; i+1 < len(n.Content); i += 2 {
				if n.Content[i].Value == k {
					key, val = n.Content[i], n.Content[i+1]
				}
			}
		}
	case int:
		if n.Kind == yaml.SequenceNode && k >= 0 && k < len(n.Content) {
			val = n.Content[k]
		}
	}
	return key, val
}

func oneLine(s string) string {
	s = strings.TrimSpace(s)
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		s = s[:i]
	}
	return s
}

// find returns the line and column of the node at path (map keys and
// sequence indexes), or of its deepest existing ancestor.
func find(n *yaml.Node, path []any) (int, int) {
	if n == nil {
		return 1, 1
	}
	n = docRoot(n)
	line, col := n.Line, n.Column
	for _, step := range path {
		key, next := child(n, step)
		if key != nil {
			// A scalar value: point at the value; a block: at its key.
			line, col = key.Line, key.Column
		}
		if next == nil {
			break
		}
		n = next
		if n.Kind == yaml.ScalarNode || n.Kind == yaml.MappingNode || n.Style&yaml.FlowStyle != 0 {
			line, col = n.Line, n.Column
		}
	}
	if line <= 0 {
		line, col = 1, 1
	}
	return line, col
}

func pathString(path []any) string {
	var b strings.Builder
	for _, s := range path {
		switch k := s.(type) {
		case string:
			if b.Len() > 0 {
				b.WriteByte('.')
			}
			b.WriteString(k)
		case int:
			fmt.Fprintf(&b, "[%d]", k)
		}
	}
	return b.String()
}

func prefix(s string) (netip.Prefix, error) {
	s = strings.TrimSpace(s)
	if strings.Contains(s, "/") {
		p, err := netip.ParsePrefix(s)
		if err != nil {
			return p, fmt.Errorf("%q is not a CIDR", s)
		}
		return p.Masked(), nil
	}
	a, err := netip.ParseAddr(s)
	if err != nil {
		return netip.Prefix{}, fmt.Errorf("%q is not an IP address or CIDR", s)
	}
	a = a.Unmap()
	return netip.PrefixFrom(a, a.BitLen()), nil
}

var domainRE = regexp.MustCompile(`^[a-z0-9_]([a-z0-9_-]*[a-z0-9_])?(\.[a-z0-9_]([a-z0-9_-]*[a-z0-9_])?)*$`)

func parseDst(orig string) (dstMatch, error) {
	s := strings.TrimSuffix(strings.ToLower(strings.TrimSpace(orig)), ".")
	switch {
	case s == "":
		return dstMatch{any: true}, nil
	case strings.HasPrefix(s, "*."):
		if !domainRE.MatchString(s[2:]) {
			return dstMatch{}, fmt.Errorf("%q: a wildcard is only allowed as a leading \"*.\" before a domain", orig)
		}
		return dstMatch{suffix: s[1:], exact: s[2:]}, nil
	case strings.Contains(s, "*"):
		return dstMatch{}, fmt.Errorf("%q: a wildcard is only allowed as a leading \"*.\"", orig)
	}
	if p, err := prefix(s); err == nil {
		return dstMatch{pfx: p, isPfx: true}, nil
	}
	if !domainRE.MatchString(s) {
		return dstMatch{}, fmt.Errorf("%q is not a domain, IP or CIDR", orig)
	}
	return dstMatch{exact: s}, nil
}

func (d *dstMatch) match(dst string) bool {
	switch {
	case d.any:
		return true
	case d.isPfx:
		a, err := netip.ParseAddrPort(dst)
		if err != nil {
			return false
		}
		return d.pfx.Contains(a.Addr().Unmap())
	case d.suffix != "":
		return dst == d.exact || strings.HasSuffix(dst, d.suffix)
	default:
		return dst == d.exact
	}
}

// entryList finds the first entry of a list that matches a flow. Domain
// entries are indexed by name, so a lookup costs one map probe per label of
// the destination however long the list; the others are scanned.
type entryList struct {
	entries []entry
	byName  map[string][]int32 // exact domain, or a suffix entry's base domain -> entry indexes, ascending
	scan    []int32            // entries with any destination or an IP/CIDR one
}

func newEntryList(es []entry) entryList {
	l := entryList{entries: es, byName: map[string][]int32{}}
	for i := range es {
		if d := &es[i].dst; d.any || d.isPfx {
			l.scan = append(l.scan, int32(i))
		} else {
			l.byName[d.exact] = append(l.byName[d.exact], int32(i))
		}
	}
	return l
}

func (e *entry) inForce(a netip.Addr, now time.Time) bool {
	return (e.expires.IsZero() || !now.After(e.expires)) && (!e.hasSrc || e.src.Contains(a))
}

// match returns the first entry in force at now that covers (a, dst).
func (l *entryList) match(a netip.Addr, dst string, now time.Time) *entry {
	if len(l.entries) == 0 {
		return nil
	}
	best := int32(len(l.entries))
	for _, i := range l.scan {
		if e := &l.entries[i]; e.dst.match(dst) && e.inForce(a, now) {
			best = i
			break
		}
	}
	if len(l.byName) > 0 {
		for name, whole := dst, true; ; whole = false {
			for _, i := range l.byName[name] {
				if i >= best {
					break
				}
				// At a parent of dst only suffix entries match.
				if e := &l.entries[i]; (whole || e.dst.suffix != "") && e.inForce(a, now) {
					best = i
					break
				}
			}
			k := strings.IndexByte(name, '.')
			if k < 0 {
				break
			}
			name = name[k+1:]
		}
	}
	if best == int32(len(l.entries)) {
		return nil
	}
	return &l.entries[best]
}

func addr(src string) netip.Addr {
	a, _ := netip.ParseAddr(src)
	return a.Unmap()
}

// Allowed reports whether an allowlist entry in force at now covers the
// flow, and its reason.
func (s *Set) Allowed(src, dst string, now time.Time) (string, bool) {
	if s == nil {
		return "", false
	}
	if e := s.allow.match(addr(src), dst, now); e != nil {
		return e.reason, true
	}
	return "", false
}

// Denied reports whether a denylist entry in force at now covers the flow,
// and its reason.
func (s *Set) Denied(src, dst string, now time.Time) (string, bool) {
	if s == nil || len(s.deny.entries) == 0 {
		return "", false
	}
	if e := s.deny.match(addr(src), dst, now); e != nil {
		return e.reason, true
	}
	return "", false
}

func (s *Set) groupOf(a netip.Addr) *group {
	if s == nil || !a.IsValid() {
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

func (s *Set) group(src string) *group {
	if s == nil || len(s.groups) == 0 {
		return nil
	}
	return s.groupOf(addr(src))
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

// wideShare returns the file's wide_share when set, else DefaultWideShare.
func (s *Set) wideShare() float64 {
	if s != nil && s.file.WideShare > 0 {
		return s.file.WideShare
	}
	return DefaultWideShare
}

// MinActive returns the fewest active minutes before a flow from src is
// scored: its group's min_active_minutes when set, else def.
func (s *Set) MinActive(src string, def int) int {
	if g := s.group(src); g != nil && g.MinActive > 0 {
		return g.MinActive
	}
	return def
}

// Severity returns the severity the rules give alerts from src ("" for the model's).
func (s *Set) Severity(src string) string {
	if g := s.group(src); g != nil {
		return g.Severity
	}
	return ""
}

// Tags returns the tags the rules give alerts from src.
func (s *Set) Tags(src string) []string {
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

// Extend returns the mapping for records of Fluent Bit tag tag when base
// is the mapping the plugin uses without rules (its presets): the keys of
// the first input matching tag, then the file's fields, then the input's
// presets if it names any, else base.
func (s *Set) Extend(base fields.Mapping, tag string) fields.Mapping {
	if s == nil {
		return base
	}
	for i := range s.inputs {
		if in := &s.inputs[i]; MatchTag(in.tag, tag) {
			return in.over(base)
		}
	}
	return fields.Merge(s.extra, base)
}

// Extra returns the keys of the file's fields section alone (nothing for a
// nil Set); fields.Merge(s.Extra(), base) is the mapping of records that
// match no input.
func (s *Set) Extra() fields.Mapping {
	if s == nil {
		return fields.Mapping{}
	}
	return s.extra
}

func (in *input) over(base fields.Mapping) fields.Mapping {
	if in.hasPreset {
		base = in.preset
	}
	return fields.Merge(in.extra, base)
}

// Inputs returns the per-tag patterns and their mappings over base (as
// Extend gives them), in order.
func (s *Set) Inputs(base fields.Mapping) (tags []string, mappings []fields.Mapping) {
	if s == nil {
		return nil, nil
	}
	for i := range s.inputs {
		tags = append(tags, s.inputs[i].tag)
		mappings = append(mappings, s.inputs[i].over(base))
	}
	return tags, mappings
}

// MappingFor is Extend over the built-in Zeek and ECS presets.
func (s *Set) MappingFor(tag string) fields.Mapping { return s.Extend(fields.Default(), tag) }

// MatchTag reports whether a Fluent Bit tag matches pattern, where "*"
// matches any run of characters (as in an output's Match). It allocates
// nothing.
func MatchTag(pattern, tag string) bool {
	// Iterative wildcard match with one backtrack point.
	p, t, star, mark := 0, 0, -1, 0
	for t < len(tag) {
		switch {
		case p < len(pattern) && pattern[p] == '*':
			star, mark = p, t
			p++
		case p < len(pattern) && pattern[p] == tag[t]:
			p++
			t++
		case star >= 0:
			p = star + 1
			mark++
			t = mark
		default:
			return false
		}
	}
	for p < len(pattern) && pattern[p] == '*' {
		p++
	}
	return p == len(pattern)
}

// Version identifies the document the Set was built from (VersionOf its
// bytes): equal versions mean equal rules. A nil Set's version is "none".
func (s *Set) Version() string {
	if s == nil {
		return "none"
	}
	return s.version
}

// Source returns the document the Set was built from. The caller must not
// modify it.
func (s *Set) Source() []byte {
	if s == nil {
		return nil
	}
	return s.src
}

// Warnings lists what is legal but probably not meant (entries already
// expired when the file was loaded).
func (s *Set) Warnings() []Error {
	if s == nil {
		return nil
	}
	return s.warnings
}

// Counts summarises the Set (for logs and `rules check`).
func (s *Set) Counts() string {
	if s == nil {
		return "no rules"
	}
	return fmt.Sprintf("%d allow, %d deny, %d groups, %d inputs, %d detect, %d suppress",
		len(s.allow.entries), len(s.deny.entries), len(s.groups), len(s.inputs), len(s.detect.list), len(s.suppress.list))
}

// Rule names of verdicts that no named rule decided.
const (
	RuleModel = "beacon-model" // the model's score crossed the threshold
	RuleDeny  = "deny"         // a deny entry matched
	RuleAllow = "allow"        // an allow entry silenced the alert
	// RuleWide: the model's alert was silenced because its destination is
	// a service most hosts use (PrevalenceShare above the wide share).
	RuleWide = "wide-service"
)

// DefaultWideShare is the PrevalenceShare above which a destination is a
// service most hosts use: Eval silences the model's alerts on it (RuleWide),
// however periodic and whatever their score. Deny entries and detect
// expressions still alert on it. With prevalence_share's floor of 20 sources
// this takes at least 11 sources, and more than half of those seen. The
// rules file's wide_share replaces it. The model ranks such flows low
// (prevalence has a monotone constraint) but not always below the threshold.
const DefaultWideShare = 0.5

// Verdict is what the rules decide about one scored flow.
type Verdict struct {
	// Alert: the flow qualifies for an alert (model score at or over the
	// threshold with enough activity, a deny entry, or a detect expression).
	Alert bool
	// Suppressed: an allow entry, a suppress expression or the wide share
	// silences it.
	Suppressed bool
	Threshold  float64
	// Rule names what raised the alert (RuleModel, RuleDeny or the detect
	// rule's name); SuppressedBy what silenced it (RuleAllow, RuleWide or
	// the suppress rule's name).
	Rule, SuppressedBy string
	Reason             string   // the deciding entry's or rule's reason
	Severity           string   // "" for the model's own
	Tags               []string // the group's, then the rule's; shared, do not modify
	Group              string
}

// Eval applies the rules to one scored flow. f carries the model's score
// and the flow's features; modelThreshold and minActive are the detector's
// own settings (the rules' thresholds and the group's min_active_minutes
// replace them). Eval fills f.Group and f.Threshold. It allocates nothing
// unless a matching rule adds tags to its group's or an expression does.
//
// Order: a deny entry raises the alert whatever the score; else the model's
// score, else the first detect expression that holds; a raised alert is
// then silenced by an allow entry or the first suppress expression that
// holds, unless a deny entry raised it.
func (s *Set) Eval(f *Flow, modelThreshold float64, minActive int, now time.Time) Verdict {
	v := Verdict{Threshold: modelThreshold, Rule: RuleModel}
	if s == nil {
		f.Threshold = v.Threshold
		v.Alert = f.Score >= v.Threshold && f.ActiveMinutes >= minActive
		return s.silenceWide(v, f)
	}
	a := addr(f.Source)
	g := s.groupOf(a)
	if s.file.Threshold > 0 {
		v.Threshold = s.file.Threshold
	}
	if g != nil {
		v.Group, v.Severity, v.Tags = g.Name, g.Severity, g.Tags
		if g.Threshold > 0 {
			v.Threshold = g.Threshold
		}
		if g.MinActive > 0 {
			minActive = g.MinActive
		}
	}
	f.Group, f.Threshold = v.Group, v.Threshold
	if e := s.deny.match(a, f.Destination, now); e != nil {
		v.Alert, v.Rule, v.Reason = true, RuleDeny, e.reason
		if e.severity != "" {
			v.Severity = e.severity
		} else if v.Severity == "" {
			v.Severity = "high"
		}
		v.Tags = joinTags(v.Tags, e.tags)
		return v
	}
	v.Alert = f.Score >= v.Threshold && f.ActiveMinutes >= minActive
	if !v.Alert {
		if f.ActiveMinutes < minActive {
			return v
		}
		if i := s.first(&s.detect, f); i >= 0 {
			r := &s.detect.list[i]
			v.Alert, v.Rule, v.Reason = true, r.Name, r.Reason
			if r.Severity != "" {
				v.Severity = r.Severity
			}
			v.Tags = joinTags(v.Tags, r.Tags)
		}
		if !v.Alert {
			return v
		}
	}
	if e := s.allow.match(a, f.Destination, now); e != nil {
		v.Suppressed, v.SuppressedBy, v.Reason = true, RuleAllow, e.reason
		return v
	}
	if i := s.first(&s.suppress, f); i >= 0 {
		r := &s.suppress.list[i]
		v.Suppressed, v.SuppressedBy, v.Reason = true, r.Name, r.Reason
		return v
	}
	return s.silenceWide(v, f)
}

// silenceWide silences a model alert on a service most hosts use.
func (s *Set) silenceWide(v Verdict, f *Flow) Verdict {
	if v.Alert && v.Rule == RuleModel && f.PrevalenceShare > s.wideShare() {
		v.Suppressed, v.SuppressedBy = true, RuleWide
	}
	return v
}

func joinTags(a, b []string) []string {
	switch {
	case len(b) == 0:
		return a
	case len(a) == 0:
		return b
	}
	return append(append(make([]string, 0, len(a)+len(b)), a...), b...)
}

// run evaluates a compiled boolean expression; a run-time error counts as
// false and is counted.
func (s *Set) run(p *vm.Program, f *Flow) bool {
	out, err := f.vm.Run(p, f)
	if err != nil {
		s.evalErrors.Add(1)
		return false
	}
	b, _ := out.(bool)
	return b
}

// EvalErrors returns how many expression evaluations failed at run time
// (each taken as "does not hold").
func (s *Set) EvalErrors() int64 {
	if s == nil {
		return 0
	}
	return s.evalErrors.Load()
}
