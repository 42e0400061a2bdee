package cluster

import (
	"errors"
	"slices"
	"testing"

	"github.com/cairnlog/cairn/acl"
	"github.com/cairnlog/cairn/storage/vfs"
)

// TestACLsSurviveRestart: created bindings are in the set at once, a delete
// returns what each filter matched, an invalid binding is refused, and the
// bindings left are there after a restart.
func TestACLsSurviveRestart(t *testing.T) {
	fsys := vfs.NewMem()
	c := openCluster(t, fsys)
	if n := c.ACLs().Len(); n != 0 {
		t.Fatalf("a new cluster has %d ACLs", n)
	}
	write := acl.Binding{ResourceType: acl.ResourceTopic, ResourceName: "orders", PatternType: acl.PatternLiteral,
		Principal: "User:bob", Host: acl.Wildcard, Operation: acl.OpWrite, Permission: acl.PermissionAllow}
	read := write
	read.Operation = acl.OpRead
	prefixed := write
	prefixed.PatternType, prefixed.ResourceName = acl.PatternPrefixed, "ord"
	if err := c.CreateACLs([]acl.Binding{write, read, prefixed}); err != nil {
		t.Fatal(err)
	}
	bad := write
	bad.Host = "somewhere"
	if err := c.CreateACLs([]acl.Binding{bad}); !errors.Is(err, acl.ErrInvalid) {
		t.Fatalf("invalid binding: %v", err)
	}
	if n := c.ACLs().Len(); n != 3 {
		t.Fatalf("%d ACLs, want 3", n)
	}
	readFilter := acl.MatchAll
	readFilter.Operation = acl.OpRead
	deleted, err := c.DeleteACLs([]acl.Filter{readFilter, readFilter})
	if err != nil {
		t.Fatal(err)
	}
	if len(deleted) != 2 || !slices.Equal(deleted[0], []acl.Binding{read}) {
		t.Fatalf("deleted %v, want [read] twice", deleted)
	}
	want := c.ACLs().Bindings(acl.MatchAll)
	if len(want) != 2 {
		t.Fatalf("after delete: %v", want)
	}
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	c = openCluster(t, fsys)
	defer c.Close()
	if got := c.ACLs().Bindings(acl.MatchAll); !slices.Equal(got, want) {
		t.Fatalf("after restart %v, want %v", got, want)
	}
}
