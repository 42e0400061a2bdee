package kafka

// ListTransactions v0-v1: the transactional ids this node coordinates,
// filtered by state names (unknown names are listed back in
// UnknownStateFilters), producer ids and, v1+, by running longer than
// DurationFilterMillis. Clients ask every broker and merge.

import (
	"slices"

	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/cairnlog/cairn/acl"
	"github.com/cairnlog/cairn/txn"
)

func init() { register(kmsg.ListTransactions.Int16(), 0, 1, handleListTransactions) }

func handleListTransactions(s *Server, c *conn, r kmsg.Request) reply {
	req := r.(*kmsg.ListTransactionsRequest)
	resp := req.ResponseKind().(*kmsg.ListTransactionsResponse)
	known := map[string]bool{}
	for st := txn.Empty; st <= txn.PrepareEpochFence; st++ {
		known[st.String()] = true
	}
	for _, f := range req.StateFilters {
		if !known[f] {
			resp.UnknownStateFilters = append(resp.UnknownStateFilters, f)
		}
	}
	nowMs := s.cluster.Env().Clock.Now().UnixMilli()
	for _, md := range s.txn.List() {
		switch {
		case len(req.StateFilters) > 0 && !slices.Contains(req.StateFilters, md.State.String()):
			continue
		case len(req.ProducerIDFilters) > 0 && !slices.Contains(req.ProducerIDFilters, md.ProducerID):
			continue
		case !c.allowed(acl.OpDescribe, acl.ResourceTransactionalID, md.ID):
			continue
		case req.Version >= 1 && req.DurationFilterMillis >= 0 && (md.StartMs < 0 || nowMs-md.StartMs < req.DurationFilterMillis):
			continue
		}
		st := kmsg.NewListTransactionsResponseTransactionState()
		st.TransactionalID, st.ProducerID, st.TransactionState = md.ID, md.ProducerID, md.State.String()
		resp.TransactionStates = append(resp.TransactionStates, st)
	}
	return reply{resp: resp}
}
