package kafka

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"strconv"
	"sync"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/cairnlog/cairn/cluster"
	"github.com/cairnlog/cairn/txn"
)

// peers sends the transaction requests one node makes of another over the
// Kafka protocol, as Kafka's brokers do: WriteTxnMarkers to a partition's
// leader, AddPartitionsToTxn VerifyOnly to a transaction's coordinator. One
// client per node address, made on first use and closed with the server.
type peers struct {
	tls     *tls.Config // nil: plaintext
	mu      sync.Mutex
	clients map[string]*kgo.Client
	closed  bool
}

// peersMax bounds the clients kept: one per node of the cluster.
const peersMax = 1024

func (p *peers) client(addr string) (*kgo.Client, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return nil, fmt.Errorf("%w: server closed", txn.ErrClosed)
	}
	if cl, ok := p.clients[addr]; ok {
		return cl, nil
	}
	if len(p.clients) >= peersMax {
		return nil, fmt.Errorf("%d peer connections already", peersMax)
	}
	opts := []kgo.Opt{kgo.SeedBrokers(addr)}
	if p.tls != nil {
		opts = append(opts, kgo.DialTLSConfig(p.tls))
	}
	cl, err := kgo.NewClient(opts...)
	if err != nil {
		return nil, fmt.Errorf("client for %s: %w", addr, err)
	}
	if p.clients == nil {
		p.clients = map[string]*kgo.Client{}
	}
	p.clients[addr] = cl
	return cl, nil
}

func (p *peers) close() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.closed = true
	for _, cl := range p.clients {
		cl.Close()
	}
	p.clients = nil
}

// peerRequest sends req to node's Kafka listener.
func (s *Server) peerRequest(ctx context.Context, node int32, req kmsg.Request) (kmsg.Response, error) {
	for _, b := range s.view.Brokers() {
		if b.NodeID != node {
			continue
		}
		if s.first.Protocol.TLS() && s.peers.tls == nil {
			return nil, fmt.Errorf("%w: node %d's listener %s is %s and this node has no certificate for it (PeerTLS)", kerr.CoordinatorNotAvailable, node, s.first.Name, s.first.Protocol)
		}
		e, ok := s.endpointOf(b, s.first)
		if !ok {
			return nil, fmt.Errorf("%w: node %d has no usable Kafka address", kerr.CoordinatorNotAvailable, node)
		}
		cl, err := s.peers.client(net.JoinHostPort(e.host, strconv.Itoa(int(e.port))))
		if err != nil {
			return nil, err
		}
		return cl.SeedBrokers()[0].Request(ctx, req)
	}
	return nil, fmt.Errorf("%w: node %d is not a known broker", cluster.ErrNotLeader, node)
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
