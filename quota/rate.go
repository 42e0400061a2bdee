package quota

import (
	"time"
)

// Window is how rates are measured: Samples buckets of SampleWindow each.
type Window struct {
	Samples      int
	SampleWindow time.Duration
}

// DefaultWindow is Kafka's: 11 samples of 1 s.
var DefaultWindow = Window{Samples: 11, SampleWindow: time.Second}

// Span is the time the samples cover.
func (w Window) Span() time.Duration { return time.Duration(w.Samples) * w.SampleWindow }

// rate is a windowed rate: Samples buckets, each the sum of what was
// recorded in one SampleWindow-long slot of time.
type rate struct {
	w       Window
	starts  []time.Time // starts[i] is when bucket i's slot began; zero when unused
	totals  []float64
	current int
}

func newRate(w Window) *rate {
	return &rate{w: w, starts: make([]time.Time, w.Samples), totals: make([]float64, w.Samples)}
}

// record adds v at now, starting a new bucket when now is past the current
// one's slot (the oldest bucket is reused).
func (r *rate) record(now time.Time, v float64) {
	r.roll(now)
	r.totals[r.current] += v
}

func (r *rate) roll(now time.Time) {
	start := r.starts[r.current]
	if !start.IsZero() && now.Sub(start) < r.w.SampleWindow {
		return
	}
	if !start.IsZero() {
		r.current = (r.current + 1) % r.w.Samples
	}
	r.starts[r.current] = now
	r.totals[r.current] = 0
}

// value is the rate per second at now: the total of the buckets whose slot
// began within the window, over the time since the oldest of them began,
// counted as at least Samples-1 sample windows (elapsed).
func (r *rate) value(now time.Time) (perSecond float64, elapsed time.Duration) {
	var total float64
	var oldest time.Time
	for i, start := range r.starts {
		if start.IsZero() || now.Sub(start) >= r.w.Span() {
			continue
		}
		total += r.totals[i]
		if oldest.IsZero() || start.Before(oldest) {
			oldest = start
		}
	}
	elapsed = time.Duration(r.w.Samples-1) * r.w.SampleWindow
	if !oldest.IsZero() {
		since := now.Sub(oldest)
		if full := since / r.w.SampleWindow; full < time.Duration(r.w.Samples-1) {
			since += (time.Duration(r.w.Samples-1) - full) * r.w.SampleWindow
		}
		elapsed = since
	}
	return total / elapsed.Seconds(), elapsed
}

// lastRecorded is when the newest bucket began; zero when none has.
func (r *rate) lastRecorded() time.Time { return r.starts[r.current] }

// throttle is how long a client over limit must send nothing for the rate
// at now to come back to limit: (value-limit)/limit of the time the rate
// is spread over. Zero at or under the limit.
func (r *rate) throttle(now time.Time, limit float64) time.Duration {
	v, elapsed := r.value(now)
	if v <= limit {
		return 0
	}
	return time.Duration((v - limit) / limit * float64(elapsed))
}
