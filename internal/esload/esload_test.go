package esload

import (
	"context"
	"io"
	"log/slog"
	"os"
	"strconv"
	"testing"
	"time"

	"github.com/cairnlog/cairn/server"
	"github.com/cairnlog/cairn/storage/vfs"
)

func startServer(t *testing.T) string {
	t.Helper()
	cfg := server.DefaultConfig()
	cfg.DataDir = t.TempDir()
	cfg.KafkaAddr = "127.0.0.1:0"
	cfg.HTTPAddr = "127.0.0.1:0"
	srv, err := server.Start(cfg, vfs.Default(), slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = srv.Close() })
	return "http://" + srv.HTTPAddr()
}

// envInt reads a size override, so a larger run can be asked for by hand
// (ESLOAD_OTHER_EVENTS=1000000 go test -run ReadStream -v ./internal/esload).
func envInt(t *testing.T, name string, def int) int {
	if v := os.Getenv(name); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil {
			t.Fatalf("%s=%q: %v", name, v, err)
		}
		return n
	}
	return def
}

func TestRunAppend(t *testing.T) {
	client := Client(startServer(t))
	s, err := RunAppend(context.Background(), client, AppendConfig{Topic: "bench-es", Writers: envInt(t, "ESLOAD_WRITERS", 8),
		EventBytes: 100, Duration: time.Duration(envInt(t, "ESLOAD_SECONDS", 1)) * time.Second}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if s.Operations == 0 || s.Errors != 0 || s.Latency == nil || s.Latency.Count != s.Operations {
		t.Fatalf("summary %+v", s)
	}
	t.Logf("append: %.0f appends/s with %d writers, p50 %.2f ms p99 %.2f ms", s.OperationsPerSecond, s.Writers, s.Latency.P50Ms, s.Latency.P99Ms)
}

func TestRunReadStream(t *testing.T) {
	client := Client(startServer(t))
	events, others := envInt(t, "ESLOAD_STREAM_EVENTS", 100), envInt(t, "ESLOAD_OTHER_EVENTS", 5000)
	s, err := RunReadStream(context.Background(), client, ReadConfig{Topic: "bench-read", StreamEvents: events, OtherEvents: others,
		EventBytes: 100, Duration: time.Second}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if s.Operations == 0 || s.Records != s.Operations*int64(events) {
		t.Fatalf("summary %+v", s)
	}
	t.Logf("read-stream: %d events among %d others: p50 %.2f ms p99 %.2f ms (setup %.1fs)", events, others, s.Latency.P50Ms, s.Latency.P99Ms, s.SetupSeconds)
}
