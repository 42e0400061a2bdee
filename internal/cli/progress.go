package cli

import (
	"fmt"
	"time"
)

// ProgressMeter turns a growing count of acknowledged records into progress
// lines. The caller decides when to ask (produce asks once a second) and
// passes the time in.
type ProgressMeter struct {
	lastTime  time.Time
	lastCount int64
}

// NewProgressMeter starts a meter at started with nothing counted.
func NewProgressMeter(started time.Time) *ProgressMeter {
	return &ProgressMeter{lastTime: started}
}

// Line returns a progress line for count records acknowledged by now. The
// rate covers the time since the previous line, so it shows the current
// speed rather than an average diluted by a slow start.
func (m *ProgressMeter) Line(count int64, now time.Time) string {
	elapsed := now.Sub(m.lastTime)
	var perSecond int64
	if elapsed > 0 {
		perSecond = int64(float64(count-m.lastCount) / elapsed.Seconds())
	}
	m.lastTime, m.lastCount = now, count
	return fmt.Sprintf("acked %d records, %d records/s", count, perSecond)
}

// ProduceSummary is the line produce prints when it is done.
func ProduceSummary(count int64, topic string) string {
	return fmt.Sprintf("produced %d records to %s", count, topic)
}
