// Command jsbench measures NATS JetStream the way `cairn bench` measures
// Cairn: one publisher with asynchronous publishes and a bounded number of
// unacknowledged ones (acknowledged = the stream's PubAck), and a catch-up
// read with JetStream's ordered consumer. It prints one JSON summary with the
// field names of `cairn bench --json`.
package main

import (
	"context"
	crand "crypto/rand"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"math/rand/v2"
	"os"
	"slices"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

type latency struct {
	P50Ms  float64 `json:"p50_ms"`
	P90Ms  float64 `json:"p90_ms"`
	P99Ms  float64 `json:"p99_ms"`
	P999Ms float64 `json:"p999_ms"`
	MaxMs  float64 `json:"max_ms"`
}

type summary struct {
	Workload           string   `json:"workload"`
	Stream             string   `json:"stream"`
	RecordBytes        int      `json:"record_bytes"`
	MaxPending         int      `json:"max_pending,omitempty"`
	Records            int64    `json:"records"`
	Bytes              int64    `json:"bytes"`
	Errors             int64    `json:"errors"`
	ElapsedSeconds     float64  `json:"elapsed_seconds"`
	RecordsPerSecond   float64  `json:"records_per_second"`
	MegabytesPerSecond float64  `json:"megabytes_per_second"`
	Latency            *latency `json:"latency,omitempty"`
}

func main() {
	url := flag.String("url", "nats://127.0.0.1:4222", "NATS server")
	mode := flag.String("mode", "publish", "publish or consume")
	stream := flag.String("stream", "BENCH", "JetStream stream (created by publish with file storage)")
	recordBytes := flag.Int("record-bytes", 1024, "payload size")
	duration := flag.Duration("duration", 10*time.Second, "longest the run lasts")
	records := flag.Int64("records", 1_000_000_000, "most records to publish or read")
	pending := flag.Int("max-pending", 16384, "unacknowledged asynchronous publishes at most")
	flag.Parse()
	ctx, cancel := context.WithTimeout(context.Background(), *duration+30*time.Second)
	defer cancel()
	nc, err := nats.Connect(*url)
	if err != nil {
		fail(fmt.Errorf("connect %s: %w", *url, err))
	}
	defer nc.Close()
	var s summary
	switch *mode {
	case "publish":
		s, err = publish(ctx, nc, *stream, *recordBytes, *duration, *records, *pending)
	case "consume":
		s, err = consume(ctx, nc, *stream, *duration, *records)
	default:
		err = fmt.Errorf("unknown mode %q", *mode)
	}
	if err != nil {
		fail(err)
	}
	if err := json.NewEncoder(os.Stdout).Encode(s); err != nil {
		fail(err)
	}
}

func fail(err error) {
	fmt.Fprintln(os.Stderr, "jsbench:", err)
	os.Exit(1)
}

func publish(ctx context.Context, nc *nats.Conn, name string, size int, duration time.Duration, limit int64, pending int) (summary, error) {
	js, err := jetstream.New(nc, jetstream.WithPublishAsyncMaxPending(pending))
	if err != nil {
		return summary{}, fmt.Errorf("jetstream context: %w", err)
	}
	subject := "bench." + name
	if _, err := js.CreateOrUpdateStream(ctx, jetstream.StreamConfig{Name: name, Subjects: []string{subject}, Storage: jetstream.FileStorage}); err != nil {
		return summary{}, fmt.Errorf("create stream %s: %w", name, err)
	}
	payload := make([]byte, size)
	_, _ = crand.Read(payload)
	// One collector takes the acknowledgements in publish order (the order
	// JetStream answers in), so measuring costs no goroutine per message.
	type inflight struct {
		f     jetstream.PubAckFuture
		began time.Time
	}
	futures := make(chan inflight, pending)
	samples := reservoir{max: latencySamplesMax}
	var acked, failed int64
	collected := make(chan struct{})
	go func() {
		defer close(collected)
		for in := range futures {
			select {
			case <-in.f.Ok():
				acked++
				samples.add(int64(time.Since(in.began)))
			case <-in.f.Err():
				failed++
			case <-ctx.Done():
				failed++
			}
		}
	}()
	start := time.Now()
	end := start.Add(duration)
	var refused int64
	for sent := int64(0); sent < limit && time.Now().Before(end); sent++ {
		began := time.Now()
		f, err := js.PublishAsync(subject, payload)
		// A full window waits up to the client's stall time and then
		// refuses; that is back-pressure, as a full buffer is for Cairn's
		// client, so the same record is offered again until the run ends.
		for errors.Is(err, jetstream.ErrTooManyStalledMsgs) && time.Now().Before(end) {
			f, err = js.PublishAsync(subject, payload)
		}
		if errors.Is(err, jetstream.ErrTooManyStalledMsgs) {
			break // the run ended while the record waited: never sent, not failed
		}
		if err != nil {
			refused++
			continue
		}
		futures <- inflight{f, began}
	}
	close(futures)
	<-collected
	if ctx.Err() != nil {
		return summary{}, errors.New("publishes not acknowledged in time")
	}
	failed += refused
	elapsed := time.Since(start)
	s := summary{Workload: "publish", Stream: name, RecordBytes: size, Records: acked, Bytes: acked * int64(size), Errors: failed}
	s.rates(elapsed)
	s.MaxPending = pending
	s.Latency = percentiles(samples.kept)
	return s, nil
}

func consume(ctx context.Context, nc *nats.Conn, name string, duration time.Duration, limit int64) (summary, error) {
	js, err := jetstream.New(nc)
	if err != nil {
		return summary{}, fmt.Errorf("jetstream context: %w", err)
	}
	st, err := js.Stream(ctx, name)
	if err != nil {
		return summary{}, fmt.Errorf("stream %s: %w", name, err)
	}
	info, err := st.Info(ctx)
	if err != nil {
		return summary{}, fmt.Errorf("stream %s info: %w", name, err)
	}
	want := min(int64(info.State.Msgs), limit)
	cons, err := js.OrderedConsumer(ctx, name, jetstream.OrderedConsumerConfig{DeliverPolicy: jetstream.DeliverAllPolicy})
	if err != nil {
		return summary{}, fmt.Errorf("ordered consumer on %s: %w", name, err)
	}
	it, err := cons.Messages()
	if err != nil {
		return summary{}, fmt.Errorf("ordered consumer on %s: %w", name, err)
	}
	defer it.Stop()
	var got, bytes int64
	start := time.Now()
	end := start.Add(duration)
	for got < want && time.Now().Before(end) {
		// The context bounds the wait for a message that never comes (a
		// stalled server) as the loop condition bounds a steady one.
		msg, err := it.Next(jetstream.NextContext(ctx))
		if err != nil {
			return summary{}, fmt.Errorf("after %d messages: %w", got, err)
		}
		got++
		bytes += int64(len(msg.Data()))
	}
	s := summary{Workload: "consume", Stream: name, Records: got, Bytes: bytes}
	if got > 0 {
		s.RecordBytes = int(bytes / got)
	}
	s.rates(time.Since(start))
	return s, nil
}

func (s *summary) rates(elapsed time.Duration) {
	s.ElapsedSeconds = elapsed.Seconds()
	if elapsed > 0 {
		s.RecordsPerSecond = float64(s.Records) / elapsed.Seconds()
		s.MegabytesPerSecond = float64(s.Bytes) / 1e6 / elapsed.Seconds()
	}
}

// latencySamplesMax bounds the memory latencies take: beyond it the
// percentiles come from a uniform sample, as in `cairn bench`.
const latencySamplesMax = 1 << 21

// reservoir keeps a uniform sample of at most max values (Algorithm R).
type reservoir struct {
	max  int
	seen int64
	kept []int64
}

func (r *reservoir) add(v int64) {
	r.seen++
	if len(r.kept) < r.max {
		r.kept = append(r.kept, v)
		return
	}
	if i := rand.Int64N(r.seen); i < int64(r.max) {
		r.kept[i] = v
	}
}

func percentiles(ns []int64) *latency {
	if len(ns) == 0 {
		return nil
	}
	slices.Sort(ns)
	at := func(q float64) float64 { return float64(ns[min(len(ns)-1, int(q*float64(len(ns))))]) / 1e6 }
	return &latency{P50Ms: at(0.50), P90Ms: at(0.90), P99Ms: at(0.99), P999Ms: at(0.999), MaxMs: float64(ns[len(ns)-1]) / 1e6}
}
