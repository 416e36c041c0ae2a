package flbtest

import (
	"bufio"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"
)

// ReadZeekTSV reads a Zeek TSV log (with its #fields and #types headers)
// into records shaped as Zeek's JSON writer would make them and Fluent
// Bit's json parser hand them over: flat dotted keys, time as a float,
// count and port as integers, unset ("-") and empty fields and columns
// named in drop left out. At most max records are read (0: all).
func ReadZeekTSV(path string, max int, drop ...string) ([]map[string]any, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var names, types []string
	var out []map[string]any
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for line := 1; sc.Scan(); line++ {
		text := sc.Text()
		if strings.HasPrefix(text, "#") {
			key, rest, _ := strings.Cut(text, "\t")
			switch key {
			case "#fields":
				names = strings.Split(rest, "\t")
			case "#types":
				types = strings.Split(rest, "\t")
			}
			continue
		}
		if len(names) == 0 || len(types) != len(names) {
			return nil, fmt.Errorf("%s:%d: record before #fields and #types", path, line)
		}
		cols := strings.Split(text, "\t")
		if len(cols) != len(names) {
			return nil, fmt.Errorf("%s:%d: %d columns, want %d", path, line, len(cols), len(names))
		}
		rec := make(map[string]any, len(cols))
	col:
		for i, v := range cols {
			for _, d := range drop {
				if names[i] == d {
					continue col
				}
			}
			if v == "-" || v == "(empty)" || v == "" {
				continue
			}
			switch types[i] {
			case "time", "interval", "double":
				x, err := strconv.ParseFloat(v, 64)
				if err != nil {
					return nil, fmt.Errorf("%s:%d: %s: %w", path, line, names[i], err)
				}
				rec[names[i]] = x
			case "count", "port", "int":
				x, err := strconv.ParseInt(v, 10, 64)
				if err != nil {
					return nil, fmt.Errorf("%s:%d: %s: %w", path, line, names[i], err)
				}
				rec[names[i]] = x
			case "bool":
				rec[names[i]] = v == "T"
			default:
				if strings.HasPrefix(types[i], "set[") || strings.HasPrefix(types[i], "vector[") {
					var list []any
					for _, s := range strings.Split(v, ",") {
						list = append(list, s)
					}
					rec[names[i]] = list
				} else {
					rec[names[i]] = v
				}
			}
		}
		out = append(out, rec)
		if max > 0 && len(out) == max {
			break
		}
	}
	if err := sc.Err(); err != nil {
		return nil, err
	}
	return out, nil
}

// Rebase returns events for records, spread evenly over span ending at end:
// both the Fluent Bit timestamp and the record's "ts" (when present) are
// set to the new time, so a replay of old logs lies in the detector's
// window.
func Rebase(records []map[string]any, end time.Time, span time.Duration) []Event {
	evs := make([]Event, len(records))
	start := end.Add(-span)
	for i, r := range records {
		ts := start.Add(time.Duration(i) * span / time.Duration(max(len(records), 1)))
		if _, ok := r["ts"]; ok {
			r["ts"] = float64(ts.UnixMicro()) / 1e6
		}
		evs[i] = Event{Time: ts, Record: r}
	}
	return evs
}
