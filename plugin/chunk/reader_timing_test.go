package chunk

import (
	"fmt"
	"math/rand/v2"
	"path/filepath"
	"testing"
	"time"

	"github.com/beacongrid/beacongrid/fields"
	"github.com/beacongrid/beacongrid/internal/flbtest"
	"github.com/tinylib/msgp/msgp"
)

// zeekKeys are the slots the plugin wants from Zeek http records: ts, source
// address, destination host, destination address, destination port.
func zeekKeys() *KeySet {
	return NewKeySet([][]string{
		{"ts", "@timestamp"},
		{"id.orig_h", "source.ip"},
		{"host", "destination.domain"},
		{"id.resp_h", "destination.ip"},
		{"id.resp_p", "destination.port"},
	})
}

// zeekChunk builds a Fluent Bit v2 chunk of n Zeek http.log records (17
// fields each) as a tail+json input would produce them. With nested, the
// id.* fields are a nested "id" map instead of flat dotted keys.
func zeekChunk(n int, nested bool) []byte {
	methods := []string{"GET", "GET", "GET", "POST", "HEAD"}
	hosts := []string{"www.example.com", "cdn.jsdelivr.net", "api.github.com", "updates.vendor.example.org", "10.0.0.5"}
	agents := []string{
		"Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.0.0 Safari/537.36",
		"curl/8.4.0",
		"Microsoft-CryptoAPI/10.0",
	}
	var b []byte
	seed := uint32(12345)
	rnd := func() uint32 { seed = seed*1664525 + 1013904223; return seed >> 8 }
	for i := 0; i < n; i++ {
		ts := 1700000000 + float64(i)*0.013
		origH := fmt.Sprintf("192.168.%d.%d", rnd()%4, rnd()%250+1)
		respH := fmt.Sprintf("93.184.%d.%d", rnd()%250, rnd()%250+1)
		origP, respP := int(rnd()%28000+32768), []int{80, 443, 8080}[rnd()%3]
		body := obj{
			"ts", ts,
			"uid", fmt.Sprintf("C%08xAbCdEf%05d", rnd(), i),
		}
		if nested {
			body = append(body, "id", obj{"orig_h", origH, "orig_p", origP, "resp_h", respH, "resp_p", respP})
		} else {
			body = append(body, "id.orig_h", origH, "id.orig_p", origP, "id.resp_h", respH, "id.resp_p", respP)
		}
		body = append(body,
			"trans_depth", int(rnd()%3+1),
			"method", methods[rnd()%uint32(len(methods))],
			"host", hosts[rnd()%uint32(len(hosts))],
			"uri", fmt.Sprintf("/static/js/app.%x.js?v=%d", rnd(), rnd()%100),
			"referrer", "https://www.example.com/index.html",
			"version", "1.1",
			"user_agent", agents[rnd()%uint32(len(agents))],
			"request_body_len", 0,
			"response_body_len", int(rnd()%200000),
			"status_code", 200,
			"status_msg", "OK",
			"resp_mime_types", arr{"application/javascript"},
		)
		b = enc(b, v2(et{uint32(ts), uint32(i) * 1000}, body))
	}
	return b
}

func BenchmarkReader(b *testing.B) {
	for _, layout := range []string{"flat", "nested"} {
		b.Run(layout, func(b *testing.B) {
			const records = 1000
			chunk := zeekChunk(records, layout == "nested")
			ks := zeekKeys()
			var r Reader
			var ev Event
			var sink uint64
			b.ReportAllocs()
			b.SetBytes(int64(len(chunk)))
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				r.Reset(chunk, ks, ks.Slots())
				for r.Next(&ev) {
					sink += ev.Fields[4].Uint + uint64(len(ev.Fields[1].Str))
				}
				if r.Err() != nil || r.Stats().Events != records {
					b.Fatal(r.Err(), r.Stats())
				}
			}
			b.StopTimer()
			if sink == 0 {
				b.Fatal("no work")
			}
			b.ReportMetric(float64(records)*float64(b.N)/b.Elapsed().Seconds(), "records/s")
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(records*b.N), "ns/record")
		})
	}
}

// zeekHTTPChunk is the chunk of the instance benchmarks: 1000 real Zeek
// http records of ../shared/data in Fluent Bit v4's layout, every record's
// keys in the same (sorted) order, as one source writes them.
func zeekHTTPChunk(tb testing.TB) []byte {
	var recs []map[string]any
	for _, f := range []string{"ctu-normal-40-day1/http.log.labeled", "ctu-kovter-219-2/http.log.labeled"} {
		r, err := flbtest.ReadZeekTSV(filepath.Join("../../../shared/data", f), 1000-len(recs), "label", "detailedlabel")
		if err != nil {
			tb.Skipf("the real Zeek logs of ../shared/data: %v", err)
		}
		recs = append(recs, r...)
	}
	data, err := flbtest.EncodeChunk(flbtest.Rebase(recs, time.Unix(1700000000, 0), time.Hour))
	if err != nil {
		tb.Fatal(err)
	}
	return data
}

// shuffleBodies returns chunk with the pairs of every event's body (the
// last element of the event array) in a random order, the rest unchanged.
func shuffleBodies(tb testing.TB, chunk []byte, rnd *rand.Rand) []byte {
	var out []byte
	for b := chunk; len(b) > 0; {
		o, err := msgp.Skip(b)
		if err != nil {
			tb.Fatal(err)
		}
		ev := b[:len(b)-len(o)]
		b = o
		_, body, err := msgp.ReadArrayHeaderBytes(ev)
		if err != nil {
			tb.Fatal(err)
		}
		if body, err = msgp.Skip(body); err != nil { // the head
			tb.Fatal(err)
		}
		n, pairs, err := msgp.ReadMapHeaderBytes(body)
		if err != nil {
			tb.Fatal(err)
		}
		var kv [][]byte
		for i := uint32(0); i < n; i++ {
			o, err := msgp.Skip(pairs)
			if err == nil {
				o, err = msgp.Skip(o)
			}
			if err != nil {
				tb.Fatal(err)
			}
			kv, pairs = append(kv, pairs[:len(pairs)-len(o)]), o
		}
		rnd.Shuffle(len(kv), func(i, j int) { kv[i], kv[j] = kv[j], kv[i] })
		out = append(out, ev[:len(ev)-len(body)]...)
		out = msgp.AppendMapHeader(out, n)
		for _, p := range kv {
			out = append(out, p...)
		}
	}
	return out
}

// BenchmarkReaderZeekHTTP reads the chunk of the instance benchmarks with
// the plugin's default key set (the zeek and ecs presets): "sorted" as one
// source writes its records, every record's keys in the same order;
// "shuffled" with each record's keys in an order of its own.
//
//	taskset -c 0 go test -run '^$' -bench ReaderZeekHTTP -cpu 1 ./plugin/chunk
func BenchmarkReaderZeekHTTP(b *testing.B) {
	sorted := zeekHTTPChunk(b)
	for _, order := range []string{"sorted", "shuffled"} {
		b.Run(order, func(b *testing.B) {
			chunk := sorted
			if order == "shuffled" {
				chunk = shuffleBodies(b, sorted, rand.New(rand.NewPCG(1, 2)))
			}
			ks := NewKeySet(fields.Default().Slots())
			var r Reader
			var ev Event
			var sink uint64
			records := 0
			b.ReportAllocs()
			b.SetBytes(int64(len(chunk)))
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				r.Reset(chunk, ks, ks.Slots())
				for r.Next(&ev) {
					sink += uint64(len(ev.Fields[fields.Src].Str) + len(ev.Fields[fields.Domain].Str))
					records++
				}
				if r.Err() != nil {
					b.Fatal(r.Err())
				}
			}
			b.StopTimer()
			if sink == 0 || records != 1000*b.N {
				b.Fatalf("%d records, %d bytes of fields", records, sink)
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(records), "ns/record")
		})
	}
}
