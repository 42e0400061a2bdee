package eventstore

import (
	"errors"
	"fmt"

	"connectrpc.com/connect"

	"github.com/cairnlog/cairn/cluster"
)

// placement is what the service asks the cluster about where partitions are
// led; *cluster.Cluster implements it, and tests put another placement in
// front of a single node.
type placement interface {
	// Leader is the partition's leader as this node knows it.
	Leader(topic string, index int32) (cluster.Leader, error)
	// Brokers lists the nodes and their HTTP addresses.
	Brokers() []cluster.Broker
	// NodeID is this node's id.
	NodeID() int32
	// LeadersChanged is closed at the next change of a leader.
	LeadersChanged() <-chan struct{}
}

var _ placement = (*cluster.Cluster)(nil)

// route is where a call about some partitions is served: here, or by the
// node at addr, which leads them all.
type route struct {
	of    target // what is served (set by routeOf)
	local bool
	node  int32
	addr  string // HOST:PORT of node's event-store API
}

// partitionName names a partition in messages, as Kafka tools do.
func partitionName(topic string, index int32) string {
	return fmt.Sprintf("%s-%d", topic, index)
}

// notLeaderMessage says that this node does not lead the partition, and who
// does as far as it knows, so an operator reading a client's error sees
// where the call should have gone.
func notLeaderMessage(what string, l cluster.Leader, addr string) string {
	if l.Node < 0 {
		return fmt.Sprintf("not the leader of %s; no leader known", what)
	}
	if addr == "" {
		addr = "an unknown address"
	}
	return fmt.Sprintf("not the leader of %s; leader node %d at %s", what, l.Node, addr)
}

// errNotLeader is the retriable answer of a node that cannot serve a call
// about what (a partition, or a topic's partitions) nor forward it.
func errNotLeader(what string, l cluster.Leader, addr string) *connect.Error {
	return connect.NewError(connect.CodeUnavailable, errors.New(notLeaderMessage(what, l, addr)))
}

// httpAddrOf is the event-store address of node, "" when the node is not a
// known broker or has not registered one.
func httpAddrOf(brokers []cluster.Broker, node int32) string {
	for _, b := range brokers {
		if b.NodeID == node {
			return b.HTTPAddr
		}
	}
	return ""
}

// routeTo decides where a call about what, led by l, is served (pure). A
// call already forwarded once is never forwarded again, so two nodes that
// disagree about a leader answer UNAVAILABLE instead of passing a call back
// and forth; neither is a call forwarded to this node itself (elected but
// not ready yet) or to a node without an address.
func routeTo(what string, l cluster.Leader, self int32, brokers []cluster.Broker, forwarded bool) (route, error) {
	if l.Local {
		return route{local: true, node: self}, nil
	}
	addr := httpAddrOf(brokers, l.Node)
	if l.Node < 0 || l.Node == self || addr == "" || forwarded {
		return route{}, errNotLeader(what, l, addr)
	}
	return route{node: l.Node, addr: addr}, nil
}

// topicRoute decides where a call over partitions of topic, led by
// leaders (leaders[k] leads partitions[k]), is served (pure): here when all
// are led here, else by the one node that leads them all. Partitions led by
// different nodes have no single node to serve them: UNAVAILABLE.
func topicRoute(topic string, partitions []int32, leaders []cluster.Leader, self int32, brokers []cluster.Broker, forwarded bool) (route, error) {
	r := route{local: true, node: self}
	for k, l := range leaders {
		next, err := routeTo(partitionName(topic, partitions[k]), l, self, brokers, forwarded)
		if err != nil {
			return route{}, err
		}
		if k > 0 && (next.local != r.local || next.node != r.node) {
			return route{}, connect.NewError(connect.CodeUnavailable, fmt.Errorf(
				"partitions of topic %q are led by different nodes (%s by node %d, %s by node %d)",
				topic, partitionName(topic, partitions[0]), r.node, partitionName(topic, partitions[k]), next.node))
		}
		r = next
	}
	return r, nil
}

// target is what a call reads or writes: one partition of a topic, or
// (index -1) several of its partitions.
type target struct {
	topic      string
	index      int32
	partitions []int32 // for index -1, ascending
}

func (t target) String() string {
	if t.index < 0 {
		return fmt.Sprintf("topic %q", t.topic)
	}
	return partitionName(t.topic, t.index)
}

// routeOf decides where a call about t is served. On a single node every
// open partition is led here, and the answer is local without looking
// further.
func (s *Service) routeOf(t target, forwarded bool) (route, error) {
	r, err := s.routeOfTarget(t, forwarded)
	r.of = t
	return r, err
}

func (s *Service) routeOfTarget(t target, forwarded bool) (route, error) {
	self := s.placement.NodeID()
	if t.index >= 0 {
		l, err := s.leaderOf(t.topic, t.index)
		if err != nil {
			return route{}, err
		}
		if l.Local {
			return route{local: true, node: self}, nil
		}
		return routeTo(t.String(), l, self, s.placement.Brokers(), forwarded)
	}
	leaders := make([]cluster.Leader, len(t.partitions))
	local := true
	for k, i := range t.partitions {
		l, err := s.leaderOf(t.topic, i)
		if err != nil {
			return route{}, err
		}
		leaders[k], local = l, local && l.Local
	}
	if local {
		return route{local: true, node: self}, nil
	}
	return topicRoute(t.topic, t.partitions, leaders, self, s.placement.Brokers(), forwarded)
}

// leaderOf is a partition's leader. A partition this node holds but cannot
// serve because it is offline (storage failed) answers with that error, as
// on a single node, rather than "no leader known".
func (s *Service) leaderOf(topic string, index int32) (cluster.Leader, error) {
	l, err := s.placement.Leader(topic, index)
	if err != nil {
		return l, toConnectError(err)
	}
	if !l.Local && l.Node < 0 {
		if _, perr := s.cluster.Partition(topic, index); errors.Is(perr, cluster.ErrPartitionOffline) {
			return l, toConnectError(perr)
		}
	}
	return l, nil
}

// partitionError is the API error of err from a partition this node was
// serving: losing the leadership mid-call (ErrNotLeader) is UNAVAILABLE,
// naming the leader now known, so the client retries and lands there.
func (s *Service) partitionError(topic string, index int32, err error) error {
	if !errors.Is(err, cluster.ErrNotLeader) {
		return toConnectError(err)
	}
	l, lerr := s.placement.Leader(topic, index)
	if lerr != nil {
		l = cluster.Leader{Node: -1, Epoch: -1}
	}
	return errNotLeader(partitionName(topic, index), l, httpAddrOf(s.placement.Brokers(), l.Node))
}

// stillLeading checks, for a subscription served here, that this node still
// leads t: after a leader change the subscription ends with UNAVAILABLE and
// its client resubscribes from its last position, landing on the new leader.
// Other errors (a deleted topic) are left to the partitions to report, as
// on a single node.
func (s *Service) stillLeading(t target) error {
	if _, err := s.routeOf(t, true); connect.CodeOf(err) == connect.CodeUnavailable {
		return err
	}
	return nil
}

// stillLedBy returns the check of a relayed subscription: what it reads is
// still led by the node r it is relayed from.
func (s *Service) stillLedBy(r route) func() error {
	t := r.of
	return func() error {
		now, err := s.routeOf(t, false)
		switch {
		case err != nil && connect.CodeOf(err) != connect.CodeUnavailable:
			return nil // the leader's own stream reports it
		case err != nil:
			return connect.NewError(connect.CodeUnavailable, fmt.Errorf(
				"the leader of %s changed from node %d: %s; resubscribe from the last position received", t, r.node, connectMessage(err)))
		case now.local || now.node != r.node:
			return connect.NewError(connect.CodeUnavailable, fmt.Errorf(
				"the leader of %s changed from node %d to node %d; resubscribe from the last position received", t, r.node, now.node))
		}
		return nil
	}
}

// connectMessage is err's message without its code.
func connectMessage(err error) string {
	var ce *connect.Error
	if errors.As(err, &ce) {
		return ce.Message()
	}
	return err.Error()
}
