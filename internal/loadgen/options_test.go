package loadgen

import (
	"errors"
	"strings"
	"testing"
	"time"
)

func validOptions() Options {
	return Options{
		Topic: "bench", Partitions: 1, RecordBytes: 1024, Records: 1000, Duration: time.Second,
		Producers: 1, DrainTimeout: time.Second,
		Producer: ProducerSettings{Acks: "all", Compression: "none", BatchBytes: 1 << 20},
	}
}

func TestValidateNamesEveryBadOption(t *testing.T) {
	if err := validOptions().Validate(WorkloadProduce); err != nil {
		t.Fatalf("valid options: %v", err)
	}
	tests := []struct {
		name     string
		workload Workload
		change   func(*Options)
		want     string
	}{
		{"empty topic", WorkloadProduce, func(o *Options) { o.Topic = "" }, "topic"},
		{"no partitions", WorkloadProduce, func(o *Options) { o.Partitions = 0 }, "partitions 0"},
		{"huge records", WorkloadProduce, func(o *Options) { o.RecordBytes = 1 << 30 }, "record bytes"},
		{"e2e needs room for the timestamp", WorkloadEndToEnd, func(o *Options) { o.RecordBytes = 7 }, "record bytes 7: want 8"},
		{"no records", WorkloadProduce, func(o *Options) { o.Records = 0 }, "records 0"},
		{"no duration", WorkloadProduce, func(o *Options) { o.Duration = 0 }, "duration"},
		{"negative keys", WorkloadProduce, func(o *Options) { o.Keys = -1 }, "keys -1"},
		{"no producers", WorkloadProduce, func(o *Options) { o.Producers = 0 }, "producers 0"},
		{"negative rate", WorkloadProduce, func(o *Options) { o.RatePerSecond = -1 }, "rate -1"},
		{"negative prefill", WorkloadConsume, func(o *Options) { o.Prefill = -1 }, "prefill -1"},
		{"no drain time", WorkloadProduce, func(o *Options) { o.DrainTimeout = 0 }, "drain timeout"},
		{"tiny fetches", WorkloadConsume, func(o *Options) { o.FetchPartitionBytes = 100 }, "fetch max partition bytes 100"},
		{"huge fetches", WorkloadConsume, func(o *Options) { o.FetchPartitionBytes = 1 << 30 }, "fetch max partition bytes"},
	}
	for _, test := range tests {
		options := validOptions()
		test.change(&options)
		err := options.Validate(test.workload)
		if !errors.Is(err, ErrInvalidOptions) || !strings.Contains(err.Error(), test.want) {
			t.Errorf("%s: got %v, want ErrInvalidOptions mentioning %q", test.name, err, test.want)
		}
	}
	empty := validOptions()
	empty.RecordBytes = 0
	if err := empty.Validate(WorkloadProduce); err != nil {
		t.Errorf("empty values are a valid produce load: %v", err)
	}
}

func TestClientOptionsRejectWhatTheClientWouldRefuse(t *testing.T) {
	tests := []struct {
		name   string
		change func(*ProducerSettings)
		want   string
	}{
		{"unknown acks", func(s *ProducerSettings) { s.Acks = "2" }, "acks"},
		{"unknown codec", func(s *ProducerSettings) { s.Compression = "brotli" }, "compression"},
		{"negative linger", func(s *ProducerSettings) { s.Linger = -time.Millisecond }, "linger"},
		{"tiny batches", func(s *ProducerSettings) { s.BatchBytes = 100 }, "batch bytes 100"},
		{"in flight with idempotence", func(s *ProducerSettings) { s.MaxInflight = 5 }, "max inflight 5 with acks all"},
		{"negative buffer", func(s *ProducerSettings) { s.BufferedRecords = -1 }, "buffered records"},
	}
	for _, test := range tests {
		settings := validOptions().Producer
		test.change(&settings)
		if _, err := settings.ClientOptions("bench", time.Second); err == nil || !strings.Contains(err.Error(), test.want) {
			t.Errorf("%s: got %v, want an error mentioning %q", test.name, err, test.want)
		}
	}
	leader := ProducerSettings{Acks: "1", Compression: "zstd", BatchBytes: 1 << 20, MaxInflight: 5, BufferedRecords: 1000, Linger: time.Millisecond}
	if _, err := leader.ClientOptions("bench", time.Second); err != nil {
		t.Errorf("acks 1 with five in flight: %v", err)
	}
}
