package server

import (
	"context"
	"crypto/tls"
	"fmt"
	"sort"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/cairnlog/cairn/auth"
	"github.com/cairnlog/cairn/internal/testcerts"
	"github.com/cairnlog/cairn/tlsconf"
	"github.com/cairnlog/cairn/txn"
)

// TestClusterTransactionsUnderAuthorizerOverMutualTLS: three nodes whose
// only Kafka listener is SSL with client certificates required, the
// authorizer on, and the nodes over mutual TLS. A transaction over three
// partitions commits: the coordinator's markers to the other leaders (and
// their KIP-890 checks) go over the node-to-node connection, which no
// client listener's certificate requirement or ACL stands in front of; a
// read_committed consumer sees every record.
func TestClusterTransactionsUnderAuthorizerOverMutualTLS(t *testing.T) {
	p := newPKI(t)
	ca := p.clientCA
	nodeCert := ca.Issue(t, p.dir, "peer", testcerts.Options{Server: true})
	admin := ca.Issue(t, p.dir, "admin", testcerts.Options{})
	tc := startClusterWith(t, &testCluster{t: t, config: func(_ int32, c *Config) {
		c.Listeners = []Listener{sslListener("SECURE")}
		c.TLS = tlsconf.Files{CertFile: nodeCert.CertFile, KeyFile: nodeCert.KeyFile, ClientCAFile: ca.CertFile, ClientAuth: tlsconf.ClientAuthRequired}
		c.RaftTLS = true
		c.Authorizer = true
		c.SuperUsers = []auth.Principal{auth.User("CN=peer"), auth.User("CN=admin")}
	}})
	clientCfg := &tls.Config{RootCAs: ca.Pool(), Certificates: []tls.Certificate{admin.TLS}, MinVersion: tls.VersionTLS12}
	dialTLS := kgo.DialTLSConfig(clientCfg)
	const topic, id = "txn-tls", "txn-tls-producer"
	ctx, cancel := context.WithTimeout(context.Background(), 4*failoverStageWaitMax)
	defer cancel()
	createReplicated(ctx, t, tc, topic, dialTLS)

	producer := newFailoverClient(t, tc, dialTLS, kgo.TransactionalID(id), kgo.RecordPartitioner(kgo.ManualPartitioner()))
	if err := producer.BeginTransaction(); err != nil {
		t.Fatal(err)
	}
	for i := range failoverPartitions {
		r := &kgo.Record{Topic: topic, Partition: int32(i), Value: []byte(fmt.Sprintf("v%d", i))}
		if err := producer.ProduceSync(ctx, r).FirstErr(); err != nil {
			t.Fatalf("produce to partition %d: %v", i, err)
		}
	}
	if err := producer.EndTransaction(ctx, kgo.TryCommit); err != nil {
		t.Fatalf("commit: %v", err)
	}
	leaders := map[int32]bool{}
	for i := range failoverPartitions {
		leaders[tc.leaderOf(topic, int32(i))] = true
	}
	if len(leaders) < 2 {
		t.Logf("the partitions are led by %v only: fewer markers crossed nodes", leaders)
	}

	consumer := newFailoverClient(t, tc, dialTLS, kgo.ConsumeTopics(topic), kgo.FetchIsolationLevel(kgo.ReadCommitted()),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	var got []string
	for len(got) < failoverPartitions && ctx.Err() == nil {
		consumer.PollFetches(ctx).EachRecord(func(r *kgo.Record) { got = append(got, string(r.Value)) })
	}
	sort.Strings(got)
	if fmt.Sprint(got) != "[v0 v1 v2]" {
		t.Fatalf("read_committed saw %v", got)
	}
	state, ok := tc.servers[1].Cluster().Topic(txn.StateTopic)
	if !ok {
		t.Fatalf("%s was not created", txn.StateTopic)
	}
	coordinator := tc.leaderOf(txn.StateTopic, txn.PartitionFor(id, int32(len(state.Partitions))))
	deadline := time.Now().Add(failoverStageWaitMax)
	for {
		md, err := tc.servers[coordinator].kafka.Txn().Describe(id)
		if err == nil && md.State == txn.CompleteCommit {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the coordinator (node %d) has %+v, %v; want CompleteCommit", coordinator, md, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
