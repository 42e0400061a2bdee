package server

import (
	"context"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/cairnlog/cairn/quota"
)

// TestClusterClientQuotasReplicatedAndDurable: client quotas set with kadm
// through one node are applied by every node of a three-node cluster (each
// node enforces what it applied), a node closed and started again from its
// data directory has them, and a removal through another node reaches
// every node.
func TestClusterClientQuotasReplicatedAndDurable(t *testing.T) {
	tc := startCluster(t)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	alterThrough := func(node int32, entry kadm.AlterClientQuotaEntry) {
		t.Helper()
		client, err := kgo.NewClient(kgo.SeedBrokers(tc.servers[node].KafkaAddr()))
		if err != nil {
			t.Fatal(err)
		}
		defer client.Close()
		altered, err := kadm.NewClient(client).AlterClientQuotas(ctx, []kadm.AlterClientQuotaEntry{entry})
		if err == nil && altered[0].Err != nil {
			err = altered[0].Err
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	user := kadm.ClientQuotaEntity{{Type: quota.TypeUser}}
	alterThrough(1, kadm.AlterClientQuotaEntry{Entity: user, Ops: []kadm.AlterClientQuotaOp{
		{Key: quota.ProducerByteRate, Value: 1 << 20}, {Key: quota.ConsumerByteRate, Value: 2 << 20}}})
	limits := func(node int32) (producer, consumer float64) {
		c := tc.servers[node].Cluster().ClientQuotas()
		producer, _, _ = c.Resolve("alice", "app", quota.ProducerByteRate)
		consumer, _, _ = c.Resolve("alice", "app", quota.ConsumerByteRate)
		return producer, consumer
	}
	everywhere := func(producer, consumer float64) func() bool {
		return func() bool {
			for node := range tc.servers {
				if p, c := limits(node); p != producer || c != consumer {
					return false
				}
			}
			return true
		}
	}
	waitUntil(t, "every node holds the quotas", everywhere(1<<20, 2<<20))

	tc.stop(2)
	tc.restart(2)
	waitUntil(t, "node 2 holds the quotas after its restart", everywhere(1<<20, 2<<20))

	alterThrough(3, kadm.AlterClientQuotaEntry{Entity: user, Ops: []kadm.AlterClientQuotaOp{{Key: quota.ConsumerByteRate, Remove: true}}})
	waitUntil(t, "every node dropped the removed quota", everywhere(1<<20, 0))
}
