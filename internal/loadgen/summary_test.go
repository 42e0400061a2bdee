package loadgen

import (
	"bytes"
	"encoding/json"
	"errors"
	"maps"
	"slices"
	"strings"
	"testing"
	"time"
)

func produceSummaryExample() Summary {
	summary := Summary{
		Workload: WorkloadProduce, Topic: "bench", Partitions: 3, RecordBytes: 1000,
		Producers: 2, Acks: "all", Compression: "none",
		Latency:          &LatencySummary{Count: 4000, Sampled: 4000, Exact: true, P50Ms: 1.5, MaxMs: 9},
		ClientCPUSeconds: 0.25,
		Broker:           &BrokerUsage{CPUSeconds: 1.5, RSSBytes: 64 << 20, RSSDeltaBytes: 2 << 20},
	}
	summary.Records, summary.Bytes = 4000, 4_000_000
	summary.setRates(2 * time.Second)
	return summary
}

// jsonKeys decodes one JSON line and returns its top-level keys, sorted.
func jsonKeys(t *testing.T, line []byte) (map[string]any, []string) {
	t.Helper()
	if !bytes.HasSuffix(line, []byte("\n")) || bytes.Count(line, []byte("\n")) != 1 {
		t.Fatalf("want exactly one line of JSON, got %q", line)
	}
	var decoded map[string]any
	if err := json.Unmarshal(line, &decoded); err != nil {
		t.Fatal(err)
	}
	return decoded, slices.Sorted(maps.Keys(decoded))
}

func TestProduceSummaryJSONShape(t *testing.T) {
	var out bytes.Buffer
	if err := produceSummaryExample().WriteJSON(&out); err != nil {
		t.Fatal(err)
	}
	decoded, keys := jsonKeys(t, out.Bytes())
	wantKeys := []string{
		"acks", "broker", "bytes", "client_cpu_seconds", "compression", "elapsed_seconds", "errors",
		"latency", "megabytes_per_second", "partitions", "producers", "rate_target_per_second",
		"record_bytes", "records", "records_per_second", "topic", "unknown", "workload",
	}
	if !slices.Equal(keys, wantKeys) {
		t.Errorf("keys\n got %v\nwant %v", keys, wantKeys)
	}
	if decoded["records_per_second"] != 2000.0 || decoded["megabytes_per_second"] != 2.0 {
		t.Errorf("rates %v records/s, %v MB/s; want 2000 and 2 (MB is 10^6 bytes)",
			decoded["records_per_second"], decoded["megabytes_per_second"])
	}
	latency := decoded["latency"].(map[string]any)
	latencyKeys := slices.Sorted(maps.Keys(latency))
	wantLatencyKeys := []string{"count", "exact", "max_ms", "mean_ms", "p50_ms", "p90_ms", "p999_ms", "p99_ms", "sampled"}
	if !slices.Equal(latencyKeys, wantLatencyKeys) {
		t.Errorf("latency keys\n got %v\nwant %v", latencyKeys, wantLatencyKeys)
	}
	broker := decoded["broker"].(map[string]any)
	if broker["cpu_seconds"] != 1.5 || broker["rss_bytes"] != float64(64<<20) || broker["rss_delta_bytes"] != float64(2<<20) {
		t.Errorf("broker %v", broker)
	}
}

func TestConsumeSummaryJSONLeavesOutWhatDoesNotApply(t *testing.T) {
	summary := Summary{Workload: WorkloadConsume, Topic: "bench", Partitions: 1, RecordBytes: 10,
		BrokerMetricsError: "scrape: connection refused"}
	var out bytes.Buffer
	if err := summary.WriteJSON(&out); err != nil {
		t.Fatal(err)
	}
	_, keys := jsonKeys(t, out.Bytes())
	for _, absent := range []string{"latency", "broker", "producers", "acks", "compression", "first_error"} {
		if slices.Contains(keys, absent) {
			t.Errorf("consume summary has %q: %s", absent, out.String())
		}
	}
	if !slices.Contains(keys, "broker_metrics_error") {
		t.Errorf("missing broker_metrics_error: %s", out.String())
	}
}

func TestSummaryTextShowsEveryFigure(t *testing.T) {
	var out bytes.Buffer
	if err := produceSummaryExample().WriteText(&out); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		"bench (3 partitions), 1000-byte values",
		"2 client(s), acks=all, compression=none, as fast as possible",
		"4000 (0 errors)",
		"2000 records/s, 2.00 MB/s",
		"p50 1.500 ms",
		"max 9.000 ms",
		"percentiles exact",
		"client cpu   0.25 s",
		"broker cpu   1.50 s",
		"64.0 MiB (+2.0 MiB during the run)",
	} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("text summary lacks %q:\n%s", want, out.String())
		}
	}
}

func TestSetRatesWithNoElapsedTimeLeavesRatesZero(t *testing.T) {
	summary := Summary{Records: 10, Bytes: 100}
	summary.setRates(0)
	if summary.RecordsPerSecond != 0 || summary.MegabytesPerSecond != 0 {
		t.Errorf("rates %+v with no elapsed time", summary)
	}
}

func TestFinishReportsFailedRecords(t *testing.T) {
	var summary Summary
	if err := summary.finish(outcomes{records: 5, bytes: 50, elapsed: time.Second}); err != nil {
		t.Errorf("no failures: %v", err)
	}
	err := summary.finish(outcomes{records: 5, bytes: 50, failed: 2, reason: errTest, elapsed: time.Second})
	if !errors.Is(err, ErrRecordsFailed) || !strings.Contains(err.Error(), "2 records") ||
		summary.FirstError != errTest.Error() || summary.Errors != 2 {
		t.Errorf("finish with failures: %v, %+v", err, summary)
	}
}

func TestFinishReportsUnknownOutcomesApartFromFailures(t *testing.T) {
	var summary Summary
	err := summary.finish(outcomes{records: 5, bytes: 50, unknown: 3, reason: errTest, elapsed: time.Second})
	if !errors.Is(err, ErrOutcomeUnknown) || errors.Is(err, ErrRecordsFailed) {
		t.Errorf("unknown outcomes only: got %v, want ErrOutcomeUnknown and not ErrRecordsFailed", err)
	}
	if summary.Errors != 0 || summary.Unknown != 3 {
		t.Errorf("summary counts %d errors and %d unknown, want 0 and 3", summary.Errors, summary.Unknown)
	}
	var text strings.Builder
	if err := summary.WriteText(&text); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(text.String(), "(0 errors, 3 unknown") {
		t.Errorf("text summary does not show the unknown outcomes:\n%s", text.String())
	}
	err = summary.finish(outcomes{failed: 1, unknown: 3, reason: errTest})
	if !errors.Is(err, ErrRecordsFailed) || !strings.Contains(err.Error(), "3 with an unknown outcome") {
		t.Errorf("failures and unknown outcomes: got %v", err)
	}
}

var errTest = errors.New("broker said no")
