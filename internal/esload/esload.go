package esload

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"connectrpc.com/connect"

	eventstorev1 "github.com/cairnlog/cairn/api/cairn/eventstore/v1"
	"github.com/cairnlog/cairn/api/cairn/eventstore/v1/eventstorev1connect"
	"github.com/cairnlog/cairn/internal/loadgen"
)

// Summary is one run's outcome; its rate and latency fields have the names
// `cairn bench produce --json` uses, so bench/run reads both alike.
type Summary struct {
	Workload            string                  `json:"workload"`
	Topic               string                  `json:"topic"`
	Writers             int                     `json:"writers,omitempty"`
	EventBytes          int                     `json:"event_bytes"`
	StreamEvents        int                     `json:"stream_events,omitempty"`
	OtherEvents         int                     `json:"other_events,omitempty"`
	Records             int64                   `json:"records"`
	Operations          int64                   `json:"operations"`
	Errors              int64                   `json:"errors"`
	FirstError          string                  `json:"first_error,omitempty"`
	ElapsedSeconds      float64                 `json:"elapsed_seconds"`
	RecordsPerSecond    float64                 `json:"records_per_second"`
	OperationsPerSecond float64                 `json:"operations_per_second"`
	Latency             *loadgen.LatencySummary `json:"latency,omitempty"`
	SetupSeconds        float64                 `json:"setup_seconds,omitempty"`
}

// WriteJSON writes the summary as one line.
func (s Summary) WriteJSON(w io.Writer) error {
	b, err := json.Marshal(s)
	if err != nil {
		return err
	}
	_, err = fmt.Fprintf(w, "%s\n", b)
	return err
}

// WriteText writes the summary for people.
func (s Summary) WriteText(w io.Writer) error {
	var b strings.Builder
	fmt.Fprintf(&b, "%s on %s: %d operations (%d events) in %.1fs: %.0f operations/s, %.0f events/s, %d errors\n",
		s.Workload, s.Topic, s.Operations, s.Records, s.ElapsedSeconds, s.OperationsPerSecond, s.RecordsPerSecond, s.Errors)
	if s.Latency != nil {
		l := s.Latency
		fmt.Fprintf(&b, "latency ms: p50 %.3f  p90 %.3f  p99 %.3f  p99.9 %.3f  max %.3f\n", l.P50Ms, l.P90Ms, l.P99Ms, l.P999Ms, l.MaxMs)
	}
	if s.FirstError != "" {
		fmt.Fprintf(&b, "first error: %s\n", s.FirstError)
	}
	_, err := io.WriteString(w, b.String())
	return err
}

// Client returns an API client for baseURL (http://host:port).
func Client(baseURL string) eventstorev1connect.EventStoreClient {
	return eventstorev1connect.NewEventStoreClient(&http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 256}}, baseURL)
}

// AppendConfig describes an append run.
type AppendConfig struct {
	Topic      string
	Writers    int
	EventBytes int
	Duration   time.Duration
	// Appends bounds the run (all writers together); it stops at Duration or here.
	Appends int64
}

// RunAppend has Writers goroutines each append one event at a time to its
// own stream, expecting the exact revision it last wrote, until the
// duration or the count is reached. progress, when not nil, gets a line a second.
func RunAppend(ctx context.Context, client eventstorev1connect.EventStoreClient, cfg AppendConfig, progress io.Writer) (Summary, error) {
	if cfg.Writers < 1 || cfg.EventBytes < 0 || cfg.Duration <= 0 {
		return Summary{}, errors.New("append: writers must be positive, event bytes non-negative, duration positive")
	}
	payload := make([]byte, cfg.EventBytes)
	_, _ = rand.Read(payload)
	runID := time.Now().UnixNano()
	latency := loadgen.NewLatencyRecorder(0)
	var done, failed atomic.Int64
	var firstErr atomic.Value
	// The run ends by the clock, not by a context deadline: the server
	// enforces a propagated deadline itself and would fail the last calls.
	stop := tick(progress, "append", &done)
	start := time.Now()
	end := start.Add(cfg.Duration)
	var wg sync.WaitGroup
	for w := range cfg.Writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			stream := fmt.Sprintf("bench-%d-%d", runID, w)
			expected := &eventstorev1.ExpectedRevision{Kind: &eventstorev1.ExpectedRevision_NoStream{NoStream: true}}
			for ctx.Err() == nil && time.Now().Before(end) && (cfg.Appends <= 0 || done.Load() < cfg.Appends) {
				began := time.Now()
				resp, err := client.Append(ctx, connect.NewRequest(&eventstorev1.AppendRequest{Topic: cfg.Topic, Stream: stream,
					ExpectedRevision: expected, Events: []*eventstorev1.Event{{Type: "BenchEvent", Data: payload, ContentType: "application/octet-stream"}}}))
				if err != nil {
					if ctx.Err() != nil {
						return // interrupted
					}
					failed.Add(1)
					firstErr.CompareAndSwap(nil, err)
					return
				}
				latency.Record(time.Since(began))
				done.Add(1)
				expected = &eventstorev1.ExpectedRevision{Kind: &eventstorev1.ExpectedRevision_Exact{Exact: resp.Msg.LastRevision}}
			}
		}()
	}
	wg.Wait()
	elapsed := time.Since(start)
	stop()
	lat := latency.Summary()
	s := Summary{Workload: "append", Topic: cfg.Topic, Writers: cfg.Writers, EventBytes: cfg.EventBytes,
		Records: done.Load(), Operations: done.Load(), Errors: failed.Load(), Latency: &lat}
	s.rates(elapsed)
	if err, ok := firstErr.Load().(error); ok {
		s.FirstError = err.Error()
		return s, fmt.Errorf("append: %d writers failed, first: %w", s.Errors, err)
	}
	return s, nil
}

func (s *Summary) rates(elapsed time.Duration) {
	s.ElapsedSeconds = elapsed.Seconds()
	if elapsed > 0 {
		s.RecordsPerSecond = float64(s.Records) / elapsed.Seconds()
		s.OperationsPerSecond = float64(s.Operations) / elapsed.Seconds()
	}
}

// ReadConfig describes a read-stream run.
type ReadConfig struct {
	Topic        string
	StreamEvents int // events of the stream read
	OtherEvents  int // events of other streams in the same partition
	EventBytes   int
	Duration     time.Duration
	Reads        int64
}

// RunReadStream fills a one-partition topic with OtherEvents events of other
// streams around StreamEvents events of one stream, then reads that whole
// stream again and again, timing each complete read.
func RunReadStream(ctx context.Context, client eventstorev1connect.EventStoreClient, cfg ReadConfig, progress io.Writer) (Summary, error) {
	if cfg.StreamEvents < 1 || cfg.OtherEvents < 0 || cfg.Duration <= 0 {
		return Summary{}, errors.New("read-stream: stream events must be positive, other events non-negative, duration positive")
	}
	payload := make([]byte, cfg.EventBytes)
	_, _ = rand.Read(payload)
	target := fmt.Sprintf("read-target-%d", time.Now().UnixNano())
	setupStart := time.Now()
	if err := fill(ctx, client, cfg, target, payload, progress); err != nil {
		return Summary{}, err
	}
	setup := time.Since(setupStart)

	latency := loadgen.NewLatencyRecorder(0)
	var reads atomic.Int64
	stop := tick(progress, "read-stream", &reads)
	start := time.Now()
	end := start.Add(cfg.Duration)
	var events int64
	for ctx.Err() == nil && time.Now().Before(end) && (cfg.Reads <= 0 || reads.Load() < cfg.Reads) {
		began := time.Now()
		n, err := readWhole(ctx, client, cfg.Topic, target)
		if err != nil {
			if ctx.Err() != nil {
				break
			}
			stop()
			return Summary{}, fmt.Errorf("read-stream: %w", err)
		}
		if n != cfg.StreamEvents {
			stop()
			return Summary{}, fmt.Errorf("read-stream: read %d events of %s, wrote %d", n, target, cfg.StreamEvents)
		}
		latency.Record(time.Since(began))
		reads.Add(1)
		events += int64(n)
	}
	elapsed := time.Since(start)
	stop()
	lat := latency.Summary()
	s := Summary{Workload: "read-stream", Topic: cfg.Topic, EventBytes: cfg.EventBytes, StreamEvents: cfg.StreamEvents,
		OtherEvents: cfg.OtherEvents, Records: events, Operations: reads.Load(), Latency: &lat, SetupSeconds: setup.Seconds()}
	s.rates(elapsed)
	return s, nil
}

// fill writes the stream's events spread evenly among the other events, in
// appends of many events to other streams, so the target's events sit far
// apart in the partition.
func fill(ctx context.Context, client eventstorev1connect.EventStoreClient, cfg ReadConfig, target string, payload []byte, progress io.Writer) error {
	const perAppend = 1000
	var written atomic.Int64
	stop := tick(progress, "read-stream setup", &written)
	defer stop()
	batches := (cfg.OtherEvents + perAppend - 1) / perAppend
	appendTarget := func(n int) error {
		for range n {
			if _, err := client.Append(ctx, connect.NewRequest(&eventstorev1.AppendRequest{Topic: cfg.Topic, Stream: target,
				Events: []*eventstorev1.Event{{Type: "Target", Data: payload, ContentType: "application/octet-stream"}}})); err != nil {
				return fmt.Errorf("read-stream setup: %w", err)
			}
			written.Add(1)
		}
		return nil
	}
	otherLeft, targetDone := cfg.OtherEvents, 0
	for b := range batches {
		n := min(perAppend, otherLeft)
		events := make([]*eventstorev1.Event, n)
		for i := range events {
			events[i] = &eventstorev1.Event{Type: "Other", Data: payload, ContentType: "application/octet-stream"}
		}
		if _, err := client.Append(ctx, connect.NewRequest(&eventstorev1.AppendRequest{Topic: cfg.Topic,
			Stream: fmt.Sprintf("other-%d", b), Events: events})); err != nil {
			return fmt.Errorf("read-stream setup: %w", err)
		}
		otherLeft -= n
		written.Add(int64(n))
		// Spread the target's events evenly among the others.
		due := (b + 1) * cfg.StreamEvents / batches
		if err := appendTarget(due - targetDone); err != nil {
			return err
		}
		targetDone = due
	}
	return appendTarget(cfg.StreamEvents - targetDone)
}

// readWhole reads a stream from its start to its end, page by page.
func readWhole(ctx context.Context, client eventstorev1connect.EventStoreClient, topic, stream string) (int, error) {
	total := 0
	var from *uint64
	for {
		resp, err := client.ReadStream(ctx, connect.NewRequest(&eventstorev1.ReadStreamRequest{Topic: topic, Stream: stream, FromRevision: from, MaxCount: 1000}))
		if err != nil {
			return total, err
		}
		evs := resp.Msg.Events
		total += len(evs)
		if resp.Msg.EndOfStream || len(evs) == 0 {
			return total, nil
		}
		next := evs[len(evs)-1].Revision + 1
		from = &next
	}
}

// tick prints a progress line every second until the returned stop is called.
func tick(out io.Writer, what string, count *atomic.Int64) (stop func()) {
	if out == nil {
		return func() {}
	}
	done := make(chan struct{})
	finished := make(chan struct{})
	go func() {
		defer close(finished)
		t := time.NewTicker(time.Second)
		defer t.Stop()
		last := int64(0)
		for {
			select {
			case <-t.C:
				n := count.Load()
				fmt.Fprintf(out, "%s: %d done, %d/s\n", what, n, n-last)
				last = n
			case <-done:
				return
			}
		}
	}()
	return func() { close(done); <-finished }
}
