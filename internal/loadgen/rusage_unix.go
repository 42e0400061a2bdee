//go:build unix

package loadgen

import (
	"fmt"
	"syscall"
)

// ProcessCPUSeconds returns the user plus system CPU time this process has
// used so far.
func ProcessCPUSeconds() (float64, error) {
	var usage syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &usage); err != nil {
		return 0, fmt.Errorf("getrusage: %w", err)
	}
	return float64(usage.Utime.Nano()+usage.Stime.Nano()) / 1e9, nil
}
