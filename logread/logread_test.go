package logread

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

// rec is one record as ordered key=value strings.
type rec []string

// readAll reads every record of r; line errors are collected, not fatal.
func readAll(t *testing.T, r *Reader) (recs []rec, lineErrs []error) {
	t.Helper()
	for i := 0; i < 1e7; i++ {
		var cur rec
		ok, err := r.Next(func(k, v []byte) { cur = append(cur, string(k)+"="+string(v)) })
		if err != nil {
			if !IsLineError(err) {
				t.Fatalf("fatal error: %v", err)
			}
			lineErrs = append(lineErrs, err)
			continue
		}
		if !ok {
			return recs, lineErrs
		}
		recs = append(recs, cur)
	}
	t.Fatal("reader does not stop")
	return nil, nil
}

func openString(t *testing.T, name, content string) *Reader {
	t.Helper()
	r, err := NewReader(strings.NewReader(content), name)
	if err != nil {
		t.Fatalf("NewReader: %v", err)
	}
	return r
}

const tsvHeader = "#separator \\x09\n#set_separator\t,\n#empty_field\t(empty)\n#unset_field\t-\n#path\thttp\n#open\t2024-03-04-00-00-00\n"

func TestRead(t *testing.T) {
	tests := []struct {
		name     string
		in       string
		kind     Kind
		want     []rec
		badLines []int // line numbers of expected line errors
	}{
		{
			name: "tsv basic, unset and empty skipped",
			in: tsvHeader + "#fields\tts\tid.orig_h\thost\ttags\n#types\ttime\taddr\tstring\tset[enum]\n" +
				"1.5\t10.0.0.1\texample.com\t(empty)\n" +
				"2.5\t10.0.0.2\t-\tA,B\n" +
				"#close\t2024-03-04-01-00-00\n",
			kind: KindZeekTSV,
			want: []rec{
				{"ts=1.5", "id.orig_h=10.0.0.1", "host=example.com"},
				{"ts=2.5", "id.orig_h=10.0.0.2", "tags=A,B"},
			},
		},
		{
			name: "tsv escapes decoded",
			in:   tsvHeader + "#fields\ta\tb\n" + "x\\x09y\tback\\x5cslash\\xZZ\n",
			kind: KindZeekTSV,
			want: []rec{{"a=x\ty", "b=back\\slash\\xZZ"}},
		},
		{
			name: "tsv custom separator and unset marker",
			in:   "#separator \\x7c\n#unset_field|NONE\n#fields|a|b|c\nx|NONE|z\n",
			kind: KindZeekTSV,
			want: []rec{{"a=x", "c=z"}},
		},
		{
			name: "tsv crlf, blank lines, no trailing newline",
			in:   "#separator \\x09\r\n#fields\ta\tb\r\n\r\n1\t2\r\n3\t4",
			kind: KindZeekTSV,
			want: []rec{{"a=1", "b=2"}, {"a=3", "b=4"}},
		},
		{
			name: "tsv concatenated logs with new headers",
			in: tsvHeader + "#fields\ta\tb\n1\t2\n#close\tx\n" +
				tsvHeader + "#fields\tc\n3\n",
			kind: KindZeekTSV,
			want: []rec{{"a=1", "b=2"}, {"c=3"}},
		},
		{
			name: "tsv wrong field count is a line error, reading goes on",
			in:   tsvHeader + "#fields\ta\tb\n1\t2\n1\t2\t3\n4\n5\t6\n",
			kind: KindZeekTSV,
			want: []rec{{"a=1", "b=2"}, {"a=5", "b=6"}},
			// header is 6 lines, #fields line 7
			badLines: []int{9, 10},
		},
		{
			name:     "tsv data before #fields",
			in:       "#separator \\x09\n1\t2\n#fields\ta\tb\n3\t4\n",
			kind:     KindZeekTSV,
			want:     []rec{{"a=3", "b=4"}},
			badLines: []int{2},
		},
		{
			name: "json lines flattened",
			in: `{"ts":1655071198.444458,"id.orig_h":"10.0.0.1","source":{"ip":"1.2.3.4","geo":{"cc":"CZ"}},"n":-1.5e3,"ok":true,"no":false,"nil":null,"tags":["a","b"],"e":[],"s":"q\"\u00e9\\"}` + "\n" +
				`{"ts":"2024-03-04T10:00:00.000001Z","nested":[{"x":1},2,[3,"4"]]}` + "\n",
			kind: KindJSON,
			want: []rec{
				{"ts=1655071198.444458", "id.orig_h=10.0.0.1", "source.ip=1.2.3.4", "source.geo.cc=CZ", "n=-1.5e3", "ok=true", "no=false", "tags=a,b", `s=q"é\`},
				{"ts=2024-03-04T10:00:00.000001Z", "nested=2,3,4"},
			},
		},
		{
			name:     "json malformed and non-object lines are line errors",
			in:       "{\"a\":1}\n{\"a\":\n[1,2]\n\"x\"\n{\"a\":2} trailing\n{\"a\":3}\n",
			kind:     KindJSON,
			want:     []rec{{"a=1"}, {"a=3"}},
			badLines: []int{2, 3, 4, 5},
		},
		{
			name: "json with BOM and leading blank lines",
			in:   "\ufeff\n\n{\"a\":\"b\"}\n",
			kind: KindJSON,
			want: []rec{{"a=b"}},
		},
		{
			name: "empty input",
			in:   "",
			kind: KindUnknown,
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := openString(t, "test.log", tc.in)
			if r.Kind() != tc.kind {
				t.Errorf("Kind() = %q, want %q", r.Kind(), tc.kind)
			}
			got, errs := readAll(t, r)
			if !reflect.DeepEqual(got, tc.want) {
				t.Errorf("records:\n got %q\nwant %q", got, tc.want)
			}
			var lines []int
			for _, err := range errs {
				var le *LineError
				if !errors.As(err, &le) {
					t.Fatalf("%v is not a *LineError", err)
				}
				if le.Path != "test.log" || !strings.HasPrefix(err.Error(), fmt.Sprintf("test.log:%d: ", le.Line)) {
					t.Errorf("error %q does not name path and line", err)
				}
				lines = append(lines, le.Line)
			}
			if !reflect.DeepEqual(lines, tc.badLines) {
				t.Errorf("line errors at %v, want %v (%v)", lines, tc.badLines, errs)
			}
			// At EOF Next keeps reporting EOF.
			if ok, err := r.Next(func(k, v []byte) {}); ok || err != nil {
				t.Errorf("Next after EOF = %v, %v", ok, err)
			}
		})
	}
}

func TestLineNumbers(t *testing.T) {
	r := openString(t, "x", tsvHeader+"#fields\ta\n1\n\n2\n")
	var lines []int
	for {
		ok, err := r.Next(func(k, v []byte) {})
		if err != nil {
			t.Fatal(err)
		}
		if !ok {
			break
		}
		lines = append(lines, r.Line())
	}
	if want := []int{8, 10}; !reflect.DeepEqual(lines, want) {
		t.Errorf("Line() = %v, want %v", lines, want)
	}
	if r.Path() != "x" {
		t.Errorf("Path() = %q", r.Path())
	}
}

func TestUnknownFormat(t *testing.T) {
	_, err := NewReader(strings.NewReader("ts,host\n1,example.com\n"), "x.csv")
	if err == nil || !strings.Contains(err.Error(), "x.csv") {
		t.Fatalf("err = %v, want an unknown-format error naming the file", err)
	}
}

func TestLongLine(t *testing.T) {
	long := `{"a":"` + strings.Repeat("x", MaxLineBytes+10) + `"}`
	r := openString(t, "long", "{\"a\":1}\n"+long+"\n{\"a\":2}\n")
	got, errs := readAll(t, r)
	if want := []rec{{"a=1"}, {"a=2"}}; !reflect.DeepEqual(got, want) {
		t.Errorf("records %q, want %q", got, want)
	}
	if len(errs) != 1 || !strings.Contains(errs[0].Error(), "long:2:") {
		t.Errorf("errors %v, want one for line 2", errs)
	}
	// A line longer than the buffer but below the limit is read whole.
	mid := `{"a":"` + strings.Repeat("y", 600<<10) + `"}`
	r = openString(t, "mid", mid+"\n")
	got, errs = readAll(t, r)
	if len(errs) != 0 || len(got) != 1 || len(got[0][0]) != 2+600<<10 {
		t.Errorf("600 KiB line: %d records, errors %v", len(got), errs)
	}
}

func gzipBytes(t *testing.T, parts ...string) []byte {
	t.Helper()
	var b bytes.Buffer
	for _, p := range parts { // one gzip member per part
		zw := gzip.NewWriter(&b)
		zw.Write([]byte(p))
		zw.Close()
	}
	return b.Bytes()
}

func TestOpenGzipAndFiles(t *testing.T) {
	dir := t.TempDir()
	tsv := tsvHeader + "#fields\ta\tb\n1\t2\n3\t4\n"
	files := map[string][]byte{
		"plain.log":       []byte(tsv),
		"zeek.log.gz":     gzipBytes(t, tsv),
		"multi.gz":        gzipBytes(t, tsv[:len(tsv)-4], tsv[len(tsv)-4:]),
		"no-suffix":       gzipBytes(t, "{\"a\":\"1\",\"b\":2}\n{\"a\":\"3\",\"b\":4}\n"),
		"json-named.json": []byte(tsv), // content decides, not the name
	}
	want := []rec{{"a=1", "b=2"}, {"a=3", "b=4"}}
	for name, data := range files {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, data, 0o644); err != nil {
			t.Fatal(err)
		}
		r, err := Open(p)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		got, errs := readAll(t, r)
		if !reflect.DeepEqual(got, want) || len(errs) != 0 {
			t.Errorf("%s: got %q errors %v", name, got, errs)
		}
		if r.Path() != p {
			t.Errorf("Path() = %q", r.Path())
		}
		if err := r.Close(); err != nil {
			t.Errorf("%s: Close: %v", name, err)
		}
	}
	if _, err := Open(filepath.Join(dir, "missing.log")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("missing file: %v", err)
	}
}

func TestCorruptGzipIsFatal(t *testing.T) {
	var data []byte
	for i := 0; i < 2000; i++ {
		data = append(data, fmt.Sprintf("{\"i\":%d,\"pad\":\"%s\"}\n", i, strings.Repeat("z", i%50))...)
	}
	gz := gzipBytes(t, string(data))
	gz = gz[:len(gz)/2] // truncated
	r, err := NewReader(bytes.NewReader(gz), "cut.gz")
	if err != nil {
		t.Fatal(err)
	}
	var fatal error
	for {
		ok, err := r.Next(func(k, v []byte) {})
		if err != nil {
			if IsLineError(err) {
				continue // the last, cut line may be malformed
			}
			fatal = err
			break
		}
		if !ok {
			break
		}
	}
	if fatal == nil || !strings.Contains(fatal.Error(), "cut.gz") {
		t.Fatalf("fatal error = %v, want one naming the file", fatal)
	}
	if _, err := r.Next(func(k, v []byte) {}); err == nil || IsLineError(err) {
		t.Errorf("fatal error is not sticky: %v", err)
	}
}

// TestNoPerFieldAllocs checks that reading a record does not allocate per
// field.
func TestNoPerFieldAllocs(t *testing.T) {
	var tsv, js strings.Builder
	tsv.WriteString(tsvHeader + "#fields\tts\tuid\tid.orig_h\tid.orig_p\tid.resp_h\tid.resp_p\thost\turi\n")
	for i := 0; i < 2000; i++ {
		fmt.Fprintf(&tsv, "%d.123456\tCabc\t10.0.0.1\t%d\t1.2.3.4\t443\texample.com\t/a/b?c=d\n", i, 40000+i)
		fmt.Fprintf(&js, `{"ts":%d.123456,"uid":"Cabc","id.orig_h":"10.0.0.1","id.orig_p":%d,"id.resp_h":"1.2.3.4","id.resp_p":443,"host":"example.com","uri":"/a/b?c=d"}`+"\n", i, 40000+i)
	}
	for _, in := range []string{tsv.String(), js.String()} {
		r := openString(t, "x", in)
		n := 0
		r.Next(func(k, v []byte) { n++ }) // warm up buffers
		allocs := testing.AllocsPerRun(500, func() {
			// A closure made per call, as callers write it, must not
			// escape either.
			if ok, err := r.Next(func(k, v []byte) { n += len(v) }); !ok || err != nil {
				t.Fatalf("Next = %v, %v", ok, err)
			}
		})
		if allocs != 0 {
			t.Errorf("%s: %.1f allocations per record of 8 fields, want 0", r.Kind(), allocs)
		}
	}
}

// sharedData returns ../shared/data beside the repository root.
func sharedData(t testing.TB) string {
	t.Helper()
	dir, err := filepath.Abs(".")
	if err != nil {
		t.Fatal(err)
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			break
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			t.Fatal("repository root (go.mod) not found")
		}
		dir = parent
	}
	data := filepath.Join(dir, "..", "shared", "data")
	if _, err := os.Stat(data); err != nil {
		t.Skipf("real Zeek logs not available: %s is absent (it is the shared data directory beside the repository)", data)
	}
	return data
}

// TestRealZeekLogs reads the labelled CTU captures: every data line must be
// a record with exactly the present (non "-", non "(empty)") fields of that
// line, and no line may be malformed.
func TestRealZeekLogs(t *testing.T) {
	data := sharedData(t)
	files, _ := filepath.Glob(filepath.Join(data, "*", "*.log*"))
	if len(files) == 0 {
		t.Skipf("no logs in %s", data)
	}
	for _, p := range files {
		t.Run(filepath.Base(filepath.Dir(p))+"/"+filepath.Base(p), func(t *testing.T) {
			names, lines := splitTSV(t, p)
			r, err := Open(p)
			if err != nil {
				t.Fatal(err)
			}
			defer r.Close()
			if r.Kind() != KindZeekTSV {
				t.Fatalf("Kind() = %q", r.Kind())
			}
			i := 0
			for {
				var got []string
				ok, err := r.Next(func(k, v []byte) { got = append(got, string(k)+"="+string(v)) })
				if err != nil {
					t.Fatalf("record %d: %v", i, err)
				}
				if !ok {
					break
				}
				if i >= len(lines) {
					t.Fatalf("more records than data lines (%d)", len(lines))
				}
				var want []string
				for j, v := range strings.Split(lines[i], "\t") {
					if v != "-" && v != "(empty)" {
						want = append(want, names[j]+"="+v)
					}
				}
				if !reflect.DeepEqual(got, want) {
					t.Fatalf("record %d:\n got %q\nwant %q", i, got, want)
				}
				i++
			}
			if i != len(lines) || i == 0 {
				t.Errorf("%d records, file has %d data lines", i, len(lines))
			}
		})
	}
}

// splitTSV is an independent, naive reading of a Zeek TSV file with tab
// separators and no escapes.
func splitTSV(t *testing.T, path string) (names []string, lines []string) {
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		l := sc.Text()
		switch {
		case strings.HasPrefix(l, "#fields\t"):
			names = strings.Split(l, "\t")[1:]
		case strings.HasPrefix(l, "#"), l == "":
		default:
			if strings.Contains(l, `\x`) {
				t.Fatalf("test assumes no escapes, line %q", l)
			}
			lines = append(lines, l)
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return names, lines
}

// TestRealKnownRecord pins one record of the Kovter capture, whose
// timestamps are relative seconds.
func TestRealKnownRecord(t *testing.T) {
	p := filepath.Join(sharedData(t), "ctu-kovter-219-2", "http.log.labeled")
	r, err := Open(p)
	if err != nil {
		t.Skipf("%v", err)
	}
	defer r.Close()
	got := map[string]string{}
	if ok, err := r.Next(func(k, v []byte) { got[string(k)] = string(v) }); !ok || err != nil {
		t.Fatalf("Next = %v, %v", ok, err)
	}
	want := map[string]string{"ts": "19.503570", "host": "www.msftncsi.com", "uri": "/ncsi.txt", "user_agent": "Microsoft NCSI",
		"id.resp_p": "80", "label": "Benign", "detailedlabel": "Windows"}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("%s = %q, want %q", k, got[k], v)
		}
	}
	for _, k := range []string{"referrer", "tags", "info_code"} {
		if _, ok := got[k]; ok {
			t.Errorf("unset/empty field %s was passed", k)
		}
	}
	if r.Line() != 9 {
		t.Errorf("Line() = %d, want 9", r.Line())
	}
}

func BenchmarkTSV(b *testing.B) {
	var s strings.Builder
	s.WriteString(tsvHeader + "#fields\tts\tuid\tid.orig_h\tid.orig_p\tid.resp_h\tid.resp_p\tproto\tservice\tduration\torig_bytes\tresp_bytes\tconn_state\n")
	for i := 0; i < 10000; i++ {
		fmt.Fprintf(&s, "%d.123456\tCabcdefghijklmnop\t10.0.0.1\t%d\t1.2.3.4\t443\ttcp\tssl\t1.234567\t1234\t5678\tSF\n", 1700000000+i, 40000+i%20000)
	}
	benchRead(b, s.String())
}

func BenchmarkJSON(b *testing.B) {
	var s strings.Builder
	for i := 0; i < 10000; i++ {
		fmt.Fprintf(&s, `{"ts":%d.123456,"uid":"Cabcdefghijklmnop","id.orig_h":"10.0.0.1","id.orig_p":%d,"id.resp_h":"1.2.3.4","id.resp_p":443,"proto":"tcp","service":"ssl","duration":1.234567,"orig_bytes":1234,"resp_bytes":5678,"conn_state":"SF"}`+"\n", 1700000000+i, 40000+i%20000)
	}
	benchRead(b, s.String())
}

func benchRead(b *testing.B, in string) {
	b.SetBytes(int64(len(in)))
	b.ReportAllocs()
	fields := 0
	for i := 0; i < b.N; i++ {
		r, err := NewReader(strings.NewReader(in), "bench")
		if err != nil {
			b.Fatal(err)
		}
		for {
			ok, err := r.Next(func(k, v []byte) { fields++ })
			if err != nil {
				b.Fatal(err)
			}
			if !ok {
				break
			}
		}
	}
}
