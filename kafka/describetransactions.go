package kafka

// DescribeTransactions v0: the state of transactional ids this node
// coordinates (NOT_COORDINATOR for the others, TRANSACTIONAL_ID_NOT_FOUND
// for unknown ids).

import (
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/cairnlog/cairn/acl"
)

func init() { register(kmsg.DescribeTransactions.Int16(), 0, 0, handleDescribeTransactions) }

func handleDescribeTransactions(s *Server, c *conn, r kmsg.Request) reply {
	req := r.(*kmsg.DescribeTransactionsRequest)
	describable := make([]bool, len(req.TransactionalIDs))
	for i, id := range req.TransactionalIDs {
		describable[i] = c.allowed(acl.OpDescribe, acl.ResourceTransactionalID, id)
	}
	return reply{wait: func() kmsg.Response {
		resp := req.ResponseKind().(*kmsg.DescribeTransactionsResponse)
		for i, id := range req.TransactionalIDs {
			st := kmsg.NewDescribeTransactionsResponseTransactionState()
			st.TransactionalID = id
			md, err := s.txn.Describe(id)
			if !describable[i] {
				err = kerr.TransactionalIDAuthorizationFailed
			}
			if err != nil {
				st.ErrorCode = errorCode(err)
				st.ProducerID, st.ProducerEpoch, st.StartTimestamp = -1, -1, -1
				resp.TransactionStates = append(resp.TransactionStates, st)
				continue
			}
			st.State, st.TimeoutMillis, st.StartTimestamp = md.State.String(), md.TimeoutMs, md.StartMs
			st.ProducerID, st.ProducerEpoch = md.ProducerID, md.ProducerEpoch
			byTopic := map[string]int{}
			for _, tp := range md.Partitions {
				i, ok := byTopic[tp.Topic]
				if !ok {
					i = len(st.Topics)
					byTopic[tp.Topic] = i
					t := kmsg.NewDescribeTransactionsResponseTransactionStateTopic()
					t.Topic = tp.Topic
					st.Topics = append(st.Topics, t)
				}
				st.Topics[i].Partitions = append(st.Topics[i].Partitions, tp.Partition)
			}
			resp.TransactionStates = append(resp.TransactionStates, st)
		}
		return resp
	}}
}
