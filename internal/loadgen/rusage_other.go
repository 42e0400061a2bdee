//go:build !unix

package loadgen

import (
	"errors"
	"fmt"
)

// ProcessCPUSeconds is not available without getrusage.
func ProcessCPUSeconds() (float64, error) {
	return 0, fmt.Errorf("process cpu time: %w", errors.ErrUnsupported)
}
