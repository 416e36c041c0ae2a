package sidecar

import (
	"bufio"
	"bytes"
	"encoding/json"
	"os"
	"path"
	"strings"
	"testing"
)

// kibanaFile is the saved objects file imported into Kibana.
const kibanaFile = "../build/kibana/beacongrid.ndjson"

type savedObject struct {
	ID         string                     `json:"id"`
	Type       string                     `json:"type"`
	Attributes map[string]json.RawMessage `json:"attributes"`
	References []struct {
		Name string `json:"name"`
		Type string `json:"type"`
		ID   string `json:"id"`
	} `json:"references"`
}

func (o savedObject) str(t *testing.T, key string) string {
	t.Helper()
	var s string
	if err := json.Unmarshal(o.Attributes[key], &s); err != nil {
		t.Fatalf("%s %s: attribute %s is not a string: %v", o.Type, o.ID, key, err)
	}
	return s
}

func readSavedObjects(t *testing.T) []savedObject {
	t.Helper()
	f, err := os.Open(kibanaFile)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var out []savedObject
	sc := bufio.NewScanner(f)
	sc.Buffer(nil, 1<<20)
	for n := 1; sc.Scan(); n++ {
		var o savedObject
		dec := json.NewDecoder(strings.NewReader(sc.Text()))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&o); err != nil {
			t.Fatalf("%s:%d: %v", kibanaFile, n, err)
		}
		if o.ID == "" || o.Type == "" || o.Attributes["title"] == nil {
			t.Fatalf("%s:%d: id, type and attributes.title are required", kibanaFile, n)
		}
		out = append(out, o)
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

// TestKibanaSavedObjects checks build/kibana/beacongrid.ndjson as Kibana's
// saved objects import reads it: one object per line, unique ids, every
// reference resolving to an object of the named type in the file, every
// nested JSON string (visState, searchSourceJSON, panelsJSON, the Vega spec)
// parsing, every field used existing in the index template with a type
// that aggregates, and the dashboard holding the panels the issue asks for.
func TestKibanaSavedObjects(t *testing.T) {
	objs := readSavedObjects(t)
	_, root := templateMappings(t, indexTemplate)
	byID := map[string]savedObject{}
	for _, o := range objs {
		if _, dup := byID[o.ID]; dup {
			t.Fatalf("id %s twice", o.ID)
		}
		byID[o.ID] = o
	}
	field := func(o savedObject, f string) {
		t.Helper()
		m, ok := root.lookup(f)
		if !ok {
			t.Errorf("%s %s uses field %s, which the index template does not map", o.Type, o.ID, f)
			return
		}
		switch m.Type {
		case "keyword", "ip", "date", "long", "float":
		default:
			t.Errorf("%s %s uses field %s of type %q, which does not aggregate", o.Type, o.ID, f, m.Type)
		}
	}
	counts := map[string]int{}
	for _, o := range objs {
		counts[o.Type]++
		refs := map[string]string{}
		for _, r := range o.References {
			target, ok := byID[r.ID]
			if !ok || target.Type != r.Type {
				t.Errorf("%s %s: reference %s to %s %s is not in the file", o.Type, o.ID, r.Name, r.Type, r.ID)
			}
			refs[r.Name] = r.Type
		}
		if raw, ok := o.Attributes["kibanaSavedObjectMeta"]; ok {
			var meta struct {
				SearchSourceJSON string `json:"searchSourceJSON"`
			}
			json.Unmarshal(raw, &meta)
			var src struct {
				IndexRefName string `json:"indexRefName"`
			}
			if err := json.Unmarshal([]byte(meta.SearchSourceJSON), &src); err != nil {
				t.Errorf("%s %s: searchSourceJSON: %v", o.Type, o.ID, err)
			}
			if src.IndexRefName != "" && refs[src.IndexRefName] != "index-pattern" {
				t.Errorf("%s %s: indexRefName %q has no index-pattern reference", o.Type, o.ID, src.IndexRefName)
			}
		}
		switch o.Type {
		case "index-pattern":
			if ok, _ := path.Match(o.str(t, "title"), DefaultIndex); !ok {
				t.Errorf("data view %q does not match the default index %s", o.str(t, "title"), DefaultIndex)
			}
			if tf := o.str(t, "timeFieldName"); tf != "@timestamp" {
				t.Errorf("time field %q", tf)
			}
		case "visualization":
			var vs struct {
				Type   string `json:"type"`
				Params struct {
					Spec string `json:"spec"`
				} `json:"params"`
				Aggs []struct {
					Type   string `json:"type"`
					Params struct {
						Field string `json:"field"`
					} `json:"params"`
				} `json:"aggs"`
			}
			if err := json.Unmarshal([]byte(o.str(t, "visState")), &vs); err != nil {
				t.Fatalf("visualization %s: visState: %v", o.ID, err)
			}
			for _, a := range vs.Aggs {
				if a.Params.Field != "" {
					field(o, a.Params.Field)
				}
			}
			if vs.Type == "vega" {
				counts["vega"]++
				checkVegaSpec(t, o.ID, vs.Params.Spec, root, byID)
			} else if len(vs.Aggs) == 0 || refs["kibanaSavedObjectMeta.searchSourceJSON.index"] != "index-pattern" {
				t.Errorf("visualization %s has no aggregations or no data view", o.ID)
			}
		case "search":
			var cols []string
			json.Unmarshal(o.Attributes["columns"], &cols)
			if len(cols) < 5 {
				t.Errorf("alerts table has %d columns", len(cols))
			}
			for _, c := range cols {
				field(o, c)
			}
		case "dashboard":
			var panels []struct {
				PanelRefName string `json:"panelRefName"`
				GridData     struct {
					X, Y, W, H int
				} `json:"gridData"`
			}
			if err := json.Unmarshal([]byte(o.str(t, "panelsJSON")), &panels); err != nil {
				t.Fatalf("dashboard panelsJSON: %v", err)
			}
			occupied := map[[2]int]string{}
			kinds := map[string]bool{}
			for _, p := range panels {
				typ, ok := refs[p.PanelRefName]
				if !ok {
					t.Errorf("panel %s has no reference", p.PanelRefName)
				}
				kinds[typ] = true
				g := p.GridData
				if g.X < 0 || g.W < 1 || g.X+g.W > 48 || g.H < 1 {
					t.Errorf("panel %s grid %+v outside the 48-column grid", p.PanelRefName, g)
				}
				for x := g.X; x < g.X+g.W; x++ {
					for y := g.Y; y < g.Y+g.H; y++ {
						if other, taken := occupied[[2]int{x, y}]; taken {
							t.Fatalf("panels %s and %s overlap", other, p.PanelRefName)
						}
						occupied[[2]int{x, y}] = p.PanelRefName
					}
				}
			}
			if len(panels) < 6 || !kinds["search"] || !kinds["visualization"] {
				t.Errorf("dashboard has %d panels (%v)", len(panels), kinds)
			}
		}
	}
	if counts["index-pattern"] != 1 || counts["dashboard"] != 1 || counts["search"] != 1 || counts["vega"] != 1 || counts["visualization"] < 5 {
		t.Errorf("objects by type: %v", counts)
	}
}

// checkVegaSpec parses the heatmap's Vega spec and checks that it queries
// the data view's indices for beacon.matrix, splits that run-length string
// into tokens and flattens them (tokens, then each token's minutes) into
// hour and minute, and draws one rect per cell from those fields. That the
// decoding is right is TestBrowserKibanaVegaSpec's part: it renders the
// spec and compares the cells with the matrix.
func checkVegaSpec(t *testing.T, id, spec string, root mapping, byID map[string]savedObject) {
	t.Helper()
	var s struct {
		Data []struct {
			Name   string `json:"name"`
			Source string `json:"source"`
			URL    *struct {
				Context   bool   `json:"%context%"`
				TimeField string `json:"%timefield%"`
				Index     string `json:"index"`
				Body      struct {
					Source []string `json:"_source"`
				} `json:"body"`
			} `json:"url"`
			Format struct {
				Property string `json:"property"`
			} `json:"format"`
			Transform []struct {
				Type   string   `json:"type"`
				Fields []string `json:"fields"`
				As     any      `json:"as"`
				Index  string   `json:"index"`
				Expr   string   `json:"expr"`
			} `json:"transform"`
		} `json:"data"`
		Marks []struct {
			Type   string                `json:"type"`
			From   struct{ Data string } `json:"from"`
			Encode struct {
				Enter map[string]json.RawMessage `json:"enter"`
			} `json:"encode"`
		} `json:"marks"`
	}
	if err := json.Unmarshal([]byte(spec), &s); err != nil {
		t.Fatalf("vega %s: the spec is not JSON: %v", id, err)
	}
	var query, cells bool
	produced := map[string]bool{}
	for _, d := range s.Data {
		if d.URL != nil {
			query = true
			dv := byID["beacongrid-alerts"]
			if d.URL.Index != dv.str(t, "title") || !d.URL.Context || d.URL.TimeField != "@timestamp" || d.Format.Property != "hits.hits" {
				t.Errorf("vega %s: data %s queries %+v", id, d.Name, d.URL)
			}
			for _, f := range d.URL.Body.Source {
				if _, ok := root.lookup(f); !ok {
					t.Errorf("vega %s: _source field %s is not mapped", id, f)
				}
			}
			if !strings.Contains(strings.Join(d.URL.Body.Source, ","), "beacon.matrix") {
				t.Errorf("vega %s: the query does not fetch beacon.matrix", id)
			}
		}
		split, flattens := false, 0
		for _, tr := range d.Transform {
			switch tr.Type {
			case "flatten":
				if len(tr.Fields) != 1 || !produced[tr.Fields[0]] {
					t.Errorf("vega %s: flatten %+v of a field no earlier transform produces", id, tr)
				}
				flattens++
				if tr.Index != "" {
					produced[tr.Index] = true
				}
			case "formula":
				if strings.Contains(tr.Expr, "beacon.matrix") {
					// The run-length string (alert.Matrix) is cut into tokens;
					// an alert without one has none.
					if tr.Expr != "isString(datum._source.beacon.matrix) ? split(datum._source.beacon.matrix, ',') : []" {
						t.Errorf("vega %s: formula %q reads beacon.matrix other than by split on ','", id, tr.Expr)
					}
					split = true
				}
			}
			switch as := tr.As.(type) {
			case string:
				produced[as] = true
			case []any:
				for _, a := range as {
					produced[a.(string)] = true
				}
			}
		}
		// Tokens, then the minutes of each token: two flattens.
		cells = cells || (split && flattens == 2)
	}
	if !query || !cells || len(s.Marks) != 1 || s.Marks[0].Type != "rect" {
		t.Fatalf("vega %s: query %v, decodes beacon.matrix %v, marks %d", id, query, cells, len(s.Marks))
	}
	for _, ch := range []string{"x", "y", "fill"} {
		var buf bytes.Buffer
		json.Compact(&buf, s.Marks[0].Encode.Enter[ch])
		enc := buf.String()
		found := false
		for f := range produced {
			if strings.Contains(enc, `"field":"`+f+`"`) {
				found = true
			}
		}
		if !found {
			t.Errorf("vega %s: encoding %s = %s uses no field the transforms produce (%v)", id, ch, enc, produced)
		}
	}
	if m, _ := root.lookup("beacon.matrix"); m.Enabled == nil || *m.Enabled {
		t.Errorf("beacon.matrix is indexed; the heatmap reads it from _source")
	}
}
