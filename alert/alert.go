// Package alert defines the beacon alert document: the one record that
// travels from the plugin (or the replay command) through the spool to the
// sidecar and into Elasticsearch. Its JSON form is ECS-shaped; docs/alert-schema.md
// describes every field.
package alert

import (
	"crypto/sha256"
	"encoding/hex"
	"strconv"
	"time"
)

// MatrixLen is the number of minute cells in the 24 x 60 matrix.
const MatrixLen = 24 * 60

// Alert is one beacon alert. It is a plain value: nothing mutates it after it
// is built, and it is safe to share between goroutines.
type Alert struct {
	Timestamp   time.Time   `json:"@timestamp"`
	Event       Event       `json:"event"`
	Source      Source      `json:"source"`
	Destination Destination `json:"destination"`
	Rule        Rule        `json:"rule"`
	Beacon      Beacon      `json:"beacon"`
	Observer    *Observer   `json:"observer,omitempty"`
	Tags        []string    `json:"tags,omitempty"`
	// Enrichment is filled by the sidecar; the plugin leaves it empty.
	Host   *Host   `json:"host,omitempty"`
	Threat *Threat `json:"threat,omitempty"`
}

// Event is the ECS event block.
type Event struct {
	// ID is the deterministic document id (see ID).
	ID       string    `json:"id"`
	Kind     string    `json:"kind"`     // always "alert"
	Module   string    `json:"module"`   // always "beacongrid"
	Dataset  string    `json:"dataset"`  // always "beacongrid.alert"
	Category []string  `json:"category"` // ["network", "intrusion_detection"]
	Severity int       `json:"severity"` // 1..100 (ECS numeric severity)
	Start    time.Time `json:"start"`    // first event of the flow in the window
	End      time.Time `json:"end"`      // last event of the flow in the window
	Created  time.Time `json:"created"`  // wall clock when the alert was built
}

// Source is the host that calls out.
type Source struct {
	IP string `json:"ip"`
}

// Destination is the flow's destination: a domain when the logs name one,
// else an IP and port.
type Destination struct {
	Domain string `json:"domain,omitempty"`
	IP     string `json:"ip,omitempty"`
	Port   int    `json:"port,omitempty"`
}

// Rule names what raised the alert.
type Rule struct {
	Name     string `json:"name"`
	Ruleset  string `json:"ruleset,omitempty"`
	Severity string `json:"severity,omitempty"` // low, medium, high, critical
	// Description is the reason of the operator rule that raised the alert.
	Description string `json:"description,omitempty"`
	// Version is the version (content hash) of the rules in force.
	Version string `json:"version,omitempty"`
}

// Beacon carries what an analyst needs to judge the alert.
type Beacon struct {
	Score         float64 `json:"score"`          // model probability, 0..1
	Threshold     float64 `json:"threshold"`      // threshold in force when it fired
	PeriodS       float64 `json:"period_s"`       // dominant period in seconds (0 if none)
	Jitter        float64 `json:"jitter"`         // relative spread of inter-arrival times, 0..1+
	ActiveMinutes int     `json:"active_minutes"` // minutes with at least one request
	Requests      int     `json:"requests"`       // requests in the window
	Prevalence    int     `json:"prevalence"`     // distinct sources seen reaching the destination
	// Matrix holds the 1440 per-minute request counts, index = hour*60+minute
	// of the minute's UTC wall-clock time, over the 24 h ending at WindowEnd.
	// Its JSON is one compact string (see Matrix); nil is no field.
	Matrix       Matrix    `json:"matrix,omitempty"`
	WindowEnd    time.Time `json:"window_end"`
	ModelVersion string    `json:"model_version"`
	// Reasons lists the features that pushed the score up most, strongest first.
	Reasons []Reason `json:"reasons,omitempty"`
}

// Reason is one feature's contribution to the score.
type Reason struct {
	Feature      string  `json:"feature"`
	Value        float64 `json:"value"`
	Contribution float64 `json:"contribution"`
}

// Observer names the collector that raised the alert.
type Observer struct {
	Hostname string `json:"hostname,omitempty"`
	Name     string `json:"name,omitempty"` // Fluent Bit instance / alias
}

// Host is asset context for the source, added by the sidecar.
type Host struct {
	Name        string `json:"name,omitempty"`
	Owner       string `json:"owner,omitempty"`
	Criticality string `json:"criticality,omitempty"`
}

// Threat holds threat-intelligence matches on the destination, added by the sidecar.
type Threat struct {
	Indicator []string `json:"indicator,omitempty"`
	Feed      string   `json:"feed,omitempty"`
}

// ID returns the deterministic document id of an alert for the flow
// (src, dst) raised at event-time minute atMinute (Unix minutes). The same
// input always yields the same id, so a retried or replayed delivery
// overwrites instead of duplicating.
func ID(src, dst string, atMinute int64) string {
	h := sha256.New()
	h.Write([]byte(src))
	h.Write([]byte{0})
	h.Write([]byte(dst))
	h.Write([]byte{0})
	h.Write([]byte(strconv.FormatInt(atMinute, 10)))
	return hex.EncodeToString(h.Sum(nil)[:16])
}
