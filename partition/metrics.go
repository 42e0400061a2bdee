package partition

import "github.com/prometheus/client_golang/prometheus"

// Metrics of every partition in the process, aggregated: per-partition series
// would cost memory per partition on brokers with thousands of them.
var (
	syncSeconds = prometheus.NewHistogram(prometheus.HistogramOpts{
		Name:    "cairn_partition_sync_seconds",
		Help:    "Duration of group-commit fdatasync calls.",
		Buckets: prometheus.ExponentialBuckets(0.0001, 2, 16),
	})
	appendedRecords = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "cairn_partition_appended_records_total",
		Help: "Records appended to partition logs.",
	})
	appendedBytes = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "cairn_partition_appended_bytes_total",
		Help: "Batch bytes appended to partition logs.",
	})
	compactedSegments = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "cairn_partition_compacted_segments_total",
		Help: "Segments rewritten by log compaction.",
	})
)

// Collectors returns the partition metrics for registration.
func Collectors() []prometheus.Collector {
	return []prometheus.Collector{syncSeconds, appendedRecords, appendedBytes, compactedSegments}
}
