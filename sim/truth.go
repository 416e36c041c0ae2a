package sim

import (
	"encoding/csv"
	"fmt"
	"io"
	"net/netip"
	"sort"
)

// TruthHeader is the header row of truth.csv.
var TruthHeader = []string{"src", "dst", "label", "kind", "detail"}

// TruthRow labels one flow: source address and destination key (see
// FlowKey).
type TruthRow struct {
	Src    string
	Dst    string
	Label  string // Malicious or Benign
	Kind   string
	Detail string
}

type flowID struct{ src, dst string }

// Truth collects the flow labels of an event stream. A flow is malicious if
// any of its events is; a benign flow takes the kind of its periodic
// activity in preference to browsing or irregular traffic that shares the
// same destination.
type Truth struct {
	rows map[flowID]*TruthRow
}

// NewTruth returns an empty collector.
func NewTruth() *Truth { return &Truth{rows: map[flowID]*TruthRow{}} }

func kindRank(label, kind string) int {
	switch {
	case label == Malicious:
		return 3
	case kind == KindBrowsing || kind == KindServerAPI:
		return 1
	default:
		return 2
	}
}

// Add accounts for one event.
func (t *Truth) Add(ev *Event) {
	id := flowID{ev.SrcIP, ev.FlowKey()}
	row, ok := t.rows[id]
	if !ok {
		t.rows[id] = &TruthRow{Src: id.src, Dst: id.dst, Label: ev.Label, Kind: ev.Kind, Detail: ev.Detail}
		return
	}
	if kindRank(ev.Label, ev.Kind) > kindRank(row.Label, row.Kind) {
		row.Label, row.Kind, row.Detail = ev.Label, ev.Kind, ev.Detail
	}
}

// Len returns the number of flows seen.
func (t *Truth) Len() int { return len(t.rows) }

// Lookup returns the row of a flow.
func (t *Truth) Lookup(src, dst string) (TruthRow, bool) {
	r, ok := t.rows[flowID{src, dst}]
	if !ok {
		return TruthRow{}, false
	}
	return *r, true
}

// Rows returns all rows ordered by source address, then destination.
func (t *Truth) Rows() []TruthRow {
	out := make([]TruthRow, 0, len(t.rows))
	for _, r := range t.rows {
		out = append(out, *r)
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Src != out[j].Src {
			a, errA := netip.ParseAddr(out[i].Src)
			b, errB := netip.ParseAddr(out[j].Src)
			if errA == nil && errB == nil {
				return a.Less(b)
			}
			return out[i].Src < out[j].Src
		}
		return out[i].Dst < out[j].Dst
	})
	return out
}

// WriteCSV writes truth.csv: a header row and one row per flow.
func (t *Truth) WriteCSV(w io.Writer) error {
	cw := csv.NewWriter(w)
	if err := cw.Write(TruthHeader); err != nil {
		return err
	}
	for _, r := range t.Rows() {
		if err := cw.Write([]string{r.Src, r.Dst, r.Label, r.Kind, r.Detail}); err != nil {
			return err
		}
	}
	cw.Flush()
	return cw.Error()
}

// ReadTruthCSV parses a truth.csv file.
func ReadTruthCSV(r io.Reader) ([]TruthRow, error) {
	cr := csv.NewReader(r)
	cr.FieldsPerRecord = len(TruthHeader)
	recs, err := cr.ReadAll()
	if err != nil {
		return nil, err
	}
	if len(recs) == 0 {
		return nil, io.ErrUnexpectedEOF
	}
	for i, h := range TruthHeader {
		if recs[0][i] != h {
			return nil, fmt.Errorf("truth.csv: header %q, want %q", recs[0], TruthHeader)
		}
	}
	out := make([]TruthRow, 0, len(recs)-1)
	for _, rec := range recs[1:] {
		out = append(out, TruthRow{Src: rec[0], Dst: rec[1], Label: rec[2], Kind: rec[3], Detail: rec[4]})
	}
	return out, nil
}
