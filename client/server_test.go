package client

import (
	"context"
	"log/slog"
	"testing"
	"time"

	"github.com/cairnlog/cairn/server"
	"github.com/cairnlog/cairn/storage/vfs"
)

// startServer runs a Cairn server in the test's process, on a temporary
// data directory and loopback ports, and returns a client of it.
func startServer(t *testing.T, opts ...Option) *Client {
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
	c, err := New("http://"+s.HTTPAddr(), opts...)
	if err != nil {
		t.Fatal(err)
	}
	// Before the server's Close (cleanups run last first): an open HTTP/2
	// connection makes the server's graceful shutdown wait a second.
	t.Cleanup(c.Close)
	return c
}

func testContext(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	t.Cleanup(cancel)
	return ctx
}
