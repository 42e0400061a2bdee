package loadgen

import (
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"time"
)

// bytesPerMegabyte: MB/s figures are decimal, like dd's and the disk
// reference's, so they divide without a conversion.
const bytesPerMegabyte = 1e6

// Summary is the outcome of one run; --json prints it as one object.
type Summary struct {
	Workload    Workload `json:"workload"`
	Topic       string   `json:"topic"`
	Partitions  int32    `json:"partitions"`
	RecordBytes int      `json:"record_bytes"`
	Producers   int      `json:"producers,omitempty"`
	Acks        string   `json:"acks,omitempty"`
	Compression string   `json:"compression,omitempty"`
	// FetchPartitionBytes is the consumer's fetch size per partition when
	// set (consume, e2e).
	FetchPartitionBytes int32 `json:"fetch_partition_bytes,omitempty"`
	// RateTargetPerSecond is the fixed rate asked for; 0 is as fast as
	// possible.
	RateTargetPerSecond float64 `json:"rate_target_per_second"`

	// Records is how many records were acknowledged (produce), read
	// (consume) or delivered (e2e).
	Records int64 `json:"records"`
	// Bytes is the key and value bytes of those records.
	Bytes int64 `json:"bytes"`
	// Errors counts records that certainly failed: refused by the client or
	// the broker.
	Errors int64 `json:"errors"`
	// Unknown counts records whose fate the run cannot tell: sent but never
	// answered (a dead broker, a timeout, an interrupt) or answered with an
	// error that does not say whether they were written; for e2e also
	// records acknowledged but not received within the drain timeout. They
	// may be in the log.
	Unknown    int64  `json:"unknown"`
	FirstError string `json:"first_error,omitempty"`

	ElapsedSeconds     float64 `json:"elapsed_seconds"`
	RecordsPerSecond   float64 `json:"records_per_second"`
	MegabytesPerSecond float64 `json:"megabytes_per_second"`
	// Latency is produce-to-acknowledgement for produce, send-to-receive
	// for e2e, absent for consume.
	Latency *LatencySummary `json:"latency,omitempty"`

	// ClientCPUSeconds is this process's user and system CPU during the
	// measured part of the run.
	ClientCPUSeconds float64 `json:"client_cpu_seconds"`
	// Broker is absent when the metrics URL could not be read.
	Broker *BrokerUsage `json:"broker,omitempty"`
	// BrokerMetricsError says why Broker is absent.
	BrokerMetricsError string `json:"broker_metrics_error,omitempty"`
}

// setRates fills the rates from the counts and the elapsed time.
func (s *Summary) setRates(elapsed time.Duration) {
	s.ElapsedSeconds = elapsed.Seconds()
	if elapsed <= 0 {
		return
	}
	s.RecordsPerSecond = float64(s.Records) / elapsed.Seconds()
	s.MegabytesPerSecond = float64(s.Bytes) / bytesPerMegabyte / elapsed.Seconds()
}

// outcomes are a run's counts of records by what became of them.
type outcomes struct {
	records, bytes  int64 // acknowledged (produce), read or delivered
	failed, unknown int64
	// reason is the first error, or why the run stopped waiting.
	reason  error
	elapsed time.Duration
}

// finish records the outcome of a run and returns ErrRecordsFailed when
// any record failed, ErrOutcomeUnknown when only unknown outcomes remain.
func (s *Summary) finish(o outcomes) error {
	s.Records, s.Bytes, s.Errors, s.Unknown = o.records, o.bytes, o.failed, o.unknown
	s.setRates(o.elapsed)
	if o.reason != nil {
		s.FirstError = o.reason.Error()
	}
	var unknown string
	if o.unknown > 0 {
		unknown = fmt.Sprintf(", and %d with an unknown outcome (they may be in the log)", o.unknown)
	}
	switch {
	case o.failed > 0:
		return fmt.Errorf("%d records: %w%s (first: %v)", o.failed, ErrRecordsFailed, unknown, o.reason)
	case o.unknown > 0:
		return fmt.Errorf("%d %w: sent, not known to be written; they may be in the log (%v)",
			o.unknown, ErrOutcomeUnknown, o.reason)
	}
	return nil
}

// WriteJSON writes the summary as one line of JSON.
func (s Summary) WriteJSON(out io.Writer) error {
	encoded, err := json.Marshal(s)
	if err != nil {
		return fmt.Errorf("encode summary: %w", err)
	}
	if _, err := out.Write(append(encoded, '\n')); err != nil {
		return fmt.Errorf("write summary: %w", err)
	}
	return nil
}

// WriteText writes the summary for people, one figure per line.
func (s Summary) WriteText(out io.Writer) error {
	var text strings.Builder
	line := func(label, format string, args ...any) {
		fmt.Fprintf(&text, "%-12s %s\n", label, fmt.Sprintf(format, args...))
	}
	line("workload", "%s", s.Workload)
	line("topic", "%s (%d partitions), %d-byte values", s.Topic, s.Partitions, s.RecordBytes)
	if s.Workload != WorkloadConsume {
		rate := "as fast as possible"
		if s.RateTargetPerSecond > 0 {
			rate = fmt.Sprintf("%.0f records/s", s.RateTargetPerSecond)
		}
		line("producer", "%d client(s), acks=%s, compression=%s, %s", s.Producers, s.Acks, s.Compression, rate)
	}
	if s.Unknown > 0 {
		line("records", "%d (%d errors, %d unknown: may be in the log)", s.Records, s.Errors, s.Unknown)
	} else {
		line("records", "%d (%d errors)", s.Records, s.Errors)
	}
	if s.FirstError != "" {
		line("first error", "%s", s.FirstError)
	}
	line("elapsed", "%.3f s", s.ElapsedSeconds)
	line("throughput", "%.0f records/s, %.2f MB/s", s.RecordsPerSecond, s.MegabytesPerSecond)
	if s.Latency != nil {
		l := s.Latency
		line("latency", "p50 %.3f ms, p90 %.3f ms, p99 %.3f ms, p99.9 %.3f ms, max %.3f ms",
			l.P50Ms, l.P90Ms, l.P99Ms, l.P999Ms, l.MaxMs)
		how := "exact"
		if !l.Exact {
			how = fmt.Sprintf("from a uniform sample of %d", l.Sampled)
		}
		line("", "mean %.3f ms over %d records, percentiles %s", l.MeanMs, l.Count, how)
	}
	line("client cpu", "%.2f s", s.ClientCPUSeconds)
	if s.Broker != nil {
		line("broker cpu", "%.2f s", s.Broker.CPUSeconds)
		line("broker rss", "%.1f MiB (%+.1f MiB during the run)",
			float64(s.Broker.RSSBytes)/(1<<20), float64(s.Broker.RSSDeltaBytes)/(1<<20))
	} else {
		line("broker", "no figures: %s", s.BrokerMetricsError)
	}
	_, err := io.WriteString(out, text.String())
	if err != nil {
		return fmt.Errorf("write summary: %w", err)
	}
	return nil
}
