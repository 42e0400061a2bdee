package main

import (
	"encoding/json"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cairnlog/cairn/server"
	"github.com/cairnlog/cairn/storage/vfs"
)

// startEventStore runs a server in process and returns its API URL.
func startEventStore(t *testing.T) string {
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

func TestStreamAppendAndRead(t *testing.T) {
	url := startEventStore(t)
	s := func(args ...string) commandResult { return cairn(t, append(args, "--server", url)...) }

	first := s("stream", "append", "orders/eu/order-1", "--type", "OrderPlaced", "--data", `{"sku":"tea","qty":2}`,
		"--expected-revision", "no-stream", "--metadata", "user=ann")
	if first.err != nil || first.stdout != "0\n" {
		t.Fatalf("first append: %q %v %s", first.stdout, first.err, first.stderr)
	}
	file := filepath.Join(t.TempDir(), "paid.json")
	if err := os.WriteFile(file, []byte(`{"amount":12}`), 0o644); err != nil {
		t.Fatal(err)
	}
	id := "7d444840-9dc0-11d1-b245-5ffdce74fad2"
	if r := s("stream", "append", "orders/eu/order-1", "--type", "OrderPaid", "--data", "@"+file, "--id", id, "--expected-revision", "0"); r.err != nil || r.stdout != "1\n" {
		t.Fatalf("append from a file: %q %v", r.stdout, r.err)
	}
	// The same id again is a retry: the original revision, nothing written.
	if r := s("stream", "append", "orders/eu/order-1", "--type", "OrderPaid", "--data", "@"+file, "--id", id, "--expected-revision", "0"); r.err != nil || r.stdout != "1\n" || !strings.Contains(r.stderr, "already appended") {
		t.Fatalf("retry: %q %q %v", r.stdout, r.stderr, r.err)
	}
	conflict := s("stream", "append", "orders/eu/order-1", "--type", "OrderShipped", "--data", "{}", "--expected-revision", "0")
	if conflict.err == nil || !strings.Contains(conflict.err.Error(), "its revision is 1") {
		t.Fatalf("conflict: %v", conflict.err)
	}
	if r := s("stream", "append", "orders/fresh", "--type", "X", "--data", "{}", "--expected-revision", "exists"); r.err == nil || !strings.Contains(r.err.Error(), "has no events") {
		t.Fatalf("exists on a new stream: %v", r.err)
	}
	stdin := invocation{args: []string{"stream", "append", "orders/eu/order-1", "--type", "Note", "--data", "-", "--server", url}, stdin: strings.NewReader("plain text")}.run(t)
	if stdin.err != nil || stdin.stdout != "2\n" {
		t.Fatalf("append from stdin: %q %v", stdin.stdout, stdin.err)
	}

	read := s("stream", "read", "orders/eu/order-1", "--json")
	if read.err != nil {
		t.Fatal(read.err)
	}
	lines := strings.Split(strings.TrimSpace(read.stdout), "\n")
	if len(lines) != 3 {
		t.Fatalf("read printed %q", read.stdout)
	}
	var events []map[string]any
	for _, line := range lines {
		var ev map[string]any
		if err := json.Unmarshal([]byte(line), &ev); err != nil {
			t.Fatalf("line %q: %v", line, err)
		}
		events = append(events, ev)
	}
	if events[0]["type"] != "OrderPlaced" || events[0]["revision"] != 0.0 || events[0]["data"].(map[string]any)["sku"] != "tea" ||
		events[0]["metadata"].(map[string]any)["user"] != "ann" || events[0]["id"] == "" {
		t.Errorf("first event %v", events[0])
	}
	if events[1]["id"] != id || events[1]["data"].(map[string]any)["amount"] != 12.0 {
		t.Errorf("second event %v", events[1])
	}
	if events[2]["data"] != "plain text" || events[2]["revision"] != 2.0 {
		t.Errorf("third event %v", events[2])
	}
	back := s("stream", "read", "orders/eu/order-1", "--backwards", "--max", "1")
	if fields := strings.Split(back.stdout, "\t"); back.err != nil || len(fields) != 6 || fields[0] != "eu/order-1" || fields[1] != "2" || fields[2] != "Note" {
		t.Fatalf("backwards: %q %v", back.stdout, back.err)
	}
	if from := s("stream", "read", "orders/eu/order-1", "--from", "1"); strings.Count(from.stdout, "\n") != 2 {
		t.Fatalf("--from 1: %q", from.stdout)
	}
	if r := s("stream", "read", "orders/nothing"); r.err == nil || !strings.Contains(r.err.Error(), "not found") {
		t.Fatalf("missing stream: %v", r.err)
	}
	if r := s("stream", "read", "no-slash"); r.err == nil || !strings.Contains(r.err.Error(), "TOPIC/STREAM") {
		t.Fatalf("bad name: %v", r.err)
	}
	// CAIRN_SERVER stands in for --server.
	env := invocation{args: []string{"stream", "read", "orders/eu/order-1", "--max", "1"}, env: map[string]string{"CAIRN_SERVER": url}}.run(t)
	if env.err != nil || strings.Count(env.stdout, "\n") != 1 {
		t.Fatalf("CAIRN_SERVER: %q %v", env.stdout, env.err)
	}
}

func TestStreamMetadataAndDelete(t *testing.T) {
	url := startEventStore(t)
	s := func(args ...string) commandResult { return cairn(t, append(args, "--server", url)...) }
	for range 5 {
		if r := s("stream", "append", "t/s", "--type", "E", "--data", "{}"); r.err != nil {
			t.Fatal(r.err)
		}
	}
	shown := s("stream", "metadata", "t/s")
	if shown.err != nil || !strings.Contains(shown.stdout, "last revision:    4") || !strings.Contains(shown.stdout, "max count:        none") {
		t.Fatalf("metadata: %q %v", shown.stdout, shown.err)
	}
	set := s("stream", "metadata", "t/s", "--max-count", "2")
	if set.err != nil || !strings.Contains(set.stdout, "max count:        2") {
		t.Fatalf("set max count: %q %v", set.stdout, set.err)
	}
	// Read-modify-write: setting the age keeps the count.
	set = s("stream", "metadata", "t/s", "--max-age", "1h")
	if set.err != nil || !strings.Contains(set.stdout, "max count:        2") || !strings.Contains(set.stdout, "max age:          1h0m0s") {
		t.Fatalf("set max age: %q %v", set.stdout, set.err)
	}
	if r := s("stream", "read", "t/s"); strings.Count(r.stdout, "\n") != 2 {
		t.Fatalf("read with max count 2: %q", r.stdout)
	}
	if r := s("stream", "delete", "t/s", "--expected-revision", "3"); r.err == nil || !strings.Contains(r.err.Error(), "its revision is 4") {
		t.Fatalf("delete with a stale revision: %v", r.err)
	}
	if r := s("stream", "delete", "t/s"); r.err != nil || r.stdout != "deleted t/s\n" {
		t.Fatalf("soft delete: %q %v", r.stdout, r.err)
	}
	if r := s("stream", "append", "t/s", "--type", "E", "--data", "{}", "--expected-revision", "no-stream"); r.err != nil || r.stdout != "5\n" {
		t.Fatalf("append after soft delete: %q %v", r.stdout, r.err)
	}
	if r := s("stream", "delete", "t/s", "--hard"); r.err != nil || r.stdout != "deleted for good t/s\n" {
		t.Fatalf("hard delete: %q %v", r.stdout, r.err)
	}
	if r := s("stream", "append", "t/s", "--type", "E", "--data", "{}"); r.err == nil || !strings.Contains(r.err.Error(), "deleted for good") {
		t.Fatalf("append after hard delete: %v", r.err)
	}
}

func TestStreamSubscribe(t *testing.T) {
	url := startEventStore(t)
	s := func(args ...string) commandResult { return cairn(t, append(args, "--server", url)...) }
	for _, typ := range []string{"OrderPlaced", "StockAdded"} {
		if r := s("stream", "append", "shop/a", "--type", typ, "--data", "{}"); r.err != nil {
			t.Fatal(r.err)
		}
	}
	var wg sync.WaitGroup
	var streamSub, topicSub commandResult
	wg.Add(2)
	go func() {
		defer wg.Done()
		streamSub = s("stream", "subscribe", "shop/a", "--from", "1", "--max", "2", "--json")
	}()
	go func() {
		defer wg.Done()
		topicSub = s("stream", "subscribe", "shop", "--type-prefix", "Order", "--max", "2")
	}()
	time.Sleep(500 * time.Millisecond) // both catch up first
	if r := s("stream", "append", "shop/b", "--type", "OrderPaid", "--data", "{}"); r.err != nil {
		t.Fatal(r.err)
	}
	if r := s("stream", "append", "shop/a", "--type", "OrderShipped", "--data", "{}"); r.err != nil {
		t.Fatal(r.err)
	}
	wg.Wait()
	if streamSub.err != nil || strings.Count(streamSub.stdout, "\n") != 2 || !strings.Contains(streamSub.stdout, `"type":"StockAdded"`) ||
		!strings.Contains(streamSub.stdout, `"type":"OrderShipped"`) || !strings.Contains(streamSub.stderr, "caught up") {
		t.Fatalf("stream subscription: %q %q %v", streamSub.stdout, streamSub.stderr, streamSub.err)
	}
	if topicSub.err != nil || !strings.Contains(topicSub.stdout, "OrderPlaced") || !strings.Contains(topicSub.stdout, "OrderPaid") || strings.Contains(topicSub.stdout, "Stock") {
		t.Fatalf("topic subscription: %q %v", topicSub.stdout, topicSub.err)
	}
}

func TestBenchEventStore(t *testing.T) {
	url := startEventStore(t)
	r := cairn(t, "bench", "append", "--server", url, "--writers", "4", "--duration", "300ms", "--json")
	var s struct {
		Workload         string  `json:"workload"`
		Operations       int64   `json:"operations"`
		RecordsPerSecond float64 `json:"records_per_second"`
		Latency          struct {
			P99 float64 `json:"p99_ms"`
		} `json:"latency"`
	}
	if r.err != nil || json.Unmarshal([]byte(r.stdout), &s) != nil || s.Workload != "append" || s.Operations == 0 || s.RecordsPerSecond <= 0 || s.Latency.P99 <= 0 {
		t.Fatalf("bench append: %q %v", r.stdout, r.err)
	}
	r = cairn(t, "bench", "read-stream", "--server", url, "--events", "20", "--other-events", "2000", "--duration", "200ms")
	if r.err != nil || !strings.Contains(r.stdout, "read-stream on bench-read-") || !strings.Contains(r.stdout, "latency ms: p50") {
		t.Fatalf("bench read-stream: %q %v", r.stdout, r.err)
	}
}
