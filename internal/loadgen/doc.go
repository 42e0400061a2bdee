// Package loadgen drives load against a Kafka-protocol cluster and measures
// it: the workloads behind `cairn bench produce`, `consume` and `e2e`, and
// the statistics they report.
//
// A Runner runs one workload at a time with franz-go clients made by its
// Dialer. Every run is bounded twice, by a record count and by a duration,
// whichever comes first. A run whose records are outstanding with no answer
// for the drain timeout (a dead broker), or that was interrupted a second
// ago, stops waiting. A record's fate is one of three: acknowledged, failed
// (refused by the client or the broker) or unknown (never answered, or
// answered with a timeout, a cancellation or a lost connection: it may be
// in the log); Summary counts the last two apart.
//
//   - Produce: Producers clients share one record budget and one deadline.
//     Latency runs from the produce call to the acknowledgement. With a
//     target rate, record n is due at start + n/rate across all clients and
//     its latency runs from that due time, so a stalled sender shows up in
//     the latencies instead of quietly lowering the rate.
//   - Consume: a catch-up read from each partition's log start to the high
//     watermark it had when the read began.
//   - EndToEnd: a consumer starts at the high watermarks, producers send
//     records whose value begins with the send time (8 bytes, big-endian,
//     nanoseconds since the run began on this process's monotonic clock),
//     and the latency is receipt minus send.
//
// Values are random bytes, so compression is measured on data it cannot
// shrink. Byte counts are key plus value bytes; MB is 10^6 bytes, as in dd
// and the disk reference, so the figures divide by them directly.
//
// Latency percentiles are nearest-rank values of a sorted sample: exact for
// runs up to DefaultLatencySamplesMax records, from a uniform reservoir
// sample beyond. Count, mean and maximum are always exact. Client CPU is
// this process's getrusage; broker CPU and memory come from the broker's
// Prometheus page (process_cpu_seconds_total, process_resident_memory_bytes)
// read before and after the timed part.
//
// The pure parts (Pacer, LatencyRecorder, Percentile, ParseProcessMetrics,
// Summary) take their inputs, including time, as arguments, so they are
// tested with plain values and a fake clock.
package loadgen
