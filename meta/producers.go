package meta

import (
	"math"

	metav1 "github.com/cairnlog/cairn/api/cairn/meta/v1"
)

// ProducerIDBlock is how many producer ids a node asks for at a time (as
// cluster.producerIDBlock reserves them on one node today): one metadata
// entry per thousand InitProducerId requests.
const ProducerIDBlock = 1000

// allocateProducerIDs hands a node the next count producer ids; no id is
// ever handed out twice in the cluster.
func (m *Machine) allocateProducerIDs(c *metav1.AllocateProducerIDs) (*metav1.Result, *refusal) {
	b, _, ok := m.findBroker(c.NodeId)
	if !ok {
		return nil, refuse(metav1.ErrorCode_ERROR_CODE_UNKNOWN_BROKER, "node %d is not registered", c.NodeId)
	}
	if b.State == metav1.BrokerState_BROKER_STATE_REMOVED {
		return nil, refuse(metav1.ErrorCode_ERROR_CODE_INVALID_BROKER_STATE, "node %d is removed", c.NodeId)
	}
	if c.Count < 1 || c.Count > ProducerIDsPerAllocationMax {
		return nil, refuse(metav1.ErrorCode_ERROR_CODE_INVALID_COMMAND, "%d producer ids: must be between 1 and %d", c.Count, ProducerIDsPerAllocationMax)
	}
	first := m.state.NextProducerId
	if first > math.MaxInt64-int64(c.Count) {
		return nil, refuse(metav1.ErrorCode_ERROR_CODE_EXHAUSTED, "producer ids exhausted at %d", first)
	}
	m.state.NextProducerId += int64(c.Count)
	return &metav1.Result{FirstProducerId: first}, nil
}
