package kafka

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/cairnlog/cairn/env"
	"github.com/cairnlog/cairn/txn"
)

// Requests to other nodes: the transaction requests one node makes of
// another, as Kafka's brokers do (WriteTxnMarkers to a partition's
// leader, AddPartitionsToTxn VerifyOnly to a transaction's coordinator),
// go over the node-to-node transport (cluster.NodeRequest), which knows
// the sending node, rather than to a client listener: they need none of
// the credentials the listeners ask of clients, pass no ACL check, and
// no client can send them there. The body is the Kafka request as on the
// wire without its header:
//
//	0 2 API key | 2 2 version | 4 … request body
//
// and the answer the response body of that version.

// peerWaitMax bounds a request to another node whose caller set no
// deadline (a produce's KIP-890 check, on its connection's handler).
const peerWaitMax = 10 * time.Second

// peerRequest sends req to node over the node-to-node transport.
func (s *Server) peerRequest(ctx context.Context, node int32, req kmsg.Request) (kmsg.Response, error) {
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = env.WithTimeout(ctx, s.clock, peerWaitMax)
		defer cancel()
	}
	answer, err := s.cluster.NodeRequest(ctx, node, nodeRequestBody(req))
	if err != nil {
		return nil, fmt.Errorf("%w: %w", kerr.CoordinatorNotAvailable, err)
	}
	resp := req.ResponseKind()
	resp.SetVersion(req.GetVersion())
	if err := resp.ReadFrom(answer); err != nil {
		return nil, fmt.Errorf("%w: node %d's answer to %s: %w", kerr.CoordinatorNotAvailable, node, kmsg.NameForKey(req.Key()), err)
	}
	return resp, nil
}

// nodeRequestBody is req as a node request's body.
func nodeRequestBody(req kmsg.Request) []byte {
	body := binary.BigEndian.AppendUint16(nil, uint16(req.Key()))
	body = binary.BigEndian.AppendUint16(body, uint16(req.GetVersion()))
	return req.AppendTo(body)
}

// serveNode serves another node's request (cluster.NodeRequestHandler):
// only the requests nodes send each other, whatever the authorizer says,
// for the connection it came on is a node's.
func (s *Server) serveNode(ctx context.Context, from int32, body []byte) ([]byte, error) {
	if len(body) < 4 {
		return nil, fmt.Errorf("node %d's request of %d bytes: too short", from, len(body))
	}
	key, version := int16(binary.BigEndian.Uint16(body)), int16(binary.BigEndian.Uint16(body[2:]))
	req := kmsg.RequestForKey(key)
	if req == nil {
		return nil, fmt.Errorf("node %d's request: unknown API key %d", from, key)
	}
	req.SetVersion(version)
	switch r := req.(type) {
	case *kmsg.WriteTxnMarkersRequest:
		if version < 0 || version > 1 {
			return nil, fmt.Errorf("node %d's WriteTxnMarkers: version %d not served", from, version)
		}
		if err := r.ReadFrom(body[4:]); err != nil {
			return nil, fmt.Errorf("node %d's WriteTxnMarkers: %w", from, err)
		}
		ctx, cancel := env.WithTimeout(ctx, s.clock, markerWaitMax)
		defer cancel()
		return s.writeMarkers(ctx, r).AppendTo(nil), nil
	case *kmsg.AddPartitionsToTxnRequest:
		if version != 4 {
			return nil, fmt.Errorf("node %d's AddPartitionsToTxn: version %d not served", from, version)
		}
		if err := r.ReadFrom(body[4:]); err != nil {
			return nil, fmt.Errorf("node %d's AddPartitionsToTxn: %w", from, err)
		}
		txns := batchedTxns(r)
		for _, t := range txns {
			if !t.verifyOnly {
				return nil, fmt.Errorf("node %d's AddPartitionsToTxn: only VerifyOnly is served between nodes", from)
			}
		}
		return s.addPartitionsResponse(r, txns).AppendTo(nil), nil
	}
	return nil, fmt.Errorf("node %d's %s: not a request nodes send each other", from, kmsg.NameForKey(key))
}

// remoteMarker asks the leader of tp, another node, to write a marker.
func (s *Server) remoteMarker(ctx context.Context, leader int32, tp txn.TopicPartition, producerID int64, producerEpoch int16, commit bool, coordinatorEpoch int32) error {
	req := kmsg.NewPtrWriteTxnMarkersRequest()
	m := kmsg.NewWriteTxnMarkersRequestMarker()
	m.ProducerID, m.ProducerEpoch, m.Committed, m.CoordinatorEpoch = producerID, producerEpoch, commit, coordinatorEpoch
	mt := kmsg.NewWriteTxnMarkersRequestMarkerTopic()
	mt.Topic, mt.Partitions = tp.Topic, []int32{tp.Partition}
	m.Topics = append(m.Topics, mt)
	req.Markers = append(req.Markers, m)
	resp, err := s.peerRequest(ctx, leader, req)
	if err != nil {
		return fmt.Errorf("marker through node %d: %w", leader, err)
	}
	for _, rm := range resp.(*kmsg.WriteTxnMarkersResponse).Markers {
		for _, rt := range rm.Topics {
			for _, rp := range rt.Partitions {
				if err := kerr.ErrorForCode(rp.ErrorCode); err != nil {
					return fmt.Errorf("marker through node %d: %w", leader, err)
				}
			}
		}
	}
	return nil
}

// verifyInTxn checks with id's coordinator, here or on another node, that
// tp is in the producer's ongoing transaction (KIP-890).
func (s *Server) verifyInTxn(ctx context.Context, id string, producerID int64, producerEpoch int16, tp txn.TopicPartition) error {
	err := s.txn.Verify(id, producerID, producerEpoch, tp)
	if err == nil || !errors.Is(err, txn.ErrNotCoordinator) {
		return err
	}
	b, lerr := s.txn.Locate(id)
	if lerr != nil {
		return lerr
	}
	if b.NodeID == s.cluster.NodeID() {
		return err
	}
	req := kmsg.NewPtrAddPartitionsToTxnRequest()
	req.Version = 4
	rt := kmsg.NewAddPartitionsToTxnRequestTransaction()
	rt.TransactionalID, rt.ProducerID, rt.ProducerEpoch, rt.VerifyOnly = id, producerID, producerEpoch, true
	tt := kmsg.NewAddPartitionsToTxnRequestTransactionTopic()
	tt.Topic, tt.Partitions = tp.Topic, []int32{tp.Partition}
	rt.Topics = append(rt.Topics, tt)
	req.Transactions = append(req.Transactions, rt)
	resp, err := s.peerRequest(ctx, b.NodeID, req)
	if err != nil {
		return fmt.Errorf("%w: verify with node %d: %v", txn.ErrCoordinatorNotAvailable, b.NodeID, err)
	}
	r := resp.(*kmsg.AddPartitionsToTxnResponse)
	if code := r.ErrorCode; code != 0 {
		return coordinatorCode(code)
	}
	for _, t := range r.Transactions {
		for _, tt := range t.Topics {
			for _, p := range tt.Partitions {
				if p.ErrorCode != 0 {
					return coordinatorCode(p.ErrorCode)
				}
			}
		}
	}
	return nil
}

// coordinatorCode is the coordinator's error as this node's txn errors,
// so the caller's answer maps it back to the same code.
func coordinatorCode(code int16) error {
	switch code {
	case kerr.ProducerFenced.Code, kerr.InvalidProducerEpoch.Code:
		return txn.ErrProducerFenced
	case kerr.InvalidProducerIDMapping.Code:
		return txn.ErrInvalidProducerIDMapping
	case kerr.InvalidTxnState.Code:
		return txn.ErrInvalidTxnState
	case kerr.NotCoordinator.Code:
		return txn.ErrNotCoordinator
	case kerr.CoordinatorLoadInProgress.Code:
		return txn.ErrCoordinatorLoadInProgress
	case kerr.ConcurrentTransactions.Code:
		return txn.ErrConcurrentTransactions
	}
	return fmt.Errorf("%w: %v", txn.ErrCoordinatorNotAvailable, kerr.ErrorForCode(code))
}
