package main

import (
	"io"
	"log/slog"
	"strings"
	"testing"

	"github.com/cairnlog/cairn/auth"
	"github.com/cairnlog/cairn/server"
	"github.com/cairnlog/cairn/storage/vfs"
)

// TestACLAddListRemove: acl add creates one ACL per operation, list shows
// them all or those its filters select, remove deletes what its filters
// select and refuses to remove everything without --all. The server checks
// ACLs, with the CLI's anonymous principal a super user.
func TestACLAddListRemove(t *testing.T) {
	cfg := server.DefaultConfig()
	cfg.DataDir, cfg.KafkaAddr, cfg.HTTPAddr = "/data", "127.0.0.1:0", ""
	cfg.Authorizer, cfg.SuperUsers = true, []auth.Principal{auth.Anonymous}
	s, err := server.Start(cfg, vfs.NewMem(), slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	brokers := s.KafkaAddr()

	added := mustCairn(t, "acl", "add", "--principal", "User:bob", "--operation", "Read,Write", "--topic", "orders", "--brokers", brokers)
	want := "added\tTopic\tLiteral\torders\tUser:bob\t*\tRead\tAllow\nadded\tTopic\tLiteral\torders\tUser:bob\t*\tWrite\tAllow\n"
	if added.stdout != want {
		t.Errorf("add printed %q, want %q", added.stdout, want)
	}
	mustCairn(t, "acl", "add", "--principal", "User:eve", "--operation", "All", "--topic", "ord", "--prefixed", "--deny", "--host", "10.0.0.9", "--brokers", brokers)
	mustCairn(t, "acl", "add", "--principal", "User:*", "--operation", "Read", "--group", "analytics", "--brokers", brokers)

	if got := strings.Count(mustCairn(t, "acl", "list", "--brokers", brokers).stdout, "\n"); got != 4 {
		t.Errorf("list shows %d ACLs, want 4", got)
	}
	match := mustCairn(t, "acl", "list", "--topic", "orders", "--pattern", "match", "--brokers", brokers).stdout
	if strings.Count(match, "\n") != 3 || !strings.Contains(match, "Prefixed\tord\tUser:eve\t10.0.0.9\tAll\tDeny") {
		t.Errorf("list --pattern match of orders:\n%s", match)
	}
	if r := cairn(t, "acl", "remove", "--brokers", brokers); r.err == nil || !strings.Contains(r.err.Error(), "--all") {
		t.Errorf("remove without a filter: %v", r.err)
	}
	removed := mustCairn(t, "acl", "remove", "--principal", "User:bob", "--operation", "Write", "--brokers", brokers).stdout
	if removed != "removed\tTopic\tLiteral\torders\tUser:bob\t*\tWrite\tAllow\n" {
		t.Errorf("remove printed %q", removed)
	}
	if r := cairn(t, "acl", "add", "--principal", "bob", "--operation", "Read", "--topic", "x", "--brokers", brokers); r.err == nil {
		t.Error("a principal without a type was accepted")
	}
	mustCairn(t, "acl", "remove", "--all", "--brokers", brokers)
	if list := mustCairn(t, "acl", "list", "--brokers", brokers).stdout; list != "" {
		t.Errorf("after remove --all: %q", list)
	}
}
