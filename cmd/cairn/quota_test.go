package main

import (
	"io"
	"log/slog"
	"strings"
	"testing"

	"github.com/cairnlog/cairn/server"
	"github.com/cairnlog/cairn/storage/vfs"
)

// TestQuotaSetListRemove: quota set stores quotas on named and default
// entities, list shows them all or those its filters select, remove takes
// keys away (the entity with its last one), and flags naming no entity or
// two for one type are refused before anything is sent.
func TestQuotaSetListRemove(t *testing.T) {
	cfg := server.DefaultConfig()
	cfg.DataDir, cfg.KafkaAddr, cfg.HTTPAddr = "/data", "127.0.0.1:0", ""
	s, err := server.Start(cfg, vfs.NewMem(), slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	brokers := s.KafkaAddr()

	set := mustCairn(t, "quota", "set", "--user", "alice", "--producer-byte-rate", "1048576", "--request-percentage", "12.5", "--brokers", brokers)
	if want := "set\tuser=alice\tproducer_byte_rate=1048576 request_percentage=12.5\n"; set.stdout != want {
		t.Errorf("set printed %q, want %q", set.stdout, want)
	}
	mustCairn(t, "quota", "set", "--default-user", "--default-client-id", "--consumer-byte-rate", "2048", "--brokers", brokers)
	mustCairn(t, "quota", "set", "--client-id", "reports", "--consumer-byte-rate", "4096", "--brokers", brokers)

	all := mustCairn(t, "quota", "list", "--brokers", brokers).stdout
	want := "client-id=reports\tconsumer_byte_rate=4096\n" +
		"user=<default>,client-id=<default>\tconsumer_byte_rate=2048\n" +
		"user=alice\tproducer_byte_rate=1048576 request_percentage=12.5\n"
	if all != want {
		t.Errorf("list:\n%s\nwant\n%s", all, want)
	}
	if got := mustCairn(t, "quota", "list", "--any-client-id", "--strict", "--brokers", brokers).stdout; got != "client-id=reports\tconsumer_byte_rate=4096\n" {
		t.Errorf("list --any-client-id --strict: %q", got)
	}
	if got := mustCairn(t, "quota", "list", "--default-user", "--brokers", brokers).stdout; got != "user=<default>,client-id=<default>\tconsumer_byte_rate=2048\n" {
		t.Errorf("list --default-user: %q", got)
	}

	mustCairn(t, "quota", "remove", "--user", "alice", "--key", "request_percentage", "--brokers", brokers)
	if got := mustCairn(t, "quota", "list", "--user", "alice", "--brokers", brokers).stdout; got != "user=alice\tproducer_byte_rate=1048576\n" {
		t.Errorf("after removing one key: %q", got)
	}
	mustCairn(t, "quota", "remove", "--user", "alice", "--brokers", brokers)
	if got := mustCairn(t, "quota", "list", "--user", "alice", "--brokers", brokers).stdout; got != "" {
		t.Errorf("after removing every key: %q", got)
	}

	for _, args := range [][]string{
		{"quota", "set", "--producer-byte-rate", "10"},
		{"quota", "set", "--user", "a", "--default-user", "--producer-byte-rate", "10"},
		{"quota", "set", "--user", "a"},
		{"quota", "set", "--user", "a", "--producer-byte-rate", "0"},
		{"quota", "remove", "--user", "a", "--key", "controller_mutation_rate"},
		{"quota", "list", "--user", "a", "--any-user"},
	} {
		if r := cairn(t, append(args, "--brokers", brokers)...); r.err == nil {
			t.Errorf("cairn %s succeeded", strings.Join(args, " "))
		}
	}
}
