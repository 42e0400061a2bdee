package cluster

import (
	"errors"
	"fmt"
	"testing"

	"github.com/cairnlog/cairn/storage/vfs"
)

func TestSingleNodeLeadsEveryOpenPartition(t *testing.T) {
	c := openCluster(t, vfs.NewMem())
	if _, err := c.CreateTopic("orders", 2, nil, false); err != nil {
		t.Fatal(err)
	}
	for i := range int32(2) {
		l, err := c.Leader("orders", i)
		if err != nil {
			t.Fatal(err)
		}
		if l.Node != c.NodeID() || !l.Local || l.Epoch < 0 {
			t.Fatalf("partition %d: leader %+v on node %d", i, l, c.NodeID())
		}
		if got := fmt.Sprint(c.InSync("orders", i)); got != fmt.Sprint([]int32{c.NodeID()}) {
			t.Fatalf("partition %d: in sync %s", i, got)
		}
		topic, _ := c.Topic("orders")
		if s := topic.Partitions[i]; s.Group == 0 || fmt.Sprint(s.Replicas) != fmt.Sprint([]int32{c.NodeID()}) {
			t.Fatalf("partition %d: group %d replicas %v", i, s.Group, s.Replicas)
		}
	}
	if _, err := c.Leader("orders", 2); !errors.Is(err, ErrUnknownTopic) {
		t.Fatalf("partition past the count: %v", err)
	}
	if _, err := c.Leader("missing", 0); !errors.Is(err, ErrUnknownTopic) {
		t.Fatalf("unknown topic: %v", err)
	}
	bs := c.Brokers()
	if len(bs) != 1 || bs[0].NodeID != c.NodeID() {
		t.Fatalf("brokers %+v", bs)
	}
}

func TestBrokerHostPort(t *testing.T) {
	host, port, err := Broker{NodeID: 2}.HostPort("127.0.0.1:9092")
	if err != nil || host != "127.0.0.1" || port != 9092 {
		t.Fatalf("%s %d %v", host, port, err)
	}
	for _, bad := range []string{"", "127.0.0.1", "127.0.0.1:99999", "h:x"} {
		if _, _, err := (Broker{}).HostPort(bad); err == nil {
			t.Fatalf("%q accepted", bad)
		}
	}
}

func TestLeadersChangedOnTopicChanges(t *testing.T) {
	c := openCluster(t, vfs.NewMem())
	ch := c.LeadersChanged()
	select {
	case <-ch:
		t.Fatal("changed before any change")
	default:
	}
	if _, err := c.CreateTopic("a", 1, nil, false); err != nil {
		t.Fatal(err)
	}
	select {
	case <-ch:
	default:
		t.Fatal("a topic creation did not signal")
	}
	if c.ControllerID() != c.NodeID() {
		t.Fatalf("controller %d on a single node %d", c.ControllerID(), c.NodeID())
	}
}

func TestSingleNodeReplicationFactor(t *testing.T) {
	c := openCluster(t, vfs.NewMem())
	for _, rf := range []int32{-1, 1} {
		if _, err := c.CreateTopicReplicated(fmt.Sprint("rf", rf+1), 1, rf, nil, false); err != nil {
			t.Fatalf("rf %d: %v", rf, err)
		}
	}
	for _, rf := range []int32{0, 2, 3, -2} {
		if _, err := c.CreateTopicReplicated("bad", 1, rf, nil, false); !errors.Is(err, ErrInvalidReplicationFactor) {
			t.Fatalf("rf %d: %v", rf, err)
		}
	}
}
