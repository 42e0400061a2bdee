package integration

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/IBM/sarama"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/cairnlog/cairn/txn"
)

// Bounds of the transaction tests.
const (
	txnWaitMax     = 90 * time.Second
	txnInputs      = 300
	txnKills       = 3
	txnSessionPace = 10 * time.Millisecond // between transactions, so kills land mid-run
)

// txnClient is a franz-go client of the server, closed at cleanup.
func txnClient(t *testing.T, addr string, opts ...kgo.Opt) *kgo.Client {
	t.Helper()
	cl, err := kgo.NewClient(append([]kgo.Opt{kgo.SeedBrokers(addr)}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cl.Close)
	return cl
}

// TestKcatReadCommitted: librdkafka (kcat) with isolation.level=
// read_committed reads what a franz-go transactional producer committed,
// not what it aborted nor what it left open; read_uncommitted reads all of
// it, without the markers.
func TestKcatReadCommitted(t *testing.T) {
	kcatPath := requireTool(t, "kcat")
	server := startCairn(t, "")
	ctx, cancel := context.WithTimeout(context.Background(), txnWaitMax)
	defer cancel()
	p := txnClient(t, server.kafkaAddr, kgo.TransactionalID("kcat-txn"), kgo.DefaultProduceTopic("kcat-txn"),
		kgo.AllowAutoTopicCreation())
	write := func(values ...string) {
		t.Helper()
		if err := p.BeginTransaction(); err != nil {
			t.Fatal(err)
		}
		for _, v := range values {
			if err := p.ProduceSync(ctx, &kgo.Record{Value: []byte(v)}).FirstErr(); err != nil {
				t.Fatal(err)
			}
		}
	}
	txn := func(end kgo.TransactionEndTry, values ...string) {
		t.Helper()
		write(values...)
		if err := p.EndTransaction(ctx, end); err != nil {
			t.Fatal(err)
		}
	}
	txn(kgo.TryCommit, "c1", "c2")
	txn(kgo.TryAbort, "a1", "a2")
	txn(kgo.TryCommit, "c3")
	write("open") // left open: read_committed stops before it
	consume := func(level string) string {
		return kcat(t, kcatPath, server.kafkaAddr, "", "-t", "kcat-txn", "-C", "-e", "-o", "beginning",
			"-X", "isolation.level="+level, "-f", `%s\n`)
	}
	if got := consume("read_committed"); got != "c1\nc2\nc3\n" {
		t.Fatalf("read_committed: %q", got)
	}
	if got := consume("read_uncommitted"); got != "c1\nc2\na1\na2\nc3\nopen\n" {
		t.Fatalf("read_uncommitted: %q", got)
	}
}

// TestTransactSessionSurvivesSIGKILL: franz-go's GroupTransactSession
// consumes an input topic and writes one output per input, committing the
// group's offsets in each transaction, while the server is SIGKILLed and
// restarted three times. A read_committed consumer then sees exactly one
// output per input, and a read_uncommitted one at least as many (the
// outputs of aborted attempts among them).
func TestTransactSessionSurvivesSIGKILL(t *testing.T) {
	server := startCairn(t, "")
	ctx, cancel := context.WithTimeout(context.Background(), txnWaitMax)
	defer cancel()
	src := txnClient(t, server.kafkaAddr, kgo.DefaultProduceTopic("kill-in"), kgo.AllowAutoTopicCreation())
	for i := range txnInputs {
		if err := src.ProduceSync(ctx, &kgo.Record{Value: []byte(fmt.Sprintf("%03d", i))}).FirstErr(); err != nil {
			t.Fatal(err)
		}
	}
	// Creates the output topic.
	if err := src.ProduceSync(ctx, &kgo.Record{Topic: "kill-out-create", Value: []byte("x")}).FirstErr(); err != nil {
		t.Fatal(err)
	}
	sess, err := kgo.NewGroupTransactSession(kgo.SeedBrokers(server.kafkaAddr), kgo.TransactionalID("kill-ctp"),
		kgo.ConsumerGroup("kill-group"), kgo.ConsumeTopics("kill-in"), kgo.DefaultProduceTopic("kill-out"),
		kgo.AllowAutoTopicCreation(), kgo.FetchIsolationLevel(kgo.ReadCommitted()),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()), kgo.FetchMaxPartitionBytes(300))
	if err != nil {
		t.Fatal(err)
	}
	defer sess.Close()
	stopTransform := transformOutputs(ctx, sess)
	defer stopTransform()

	watcher := txnClient(t, server.kafkaAddr, kgo.ConsumeTopics("kill-out"), kgo.FetchIsolationLevel(kgo.ReadCommitted()),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	seen := map[string]int{}
	for i := range txnKills {
		want := (i + 1) * txnInputs / (txnKills + 1)
		for len(seen) < want && ctx.Err() == nil {
			watcher.PollFetches(ctx).EachRecord(func(r *kgo.Record) { seen[string(r.Value)]++ })
		}
		server.Kill()
		server.Restart()
	}
	for len(seen) < txnInputs && ctx.Err() == nil {
		watcher.PollFetches(ctx).EachRecord(func(r *kgo.Record) { seen[string(r.Value)]++ })
	}
	stopTransform()
	drain, drained := context.WithTimeout(ctx, 2*time.Second)
	defer drained()
	for drain.Err() == nil {
		watcher.PollFetches(drain).EachRecord(func(r *kgo.Record) { seen[string(r.Value)]++ })
	}
	if len(seen) != txnInputs {
		t.Fatalf("%d distinct outputs committed, want %d", len(seen), txnInputs)
	}
	var twice []string
	for v, n := range seen {
		if n != 1 {
			twice = append(twice, fmt.Sprintf("%s×%d", v, n))
		}
	}
	sort.Strings(twice)
	if len(twice) > 0 {
		t.Fatalf("outputs committed more than once: %s", strings.Join(twice, " "))
	}
}

// TestSaramaTransactions: IBM/sarama's transactional producer commits and
// aborts against Cairn; a franz-go read_committed consumer sees only what
// it committed.
func TestSaramaTransactions(t *testing.T) {
	server := startCairn(t, "")
	createTopic(t, server.kafkaAddr, "sarama-txn", 1, nil)
	config := saramaConfig(&sarama.V3_6_0_0)
	config.Producer.Idempotent = true
	config.Producer.Transaction.ID = "sarama-txn"
	config.Net.MaxOpenRequests = 1
	producer, err := sarama.NewSyncProducer([]string{server.kafkaAddr}, config)
	if err != nil {
		t.Fatal(err)
	}
	defer producer.Close()
	txn := func(commit bool, values ...string) {
		t.Helper()
		if err := producer.BeginTxn(); err != nil {
			t.Fatal(err)
		}
		for _, v := range values {
			if _, _, err := producer.SendMessage(&sarama.ProducerMessage{Topic: "sarama-txn", Value: sarama.StringEncoder(v)}); err != nil {
				t.Fatalf("send %s: %v", v, err)
			}
		}
		end := producer.AbortTxn
		if commit {
			end = producer.CommitTxn
		}
		if err := end(); err != nil {
			t.Fatalf("end (commit %v): %v", commit, err)
		}
	}
	txn(true, "s1", "s2")
	txn(false, "s3")
	txn(true, "s4")
	ctx, cancel := context.WithTimeout(context.Background(), txnWaitMax)
	defer cancel()
	consumer := txnClient(t, server.kafkaAddr, kgo.ConsumeTopics("sarama-txn"), kgo.FetchIsolationLevel(kgo.ReadCommitted()),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	var got []string
	for len(got) < 3 && ctx.Err() == nil {
		consumer.PollFetches(ctx).EachRecord(func(r *kgo.Record) { got = append(got, string(r.Value)) })
	}
	if fmt.Sprint(got) != "[s1 s2 s4]" {
		t.Fatalf("read_committed saw %v", got)
	}
}

// TestClusterTransactSessionCoordinatorKilled: three `cairn serve`
// processes, RF 3 input and output topics of three partitions, and
// franz-go's GroupTransactSession consuming the input and writing one
// output per input record. The node coordinating the transactional id
// (the leader of its __transaction_state partition) is SIGKILLed and
// restarted twice while it runs. A read_committed consumer then sees
// exactly one output per input.
func TestClusterTransactSessionCoordinatorKilled(t *testing.T) {
	nodes := startCairnCluster(t)
	for _, topic := range []string{"cctp-in", "cctp-out"} {
		cairnOK(t, nodes[0], "", "topic", "create", topic, "--partitions", "3", "--replication-factor", "3")
		waitDescribed(t, nodes[1], topic)
	}
	seeds := kafkaAddrs(nodes)
	ctx, cancel := context.WithTimeout(context.Background(), 2*txnWaitMax)
	defer cancel()
	src := txnClient(t, seeds[0], kgo.SeedBrokers(seeds...), kgo.DefaultProduceTopic("cctp-in"), kgo.RequiredAcks(kgo.AllISRAcks()))
	for i := range txnInputs {
		if err := src.ProduceSync(ctx, &kgo.Record{Value: []byte(fmt.Sprintf("%03d", i))}).FirstErr(); err != nil {
			t.Fatal(err)
		}
	}
	const id = "cctp"
	sess, err := kgo.NewGroupTransactSession(kgo.SeedBrokers(seeds...), kgo.TransactionalID(id),
		kgo.ConsumerGroup("cctp-group"), kgo.ConsumeTopics("cctp-in"), kgo.DefaultProduceTopic("cctp-out"),
		kgo.FetchIsolationLevel(kgo.ReadCommitted()), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		kgo.FetchMaxPartitionBytes(300), kgo.MetadataMinAge(250*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	defer sess.Close()
	stopTransform := transformOutputs(ctx, sess)
	defer stopTransform()

	watcher := txnClient(t, seeds[0], kgo.SeedBrokers(seeds...), kgo.ConsumeTopics("cctp-out"),
		kgo.FetchIsolationLevel(kgo.ReadCommitted()), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	seen := map[string]int{}
	const kills = 2
	for i := range kills {
		want := (i + 1) * txnInputs / (kills + 1)
		for len(seen) < want && ctx.Err() == nil {
			watcher.PollFetches(ctx).EachRecord(func(r *kgo.Record) { seen[string(r.Value)]++ })
		}
		coordinator := leaderOf(ctx, t, nodes, txn.StateTopic, txn.PartitionFor(id, txn.DefaultConfig().StateTopicPartitions))
		t.Logf("killing node %d, the coordinator, with %d outputs committed", coordinator, len(seen))
		nodes[coordinator-1].Kill()
		nodes[coordinator-1].Restart()
	}
	for len(seen) < txnInputs && ctx.Err() == nil {
		watcher.PollFetches(ctx).EachRecord(func(r *kgo.Record) { seen[string(r.Value)]++ })
	}
	stopTransform()
	drain, drained := context.WithTimeout(ctx, 2*time.Second)
	defer drained()
	for drain.Err() == nil {
		watcher.PollFetches(drain).EachRecord(func(r *kgo.Record) { seen[string(r.Value)]++ })
	}
	if len(seen) != txnInputs {
		t.Fatalf("%d distinct outputs committed, want %d", len(seen), txnInputs)
	}
	for v, n := range seen {
		if n != 1 {
			t.Errorf("%s committed %d times", v, n)
		}
	}
}

// transformOutputs runs sess's consume-transform-produce loop (each input
// record v → "out-v", one transaction a poll) until the returned stop is
// called; stop waits for the loop, and may be called again.
func transformOutputs(ctx context.Context, sess *kgo.GroupTransactSession) (stop func()) {
	runCtx, stopRun := context.WithCancel(ctx)
	ran := make(chan struct{})
	go func() {
		defer close(ran)
		for runCtx.Err() == nil {
			fs := sess.PollFetches(runCtx)
			if err := sess.Begin(); err != nil {
				return
			}
			fs.EachRecord(func(r *kgo.Record) {
				sess.Produce(runCtx, &kgo.Record{Value: append([]byte("out-"), r.Value...)}, nil)
			})
			_, _ = sess.End(runCtx, kgo.TryCommit)
			time.Sleep(txnSessionPace)
		}
	}()
	var once sync.Once
	return func() { once.Do(func() { stopRun(); <-ran }) }
}
