package loadgen

import (
	"testing"
	"time"
)

func TestPercentileIsTheNearestRankOfSortedSamples(t *testing.T) {
	oneToHundred := make([]int64, 100)
	for i := range oneToHundred {
		oneToHundred[i] = int64(i + 1)
	}
	tests := []struct {
		name    string
		samples []int64
		q       float64
		want    int64
	}{
		{"no samples", nil, 0.5, 0},
		{"one sample is every percentile", []int64{7}, 0.999, 7},
		{"median of 1..100", oneToHundred, 0.50, 50},
		{"p90 of 1..100", oneToHundred, 0.90, 90},
		{"p99 of 1..100", oneToHundred, 0.99, 99},
		{"p99.9 of 1..100 is the maximum", oneToHundred, 0.999, 100},
		{"p100 is the maximum", oneToHundred, 1, 100},
		{"tiny q is the minimum", oneToHundred, 0.000001, 1},
		{"median of an even count takes the lower middle", []int64{10, 20, 30, 40}, 0.5, 20},
		{"p75 of four samples", []int64{10, 20, 30, 40}, 0.75, 30},
	}
	for _, test := range tests {
		if got := Percentile(test.samples, test.q); got != test.want {
			t.Errorf("%s: Percentile(q=%g) = %d, want %d", test.name, test.q, got, test.want)
		}
	}
}

func TestLatencyRecorderSummarisesKnownLatencies(t *testing.T) {
	recorder := NewLatencyRecorder(0)
	// 1..1000 ms in a scrambled order: the summary must not depend on it.
	for i := range 1000 {
		recorder.Record(time.Duration((i*7919)%1000+1) * time.Millisecond)
	}
	got := recorder.Summary()
	want := LatencySummary{
		Count: 1000, Sampled: 1000, Exact: true,
		P50Ms: 500, P90Ms: 900, P99Ms: 990, P999Ms: 999, MaxMs: 1000, MeanMs: 500.5,
	}
	if got != want {
		t.Errorf("summary\n got %+v\nwant %+v", got, want)
	}
}

func TestLatencyRecorderClampsNegativeLatencies(t *testing.T) {
	recorder := NewLatencyRecorder(0)
	recorder.Record(-time.Second)
	recorder.Record(2 * time.Millisecond)
	got := recorder.Summary()
	if got.P50Ms != 0 || got.MaxMs != 2 || got.MeanMs != 1 {
		t.Errorf("a negative latency must count as zero: %+v", got)
	}
}

func TestLatencyRecorderStaysBoundedAndKeepsExactCountMeanAndMax(t *testing.T) {
	const samplesMax = 1000
	recorder := NewLatencyRecorder(samplesMax)
	// 100,000 latencies spread evenly over 1..100 ms, then one outlier.
	for i := range 100_000 {
		recorder.Record(time.Duration(i%100+1) * time.Millisecond)
	}
	recorder.Record(time.Second)
	got := recorder.Summary()
	if got.Count != 100_001 || got.Sampled != samplesMax || got.Exact {
		t.Fatalf("count %d, sampled %d, exact %v: want 100001, %d, false", got.Count, got.Sampled, got.Exact, samplesMax)
	}
	if got.MaxMs != 1000 {
		t.Errorf("max %.3f ms, want the outlier, 1000 ms, even if the sample missed it", got.MaxMs)
	}
	wantMeanMs := (100_000*50.5 + 1000) / 100_001
	if diff := got.MeanMs - wantMeanMs; diff > 1e-9 || diff < -1e-9 {
		t.Errorf("mean %.6f ms, want %.6f ms", got.MeanMs, wantMeanMs)
	}
	// A uniform sample of 1000 from a uniform 1..100 keeps the median
	// within a few ms of 50 (its standard error is about 1.6 ms).
	if got.P50Ms < 44 || got.P50Ms > 56 {
		t.Errorf("sampled median %.1f ms, want about 50 ms: the reservoir is not uniform", got.P50Ms)
	}
	if got.P90Ms < 85 || got.P90Ms > 95 {
		t.Errorf("sampled p90 %.1f ms, want about 90 ms: the reservoir is not uniform", got.P90Ms)
	}
}
