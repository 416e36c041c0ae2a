package detect

import (
	"fmt"
	"math/rand/v2"
	"sort"
	"sync"
	"testing"
	"time"

	"github.com/beacongrid/beacongrid/alert"
	"github.com/beacongrid/beacongrid/cache"
	"github.com/beacongrid/beacongrid/fields"
)

// A day of interleaved records (beacons of several periods, noisy flows,
// records without a time or a destination), counted once record by record
// (Observe) and once in batches (Add, Flush, at uneven points): the same
// flows alert, and the counters agree.
func TestBatchAlertsAsObserve(t *testing.T) {
	type rec struct {
		src, dst string
		sec      int64
		noTime   bool
	}
	r := rand.New(rand.NewPCG(3, 4))
	start := time.Date(2026, 11, 2, 0, 0, 0, 0, time.UTC).Unix()
	var recs []rec
	for i, period := range []int64{60, 300, 900} {
		for s := start + int64(i); s < start+12*3600; s += period {
			recs = append(recs, rec{src: fmt.Sprintf("10.0.0.%d", i+1), dst: fmt.Sprintf("c2-%d.example", i), sec: s})
		}
	}
	for k := 0; k < 3000; k++ {
		recs = append(recs, rec{src: fmt.Sprintf("10.0.1.%d", r.IntN(40)), dst: fmt.Sprintf("site%d.example", r.IntN(200)), sec: start + r.Int64N(12*3600)})
	}
	for k := 0; k < 50; k++ {
		recs = append(recs, rec{src: "10.0.2.1", dst: "x.example", sec: start + r.Int64N(12*3600), noTime: true}, rec{src: "10.0.2.2", sec: start + r.Int64N(12*3600)})
	}
	sort.SliceStable(recs, func(i, j int) bool { return recs[i].sec < recs[j].sec })

	collect := func() (*Detector, func() map[string]int) {
		var mu sync.Mutex
		got := map[string]int{}
		d := newDetector(t, nil, sinkFunc(func(a *alert.Alert) {
			mu.Lock()
			got[a.Source.IP+" "+a.Destination.Domain]++
			mu.Unlock()
		}))
		return d, func() map[string]int { mu.Lock(); defer mu.Unlock(); return got }
	}
	set := func(e *fields.Event, x rec) {
		e.Reset()
		e.Src, e.Domain = []byte(x.src), []byte(x.dst)
		e.Sec, e.HasTime = x.sec, !x.noTime
	}
	one, oneAlerts := collect()
	var e fields.Event
	var buf []byte
	for _, x := range recs {
		set(&e, x)
		buf = one.Observe(&e, buf)
	}
	many, manyAlerts := collect()
	var b Batch
	for i, x := range recs {
		set(&e, x)
		many.Add(&b, &e)
		if r.IntN(50) == 0 || i == len(recs)-1 {
			many.Flush(&b)
		}
	}
	a1, a2 := oneAlerts(), manyAlerts()
	for i := 1; i <= 3; i++ {
		if k := fmt.Sprintf("10.0.0.%d c2-%d.example", i, i-1); a1[k] == 0 {
			t.Fatalf("the record-by-record detector did not alert on %s: the test proves nothing (%v)", k, a1)
		}
	}
	if fmt.Sprint(a1) != fmt.Sprint(a2) {
		t.Fatalf("alerts differ:\nObserve %v\nbatches %v", a1, a2)
	}
	s1, s2 := one.Stats(), many.Stats()
	if s1.Events != s2.Events || s1.Skipped != s2.Skipped || s1.NoTime != s2.NoTime || s1.Events != int64(len(recs)) || s1.NoTime != 50 || s1.Skipped != 50 {
		t.Fatalf("counters differ:\nObserve %+v\nbatches %+v", s1, s2)
	}
	if c1, c2 := one.Store().Stats().Counted, many.Store().Stats().Counted; c1 != c2 || c1 != int64(len(recs)-100) {
		t.Fatalf("counted %d record by record, %d in batches, want %d", c1, c2, len(recs)-100)
	}
}

// Long keys fill the batch's room for keys before BatchLen records: the
// batch is counted early, and no key overwrites another.
func TestBatchLongKeys(t *testing.T) {
	d := newDetector(t, nil, sinkFunc(func(*alert.Alert) {}))
	var b Batch
	var e fields.Event
	sec := time.Date(2026, 11, 2, 0, 0, 0, 0, time.UTC).Unix()
	long := make([]byte, 400)
	for i := range long {
		long[i] = 'a' + byte(i%26)
		if i%20 == 19 {
			long[i] = '.' // labels of 19 letters
		}
	}
	for i := 0; i < 100; i++ {
		e.Reset()
		e.Src = []byte(fmt.Sprintf("10.0.0.%d", i))
		name := long[:100+i]
		if name[len(name)-1] == '.' {
			name = name[:len(name)-1]
		}
		e.Domain = append(append([]byte{}, name...), ".example"...)
		e.Sec, e.HasTime = sec+int64(i), true
		d.Add(&b, &e)
	}
	d.Flush(&b)
	st := d.Store().Stats()
	if st.Counted != 100 || st.Flows != 100 {
		t.Fatalf("counted %d events into %d flows, want 100 and 100 (detector %+v)", st.Counted, st.Flows, d.Stats())
	}
	seen := 0
	d.Store().Range(func(f *cache.Flow) bool {
		if len(f.Dst()) < 107 || f.Dst()[:99] != string(long[:99]) {
			t.Fatalf("flow %q: its key was overwritten", f.Key())
		}
		seen++
		return true
	})
	if seen != 100 {
		t.Fatalf("%d flows", seen)
	}
}
