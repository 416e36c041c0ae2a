package sidecar

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/beacongrid/beacongrid/spool"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
)

func quietLog() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

// newTestDeliverer wires a Deliverer on the real spool reader of cfg.SpoolDir
// and an ESIndexer on cfg.Addresses.
func newTestDeliverer(t *testing.T, cfg Config) (*Deliverer, *Metrics) {
	t.Helper()
	return newDelivererWith(t, cfg, openReader(t, cfg.SpoolDir), nil)
}

func newDelivererWith(t *testing.T, cfg Config, sp SpoolReader, idx Indexer) (*Deliverer, *Metrics) {
	t.Helper()
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	if idx == nil {
		es, err := NewESIndexer(cfg)
		if err != nil {
			t.Fatal(err)
		}
		idx = es
	}
	m, err := NewMetrics(prometheus.NewRegistry(), cfg.SpoolDir)
	if err != nil {
		t.Fatal(err)
	}
	return NewDeliverer(cfg, sp, idx, Options{Logger: quietLog(), Metrics: m}), m
}

func value(t *testing.T, c prometheus.Collector) float64 {
	t.Helper()
	ch := make(chan prometheus.Metric, 10)
	c.Collect(ch)
	close(ch)
	var sum float64
	for m := range ch {
		var pb dto.Metric
		if err := m.Write(&pb); err != nil {
			t.Fatal(err)
		}
		switch {
		case pb.Counter != nil:
			sum += pb.Counter.GetValue()
		case pb.Gauge != nil:
			sum += pb.Gauge.GetValue()
		case pb.Histogram != nil:
			sum += float64(pb.Histogram.GetSampleCount())
		}
	}
	return sum
}

func drain(t *testing.T, d *Deliverer) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := d.Drain(ctx); err != nil {
		t.Fatalf("Drain: %v", err)
	}
}

// lastEnd returns the spool position after the last line in dir.
func lastEnd(t *testing.T, dir string) spool.Position {
	t.Helper()
	r := openReader(t, dir)
	var end spool.Position
	for {
		recs, err := r.Next(1000)
		if err != nil {
			t.Fatal(err)
		}
		if len(recs) == 0 {
			return end
		}
		end = recs[len(recs)-1].End
	}
}

func TestDrainIndexesEverythingAndCommits(t *testing.T) {
	es := newFakeES(t)
	dir := t.TempDir()
	alerts := writeAlerts(t, dir, 0, 12)
	alerts = append(alerts, writeAlerts(t, dir, 12, 8)...)
	want := lastEnd(t, dir)
	cfg := testConfig(dir, es.URL())
	d, m := newTestDeliverer(t, cfg)
	drain(t, d)

	docs, ops, calls := es.snapshot()
	if docs != 20 || ops != 20 {
		t.Fatalf("docs=%d ops=%d, want 20 and 20", docs, ops)
	}
	if len(calls) != 3 { // 20 lines in batches of 7
		t.Errorf("bulk calls = %d, want 3", len(calls))
	}
	for _, a := range alerts {
		got, ok := es.doc(a.Event.ID)
		if !ok {
			t.Fatalf("alert %s not indexed", a.Event.ID)
		}
		if !bytes.Equal(got, alertLine(t, a)) {
			t.Fatalf("document %s differs from its spool line", a.Event.ID)
		}
	}
	if p, ok := checkpoint(t, dir); !ok || p != want {
		t.Errorf("checkpoint = %v %v, want %v", p, ok, want)
	}
	body, exists := es.template(cfg.Index)
	if body == nil || !exists {
		t.Errorf("template installed %v, index created %v", body != nil, exists)
	}
	var tmpl struct {
		IndexPatterns []string `json:"index_patterns"`
	}
	if err := json.Unmarshal(body, &tmpl); err != nil || !slices.Equal(tmpl.IndexPatterns, []string{cfg.Index}) {
		t.Errorf("template index_patterns = %v (%v)", tmpl.IndexPatterns, err)
	}
	for name, c := range map[string]prometheus.Collector{"read": m.Read, "indexed": m.Indexed, "committed": m.Committed} {
		if v := value(t, c); v != 20 {
			t.Errorf("%s = %v, want 20", name, v)
		}
	}
	if v := value(t, m.Retried); v != 0 {
		t.Errorf("retried = %v, want 0", v)
	}
	if err := d.Ready(); err != nil {
		t.Errorf("Ready: %v", err)
	}
}

func TestTransientRequestFailureRetriedWithoutCommit(t *testing.T) {
	es := newFakeES(t)
	dir := t.TempDir()
	writeAlerts(t, dir, 0, 5)
	es.requestStatus = func(call int) int {
		if call <= 2 {
			return []int{503, 429}[call-1]
		}
		return 0
	}
	var committedEarly bool
	es.onBulk = func(call int) {
		if _, ok := checkpoint(t, dir); ok {
			committedEarly = true
		}
	}
	d, m := newTestDeliverer(t, testConfig(dir, es.URL()))
	drain(t, d)

	docs, _, calls := es.snapshot()
	if docs != 5 || len(calls) != 3 {
		t.Fatalf("docs=%d calls=%d, want 5 and 3", docs, len(calls))
	}
	if committedEarly {
		t.Error("checkpoint written before the batch succeeded")
	}
	if _, ok := checkpoint(t, dir); !ok {
		t.Error("no checkpoint after success")
	}
	if v := value(t, m.Retried); v != 10 {
		t.Errorf("retried = %v, want 10", v)
	}
	if v := value(t, m.Failed); v != 10 {
		t.Errorf("failed = %v, want 10", v)
	}
	if v := value(t, m.Latency); v != 3 {
		t.Errorf("latency samples = %v, want 3", v)
	}
}

func TestPartialBulkFailureResendsOnlyFailedItems(t *testing.T) {
	es := newFakeES(t)
	dir := t.TempDir()
	alerts := writeAlerts(t, dir, 0, 5)
	flaky := map[string]int{alerts[1].Event.ID: 429, alerts[3].Event.ID: 503}
	es.itemStatus = func(call int, id string) int {
		if call == 1 {
			return flaky[id]
		}
		return 0
	}
	d, m := newTestDeliverer(t, testConfig(dir, es.URL()))
	drain(t, d)

	docs, ops, calls := es.snapshot()
	if docs != 5 || ops != 5 {
		t.Fatalf("docs=%d ops=%d, want 5 and 5", docs, ops)
	}
	want := []string{alerts[1].Event.ID, alerts[3].Event.ID}
	if len(calls) != 2 || !slices.Equal(calls[1], want) {
		t.Fatalf("calls = %v, want a second call with exactly %v", calls, want)
	}
	if v := value(t, m.Retried); v != 2 {
		t.Errorf("retried = %v, want 2", v)
	}
	if dls := readDeadLetters(t, dir); len(dls) != 0 {
		t.Errorf("dead letters = %v, want none", dls)
	}
}

func TestPermanentRejectionIsDeadLetteredAndDoesNotBlock(t *testing.T) {
	es := newFakeES(t)
	dir := t.TempDir()
	bad := testAlert(2)
	bad.Source.IP = "not-an-ip" // the mapping (type ip) refuses it
	lines := [][]byte{alertLine(t, testAlert(0)), alertLine(t, testAlert(1)), alertLine(t, bad), alertLine(t, testAlert(3))}
	writeSpool(t, dir, lines...)
	want := lastEnd(t, dir)
	cfg := testConfig(dir, es.URL())
	d, m := newTestDeliverer(t, cfg)
	drain(t, d)

	docs, _, calls := es.snapshot()
	if docs != 3 || len(calls) != 1 {
		t.Fatalf("docs=%d calls=%d, want 3 and 1 (no retry of a 400)", docs, len(calls))
	}
	dls := readDeadLetters(t, dir)
	if len(dls) != 1 {
		t.Fatalf("dead letters = %d, want 1", len(dls))
	}
	dl := dls[0]
	if dl.Reason != ReasonRejected || dl.Status != 400 || dl.ErrorType != "document_parsing_exception" ||
		dl.ID != bad.Event.ID || dl.Index != cfg.Index || dl.Line != string(lines[2]) || dl.Error == "" {
		t.Errorf("dead letter = %+v", dl)
	}
	if p, _ := checkpoint(t, dir); p != want {
		t.Errorf("checkpoint = %v, want %v", p, want)
	}
	if v := value(t, m.DeadLettered); v != 1 {
		t.Errorf("dead_lettered = %v, want 1", v)
	}
}

func TestMalformedLinesAreDeadLettered(t *testing.T) {
	es := newFakeES(t)
	dir := t.TempDir()
	good := testAlert(9)
	malformed := []string{
		`not json`,
		`{"event":{}}`,
		`[1,2]`,
		`{"event":{"id":5}}`,
		`{"event":"x"}`,
		`{"event":{"id":"  "}}`,
		`null`,
	}
	var lines [][]byte
	for _, l := range malformed {
		lines = append(lines, []byte(l))
	}
	lines = append(lines, alertLine(t, good))
	writeSpool(t, dir, lines...)
	d, m := newTestDeliverer(t, testConfig(dir, es.URL()))
	drain(t, d)

	_, _, calls := es.snapshot()
	var sent []string
	for _, c := range calls {
		sent = append(sent, c...)
	}
	if !slices.Equal(sent, []string{good.Event.ID}) {
		t.Errorf("sent %v, want only %s", sent, good.Event.ID)
	}
	dls := readDeadLetters(t, dir)
	if len(dls) != len(malformed) {
		t.Fatalf("dead letters = %d, want %d", len(dls), len(malformed))
	}
	for i, dl := range dls {
		if dl.Reason != ReasonMalformed || dl.Line != malformed[i] || dl.Error == "" {
			t.Errorf("dead letter %d = %+v", i, dl)
		}
	}
	if v := value(t, m.DeadLettered); v != float64(len(malformed)) {
		t.Errorf("dead_lettered = %v", v)
	}
	if _, ok := checkpoint(t, dir); !ok {
		t.Error("no checkpoint")
	}
}

func TestShutdownWhileFailingCommitsNothingAndRedelivers(t *testing.T) {
	es := newFakeES(t)
	dir := t.TempDir()
	writeAlerts(t, dir, 0, 5)
	es.requestStatus = func(int) int { return 503 }
	ctx, cancel := context.WithCancel(context.Background())
	es.onBulk = func(call int) {
		if call == 3 {
			cancel()
		}
	}
	d, _ := newTestDeliverer(t, testConfig(dir, es.URL()))
	if err := d.Run(ctx); err != nil {
		t.Fatalf("Run after cancel: %v", err)
	}
	if _, ok := checkpoint(t, dir); ok {
		t.Fatal("checkpoint written although nothing was indexed")
	}
	if err := d.Ready(); err == nil {
		t.Error("Ready = nil while Elasticsearch fails")
	}
	// After a restart the same lines come again, and now succeed.
	es.set(func(f *fakeES) { f.requestStatus, f.onBulk = nil, nil })
	d2, _ := newTestDeliverer(t, testConfig(dir, es.URL()))
	drain(t, d2)
	if docs, _, _ := es.snapshot(); docs != 5 {
		t.Fatalf("docs = %d after restart, want 5", docs)
	}
}

// lostCommitReader is a spool reader whose Commit is lost, as if the
// process crashed right after indexing.
type lostCommitReader struct{ *spool.Reader }

func (lostCommitReader) Commit(spool.Position) error { return errors.New("simulated crash") }

func TestNoDuplicatesAfterCrashBeforeCommit(t *testing.T) {
	es := newFakeES(t)
	dir := t.TempDir()
	writeAlerts(t, dir, 0, 10)
	cfg := testConfig(dir, es.URL())
	d, _ := newDelivererWith(t, cfg, lostCommitReader{openReader(t, dir)}, nil)
	drain(t, d)
	if _, ok := checkpoint(t, dir); ok {
		t.Fatal("checkpoint written through a lost commit")
	}
	// Restart: the reader re-delivers every line with the same ids.
	d2, _ := newTestDeliverer(t, cfg)
	drain(t, d2)
	docs, ops, _ := es.snapshot()
	if ops != 20 {
		t.Errorf("index operations = %d, want 20 (every line twice)", ops)
	}
	if docs != 10 {
		t.Errorf("documents = %d, want 10: re-delivery duplicated", docs)
	}
}

// signalReader reports when Next first returns lines.
type signalReader struct {
	*spool.Reader
	once sync.Once
	got  chan struct{}
}

func (r *signalReader) Next(max int) ([]spool.Record, error) {
	recs, err := r.Reader.Next(max)
	if len(recs) > 0 {
		r.once.Do(func() { close(r.got) })
	}
	return recs, err
}

func TestShutdownFlushesPartialBatch(t *testing.T) {
	es := newFakeES(t)
	dir := t.TempDir()
	writeAlerts(t, dir, 0, 3)
	cfg := testConfig(dir, es.URL())
	cfg.FlushInterval = time.Hour // the batch would wait for more lines
	sr := &signalReader{Reader: openReader(t, dir), got: make(chan struct{})}
	d, _ := newDelivererWith(t, cfg, sr, nil)
	ctx, cancel := context.WithCancel(context.Background())
	go func() { <-sr.got; cancel() }()
	if err := d.Run(ctx); err != nil {
		t.Fatal(err)
	}
	if docs, _, _ := es.snapshot(); docs != 3 {
		t.Fatalf("docs = %d, want the 3 in-flight alerts", docs)
	}
	if _, ok := checkpoint(t, dir); !ok {
		t.Error("in-flight batch not committed")
	}
}

func TestShutdownLetsRequestInFlightFinish(t *testing.T) {
	es := newFakeES(t)
	dir := t.TempDir()
	writeAlerts(t, dir, 0, 4)
	want := lastEnd(t, dir)
	ctx, cancel := context.WithCancel(context.Background())
	es.onBulk = func(call int) {
		cancel()                          // shutdown arrives mid-request...
		time.Sleep(50 * time.Millisecond) // ...and the request still completes
	}
	d, _ := newTestDeliverer(t, testConfig(dir, es.URL()))
	if err := d.Run(ctx); err != nil {
		t.Fatal(err)
	}
	if docs, _, _ := es.snapshot(); docs != 4 {
		t.Fatalf("docs = %d, want 4", docs)
	}
	if p, ok := checkpoint(t, dir); !ok || p != want {
		t.Errorf("checkpoint = %v %v", p, ok)
	}
}

func TestDrainInterrupted(t *testing.T) {
	es := newFakeES(t)
	dir := t.TempDir()
	writeAlerts(t, dir, 0, 2)
	es.requestStatus = func(int) int { return 500 }
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	d, _ := newTestDeliverer(t, testConfig(dir, es.URL()))
	if err := d.Drain(ctx); !errors.Is(err, ErrInterrupted) {
		t.Fatalf("Drain = %v, want ErrInterrupted", err)
	}
}

func TestSetupRejectedStops(t *testing.T) {
	es := newFakeES(t)
	es.templateStatus = 400
	d, _ := newTestDeliverer(t, testConfig(t.TempDir(), es.URL()))
	err := d.Run(context.Background())
	if err == nil || !strings.Contains(err.Error(), "set up index") || !strings.Contains(err.Error(), "400") {
		t.Fatalf("Run = %v, want a setup error naming the 400", err)
	}
}

// memIndexer is an Indexer in memory whose calls fail as scripted.
type memIndexer struct {
	mu        sync.Mutex
	setupErrs []error // one per Setup call; past the end: success
	bulkErrs  []error // one per Bulk call; past the end: success
	setups    int
	bulks     int
	docs      map[string][]byte
}

func (m *memIndexer) Setup(context.Context) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.setups++
	if m.setups <= len(m.setupErrs) {
		return m.setupErrs[m.setups-1]
	}
	return nil
}

func (m *memIndexer) Bulk(_ context.Context, docs []Document) ([]ItemResult, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.bulks++
	if m.bulks <= len(m.bulkErrs) && m.bulkErrs[m.bulks-1] != nil {
		return nil, m.bulkErrs[m.bulks-1]
	}
	if m.docs == nil {
		m.docs = map[string][]byte{}
	}
	out := make([]ItemResult, len(docs))
	for i, d := range docs {
		m.docs[d.ID] = d.Source
		out[i] = ItemResult{Status: 201}
	}
	return out, nil
}

func TestConnectionErrorsAndSetupRetried(t *testing.T) {
	dir := t.TempDir()
	writeAlerts(t, dir, 0, 3)
	refused := &RequestError{Op: "bulk", Err: syscall.ECONNREFUSED}
	idx := &memIndexer{
		setupErrs: []error{&RequestError{Op: "put index template", Err: syscall.ECONNREFUSED},
			&RequestError{Op: "put index template", Status: 503}},
		bulkErrs: []error{refused, refused, refused},
	}
	d, m := newDelivererWith(t, testConfig(dir), openReader(t, dir), idx)
	drain(t, d)
	if idx.setups != 3 || idx.bulks != 4 || len(idx.docs) != 3 {
		t.Fatalf("setups=%d bulks=%d docs=%d, want 3, 4, 3", idx.setups, idx.bulks, len(idx.docs))
	}
	if v := value(t, m.Retried); v != 9 {
		t.Errorf("retried = %v, want 9", v)
	}
	if v := value(t, m.Errors); v != 2 {
		t.Errorf("errors = %v, want 2 (setup)", v)
	}
}

func TestCommitOnlyAtBatchEnd(t *testing.T) {
	dir := t.TempDir()
	writeAlerts(t, dir, 0, 10)
	want := lastEnd(t, dir)
	rec := &recordingReader{Reader: openReader(t, dir)}
	cfg := testConfig(dir)
	cfg.BatchSize = 4
	d, _ := newDelivererWith(t, cfg, rec, &memIndexer{})
	drain(t, d)
	if len(rec.commits) != 3 {
		t.Fatalf("commits = %v, want 3 (batches of 4, 4, 2)", rec.commits)
	}
	if rec.commits[2] != want {
		t.Errorf("last commit %v, want %v", rec.commits[2], want)
	}
}

type recordingReader struct {
	*spool.Reader
	commits []spool.Position
}

func (r *recordingReader) Commit(p spool.Position) error {
	r.commits = append(r.commits, p)
	return r.Reader.Commit(p)
}

func TestDocumentID(t *testing.T) {
	long := strings.Repeat("a", maxIDLen+1)
	for _, tc := range []struct {
		line, id, err string
	}{
		{line: `{"event":{"id":"abc"}}`, id: "abc"},
		{line: ` {"event":{"id":"abc","kind":"alert"},"x":1} `, id: "abc"},
		{line: `{"event":{"id":"` + long + `"}}`, err: "longer than"},
		{line: `{"event":{"id":""}}`, err: "empty"},
		{line: `{"event":{"id":null}}`, err: "empty"},
		{line: `{"event":{"id":1}}`, err: "not a string"},
		{line: `{"event":null}`, err: "no event.id"},
		{line: `{}`, err: "no event.id"},
		{line: `"x"`, err: "not a JSON object"},
		{line: ``, err: "not valid JSON"},
		{line: `{"event":`, err: "not valid JSON"},
		{line: `{"event":[1]}`, err: "unexpected shape"},
	} {
		id, err := documentID([]byte(tc.line))
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("documentID(%.40q) error = %v, want %q", tc.line, err, tc.err)
			}
			continue
		}
		if err != nil || id != tc.id {
			t.Errorf("documentID(%q) = %q, %v; want %q", tc.line, id, err, tc.id)
		}
	}
}

func TestBackoff(t *testing.T) {
	maxJitter := backoff{Min: 100 * time.Millisecond, Max: time.Second, rand: func(n int64) int64 { return n - 1 }}
	noJitter := maxJitter
	noJitter.rand = func(int64) int64 { return 0 }
	for _, tc := range []struct {
		attempt  int
		lo, high time.Duration
	}{
		{1, 50 * time.Millisecond, 100 * time.Millisecond},
		{2, 100 * time.Millisecond, 200 * time.Millisecond},
		{4, 400 * time.Millisecond, 800 * time.Millisecond},
		{5, 500 * time.Millisecond, time.Second}, // capped
		{60, 500 * time.Millisecond, time.Second},
	} {
		if got := noJitter.wait(tc.attempt); got != tc.lo {
			t.Errorf("attempt %d low = %v, want %v", tc.attempt, got, tc.lo)
		}
		if got := maxJitter.wait(tc.attempt); got != tc.high {
			t.Errorf("attempt %d high = %v, want %v", tc.attempt, got, tc.high)
		}
	}
	real := backoff{Min: time.Millisecond, Max: 8 * time.Millisecond}
	for i := 1; i < 100; i++ {
		if w := real.wait(i); w <= 0 || w > 8*time.Millisecond {
			t.Fatalf("wait(%d) = %v out of range", i, w)
		}
	}
}

// slowFirstIndexer holds its first Bulk call until a later call has
// finished, so batches complete out of order.
type slowFirstIndexer struct {
	memIndexer
	calls     atomic.Int64
	laterDone chan struct{}
	once      sync.Once
}

func (s *slowFirstIndexer) Bulk(ctx context.Context, docs []Document) ([]ItemResult, error) {
	if s.calls.Add(1) == 1 {
		select {
		case <-s.laterDone:
		case <-time.After(5 * time.Second):
		}
	} else {
		defer s.once.Do(func() { close(s.laterDone) })
	}
	return s.memIndexer.Bulk(ctx, docs)
}

// TestWorkersCommitInOrder runs two batches in flight where the second
// finishes first: it must not be committed before the first, or a crash
// in between would skip the first batch's lines.
func TestWorkersCommitInOrder(t *testing.T) {
	dir := t.TempDir()
	writeAlerts(t, dir, 0, 12)
	want := lastEnd(t, dir)
	rec := &recordingReader{Reader: openReader(t, dir)}
	cfg := testConfig(dir)
	cfg.BatchSize, cfg.Workers = 4, 2
	idx := &slowFirstIndexer{laterDone: make(chan struct{})}
	d, m := newDelivererWith(t, cfg, rec, idx)
	drain(t, d)
	if len(rec.commits) != 3 || len(idx.docs) != 12 || value(t, m.Indexed) != 12 {
		t.Fatalf("commits %v, docs %d", rec.commits, len(idx.docs))
	}
	for i := 1; i < len(rec.commits); i++ {
		a, b := rec.commits[i-1], rec.commits[i]
		if b.Segment < a.Segment || b.Segment == a.Segment && b.Offset <= a.Offset {
			t.Fatalf("commits out of order: %v", rec.commits)
		}
	}
	if rec.commits[2] != want {
		t.Errorf("last commit %v", rec.commits[2])
	}
}
