package aggregate

import (
	"context"
	"log/slog"
	"testing"
	"time"

	"github.com/cairnlog/cairn/client"
	"github.com/cairnlog/cairn/server"
	"github.com/cairnlog/cairn/storage/vfs"
)

// startServer runs a Cairn server in the test's process, on a temporary
// data directory and loopback ports, and returns a client of it.
func startServer(t *testing.T) *client.Client {
	t.Helper()
	cfg := server.DefaultConfig()
	cfg.DataDir = t.TempDir()
	cfg.KafkaAddr = "127.0.0.1:0"
	cfg.HTTPAddr = "127.0.0.1:0"
	s, err := server.Start(cfg, vfs.Default(), slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := s.Close(); err != nil {
			t.Errorf("server close: %v", err)
		}
	})
	c, err := client.New("http://" + s.HTTPAddr())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close) // before the server's Close, which an open connection slows
	return c
}

func testContext(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
	t.Cleanup(cancel)
	return ctx
}
