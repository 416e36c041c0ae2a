// Command probe is a tiny Fluent Bit Go output plugin, built with
// -buildmode=c-shared, that the flbtest tests load into flbhost to check that
// the host drives a plugin the way Fluent Bit does. It is not shipped.
//
// Every call the host makes is appended as one JSON object per line to the
// file named by the FLBPROBE_LOG environment variable (stderr if unset): the
// function, the calling OS thread, the C stack pointer and whether it lies on
// the thread's own stack, pointers the host passed, and for flushes the tag,
// size and SHA-256 of the data.
//
// Instance properties read in FLBPluginInit:
//
//	id        a name reported with every event of the instance
//	keys      comma-separated keys to look up and report verbatim (and
//	          which of them the host returned as NULL)
//	rc        what FLBPluginFlushCtx returns (default 1)
//	init_rc   what FLBPluginInit returns (default 1)
//	sleep_ms  how long each flush sleeps (to make flushes overlap)
//	panic     "flush" panics inside each flush; the probe recovers and
//	          returns FLB_ERROR
package main

/*
#cgo CFLAGS: -D_GNU_SOURCE
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>

struct probe_def {
	int type;
	int proxy;
	int flags;
	char *name;
	char *description;
	int event_type;
	void *config_map;
};

struct probe_context {
	void *remote_context;
	void *proxy;
};

struct probe_plugin {
	char *name;
	void *api;
	void *o_ins;
	struct probe_context *context;
};

// probe_sp returns an address in the current C frame: when Go calls C on a
// thread that entered Go from C, that frame is on the C caller's stack.
static uintptr_t probe_sp(void) {
	return (uintptr_t) __builtin_frame_address(0);
}

// probe_on_thread_stack says whether sp lies inside the calling thread's own
// stack (1), outside it (0), or cannot tell (-1).
static int probe_on_thread_stack(uintptr_t sp) {
	pthread_attr_t attr;
	void *addr;
	size_t size;
	if (pthread_getattr_np(pthread_self(), &attr) != 0) {
		return -1;
	}
	if (pthread_attr_getstack(&attr, &addr, &size) != 0) {
		pthread_attr_destroy(&attr);
		return -1;
	}
	pthread_attr_destroy(&attr);
	return sp >= (uintptr_t) addr && sp < (uintptr_t) addr + size;
}

typedef const char *(*probe_get_property)(const char *, void *);

// probe_property_is_null calls api->output_get_property directly and says
// whether it returned NULL (fluent-bit-go turns NULL and "" both into "").
static int probe_property_is_null(void *plugin, const char *key) {
	struct probe_plugin *p = plugin;
	probe_get_property get = *(probe_get_property *) p->api;
	return get(key, p->o_ins) == NULL;
}

// probe_def_zero says whether the first n bytes at p are all zero.
static int probe_def_zero(const void *p, size_t n) {
	const unsigned char *b = p;
	for (size_t i = 0; i < n; i++) {
		if (b[i] != 0) {
			return 0;
		}
	}
	return 1;
}
*/
import "C"

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
	"unsafe"

	"github.com/fluent/fluent-bit-go/output"
)

// event is one line of the probe log.
type event struct {
	Ev          string            `json:"ev"`
	Data        uint64            `json:"data,omitempty"` // a flush's buffer address
	Tid         int               `json:"tid"`
	Pid         int               `json:"pid"`
	SP          uint64            `json:"sp"`
	OnStack     int               `json:"on_thread_stack"`
	ID          string            `json:"id,omitempty"`
	Arg         int               `json:"arg,omitempty"`
	DefZero     bool              `json:"def_zero,omitempty"`
	Name        string            `json:"name,omitempty"`
	Plugin      uint64            `json:"plugin,omitempty"`
	API         uint64            `json:"api,omitempty"`
	GetProperty uint64            `json:"get_property,omitempty"`
	OIns        uint64            `json:"o_ins,omitempty"`
	Context     uint64            `json:"context,omitempty"`
	CtxBefore   uint64            `json:"ctx_before,omitempty"`
	Ctx         uint64            `json:"ctx,omitempty"`
	Props       map[string]string `json:"props,omitempty"`
	NullProps   []string          `json:"null_props,omitempty"`
	Tag         string            `json:"tag,omitempty"`
	Size        int               `json:"size,omitempty"`
	SHA256      string            `json:"sha256,omitempty"`
	Inflight    int32             `json:"inflight,omitempty"`
	MaxInflight int32             `json:"max_inflight,omitempty"`
	Flushes     int64             `json:"flushes,omitempty"`
	RC          int               `json:"rc"`
	Recovered   string            `json:"recovered,omitempty"`
}

// instance is the per-instance state set with FLBPluginSetContext.
type instance struct {
	id          string
	rc          int
	sleep       time.Duration
	panicFlush  bool
	inflight    atomic.Int32
	maxInflight atomic.Int32
	flushes     atomic.Int64
}

var (
	logMu   sync.Mutex
	logFile *os.File
)

func record(e event) {
	e.Tid = syscall.Gettid()
	e.Pid = os.Getpid()
	sp := C.probe_sp()
	e.SP = uint64(sp)
	e.OnStack = int(C.probe_on_thread_stack(sp))
	line, err := json.Marshal(e)
	if err != nil {
		fmt.Fprintln(os.Stderr, "probe:", err)
		return
	}
	line = append(line, '\n')
	logMu.Lock()
	defer logMu.Unlock()
	if logFile == nil {
		logFile = os.Stderr
		if path := os.Getenv("FLBPROBE_LOG"); path != "" {
			f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o644)
			if err != nil {
				fmt.Fprintln(os.Stderr, "probe:", err)
			} else {
				logFile = f
			}
		}
	}
	if _, err := logFile.Write(line); err != nil {
		fmt.Fprintln(os.Stderr, "probe:", err)
	}
}

//export FLBPluginPreRegister
func FLBPluginPreRegister(hotReloading C.int) C.int {
	record(event{Ev: "preregister", Arg: int(hotReloading)})
	return 0
}

//export FLBPluginRegister
func FLBPluginRegister(def unsafe.Pointer) C.int {
	zero := C.probe_def_zero(def, 48) == 1
	rc := output.FLBPluginRegister(def, "probe", "flbhost probe")
	record(event{Ev: "register", DefZero: zero, RC: rc})
	return C.int(rc)
}

//export FLBPluginInit
func FLBPluginInit(plugin unsafe.Pointer) C.int {
	p := (*C.struct_probe_plugin)(plugin)
	e := event{
		Ev:      "init",
		Name:    C.GoString(p.name),
		Plugin:  uint64(uintptr(plugin)),
		API:     uint64(uintptr(p.api)),
		OIns:    uint64(uintptr(p.o_ins)),
		Context: uint64(uintptr(unsafe.Pointer(p.context))),
	}
	if p.api != nil {
		e.GetProperty = uint64(uintptr(*(*unsafe.Pointer)(p.api)))
	}
	if p.context != nil {
		e.CtxBefore = uint64(uintptr(p.context.remote_context))
	}
	key := func(k string) string { return output.FLBPluginConfigKey(plugin, k) }
	st := &instance{id: key("id"), rc: output.FLB_OK}
	e.ID = st.id
	if v := key("keys"); v != "" {
		e.Props = map[string]string{}
		for _, k := range strings.Split(v, ",") {
			e.Props[k] = key(k)
			ck := C.CString(k)
			if C.probe_property_is_null(plugin, ck) == 1 {
				e.NullProps = append(e.NullProps, k)
			}
			C.free(unsafe.Pointer(ck))
		}
	}
	if v := key("rc"); v != "" {
		st.rc, _ = strconv.Atoi(v)
	}
	if v := key("sleep_ms"); v != "" {
		ms, _ := strconv.Atoi(v)
		st.sleep = time.Duration(ms) * time.Millisecond
	}
	st.panicFlush = key("panic") == "flush"
	rc := output.FLB_OK
	if v := key("init_rc"); v != "" {
		rc, _ = strconv.Atoi(v)
	}
	e.RC = rc
	if rc == output.FLB_OK {
		output.FLBPluginSetContext(plugin, st)
		e.Ctx = uint64(uintptr(p.context.remote_context))
	}
	record(e)
	return C.int(rc)
}

//export FLBPluginOutputPreRun
func FLBPluginOutputPreRun(hotReload C.int) C.int {
	record(event{Ev: "prerun", Arg: int(hotReload)})
	return 0
}

//export FLBPluginFlushCtx
func FLBPluginFlushCtx(ctx, data unsafe.Pointer, length C.size_t, tag *C.char) (rc C.int) {
	st, _ := output.FLBPluginGetContext(ctx).(*instance)
	e := event{Ev: "flush", Data: uint64(uintptr(data)), Ctx: uint64(uintptr(ctx)), Tag: C.GoString(tag), Size: int(length)}
	if st == nil {
		e.RC = output.FLB_ERROR
		record(e)
		return output.FLB_ERROR
	}
	e.ID = st.id
	n := st.inflight.Add(1)
	defer st.inflight.Add(-1)
	for m := st.maxInflight.Load(); n > m && !st.maxInflight.CompareAndSwap(m, n); m = st.maxInflight.Load() {
	}
	st.flushes.Add(1)
	// Read the buffer in place, as a zero-copy plugin would.
	var sum [sha256.Size]byte
	if length > 0 {
		sum = sha256.Sum256(unsafe.Slice((*byte)(data), int(length)))
	} else {
		sum = sha256.Sum256(nil)
	}
	e.SHA256 = hex.EncodeToString(sum[:])
	e.Inflight = n
	if st.sleep > 0 {
		time.Sleep(st.sleep)
	}
	e.RC = st.rc
	if st.panicFlush {
		defer func() {
			if r := recover(); r != nil {
				e.Recovered = fmt.Sprint(r)
				e.RC = output.FLB_ERROR
				record(e)
				rc = output.FLB_ERROR
			}
		}()
		panic("probe: panic in flush")
	}
	record(e)
	return C.int(st.rc)
}

// FLBPluginFlush must never be called: FLBPluginFlushCtx is exported.
//
//export FLBPluginFlush
func FLBPluginFlush(data unsafe.Pointer, length C.size_t, tag *C.char) C.int {
	record(event{Ev: "flush_legacy", Tag: C.GoString(tag), Size: int(length), RC: output.FLB_ERROR})
	return output.FLB_ERROR
}

//export FLBPluginOutputPreExit
func FLBPluginOutputPreExit(hotReload C.int) {
	record(event{Ev: "preexit", Arg: int(hotReload)})
}

//export FLBPluginExitCtx
func FLBPluginExitCtx(ctx unsafe.Pointer) C.int {
	e := event{Ev: "exit", Ctx: uint64(uintptr(ctx)), RC: output.FLB_OK}
	if st, ok := output.FLBPluginGetContext(ctx).(*instance); ok {
		e.ID = st.id
		e.MaxInflight = st.maxInflight.Load()
		e.Flushes = st.flushes.Load()
	}
	record(e)
	return output.FLB_OK
}

// FLBPluginExit must never be called: FLBPluginExitCtx is exported.
//
//export FLBPluginExit
func FLBPluginExit() C.int {
	record(event{Ev: "exit_legacy", RC: output.FLB_OK})
	return output.FLB_OK
}

//export FLBPluginUnregister
func FLBPluginUnregister(def unsafe.Pointer) {
	d := (*C.struct_probe_def)(def)
	record(event{Ev: "unregister", Name: C.GoString(d.name)})
	output.FLBPluginUnregister(def)
}

func main() {}
