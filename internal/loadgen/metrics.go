package loadgen

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

// The process metrics the Prometheus Go client exports on Linux.
const (
	metricCPUSeconds = "process_cpu_seconds_total"
	metricRSSBytes   = "process_resident_memory_bytes"
)

// ErrMetricMissing reports a /metrics page without the process metrics
// (a broker on a platform where they are not collected).
var ErrMetricMissing = errors.New("metric missing")

// metricsBytesMax bounds how much of a /metrics page is read.
const metricsBytesMax = 16 << 20

// ProcessSample is the broker's resource use at one instant.
type ProcessSample struct {
	CPUSeconds float64
	RSSBytes   int64
}

// ParseProcessMetrics reads the CPU and resident memory of the process that
// served a Prometheus text exposition.
func ParseProcessMetrics(exposition io.Reader) (ProcessSample, error) {
	parser := expfmt.NewTextParser(model.UTF8Validation)
	families, err := parser.TextToMetricFamilies(exposition)
	if err != nil {
		return ProcessSample{}, fmt.Errorf("parse metrics: %w", err)
	}
	cpuSeconds, err := unlabelledValue(families, metricCPUSeconds)
	if err != nil {
		return ProcessSample{}, err
	}
	rssBytes, err := unlabelledValue(families, metricRSSBytes)
	if err != nil {
		return ProcessSample{}, err
	}
	return ProcessSample{CPUSeconds: cpuSeconds, RSSBytes: int64(rssBytes)}, nil
}

func unlabelledValue(families map[string]*dto.MetricFamily, name string) (float64, error) {
	family, found := families[name]
	if !found || len(family.GetMetric()) == 0 {
		return 0, fmt.Errorf("%s: %w", name, ErrMetricMissing)
	}
	metric := family.GetMetric()[0]
	switch {
	case metric.GetCounter() != nil:
		return metric.GetCounter().GetValue(), nil
	case metric.GetGauge() != nil:
		return metric.GetGauge().GetValue(), nil
	case metric.GetUntyped() != nil:
		return metric.GetUntyped().GetValue(), nil
	}
	return 0, fmt.Errorf("%s is a %s, want a counter or gauge: %w", name, family.GetType(), ErrMetricMissing)
}

// metricsScrapeTimeout bounds one /metrics request, so a broker without an
// HTTP listener costs a run at most this long.
const metricsScrapeTimeout = 2 * time.Second

// ScrapeProcess fetches url and reads the process metrics from it.
func ScrapeProcess(ctx context.Context, client *http.Client, url string) (ProcessSample, error) {
	ctx, cancel := context.WithTimeout(ctx, metricsScrapeTimeout)
	defer cancel()
	request, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return ProcessSample{}, fmt.Errorf("metrics url %q: %w", url, err)
	}
	response, err := client.Do(request)
	if err != nil {
		return ProcessSample{}, fmt.Errorf("scrape %s: %w", url, err)
	}
	defer response.Body.Close()
	if response.StatusCode != http.StatusOK {
		return ProcessSample{}, fmt.Errorf("scrape %s: status %s", url, response.Status)
	}
	sample, err := ParseProcessMetrics(io.LimitReader(response.Body, metricsBytesMax))
	if err != nil {
		return ProcessSample{}, fmt.Errorf("scrape %s: %w", url, err)
	}
	return sample, nil
}

// BrokerUsage is what the broker spent during a run, from its /metrics.
type BrokerUsage struct {
	CPUSeconds    float64 `json:"cpu_seconds"`
	RSSBytes      int64   `json:"rss_bytes"`       // at the end of the run
	RSSDeltaBytes int64   `json:"rss_delta_bytes"` // end minus start
}

// Usage returns the broker's use between two samples.
func Usage(before, after ProcessSample) BrokerUsage {
	return BrokerUsage{
		CPUSeconds:    after.CPUSeconds - before.CPUSeconds,
		RSSBytes:      after.RSSBytes,
		RSSDeltaBytes: after.RSSBytes - before.RSSBytes,
	}
}
