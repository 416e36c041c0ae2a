// Command plugin is the beacongrid Fluent Bit output plugin, built with
// -buildmode=c-shared into out_beacongrid.so. This file is only the cgo
// layer: each exported function forwards Fluent Bit's call to package
// instance and turns any panic into an error return, because a panic
// escaping here would kill the user's whole Fluent Bit.
//
// Return codes: a flush returns FLB_OK for every chunk it could read, even
// one malformed part-way (its good events are counted, the rest counted as
// bad; a retry could only count them twice). It returns FLB_ERROR for a
// flush that panicked (the same chunk would panic again) or that names no
// live instance. It never returns FLB_RETRY: nothing in the flush path waits
// on anything a retry could bring back (alerts go to the spool from a
// goroutine, buffered in memory).
package main

import "C"

import (
	"runtime/debug"
	"sync/atomic"
	"unsafe"

	"github.com/fluent/fluent-bit-go/output"

	"github.com/beacongrid/beacongrid/plugin/instance"
)

var registry = instance.NewRegistry(instance.LoadModel)

// pluginLog logs what belongs to no instance (registration, unknown
// contexts) as Fluent Bit's [output:beacongrid] lines.
var pluginLog = instance.NewLogger("")

// Debug hooks, set only by debug.go in builds with the beacongrid_debug tag
// (the fidelity tests inject panics with them); no-ops otherwise, so no
// configuration of a production build can reach them.
var (
	debugInit  = func(id int, g getter) {}
	debugPoint = func(id int, point, tag string) {}
)

// getter reads properties of the instance being initialised. Valid only
// inside FLBPluginInit: Fluent Bit overwrites the plugin's o_ins afterwards.
type getter struct{ plugin unsafe.Pointer }

func (g getter) Get(key string) string { return output.FLBPluginConfigKey(g.plugin, key) }

// panics counts recovered panics; only the first few log a stack trace.
var panics atomic.Int64

const panicStacks = 5

// recovered logs a recovered panic r of function where, through the
// instance's logger when the instance is known, and returns fail.
func recovered(r any, where string, in *instance.Instance, fail int) int {
	log := pluginLog
	if in != nil {
		log = in.Log()
	}
	if n := panics.Add(1); n <= panicStacks {
		log.Error("panic in %s recovered (returning %d): %v\n%s", where, fail, r, debug.Stack())
	} else {
		log.Error("panic in %s recovered (returning %d): %v (%d panics so far)", where, fail, r, n)
	}
	return fail
}

// FLBPluginRegister registers the plugin. Fluent Bit fails on -1.
//
//export FLBPluginRegister
func FLBPluginRegister(def unsafe.Pointer) (rc int) {
	defer func() {
		if r := recover(); r != nil {
			rc = recovered(r, "FLBPluginRegister", nil, -1)
		}
	}()
	debugPoint(0, "register", "")
	return output.FLBPluginRegister(def, "beacongrid", "Detects C2 beaconing in network logs")
}

// FLBPluginInit starts one [OUTPUT] instance; a return <= 0 fails start-up.
//
//export FLBPluginInit
func FLBPluginInit(plugin unsafe.Pointer) (rc int) {
	id := 0
	defer func() {
		if r := recover(); r != nil {
			rc = recovered(r, "FLBPluginInit", registry.Get(id), output.FLB_ERROR)
			if id != 0 { // Fluent Bit never exits an instance whose Init failed
				registry.Close(id)
			}
		}
	}()
	g := getter{plugin}
	id, err := registry.Open(g)
	if err != nil {
		pluginLog.Error("cannot start: %v", err)
		return output.FLB_ERROR
	}
	debugInit(id, g)
	debugPoint(id, "init", "")
	output.FLBPluginSetContext(plugin, id)
	return output.FLB_OK
}

//export FLBPluginFlushCtx
func FLBPluginFlushCtx(ctx, data unsafe.Pointer, length C.size_t, tag *C.char) (rc int) {
	var in *instance.Instance
	defer func() {
		if r := recover(); r != nil {
			rc = recovered(r, "FLBPluginFlushCtx", in, output.FLB_ERROR)
		}
	}()
	id, ok := output.FLBPluginGetContext(ctx).(int)
	if !ok {
		pluginLog.Error("flush with an unknown context: chunk dropped")
		return output.FLB_ERROR
	}
	in = registry.Get(id)
	return flush(id, in, data, length, tag)
}

//export FLBPluginFlush
func FLBPluginFlush(data unsafe.Pointer, length C.size_t, tag *C.char) (rc int) {
	var in *instance.Instance
	defer func() {
		if r := recover(); r != nil {
			rc = recovered(r, "FLBPluginFlush", in, output.FLB_ERROR)
		}
	}()
	in = registry.Only()
	return flush(0, in, data, length, tag)
}

func flush(id int, in *instance.Instance, data unsafe.Pointer, length C.size_t, tag *C.char) int {
	if in == nil {
		pluginLog.Error("flush for no live instance: chunk dropped")
		return output.FLB_ERROR
	}
	t := C.GoString(tag)
	debugPoint(id, "flush", t)
	if data == nil || length == 0 {
		return output.FLB_OK
	}
	// Zero-copy: the chunk is read in place and not kept after the call.
	chunk := unsafe.Slice((*byte)(data), int(length))
	return in.Flush(chunk, t)
}

//export FLBPluginExitCtx
func FLBPluginExitCtx(ctx unsafe.Pointer) (rc int) {
	var in *instance.Instance
	defer func() {
		if r := recover(); r != nil {
			rc = recovered(r, "FLBPluginExitCtx", in, output.FLB_ERROR)
		}
	}()
	if id, ok := output.FLBPluginGetContext(ctx).(int); ok {
		in = registry.Get(id)
		debugPoint(id, "exit", "")
		registry.Close(id)
	}
	return output.FLB_OK
}

//export FLBPluginExit
func FLBPluginExit() (rc int) {
	defer func() {
		if r := recover(); r != nil {
			rc = recovered(r, "FLBPluginExit", nil, output.FLB_ERROR)
		}
	}()
	registry.CloseAll()
	return output.FLB_OK
}

//export FLBPluginUnregister
func FLBPluginUnregister(def unsafe.Pointer) {
	defer func() {
		if r := recover(); r != nil {
			recovered(r, "FLBPluginUnregister", nil, 0)
		}
	}()
	output.FLBPluginUnregister(def)
}

func main() {}
