package kafka

import (
	"cmp"
	"errors"
	"fmt"
	"net"
	"slices"

	"github.com/cairnlog/cairn/cluster"
	"github.com/cairnlog/cairn/partition"
)

// clusterView is what the handlers read of where partitions live and how
// clients reach the nodes. It is *cluster.Cluster in a server; the tests put
// a partition's leadership on another node, or on none, which a single-node
// cluster cannot show.
type clusterView interface {
	Topics() []*cluster.Topic
	Topic(name string) (*cluster.Topic, bool)
	TopicByID(id [16]byte) (*cluster.Topic, bool)
	Partition(topic string, index int32) (*partition.Partition, error)
	Leader(topic string, index int32) (cluster.Leader, error)
	// LeadersChanged is closed at the next change of a leader (Metadata
	// and Produce wait on it, bounded, for an election to end).
	LeadersChanged() <-chan struct{}
	InSync(topic string, index int32) []int32
	// ConfirmNode checks, by a bounded round trip, that another node
	// named leader is alive right now (Metadata asks before naming it).
	ConfirmNode(node int32) error
	Brokers() []cluster.Broker
	ControllerID() int32
}

// leaderPartition returns the local partition of topic-index when this node
// leads it, checking the client's current leader epoch first (KIP-320;
// requested < 0 when the request has none), in Kafka's order: unknown
// topic or partition, then the epoch (FENCED_LEADER_EPOCH,
// UNKNOWN_LEADER_EPOCH), then NOT_LEADER_OR_FOLLOWER, then the local copy's
// own failure. The leader comes back with any error, for the responses
// that tell clients where the partition went.
func (s *Server) leaderPartition(topic string, index, requested int32) (*partition.Partition, cluster.Leader, error) {
	l, err := s.view.Leader(topic, index)
	if err != nil {
		return nil, l, err
	}
	if l.Epoch >= 0 {
		if err := checkLeaderEpoch(l.Epoch, requested); err != nil {
			return nil, l, err
		}
	}
	p, perr := s.view.Partition(topic, index)
	if !l.Local {
		// A local copy that failed is a storage error here, as in Kafka
		// (its log directory is offline), whoever leads.
		if errors.Is(perr, cluster.ErrPartitionOffline) {
			return nil, l, perr
		}
		return nil, l, notLeader(topic, index, l)
	}
	return p, l, perr
}

// notLeader is NOT_LEADER_OR_FOLLOWER for a partition this node does not
// lead, naming the leader it knows of.
func notLeader(topic string, index int32, l cluster.Leader) error {
	if l.Node < 0 {
		return fmt.Errorf("%w: %s-%d has no leader at the moment", cluster.ErrNotLeader, topic, index)
	}
	return fmt.Errorf("%w: %s-%d is led by node %d (epoch %d)", cluster.ErrNotLeader, topic, index, l.Node, l.Epoch)
}

// endpoint is a broker as Metadata and DescribeCluster give it to clients.
type endpoint struct {
	node int32
	host string
	port int32
	rack *string
}

// endpoints lists the brokers clients of listener l can reach, by node
// id, at their addresses for l (as Kafka answers each client with its own
// listener's addresses). This node is always among them, at its
// registered address or, when it has none (a single node), at the address
// l advertises. Another broker whose address is unusable, or that has no
// listener of l's name, is left out, with a log line the first time: a
// client given a bad address would fail on it rather than on the
// partitions it leads, which Metadata reports without a leader instead.
func (s *Server) endpoints(l *listener) []endpoint {
	self := s.cluster.NodeID()
	brokers := s.view.Brokers()
	out := make([]endpoint, 0, len(brokers)+1)
	selfListed := false
	for _, b := range brokers {
		e, ok := s.endpointOf(b, l)
		if !ok {
			continue
		}
		selfListed = selfListed || b.NodeID == self
		out = append(out, e)
	}
	if !selfListed {
		out = append(out, endpoint{node: self, host: l.host, port: l.port})
		slices.SortFunc(out, func(a, b endpoint) int { return cmp.Compare(a.node, b.node) })
	}
	return out
}

// endpointOf is where clients of listener l reach broker b: this node at
// its registered address for l, or at the address l advertises when it
// has none (a single node) or an unusable one; another broker at its
// registered address for l, or false when that is missing or unusable
// (logged once).
func (s *Server) endpointOf(b cluster.Broker, l *listener) (endpoint, bool) {
	self := b.NodeID == s.cluster.NodeID()
	e := endpoint{node: b.NodeID}
	if b.Rack != "" {
		rack := b.Rack
		e.rack = &rack
	}
	addr := b.ListenerAddr(l.Name)
	if self && addr == "" {
		e.host, e.port = l.host, l.port
		return e, true
	}
	var err error
	if e.host, e.port, err = reachable(b, l.Name, addr); err != nil {
		s.logBadAddress(b, l.Name, err)
		if !self {
			return endpoint{}, false
		}
		e.host, e.port = l.host, l.port
	}
	return e, true
}

// reachable is a broker's host and port for listener name at addr, or why
// a client could not connect there: no such listener, a wildcard or empty
// host, or port 0 (a listen address).
func reachable(b cluster.Broker, name, addr string) (string, int32, error) {
	if addr == "" {
		return "", 0, fmt.Errorf("broker %d has no listener %s", b.NodeID, name)
	}
	host, port, err := b.HostPort(addr)
	if err != nil {
		return "", 0, err
	}
	if ip := net.ParseIP(host); host == "" || (ip != nil && ip.IsUnspecified()) || port == 0 {
		return "", 0, fmt.Errorf("broker %d kafka address %q is not one clients can connect to", b.NodeID, addr)
	}
	return host, port, nil
}

// badAddress is a broker's address for a listener, logged as unusable.
type badAddress struct {
	node           int32
	listener, addr string
}

// logBadAddress logs a broker's unusable Kafka address once per address.
func (s *Server) logBadAddress(b cluster.Broker, listener string, err error) {
	key := badAddress{node: b.NodeID, listener: listener, addr: b.ListenerAddr(listener)}
	if _, seen := s.badAddrs.LoadOrStore(key, struct{}{}); !seen {
		s.logger.Warn("broker left out of metadata: its Kafka address is unusable", "node", b.NodeID, "listener", listener, "err", err)
	}
}

// endpointSet is the node ids of endpoints.
func endpointSet(es []endpoint) map[int32]bool {
	set := make(map[int32]bool, len(es))
	for _, e := range es {
		set[e.node] = true
	}
	return set
}

// committable reports whether group offsets may be committed or deleted
// for topic-index: a partition open here, or one with no replica on this
// node (the group's coordinator need not hold the partitions its members
// consume). An unknown or failed partition is not, as before replication.
func (s *Server) committable(topic string, index int32) bool {
	_, err := s.view.Partition(topic, index)
	return err == nil || errors.Is(err, cluster.ErrNotLeader)
}
