package eventstore

import (
	"context"
	"errors"
	"fmt"
	"time"

	"connectrpc.com/connect"

	"github.com/cairnlog/cairn/cluster"
	"github.com/cairnlog/cairn/env"
	"github.com/cairnlog/cairn/partition"
	"github.com/cairnlog/cairn/txn"
)

// multiLeadTimeout bounds the wait for one leadership an AppendMulti asks
// for.
const multiLeadTimeout = 10 * time.Second

// lead returns partition index of topic once this node leads it, asking
// for its leadership when another node has it: an AppendMulti runs its
// transaction on the node serving it, which writes each part to a
// partition it leads (docs/transactions.md). Should the leadership move
// on before the part is written, the write fails and the call aborts.
func (s *Service) lead(ctx context.Context, topic string, index int32) (*partition.Partition, error) {
	l, err := s.leaderOf(topic, index)
	if err != nil {
		return nil, err
	}
	if !l.Local {
		tctx, cancel := env.WithTimeout(ctx, s.clock, multiLeadTimeout)
		err := s.cluster.TransferLeader(tctx, topic, index, s.cluster.NodeID())
		cancel()
		switch {
		case errors.Is(err, cluster.ErrInvalidReplicas):
			return nil, connect.NewError(connect.CodeUnimplemented, fmt.Errorf(
				"AppendMulti: this node holds no replica of %s; serve the call from a node that does: %w", partitionName(topic, index), err))
		case err != nil:
			return nil, connect.NewError(connect.CodeUnavailable, fmt.Errorf(
				"AppendMulti: lead %s (led by node %d): %w", partitionName(topic, index), l.Node, err))
		}
	}
	p, err := s.cluster.Partition(topic, index)
	if err != nil {
		return nil, s.partitionError(topic, index, err)
	}
	return p, nil
}

// leadCoordinator makes this node the transaction coordinator of id: the
// leader of its __transaction_state partition (created when missing).
func (s *Service) leadCoordinator(ctx context.Context, id string) error {
	b, err := s.cfg.Txn.Locate(id)
	if err != nil {
		return s.txnError("FindCoordinator", err)
	}
	if b.NodeID == s.cluster.NodeID() {
		return nil
	}
	t, ok := s.cluster.Topic(txn.StateTopic)
	if !ok {
		return s.txnError("FindCoordinator", fmt.Errorf("%w: %s missing", txn.ErrCoordinatorNotAvailable, txn.StateTopic))
	}
	_, err = s.lead(ctx, txn.StateTopic, txn.PartitionFor(id, int32(len(t.Partitions))))
	return err
}
