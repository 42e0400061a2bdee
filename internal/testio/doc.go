// Package testio holds I/O helpers that tests in several packages share:
// Buffer collects what a command, process or logger running in another
// goroutine writes while the test reads it; FlipSecondBatchMagic damages
// segment bytes the way a bit flip on disk would.
package testio
