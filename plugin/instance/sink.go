package instance

import (
	"encoding/json"
	"sync"
	"sync/atomic"
	"time"

	"github.com/beacongrid/beacongrid/alert"
	"github.com/beacongrid/beacongrid/spool"
)

// spoolSink takes alerts on Fluent Bit's threads without blocking and
// writes them to the spool from its own goroutine, so no disk sync ever
// runs on a flush. While the spool cannot be written (disk full, backlog
// full) alerts wait in memory, up to a bound; beyond it the oldest are
// dropped and counted.
type spoolSink struct {
	w     *spool.Writer
	log   *Logger
	limit int

	mu      sync.Mutex
	queue   []*alert.Alert
	wake    chan struct{}
	done    chan struct{}
	stopped chan struct{}

	spooled, dropped, errors atomic.Int64
}

func newSpoolSink(w *spool.Writer, limit int, log *Logger) *spoolSink {
	s := &spoolSink{w: w, log: log, limit: limit, wake: make(chan struct{}, 1), done: make(chan struct{}), stopped: make(chan struct{})}
	go s.run()
	return s
}

// Alert implements detect.Sink.
func (s *spoolSink) Alert(a *alert.Alert) {
	s.mu.Lock()
	if len(s.queue) >= s.limit {
		s.queue = s.queue[1:]
		s.dropped.Add(1)
	}
	s.queue = append(s.queue, a)
	s.mu.Unlock()
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

func (s *spoolSink) run() {
	defer close(s.stopped)
	backoff := 100 * time.Millisecond
	for {
		select {
		case <-s.wake:
		case <-s.done:
			s.drain(true)
			return
		}
		for !s.drain(false) {
			select {
			case <-time.After(backoff):
				backoff = min(backoff*2, 30*time.Second)
			case <-s.done:
				s.drain(true)
				return
			}
		}
		backoff = 100 * time.Millisecond
	}
}

// drain writes queued alerts; it reports whether the queue is empty. A
// panic while writing (a bug) loses the batch in hand, counted in errors,
// and is reported as "not empty" so the loop backs off and goes on.
func (s *spoolSink) drain(final bool) (empty bool) {
	defer guard(s.log, "spool writer", &s.errors)
	for {
		s.mu.Lock()
		batch := s.queue
		s.queue = nil
		s.mu.Unlock()
		if len(batch) == 0 {
			return true
		}
		lines := make([][]byte, 0, len(batch))
		for _, a := range batch {
			b, err := json.Marshal(a)
			if err != nil {
				s.errors.Add(1)
				s.log.Error("cannot encode alert %s: %v", a.Event.ID, err)
				continue
			}
			lines = append(lines, b)
		}
		if err := s.w.Append(lines...); err != nil {
			s.errors.Add(1)
			s.log.Error("spool: %v (%d alerts held in memory, retrying)", err, len(batch))
			s.mu.Lock()
			s.queue = append(batch, s.queue...)
			if over := len(s.queue) - s.limit; over > 0 {
				s.queue = s.queue[over:]
				s.dropped.Add(int64(over))
			}
			s.mu.Unlock()
			if final {
				s.log.Error("stopping with %d alerts not spooled", len(batch))
			}
			return false
		}
		s.spooled.Add(int64(len(lines)))
	}
}

// close writes what is queued (one last try) and closes the spool.
func (s *spoolSink) close() {
	close(s.done)
	<-s.stopped
	s.w.Close()
}
