package instance

import (
	"fmt"
	"math"
	"path/filepath"
	"strconv"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/beacongrid/beacongrid/detect"
	"github.com/beacongrid/beacongrid/fields"
	"github.com/beacongrid/beacongrid/internal/flbtest"
)

// zeekHTTP returns n Zeek http records of 15 fields each, spread over
// hosts sources and domains destinations, in the hour before now.
func zeekHTTP(n, hosts, domains int, now time.Time) []flbtest.Event {
	evs := make([]flbtest.Event, n)
	start := now.Add(-time.Hour)
	for i := range evs {
		ts := start.Add(time.Duration(i) * time.Hour / time.Duration(n))
		evs[i] = flbtest.Event{Time: ts, Record: map[string]any{
			"ts":                float64(ts.UnixMicro()) / 1e6,
			"uid":               "CHhAvVGS1DHFjwGM9" + strconv.Itoa(i%10),
			"id.orig_h":         fmt.Sprintf("10.%d.%d.%d", i%hosts/65536, i%hosts/256%256, i%hosts%256),
			"id.orig_p":         49152 + i%16384,
			"id.resp_h":         fmt.Sprintf("203.0.113.%d", i%domains%250),
			"id.resp_p":         80,
			"trans_depth":       1,
			"method":            "GET",
			"host":              fmt.Sprintf("cdn%d.example.com", i%domains),
			"uri":               "/api/v2/updates/check?client=" + strconv.Itoa(i%97),
			"version":           "1.1",
			"user_agent":        "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36",
			"request_body_len":  0,
			"response_body_len": 1432 + i%500,
			"status_code":       200,
		}}
	}
	return evs
}

// BenchmarkFlush measures the whole flush path of one instance (decode, map
// fields, flow key, count; scoring is a stand-in model) on a chunk of 1000
// Zeek http records over 500 flows. The chunk is flushed again each
// iteration, so the flows are established and counting dominates.
//
//	go test -run '^$' -bench Flush -benchmem -cpuprofile cpu.out ./plugin/instance
func BenchmarkFlush(b *testing.B) {
	in, _ := newInstanceTB(b)
	defer in.Close()
	const records = 1000
	data, err := flbtest.EncodeChunk(zeekHTTP(records, 100, 5, time.Now()))
	if err != nil {
		b.Fatal(err)
	}
	for k := 0; k < 2; k++ { // as in BenchmarkFlushZeekHTTP
		in.Flush(data, "zeek.http")
		in.store.Wait()
	}
	b.ReportAllocs()
	b.SetBytes(int64(len(data)))
	b.ResetTimer()
	cpu := processCPU()
	for i := 0; i < b.N; i++ {
		if rc := in.Flush(data, "zeek.http"); rc != FLBOK {
			b.Fatal(rc)
		}
	}
	cpu = processCPU() - cpu
	b.StopTimer()
	reportRecords(b, records*b.N, cpu)
	if got := in.Stats().Detector.Events; got < int64(records)*int64(b.N) {
		b.Fatalf("%d events observed, want >= %d", got, records*b.N)
	}
}

// BenchmarkFlushZeekHTTP is BenchmarkFlush on 1000 real Zeek http records
// (../shared/data, ~17 fields each) scored by the embedded model: the
// in-process twin of make bench-plugin.
func BenchmarkFlushZeekHTTP(b *testing.B) {
	var recs []map[string]any
	for _, f := range []string{"ctu-normal-40-day1/http.log.labeled", "ctu-kovter-219-2/http.log.labeled"} {
		r, err := flbtest.ReadZeekTSV(filepath.Join("../../../shared/data", f), 1000-len(recs), "label", "detailedlabel")
		if err != nil {
			b.Fatal(err)
		}
		recs = append(recs, r...)
	}
	data, err := flbtest.EncodeChunk(flbtest.Rebase(recs, time.Now(), time.Hour))
	if err != nil {
		b.Fatal(err)
	}
	cfg, err := ParseConfig(MapGetter{"spool_dir": b.TempDir()}, "bench")
	if err != nil {
		b.Fatal(err)
	}
	m, err := LoadModel(cfg)
	if err != nil {
		b.Fatal(err)
	}
	in, err := New(cfg, NewLogger("bench"), m)
	if err != nil {
		b.Fatal(err)
	}
	defer in.Close()
	// Let ristretto admit the flows (asynchronously) before timing: the
	// steady state, and the same in every run (cachegrind's included).
	for k := 0; k < 2; k++ {
		in.Flush(data, "zeek.http")
		in.store.Wait()
	}
	b.ReportAllocs()
	b.SetBytes(int64(len(data)))
	b.ResetTimer()
	cpu := processCPU()
	for i := 0; i < b.N; i++ {
		in.Flush(data, "zeek.http")
	}
	cpu = processCPU() - cpu
	b.StopTimer()
	reportRecords(b, len(recs)*b.N, cpu)
	if got := in.Stats().Detector.Events; got != int64(len(recs))*int64(b.N+2) {
		b.Fatalf("%d events observed, want %d", got, len(recs)*(b.N+2))
	}
}

// reportRecords reports records per wall second, wall and CPU nanoseconds
// per record: cpu is the process's CPU time (user + system, every thread)
// over the timed loop, which on a loaded machine, unlike the wall time,
// leaves out the waiting for a core.
func reportRecords(b *testing.B, records int, cpu time.Duration) {
	b.ReportMetric(float64(records)/b.Elapsed().Seconds(), "records/s")
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(records), "ns/record")
	b.ReportMetric(float64(cpu.Nanoseconds())/float64(records), "cpu-ns/record")
}

// processCPU is the CPU time (user + system) the process used so far.
func processCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

func newInstanceTB(tb testing.TB) (*Instance, string) {
	tb.Helper()
	dir := tb.TempDir()
	cfg, err := ParseConfig(MapGetter{"spool_dir": dir}, "bench")
	if err != nil {
		tb.Fatal(err)
	}
	in, err := New(cfg, NewLogger("bench"), regularModel{})
	if err != nil {
		tb.Fatal(err)
	}
	return in, dir
}

// flowKeys stands in for the detector: it makes each event's flow key (the
// last step before the cache) and counts the flows it could make.
type flowKeys struct {
	flows, skipped int
	buf            []byte
}

func (k *flowKeys) Add(_ *detect.Batch, e *fields.Event) {
	var ok bool
	_, _, k.buf, ok = e.Flow(k.buf)
	if ok {
		k.flows++
	} else {
		k.skipped++
	}
}

func (k *flowKeys) Flush(*detect.Batch) {}

// The plugin's own part of a flush (read the chunk in place, map the
// fields, make the flow key) allocates nothing at all, whatever the chunk
// holds: Zeek http records, flat or nested, with every timestamp encoding.
func TestFlushDecodeAllocatesNothing(t *testing.T) {
	if raceEnabled {
		t.Skip("allocation counts are meaningless under the race detector")
	}
	in, _ := newInstance(t)
	defer in.Close()
	keys := &flowKeys{}
	in.obs = keys
	evs := zeekHTTP(1000, 100, 5, time.Now())
	for _, opts := range [][]flbtest.ChunkOption{
		nil,
		{flbtest.WithFormat(flbtest.FormatLegacy), flbtest.WithTimeFormat(flbtest.TimeInt)},
		{flbtest.WithFixArray(), flbtest.WithBinKeys(), flbtest.WithTimeFormat(flbtest.TimeFloat)},
	} {
		data := encode(t, evs, opts...)
		in.Flush(data, "zeek.http")
		keys.flows = 0
		n := testing.AllocsPerRun(20, func() { in.Flush(data, "zeek.http") })
		if keys.flows != 21*1000 || keys.skipped != 0 {
			t.Fatalf("%d flow keys made in 21 flushes of 1000 records (%d skipped)", keys.flows, keys.skipped)
		}
		if n != 0 {
			t.Fatalf("%v allocations per flush of 1000 records, want 0", n)
		}
	}
}

// A whole flush, counting into the cache, allocates nothing per record but
// what the cache's ristretto bookkeeping costs now and then: ristretto
// batches the keys it sees in stripes of 64 and, when its policy goroutine
// takes a full stripe, allocates the next one. So a window of flushes
// measures from 0 to about 2 per 64 records depending on whether that
// goroutine got a core; on a loaded machine one window can come close to
// the bound. The test takes the least of five windows of 20 flushes: an
// allocation per record (1000 per flush) would exceed the bound in every
// window, and that is what the test is for.
func TestFlushAllocationsPerRecord(t *testing.T) {
	if raceEnabled {
		t.Skip("allocation counts are meaningless under the race detector")
	}
	in, _ := newInstance(t)
	defer in.Close()
	data := encode(t, zeekHTTP(1000, 100, 5, time.Now()))
	// Let the flows through ristretto's asynchronous admission first: new
	// flows allocate (once each), and a flow still pending is offered again.
	for i := 0; i < 3; i++ {
		in.Flush(data, "zeek.http")
		in.store.Wait()
	}
	const windows, flushes = 5, 20
	least := math.Inf(1)
	var all []float64
	for w := 0; w < windows; w++ {
		before := in.Stats().Detector.Events
		n := testing.AllocsPerRun(flushes, func() { in.Flush(data, "zeek.http") })
		if got := in.Stats().Detector.Events - before; got != (flushes+1)*1000 {
			t.Fatalf("%d events observed in %d flushes of 1000, want %d", got, flushes+1, (flushes+1)*1000)
		}
		all = append(all, n)
		least = min(least, n)
	}
	t.Logf("allocations per flush of 1000 records in %d windows of %d flushes: %v (least %.1f, %.4f per record)", windows, flushes, all, least, least/1000)
	if limit := 2*1000.0/64 + 4; least > limit {
		t.Fatalf("at least %v allocations per flush of 1000 records in every window, want <= %.0f", least, limit)
	}
}

// corpus returns the fuzz corpus of the chunk reader.
func corpus(t *testing.T) map[string][]byte {
	t.Helper()
	c, err := flbtest.ReadFuzzCorpus("../chunk/testdata/fuzz/FuzzReader")
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// Every chunk of the fuzz corpus, whole and cut short at every byte (every
// few bytes for long ones), returns FLB_OK from Flush without a panic.
func TestFlushFuzzCorpus(t *testing.T) {
	in, _ := newInstance(t)
	defer in.Close()
	chunks := corpus(t)
	flushes := 0
	for name, data := range chunks {
		step := len(data)/64 + 1
		for cut := len(data); cut >= 0; cut -= step {
			func() {
				defer func() {
					if r := recover(); r != nil {
						t.Fatalf("%s cut at %d: panic %v", name, cut, r)
					}
				}()
				if rc := in.Flush(data[:cut:cut], "fuzz"); rc != FLBOK {
					t.Fatalf("%s cut at %d: rc %d", name, cut, rc)
				}
				flushes++
			}()
		}
	}
	t.Logf("%d corpus chunks, %d flushes", len(chunks), flushes)
	if st := in.Stats(); st.Chunks != int64(flushes) {
		t.Fatalf("%d chunks counted, %d flushed", st.Chunks, flushes)
	}
}

// A chunk cut short counts exactly the events wholly before the cut: for
// every cut of a chunk of distinct flows, the counted events are those
// whose encoding ends at or before the cut.
func TestFlushCutCountsEventsBeforeCut(t *testing.T) {
	now := time.Now()
	evs := zeekHTTP(40, 40, 40, now) // 40 distinct flows
	var data []byte
	var ends []int
	for _, e := range evs {
		var err error
		if data, err = flbtest.AppendEvent(data, e); err != nil {
			t.Fatal(err)
		}
		ends = append(ends, len(data))
	}
	in, _ := newInstance(t)
	defer in.Close()
	for cut := 0; cut <= len(data); cut += 7 {
		before := in.Stats()
		in.Flush(data[:cut:cut], "zeek.http")
		st := in.Stats()
		want := 0
		for _, e := range ends {
			if e <= cut {
				want++
			}
		}
		events, counted := st.Detector.Events-before.Detector.Events, st.Cache.Counted-before.Cache.Counted
		if events != int64(want) || counted != int64(want) {
			t.Fatalf("cut at %d of %d: %d events observed, %d counted, want %d", cut, len(data), events, counted, want)
		}
		boundary := cut == 0 || (want > 0 && ends[want-1] == cut)
		if wantBad := map[bool]int64{true: 0, false: 1}[boundary]; st.BadChunks-before.BadChunks != wantBad {
			t.Fatalf("cut at %d: bad chunks %d, want %d", cut, st.BadChunks-before.BadChunks, wantBad)
		}
	}
}

// The preset property chooses the record keys: FortiGate records count
// with preset fortinet and are not understood with the default presets.
func TestFlushPreset(t *testing.T) {
	now := time.Now().Add(-time.Hour)
	var evs []flbtest.Event
	for i := 0; i < 30; i++ {
		evs = append(evs, flbtest.Event{Time: now.Add(time.Duration(i) * time.Second), Record: map[string]any{
			"date": "2026-12-01", "type": "traffic", "srcip": "10.3.0.1", "srcport": 50000 + i, "dstip": "203.0.113.60",
			"dstport": 443, "hostname": "portal.example.com", "sentbyte": 512, "action": "accept"}})
	}
	data := encode(t, evs)
	for _, tc := range []struct {
		preset       string
		counted      int64
		flows        int64
		skippedFlows int64
	}{{"fortinet", 30, 1, 0}, {"", 0, 0, 30}, {"zeek,fortinet", 30, 1, 0}} {
		cfg, err := ParseConfig(MapGetter{"spool_dir": t.TempDir(), "preset": tc.preset}, "test")
		if err != nil {
			t.Fatal(err)
		}
		in, err := New(cfg, NewLogger("test"), regularModel{})
		if err != nil {
			t.Fatal(err)
		}
		in.Flush(data, "fortigate")
		st := in.Stats()
		in.Close()
		if st.Cache.Counted != tc.counted || st.Cache.Flows != tc.flows || st.Detector.Skipped != tc.skippedFlows {
			t.Errorf("preset %q: counted %d in %d flows, %d skipped; want %d in %d, %d skipped",
				tc.preset, st.Cache.Counted, st.Cache.Flows, st.Detector.Skipped, tc.counted, tc.flows, tc.skippedFlows)
		}
	}
}

// Fluent Bit "workers N": flushes of one instance run concurrently on
// several threads; every event is counted exactly once (run with -race to
// check the sharing too).
func TestFlushConcurrentWorkers(t *testing.T) {
	in, _ := newInstance(t)
	defer in.Close()
	data := encode(t, zeekHTTP(500, 50, 5, time.Now()))
	const workers, flushes = 4, 20
	var wg sync.WaitGroup
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < flushes; i++ {
				if rc := in.Flush(data, "zeek.http"); rc != FLBOK {
					t.Errorf("rc %d", rc)
				}
			}
		}()
	}
	wg.Wait()
	st := in.Stats()
	if want := int64(workers * flushes * 500); st.Detector.Events != want || st.Cache.Counted != want || st.Chunks != workers*flushes {
		t.Fatalf("events %d counted %d chunks %d, want %d, %d, %d", st.Detector.Events, st.Cache.Counted, st.Chunks, want, want, workers*flushes)
	}
}

// Every layout Fluent Bit emits counts the same events: v2 and legacy
// events, EventTime, integer and float timestamps, fixarray or array32
// headers, str or bin keys, flat dotted or nested keys; OpenTelemetry group
// markers (start and end) around them are skipped and never counted.
func TestFlushEveryLayout(t *testing.T) {
	now := time.Now().Add(-time.Hour)
	var evs []flbtest.Event
	evs = append(evs, flbtest.Event{Group: flbtest.GroupStart, Record: map[string]any{"resource": map[string]any{"service.name": "zeek"}}})
	for i := 0; i < 10; i++ {
		ts := now.Add(time.Duration(i) * time.Minute)
		rec := zeek(ts, "10.0.0.9", "layout.example")
		if i%2 == 1 { // Zeek's JSON writer without flattening: a nested id map
			delete(rec, "id.orig_h")
			delete(rec, "id.orig_p")
			delete(rec, "id.resp_h")
			delete(rec, "id.resp_p")
			rec["id"] = map[string]any{"orig_h": "10.0.0.9", "orig_p": 50000, "resp_h": "203.0.113.5", "resp_p": 80}
		}
		evs = append(evs, flbtest.Event{Time: ts, Record: rec})
	}
	evs = append(evs, flbtest.Event{Group: flbtest.GroupEnd, Record: map[string]any{}})
	layouts := map[string][]flbtest.ChunkOption{
		"v2 array32 EventTime": nil,
		"v2 fixarray int":      {flbtest.WithFixArray(), flbtest.WithTimeFormat(flbtest.TimeInt)},
		"legacy float bin":     {flbtest.WithFormat(flbtest.FormatLegacy), flbtest.WithTimeFormat(flbtest.TimeFloat), flbtest.WithBinKeys()},
		"legacy fixarray":      {flbtest.WithFormat(flbtest.FormatLegacy), flbtest.WithFixArray()},
	}
	for name, opts := range layouts {
		in, _ := newInstance(t)
		in.Flush(encode(t, evs, opts...), "zeek.http")
		st := in.Stats()
		in.Close()
		if st.Detector.Events != 10 || st.Cache.Counted != 10 || st.Cache.Flows != 1 || st.GroupMarkers != 2 || st.BadEvents != 0 || st.BadChunks != 0 {
			t.Errorf("%s: events %d counted %d flows %d markers %d bad events %d bad chunks %d; want 10, 10, 1, 2, 0, 0",
				name, st.Detector.Events, st.Cache.Counted, st.Cache.Flows, st.GroupMarkers, st.BadEvents, st.BadChunks)
		}
	}
}
