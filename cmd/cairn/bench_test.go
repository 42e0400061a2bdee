package main

import (
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"strings"
	"testing"

	"github.com/cairnlog/cairn/internal/loadgen"
	"github.com/cairnlog/cairn/server"
	"github.com/cairnlog/cairn/storage/vfs"
)

// startCairn runs a Cairn server in process, on an in-memory filesystem and
// free loopback ports, for one test.
func startCairn(t *testing.T) *server.Server {
	t.Helper()
	cfg := server.DefaultConfig()
	cfg.DataDir = "/data"
	cfg.KafkaAddr = "127.0.0.1:0"
	cfg.HTTPAddr = "127.0.0.1:0"
	s, err := server.Start(cfg, vfs.NewMem(), slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := s.Close(); err != nil {
			t.Errorf("close server: %v", err)
		}
	})
	return s
}

// benchJSON runs a bench subcommand with --json and decodes its summary.
func benchJSON(t *testing.T, args ...string) loadgen.Summary {
	t.Helper()
	result := mustCairn(t, append(append([]string{"bench"}, args...), "--json")...)
	var summary loadgen.Summary
	if err := json.Unmarshal([]byte(result.stdout), &summary); err != nil {
		t.Fatalf("summary %q: %v", result.stdout, err)
	}
	return summary
}

func TestBenchProduceThenConsumeAgainstCairn(t *testing.T) {
	s := startCairn(t)
	common := []string{"--brokers", s.KafkaAddr(), "--metrics-url", "http://" + s.HTTPAddr() + "/metrics",
		"--topic", "load", "--partitions", "2", "--record-bytes", "100"}

	produced := benchJSON(t, append([]string{"produce", "--records", "2000", "--duration", "10s", "--keys", "10"}, common...)...)
	if produced.Records != 2000 || produced.Errors != 0 || produced.Bytes < 2000*100 {
		t.Fatalf("produce acknowledged %d records (%d bytes) with %d errors, want 2000 of at least 100 bytes and none",
			produced.Records, produced.Bytes, produced.Errors)
	}
	if produced.Partitions != 2 || produced.Acks != "all" {
		t.Errorf("produce summary describes %d partitions, acks %q; want the created 2 and all", produced.Partitions, produced.Acks)
	}
	if produced.Latency == nil || produced.Latency.Count != 2000 || !produced.Latency.Exact ||
		produced.Latency.P50Ms <= 0 || produced.Latency.P50Ms > produced.Latency.MaxMs {
		t.Errorf("latency %+v: want 2000 exact samples with 0 < p50 <= max", produced.Latency)
	}
	if produced.RecordsPerSecond <= 0 || produced.MegabytesPerSecond <= 0 || produced.ClientCPUSeconds <= 0 {
		t.Errorf("rates %.0f records/s, %.2f MB/s, client cpu %.3f s: want all positive",
			produced.RecordsPerSecond, produced.MegabytesPerSecond, produced.ClientCPUSeconds)
	}
	if produced.Broker == nil || produced.Broker.RSSBytes <= 0 {
		t.Errorf("broker figures %+v (%s): the in-process server's /metrics was reachable", produced.Broker, produced.BrokerMetricsError)
	}

	consumed := benchJSON(t, append([]string{"consume", "--duration", "10s"}, common...)...)
	if consumed.Records != 2000 || consumed.Bytes != produced.Bytes || consumed.Latency != nil {
		t.Errorf("consume read %d records, %d bytes (latency %v); want the 2000 records and %d bytes produced, no latency",
			consumed.Records, consumed.Bytes, consumed.Latency, produced.Bytes)
	}
	// Fetches of 4 KiB per partition read the same records in many more
	// round trips, and the summary says which fetch size it ran with.
	small := benchJSON(t, append([]string{"consume", "--duration", "10s", "--fetch-max-partition-bytes", "4096"}, common...)...)
	if small.Records != 2000 || small.Bytes != produced.Bytes || small.FetchPartitionBytes != 4096 {
		t.Errorf("consume with 4 KiB fetches read %d records, %d bytes, fetch size %d; want 2000 records, %d bytes, 4096",
			small.Records, small.Bytes, small.FetchPartitionBytes, produced.Bytes)
	}
}

func TestBenchEndToEndDeliversEveryRecord(t *testing.T) {
	s := startCairn(t)
	summary := benchJSON(t, "e2e", "--brokers", s.KafkaAddr(), "--metrics-url", "", "--topic", "e2e",
		"--records", "500", "--rate", "1000", "--duration", "10s", "--record-bytes", "64")
	if summary.Records != 500 || summary.Errors != 0 {
		t.Fatalf("e2e delivered %d records with %d errors, want 500 and none", summary.Records, summary.Errors)
	}
	if summary.Latency == nil || summary.Latency.Count != 500 || summary.Latency.P50Ms <= 0 {
		t.Errorf("latency %+v: want 500 positive samples", summary.Latency)
	}
	// 500 records at 1000/s take half a second to send.
	if summary.ElapsedSeconds < 0.45 {
		t.Errorf("elapsed %.3f s: the rate was not held", summary.ElapsedSeconds)
	}
	if summary.Broker != nil || summary.BrokerMetricsError == "" {
		t.Errorf("no metrics url must leave broker figures out with a reason: %+v", summary)
	}
}

func TestBenchConsumeOfAMissingTopicSaysHowToFillIt(t *testing.T) {
	s := startCairn(t)
	result := cairn(t, "bench", "consume", "--brokers", s.KafkaAddr(), "--metrics-url", "", "--topic", "absent")
	if result.err == nil || !strings.Contains(result.err.Error(), "prefill") {
		t.Errorf("got %v, want an error that suggests a prefill", result.err)
	}
	if result.stdout != "" {
		t.Errorf("a run that never started printed a summary: %q", result.stdout)
	}
}

func TestBenchConsumePrefillsThenReads(t *testing.T) {
	s := startCairn(t)
	summary := benchJSON(t, "consume", "--brokers", s.KafkaAddr(), "--metrics-url", "", "--topic", "filled",
		"--prefill", "300", "--record-bytes", "10", "--acks", "1")
	if summary.Records != 300 || summary.Bytes != 3000 {
		t.Errorf("read %d records, %d bytes after a prefill of 300 10-byte values", summary.Records, summary.Bytes)
	}
}

func TestBenchProduceFailuresStillPrintTheSummaryAndFail(t *testing.T) {
	s := startCairn(t)
	// A value larger than a batch may hold fails every record.
	result := cairn(t, "bench", "produce", "--brokers", s.KafkaAddr(), "--metrics-url", "", "--topic", "big",
		"--records", "3", "--record-bytes", "2000000", "--batch-bytes", "1048576")
	if result.err == nil || !errors.Is(result.err, loadgen.ErrRecordsFailed) {
		t.Fatalf("got %v, want ErrRecordsFailed", result.err)
	}
	for _, want := range []string{"records      0 (3 errors)", "first error", "throughput"} {
		if !strings.Contains(result.stdout, want) {
			t.Errorf("text summary lacks %q:\n%s", want, result.stdout)
		}
	}
}
