package sim

import (
	"fmt"
	"math"
	"sort"
	"time"
)

const (
	usPerSec = int64(1e6)
	usPerMin = 60 * usPerSec
	usPerH   = 60 * usPerMin
	never    = int64(math.MaxInt64)
)

func secs(s float64) int64 { return int64(math.Round(s * 1e6)) }

// role is what kind of machine a host is.
type role uint8

const (
	roleLaptop role = iota
	roleDesktop
	roleServer
	roleIoT
)

func (r role) String() string {
	return [...]string{"laptop", "desktop", "server", "iot"}[r]
}

type osKind uint8

const (
	osWindows osKind = iota
	osMac
	osLinux
	osEmbedded
)

// span is a half-open interval of simulated time in microseconds.
type span struct{ from, to int64 }

// spans is a sorted list of disjoint spans; nil means "always".
type spans []span

// at reports whether t is inside a span, and the span's end if so.
func (s spans) at(t int64) (bool, int64) {
	if s == nil {
		return true, never
	}
	i := sort.Search(len(s), func(i int) bool { return s[i].to > t })
	if i < len(s) && s[i].from <= t {
		return true, s[i].to
	}
	return false, 0
}

// next returns the first instant >= t inside a span, or never.
func (s spans) next(t int64) int64 {
	if s == nil {
		return t
	}
	i := sort.Search(len(s), func(i int) bool { return s[i].to > t })
	if i == len(s) {
		return never
	}
	return max(t, s[i].from)
}

// host is one simulated internal machine.
type host struct {
	idx  int
	ip   string
	role role
	os   osKind
	name string
	ua   string // browser user agent

	// online: when the machine is up and on the monitored network (nil =
	// always). present: when its user is at it (browsing happens then).
	online  spans
	present spans
	// appsAlways: user applications (mail, chat) keep running when the
	// user is away (desktops left logged in); otherwise they run only
	// while the user is present.
	appsAlways bool

	port     int
	dnsCache map[string]int64
	used     bool // has an implant assigned
}

func (h *host) hasUser() bool { return h.role == roleLaptop || h.role == roleDesktop }

// ephemeral returns the next client port in the style of the host's OS.
func (h *host) ephemeral(r *rng) int {
	switch h.os {
	case osWindows:
		// Windows hands out ports sequentially from 49152.
		h.port += 1 + r.IntN(3)
		if h.port < 49152 || h.port > 65535 {
			h.port = 49152 + r.IntN(2000)
		}
		return h.port
	case osLinux, osEmbedded:
		return 32768 + r.IntN(60999-32768)
	default:
		return 49152 + r.IntN(65535-49152)
	}
}

// hostIP numbers internal hosts 10.10.x.y.
func hostIP(i int) string { return fmt.Sprintf("10.10.%d.%d", i/200, 10+i%200) }

// Internal infrastructure addresses.
const (
	resolverIP = "10.0.0.53"
	dcIP       = "10.0.0.10"
	zabbixIP   = "10.0.0.20"
	mgmtIP     = "10.0.0.25"
)

// buildHosts creates the hosts with their roles and daily schedules.
func buildHosts(cfg Config, r *rng) []*host {
	n := cfg.Hosts
	hosts := make([]*host, n)
	nServers := max(1, int(math.Round(float64(n)*0.10)))
	nIoT := 0
	if n >= 20 {
		nIoT = max(1, int(math.Round(float64(n)*0.02)))
	}
	nLaptops := int(math.Round(float64(n) * 0.55))
	if nServers+nIoT+nLaptops > n {
		nLaptops = max(0, n-nServers-nIoT)
	}
	// Roles are interleaved in address order the way DHCP pools and
	// server ranges are not; keep it simple: a deterministic shuffle.
	roles := make([]role, 0, n)
	for i := 0; i < nServers; i++ {
		roles = append(roles, roleServer)
	}
	for i := 0; i < nIoT; i++ {
		roles = append(roles, roleIoT)
	}
	for i := 0; i < nLaptops; i++ {
		roles = append(roles, roleLaptop)
	}
	for len(roles) < n {
		roles = append(roles, roleDesktop)
	}
	r.Shuffle(len(roles), func(i, j int) { roles[i], roles[j] = roles[j], roles[i] })

	for i := range hosts {
		h := &host{idx: i, ip: hostIP(i), role: roles[i], dnsCache: map[string]int64{}}
		switch h.role {
		case roleLaptop:
			h.os = osWindows
			if r.chance(0.25) {
				h.os = osMac
			}
		case roleDesktop:
			h.os = osWindows
			if r.chance(0.08) {
				h.os = osLinux
			}
			h.appsAlways = r.chance(0.6)
		case roleServer:
			h.os = osLinux
			if r.chance(0.3) {
				h.os = osWindows
			}
		case roleIoT:
			h.os = osEmbedded
		}
		h.name = fmt.Sprintf("%s-%03d", h.role, i)
		switch h.os {
		case osWindows:
			h.ua = pick(r, uaWindowsBrowsers)
		case osMac:
			h.ua = pick(r, uaMacBrowsers)
		default:
			h.ua = pick(r, uaLinuxBrowsers)
		}
		if h.hasUser() {
			h.online, h.present = userSchedule(cfg, h.role, r)
		}
		hosts[i] = h
	}
	return hosts
}

// userSchedule draws a person's working days: arrival, lunch, meetings and
// departure on workdays (none on weekends, and now and then a day off). A
// laptop is online only while its owner is in the office; it may also sleep
// over lunch and drop off the network when carried to a meeting. A desktop
// is always online.
func userSchedule(cfg Config, ro role, r *rng) (online, present spans) {
	loc := cfg.Start.Location()
	early := r.normal(0, 35)      // personal arrival offset, minutes
	workLen := r.normal(8.6, 0.5) // hours
	sleepsAtLunch := r.chance(0.35)
	y, m, d := cfg.Start.Date()
	for day := 0; day < cfg.Days; day++ {
		midnight := time.Date(y, m, d+day, 0, 0, 0, 0, loc)
		if wd := midnight.Weekday(); wd == time.Saturday || wd == time.Sunday {
			continue
		}
		absent := 0.06
		if ro == roleLaptop {
			absent = 0.12 // remote work or travel: invisible to the sensor
		}
		if r.chance(absent) {
			continue
		}
		base := midnight.UnixMicro()
		at := func(hours float64) int64 { return base + secs(hours*3600) }
		arrive := clamp(8.75+(early+r.normal(0, 12))/60, 6.75, 10.5)
		leave := clamp(arrive+workLen+r.normal(0, 0.4), arrive+5, 19.75)
		lunch := clamp(r.normal(12.25, 0.3), arrive+2, leave-1.5)
		lunchLen := r.uniform(0.5, 1.0)

		// Presence: arrival to departure minus lunch and meetings.
		pres := []span{{at(arrive + 0.03), at(lunch)}, {at(lunch + lunchLen), at(leave - 0.03)}}
		for k := r.IntN(4); k > 0; k-- {
			ms := r.uniform(arrive+0.5, leave-1)
			pres = cut(pres, span{at(ms), at(ms + r.uniform(0.5, 1.5))})
		}
		if ro == roleLaptop {
			on := []span{{at(arrive), at(leave)}}
			var gaps []span
			if sleepsAtLunch {
				gaps = append(gaps, span{at(lunch + 0.05), at(lunch + lunchLen - 0.05)})
			}
			// Carried to a meeting: a few minutes off the network.
			for k := r.IntN(3); k > 0; k-- {
				ms := r.uniform(arrive+0.5, leave-1)
				gaps = append(gaps, span{at(ms), at(ms + r.uniform(2, 8)/60)})
			}
			for _, g := range gaps {
				on = cut(on, g)
				pres = cut(pres, g)
			}
			online = append(online, on...)
		}
		present = append(present, pres...)
	}
	// A nil list means "always": make empty schedules explicit.
	if ro == roleLaptop && online == nil {
		online = spans{}
	}
	if present == nil {
		present = spans{}
	}
	return online, present
}

// cut removes c from the sorted spans in s.
func cut(s []span, c span) []span {
	out := make([]span, 0, len(s)+1)
	for _, x := range s {
		if c.to <= x.from || c.from >= x.to {
			out = append(out, x)
			continue
		}
		if x.from < c.from {
			out = append(out, span{x.from, c.from})
		}
		if c.to < x.to {
			out = append(out, span{c.to, x.to})
		}
	}
	return out
}

func clamp(x, lo, hi float64) float64 { return math.Max(lo, math.Min(hi, x)) }
