package integration

import (
	"testing"

	"github.com/twmb/franz-go/pkg/kgo"
)

// TestKIP848FranzGo proves franz-go opted in to the KIP-848 consumer
// protocol (ServerSideBalancer) against the real server: three members
// share a six-partition topic with server-side assignment, every record is
// consumed once, and when one leaves the other two take its partitions and
// consume what follows. (kcat's librdkafka predates the protocol.)
func TestKIP848FranzGo(t *testing.T) {
	server := startCairn(t, "")
	const topic, group = "kip848", "kip848-group"
	createTopic(t, server.kafkaAddr, topic, 6, nil)
	options := []kgo.Opt{kgo.ServerSideBalancer(), kgo.Balancers(kgo.StickyBalancer())}
	members := []*groupMember{
		startGroupMember(t, server.kafkaAddr, group, topic, options...),
		startGroupMember(t, server.kafkaAddr, group, topic, options...),
		startGroupMember(t, server.kafkaAddr, group, topic, options...),
	}
	waitGroupStable(t, server.kafkaAddr, group, 3)
	produceValues(t, server.kafkaAddr, topic, "n", 0, 120)
	waitConsumed(t, valueSet("n", 0, 120), members...)
	for i, m := range members {
		if values, assigned, _ := m.snapshot(); len(values) == 0 || assigned != 2 {
			t.Fatalf("member %d consumed %d values from %d partitions, want some from 2", i, len(values), assigned)
		}
	}
	members[0].close()
	waitGroupStable(t, server.kafkaAddr, group, 2)
	produceValues(t, server.kafkaAddr, topic, "n", 120, 60)
	waitConsumed(t, valueSet("n", 0, 180), members...)
}
