//go:build race

package cluster

// raceEnabled: the race detector's runtime shuffles the order in which
// goroutines made ready run, to find more races, so no two runs of a
// seed interleave alike.
const raceEnabled = true
