//go:build race

package instance

// raceEnabled: the race detector allocates, so allocation counts mean nothing.
const raceEnabled = true
