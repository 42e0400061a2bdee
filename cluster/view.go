package cluster

import (
	"fmt"
	"net"
	"slices"
	"sort"
	"strconv"
	"time"

	metav1 "github.com/cairnlog/cairn/api/cairn/meta/v1"
	"github.com/cairnlog/cairn/meta"
	"github.com/cairnlog/cairn/replica"
)

// What the front ends (Kafka, the event store, the group coordinator) see
// of where partitions live: their replicas and leaders, and the brokers'
// addresses. On a single node every partition is led here; on a cluster it
// is the meta group's placement and the leader table.

// Leader is what this node knows of a partition's leader.
type Leader struct {
	// Node is the leader's node id, -1 when unknown (an election is on).
	Node int32
	// Epoch is the leader epoch (the Raft term of a replicated
	// partition), -1 when unknown.
	Epoch int32
	// Local: this node leads the partition and serves it (a replicated
	// leader once its term's first entry applied), so Partition appends.
	Local bool
	// Disconnected: the leader is another node whose connection to this
	// one is down, neither back nor found gone yet: it may have just died
	// (Metadata waits a moment before naming it).
	Disconnected bool
}

// Broker is one node as clients reach it.
type Broker struct {
	NodeID int32
	// KafkaAddr and HTTPAddr are HOST:PORT; empty when the node has not
	// registered them (on a single node, the servers fill in their own).
	KafkaAddr string
	HTTPAddr  string
	Rack      string
	// Listeners are the node's Kafka listeners' advertised addresses by
	// listener name; empty for a node with one listener that registered
	// only KafkaAddr.
	Listeners map[string]string
}

// ListenerAddr is where a client of listener name reaches the broker: its
// address for that listener, KafkaAddr when it registered no listeners,
// or "" when it has no such listener.
func (b Broker) ListenerAddr(name string) string {
	if len(b.Listeners) == 0 {
		return b.KafkaAddr
	}
	return b.Listeners[name]
}

// HostPort splits a broker's Kafka address addr (KafkaAddr, or one of
// its Listeners) for a Metadata response.
func (b Broker) HostPort(addr string) (string, int32, error) {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return "", 0, fmt.Errorf("broker %d kafka address %q: %w", b.NodeID, addr, err)
	}
	p, err := strconv.ParseUint(port, 10, 16)
	if err != nil {
		return "", 0, fmt.Errorf("broker %d kafka address %q: %w", b.NodeID, addr, err)
	}
	return host, int32(p), nil
}

// Leader reports the leader of a partition as this node knows it, or
// ErrUnknownTopic.
func (c *Cluster) Leader(topic string, index int32) (Leader, error) {
	t, ok := c.Topic(topic)
	if !ok || index < 0 || int(index) >= len(t.Partitions) {
		return Leader{Node: -1, Epoch: -1}, fmt.Errorf("%w: %s-%d", ErrUnknownTopic, topic, index)
	}
	return c.slotLeader(t.Partitions[index]), nil
}

// slotLeader is the leader of one partition slot. A single node leads
// every open partition; an offline one has none. On a cluster, a local
// replica's view is its own last leadership, and a partition with no
// replica here is the leader table's; a leader on a node the transport
// found gone (its process ended) is unknown: an election is on, and
// clients told of the dead node would wait for their next metadata
// refresh to learn of the new one. So is this node's leadership of a
// group it is handing off (HandOff): a client told of this node would be
// refused by it until that refresh.
func (c *Cluster) slotLeader(s *PartitionSlot) Leader {
	unknown := Leader{Node: -1, Epoch: -1}
	switch {
	case !c.cfg.clustered() && s.Partition != nil:
		return Leader{Node: c.cfg.NodeID, Epoch: s.Partition.LeaderEpoch(), Local: true}
	case s.Partition != nil:
		l, handing := c.leadershipHanding(s.Group)
		if l.Leader == 0 || c.replicaGone(l.Leader) || handing && c.isSelf(l.Leader) {
			return unknown
		}
		node := meta.NodeOf(l.Leader)
		return Leader{Node: node, Epoch: int32(l.Term), Local: l.Ready && c.isSelf(l.Leader), Disconnected: c.nodeDisconnected(node)}
	case c.cfg.clustered() && isNoReplica(s):
		node, _, term, ok := c.node.leaders.Leader(s.Group)
		if !ok || c.nodeGone(int32(node)) {
			return unknown
		}
		return Leader{Node: int32(node), Epoch: int32(term), Disconnected: c.nodeDisconnected(int32(node))}
	}
	return unknown
}

// nodeDisconnected reports whether node is another node whose transport
// connection is down.
func (c *Cluster) nodeDisconnected(node int32) bool {
	return node != c.cfg.NodeID && !c.node.tcp.PeerConnected(uint64(node))
}

// leaderPingTimeout bounds ConfirmNode's round trip: a loopback one
// takes some 50 µs, one across a datacenter about 1 ms, and a live node
// busy with a large write still answers well within it.
const leaderPingTimeout = 100 * time.Millisecond

// ConfirmNode checks that node, named leader by this node's view, is alive
// right now: a ping over the node-to-node transport, answered by the
// peer's reader, within leaderPingTimeout. A killed node's connection may
// still look up here for a few milliseconds (the kernel closes its
// listener and its sockets in some order), and a client told of it would
// wait for its next metadata refresh to learn of the new leader. An error
// means the node did not answer: take it as disconnected. This node
// answers for itself, and a single node has no other.
func (c *Cluster) ConfirmNode(node int32) error {
	if node == c.cfg.NodeID || !c.cfg.clustered() {
		return nil
	}
	if err := c.node.tcp.Ping(uint64(node), leaderPingTimeout); err != nil {
		return fmt.Errorf("confirm node %d: %w", node, err)
	}
	return nil
}

// InSync lists the node ids of a partition's replicas this node counts in
// sync, sorted: on a single node, the node itself while the partition is
// open. On a cluster the leader counts the replicas whose Raft progress
// is recently active and caught up to the commit index; another node,
// not knowing the progress, the replicas on nodes its leader table sees
// alive.
func (c *Cluster) InSync(topic string, index int32) []int32 {
	t, ok := c.Topic(topic)
	if !ok || index < 0 || int(index) >= len(t.Partitions) {
		return nil
	}
	s := t.Partitions[index]
	switch {
	case !c.cfg.clustered() && s.Partition != nil:
		return []int32{c.cfg.NodeID}
	case !c.cfg.clustered():
		return nil
	case c.slotLeader(s).Local:
		return c.caughtUp(s.Group)
	}
	var out []int32
	for _, n := range s.Replicas {
		if c.node.leaders.Alive(uint64(n)) {
			out = append(out, n)
		}
	}
	slices.Sort(out)
	return out
}

// caughtUp is the leader's view of group's replicas in sync, read on the
// group's worker: itself, and every replica recently active whose log
// matches up to the commit index.
func (c *Cluster) caughtUp(group uint64) []int32 {
	var out []int32
	err := c.sched.Do(group, func(r *replica.Replica) {
		st := r.Status()
		for id, pr := range st.Progress {
			// A learner (a replica a move is adding) is not a replica yet.
			if id == st.ID || (!pr.IsLearner && pr.RecentActive && pr.Match >= st.GetCommit()) {
				out = append(out, meta.NodeOf(id))
			}
		}
	})
	if err != nil {
		return nil // the group just left the scheduler: nothing is known in sync
	}
	slices.Sort(out)
	return out
}

// Brokers lists the nodes of the cluster by node id: on a cluster every
// registered node not removed, with the addresses it registered.
func (c *Cluster) Brokers() []Broker {
	st := c.ctl.State()
	out := make([]Broker, 0, len(st.Brokers))
	for _, b := range st.Brokers {
		if b.State == metav1.BrokerState_BROKER_STATE_REMOVED {
			continue
		}
		id := b.NodeId
		if !c.cfg.clustered() && len(st.Brokers) == 1 {
			id = c.cfg.NodeID // a single node's meta id is max(NodeID, 1)
		}
		out = append(out, Broker{NodeID: id, KafkaAddr: b.KafkaAddr, HTTPAddr: b.HttpAddr, Rack: b.Rack, Listeners: b.Listeners})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].NodeID < out[j].NodeID })
	return out
}

// replicaNodes is the node ids clients see of a partition's replica ids,
// in their order. A single node's meta id is max(NodeID, 1), and clients
// see NodeID.
func (c *Cluster) replicaNodes(replicas []uint64) []int32 {
	out := make([]int32, len(replicas))
	for i, r := range replicas {
		out[i] = meta.NodeOf(r)
		if out[i] == c.cfg.metaNodeID() {
			out[i] = c.cfg.NodeID
		}
	}
	return out
}

// ControllerID is the node id of the metadata group's leader as this node
// knows it, -1 when unknown.
func (c *Cluster) ControllerID() int32 {
	if !c.cfg.clustered() {
		return c.cfg.NodeID // a single node leads its own metadata group
	}
	l := c.ctl.Leadership()
	if l.Leader == 0 || c.replicaGone(l.Leader) {
		return -1
	}
	return meta.NodeOf(l.Leader)
}

// LeadersChanged returns a channel closed at the next change of the topics
// or of a partition's leader as this node knows it: a coordinator that
// loads what this node leads watches it, and then reads Leader again.
func (c *Cluster) LeadersChanged() <-chan struct{} {
	c.watchMu.Lock()
	defer c.watchMu.Unlock()
	return c.leadersChanged
}

// signalLeaders wakes the watchers of LeadersChanged.
func (c *Cluster) signalLeaders() {
	c.watchMu.Lock()
	defer c.watchMu.Unlock()
	c.signalLeadersLocked()
}

// signalLeadersLocked wakes the watchers of LeadersChanged; callers hold
// watchMu.
func (c *Cluster) signalLeadersLocked() {
	close(c.leadersChanged)
	c.leadersChanged = make(chan struct{})
}
