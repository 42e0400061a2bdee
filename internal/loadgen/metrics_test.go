package loadgen

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

const exposition = `# HELP go_goroutines Number of goroutines that currently exist.
# TYPE go_goroutines gauge
go_goroutines 12
# HELP process_cpu_seconds_total Total user and system CPU time spent in seconds.
# TYPE process_cpu_seconds_total counter
process_cpu_seconds_total 12.75
# HELP process_resident_memory_bytes Resident memory size in bytes.
# TYPE process_resident_memory_bytes gauge
process_resident_memory_bytes 5.2428800e+07
# TYPE cairn_partition_bytes gauge
cairn_partition_bytes{topic="bench",partition="0"} 1024
`

func TestParseProcessMetricsReadsCPUAndMemory(t *testing.T) {
	got, err := ParseProcessMetrics(strings.NewReader(exposition))
	if err != nil {
		t.Fatal(err)
	}
	if want := (ProcessSample{CPUSeconds: 12.75, RSSBytes: 50 << 20}); got != want {
		t.Errorf("got %+v, want %+v", got, want)
	}
}

func TestParseProcessMetricsNamesTheMissingMetric(t *testing.T) {
	withoutMemory := strings.ReplaceAll(exposition, "process_resident_memory_bytes", "other_bytes")
	_, err := ParseProcessMetrics(strings.NewReader(withoutMemory))
	if !errors.Is(err, ErrMetricMissing) || !strings.Contains(err.Error(), "process_resident_memory_bytes") {
		t.Errorf("got %v, want ErrMetricMissing naming the metric", err)
	}
	if _, err := ParseProcessMetrics(strings.NewReader("not { a metric page")); err == nil {
		t.Error("garbage parsed without an error")
	}
}

func TestUsageIsTheDifferenceOfTwoSamples(t *testing.T) {
	got := Usage(ProcessSample{CPUSeconds: 10, RSSBytes: 100}, ProcessSample{CPUSeconds: 12.5, RSSBytes: 80})
	if want := (BrokerUsage{CPUSeconds: 2.5, RSSBytes: 80, RSSDeltaBytes: -20}); got != want {
		t.Errorf("got %+v, want %+v", got, want)
	}
}

func TestScrapeProcessReadsAMetricsPage(t *testing.T) {
	server := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/metrics" {
			http.NotFound(w, r)
			return
		}
		_, _ = w.Write([]byte(exposition))
	}))
	defer server.Close()
	got, err := ScrapeProcess(context.Background(), server.Client(), server.URL+"/metrics")
	if err != nil || got.CPUSeconds != 12.75 {
		t.Errorf("scrape = %+v, %v", got, err)
	}
	if _, err := ScrapeProcess(context.Background(), server.Client(), server.URL+"/elsewhere"); err == nil ||
		!strings.Contains(err.Error(), "404") {
		t.Errorf("a 404 page must be an error naming the status, got %v", err)
	}
}
