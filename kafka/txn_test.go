package kafka

import (
	"context"
	"fmt"
	"sort"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/cairnlog/cairn/txn"
)

// produceTxn writes values in one transaction of cl and ends it.
func produceTxn(t *testing.T, cl *kgo.Client, topic string, commit bool, values ...string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := cl.BeginTransaction(); err != nil {
		t.Fatal(err)
	}
	for _, v := range values {
		if err := cl.ProduceSync(ctx, &kgo.Record{Topic: topic, Value: []byte(v)}).FirstErr(); err != nil {
			t.Fatalf("produce %s: %v", v, err)
		}
	}
	end := kgo.TryAbort
	if commit {
		end = kgo.TryCommit
	}
	if err := cl.EndTransaction(ctx, end); err != nil {
		t.Fatalf("end transaction (commit %v): %v", commit, err)
	}
}

// consumeAll reads topic from the start with the isolation level given
// until it has read want records, and returns their values, sorted.
func consumeAll(t *testing.T, ts *testServer, topic string, level kgo.IsolationLevel, want int) []string {
	t.Helper()
	cl := ts.client(t, kgo.ConsumeTopics(topic), kgo.FetchIsolationLevel(level), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	var got []string
	for len(got) < want && ctx.Err() == nil {
		fs := cl.PollFetches(ctx)
		fs.EachRecord(func(r *kgo.Record) { got = append(got, string(r.Value)) })
	}
	sort.Strings(got)
	return got
}

// offsetsOf lists a partition's latest offset at both isolation levels.
func offsetsOf(t *testing.T, ts *testServer, topic string) (committed, uncommitted int64) {
	t.Helper()
	rc := ts.dial(t)
	defer rc.nc.Close()
	list := func(level int8) int64 {
		req := kmsg.NewPtrListOffsetsRequest()
		req.Version, req.IsolationLevel = 4, level
		rt := kmsg.NewListOffsetsRequestTopic()
		rt.Topic = topic
		rp := kmsg.NewListOffsetsRequestTopicPartition()
		rp.Timestamp, rp.CurrentLeaderEpoch = -1, -1
		rt.Partitions = append(rt.Partitions, rp)
		req.Topics = append(req.Topics, rt)
		resp := rc.roundTrip(req).(*kmsg.ListOffsetsResponse)
		if code := resp.Topics[0].Partitions[0].ErrorCode; code != 0 {
			t.Fatalf("list offsets: %v", kerr.ErrorForCode(code))
		}
		return resp.Topics[0].Partitions[0].Offset
	}
	return list(1), list(0)
}

// TestTxnProducerCommitAbort: a franz-go transactional producer commits
// and aborts; a read_committed consumer sees the committed records only,
// a read_uncommitted one every record (the client skips the markers), and
// ListOffsets read_committed answers the last stable offset.
func TestTxnProducerCommitAbort(t *testing.T) {
	ts := startServer(t)
	if _, err := ts.cluster.CreateTopic("tx", 1, nil, false); err != nil {
		t.Fatal(err)
	}
	p := ts.client(t, kgo.TransactionalID("tx-1"), kgo.DefaultProduceTopic("tx"))
	produceTxn(t, p, "tx", true, "c1", "c2", "c3")
	produceTxn(t, p, "tx", false, "a1", "a2")
	produceTxn(t, p, "tx", true, "c4")
	if got := consumeAll(t, ts, "tx", kgo.ReadCommitted(), 4); fmt.Sprint(got) != "[c1 c2 c3 c4]" {
		t.Fatalf("read_committed saw %v", got)
	}
	if got := consumeAll(t, ts, "tx", kgo.ReadUncommitted(), 6); fmt.Sprint(got) != "[a1 a2 c1 c2 c3 c4]" {
		t.Fatalf("read_uncommitted saw %v", got)
	}
	// An open transaction holds the last stable offset back.
	if err := p.BeginTransaction(); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := p.ProduceSync(ctx, &kgo.Record{Value: []byte("open")}).FirstErr(); err != nil {
		t.Fatal(err)
	}
	committed, uncommitted := offsetsOf(t, ts, "tx")
	// 3+1 marker, 2+1, 1+1 = 9 offsets before the open transaction.
	if committed != 9 || uncommitted != 10 {
		t.Fatalf("latest offsets read_committed %d, read_uncommitted %d; want 9 and 10", committed, uncommitted)
	}
	if err := p.EndTransaction(ctx, kgo.TryCommit); err != nil {
		t.Fatal(err)
	}
	if committed, uncommitted = offsetsOf(t, ts, "tx"); committed != 11 || uncommitted != 11 {
		t.Fatalf("after the commit: %d and %d, want 11 and 11", committed, uncommitted)
	}
}

// TestTxnZombieFenced: a second producer with the same transactional id
// fences the first; the first one's writes and commit are refused, and
// its open transaction is aborted.
func TestTxnZombieFenced(t *testing.T) {
	ts := startServer(t)
	if _, err := ts.cluster.CreateTopic("z", 1, nil, false); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	old := ts.client(t, kgo.TransactionalID("z-1"), kgo.DefaultProduceTopic("z"))
	if err := old.BeginTransaction(); err != nil {
		t.Fatal(err)
	}
	if err := old.ProduceSync(ctx, &kgo.Record{Value: []byte("zombie-1")}).FirstErr(); err != nil {
		t.Fatal(err)
	}
	fresh := ts.client(t, kgo.TransactionalID("z-1"), kgo.DefaultProduceTopic("z"))
	produceTxn(t, fresh, "z", true, "fresh")
	if err := old.ProduceSync(ctx, &kgo.Record{Value: []byte("zombie-2")}).FirstErr(); err == nil {
		t.Fatal("the fenced producer's produce was accepted")
	}
	if err := old.EndTransaction(ctx, kgo.TryCommit); err == nil {
		t.Fatal("the fenced producer's commit was accepted")
	}
	if got := consumeAll(t, ts, "z", kgo.ReadCommitted(), 1); fmt.Sprint(got) != "[fresh]" {
		t.Fatalf("read_committed saw %v", got)
	}
}

// TestTxnTimeoutAborts: a transaction abandoned past its timeout is
// aborted by the coordinator and the last stable offset moves on.
func TestTxnTimeoutAborts(t *testing.T) {
	ts := startServer(t, func(c *Config) { c.Txn.AbortCheckInterval = 50 * time.Millisecond })
	if _, err := ts.cluster.CreateTopic("to", 1, nil, false); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	p := ts.client(t, kgo.TransactionalID("to-1"), kgo.DefaultProduceTopic("to"), kgo.TransactionTimeout(time.Second))
	if err := p.BeginTransaction(); err != nil {
		t.Fatal(err)
	}
	if err := p.ProduceSync(ctx, &kgo.Record{Value: []byte("abandoned")}).FirstErr(); err != nil {
		t.Fatal(err)
	}
	if committed, _ := offsetsOf(t, ts, "to"); committed != 0 {
		t.Fatalf("LSO %d with the transaction open, want 0", committed)
	}
	for ctx.Err() == nil {
		committed, uncommitted := offsetsOf(t, ts, "to")
		if committed == uncommitted && committed == 2 { // the record and the ABORT marker
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	if ctx.Err() != nil {
		t.Fatal("the abandoned transaction was never aborted")
	}
	md, err := ts.Txn().Describe("to-1")
	if err != nil || md.State != txn.CompleteAbort || md.ProducerEpoch != 1 {
		t.Fatalf("after the timeout: %+v %v, want CompleteAbort at epoch 1 (the producer fenced)", md, err)
	}
	if err := p.EndTransaction(ctx, kgo.TryCommit); err == nil {
		t.Fatal("commit of the timed-out transaction was accepted")
	}
}

// TestTxnGroupTransactSession: consume-transform-produce with franz-go's
// GroupTransactSession: every input record leads to exactly one committed
// output, and the group's committed offset covers the input once the
// transaction commits.
func TestTxnGroupTransactSession(t *testing.T) {
	ts := startServer(t)
	for _, topic := range []string{"in", "out"} {
		if _, err := ts.cluster.CreateTopic(topic, 1, nil, false); err != nil {
			t.Fatal(err)
		}
	}
	const inputs = 50
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	src := ts.client(t, kgo.DefaultProduceTopic("in"))
	for i := 0; i < inputs; i++ {
		if err := src.ProduceSync(ctx, &kgo.Record{Value: []byte(fmt.Sprintf("v%02d", i))}).FirstErr(); err != nil {
			t.Fatal(err)
		}
	}
	sess, err := kgo.NewGroupTransactSession(kgo.SeedBrokers(ts.addr), kgo.TransactionalID("ctp"), kgo.ConsumerGroup("ctp-group"),
		kgo.ConsumeTopics("in"), kgo.DefaultProduceTopic("out"), kgo.FetchIsolationLevel(kgo.ReadCommitted()),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	if err != nil {
		t.Fatal(err)
	}
	defer sess.Close()
	done := 0
	for done < inputs && ctx.Err() == nil {
		fs := sess.PollFetches(ctx)
		if err := sess.Begin(); err != nil {
			t.Fatal(err)
		}
		fs.EachRecord(func(r *kgo.Record) {
			sess.Produce(ctx, &kgo.Record{Value: append([]byte("out-"), r.Value...)}, nil)
			done++
		})
		if _, err := sess.End(ctx, kgo.TryCommit); err != nil {
			t.Fatal(err)
		}
	}
	got := consumeAll(t, ts, "out", kgo.ReadCommitted(), inputs)
	if len(got) != inputs {
		t.Fatalf("%d outputs, want %d: %v", len(got), inputs, got)
	}
	for i, v := range got {
		if v != fmt.Sprintf("out-v%02d", i) {
			t.Fatalf("output %d is %s: %v", i, v, got)
		}
	}
	adm := ts.client(t)
	req := kmsg.NewPtrOffsetFetchRequest()
	req.Group = "ctp-group"
	resp, err := req.RequestWith(ctx, adm)
	if err != nil {
		t.Fatal(err)
	}
	var offset int64 = -1
	for _, rt := range resp.Topics {
		for _, rp := range rt.Partitions {
			if rt.Topic == "in" && rp.Partition == 0 {
				offset = rp.Offset
			}
		}
	}
	if offset != inputs {
		t.Fatalf("group committed offset %d, want %d", offset, inputs)
	}
}
