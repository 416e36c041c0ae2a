// Command decoderplugin is the comparison plugin of the plugin benchmark
// (test/plugin, make bench-plugin): the beacongrid instance, counting
// exactly as out_beacongrid.so does, but fed by fluent-bit-go's own decoder
// (output.NewDecoder and output.GetRecord: a copy of the chunk, reflection,
// a map[interface{}]interface{} per record), the way most Go output plugins
// read their chunks. It registers as "beacongrid_fbgo". Not for production.
package main

import "C"

import (
	"fmt"
	"os"
	"strings"
	"unsafe"

	"github.com/fluent/fluent-bit-go/output"

	"github.com/beacongrid/beacongrid/detect"
	"github.com/beacongrid/beacongrid/fields"
	"github.com/beacongrid/beacongrid/plugin/instance"
)

var (
	registry = instance.NewRegistry(instance.LoadModel)
	mappings = map[int]fields.Mapping{} // by instance id, written only in Init
)

type getter struct{ plugin unsafe.Pointer }

func (g getter) Get(key string) string { return output.FLBPluginConfigKey(g.plugin, key) }

//export FLBPluginRegister
func FLBPluginRegister(def unsafe.Pointer) int {
	return output.FLBPluginRegister(def, "beacongrid_fbgo", "beacongrid counting on fluent-bit-go's decoder (benchmark only)")
}

//export FLBPluginInit
func FLBPluginInit(plugin unsafe.Pointer) int {
	g := getter{plugin}
	m, err := fields.Preset(g.Get("preset"))
	if err != nil {
		fmt.Fprintln(os.Stderr, "[error] [output:beacongrid_fbgo]", err)
		return output.FLB_ERROR
	}
	id, err := registry.Open(g)
	if err != nil {
		fmt.Fprintln(os.Stderr, "[error] [output:beacongrid_fbgo]", err)
		return output.FLB_ERROR
	}
	mappings[id] = m
	output.FLBPluginSetContext(plugin, id)
	return output.FLB_OK
}

//export FLBPluginFlushCtx
func FLBPluginFlushCtx(ctx, data unsafe.Pointer, length C.size_t, tag *C.char) (rc int) {
	defer func() {
		if r := recover(); r != nil { // fluent-bit-go's decoder panics on some input
			rc = output.FLB_ERROR
		}
	}()
	id, _ := output.FLBPluginGetContext(ctx).(int)
	in := registry.Get(id)
	if in == nil {
		return output.FLB_ERROR
	}
	m := mappings[id]
	var fe fields.Event
	var batch detect.Batch
	dec := output.NewDecoder(data, int(length))
	for {
		ret, ts, rec := output.GetRecord(dec)
		if ret != 0 {
			break
		}
		fe.Reset()
		for slot, aliases := range m {
			for rank, key := range aliases {
				if v, ok := lookup(rec, key); ok && fe.Claim(slot, rank) {
					set(&fe, slot, v)
				}
			}
		}
		if t, ok := ts.(output.FLBTime); ok && !fe.HasTime {
			fe.Sec, fe.HasTime = t.Unix(), true
		}
		in.Add(&batch, &fe)
	}
	in.FlushBatch(&batch)
	return output.FLB_OK
}

// lookup finds key in rec: as a flat key, else as a path into nested maps.
func lookup(rec map[interface{}]interface{}, key string) (interface{}, bool) {
	if v, ok := rec[key]; ok {
		return v, true
	}
	head, rest, dotted := strings.Cut(key, ".")
	if !dotted {
		return nil, false
	}
	sub, ok := rec[head].(map[interface{}]interface{})
	if !ok {
		return nil, false
	}
	return lookup(sub, rest)
}

func set(fe *fields.Event, slot int, v interface{}) {
	switch v := v.(type) {
	case string:
		_ = fe.SetText(slot, []byte(v))
	case []byte:
		_ = fe.SetText(slot, v)
	case uint64:
		_ = fe.SetInt(slot, int64(v))
	case int64:
		_ = fe.SetInt(slot, v)
	case float64:
		_ = fe.SetFloat(slot, v)
	}
}

//export FLBPluginExitCtx
func FLBPluginExitCtx(ctx unsafe.Pointer) int {
	if id, ok := output.FLBPluginGetContext(ctx).(int); ok {
		registry.Close(id)
	}
	return output.FLB_OK
}

func main() {}
