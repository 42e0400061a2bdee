package kafka

import (
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/cairnlog/cairn/cluster"
)

// electionView is a single node's cluster in which partition e-0 has the
// leader the test sets, as a node of a cluster sees a partition between
// two leaders; asked tells the test that a handler read that leader.
type electionView struct {
	*cluster.Cluster
	mu      sync.Mutex
	leader  cluster.Leader
	changed chan struct{}
	asked   chan struct{} // gets a value (if room) at every read of e-0's leader
	// other, when set, is a second broker the tests name as leader, whose
	// pings answer what pong holds (nil: alive); pinged gets each ping.
	other  int32
	pong   error
	pinged chan int32
}

func (v *electionView) Brokers() []cluster.Broker {
	out := v.Cluster.Brokers()
	if v.other != 0 {
		out = append(out, cluster.Broker{NodeID: v.other, KafkaAddr: "127.0.0.1:9"})
	}
	return out
}

func (v *electionView) ConfirmNode(node int32) error {
	if node != v.other {
		return v.Cluster.ConfirmNode(node)
	}
	v.mu.Lock()
	err := v.pong
	v.mu.Unlock()
	select {
	case v.pinged <- node:
	default:
	}
	return err
}

func (v *electionView) setPong(err error) {
	v.mu.Lock()
	defer v.mu.Unlock()
	v.pong = err
}

func (v *electionView) Leader(topic string, index int32) (cluster.Leader, error) {
	if topic != "e" || index != 0 {
		return v.Cluster.Leader(topic, index)
	}
	v.mu.Lock()
	defer v.mu.Unlock()
	select {
	case v.asked <- struct{}{}:
	default:
	}
	return v.leader, nil
}

func (v *electionView) LeadersChanged() <-chan struct{} {
	v.mu.Lock()
	defer v.mu.Unlock()
	return v.changed
}

func (v *electionView) set(l cluster.Leader) {
	v.mu.Lock()
	defer v.mu.Unlock()
	v.leader = l
	close(v.changed)
	v.changed = make(chan struct{})
}

// drain forgets the reads so far.
func (v *electionView) drain() {
	select {
	case <-v.asked:
	default:
	}
}

// waitAsked waits until a handler has read e-0's leader.
func (v *electionView) waitAsked(t *testing.T) {
	t.Helper()
	select {
	case <-v.asked:
	case <-time.After(10 * time.Second):
		t.Fatal("no handler read the leader of e-0")
	}
}

func startElection(t *testing.T, initial cluster.Leader) (*testServer, *electionView) {
	t.Helper()
	var v *electionView
	ts := startServerView(t, func(c *cluster.Cluster) clusterView {
		v = &electionView{Cluster: c, leader: initial, changed: make(chan struct{}), asked: make(chan struct{}, 1),
			other: otherNode, pinged: make(chan int32, 16)}
		return v
	})
	adminCreate(t, ts, "e", 1, nil)
	return ts, v
}

// TestMetadataWaitsForTheElection: Metadata asked while e-0 has no leader
// is answered once the election gives it one, naming the new leader,
// rather than at once with LEADER_NOT_AVAILABLE (which would send a
// franz-go client away for 5 s); so is Metadata asked while the leader's
// node is disconnected; a leader that never comes is answered as
// unavailable after the bound.
func TestMetadataWaitsForTheElection(t *testing.T) {
	ts, v := startElection(t, cluster.Leader{Node: -1, Epoch: -1})
	self := ts.cluster.NodeID()
	rc := ts.dial(t)
	v.drain()
	req := metadataRequest(12, "e")
	corr := rc.send(req)
	v.waitAsked(t) // answered now, it would be leaderless
	v.set(cluster.Leader{Node: self, Epoch: 3, Local: true})
	mp := rc.receive(req, corr).(*kmsg.MetadataResponse).Topics[0].Partitions[0]
	if mp.ErrorCode != 0 || mp.Leader != self || mp.LeaderEpoch != 3 {
		t.Fatalf("metadata: %s leader %d epoch %d, want leader %d epoch 3", codeOf(mp.ErrorCode), mp.Leader, mp.LeaderEpoch, self)
	}

	// A leader whose node this one lost its connection to may be dead:
	// the answer waits to see (here, a new leader in a later epoch).
	v.set(cluster.Leader{Node: self, Epoch: 3, Disconnected: true})
	corr = rc.send(req)
	v.waitAsked(t)
	v.set(cluster.Leader{Node: self, Epoch: 4, Local: true})
	mp = rc.receive(req, corr).(*kmsg.MetadataResponse).Topics[0].Partitions[0]
	if mp.ErrorCode != 0 || mp.Leader != self || mp.LeaderEpoch != 4 {
		t.Fatalf("metadata after a lost connection: %s leader %d epoch %d, want leader %d epoch 4", codeOf(mp.ErrorCode), mp.Leader, mp.LeaderEpoch, self)
	}

	v.set(cluster.Leader{Node: -1, Epoch: -1})
	mp = rc.roundTrip(req).(*kmsg.MetadataResponse).Topics[0].Partitions[0]
	if mp.ErrorCode != kerr.LeaderNotAvailable.Code || mp.Leader != -1 {
		t.Fatalf("metadata with no election ending: %s leader %d, want LEADER_NOT_AVAILABLE", codeOf(mp.ErrorCode), mp.Leader)
	}
}

// otherNode is the second broker of electionView.
const otherNode = 7

// TestMetadataConfirmsARemoteLeader: before naming a leader on another
// node, Metadata pings that node. A node that answers is named at once; a
// node that does not (killed a moment ago, while its connection still
// looks up here) is taken as disconnected, and the answer waits for the
// election, naming the new leader rather than the dead one.
func TestMetadataConfirmsARemoteLeader(t *testing.T) {
	ts, v := startElection(t, cluster.Leader{Node: otherNode, Epoch: 3})
	self := ts.cluster.NodeID()
	rc := ts.dial(t)
	req := metadataRequest(12, "e")
	mp := rc.roundTrip(req).(*kmsg.MetadataResponse).Topics[0].Partitions[0]
	if mp.ErrorCode != 0 || mp.Leader != otherNode || mp.LeaderEpoch != 3 {
		t.Fatalf("metadata with a live remote leader: %s leader %d epoch %d, want leader %d epoch 3", codeOf(mp.ErrorCode), mp.Leader, mp.LeaderEpoch, otherNode)
	}
	if len(v.pinged) == 0 {
		t.Fatal("the remote leader was named without a ping")
	}

	v.setPong(errors.New("no pong"))
	for len(v.pinged) > 0 {
		<-v.pinged
	}
	v.drain()
	corr := rc.send(req)
	select {
	case <-v.pinged:
	case <-time.After(10 * time.Second):
		t.Fatal("the remote leader was not pinged")
	}
	v.set(cluster.Leader{Node: self, Epoch: 4, Local: true})
	mp = rc.receive(req, corr).(*kmsg.MetadataResponse).Topics[0].Partitions[0]
	if mp.ErrorCode != 0 || mp.Leader != self || mp.LeaderEpoch != 4 {
		t.Fatalf("metadata with a remote leader not answering: %s leader %d epoch %d, want the new leader %d epoch 4", codeOf(mp.ErrorCode), mp.Leader, mp.LeaderEpoch, self)
	}
}

// TestProduceWaitsForANewLeaderToBeReady: a produce reaching the node
// that won e-0's election before its leadership is ready waits for it
// and is appended, rather than refused as NOT_LEADER_OR_FOLLOWER.
func TestProduceWaitsForANewLeaderToBeReady(t *testing.T) {
	ts, v := startElection(t, cluster.Leader{Node: -1, Epoch: -1})
	self := ts.cluster.NodeID()
	v.set(cluster.Leader{Node: self, Epoch: 3})
	rc := ts.dial(t)
	v.drain()
	req := kmsg.NewPtrProduceRequest()
	req.SetVersion(9)
	req.Acks, req.TimeoutMillis = -1, 5000
	rt := kmsg.NewProduceRequestTopic()
	rt.Topic = "e"
	rp := kmsg.NewProduceRequestTopicPartition()
	rp.Records = oneRecord("v")
	rt.Partitions = append(rt.Partitions, rp)
	req.Topics = append(req.Topics, rt)
	corr := rc.send(req)
	v.waitAsked(t)
	v.set(cluster.Leader{Node: self, Epoch: 3, Local: true})
	sp := rc.receive(req, corr).(*kmsg.ProduceResponse).Topics[0].Partitions[0]
	if sp.ErrorCode != 0 || sp.BaseOffset != 0 {
		t.Fatalf("produce: %s base %d, want appended at 0", codeOf(sp.ErrorCode), sp.BaseOffset)
	}
}
