package kafka

import (
	"errors"
	"testing"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// TestTransactionalProducerNeedsWriteOnItsID: with Write on the topic and
// only Describe on its transactional id a transactional producer is refused with
// TRANSACTIONAL_ID_AUTHORIZATION_FAILED; granted Write on the id it
// commits, and a read_committed consumer sees the record. ListTransactions
// shows the id only to a principal that may describe it.
func TestTransactionalProducerNeedsWriteOnItsID(t *testing.T) {
	ts := authServer(t, false)
	ctx := testContext(t)
	createTopics(t, ts, "orders")
	grant(t, ts, kadm.NewACLs().Topics("orders").Allow("User:alice").Operations(kadm.OpWrite))

	produce := func() error {
		p := ts.as(t, "alice", kgo.TransactionalID("tx-a"), kgo.DefaultProduceTopic("orders"))
		if err := p.BeginTransaction(); err != nil {
			return err
		}
		if err := p.ProduceSync(ctx, &kgo.Record{Value: []byte("paid")}).FirstErr(); err != nil {
			_ = p.EndTransaction(ctx, kgo.TryAbort)
			return err
		}
		return p.EndTransaction(ctx, kgo.TryCommit)
	}
	// Describe on the id lets FindCoordinator answer; it is not Write.
	grant(t, ts, kadm.NewACLs().TransactionalIDs("tx-a").Allow("User:alice").Operations(kadm.OpDescribe))
	if err := produce(); !errors.Is(err, kerr.TransactionalIDAuthorizationFailed) {
		t.Fatalf("with Describe but not Write on tx-a: %v, want TRANSACTIONAL_ID_AUTHORIZATION_FAILED", err)
	}

	grant(t, ts, kadm.NewACLs().TransactionalIDs("tx-a").Allow("User:alice").Operations(kadm.OpWrite))
	if err := produce(); err != nil {
		t.Fatalf("with Write on tx-a: %v", err)
	}
	consumer := ts.as(t, "admin", kgo.ConsumeTopics("orders"), kgo.FetchIsolationLevel(kgo.ReadCommitted()),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	fetches := consumer.PollRecords(ctx, 1)
	if err := fetches.Err(); err != nil {
		t.Fatal(err)
	}
	if recs := fetches.Records(); len(recs) != 1 || string(recs[0].Value) != "paid" {
		t.Fatalf("read_committed records %v, want the committed one", recs)
	}

	listed := func(user string) []string {
		resp, err := ts.as(t, user).Broker(0).Request(ctx, kmsg.NewPtrListTransactionsRequest())
		if err != nil {
			t.Fatal(err)
		}
		var ids []string
		for _, st := range resp.(*kmsg.ListTransactionsResponse).TransactionStates {
			ids = append(ids, st.TransactionalID)
		}
		return ids
	}
	if got := listed("alice"); len(got) != 1 || got[0] != "tx-a" {
		t.Fatalf("alice lists %v, want [tx-a]", got)
	}
	if got := listed("bob"); len(got) != 0 {
		t.Fatalf("bob lists %v, want none", got)
	}
}

// TestTxnOffsetCommitNeedsGroupRead: a transactional producer with
// Write on its id and topic but no Read on the group has its
// AddOffsetsToTxn refused with GROUP_AUTHORIZATION_FAILED.
func TestTxnOffsetCommitNeedsGroupRead(t *testing.T) {
	ts := authServer(t, false)
	ctx := testContext(t)
	createTopics(t, ts, "orders")
	grant(t, ts, kadm.NewACLs().Topics("orders").Allow("User:alice").Operations(kadm.OpWrite))
	grant(t, ts, kadm.NewACLs().TransactionalIDs("tx-g").Allow("User:alice").Operations(kadm.OpWrite))
	p := ts.as(t, "alice", kgo.TransactionalID("tx-g"), kgo.DefaultProduceTopic("orders"))
	if err := p.BeginTransaction(); err != nil {
		t.Fatal(err)
	}
	if err := p.ProduceSync(ctx, &kgo.Record{Value: []byte("v")}).FirstErr(); err != nil {
		t.Fatal(err)
	}
	id, epoch, err := p.ProducerID(ctx)
	if err != nil {
		t.Fatal(err)
	}
	add := kmsg.NewPtrAddOffsetsToTxnRequest()
	add.TransactionalID, add.ProducerID, add.ProducerEpoch, add.Group = "tx-g", id, epoch, "g"
	resp, err := ts.as(t, "alice").Broker(0).Request(ctx, add)
	if err != nil {
		t.Fatal(err)
	}
	if code := resp.(*kmsg.AddOffsetsToTxnResponse).ErrorCode; code != kerr.GroupAuthorizationFailed.Code {
		t.Fatalf("AddOffsetsToTxn without Read on the group: %v, want GROUP_AUTHORIZATION_FAILED", kerr.ErrorForCode(code))
	}
	if err := p.EndTransaction(ctx, kgo.TryAbort); err != nil {
		t.Fatal(err)
	}
}
