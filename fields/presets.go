package fields

import (
	"fmt"
	"slices"
	"strings"
)

// Presets are the built-in mappings by name, for the plugin's `preset`
// property and the docs. Keys are as the records carry them after Fluent
// Bit's parsers (docs/configuration.md shows a parser for each log type).
var Presets = map[string]func() Mapping{
	"zeek":     Zeek,
	"ecs":      ECS,
	"squid":    Squid,
	"proxy":    Proxy,
	"paloalto": PaloAlto,
	"fortinet": Fortinet,
	"pfsense":  PfSense,
	"iptables": IPTables,
}

// DefaultPreset is the preset list used when none is configured.
const DefaultPreset = "zeek,ecs"

// PresetNames returns the preset names, sorted.
func PresetNames() []string {
	names := make([]string, 0, len(Presets))
	for n := range Presets {
		names = append(names, n)
	}
	slices.Sort(names)
	return names
}

// Preset returns the mapping of a comma-separated list of preset names
// ("zeek", "squid,proxy"), merged in the order given: for a slot, the keys
// of an earlier preset win over those of a later one. An empty list is
// DefaultPreset.
func Preset(list string) (Mapping, error) {
	if strings.TrimSpace(list) == "" {
		list = DefaultPreset
	}
	var m Mapping
	for _, name := range strings.Split(list, ",") {
		name = strings.ToLower(strings.TrimSpace(name))
		p, ok := Presets[name]
		if !ok {
			return Mapping{}, fmt.Errorf("fields: unknown preset %q (known: %s)", name, strings.Join(PresetNames(), ", "))
		}
		m = Merge(m, p())
	}
	return m, nil
}

// Default is Zeek and ECS together: what the plugin and the CLI use when no
// preset or rules file says otherwise.
func Default() Mapping { return Merge(Zeek(), ECS()) }

// Zeek is the preset for Zeek http, ssl and conn logs (JSON, flat dotted
// keys or nested "id" maps).
func Zeek() Mapping {
	return Mapping{
		Time:    {"ts"},
		Src:     {"id.orig_h"},
		Domain:  {"host", "server_name"},
		DstIP:   {"id.resp_h"},
		DstPort: {"id.resp_p"},
		Size:    {"request_body_len", "orig_bytes"},
		Service: {"service"},
	}
}

// ECS is the preset for Elastic Common Schema records (Filebeat, Elastic
// Agent, Logstash ECS pipelines).
func ECS() Mapping {
	return Mapping{
		Time:    {"@timestamp"},
		Src:     {"source.ip", "client.ip"},
		Domain:  {"destination.domain", "url.domain", "tls.client.server_name"},
		DstIP:   {"destination.ip", "server.ip"},
		DstPort: {"destination.port", "server.port"},
		Size:    {"source.bytes", "http.request.bytes"},
		URL:     {"url.full", "url.original"},
	}
}

// Squid is the preset for Squid's native access.log after the regex parser
// in docs/configuration.md, which names the fields of Squid's default
// logformat (%ts.%03tu %6tr %>a %Ss/%03>Hs %<st %rm %ru %[un %Sh/%<a %mt)
// timestamp, elapsed, client_ip, result, status, bytes, method, url, user,
// hierarchy, server_ip, content_type. The destination is the host of the
// URL (CONNECT requests log host:port), else the server address.
func Squid() Mapping {
	return Mapping{
		Time:  {"timestamp"},
		Src:   {"client_ip"},
		DstIP: {"server_ip"},
		URL:   {"url"},
	}
}

// Proxy is the preset for web proxies that log JSON or W3C fields: Squid
// logformats written as JSON, Blue Coat / Symantec ProxySG and Microsoft
// W3C names (c-ip, cs-host, s-ip), Zscaler NSS feeds (clientip, hostname,
// serverip) and generic src_ip/dest_host/dest_ip names.
func Proxy() Mapping {
	return Mapping{
		Time:    {"timestamp", "time"},
		Src:     {"client_ip", "clientip", "c-ip", "src_ip", "source_ip"},
		Domain:  {"host", "hostname", "cs-host", "dest_host", "domain"},
		DstIP:   {"server_ip", "serverip", "s-ip", "dest_ip", "destination_ip"},
		DstPort: {"server_port", "dest_port", "s-port", "cs-uri-port"},
		Size:    {"request_bytes", "reqsize", "cs-bytes", "bytes_out"},
		URL:     {"url", "request_url", "cs-uri"},
	}
}

// PaloAlto is the preset for PAN-OS traffic and URL filtering logs with
// the field names of Palo Alto's syslog field list as parsed by the CSV
// parser in docs/configuration.md (src, dst, dport, bytes_sent), and the
// JSON names of Strata Logging Service / Cortex (source_ip, dest_ip,
// dest_port). The event time is the one Fluent Bit's parser set.
func PaloAlto() Mapping {
	return Mapping{
		Src:     {"src", "source_ip"},
		Domain:  {"dest_host", "url_domain"},
		DstIP:   {"dst", "dest_ip"},
		DstPort: {"dport", "dest_port"},
		Size:    {"bytes_sent"},
		URL:     {"url", "misc"},
	}
}

// Fortinet is the preset for FortiGate key=value logs (Fluent Bit's logfmt
// parser): srcip, dstip, dstport, hostname (web filter and UTM logs),
// sentbyte. The event time is the one Fluent Bit's parser set (FortiGate's
// date and time fields are local time in two keys).
func Fortinet() Mapping {
	return Mapping{
		Src:     {"srcip"},
		Domain:  {"hostname"},
		DstIP:   {"dstip"},
		DstPort: {"dstport"},
		Size:    {"sentbyte"},
	}
}

// PfSense is the preset for pfSense / OPNsense filterlog lines after the
// CSV parser in docs/configuration.md (src, dst, dstport), and
// their names in Graylog / Elastic pipelines (src_ip, dest_ip, dest_port).
func PfSense() Mapping {
	return Mapping{
		Src:     {"src", "src_ip"},
		DstIP:   {"dst", "dest_ip"},
		DstPort: {"dstport", "dest_port"},
	}
}

// IPTables is the preset for Linux netfilter LOG lines (iptables, nftables,
// ufw) whose KEY=value pairs Fluent Bit's logfmt parser keeps as they are:
// SRC, DST, DPT.
func IPTables() Mapping {
	return Mapping{
		Src:     {"SRC"},
		DstIP:   {"DST"},
		DstPort: {"DPT"},
	}
}
