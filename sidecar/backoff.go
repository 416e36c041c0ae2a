package sidecar

import (
	"context"
	"math/rand/v2"
	"time"
)

// backoff computes capped exponential waits with equal jitter: the wait for
// attempt n (1-based) is d/2 plus a random part of d/2, where
// d = min(Min * 2^(n-1), Max). Jitter keeps many sidecars from retrying in
// step against a recovering cluster.
type backoff struct {
	Min, Max time.Duration
	rand     func(n int64) int64 // [0, n); nil means math/rand/v2
}

func (b backoff) wait(attempt int) time.Duration {
	d := b.Min
	for i := 1; i < attempt && d < b.Max; i++ {
		d *= 2
	}
	if d > b.Max {
		d = b.Max
	}
	half := d / 2
	if half <= 0 {
		return d
	}
	r := b.rand
	if r == nil {
		r = rand.Int64N
	}
	return half + time.Duration(r(int64(half)+1))
}

// sleep waits d or until ctx is done; it reports whether the full wait
// passed.
func sleep(ctx context.Context, d time.Duration) bool {
	if ctx.Err() != nil {
		return false
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}
