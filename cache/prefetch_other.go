//go:build !amd64

package cache

// prefetch does nothing on this architecture: ObserveBatch then only
// saves the per-event counter updates.
func prefetch(addr uintptr) {}
