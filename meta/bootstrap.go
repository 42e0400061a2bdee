package meta

import (
	"cmp"
	"fmt"
	"slices"

	metav1 "github.com/cairnlog/cairn/api/cairn/meta/v1"
	"google.golang.org/protobuf/proto"
)

// Bootstrap is the metadata group's first state, the snapshot its initial
// voters start from: the given brokers ACTIVE at incarnation 1, no topics,
// applied up to index (the bootstrap snapshot's index).
func Bootstrap(clusterID string, brokers []*metav1.Broker, index uint64) (*metav1.State, error) {
	st := &metav1.State{FormatVersion: FormatVersion, ClusterId: clusterID, NextGroupId: 1, AppliedIndex: index}
	for _, b := range brokers {
		b = proto.CloneOf(b)
		b.Incarnation, b.State = 1, metav1.BrokerState_BROKER_STATE_ACTIVE
		st.Brokers = append(st.Brokers, b)
	}
	slices.SortFunc(st.Brokers, func(a, b *metav1.Broker) int { return cmp.Compare(a.NodeId, b.NodeId) })
	if err := CheckState(st); err != nil {
		return nil, fmt.Errorf("bootstrap: %w", err)
	}
	return st, nil
}
