//go:build cgo

package chunk

import (
	"testing"
	"unsafe"

	"github.com/fluent/fluent-bit-go/output"
)

// BenchmarkFluentBitGoDecoder decodes the chunk of BenchmarkReader with
// fluent-bit-go's own decoder (a copy of the chunk, reflection,
// map[interface{}]interface{} per record) and looks up the same wanted keys,
// for comparison. Its package needs cgo, hence the build tag. It reads flat
// keys only: nested maps would need a walk on top.
func BenchmarkFluentBitGoDecoder(b *testing.B) {
	const records = 1000
	chunk := zeekChunk(records, false)
	keys := [][]string{
		{"ts", "@timestamp"},
		{"id.orig_h", "source.ip"},
		{"host", "destination.domain"},
		{"id.resp_h", "destination.ip"},
		{"id.resp_p", "destination.port"},
	}
	var sink int
	b.ReportAllocs()
	b.SetBytes(int64(len(chunk)))
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		// NewDecoder copies the chunk with C.GoBytes, which also accepts
		// Go memory.
		dec := output.NewDecoder(unsafe.Pointer(&chunk[0]), len(chunk))
		n, hits := 0, 0
		for {
			ret, ts, rec := output.GetRecord(dec)
			if ret != 0 {
				break
			}
			n++
			if ts != nil {
				sink++
			}
			for _, aliases := range keys {
				for _, k := range aliases {
					if v, ok := rec[k]; ok && v != nil {
						hits++
						break
					}
				}
			}
		}
		if n != records || hits != len(keys)*records {
			b.Fatalf("decoded %d records with %d fields, want %d with %d", n, hits, records, len(keys)*records)
		}
	}
	b.StopTimer()
	if sink == 0 {
		b.Fatal("no work")
	}
	b.ReportMetric(float64(records)*float64(b.N)/b.Elapsed().Seconds(), "records/s")
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(records*b.N), "ns/record")
}
