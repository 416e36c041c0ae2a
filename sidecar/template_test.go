package sidecar

import (
	"encoding/json"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/beacongrid/beacongrid/alert"
)

type mapping struct {
	Type       string             `json:"type"`
	Index      *bool              `json:"index"`
	Enabled    *bool              `json:"enabled"`
	Properties map[string]mapping `json:"properties"`
}

func templateMappings(t *testing.T, body []byte) (patterns []string, root mapping) {
	t.Helper()
	var tmpl struct {
		IndexPatterns []string `json:"index_patterns"`
		Template      struct {
			Mappings mapping `json:"mappings"`
		} `json:"template"`
	}
	if err := json.Unmarshal(body, &tmpl); err != nil {
		t.Fatal(err)
	}
	return tmpl.IndexPatterns, tmpl.Template.Mappings
}

// lookup finds the mapping of a dotted path.
func (m mapping) lookup(path string) (mapping, bool) {
	cur := m
	for _, p := range strings.Split(path, ".") {
		next, ok := cur.Properties[p]
		if !ok {
			return mapping{}, false
		}
		cur = next
	}
	return cur, true
}

// leafPaths lists the JSON paths of every leaf field of type t, with the Go
// kind of the leaf.
func leafPaths(t reflect.Type, prefix string, out map[string]reflect.Type) {
	for t.Kind() == reflect.Pointer || t.Kind() == reflect.Slice && t.Elem().Kind() != reflect.Uint16 {
		t = t.Elem()
	}
	if t.Kind() != reflect.Struct || t == reflect.TypeOf(time.Time{}) {
		out[prefix] = t
		return
	}
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
		if name == "" || name == "-" {
			continue
		}
		p := name
		if prefix != "" {
			p = prefix + "." + name
		}
		leafPaths(f.Type, p, out)
	}
}

// TestTemplateMapsEveryAlertField fails when a field is added to
// alert.Alert without a mapping (the template is dynamic:false, so it would
// silently not be searchable) or with a mapping of the wrong family.
func TestTemplateMapsEveryAlertField(t *testing.T) {
	_, root := templateMappings(t, indexTemplate)
	paths := map[string]reflect.Type{}
	leafPaths(reflect.TypeOf(alert.Alert{}), "", paths)
	leafPaths(reflect.TypeOf(Sighting{}), "beacongrid", paths) // added by the Enricher
	if len(paths) < 38 {
		t.Fatalf("found only %d alert fields; the walk is broken", len(paths))
	}
	special := map[string]string{"source.ip": "ip", "destination.ip": "ip", "beacon.matrix": "object"}
	for path, typ := range paths {
		m, ok := root.lookup(path)
		if !ok {
			t.Errorf("alert field %s has no mapping in index-template.json", path)
			continue
		}
		want := special[path]
		if want == "" {
			switch typ.Kind() {
			case reflect.String:
				want = "keyword"
			case reflect.Int, reflect.Int64:
				want = "long"
			case reflect.Float64:
				want = "float"
			case reflect.Struct: // time.Time
				want = "date"
			}
		}
		if m.Type != want {
			t.Errorf("%s (%s) mapped as %q, want %q", path, typ, m.Type, want)
		}
	}
	// Mapped but not in the alert: a stale mapping.
	var walk func(prefix string, m mapping)
	walk = func(prefix string, m mapping) {
		for name, sub := range m.Properties {
			p := strings.TrimPrefix(prefix+"."+name, ".")
			if sub.Properties == nil {
				if _, ok := paths[p]; !ok {
					t.Errorf("mapping %s matches no alert field", p)
				}
				continue
			}
			walk(p, sub)
		}
	}
	walk("", root)
}

func TestMatrixStoredNotIndexed(t *testing.T) {
	_, root := templateMappings(t, indexTemplate)
	m, _ := root.lookup("beacon.matrix")
	if m.Type != "object" || m.Enabled == nil || *m.Enabled {
		t.Fatalf("beacon.matrix = %+v, want an object with enabled:false (kept in _source, not parsed)", m)
	}
}

func TestIndexTemplateUsesIndexName(t *testing.T) {
	body, err := IndexTemplate("soc-beacons", TemplateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	patterns, root := templateMappings(t, body)
	if !slices.Equal(patterns, []string{"soc-beacons"}) {
		t.Errorf("index_patterns = %v", patterns)
	}
	if m, ok := root.lookup("source.ip"); !ok || m.Type != "ip" {
		t.Errorf("mappings lost: source.ip = %+v", m)
	}
	var raw map[string]any
	if err := json.Unmarshal(body, &raw); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"priority", "version", "_meta", "template"} {
		if _, ok := raw[k]; !ok {
			t.Errorf("key %s lost", k)
		}
	}
}

func TestIndexTemplateDataStreamAndILM(t *testing.T) {
	body, err := IndexTemplate("beacons", TemplateOptions{DataStream: true, ILMPolicy: "beacons"})
	if err != nil {
		t.Fatal(err)
	}
	var raw struct {
		DataStream *struct{} `json:"data_stream"`
		Template   struct {
			Settings struct {
				Index struct {
					Lifecycle struct {
						Name string `json:"name"`
					} `json:"lifecycle"`
				} `json:"index"`
			} `json:"settings"`
		} `json:"template"`
	}
	if err := json.Unmarshal(body, &raw); err != nil {
		t.Fatal(err)
	}
	if raw.DataStream == nil || raw.Template.Settings.Index.Lifecycle.Name != "beacons" {
		t.Errorf("data stream template = %s", body)
	}
	plain, _ := IndexTemplate("beacons", TemplateOptions{})
	if strings.Contains(string(plain), "data_stream") || strings.Contains(string(plain), "lifecycle") {
		t.Errorf("plain template has data stream or ILM settings: %s", plain)
	}
	var p struct {
		Policy struct {
			Phases map[string]struct {
				MinAge string `json:"min_age"`
			} `json:"phases"`
		} `json:"policy"`
	}
	if err := json.Unmarshal(ILMPolicy(90*24*time.Hour), &p); err != nil || p.Policy.Phases["delete"].MinAge != "90d" {
		t.Errorf("ILM policy: %v %+v", err, p)
	}
}
