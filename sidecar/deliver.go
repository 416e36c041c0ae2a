package sidecar

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/beacongrid/beacongrid/spool"
	"github.com/prometheus/client_golang/prometheus"
)

// ErrInterrupted is returned by Drain when its context was cancelled before
// the spool was drained. Nothing is lost: undelivered lines stay in the
// spool.
var ErrInterrupted = errors.New("sidecar: interrupted before the spool was drained")

// maxIDLen is Elasticsearch's limit on _id, in bytes.
const maxIDLen = 512

// SpoolReader is what the Deliverer needs from the spool; *spool.Reader
// implements it. Next must return lines after the previous batch, Commit
// records delivery up to a position.
type SpoolReader interface {
	Next(max int) ([]spool.Record, error)
	Commit(p spool.Position) error
}

// Options are the Deliverer's optional collaborators.
type Options struct {
	Logger  *slog.Logger // default: slog.Default()
	Metrics *Metrics     // default: unregistered metrics
	Recent  *Recent      // default: none; receives every delivered alert
	// Enricher, when set, adds context to every alert (see Enricher); when
	// nil lines are only checked.
	Enricher *Enricher
}

// Deliverer moves alerts from a spool to an Indexer. Run or Drain it from
// one goroutine at a time; Ready may be called from any goroutine.
type Deliverer struct {
	cfg      Config
	sp       SpoolReader
	idx      Indexer
	m        *Metrics
	recent   *Recent
	enricher *Enricher
	log      *slog.Logger
	backoff  backoff
	now      func() time.Time

	spMu sync.Mutex // sp is used by the reading loop and the committer

	mu       sync.Mutex
	setUp    bool
	lastErr  error
	tornSeen int64
}

// NewDeliverer returns a Deliverer for cfg (which should have passed
// Validate). It takes ownership of nothing: the caller closes sp and idx.
func NewDeliverer(cfg Config, sp SpoolReader, idx Indexer, o Options) *Deliverer {
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	if o.Metrics == nil {
		o.Metrics, _ = NewMetrics(prometheus.NewRegistry(), cfg.SpoolDir)
	}
	return &Deliverer{
		cfg: cfg, sp: sp, idx: idx, m: o.Metrics, log: o.Logger, recent: o.Recent, enricher: o.Enricher,
		backoff: backoff{Min: cfg.MinBackoff, Max: cfg.MaxBackoff},
		now:     time.Now,
	}
}

// Ready returns nil when the index is set up and the last request to
// Elasticsearch succeeded, else why not.
func (d *Deliverer) Ready() error {
	d.mu.Lock()
	defer d.mu.Unlock()
	switch {
	case d.lastErr != nil:
		return d.lastErr
	case !d.setUp:
		return errors.New("index template not installed yet")
	}
	return nil
}

func (d *Deliverer) setState(setUp bool, err error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.setUp = d.setUp || setUp
	d.lastErr = err
}

// Run sets up the index, then delivers alerts as they arrive until ctx is
// cancelled; then it delivers the in-flight batch (see the package doc) and
// returns nil. It returns an error only when it cannot go on: Setup was
// refused permanently (a 4xx such as a rejected template or bad
// credentials).
func (d *Deliverer) Run(ctx context.Context) error {
	err := d.run(ctx, false)
	if errors.Is(err, ErrInterrupted) {
		return nil
	}
	return err
}

// Drain sets up the index, delivers every line in the spool, and returns
// nil once the spool has nothing more; ErrInterrupted if ctx was cancelled
// first; or the error that stopped it (as Run, plus spool read errors).
func (d *Deliverer) Drain(ctx context.Context) error {
	return d.run(ctx, true)
}

func (d *Deliverer) run(ctx context.Context, once bool) error {
	if err := d.setup(ctx); err != nil {
		return err
	}
	workers := max(d.cfg.Workers, 1)
	// Up to workers batches are in flight; the committer takes them in
	// read order and commits each once it and all before it succeeded.
	slots := make(chan struct{}, workers)
	order := make(chan *job, workers)
	committed := make(chan error, 1)
	go func() { committed <- d.committer(order, slots) }()
	var stop error
	for stop == nil {
		batch, readErr := d.nextBatch(ctx, once)
		if len(batch) > 0 {
			// Wait for a free slot: at most workers batches are read and
			// not yet committed. A batch fails only once ctx is cancelled,
			// so the loop ends right after it.
			slots <- struct{}{}
			j := &job{batch: batch, done: make(chan error, 1)}
			order <- j
			go func() { j.done <- d.deliver(ctx, j) }()
		}
		switch {
		case readErr != nil:
			stop = readErr
		case ctx.Err() != nil:
			stop = ErrInterrupted
		case once && len(batch) == 0:
			stop = errDrained
		}
	}
	close(order)
	if err := <-committed; err != nil {
		return err
	}
	if stop == errDrained {
		return nil
	}
	return stop
}

var errDrained = errors.New("drained")

// job is one batch on its way to Elasticsearch.
type job struct {
	batch []spool.Record
	docs  []Document // delivered documents, for Recent
	done  chan error
}

// committer commits jobs in order. After a job fails it commits nothing
// more, waits for the jobs still in flight and returns that job's error.
func (d *Deliverer) committer(order <-chan *job, slots <-chan struct{}) error {
	var failed error
	for j := range order {
		err := <-j.done
		if failed == nil && err != nil {
			failed = err
		}
		if failed == nil {
			d.commit(j.batch[len(j.batch)-1].End, len(j.batch))
			d.recent.Add(j.docs)
		}
		<-slots
	}
	return failed
}

// setup calls Indexer.Setup until it succeeds, retrying transient errors.
func (d *Deliverer) setup(ctx context.Context) error {
	for attempt := 1; ; attempt++ {
		err := d.withTimeout(ctx, d.idx.Setup)
		if err == nil {
			d.setState(true, nil)
			if m, ok := d.idx.(interface{ Mode() (string, bool) }); ok {
				mode, ilm := m.Mode()
				d.log.Info("index ready", "index", d.cfg.Index, "mode", mode, "ilm", ilm)
			} else {
				d.log.Info("index ready", "index", d.cfg.Index)
			}
			return nil
		}
		d.setState(false, err)
		d.m.Errors.WithLabelValues("setup").Inc()
		var re *RequestError
		if errors.As(err, &re) && re.Permanent() {
			return fmt.Errorf("set up index %s: %w", d.cfg.Index, err)
		}
		wait := d.backoff.wait(attempt)
		d.log.Warn("elasticsearch not ready; retrying", "index", d.cfg.Index, "err", err,
			"attempt", attempt, "retry_in", wait)
		if !sleep(ctx, wait) {
			return ErrInterrupted
		}
	}
}

// withTimeout runs f with a context that is not cancelled with ctx (so that
// a request in flight at shutdown completes) but is bounded by
// RequestTimeout.
func (d *Deliverer) withTimeout(ctx context.Context, f func(context.Context) error) error {
	rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), d.cfg.RequestTimeout)
	defer cancel()
	return f(rctx)
}

// nextBatch reads up to BatchSize lines. It returns a full batch at once;
// a partial batch when FlushInterval has passed since its first line, when
// the spool is empty in once mode, or when ctx is cancelled (the lines
// already read are the in-flight batch). A read error is retried with
// backoff, except in once mode, where it is returned with what was read.
func (d *Deliverer) nextBatch(ctx context.Context, once bool) ([]spool.Record, error) {
	var batch []spool.Record
	var first time.Time
	failures := 0
	for {
		d.spMu.Lock()
		recs, err := d.sp.Next(d.cfg.BatchSize - len(batch))
		d.spMu.Unlock()
		d.countTornTails()
		if len(recs) > 0 {
			if len(batch) == 0 {
				first = d.now()
			}
			batch = append(batch, recs...)
			d.m.Read.Add(float64(len(recs)))
		}
		if err != nil {
			d.m.Errors.WithLabelValues("spool_read").Inc()
			if once {
				return batch, fmt.Errorf("read spool: %w", err)
			}
			failures++
			wait := d.backoff.wait(failures)
			d.log.Error("cannot read spool; retrying", "spool", d.cfg.SpoolDir, "err", err, "retry_in", wait)
			if !sleep(ctx, wait) {
				return batch, nil
			}
			continue
		}
		failures = 0
		switch {
		case len(batch) >= d.cfg.BatchSize:
			return batch, nil
		case len(recs) > 0:
			continue // there may be more right away
		case once:
			return batch, nil
		case len(batch) > 0 && d.now().Sub(first) >= d.cfg.FlushInterval:
			return batch, nil
		}
		wait := d.cfg.PollInterval
		if len(batch) > 0 {
			wait = min(wait, d.cfg.FlushInterval-d.now().Sub(first))
		}
		if !sleep(ctx, wait) {
			return batch, nil
		}
	}
}

func (d *Deliverer) countTornTails() {
	t, ok := d.sp.(interface{ TornTails() int64 })
	if !ok {
		return
	}
	if n := t.TornTails(); n > d.tornSeen {
		d.m.TornTails.Add(float64(n - d.tornSeen))
		d.log.Warn("skipped torn spool tail (writer crashed mid-line)", "spool", d.cfg.SpoolDir, "total", n)
		d.tornSeen = n
	}
}

// pending is a document waiting to be indexed and where its line ends.
type pending struct {
	doc Document
	end spool.Position
}

// deliver indexes j.batch until every line is indexed or dead-lettered;
// the committer then commits it. It returns ErrInterrupted when ctx is
// cancelled while lines still need a retry.
func (d *Deliverer) deliver(ctx context.Context, j *job) error {
	todo, dead := d.prepare(j.batch)
	all := todo
	for attempt := 0; len(todo) > 0; attempt++ {
		if attempt > 0 {
			wait := d.backoff.wait(attempt)
			d.log.Warn("retrying alerts after a transient failure", "alerts", len(todo),
				"attempt", attempt, "retry_in", wait)
			if !sleep(ctx, wait) {
				d.log.Warn("shutting down with undelivered alerts; they stay in the spool and are sent at next start",
					"alerts", len(todo))
				return ErrInterrupted
			}
			d.m.Retried.Add(float64(len(todo)))
		}
		var rejected []DeadLetter
		todo, rejected = d.attempt(ctx, todo)
		dead = append(dead, rejected...)
	}
	if err := d.writeDeadLetters(ctx, dead); err != nil {
		return err
	}
	if d.recent != nil {
		j.docs = delivered(all, dead)
	}
	return nil
}

// delivered returns the documents of all that were indexed, that is, not
// dead-lettered.
func delivered(all []pending, dead []DeadLetter) []Document {
	skip := make(map[spool.Position]bool, len(dead))
	for _, dl := range dead {
		skip[dl.Position] = true
	}
	out := make([]Document, 0, len(all))
	for _, p := range all {
		if !skip[p.end] {
			out = append(out, p.doc)
		}
	}
	return out
}

func (d *Deliverer) countEnrichment(w Enrichment) {
	if w.Host {
		d.m.Enriched.WithLabelValues("host").Inc()
	}
	if w.Threat {
		d.m.Enriched.WithLabelValues("threat").Inc()
	}
	if w.Sighting {
		d.m.Enriched.WithLabelValues("sighting").Inc()
	}
}

// prepare splits batch into documents and dead letters for malformed lines.
func (d *Deliverer) prepare(batch []spool.Record) ([]pending, []DeadLetter) {
	todo := make([]pending, 0, len(batch))
	var dead []DeadLetter
	for _, r := range batch {
		id, doc, what, err := d.enricher.Enrich(r.Line)
		if err != nil {
			dead = append(dead, DeadLetter{
				Time: d.now().UTC(), Reason: ReasonMalformed, Error: err.Error(),
				Position: r.End, Line: string(r.Line),
			})
			continue
		}
		d.countEnrichment(what)
		todo = append(todo, pending{doc: Document{ID: id, Source: doc}, end: r.End})
	}
	return todo, dead
}

// documentID returns the event.id of a spool line, or why the line cannot
// be a document.
func documentID(line []byte) (string, error) {
	id, _, _, err := (*Enricher)(nil).Enrich(line)
	return id, err
}

// attempt sends todo once. It returns the documents to retry and dead
// letters for those rejected permanently.
func (d *Deliverer) attempt(ctx context.Context, todo []pending) ([]pending, []DeadLetter) {
	docs := make([]Document, len(todo))
	for i, p := range todo {
		docs[i] = p.doc
	}
	var results []ItemResult
	start := d.now()
	d.m.InFlight.Inc()
	defer d.m.InFlight.Dec()
	err := d.withTimeout(ctx, func(rctx context.Context) error {
		var err error
		results, err = d.idx.Bulk(rctx, docs)
		return err
	})
	d.m.Latency.Observe(d.now().Sub(start).Seconds())
	if err != nil {
		d.setState(false, err)
		d.m.Failed.WithLabelValues("transient").Add(float64(len(todo)))
		d.log.Error("bulk request failed", "alerts", len(todo), "err", err)
		return todo, nil
	}
	d.setState(false, nil)
	return d.classify(todo, results)
}

// classify counts results and splits todo into retries and dead letters.
func (d *Deliverer) classify(todo []pending, results []ItemResult) ([]pending, []DeadLetter) {
	var retry []pending
	var dead []DeadLetter
	indexed, firstStatus := 0, 0
	for i, r := range results {
		p := todo[i]
		switch {
		case r.OK():
			indexed++
			if r.Duplicate {
				d.m.Duplicates.Inc()
			}
		case r.Permanent():
			d.m.Failed.WithLabelValues("permanent").Inc()
			d.log.Error("alert rejected by elasticsearch; dead-lettered", "id", p.doc.ID,
				"status", r.Status, "error_type", r.ErrorType, "reason", r.Reason)
			dead = append(dead, DeadLetter{
				Time: d.now().UTC(), Reason: ReasonRejected, Error: r.Reason, Status: r.Status,
				ErrorType: r.ErrorType, Index: d.cfg.Index, ID: p.doc.ID,
				Position: p.end, Line: string(p.doc.Source),
			})
		default:
			d.m.Failed.WithLabelValues("transient").Inc()
			d.log.Debug("alert not indexed; will retry", "id", p.doc.ID, "status", r.Status,
				"error_type", r.ErrorType, "reason", r.Reason)
			if firstStatus == 0 {
				firstStatus = r.Status
			}
			retry = append(retry, p)
		}
	}
	d.m.Indexed.Add(float64(indexed))
	if len(retry) > 0 {
		d.log.Warn("some alerts not indexed; will retry", "alerts", len(retry), "first_status", firstStatus)
	}
	return retry, dead
}

// writeDeadLetters makes dead durable, retrying with backoff: the commit
// that follows moves past these lines, so they must not be lost.
func (d *Deliverer) writeDeadLetters(ctx context.Context, dead []DeadLetter) error {
	path := deadLetterPath(d.cfg.SpoolDir)
	for attempt := 1; ; attempt++ {
		err := appendDeadLetters(path, dead)
		if err == nil {
			for _, dl := range dead {
				d.m.DeadLettered.WithLabelValues(dl.Reason).Inc()
				if dl.Reason == ReasonMalformed {
					d.log.Error("malformed spool line; dead-lettered", "position", dl.Position, "err", dl.Error)
				}
			}
			return nil
		}
		d.m.Errors.WithLabelValues("dead_letter").Inc()
		wait := d.backoff.wait(attempt)
		d.log.Error("cannot write dead letters; retrying", "path", path, "err", err, "retry_in", wait)
		if !sleep(ctx, wait) {
			return ErrInterrupted
		}
	}
}

// commit records delivery up to end. A failed commit is logged and counted,
// not retried: the next commit covers these lines too, and until then a
// restart re-delivers them, which ids make harmless.
func (d *Deliverer) commit(end spool.Position, lines int) {
	d.spMu.Lock()
	err := d.sp.Commit(end)
	d.spMu.Unlock()
	if err != nil {
		d.m.Errors.WithLabelValues("commit").Inc()
		d.log.Error("cannot commit spool position; lines will be re-sent after a restart",
			"position", end, "err", err)
		return
	}
	d.m.Committed.Add(float64(lines))
	d.m.LastSuccess.Set(float64(d.now().Unix()))
	d.log.Debug("batch delivered", "lines", lines, "position", end)
}
