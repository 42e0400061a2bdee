package server

import (
	"context"
	"fmt"
	"sort"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/cairnlog/cairn/txn"
)

// TestClusterTransactionCoordinatorMoves: three servers in one process, an
// RF 3 topic of three partitions (led by different nodes) written by a
// franz-go transactional producer. Mid-transaction the node coordinating
// the transactional id (the leader of its __transaction_state partition)
// is closed. The producer commits through the new coordinator, which
// loaded the ongoing transaction from the replicated partition and writes
// the markers to every partition, those led by other nodes through their
// leaders: a read_committed consumer sees every record of the committed
// transactions and none of the aborted one.
func TestClusterTransactionCoordinatorMoves(t *testing.T) {
	tc := startCluster(t)
	const topic, id = "txn-moves", "txn-moves-producer"
	ctx, cancel := context.WithTimeout(context.Background(), 4*failoverStageWaitMax)
	defer cancel()
	createReplicated(ctx, t, tc, topic)

	producer := newFailoverClient(t, tc, kgo.TransactionalID(id), kgo.RecordPartitioner(kgo.ManualPartitioner()),
		kgo.MetadataMinAge(250*time.Millisecond), kgo.TransactionTimeout(time.Minute))
	write := func(values ...string) {
		t.Helper()
		for i, v := range values {
			r := &kgo.Record{Topic: topic, Partition: int32(i % failoverPartitions), Value: []byte(v)}
			if err := producer.ProduceSync(ctx, r).FirstErr(); err != nil {
				t.Fatalf("produce %s: %v", v, err)
			}
		}
	}
	end := func(how kgo.TransactionEndTry) {
		t.Helper()
		if err := producer.EndTransaction(ctx, how); err != nil {
			t.Fatalf("end transaction: %v", err)
		}
	}
	begin := func() {
		t.Helper()
		if err := producer.BeginTransaction(); err != nil {
			t.Fatal(err)
		}
	}
	begin()
	write("a0", "a1", "a2")
	end(kgo.TryCommit)
	begin()
	write("x0", "x1", "x2")
	end(kgo.TryAbort)

	begin()
	write("b0", "b1", "b2")
	state, ok := tc.servers[1].Cluster().Topic(txn.StateTopic)
	if !ok {
		t.Fatalf("%s was not created", txn.StateTopic)
	}
	coordinator := tc.leaderOf(txn.StateTopic, txn.PartitionFor(id, int32(len(state.Partitions))))
	tc.stop(coordinator)
	write("b3", "b4", "b5") // partitions the closed node led move too
	end(kgo.TryCommit)
	tc.restart(coordinator)

	consumer := newFailoverClient(t, tc, kgo.ConsumeTopics(topic), kgo.FetchIsolationLevel(kgo.ReadCommitted()),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	var got []string
	for len(got) < 9 && ctx.Err() == nil {
		fs := consumer.PollFetches(ctx)
		fs.EachRecord(func(r *kgo.Record) { got = append(got, string(r.Value)) })
	}
	sort.Strings(got)
	if fmt.Sprint(got) != "[a0 a1 a2 b0 b1 b2 b3 b4 b5]" {
		t.Fatalf("read_committed saw %v", got)
	}
	newCoordinator := tc.leaderOf(txn.StateTopic, txn.PartitionFor(id, int32(len(state.Partitions))))
	md, err := tc.servers[newCoordinator].kafka.Txn().Describe(id)
	if err != nil || md.State != txn.CompleteCommit {
		t.Fatalf("the coordinator (node %d) has %+v, %v; want CompleteCommit", newCoordinator, md, err)
	}
}
