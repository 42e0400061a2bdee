package kafka

// EndTxn v0-v4: a producer commits or aborts its transaction. The outcome
// is decided once PrepareCommit or PrepareAbort is durable in
// __transaction_state; the coordinator then writes the markers to every
// partition of the transaction and records CompleteCommit or
// CompleteAbort. Deviation from Kafka, which answers at once: the answer
// waits for that completion, at most a second, so the producer's next
// transaction seldom finds this one still ending
// (CONCURRENT_TRANSACTIONS, retried after a client backoff). A retry
// after completion gets the same answer.

import (
	"github.com/twmb/franz-go/pkg/kmsg"
)

func init() { register(kmsg.EndTxn.Int16(), 0, 4, handleEndTxn) }

func handleEndTxn(s *Server, c *conn, r kmsg.Request) reply {
	req := r.(*kmsg.EndTxnRequest)
	if code := txnIDRefusal(c, req.TransactionalID); code != 0 {
		resp := req.ResponseKind().(*kmsg.EndTxnResponse)
		resp.ErrorCode = code
		return reply{resp: resp}
	}
	return reply{wait: func() kmsg.Response {
		resp := req.ResponseKind().(*kmsg.EndTxnResponse)
		resp.ErrorCode = errorCode(s.txn.End(req.TransactionalID, req.ProducerID, req.ProducerEpoch, req.Commit))
		return resp
	}}
}
