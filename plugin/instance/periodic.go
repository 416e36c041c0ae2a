package instance

import "time"

// periodic calls a function every interval from a goroutine it owns, until
// stop; the instance's background writers (state snapshots, the metrics
// file) run on it, never on Fluent Bit's flush threads.
type periodic struct {
	stop, done chan struct{}
}

// startPeriodic calls fn every interval until the returned periodic stops.
func startPeriodic(interval time.Duration, fn func()) *periodic {
	p := &periodic{stop: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(p.done)
		t := time.NewTicker(interval)
		defer t.Stop()
		for {
			select {
			case <-p.stop:
				return
			case <-t.C:
				fn()
			}
		}
	}()
	return p
}

// halt stops the calls and returns once the last one has returned. Call it
// once.
func (p *periodic) halt() {
	close(p.stop)
	<-p.done
}
