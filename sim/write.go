package sim

import (
	"bufio"
	"compress/gzip"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"
)

// WriteOptions control WriteDir.
type WriteOptions struct {
	// Gzip compresses the logs (http.log.gz ...); truth.csv stays plain.
	Gzip bool
	// LabelColumns appends the two label columns of the Stratosphere
	// (CTU) labelled datasets, "label" (Malicious/Benign) and
	// "detailedlabel" (the kind), to every log record.
	LabelColumns bool
}

// Summary reports what WriteDir produced.
type Summary struct {
	Dir        string
	Files      []string       // paths written
	Events     map[string]int // records per log (http, conn, ssl)
	FlowKinds  map[string]int // flows per kind
	Flows      int
	Malicious  int            // malicious flows
	Hosts      map[string]int // hosts per role
	Implants   int
	Start, End time.Time
}

// TotalEvents returns the number of records written.
func (s *Summary) TotalEvents() int {
	n := 0
	for _, v := range s.Events {
		n += v
	}
	return n
}

// String renders a short human-readable report.
func (s *Summary) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "simulated %s .. %s\n", s.Start.Format(time.RFC3339), s.End.Format(time.RFC3339))
	fmt.Fprintf(&b, "hosts:")
	for _, r := range []string{"laptop", "desktop", "server", "iot"} {
		fmt.Fprintf(&b, " %s=%d", r, s.Hosts[r])
	}
	fmt.Fprintf(&b, " (implants: %d)\n", s.Implants)
	fmt.Fprintf(&b, "records: conn=%d http=%d ssl=%d (total %d)\n", s.Events[LogConn], s.Events[LogHTTP], s.Events[LogSSL], s.TotalEvents())
	fmt.Fprintf(&b, "flows: %d (%d malicious)\n", s.Flows, s.Malicious)
	kinds := make([]string, 0, len(s.FlowKinds))
	for k := range s.FlowKinds {
		kinds = append(kinds, k)
	}
	sort.Strings(kinds)
	for _, k := range kinds {
		fmt.Fprintf(&b, "  %-28s %7d\n", k, s.FlowKinds[k])
	}
	return b.String()
}

// zeekWriter writes one Zeek ASCII log.
type zeekWriter struct {
	path   string
	f      *os.File
	gz     *gzip.Writer
	bw     *asyncWriter
	cols   []column
	labels bool
	line   []byte
}

// zeekTime formats #open/#close stamps like Zeek.
const zeekTime = "2006-01-02-15-04-05"

func newZeekWriter(path, log string, opt WriteOptions, open time.Time) (*zeekWriter, error) {
	f, err := os.Create(path)
	if err != nil {
		return nil, err
	}
	zw := &zeekWriter{path: path, f: f, cols: columnsFor(log), labels: opt.LabelColumns}
	var w io.Writer = f
	if opt.Gzip {
		zw.gz, _ = gzip.NewWriterLevel(f, gzip.BestSpeed)
		w = zw.gz
	}
	zw.bw = newAsyncWriter(w)
	names := make([]string, 0, len(zw.cols)+2)
	types := make([]string, 0, len(zw.cols)+2)
	for _, c := range zw.cols {
		names = append(names, c.name)
		types = append(types, c.typ)
	}
	if zw.labels {
		names = append(names, "label", "detailedlabel")
		types = append(types, "string", "string")
	}
	fmt.Fprintf(zw.bw, "#separator \\x09\n#set_separator\t,\n#empty_field\t(empty)\n#unset_field\t-\n#path\t%s\n#open\t%s\n#fields\t%s\n#types\t%s\n",
		log, open.Format(zeekTime), strings.Join(names, "\t"), strings.Join(types, "\t"))
	return zw, nil
}

func (zw *zeekWriter) write(ev *Event) error {
	b := zw.line[:0]
	for i, c := range zw.cols {
		if i > 0 {
			b = append(b, '\t')
		}
		b = c.value(b, ev)
	}
	if zw.labels {
		if ev.Label == Malicious {
			b = append(b, "\tMalicious\t"...)
		} else {
			b = append(b, "\tBenign\t"...)
		}
		b = appendString(b, ev.Kind)
	}
	b = append(b, '\n')
	zw.line = b
	_, err := zw.bw.Write(b)
	return err
}

func (zw *zeekWriter) close(closeTime time.Time) error {
	fmt.Fprintf(zw.bw, "#close\t%s\n", closeTime.Format(zeekTime))
	err := zw.bw.Close()
	if zw.gz != nil {
		err = errors.Join(err, zw.gz.Close())
	}
	return errors.Join(err, zw.f.Close())
}

// LogFileName returns the file name WriteDir uses for a log.
func LogFileName(log string, gz bool) string {
	if gz {
		return log + ".log.gz"
	}
	return log + ".log"
}

// WriteDir simulates cfg and writes http.log, conn.log, ssl.log (Zeek TSV,
// optionally gzipped) and truth.csv into dir, creating it if needed. Events
// are streamed to the files as they are generated.
func WriteDir(cfg Config, dir string, opt WriteOptions) (*Summary, error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	w, err := buildWorld(cfg)
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	end := time.UnixMicro(w.end).In(cfg.Start.Location())
	sum := &Summary{Dir: dir, Events: map[string]int{}, FlowKinds: map[string]int{}, Hosts: map[string]int{},
		Implants: len(w.implants), Start: cfg.Start, End: end}
	for _, h := range w.hosts {
		sum.Hosts[h.role.String()]++
	}

	writers := map[string]*zeekWriter{}
	closeAll := func() error {
		var errs error
		for _, log := range []string{LogConn, LogHTTP, LogSSL} {
			if zw := writers[log]; zw != nil {
				errs = errors.Join(errs, zw.close(end))
			}
		}
		return errs
	}
	for _, log := range []string{LogConn, LogHTTP, LogSSL} {
		path := filepath.Join(dir, LogFileName(log, opt.Gzip))
		zw, err := newZeekWriter(path, log, opt, cfg.Start)
		if err != nil {
			closeAll()
			return nil, err
		}
		writers[log] = zw
		sum.Files = append(sum.Files, path)
	}
	truth := NewTruth()
	var werr error
	w.run(func(ev Event) {
		if werr != nil {
			return
		}
		truth.Add(&ev)
		sum.Events[ev.Log]++
		werr = writers[ev.Log].write(&ev)
	})
	if err := errors.Join(werr, closeAll()); err != nil {
		return nil, err
	}

	truthPath := filepath.Join(dir, "truth.csv")
	f, err := os.Create(truthPath)
	if err != nil {
		return nil, err
	}
	bw := bufio.NewWriter(f)
	err = truth.WriteCSV(bw)
	err = errors.Join(err, bw.Flush(), f.Close())
	if err != nil {
		return nil, err
	}
	sum.Files = append(sum.Files, truthPath)
	for _, r := range truth.Rows() {
		sum.Flows++
		sum.FlowKinds[r.Kind]++
		if r.Label == Malicious {
			sum.Malicious++
		}
	}
	return sum, nil
}

// asyncWriter hands full buffers to a goroutine that writes (and, below it,
// compresses) them, so that generating and compressing use two cores. Write
// errors are reported by Close.
type asyncWriter struct {
	w    io.Writer
	buf  []byte
	ch   chan []byte
	free chan []byte
	done chan error
}

const asyncChunk = 256 << 10

func newAsyncWriter(w io.Writer) *asyncWriter {
	a := &asyncWriter{w: w, ch: make(chan []byte, 2), free: make(chan []byte, 3), done: make(chan error, 1)}
	for i := 0; i < 2; i++ {
		a.free <- make([]byte, 0, asyncChunk+64<<10)
	}
	a.buf = make([]byte, 0, asyncChunk+64<<10)
	go func() {
		var err error
		for b := range a.ch {
			if err == nil {
				_, err = a.w.Write(b)
			}
			a.free <- b[:0]
		}
		a.done <- err
	}()
	return a
}

func (a *asyncWriter) Write(p []byte) (int, error) {
	a.buf = append(a.buf, p...)
	if len(a.buf) >= asyncChunk {
		a.ch <- a.buf
		a.buf = <-a.free
	}
	return len(p), nil
}

// Close writes what is buffered and waits for the writer goroutine.
func (a *asyncWriter) Close() error {
	if len(a.buf) > 0 {
		a.ch <- a.buf
		a.buf = nil
	}
	close(a.ch)
	return <-a.done
}
