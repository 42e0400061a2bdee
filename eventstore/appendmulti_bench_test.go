package eventstore_test

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"testing"

	"connectrpc.com/connect"

	eventstorev1 "github.com/cairnlog/cairn/api/cairn/eventstore/v1"
	"github.com/cairnlog/cairn/api/cairn/eventstore/v1/eventstorev1connect"
	"github.com/cairnlog/cairn/server"
	"github.com/cairnlog/cairn/storage/vfs"
)

// BenchmarkAppendMulti: one caller writing one event to each of two
// streams of two topics, per call: an AppendMulti of both against two
// single Appends one after the other, each checking its expected revision.
// calls/s counts the pairs written (bench/run reports both).
func BenchmarkAppendMulti(b *testing.B) {
	cfg := server.DefaultConfig()
	cfg.DataDir = b.TempDir()
	cfg.KafkaAddr = "127.0.0.1:0"
	cfg.HTTPAddr = "127.0.0.1:0"
	srv, err := server.Start(cfg, vfs.Default(), slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = srv.Close() })
	protocols := new(http.Protocols)
	protocols.SetUnencryptedHTTP2(true)
	c := eventstorev1connect.NewEventStoreClient(&http.Client{Transport: &http.Transport{Protocols: protocols}}, "http://"+srv.HTTPAddr(), connect.WithGRPC())
	ctx := context.Background()
	data := []byte(`{"qty":1,"note":"a hundred bytes of event data, more or less, as bench/run's appends carry them..."}`)
	expect := func(rev int64) *eventstorev1.ExpectedRevision {
		if rev < 0 {
			return noStream()
		}
		return exact(uint64(rev))
	}
	b.Run("AppendMulti", func(b *testing.B) {
		rev := int64(-1)
		for b.Loop() {
			_, err := c.AppendMulti(ctx, connect.NewRequest(&eventstorev1.AppendMultiRequest{Parts: []*eventstorev1.AppendPart{
				part("bench-orders", "multi", expect(rev), &eventstorev1.Event{Type: "Placed", Data: data}),
				part("bench-stock", "multi", expect(rev), &eventstorev1.Event{Type: "Reserved", Data: data}),
			}}))
			if err != nil {
				b.Fatal(err)
			}
			rev++
		}
		b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "calls/s")
	})
	b.Run("TwoAppends", func(b *testing.B) {
		rev := int64(-1)
		for b.Loop() {
			for _, topic := range []string{"bench-orders", "bench-stock"} {
				_, err := c.Append(ctx, connect.NewRequest(&eventstorev1.AppendRequest{Topic: topic, Stream: "single",
					ExpectedRevision: expect(rev), Events: []*eventstorev1.Event{{Type: "E", Data: data}}}))
				if err != nil {
					b.Fatal(err)
				}
			}
			rev++
		}
		b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "calls/s")
	})
}
