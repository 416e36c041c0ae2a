// Command plugin is the beacongrid Fluent Bit output plugin, built with
// -buildmode=c-shared into out_beacongrid.so. This file is only the cgo
// layer: each exported function forwards Fluent Bit's call to package
// instance and turns any panic into FLB_ERROR, because a panic escaping
// here would kill the user's whole Fluent Bit.
package main

import "C"

import (
	"fmt"
	"os"
	"runtime/debug"
	"unsafe"

	"github.com/fluent/fluent-bit-go/output"

	"github.com/beacongrid/beacongrid/plugin/instance"
)

var registry = instance.NewRegistry(instance.LoadModel)

// getter reads properties of the instance being initialised. Valid only
// inside FLBPluginInit: Fluent Bit overwrites the plugin's o_ins afterwards.
type getter struct{ plugin unsafe.Pointer }

func (g getter) Get(key string) string { return output.FLBPluginConfigKey(g.plugin, key) }

func recoverTo(rc *int, where string) {
	if r := recover(); r != nil {
		fmt.Fprintf(os.Stderr, "[error] [output:beacongrid] panic in %s recovered: %v\n%s", where, r, debug.Stack())
		*rc = output.FLB_ERROR
	}
}

//export FLBPluginRegister
func FLBPluginRegister(def unsafe.Pointer) (rc int) {
	defer recoverTo(&rc, "register")
	return output.FLBPluginRegister(def, "beacongrid", "Detects C2 beaconing in network logs")
}

//export FLBPluginInit
func FLBPluginInit(plugin unsafe.Pointer) (rc int) {
	defer recoverTo(&rc, "init")
	id, err := registry.Open(getter{plugin})
	if err != nil {
		fmt.Fprintf(os.Stderr, "[error] [output:beacongrid] cannot start: %v\n", err)
		return output.FLB_ERROR
	}
	output.FLBPluginSetContext(plugin, id)
	return output.FLB_OK
}

//export FLBPluginFlushCtx
func FLBPluginFlushCtx(ctx, data unsafe.Pointer, length C.size_t, tag *C.char) (rc int) {
	defer recoverTo(&rc, "flush")
	id, ok := output.FLBPluginGetContext(ctx).(int)
	if !ok {
		return output.FLB_ERROR
	}
	return flush(registry.Get(id), data, length, tag)
}

//export FLBPluginFlush
func FLBPluginFlush(data unsafe.Pointer, length C.size_t, tag *C.char) (rc int) {
	defer recoverTo(&rc, "flush")
	return flush(registry.Only(), data, length, tag)
}

func flush(in *instance.Instance, data unsafe.Pointer, length C.size_t, tag *C.char) int {
	if in == nil {
		return output.FLB_ERROR
	}
	if data == nil || length == 0 {
		return output.FLB_OK
	}
	// Zero-copy: the chunk is read in place and not kept after the call.
	chunk := unsafe.Slice((*byte)(data), int(length))
	return in.Flush(chunk, C.GoString(tag))
}

//export FLBPluginExitCtx
func FLBPluginExitCtx(ctx unsafe.Pointer) (rc int) {
	defer recoverTo(&rc, "exit")
	if id, ok := output.FLBPluginGetContext(ctx).(int); ok {
		registry.Close(id)
	}
	return output.FLB_OK
}

//export FLBPluginExit
func FLBPluginExit() (rc int) {
	defer recoverTo(&rc, "exit")
	registry.CloseAll()
	return output.FLB_OK
}

//export FLBPluginUnregister
func FLBPluginUnregister(def unsafe.Pointer) {
	defer func() { _ = recover() }()
	output.FLBPluginUnregister(def)
}

func main() {}
