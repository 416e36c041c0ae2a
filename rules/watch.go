package rules

import (
	"crypto/sha256"
	"errors"
	"fmt"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/fsnotify/fsnotify"
)

// WatchOptions tune a Watcher. Zero values take the defaults.
type WatchOptions struct {
	// Poll is how often the file's content hash is compared with the last
	// one read, for file systems that do not notify (network mounts) and
	// for Kubernetes ConfigMap symlink swaps. Default 1 s; negative turns
	// polling off.
	Poll time.Duration
	// NoNotify turns file system notification (fsnotify) off, leaving the
	// poll alone (tests).
	NoNotify bool
	// Settle is how long after the last file system event the file is read,
	// so that an editor's burst of writes is read once. Default 50 ms.
	Settle time.Duration
	// OnResult hears every reload attempt that read new content or failed,
	// from the goroutine that made it (the watcher's, or Reload's caller).
	OnResult func(Result)
}

// Result is the outcome of one reload attempt.
type Result struct {
	Old, New *Set // New is nil on error; Old == New when nothing changed
	Changed  bool // a new Set is active
	Err      error
	At       time.Time
}

// WatchStats are a Watcher's counters and state.
type WatchStats struct {
	Version     string    // version of the active rules
	Reloads     int64     // reloads that put a new Set in force
	Failures    int64     // reloads refused (unreadable or invalid file)
	LastOK      bool      // the last reload attempt succeeded
	LastSuccess time.Time // when the active rules were loaded (or last confirmed)
	LastError   string    // the last failure's message, "" if none yet
}

// Watcher keeps the Set in an atomic pointer current with a rules file.
// Every trigger (a file system event, the poll, an explicit Reload) runs the
// same reload: read the file, and if its content differs from the last one
// read, validate the whole new Set, then swap the pointer once. A file that
// cannot be read or is invalid leaves the last good rules in force; the
// error is returned, counted and passed to OnResult.
//
// A Watcher starts no goroutine until Start, and Stop ends it.
type Watcher struct {
	path string
	dst  *atomic.Pointer[Set]
	opt  WatchOptions

	mu       sync.Mutex // serializes reloads
	seen     [sha256.Size]byte
	seenErr  string // the read error of the last attempt, if any
	haveSeen bool

	reloads, failures atomic.Int64
	lastOK            atomic.Bool
	lastSuccess       atomic.Int64 // unix nanoseconds
	lastErr           atomic.Pointer[string]

	startOnce, stopOnce sync.Once
	stop, done          chan struct{}
	started             atomic.Bool
}

// NewWatcher loads path into dst and returns a Watcher for it. An invalid
// or unreadable file is an error: there are no last good rules to keep.
func NewWatcher(path string, dst *atomic.Pointer[Set], opt WatchOptions) (*Watcher, error) {
	if dst == nil {
		return nil, errors.New("rules: NewWatcher: nil destination")
	}
	if opt.Poll == 0 {
		opt.Poll = time.Second
	}
	if opt.Settle <= 0 {
		opt.Settle = 50 * time.Millisecond
	}
	b, err := readFile(path)
	if err != nil {
		return nil, err
	}
	s, err := ParseNamed(path, b)
	if err != nil {
		return nil, err
	}
	w := &Watcher{path: path, dst: dst, opt: opt, seen: sha256.Sum256(b), haveSeen: true,
		stop: make(chan struct{}), done: make(chan struct{})}
	dst.Store(s)
	w.lastOK.Store(true)
	w.lastSuccess.Store(time.Now().UnixNano())
	return w, nil
}

// Path is the watched file.
func (w *Watcher) Path() string { return w.path }

// Current returns the rules in force.
func (w *Watcher) Current() *Set { return w.dst.Load() }

// Reload reads the file now and puts it in force if it is valid and
// differs from the active rules. Unlike the watcher's own checks it parses
// the file even when its content was read before.
func (w *Watcher) Reload() Result { return w.reload(true) }

// check is the watcher's trigger: it does nothing when the content (or the
// read error) is the one seen last, so a bad file is reported once.
func (w *Watcher) check() { w.reload(false) }

func (w *Watcher) reload(force bool) (res Result) {
	w.mu.Lock()
	defer w.mu.Unlock()
	now := time.Now()
	old := w.dst.Load()
	res = Result{Old: old, New: old, At: now}
	// The watcher runs inside Fluent Bit: a bug in parsing or in the
	// caller's OnResult must fail this reload, not end the process. The
	// rules in force (res.New) stay in force; OnResult is not called again,
	// as it may be what panicked.
	defer func() {
		if r := recover(); r != nil {
			err := fmt.Errorf("rules: reloading %s: panic: %v", w.path, r)
			w.failures.Add(1)
			w.lastOK.Store(false)
			msg := err.Error()
			w.lastErr.Store(&msg)
			cur := w.dst.Load()
			res = Result{Old: old, New: cur, Changed: cur != old, At: now, Err: err}
		}
	}()
	b, err := readFile(w.path)
	if err != nil {
		if !force && w.seenErr == err.Error() {
			return res
		}
		w.seenErr = err.Error()
		return w.fail(res, err)
	}
	sum := sha256.Sum256(b)
	if !force && w.haveSeen && w.seenErr == "" && sum == w.seen {
		return res
	}
	w.seen, w.haveSeen, w.seenErr = sum, true, ""
	s, err := ParseNamed(w.path, b)
	if err != nil {
		return w.fail(res, err)
	}
	w.lastOK.Store(true)
	w.lastSuccess.Store(now.UnixNano())
	// Equal rules keep the Set in force (and its counters).
	if s.Version() != old.Version() {
		w.dst.Store(s)
		w.reloads.Add(1)
		res.New, res.Changed = s, true
	}
	if w.opt.OnResult != nil {
		w.opt.OnResult(res)
	}
	return res
}

func (w *Watcher) fail(res Result, err error) Result {
	w.failures.Add(1)
	w.lastOK.Store(false)
	msg := err.Error()
	w.lastErr.Store(&msg)
	res.New, res.Err = nil, err
	if w.opt.OnResult != nil {
		w.opt.OnResult(res)
	}
	return res
}

// Stats returns the watcher's counters.
func (w *Watcher) Stats() WatchStats {
	st := WatchStats{
		Version: w.dst.Load().Version(), Reloads: w.reloads.Load(), Failures: w.failures.Load(),
		LastOK: w.lastOK.Load(), LastSuccess: time.Unix(0, w.lastSuccess.Load()),
	}
	if e := w.lastErr.Load(); e != nil {
		st.LastError = *e
	}
	return st
}

// Start begins watching: file system notification on the file's directory
// (which sees editors' renames and ConfigMap symlink swaps) plus the poll.
// When notification cannot be set up the poll alone runs and the returned
// error says why; the Watcher is started either way. Start is effective
// once.
func (w *Watcher) Start() error {
	var err error
	w.startOnce.Do(func() {
		var fsw *fsnotify.Watcher
		if !w.opt.NoNotify {
			fsw, err = fsnotify.NewWatcher()
			if err == nil {
				if err = fsw.Add(filepath.Dir(w.path)); err != nil {
					fsw.Close()
					fsw = nil
				}
			}
			if err != nil {
				err = fmt.Errorf("rules: watching %s: %w (polling every %s instead)", w.path, err, w.opt.Poll)
			}
		}
		w.started.Store(true)
		go w.run(fsw)
	})
	return err
}

// Stop ends the watcher's goroutine and waits for it. It is safe to call
// more than once, and without Start.
func (w *Watcher) Stop() {
	w.stopOnce.Do(func() {
		close(w.stop)
		if w.started.Load() {
			<-w.done
		}
	})
}

func (w *Watcher) run(fsw *fsnotify.Watcher) {
	defer close(w.done)
	var events <-chan fsnotify.Event
	var errs <-chan error
	if fsw != nil {
		defer fsw.Close()
		events, errs = fsw.Events, fsw.Errors
	}
	var tick <-chan time.Time
	if w.opt.Poll > 0 {
		t := time.NewTicker(w.opt.Poll)
		defer t.Stop()
		tick = t.C
	}
	settle := time.NewTimer(time.Hour)
	settle.Stop()
	defer settle.Stop()
	for {
		select {
		case <-w.stop:
			return
		case _, ok := <-events:
			if !ok {
				events = nil
				continue
			}
			settle.Reset(w.opt.Settle)
		case _, ok := <-errs:
			if !ok {
				errs = nil
				continue
			}
			// An overflow or a lost watch: read now, the poll covers the rest.
			w.check()
		case <-settle.C:
			w.check()
		case <-tick:
			w.check()
		}
	}
}
