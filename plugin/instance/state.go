package instance

import (
	"errors"
	"io/fs"
	"os"
	"sync/atomic"
	"time"

	"github.com/beacongrid/beacongrid/cache"
)

// stateKeeper saves the edge state (cache.Store.WriteSnapshot) to its file
// every interval from a goroutine it owns, and once more at close; it
// restores the file when it opens. Nothing of it runs on the flush path:
// a snapshot copies one flow at a time under that flow's lock.
type stateKeeper struct {
	path  string
	store *cache.Store
	log   *Logger
	timer *periodic

	writes, errors atomic.Int64
}

// openState restores cfg.StateFile into store (new, empty) and starts the
// periodic writer; nil when no state file is configured. A missing file
// starts empty; a file the store refuses (foreign, other version, corrupt,
// truncated) is logged, moved aside to <file>.refused for inspection, and
// the instance starts empty.
func openState(cfg Config, store *cache.Store, log *Logger) *stateKeeper {
	if cfg.StateFile == "" {
		return nil
	}
	k := &stateKeeper{path: cfg.StateFile, store: store, log: log}
	st, err := store.Restore(k.path)
	switch {
	case err == nil:
		log.Info("state %s: restored %d flows (%d sources, %d bytes) in %v", k.path, st.Flows, st.Sources, st.Bytes, st.Took.Round(time.Millisecond))
	case errors.Is(err, fs.ErrNotExist):
		log.Info("state %s: none yet, starting empty", k.path)
	case errors.Is(err, cache.ErrSnapshot):
		aside := k.path + ".refused"
		if rerr := os.Rename(k.path, aside); rerr != nil {
			aside = "left in place: " + rerr.Error()
		}
		log.Error("%v; starting empty (file moved to %s)", err, aside)
	default:
		log.Error("%v; starting empty", err)
	}
	k.timer = startPeriodic(cfg.StateInterval, k.write)
	return k
}

func (k *stateKeeper) write() {
	defer guard(k.log, "state snapshot", &k.errors)
	st, err := k.store.WriteSnapshot(k.path)
	if err != nil {
		if k.errors.Add(1) <= 10 {
			k.log.Warn("%v", err)
		}
		return
	}
	k.writes.Add(1)
	if st.Took > time.Second {
		k.log.Info("state %s: %d flows, %d bytes in %v", k.path, st.Flows, st.Bytes, st.Took.Round(time.Millisecond))
	}
}

// close stops the periodic writer and writes the state a last time. Call
// it after the last flush. nil-safe.
func (k *stateKeeper) close() {
	if k == nil {
		return
	}
	k.timer.halt()
	k.write()
}
