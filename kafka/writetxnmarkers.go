package kafka

// WriteTxnMarkers v0-v1: the transaction coordinator's request to a
// partition's leader to end a producer's transaction there with a COMMIT
// or ABORT marker (Kafka's control record layout). A marker is answered
// once committed (as an acks=all produce); one written to a
// __consumer_offsets partition also makes the producer's transactional
// offset commits for that partition's groups visible (COMMIT) or drops
// them (ABORT). Cairn's own coordinator writes markers to partitions led on
// its node directly (markerWriter); operators' tools (kadm's
// AbortTransaction) send this request.
//
// A partition led elsewhere answers NOT_LEADER_OR_FOLLOWER; the
// coordinator sends its own markers for partitions led by other nodes to
// their leaders with this request.

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/cairnlog/cairn/acl"
	"github.com/cairnlog/cairn/cluster"
	"github.com/cairnlog/cairn/env"
	"github.com/cairnlog/cairn/groups"
	"github.com/cairnlog/cairn/partition"
	"github.com/cairnlog/cairn/txn"
)

func init() { register(kmsg.WriteTxnMarkers.Int16(), 0, 1, handleWriteTxnMarkers) }

// markerWaitMax bounds the wait for one marker to commit.
const markerWaitMax = 30 * time.Second

func handleWriteTxnMarkers(s *Server, c *conn, r kmsg.Request) reply {
	req := r.(*kmsg.WriteTxnMarkersRequest)
	// ClusterAction, or Alter (KIP-1037, for tools that abort hanging
	// transactions), on the cluster: every partition refused otherwise.
	if !c.allowedCluster(acl.OpClusterAction) && !c.allowedCluster(acl.OpAlter) {
		return reply{resp: refuseMarkers(req)}
	}
	return reply{wait: func() kmsg.Response {
		ctx, cancel := env.WithTimeout(c.ctx, s.clock, markerWaitMax)
		defer cancel()
		return s.writeMarkers(ctx, req)
	}}
}

// writeMarkers writes the request's markers to the partitions led here.
func (s *Server) writeMarkers(ctx context.Context, req *kmsg.WriteTxnMarkersRequest) *kmsg.WriteTxnMarkersResponse {
	return answerMarkers(req, func(m kmsg.WriteTxnMarkersRequestMarker, tp txn.TopicPartition) int16 {
		return errorCode(s.writeMarker(ctx, tp, m.ProducerID, m.ProducerEpoch, m.Committed, m.CoordinatorEpoch, false))
	})
}

// refuseMarkers answers CLUSTER_AUTHORIZATION_FAILED for every partition.
func refuseMarkers(req *kmsg.WriteTxnMarkersRequest) *kmsg.WriteTxnMarkersResponse {
	return answerMarkers(req, func(kmsg.WriteTxnMarkersRequestMarker, txn.TopicPartition) int16 {
		return kerr.ClusterAuthorizationFailed.Code
	})
}

// answerMarkers answers every partition of every marker of req with the
// error code code gives it, in the request's order.
func answerMarkers(req *kmsg.WriteTxnMarkersRequest, code func(kmsg.WriteTxnMarkersRequestMarker, txn.TopicPartition) int16) *kmsg.WriteTxnMarkersResponse {
	resp := req.ResponseKind().(*kmsg.WriteTxnMarkersResponse)
	for _, m := range req.Markers {
		rm := kmsg.NewWriteTxnMarkersResponseMarker()
		rm.ProducerID = m.ProducerID
		for _, t := range m.Topics {
			rt := kmsg.NewWriteTxnMarkersResponseMarkerTopic()
			rt.Topic = t.Topic
			for _, index := range t.Partitions {
				rp := kmsg.NewWriteTxnMarkersResponseMarkerTopicPartition()
				rp.Partition = index
				rp.ErrorCode = code(m, txn.TopicPartition{Topic: t.Topic, Partition: index})
				rt.Partitions = append(rt.Partitions, rp)
			}
			rm.Topics = append(rm.Topics, rt)
		}
		resp.Markers = append(resp.Markers, rm)
	}
	return resp
}

type markerWriter struct{ s *Server }

// WriteMarker implements txn.MarkerWriter: a marker refused here or by its
// leader as from an older coordinator wraps txn.ErrCoordinatorFenced.
func (w markerWriter) WriteMarker(ctx context.Context, tp txn.TopicPartition, producerID int64, producerEpoch int16, commit bool, coordinatorEpoch int32) error {
	err := w.s.writeMarker(ctx, tp, producerID, producerEpoch, commit, coordinatorEpoch, true)
	if errors.Is(err, partition.ErrTransactionCoordinatorFenced) || errors.Is(err, kerr.TransactionCoordinatorFenced) {
		return fmt.Errorf("%w: %w", txn.ErrCoordinatorFenced, err)
	}
	return err
}

// writeMarker writes one marker to a partition led here and waits until it
// is committed. A partition that no longer exists needs no marker when
// goneIsDone (the coordinator's own writes: a deleted topic took the
// transaction's records with it).
func (s *Server) writeMarker(ctx context.Context, tp txn.TopicPartition, producerID int64, producerEpoch int16, commit bool, coordinatorEpoch int32, goneIsDone bool) error {
	p, l, err := s.leaderPartition(tp.Topic, tp.Partition, -1)
	if err != nil {
		switch {
		case goneIsDone && errors.Is(err, cluster.ErrUnknownTopic):
			return nil
		case goneIsDone && !l.Local && l.Node >= 0 && l.Node != s.cluster.NodeID():
			return s.remoteMarker(ctx, l.Node, tp, producerID, producerEpoch, commit, coordinatorEpoch)
		}
		return err
	}
	res, err := p.WriteMarker(producerID, producerEpoch, commit, coordinatorEpoch)
	if err != nil {
		return fmt.Errorf("marker for producer %d on %s-%d: %w", producerID, tp.Topic, tp.Partition, err)
	}
	if err := p.WaitAppended(ctx, res, true); err != nil {
		return fmt.Errorf("marker for producer %d on %s-%d: %w", producerID, tp.Topic, tp.Partition, err)
	}
	if tp.Topic == groups.OffsetsTopic {
		return s.groups.TxnMarker(ctx, tp.Partition, res.BaseOffset, producerID, commit)
	}
	return nil
}
