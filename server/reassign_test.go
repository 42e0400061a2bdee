package server

import (
	"context"
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// TestServersReassignThroughKafka: kadm's AlterPartitionReassignments
// moves a partition of three servers onto another node and
// ListPartitionReassignments lists the move until it completes; a
// target naming a node twice and a cancel with no move running are
// refused with Kafka's codes.
func TestServersReassignThroughKafka(t *testing.T) {
	servers := startThree(t)
	if _, err := servers[0].Cluster().CreateTopicReplicated("moved", 1, 2, nil, false); err != nil {
		t.Fatal(err)
	}
	cl, err := kgo.NewClient(kgo.SeedBrokers(servers[1].KafkaAddr()))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	adm := kadm.NewClient(cl)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()

	top, _ := servers[0].Cluster().Topic("moved")
	old := slices.Sorted(slices.Values(top.Partitions[0].Replicas))
	var spare int32
	for id := int32(1); id <= 3; id++ {
		if !slices.Contains(old, id) {
			spare = id
		}
	}
	target := []int32{old[1], spare}

	var bad kadm.AlterPartitionAssignmentsReq
	bad.Assign("moved", 0, []int32{spare, spare})
	res, err := adm.AlterPartitionAssignments(ctx, bad)
	if err != nil {
		t.Fatal(err)
	}
	if r := res["moved"][0]; !errors.Is(r.Err, kerr.InvalidReplicaAssignment) {
		t.Fatalf("a node twice: %v, want INVALID_REPLICA_ASSIGNMENT", r.Err)
	}
	var none kadm.AlterPartitionAssignmentsReq
	none.CancelAssign("moved", 0)
	if res, err = adm.AlterPartitionAssignments(ctx, none); err != nil {
		t.Fatal(err)
	}
	if r := res["moved"][0]; !errors.Is(r.Err, kerr.NoReassignmentInProgress) {
		t.Fatalf("cancel with no move: %v, want NO_REASSIGNMENT_IN_PROGRESS", r.Err)
	}

	var move kadm.AlterPartitionAssignmentsReq
	move.Assign("moved", 0, target)
	if res, err = adm.AlterPartitionAssignments(ctx, move); err != nil {
		t.Fatal(err)
	}
	if r := res["moved"][0]; r.Err != nil {
		t.Fatalf("move to %v: %v %s", target, r.Err, r.ErrMessage)
	}
	deadline := time.Now().Add(20 * time.Second)
	for {
		listed, err := adm.ListPartitionReassignments(ctx, kadm.TopicsSet{"moved": {0: {}}})
		if err != nil {
			t.Fatal(err)
		}
		r, moving := listed["moved"][0]
		if !moving {
			break
		}
		if !slices.Equal(r.AddingReplicas, []int32{spare}) || !slices.Equal(r.RemovingReplicas, []int32{old[0]}) || len(r.Replicas) != 3 {
			t.Fatalf("listed %+v while moving %v to %v", r, old, target)
		}
		if time.Now().After(deadline) {
			t.Fatal("the move never completed")
		}
		time.Sleep(5 * time.Millisecond) // polling the listing clients poll
	}
	for i, s := range servers {
		deadline := time.Now().Add(20 * time.Second)
		for {
			top, _ := s.Cluster().Topic("moved")
			if slices.Equal(slices.Sorted(slices.Values(top.Partitions[0].Replicas)), slices.Sorted(slices.Values(target))) {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("node %d places moved-0 on %v, want %v", i+1, top.Partitions[0].Replicas, target)
			}
			time.Sleep(5 * time.Millisecond) // polling another node's applied state
		}
	}
}

// TestServersElectPreferredLeaders: a partition led away from its
// preferred leader goes back to it when ElectLeaders reaches every
// broker; UnregisterBroker refuses an unknown node, and a node whose
// replicas have nowhere to go (RF 3 on three nodes).
func TestServersElectPreferredLeaders(t *testing.T) {
	servers := startThree(t)
	c := servers[0].Cluster()
	if _, err := c.CreateTopicReplicated("pref", 1, 3, nil, false); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	top, _ := c.Topic("pref")
	preferred := top.Partitions[0].Replicas[0]
	away := top.Partitions[0].Replicas[1]
	if err := servers[away-1].Cluster().TransferLeader(ctx, "pref", 0, away); err != nil {
		t.Fatal(err)
	}
	cl, err := kgo.NewClient(kgo.SeedBrokers(servers[0].KafkaAddr()))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	transferred := 0
	for id := int32(1); id <= 3; id++ {
		req := kmsg.NewPtrElectLeadersRequest()
		req.ElectionType = 0
		resp, err := req.RequestWith(ctx, cl.Broker(int(id)))
		if err != nil {
			t.Fatalf("elect leaders on node %d: %v", id, err)
		}
		for _, rt := range resp.Topics {
			for _, p := range rt.Partitions {
				if p.ErrorCode != 0 {
					t.Fatalf("node %d: %s-%d: %v", id, rt.Topic, p.Partition, kerr.ErrorForCode(p.ErrorCode))
				}
				transferred++
			}
		}
	}
	if transferred != 1 {
		t.Fatalf("%d partitions transferred, want 1", transferred)
	}
	deadline := time.Now().Add(20 * time.Second)
	for {
		if l, err := c.Leader("pref", 0); err == nil && l.Node == preferred {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the preferred leader %d never led again", preferred)
		}
		time.Sleep(5 * time.Millisecond) // polling another node's leadership
	}

	for _, tc := range []struct {
		node int32
		want *kerr.Error
	}{{9, kerr.BrokerIDNotRegistered}, {2, kerr.InvalidReplicationFactor}} {
		req := kmsg.NewPtrUnregisterBrokerRequest()
		req.BrokerID = tc.node
		resp, err := req.RequestWith(ctx, cl)
		if err != nil {
			t.Fatal(err)
		}
		if got := kerr.ErrorForCode(resp.ErrorCode); !errors.Is(got, tc.want) {
			t.Fatalf("unregister node %d: %v, want %v", tc.node, got, tc.want)
		}
	}
}
