package loadgen

import (
	"math"
	"math/rand/v2"
	"slices"
	"sync"
	"time"
)

// DefaultLatencySamplesMax bounds the latencies one recorder keeps: 2^21
// samples (16 MiB). Runs up to that many records get exact percentiles.
const DefaultLatencySamplesMax = 1 << 21

// LatencyRecorder collects latencies and reports exact percentiles while it
// has seen no more than its sample bound; past the bound it keeps a uniform
// random sample (reservoir sampling), so memory stays bounded on long runs
// and percentiles become estimates. The count, mean and maximum are always
// exact. It is safe for concurrent use: producer promises and the consumer
// record into one recorder.
type LatencyRecorder struct {
	mu         sync.Mutex
	samplesMax int
	samples    []int64 // nanoseconds
	count      int64
	sumNs      float64
	maxNs      int64
	random     *rand.Rand
}

// NewLatencyRecorder returns a recorder that keeps at most samplesMax
// samples; samplesMax below 1 means DefaultLatencySamplesMax.
func NewLatencyRecorder(samplesMax int) *LatencyRecorder {
	if samplesMax < 1 {
		samplesMax = DefaultLatencySamplesMax
	}
	return &LatencyRecorder{
		samplesMax: samplesMax,
		// A fixed seed: the same run of latencies keeps the same sample,
		// so a report can be reproduced from the same input.
		random: rand.New(rand.NewPCG(1, 2)),
	}
}

// Record adds one latency. A negative latency (a clock that stepped back)
// counts as zero rather than skewing the low percentiles.
func (r *LatencyRecorder) Record(latency time.Duration) {
	latencyNs := max(int64(latency), 0)
	r.mu.Lock()
	defer r.mu.Unlock()
	r.count++
	r.sumNs += float64(latencyNs)
	r.maxNs = max(r.maxNs, latencyNs)
	if len(r.samples) < r.samplesMax {
		r.samples = append(r.samples, latencyNs)
		return
	}
	// Algorithm R: the new sample replaces a kept one with probability
	// samplesMax/count, which keeps every latency seen equally likely to be
	// in the sample.
	if slot := r.random.Int64N(r.count); slot < int64(r.samplesMax) {
		r.samples[slot] = latencyNs
	}
}

// Summary returns the percentiles of what was recorded so far.
func (r *LatencyRecorder) Summary() LatencySummary {
	r.mu.Lock()
	sorted := slices.Clone(r.samples)
	summary := LatencySummary{
		Count:   r.count,
		Sampled: int64(len(r.samples)),
		Exact:   r.count == int64(len(r.samples)),
		MaxMs:   nanosToMillis(float64(r.maxNs)),
	}
	if r.count > 0 {
		summary.MeanMs = nanosToMillis(r.sumNs / float64(r.count))
	}
	r.mu.Unlock()

	slices.Sort(sorted)
	summary.P50Ms = nanosToMillis(float64(Percentile(sorted, 0.50)))
	summary.P90Ms = nanosToMillis(float64(Percentile(sorted, 0.90)))
	summary.P99Ms = nanosToMillis(float64(Percentile(sorted, 0.99)))
	summary.P999Ms = nanosToMillis(float64(Percentile(sorted, 0.999)))
	return summary
}

// Percentile returns the nearest-rank quantile q (0 < q <= 1) of sorted: the
// smallest sample that at least q of the samples are less than or equal to.
// It is an observed value, never an interpolation, and 0 for no samples.
func Percentile(sorted []int64, q float64) int64 {
	if len(sorted) == 0 {
		return 0
	}
	// The small tolerance keeps q*n that is an integer in exact arithmetic
	// (0.9*10) from rounding up to the next rank in floating point.
	rank := int(math.Ceil(q*float64(len(sorted)) - 1e-9))
	return sorted[min(max(rank, 1), len(sorted))-1]
}

func nanosToMillis(nanos float64) float64 { return nanos / 1e6 }

// LatencySummary is the distribution of one workload's latencies, in
// milliseconds.
type LatencySummary struct {
	// Count is every latency recorded.
	Count int64 `json:"count"`
	// Sampled is how many of them the percentiles were computed from.
	Sampled int64 `json:"sampled"`
	// Exact is true when Sampled equals Count, so the percentiles are exact.
	Exact  bool    `json:"exact"`
	P50Ms  float64 `json:"p50_ms"`
	P90Ms  float64 `json:"p90_ms"`
	P99Ms  float64 `json:"p99_ms"`
	P999Ms float64 `json:"p999_ms"`
	MaxMs  float64 `json:"max_ms"`
	MeanMs float64 `json:"mean_ms"`
}
