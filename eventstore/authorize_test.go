package eventstore_test

import (
	"testing"

	"connectrpc.com/connect"

	"github.com/cairnlog/cairn/acl"
	eventstorev1 "github.com/cairnlog/cairn/api/cairn/eventstore/v1"
	"github.com/cairnlog/cairn/auth"
	"github.com/cairnlog/cairn/server"
	"github.com/cairnlog/cairn/storage/vfs"
)

// TestAuthorizerRefusesWithoutRights: with the authorizer on, a caller (the
// anonymous principal: no HTTP authentication yet) is refused an append
// without Write (and Create for a new topic) with PermissionDenied, a read
// without Read, a deletion without Delete; granted those rights, each call
// is served.
func TestAuthorizerRefusesWithoutRights(t *testing.T) {
	n := &node{t: t, fsys: vfs.Default(), dir: t.TempDir(), configure: func(c *server.Config) { c.Authorizer = true }}
	n.start()
	t.Cleanup(n.stop)
	ctx := ctxT(t)
	denied := func(what string, err error) {
		t.Helper()
		if connect.CodeOf(err) != connect.CodePermissionDenied {
			t.Fatalf("%s: %v, want PermissionDenied", what, err)
		}
	}
	_, err := n.append(ctx, "orders", "order-1", noStream(), ev("Created", "{}"))
	denied("append without rights", err)

	anonymous := auth.Anonymous.String()
	allow := func(topic string, ops ...acl.Operation) {
		t.Helper()
		var bs []acl.Binding
		for _, op := range ops {
			bs = append(bs, acl.Binding{ResourceType: acl.ResourceTopic, ResourceName: topic, PatternType: acl.PatternLiteral,
				Principal: anonymous, Host: acl.Wildcard, Operation: op, Permission: acl.PermissionAllow})
		}
		if err := n.srv.Cluster().CreateACLs(bs); err != nil {
			t.Fatal(err)
		}
	}
	allow("orders", acl.OpCreate)
	_, err = n.append(ctx, "orders", "order-1", noStream(), ev("Created", "{}"))
	denied("append without Write", err)
	allow("orders", acl.OpWrite)
	n.mustAppend(ctx, "orders", "order-1", noStream(), ev("Created", "{}"))
	allow("payments", acl.OpWrite)
	_, err = n.append(ctx, "payments", "p-1", noStream(), ev("Paid", "{}"))
	denied("append creating a topic without Create", err)
	// AppendMulti checks Write on each part's topic, as an append does.
	_, err = n.appendMulti(ctx, part("orders", "order-9", noStream(), ev("Created", "{}")), part("refunds", "r-1", noStream(), ev("Refunded", "{}")))
	denied("AppendMulti with a part on a topic without Write", err)
	if _, err := n.appendMulti(ctx, part("orders", "order-9", noStream(), ev("Created", "{}"))); err != nil {
		t.Fatalf("AppendMulti with Write: %v", err)
	}

	_, err = n.client.ReadStream(ctx, connect.NewRequest(&eventstorev1.ReadStreamRequest{Topic: "orders", Stream: "order-1"}))
	denied("read without Read", err)
	_, err = n.client.DeleteStream(ctx, connect.NewRequest(&eventstorev1.DeleteStreamRequest{Topic: "orders", Stream: "order-1"}))
	denied("delete without Delete", err)
	if _, err := n.client.GetStreamMetadata(ctx, connect.NewRequest(&eventstorev1.GetStreamMetadataRequest{Topic: "orders", Stream: "order-1"})); err != nil {
		t.Fatalf("metadata read with Write (implying Describe): %v", err)
	}
	allow("orders", acl.OpRead, acl.OpDelete)
	if got := n.readAll(ctx, "orders", "order-1"); len(got) != 1 {
		t.Fatalf("read %d events, want 1", len(got))
	}
	if _, err := n.client.DeleteStream(ctx, connect.NewRequest(&eventstorev1.DeleteStreamRequest{Topic: "orders", Stream: "order-1"})); err != nil {
		t.Fatalf("delete with Delete: %v", err)
	}
}
