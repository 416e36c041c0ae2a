package chunk

import "fmt"

func ExampleReader() {
	// Built once, shared by every flush.
	keys := NewKeySet([][]string{
		{"id.orig_h", "source.ip"}, // slot 0: source address
		{"host", "id.resp_h"},      // slot 1: destination, the host name preferred
	})

	// In FLBPluginFlushCtx: chunk := unsafe.Slice((*byte)(data), int(length)),
	// valid only until the flush returns.
	chunk := chunkOf(
		v2(et{1700000000, 0}, obj{"id", obj{"orig_h", "10.0.0.1"}, "id.resp_h", "93.184.216.34", "host", "example.com"}),
		v2(et{0xFFFFFFFF, 0}, obj{"resource", obj{}}), // group start marker
		legacy(uint64(1700000001), obj{"source.ip", "10.0.0.2", "id.resp_h", "1.1.1.1"}),
	)

	r := GetReader()
	defer PutReader(r)
	var ev Event
	r.Reset(chunk, keys, keys.Slots())
	for r.Next(&ev) {
		// ev.Fields[i].Str points into chunk: copy what outlives the flush.
		fmt.Printf("%d %s -> %s\n", ev.Sec, ev.Fields[0].Str, ev.Fields[1].Str)
	}
	fmt.Println(r.Err(), r.Stats().GroupMarkers)
	// Output:
	// 1700000000 10.0.0.1 -> example.com
	// 1700000001 10.0.0.2 -> 1.1.1.1
	// <nil> 1
}
