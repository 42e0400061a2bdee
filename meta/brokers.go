package meta

import (
	"bytes"
	"maps"
	"net"
	"slices"

	metav1 "github.com/cairnlog/cairn/api/cairn/meta/v1"
	"google.golang.org/protobuf/proto"
)

// registerBroker adds a node (incarnation 1), gives a known node a new
// incarnation (its data was lost: it must never vote as its old self), or
// updates the addresses of the current incarnation. A new registration
// repeated with the nonce of the one that made the current incarnation (a
// retried proposal that committed twice) is that registration again: it
// answers the same incarnation instead of burning another.
func (m *Machine) registerBroker(c *metav1.RegisterBroker) (*metav1.Result, *refusal) {
	if c.NodeId < 1 || c.NodeId > NodeIDMax {
		return nil, refuse(metav1.ErrorCode_ERROR_CODE_INVALID_COMMAND, "node id %d: must be between 1 and %d", c.NodeId, NodeIDMax)
	}
	if r := checkAddresses(c.RaftAddr, c.KafkaAddr, c.HttpAddr, c.Rack); r != nil {
		return nil, r
	}
	if r := checkListeners(c.Listeners); r != nil {
		return nil, r
	}
	if len(c.RegistrationNonce) > RegistrationNonceBytesMax {
		return nil, refuse(metav1.ErrorCode_ERROR_CODE_INVALID_COMMAND, "registration nonce of %d bytes, at most %d", len(c.RegistrationNonce), RegistrationNonceBytesMax)
	}
	b, at, known := m.findBroker(c.NodeId)
	switch {
	case c.Incarnation == 0 && known && isRetry(c, b):
		// The same registration: the addresses below are its own.
	case c.Incarnation == 0 && !known:
		if len(m.state.Brokers) >= BrokersMax {
			return nil, refuse(metav1.ErrorCode_ERROR_CODE_EXHAUSTED, "%d brokers registered, the most a cluster has", BrokersMax)
		}
		b = &metav1.Broker{NodeId: c.NodeId, Incarnation: 1, State: metav1.BrokerState_BROKER_STATE_JOINING, RegistrationNonce: c.RegistrationNonce}
		m.state.Brokers = slices.Insert(m.state.Brokers, at, b)
	case c.Incarnation == 0:
		if b.Incarnation >= IncarnationMax {
			return nil, refuse(metav1.ErrorCode_ERROR_CODE_EXHAUSTED, "node %d has used all %d incarnations", c.NodeId, IncarnationMax)
		}
		b.Incarnation++
		b.State = metav1.BrokerState_BROKER_STATE_JOINING
		b.RegistrationNonce = c.RegistrationNonce
	case !known:
		return nil, refuse(metav1.ErrorCode_ERROR_CODE_UNKNOWN_BROKER, "node %d is not registered; register it with incarnation 0", c.NodeId)
	case c.Incarnation != b.Incarnation:
		return nil, refuse(metav1.ErrorCode_ERROR_CODE_STALE_INCARNATION, "node %d incarnation %d: the current one is %d",
			c.NodeId, c.Incarnation, b.Incarnation)
	case b.State == metav1.BrokerState_BROKER_STATE_REMOVED:
		return nil, refuse(metav1.ErrorCode_ERROR_CODE_INVALID_BROKER_STATE,
			"node %d incarnation %d is removed; register it with incarnation 0 for a new one", c.NodeId, b.Incarnation)
	}
	b.RaftAddr, b.KafkaAddr, b.HttpAddr, b.Rack = c.RaftAddr, c.KafkaAddr, c.HttpAddr, c.Rack
	b.Listeners = maps.Clone(c.Listeners)
	return &metav1.Result{Incarnation: b.Incarnation}, nil
}

// isRetry reports whether c repeats the registration that made b's
// current incarnation; a removed incarnation is never registered again.
func isRetry(c *metav1.RegisterBroker, b *metav1.Broker) bool {
	return len(c.RegistrationNonce) > 0 && bytes.Equal(c.RegistrationNonce, b.RegistrationNonce) &&
		b.State != metav1.BrokerState_BROKER_STATE_REMOVED
}

// checkAddresses refuses an address that is not HOST:PORT and labels past
// their bound. An empty address is allowed: a one-node cluster started
// without --raft-addr listens for no other node.
func checkAddresses(raft, kafka, http, rack string) *refusal {
	for _, a := range []struct{ name, value string }{{"raft", raft}, {"kafka", kafka}, {"http", http}} {
		if a.value == "" {
			continue
		}
		if len(a.value) > AddressBytesMax {
			return refuse(metav1.ErrorCode_ERROR_CODE_INVALID_COMMAND, "%s address of %d bytes, at most %d", a.name, len(a.value), AddressBytesMax)
		}
		if _, _, err := net.SplitHostPort(a.value); err != nil {
			return refuse(metav1.ErrorCode_ERROR_CODE_INVALID_COMMAND, "%s address %q: not HOST:PORT", a.name, a.value)
		}
	}
	if len(rack) > AddressBytesMax {
		return refuse(metav1.ErrorCode_ERROR_CODE_INVALID_COMMAND, "rack of %d bytes, at most %d", len(rack), AddressBytesMax)
	}
	return nil
}

// checkListeners refuses more than ListenersMax listeners, names and
// addresses past their bound, and an address that is not HOST:PORT.
func checkListeners(listeners map[string]string) *refusal {
	if len(listeners) > ListenersMax {
		return refuse(metav1.ErrorCode_ERROR_CODE_INVALID_COMMAND, "%d listeners, at most %d", len(listeners), ListenersMax)
	}
	for name, addr := range listeners {
		if name == "" || len(name) > AddressBytesMax || len(addr) > AddressBytesMax {
			return refuse(metav1.ErrorCode_ERROR_CODE_INVALID_COMMAND, "listener %.40q at %.40q: name empty or past %d bytes, or address past it", name, addr, AddressBytesMax)
		}
		if _, _, err := net.SplitHostPort(addr); err != nil {
			return refuse(metav1.ErrorCode_ERROR_CODE_INVALID_COMMAND, "listener %s address %q: not HOST:PORT", name, addr)
		}
	}
	return nil
}

// brokerTransitions lists the states a broker may move to from each state.
// REMOVED is final; a node comes back only as a new incarnation.
var brokerTransitions = map[metav1.BrokerState][]metav1.BrokerState{
	metav1.BrokerState_BROKER_STATE_JOINING:  {metav1.BrokerState_BROKER_STATE_ACTIVE, metav1.BrokerState_BROKER_STATE_REMOVED},
	metav1.BrokerState_BROKER_STATE_ACTIVE:   {metav1.BrokerState_BROKER_STATE_DRAINING, metav1.BrokerState_BROKER_STATE_REMOVED},
	metav1.BrokerState_BROKER_STATE_DRAINING: {metav1.BrokerState_BROKER_STATE_ACTIVE, metav1.BrokerState_BROKER_STATE_REMOVED},
}

// setBrokerState moves a broker's current incarnation along
// brokerTransitions. Asking for the state it is in is accepted and changes
// nothing, so an operator's retry succeeds.
func (m *Machine) setBrokerState(c *metav1.SetBrokerState) (*metav1.Result, *refusal) {
	b, _, ok := m.findBroker(c.NodeId)
	if !ok {
		return nil, refuse(metav1.ErrorCode_ERROR_CODE_UNKNOWN_BROKER, "node %d is not registered", c.NodeId)
	}
	if c.Incarnation != b.Incarnation {
		return nil, refuse(metav1.ErrorCode_ERROR_CODE_STALE_INCARNATION, "node %d incarnation %d: the current one is %d",
			c.NodeId, c.Incarnation, b.Incarnation)
	}
	if c.State == b.State {
		return &metav1.Result{}, nil
	}
	if !slices.Contains(brokerTransitions[b.State], c.State) {
		return nil, refuse(metav1.ErrorCode_ERROR_CODE_INVALID_BROKER_STATE, "node %d: %s cannot become %s", c.NodeId, b.State, c.State)
	}
	if c.State == metav1.BrokerState_BROKER_STATE_REMOVED {
		if ref, used := m.firstPartitionOnNode(c.NodeId); used {
			return nil, refuse(metav1.ErrorCode_ERROR_CODE_BROKER_IN_USE,
				"node %d still holds a replica of %s-%d (and maybe more); move its replicas first", c.NodeId, ref.Topic, ref.Partition)
		}
	}
	b.State = c.State
	return &metav1.Result{}, nil
}

// firstPartitionOnNode is the first partition (topics by name, partitions in
// order) listing a replica or a reassignment target on nodeID, under any
// incarnation.
func (m *Machine) firstPartitionOnNode(nodeID int32) (*metav1.PartitionRef, bool) {
	for _, t := range m.state.Topics {
		for _, p := range t.Partitions {
			if onNode(p.Replicas, nodeID) || onNode(p.TargetReplicas, nodeID) {
				return &metav1.PartitionRef{Topic: t.Name, Partition: p.Index}, true
			}
		}
	}
	return nil, false
}

func onNode(replicas []uint64, nodeID int32) bool {
	return slices.ContainsFunc(replicas, func(r uint64) bool { return NodeOf(r) == nodeID })
}

// Broker returns a copy of the broker with nodeID.
func (m *Machine) Broker(nodeID int32) (*metav1.Broker, bool) {
	b, _, ok := m.findBroker(nodeID)
	if !ok {
		return nil, false
	}
	return proto.CloneOf(b), true
}

// Brokers returns a copy of every broker, by node id, removed ones included.
func (m *Machine) Brokers() []*metav1.Broker {
	out := make([]*metav1.Broker, len(m.state.Brokers))
	for i, b := range m.state.Brokers {
		out[i] = proto.CloneOf(b)
	}
	return out
}

// RegistrationNonceBytesMax bounds RegisterBroker's registration nonce.
const RegistrationNonceBytesMax = 32
