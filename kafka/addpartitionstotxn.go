package kafka

// AddPartitionsToTxn v0-v4: a producer adds partitions to its ongoing
// transaction before writing to them (v0-v3: one transaction; v4+: the
// batched form, several transactions, and VerifyOnly, with which a
// partition leader asks whether a partition is in a transaction, KIP-890).
// Partitions of unknown topics answer UNKNOWN_TOPIC_OR_PARTITION and the
// others of the same transaction OPERATION_NOT_ATTEMPTED, as in Kafka;
// topics with cleanup.policy=stream take no transactions
// (INVALID_TXN_STATE). Answered once the transaction's new state is
// durable in __transaction_state.
//
// Authorization, as Kafka: v0-v3 (a producer) need Write on the
// transactional id (else every partition answers
// TRANSACTIONAL_ID_AUTHORIZATION_FAILED) and Write on each topic (its
// partitions TOPIC_AUTHORIZATION_FAILED, the others OPERATION_NOT_ATTEMPTED);
// v4+ is sent by brokers and needs ClusterAction on the cluster
// (CLUSTER_AUTHORIZATION_FAILED for the whole request).

import (
	"strings"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/cairnlog/cairn/acl"
	"github.com/cairnlog/cairn/txn"
)

func init() { register(kmsg.AddPartitionsToTxn.Int16(), 0, 4, handleAddPartitionsToTxn) }

// txnPartitions is one transaction's partitions as a request lists them.
type txnPartitions struct {
	id         string
	producerID int64
	epoch      int16
	verifyOnly bool
	topics     map[string][]int32
	order      []string
	// idRefused and topicRefused are the authorization's refusals, taken
	// on the handler goroutine.
	idRefused    bool
	topicRefused map[string]bool
}

func handleAddPartitionsToTxn(s *Server, c *conn, r kmsg.Request) reply {
	req := r.(*kmsg.AddPartitionsToTxnRequest)
	var txns []txnPartitions
	if req.Version < 4 {
		t := txnPartitions{id: req.TransactionalID, producerID: req.ProducerID, epoch: req.ProducerEpoch, topics: map[string][]int32{}}
		for _, rt := range req.Topics {
			t.order = append(t.order, rt.Topic)
			t.topics[rt.Topic] = append(t.topics[rt.Topic], rt.Partitions...)
		}
		t.idRefused = !c.allowed(acl.OpWrite, acl.ResourceTransactionalID, t.id)
		for _, topic := range t.order {
			if !c.allowedTopic(acl.OpWrite, topic) {
				if t.topicRefused == nil {
					t.topicRefused = map[string]bool{}
				}
				t.topicRefused[topic] = true
			}
		}
		txns = append(txns, t)
	} else {
		if !c.allowedCluster(acl.OpClusterAction) {
			resp := req.ResponseKind().(*kmsg.AddPartitionsToTxnResponse)
			resp.ErrorCode = kerr.ClusterAuthorizationFailed.Code
			return reply{resp: resp}
		}
		txns = batchedTxns(req)
	}
	return reply{wait: func() kmsg.Response { return s.addPartitionsResponse(req, txns) }}
}

// batchedTxns lists the transactions of a v4+ request.
func batchedTxns(req *kmsg.AddPartitionsToTxnRequest) []txnPartitions {
	var txns []txnPartitions
	for _, rt := range req.Transactions {
		t := txnPartitions{id: rt.TransactionalID, producerID: rt.ProducerID, epoch: rt.ProducerEpoch, verifyOnly: rt.VerifyOnly, topics: map[string][]int32{}}
		for _, tt := range rt.Topics {
			t.order = append(t.order, tt.Topic)
			t.topics[tt.Topic] = append(t.topics[tt.Topic], tt.Partitions...)
		}
		txns = append(txns, t)
	}
	return txns
}

// addPartitionsResponse adds (or checks) txns' partitions and answers req.
func (s *Server) addPartitionsResponse(req *kmsg.AddPartitionsToTxnRequest, txns []txnPartitions) *kmsg.AddPartitionsToTxnResponse {
	resp := req.ResponseKind().(*kmsg.AddPartitionsToTxnResponse)
	for _, t := range txns {
		codes := s.addPartitions(t)
		if req.Version < 4 {
			for _, topic := range t.order {
				rt := kmsg.NewAddPartitionsToTxnResponseTopic()
				rt.Topic = topic
				for _, p := range t.topics[topic] {
					rp := kmsg.NewAddPartitionsToTxnResponseTopicPartition()
					rp.Partition, rp.ErrorCode = p, codes[txn.TopicPartition{Topic: topic, Partition: p}]
					rt.Partitions = append(rt.Partitions, rp)
				}
				resp.Topics = append(resp.Topics, rt)
			}
			continue
		}
		rt := kmsg.NewAddPartitionsToTxnResponseTransaction()
		rt.TransactionalID = t.id
		for _, topic := range t.order {
			tt := kmsg.NewAddPartitionsToTxnResponseTransactionTopic()
			tt.Topic = topic
			for _, p := range t.topics[topic] {
				rp := kmsg.NewAddPartitionsToTxnResponseTransactionTopicPartition()
				rp.Partition, rp.ErrorCode = p, codes[txn.TopicPartition{Topic: topic, Partition: p}]
				tt.Partitions = append(tt.Partitions, rp)
			}
			rt.Topics = append(rt.Topics, tt)
		}
		resp.Transactions = append(resp.Transactions, rt)
	}
	return resp
}

// addPartitions adds (or, VerifyOnly, checks) one transaction's partitions
// and returns each partition's error code.
func (s *Server) addPartitions(t txnPartitions) map[txn.TopicPartition]int16 {
	codes := map[txn.TopicPartition]int16{}
	var tps []txn.TopicPartition
	unknown := false
	for _, topic := range t.order {
		info, ok := s.view.Topic(topic)
		for _, p := range t.topics[topic] {
			tp := txn.TopicPartition{Topic: topic, Partition: p}
			switch {
			case t.idRefused:
				codes[tp], unknown = kerr.TransactionalIDAuthorizationFailed.Code, true
			case t.topicRefused[topic]:
				codes[tp], unknown = kerr.TopicAuthorizationFailed.Code, true
			case !ok || p < 0 || int(p) >= len(info.Partitions):
				codes[tp], unknown = kerr.UnknownTopicOrPartition.Code, true
			case strings.Contains(info.Configs["cleanup.policy"], "stream"):
				codes[tp], unknown = kerr.InvalidTxnState.Code, true
			default:
				tps = append(tps, tp)
			}
		}
	}
	if unknown {
		for _, tp := range tps {
			codes[tp] = kerr.OperationNotAttempted.Code
		}
		return codes
	}
	if t.verifyOnly {
		for _, tp := range tps {
			codes[tp] = errorCode(s.txn.Verify(t.id, t.producerID, t.epoch, tp))
		}
		return codes
	}
	code := errorCode(s.txn.AddPartitions(t.id, t.producerID, t.epoch, tps))
	for _, tp := range tps {
		codes[tp] = code
	}
	return codes
}
