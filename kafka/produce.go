package kafka

// Produce v3-v9 (RecordBatch v2 only, as Kafka 4 requires). acks 0, 1 and -1
// (all). Only the partition's leader appends; elsewhere a partition answers
// NOT_LEADER_OR_FOLLOWER, as it does when the leader loses its term before
// the wait below ends. With acks=all the response waits until the records
// are committed: on a replicated partition by a quorum of its replicas, on
// a single-writer one by a group-commit fdatasync covering every
// partition's last record. With acks=1 a replicated partition's response
// waits for the leader's own log to hold the records durably; a
// single-writer partition's is sent after the write. acks=0 gets no
// response, and a failed acks=0 produce closes the connection. Records
// become visible to consumers at the high watermark (committed, or on a
// single writer the synced log end), so after an acks=1 or acks=0 produce
// they appear one commit later, typically within milliseconds. An idempotent
// producer's retry of a batch already appended is answered with the
// original's offsets, on a replicated partition also by a new leader for a
// batch the old one committed.
//
// Versions 0-2 are listed in ApiVersions but every partition of such a
// request is refused with UNSUPPORTED_VERSION, as Kafka 4 does (KAFKA-18659):
// librdkafka only compresses when it sees Produce v0 advertised.
//
// Transactional produce (a transactional id, transactional batches): a
// producer's first transactional batch on a partition is accepted only if
// its transaction coordinator added the partition to the producer's
// ongoing transaction at that epoch (KIP-890: asked of the coordinator
// wherever it runs), so a late batch of an ended transaction is
// refused with INVALID_TXN_STATE and one of a fenced epoch with
// INVALID_PRODUCER_EPOCH.
//
// The coordinator may run on another node: it is asked with
// AddPartitionsToTxn v4 VerifyOnly, as Kafka's brokers do.
//
// A produce to __consumer_offsets or __transaction_state is refused with
// INVALID_TOPIC_EXCEPTION, as Kafka does: their coordinators alone write
// them.
//
// Deviation from Kafka: compressed batches are stored exactly as sent
// (compression.type=producer).
// Responses stop at v9, so they never carry the new leader (KIP-951, v10):
// clients learn of it from Metadata. A produce reaching a node that just won
// the partition's election, before its leadership is ready (its term's first
// entry applied), waits for it, at most leaderWaitMax (1.5 s, leaderwait.go), rather
// than send the client back to Metadata.

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/cairnlog/cairn/acl"
	"github.com/cairnlog/cairn/batch"
	"github.com/cairnlog/cairn/cluster"
	"github.com/cairnlog/cairn/cluster/topicrules"
	"github.com/cairnlog/cairn/env"
	"github.com/cairnlog/cairn/groups"
	"github.com/cairnlog/cairn/partition"
	"github.com/cairnlog/cairn/txn"
)

func init() { register(kmsg.Produce.Int16(), 0, 10, handleProduce) }

// appendWait is one partition of a produce waiting for its acknowledgement
// (acks=all, or acks=1 on a replicated partition), with the response entry
// its outcome completes: the two travel together from the append on, so a
// wait can never complete another partition's entry.
type appendWait struct {
	p    *partition.Partition
	res  partition.AppendResult
	all  bool
	resp *kmsg.ProduceResponseTopicPartition
	// topic is the partition's, for a leader hint when the wait fails.
	topic string
}

// records is how many records the wait acknowledges.
func (w appendWait) records() int64 { return w.res.LastOffset - w.res.BaseOffset + 1 }

func handleProduce(s *Server, c *conn, r kmsg.Request) reply {
	req := r.(*kmsg.ProduceRequest)
	resp := req.ResponseKind().(*kmsg.ProduceResponse)
	waits, failed := s.appendAll(c, req, resp)
	switch {
	case req.Acks == 0:
		return reply{none: true, closeAfter: failed}
	case len(waits) == 0:
		return reply{resp: resp}
	}
	timeout := time.Duration(req.TimeoutMillis) * time.Millisecond
	return reply{wait: func() kmsg.Response {
		ctx, cancel := env.WithTimeout(c.ctx, s.clock, max(timeout, time.Millisecond))
		defer cancel()
		for _, w := range waits {
			if err := w.wait(ctx); err != nil {
				setProduceError(w.resp, err)
				s.hintLeader(c.listener, resp, w.resp, w.topic, w.resp.Partition)
				continue
			}
			producedRecords.Add(float64(w.records()))
		}
		return resp
	}}
}

// wait waits for w's acknowledgement. A retried idempotent batch answered
// as a duplicate carries the term its original was proposed in, so it is
// acknowledged once that original commits, never by another batch at its
// offsets.
func (w appendWait) wait(ctx context.Context) error {
	return w.p.WaitAppended(ctx, w.res, w.all)
}

// checkInSync refuses an acks=all produce to a partition with fewer
// in-sync replicas than its topic's min.insync.replicas, before anything
// is appended, as Kafka does: the batch could commit with fewer copies
// than the producer asked for.
func (s *Server) checkInSync(topic string, index int32) error {
	t, ok := s.view.Topic(topic)
	if !ok {
		return nil // Append answers for an unknown topic
	}
	want := topicrules.MinInSyncReplicas(t.Configs)
	if want <= 1 {
		return nil
	}
	if got := len(s.view.InSync(topic, index)); got < want {
		return fmt.Errorf("%w: %s-%d has %d in-sync replicas, min.insync.replicas is %d", kerr.NotEnoughReplicas, topic, index, got, want)
	}
	return nil
}

// produceRefusal returns why every partition of req is refused, or nil.
func produceRefusal(req *kmsg.ProduceRequest) error {
	switch {
	case req.Version < 3:
		return fmt.Errorf("%w: Produce v%d carries message format v0/v1; use v3 or later", kerr.UnsupportedVersion, req.Version)
	case req.Acks != 0 && req.Acks != 1 && req.Acks != -1:
		return kerr.InvalidRequiredAcks
	}
	return nil
}

// appendAll appends every partition's records in request order and fills
// resp, one entry per partition. It returns a wait per appended partition
// acknowledged later (mustWait), holding that partition's entry; failed
// reports that some partition was refused. resp's slices are allocated
// whole before any entry is handed out and never grow after, so the
// entries the waits hold are the ones encoded.
func (s *Server) appendAll(c *conn, req *kmsg.ProduceRequest, resp *kmsg.ProduceResponse) (waits []appendWait, failed bool) {
	refuse := produceRefusal(req)
	if refuse == nil && req.TransactionID != nil && txnIDRefusal(c, *req.TransactionID) != 0 {
		refuse = kerr.TransactionalIDAuthorizationFailed
	}
	resp.Topics = make([]kmsg.ProduceResponseTopic, len(req.Topics))
	for ti, rt := range req.Topics {
		st := &resp.Topics[ti]
		*st = kmsg.NewProduceResponseTopic()
		st.Topic = rt.Topic
		st.Partitions = make([]kmsg.ProduceResponseTopicPartition, len(rt.Partitions))
		topicRefuse := refuse
		if topicRefuse == nil && !c.allowedTopic(acl.OpWrite, rt.Topic) {
			topicRefuse = kerr.TopicAuthorizationFailed
		}
		if topicRefuse == nil && (rt.Topic == groups.OffsetsTopic || rt.Topic == txn.StateTopic) {
			// As Kafka: only their coordinators write them, and records a
			// client put there would change what a coordinator loads after
			// a failover, unseen by the one serving now.
			topicRefuse = fmt.Errorf("%w: %s is written by its coordinator only", kerr.InvalidTopicException, rt.Topic)
		}
		for pi, rp := range rt.Partitions {
			sp := &st.Partitions[pi]
			*sp = kmsg.NewProduceResponseTopicPartition()
			sp.Partition = rp.Partition
			res, err := s.producePartition(c, req.TransactionID, rt.Topic, rp, req.Acks, topicRefuse)
			if err != nil {
				failed = true
				setProduceError(sp, err)
				s.hintLeader(c.listener, resp, sp, rt.Topic, rp.Partition)
				if req.Acks != 0 {
					c.logger.Debug("produce refused", "topic", rt.Topic, "partition", rp.Partition, "err", err)
				}
				continue
			}
			sp.BaseOffset = res.BaseOffset
			sp.LogAppendTime = res.LogAppendTimeMs
			sp.LogStartOffset = res.LogStartOffset
			w := appendWait{p: res.partition, res: res.AppendResult, all: req.Acks == -1, resp: sp, topic: rt.Topic}
			if mustWait(req.Acks, res.partition) {
				waits = append(waits, w)
			} else {
				producedRecords.Add(float64(w.records()))
			}
		}
	}
	return waits, failed
}

// mustWait reports whether a produce with acks waits before it is
// acknowledged: acks=all always; acks=1 on a replicated partition, whose
// leader's log holds the records durably only after its storage syncs
// (Kafka's acks=1 is the leader's write; a single writer keeps answering
// right after its write, as before replication).
func mustWait(acks int16, p *partition.Partition) bool {
	return acks == -1 || (acks == 1 && p.Replicated())
}

// setProduceError records err as a partition's outcome.
func setProduceError(sp *kmsg.ProduceResponseTopicPartition, err error) {
	sp.ErrorCode = errorCode(err)
	sp.ErrorMessage = errorMessage(err)
	sp.BaseOffset = -1
}

// hintLeader names, in a NOT_LEADER_OR_FOLLOWER answer from v10 on, the
// partition's leader as this node knows it and that leader's address
// (KIP-951) for the client's listener ln, so that a client moves the partition there at once instead
// of waiting for its next metadata refresh (franz-go waits its
// MetadataMinAge, 5 s by default, after the last one): what a node
// handing off its leaderships as it stops answers in the meantime. No
// leader known, or one at no usable address, gives no hint.
func (s *Server) hintLeader(ln *listener, resp *kmsg.ProduceResponse, sp *kmsg.ProduceResponseTopicPartition, topic string, index int32) {
	if resp.Version < 10 || sp.ErrorCode != kerr.NotLeaderForPartition.Code {
		return
	}
	l, err := s.view.Leader(topic, index)
	if err != nil || l.Local || l.Node < 0 || l.Epoch < 0 || l.Node == s.cluster.NodeID() || l.Disconnected {
		return
	}
	listed := slices.ContainsFunc(resp.Brokers, func(b kmsg.ProduceResponseBroker) bool { return b.NodeID == l.Node })
	if !listed {
		brokers := s.view.Brokers()
		i := slices.IndexFunc(brokers, func(b cluster.Broker) bool { return b.NodeID == l.Node })
		if i < 0 {
			return
		}
		e, ok := s.endpointOf(brokers[i], ln)
		if !ok {
			return
		}
		b := kmsg.NewProduceResponseBroker()
		b.NodeID, b.Host, b.Port, b.Rack = e.node, e.host, e.port, e.rack
		resp.Brokers = append(resp.Brokers, b)
	}
	sp.CurrentLeader.LeaderID, sp.CurrentLeader.LeaderEpoch = l.Node, l.Epoch
}

// readyLeaderPartition is leaderPartition (no epoch check: Produce has
// none) that, when this node won the partition's election and its
// leadership is not yet ready, waits for it, at most leaderWaitMax.
func (s *Server) readyLeaderPartition(c *conn, topic string, index int32) (*partition.Partition, error) {
	changed := s.view.LeadersChanged()
	p, l, err := s.leaderPartition(topic, index, -1)
	if err == nil || l.Local || l.Node != s.cluster.NodeID() || !errors.Is(err, cluster.ErrNotLeader) {
		return p, err
	}
	s.awaitLeaders(c.ctx, changed, func() bool {
		p, l, err = s.leaderPartition(topic, index, -1)
		return l.Local || l.Node != s.cluster.NodeID()
	})
	return p, err
}

type produceResult struct {
	partition.AppendResult
	partition *partition.Partition
}

func (s *Server) producePartition(c *conn, txnID *string, topic string, rp kmsg.ProduceRequestTopicPartition, acks int16, refuse error) (produceResult, error) {
	if refuse != nil {
		return produceResult{}, refuse
	}
	p, err := s.readyLeaderPartition(c, topic, rp.Partition)
	if err != nil {
		return produceResult{}, err
	}
	if acks == -1 {
		if err := s.checkInSync(topic, rp.Partition); err != nil {
			return produceResult{}, err
		}
	}
	if err := s.verifyTxn(c.ctx, txnID, topic, rp.Partition, rp.Records, p); err != nil {
		return produceResult{}, err
	}
	res, err := p.Append(rp.Records)
	if err != nil {
		return produceResult{}, err
	}
	return produceResult{AppendResult: res, partition: p}, nil
}

// verifyTxn lets a producer's transactional batch open its transaction on
// p once the coordinator (here or on another node) confirms that the
// partition is in the producer's ongoing transaction at that epoch
// (KIP-890).
func (s *Server) verifyTxn(ctx context.Context, txnID *string, topic string, index int32, records []byte, p *partition.Partition) error {
	h, err := batch.ParseHeader(records)
	if err != nil || !h.Transactional() || h.Control() {
		return nil // Append answers malformed and control batches
	}
	if txnID == nil {
		return fmt.Errorf("%w: a transactional batch without a transactional id", partition.ErrInvalidTxnState)
	}
	if p.TxnOpen(h.ProducerID, h.ProducerEpoch) {
		return nil
	}
	return s.verifyOn(ctx, p, *txnID, h.ProducerID, h.ProducerEpoch, txn.TopicPartition{Topic: topic, Partition: index})
}

// verifyOn verifies with the coordinator that tp, which p is, is in the
// producer's ongoing transaction, under p's verification guard: a marker
// written to p meanwhile makes it fail (KIP-890).
func (s *Server) verifyOn(ctx context.Context, p *partition.Partition, txnID string, producerID int64, producerEpoch int16, tp txn.TopicPartition) error {
	guard, err := p.VerifyStart(producerID)
	if err != nil {
		return err
	}
	err = s.verifyInTxn(ctx, txnID, producerID, producerEpoch, tp)
	switch {
	case errors.Is(err, txn.ErrProducerFenced):
		p.VerifyAbandon(producerID, guard)
		// Produce answers a fenced producer with its epoch error.
		return fmt.Errorf("%w: %v", partition.ErrInvalidProducerEpoch, err)
	case err != nil:
		p.VerifyAbandon(producerID, guard)
		return err
	}
	return p.BeginTransaction(producerID, producerEpoch, guard)
}
