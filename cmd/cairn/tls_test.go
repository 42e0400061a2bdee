package main

import (
	"crypto/x509/pkix"
	"io"
	"log/slog"
	"strings"
	"testing"

	"github.com/cairnlog/cairn/internal/testcerts"
	"github.com/cairnlog/cairn/kafka"
	"github.com/cairnlog/cairn/server"
	"github.com/cairnlog/cairn/storage/vfs"
	"github.com/cairnlog/cairn/tlsconf"
)

// TestClientCommandsOverTLS: produce, consume, topic list and the stream
// commands reach a node over TLS with a client certificate (its SSL
// listener and its HTTPS event-store API require one), and fail without.
func TestClientCommandsOverTLS(t *testing.T) {
	dir := t.TempDir()
	ca := testcerts.NewCA(t, dir, "ca")
	node := ca.Issue(t, dir, "node", testcerts.Options{Server: true})
	me := ca.Issue(t, dir, "me", testcerts.Options{Subject: pkix.Name{CommonName: "me"}})
	cfg := server.DefaultConfig()
	cfg.DataDir, cfg.HTTPAddr, cfg.HTTPTLS = "/data", "127.0.0.1:0", true
	cfg.Listeners = []server.Listener{{Name: "SSL", Protocol: kafka.SSL, Addr: "127.0.0.1:0"}}
	cfg.TLS = tlsconf.Files{CertFile: node.CertFile, KeyFile: node.KeyFile, ClientCAFile: ca.CertFile}
	s, err := server.Start(cfg, vfs.NewMem(), slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	tlsArgs := []string{"--tls-ca-file", ca.CertFile, "--tls-cert-file", me.CertFile, "--tls-key-file", me.KeyFile}

	produce(t, s.KafkaAddr(), "hello\nworld\n", append([]string{"greetings"}, tlsArgs...)...)
	records := consumeJSON(t, s.KafkaAddr(), "greetings", append([]string{"--from", "beginning", "--max", "2"}, tlsArgs...)...)
	if len(records) != 2 || text(records[0].Value) != "hello" || text(records[1].Value) != "world" {
		t.Fatalf("consumed %+v", records)
	}
	if out := mustCairn(t, append([]string{"topic", "list", "--brokers", s.KafkaAddr()}, tlsArgs...)...); !strings.Contains(out.stdout, "greetings") {
		t.Fatalf("topic list: %q", out.stdout)
	}
	// Without a client certificate the listener refuses the client.
	noCert := []string{"topic", "list", "--brokers", s.KafkaAddr(), "--tls-ca-file", ca.CertFile, "--timeout", "2s"}
	if r := cairn(t, noCert...); r.err == nil {
		t.Fatalf("topic list without a client certificate succeeded: %q", r.stdout)
	}

	url := "https://" + s.HTTPAddr()
	if r := mustCairn(t, append([]string{"stream", "append", "orders/o-1", "--type", "Placed", "--data", "{}", "--server", url}, tlsArgs...)...); r.stdout != "0\n" {
		t.Fatalf("stream append: %q", r.stdout)
	}
	if r := mustCairn(t, append([]string{"stream", "read", "orders/o-1", "--server", url}, tlsArgs...)...); !strings.Contains(r.stdout, "Placed") {
		t.Fatalf("stream read: %q", r.stdout)
	}
	if r := cairn(t, "stream", "read", "orders/o-1", "--server", url, "--tls-ca-file", ca.CertFile, "--timeout", "2s"); r.err == nil {
		t.Fatal("stream read without a client certificate succeeded")
	}
}
