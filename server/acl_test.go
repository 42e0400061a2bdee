package server

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/cairnlog/cairn/acl"
)

// TestClusterACLsReplicatedAndDurable: ACLs created with kadm through one
// node are applied by every node of a three-node cluster, a node closed and
// started again from its data directory has them, and a deletion through
// another node reaches every node.
func TestClusterACLsReplicatedAndDurable(t *testing.T) {
	tc := startCluster(t)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	client, err := kgo.NewClient(kgo.SeedBrokers(tc.servers[1].KafkaAddr()))
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	created, err := kadm.NewClient(client).CreateACLs(ctx, kadm.NewACLs().Topics("orders").
		Allow("User:alice").Operations(kadm.OpRead, kadm.OpWrite))
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range created {
		if r.Err != nil {
			t.Fatal(r.Err)
		}
	}
	want := tc.servers[1].Cluster().ACLs().Bindings(acl.MatchAll)
	if len(want) != 2 {
		t.Fatalf("the serving node holds %v after the create, want 2 ACLs", want)
	}
	sameEverywhere := func(want []acl.Binding) func() bool {
		return func() bool {
			for _, s := range tc.servers {
				if !slices.Equal(s.Cluster().ACLs().Bindings(acl.MatchAll), want) {
					return false
				}
			}
			return true
		}
	}
	waitUntil(t, "every node holds the ACLs", sameEverywhere(want))

	tc.stop(2)
	tc.restart(2)
	waitUntil(t, "node 2 holds the ACLs after its restart", sameEverywhere(want))

	other, err := kgo.NewClient(kgo.SeedBrokers(tc.servers[3].KafkaAddr()))
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	deleted, err := kadm.NewClient(other).DeleteACLs(ctx, kadm.NewACLs().Topics("orders").
		Allow("User:alice").AllowHosts().Operations(kadm.OpWrite))
	if err != nil || len(deleted) != 1 || deleted[0].Err != nil || len(deleted[0].Deleted) != 1 {
		t.Fatalf("delete: %+v, %v", deleted, err)
	}
	waitUntil(t, "every node dropped the deleted ACL", sameEverywhere(want[:1]))
}
