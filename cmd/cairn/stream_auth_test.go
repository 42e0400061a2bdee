package main

import (
	"io"
	"log/slog"
	"strings"
	"testing"

	"github.com/cairnlog/cairn/auth/sasl"
	"github.com/cairnlog/cairn/server"
	"github.com/cairnlog/cairn/storage/vfs"
)

// TestStreamCommandsAuthenticate: against a server with --http-auth
// required, stream append without credentials is refused as
// unauthenticated, with a wrong password too, and succeeds with
// --sasl-user and --sasl-password (HTTP Basic); stream read likewise.
func TestStreamCommandsAuthenticate(t *testing.T) {
	cfg := server.DefaultConfig()
	cfg.DataDir, cfg.KafkaAddr, cfg.HTTPAddr = t.TempDir(), "127.0.0.1:0", "127.0.0.1:0"
	cfg.HTTPAuth = server.HTTPAuthRequired
	srv, err := server.Start(cfg, vfs.Default(), slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = srv.Close() })
	salt := []byte("salt-of-alice")
	salted, err := sasl.SaltPassword(sasl.ScramSHA512, "alice-pw", salt, sasl.IterationsMin)
	if err != nil {
		t.Fatal(err)
	}
	if err := srv.Cluster().UpsertScramCredential("alice", sasl.ScramSHA512, sasl.IterationsMin, salt, salted); err != nil {
		t.Fatal(err)
	}
	run := streamCLI(t, "http://"+srv.HTTPAddr())
	appendArgs := []string{"stream", "append", "orders/order-1", "--type", "Placed", "--data", "{}"}
	if r := run(appendArgs...); r.err == nil || !strings.Contains(r.stderr+r.err.Error(), "unauthenticated") {
		t.Fatalf("append without credentials: %v\n%s", r.err, r.stderr)
	}
	if r := run(append(appendArgs, "--sasl-user", "alice", "--sasl-password", "wrong")...); r.err == nil {
		t.Fatal("append with a wrong password succeeded")
	}
	if r := run(append(appendArgs, "--sasl-user", "alice", "--sasl-password", "alice-pw")...); r.err != nil {
		t.Fatalf("append as alice: %v\n%s", r.err, r.stderr)
	}
	r := run("stream", "read", "orders/order-1", "--sasl-user", "alice", "--sasl-password", "alice-pw")
	if r.err != nil || !strings.Contains(r.stdout, "Placed") {
		t.Fatalf("read as alice: %v\n%s%s", r.err, r.stdout, r.stderr)
	}
}
