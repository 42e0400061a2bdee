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
