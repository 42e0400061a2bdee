//go:build !race

package cluster

// raceEnabled: built without the race detector.
const raceEnabled = false
