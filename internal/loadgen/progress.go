package loadgen

import (
	"fmt"
	"io"
	"sync/atomic"
	"time"
)

// progressInterval is how often a running workload reports.
const progressInterval = time.Second

// progressLine describes count records done, at the rate since the previous
// line (count minus previousCount over elapsed), so it shows the current
// speed rather than an average diluted by a slow start.
func progressLine(workload Workload, count, previousCount int64, elapsed time.Duration) string {
	var perSecond float64
	if elapsed > 0 {
		perSecond = float64(count-previousCount) / elapsed.Seconds()
	}
	return fmt.Sprintf("%s: %d records, %.0f records/s", workload, count, perSecond)
}

// startProgress prints a progress line every progressInterval until the
// returned function is called. A nil out prints nothing.
func startProgress(out io.Writer, workload Workload, count *atomic.Int64) (stop func()) {
	if out == nil {
		return func() {}
	}
	done := make(chan struct{})
	finished := make(chan struct{})
	go func() {
		defer close(finished)
		ticker := time.NewTicker(progressInterval)
		defer ticker.Stop()
		last, lastCount := time.Now(), int64(0)
		for {
			select {
			case now := <-ticker.C:
				current := count.Load()
				fmt.Fprintln(out, progressLine(workload, current, lastCount, now.Sub(last)))
				last, lastCount = now, current
			case <-done:
				return
			}
		}
	}()
	return func() {
		close(done)
		<-finished
	}
}
