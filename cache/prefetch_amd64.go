package cache

// prefetch asks the CPU to bring the cache line at addr into its caches
// (PREFETCHT0). It never faults: addr may be any value, stale or invalid.
//
//go:noescape
func prefetch(addr uintptr)
