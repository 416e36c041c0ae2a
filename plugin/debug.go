//go:build beacongrid_debug

// Fault injection for the fidelity tests (test/plugin), compiled only with
// -tags beacongrid_debug: a production build has no debug_panic property.
//
// The instance property debug_panic lists points that panic: init (after
// the instance started), flush (every flush whose tag is "debug.panic"),
// exit. The environment variable BEACONGRID_DEBUG_PANIC=register makes
// FLBPluginRegister panic.

package main

import (
	"os"
	"strings"
	"sync"
)

var debugPoints sync.Map // instance id -> set of points (map[string]bool)

func init() {
	debugInit = func(id int, g getter) {
		points := map[string]bool{}
		for _, p := range strings.Split(g.Get("debug_panic"), ",") {
			if p = strings.TrimSpace(p); p != "" {
				points[p] = true
			}
		}
		debugPoints.Store(id, points)
	}
	debugPoint = func(id int, point, tag string) {
		if point == "register" {
			if os.Getenv("BEACONGRID_DEBUG_PANIC") == "register" {
				panic("debug_panic: register")
			}
			return
		}
		v, _ := debugPoints.Load(id)
		points, _ := v.(map[string]bool)
		if points[point] && (point != "flush" || tag == "debug.panic") {
			panic("debug_panic: " + point)
		}
	}
}
