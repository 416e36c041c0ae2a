package plugin_test

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"

	"github.com/beacongrid/beacongrid/fields"
	"github.com/beacongrid/beacongrid/internal/flbtest"
	"github.com/beacongrid/beacongrid/plugin/instance"
)

func configDoc(t *testing.T) string {
	t.Helper()
	root, err := flbtest.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(filepath.Join(root, "docs", "configuration.md"))
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// docs/configuration.md has a row for every property the plugin reads,
// and its fluent-bit.yaml example uses only those and Fluent Bit's keys.
func TestConfigurationDocListsEveryProperty(t *testing.T) {
	doc := configDoc(t)
	for _, k := range instance.Keys {
		if !strings.Contains(doc, "| `"+k+"` |") {
			t.Errorf("docs/configuration.md has no row for property %s", k)
		}
	}
	start := strings.Index(doc, "```yaml\nservice:")
	if start < 0 {
		t.Fatal("no fluent-bit.yaml example")
	}
	body := doc[start+len("```yaml\n"):]
	body = body[:strings.Index(body, "```")]
	var cfg struct {
		Pipeline struct {
			Outputs []map[string]any `yaml:"outputs"`
		} `yaml:"pipeline"`
	}
	if err := yaml.Unmarshal([]byte(body), &cfg); err != nil {
		t.Fatalf("the fluent-bit.yaml example does not parse: %v", err)
	}
	known := map[string]bool{"name": true, "match": true, "workers": true}
	for _, k := range instance.Keys {
		known[k] = true
	}
	for _, out := range cfg.Pipeline.Outputs {
		props := instance.MapGetter{}
		for k, v := range out {
			if !known[k] {
				t.Errorf("the example output uses unknown key %s", k)
			}
			props[k] = strings.TrimSpace(strings.Trim(strings.TrimSpace(toString(v)), "'"))
		}
		props["model_file"] = "" // the example's paths need not exist here
		props["rules_file"] = ""
		if _, err := instance.ParseConfig(props, "x"); err != nil {
			t.Errorf("the example output %v does not parse: %v", out, err)
		}
	}
}

func toString(v any) string {
	if s, ok := v.(string); ok {
		return s
	}
	b, _ := yaml.Marshal(v)
	return string(b)
}

// The parsers the doc gives, applied to real-shaped lines (Go's regexp
// reads the same named groups as Fluent Bit's Onigmo here), produce records
// that their preset turns into the expected flow.
func TestConfigurationDocParsers(t *testing.T) {
	doc := configDoc(t)
	parsers := map[string]*regexp.Regexp{}
	for _, block := range strings.Split(doc, "[PARSER]")[1:] {
		block, _, _ = strings.Cut(block, "```")
		var name, re string
		for _, line := range strings.Split(block, "\n") {
			f := strings.Fields(line)
			switch {
			case len(f) >= 2 && f[0] == "Name":
				name = f[1]
			case len(f) >= 2 && f[0] == "Regex":
				re = strings.TrimSpace(strings.TrimPrefix(strings.TrimSpace(line), "Regex"))
			}
		}
		if name != "" && re != "" {
			parsers[name] = regexp.MustCompile(re)
		}
	}
	for _, c := range []struct {
		parser, preset, line, src, dst string
	}{
		{"squid", "squid", "1700000000.450     99 192.168.0.68 TCP_MISS/200 507 GET http://www.google.com/search? - HIER_DIRECT/74.125.39.104 text/html", "192.168.0.68", "www.google.com"},
		{"squid", "squid", "1700000000.451   2310 192.168.0.69 TCP_TUNNEL/200 6212 CONNECT update.vendor.example:443 alice HIER_DIRECT/203.0.113.9 -", "192.168.0.69", "update.vendor.example"},
		{"paloalto_traffic", "paloalto", "1,2024/01/10 12:00:01,012801000001,TRAFFIC,end,2561,2024/01/10 12:00:01,10.2.0.1,203.0.113.50,198.51.100.1,203.0.113.50,allow-web,,,ssl,vsys1,trust,untrust,ethernet1/2,ethernet1/1,forward,,1234567,1,51234,443,40001,443,0x400053,tcp,allow,5432,1200,4232,12,2024/01/10 11:59:50,10,any,,7000000001,0x0,10.0.0.0-10.255.255.255,United States,,6,6", "10.2.0.1", "203.0.113.50:443"},
		{"pfsense_filterlog", "pfsense", "5,,,1000000103,igb0,match,block,in,4,0x0,,64,12345,0,DF,6,tcp,60,10.4.0.1,198.51.100.70,51000,4444,0,S,123456789,,64240,,mss;sackOK;TS;nop;wscale", "10.4.0.1", "198.51.100.70:4444"},
		{"netfilter", "iptables", "[UFW BLOCK] IN=eth0 OUT= MAC=00:11:22:33:44:55:66:77:88:99:aa:bb:08:00 SRC=10.5.0.1 DST=198.51.100.80 LEN=60 TOS=0x00 PREC=0x00 TTL=64 ID=54321 DF PROTO=TCP SPT=40000 DPT=8080 WINDOW=64240 RES=0x00 SYN URGP=0", "10.5.0.1", "198.51.100.80:8080"},
	} {
		re := parsers[c.parser]
		if re == nil {
			t.Fatalf("docs/configuration.md has no regex parser %s", c.parser)
		}
		m := re.FindStringSubmatch(c.line)
		if m == nil {
			t.Fatalf("parser %s does not match %q", c.parser, c.line)
		}
		rec := map[string]string{}
		for i, n := range re.SubexpNames() {
			if n != "" && m[i] != "" {
				rec[n] = m[i]
			}
		}
		mp, err := fields.Preset(c.preset)
		if err != nil {
			t.Fatal(err)
		}
		var e fields.Event
		e.Reset()
		for slot, aliases := range mp {
			for rank, k := range aliases {
				if v, ok := rec[k]; ok && e.Claim(slot, rank) {
					if err := e.SetText(slot, []byte(v)); err != nil {
						t.Fatalf("%s: %s=%q: %v", c.parser, k, v, err)
					}
				}
			}
		}
		src, dst, _, ok := e.Flow(nil)
		if !ok || string(src) != c.src || string(dst) != c.dst {
			t.Errorf("%s %v: flow %q -> %q (%v), want %q -> %q", c.parser, rec, src, dst, ok, c.src, c.dst)
		}
	}
}
