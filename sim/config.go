package sim

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strconv"
	"time"
)

// DefaultStart is the default beginning of a simulation: Monday 4 March 2024,
// 00:00 UTC.
var DefaultStart = time.Date(2024, time.March, 4, 0, 0, 0, 0, time.UTC)

// DefaultC2PerHundred is the default number of implanted hosts per 100 hosts.
const DefaultC2PerHundred = 5

// Defaults for Config fields left zero, and the largest network.
const (
	DefaultHosts = 100
	DefaultDays  = 1
	MaxHosts     = 50000 // hosts are numbered 10.10.0.10 .. 10.10.249.209
)

// C2 kinds, the values of Event.Kind and truth.csv's kind for malicious
// flows.
const (
	KindC2Jittered     = "c2-jittered"      // always-on host, interval 30 s..2 h, jitter 0..50 %
	KindC2OfficeHours  = "c2-office-hours"  // beacons only during the implant's working hours
	KindC2Laptop       = "c2-laptop"        // on a laptop: silent whenever the laptop is off
	KindC2Interactive  = "c2-interactive"   // slow beacon plus operator sessions of rapid calls
	KindC2SharedServer = "c2-shared-server" // several hosts beaconing to one C2 server
	KindC2CDNHidden    = "c2-cdn-hidden"    // beacon to a CDN/cloud host the victim also browses
	KindC2LongSleep    = "c2-long-sleep"    // interval 30..60 min
)

// C2Kinds lists every C2 kind the simulator produces.
var C2Kinds = []string{
	KindC2Jittered, KindC2OfficeHours, KindC2Laptop, KindC2Interactive,
	KindC2SharedServer, KindC2CDNHidden, KindC2LongSleep,
}

// Config describes a simulation. The zero value of each field selects its
// default.
type Config struct {
	// Hosts is the number of internal hosts (laptops, desktops, servers,
	// IoT devices); default DefaultHosts.
	Hosts int
	// Days is the simulated duration in days; default DefaultDays.
	Days int
	// Seed selects the random world; equal configs give identical output.
	Seed int64
	// Start is the first instant simulated; default DefaultStart. Office
	// hours, nights and weekends are those of Start's location.
	Start time.Time
	// C2PerHundred is the number of hosts carrying a random implant per 100
	// hosts; 0 selects DefaultC2PerHundred and a negative value disables
	// random implants. With Hosts >= 50 every C2 kind is present at least
	// once (the shared-server kind on 3 hosts).
	C2PerHundred float64
	// Beacons are explicit beacons added to the random implants.
	Beacons []Beacon
	// TrainingMix adds, on top of the random implants and from a random
	// stream of its own, the cases a training set needs more of than a
	// realistic day holds: 1-3 more shared C2 servers of 2 to hosts/12
	// hosts (at least 3, at most 10) each, 1-2 beacons every 30-120 s on
	// always-on hosts and one on a laptop, and one more CDN-hidden,
	// office-hours and interactive implant each, whatever the network's
	// size. Without it a day is unchanged. Ignored with C2PerHundred < 0.
	TrainingMix bool
}

// Beacon is an explicitly configured C2 beacon.
type Beacon struct {
	// Src is the source address. If no simulated host has it, an extra
	// always-on desktop with this address is added.
	Src string
	// Dst is a host name ("c2.example.net", "c2.example.net:8443") or an
	// address and port ("203.0.113.7:443"). The flow key in truth.csv is the
	// host name, or the address and port.
	Dst string
	// Transport is "https" (TLS with SNI; the default for names), "http",
	// or "tcp" (an opaque TCP session, conn.log only; the default for
	// addresses).
	Transport string
	// Interval is the nominal sleep; default 60 s.
	Interval time.Duration
	// Jitter in [0, 0.9]: each sleep is Interval*(1-U(0,Jitter)).
	Jitter float64
	// Kind labels the flow; default KindC2Jittered.
	Kind string
	// OfficeHours restricts the beacon to workdays 08:00-18:00.
	OfficeHours bool
}

// SimpleBeacon returns the config of a small end-to-end scenario: hosts
// benign hosts with their usual traffic and no random implants, plus exactly
// one 60-second beacon from src to dst with the given jitter (0..0.9), over
// one day.
func SimpleBeacon(hosts int, src, dst string, jitter float64, seed int64) Config {
	return Config{
		Hosts:        hosts,
		Days:         1,
		Seed:         seed,
		C2PerHundred: -1,
		Beacons: []Beacon{{
			Src:      src,
			Dst:      dst,
			Interval: time.Minute,
			Jitter:   jitter,
		}},
	}
}

// withDefaults returns cfg with zero fields replaced by defaults, or an
// error for invalid values.
func (cfg Config) withDefaults() (Config, error) {
	if cfg.Hosts == 0 {
		cfg.Hosts = DefaultHosts
	}
	if cfg.Days == 0 {
		cfg.Days = DefaultDays
	}
	if cfg.Start.IsZero() {
		cfg.Start = DefaultStart
	}
	if cfg.C2PerHundred == 0 {
		cfg.C2PerHundred = DefaultC2PerHundred
	}
	switch {
	case cfg.Hosts < 0 || cfg.Hosts > MaxHosts:
		return cfg, fmt.Errorf("sim: hosts %d out of range 1..%d", cfg.Hosts, MaxHosts)
	case cfg.Days < 0 || cfg.Days > 366:
		return cfg, fmt.Errorf("sim: days %d out of range 1..366", cfg.Days)
	case cfg.C2PerHundred > 50:
		return cfg, fmt.Errorf("sim: C2PerHundred %.1f above 50", cfg.C2PerHundred)
	}
	bs := make([]Beacon, len(cfg.Beacons))
	for i, b := range cfg.Beacons {
		b, err := b.withDefaults()
		if err != nil {
			return cfg, fmt.Errorf("sim: beacon %d: %w", i+1, err)
		}
		bs[i] = b
	}
	cfg.Beacons = bs
	return cfg, nil
}

func (b Beacon) withDefaults() (Beacon, error) {
	if _, err := netip.ParseAddr(b.Src); err != nil {
		return b, fmt.Errorf("source %q is not an IP address", b.Src)
	}
	if b.Dst == "" {
		return b, errors.New("empty destination")
	}
	_, _, isAddr, err := splitDst(b.Dst)
	if err != nil {
		return b, err
	}
	if b.Transport == "" {
		if isAddr {
			b.Transport = "tcp"
		} else {
			b.Transport = "https"
		}
	}
	switch b.Transport {
	case "https", "http", "tcp":
	default:
		return b, fmt.Errorf("transport %q: want https, http or tcp", b.Transport)
	}
	if b.Interval == 0 {
		b.Interval = time.Minute
	}
	if b.Interval < time.Second {
		return b, fmt.Errorf("interval %v below 1s", b.Interval)
	}
	if b.Jitter < 0 || b.Jitter > 0.9 {
		return b, fmt.Errorf("jitter %.2f out of range 0..0.9", b.Jitter)
	}
	if b.Kind == "" {
		b.Kind = KindC2Jittered
	}
	return b, nil
}

// splitDst parses a beacon destination into host and port; isAddr is true
// for an IP address.
func splitDst(dst string) (host string, port int, isAddr bool, err error) {
	host = dst
	if h, p, e := net.SplitHostPort(dst); e == nil {
		host = h
		port, err = strconv.Atoi(p)
		if err != nil || port < 1 || port > 65535 {
			return "", 0, false, fmt.Errorf("destination %q: bad port", dst)
		}
	}
	if _, e := netip.ParseAddr(host); e == nil {
		if port == 0 {
			return "", 0, false, fmt.Errorf("destination %q: an address needs a port", dst)
		}
		return host, port, true, nil
	}
	if host == "" {
		return "", 0, false, fmt.Errorf("destination %q: empty host", dst)
	}
	return host, port, false, nil
}
