package replay

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/beacongrid/beacongrid/fields"
)

const header = "#separator \\x09\n#fields\tts\tid.orig_h\tid.resp_h\tid.resp_p\thost\tlabel\tdetailedlabel\n#types\ttime\taddr\taddr\tport\tstring\tstring\tstring\n"

func write(t *testing.T, dir, name string, rows ...string) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, []byte(header+strings.Join(rows, "\n")+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// RunExtra merges files in event time and hands over the extra columns of
// each record (nil when absent), valid during the call.
func TestRunExtraMergesAndHandsOverExtraColumns(t *testing.T) {
	dir := t.TempDir()
	a := write(t, dir, "a.log",
		"10.5\t10.0.0.1\t1.2.3.4\t80\tc2.example\tMalicious\t(empty)",
		"30.5\t10.0.0.1\t1.2.3.4\t80\tc2.example\tMalicious\tC2",
	)
	b := write(t, dir, "b.log",
		"20.5\t10.0.0.2\t5.6.7.8\t443\tnews.example\tBenign\tBrowsing",
		"40.5\t10.0.0.2\t5.6.7.8\t443\tnews.example\t-\t-",
	)
	type rec struct {
		sec          int64
		domain       string
		label, extra string
		missing      bool
	}
	var got []rec
	st, err := RunExtra([]string{a, b}, NewMatcher(fields.Zeek()), []string{"label", "detailedlabel", "nosuchkey"}, func(e *fields.Event, ex [][]byte) {
		if len(ex) != 3 {
			t.Fatalf("%d extra values, want 3", len(ex))
		}
		got = append(got, rec{e.Sec, string(e.Domain), string(ex[0]), string(ex[1]), ex[2] == nil})
	}, nil)
	if err != nil {
		t.Fatal(err)
	}
	want := []rec{
		{10, "c2.example", "Malicious", "", true}, // Zeek's empty-field marker reads as empty
		{20, "news.example", "Benign", "Browsing", true},
		{30, "c2.example", "Malicious", "C2", true},
		{40, "news.example", "", "", true}, // Zeek's unset "-" reads as absent
	}
	if st.Records != 4 || st.Files != 2 {
		t.Errorf("stats %+v", st)
	}
	if len(got) != len(want) {
		t.Fatalf("got %+v, want %+v", got, want)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("record %d: %+v, want %+v", i, got[i], want[i])
		}
	}
}

// Run is RunExtra without extra columns.
func TestRunWithoutExtras(t *testing.T) {
	dir := t.TempDir()
	a := write(t, dir, "a.log", "1.0\t10.0.0.1\t1.2.3.4\t80\tx.example\tBenign\t-")
	n := 0
	if _, err := Run([]string{a}, NewMatcher(fields.Zeek()), func(e *fields.Event) { n++ }, nil); err != nil {
		t.Fatal(err)
	}
	if n != 1 {
		t.Errorf("%d records, want 1", n)
	}
	if _, err := Run([]string{filepath.Join(dir, "missing.log")}, NewMatcher(fields.Zeek()), func(*fields.Event) {}, nil); err == nil {
		t.Error("missing file: no error")
	}
}
