package server

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"slices"
	"sort"
	"testing"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
	"github.com/twmb/franz-go/pkg/sasl/scram"

	"github.com/cairnlog/cairn/auth"
	"github.com/cairnlog/cairn/auth/sasl"
	"github.com/cairnlog/cairn/kafka"
	"github.com/cairnlog/cairn/tlsconf"
)

// TestClusterTransactionsOverSASLListeners: three nodes whose only Kafka
// listener asks clients for SCRAM (SASL_PLAINTEXT, or SASL_SSL with the
// nodes over mutual TLS), the authorizer on and no ACL naming a node. A
// transaction spans three partitions led by three different nodes, so the
// coordinator's markers and the leaders' KIP-890 checks cross nodes: they
// go over the node-to-node transport, which needs no SASL credentials. A
// committed, an aborted and a committed transaction: read_committed sees
// the records of the two committed ones only. A client that is not a super
// user cannot write markers itself (CLUSTER_AUTHORIZATION_FAILED).
func TestClusterTransactionsOverSASLListeners(t *testing.T) {
	for _, protocol := range []kafka.SecurityProtocol{kafka.SASLPlaintext, kafka.SASLSSL} {
		t.Run(string(protocol), func(t *testing.T) { clusterTransactionsOverSASL(t, protocol) })
	}
}

func clusterTransactionsOverSASL(t *testing.T, protocol kafka.SecurityProtocol) {
	var clientTLS *tls.Config
	configure := func(_ int32, c *Config) {
		c.Listeners = []Listener{{Name: "CLIENTS", Protocol: protocol, Addr: "127.0.0.1:0"}}
		c.Authorizer = true
		c.SuperUsers = []auth.Principal{auth.User("admin")}
	}
	if protocol.TLS() {
		p := newPKI(t)
		clientTLS = p.clientTLS(nil)
		plain := configure
		configure = func(id int32, c *Config) {
			plain(id, c)
			c.TLS = tlsconf.Files{CertFile: p.node.CertFile, KeyFile: p.node.KeyFile, ClientCAFile: p.ca.CertFile, ClientAuth: tlsconf.ClientAuthNone}
			c.RaftTLS = true
		}
	}
	tc := startClusterWith(t, &testCluster{t: t, sasl: []string{sasl.ScramSHA512}, config: configure})
	for _, user := range []string{"admin", "bob"} {
		salt := []byte(user + "-salt")
		salted, err := sasl.SaltPassword(sasl.ScramSHA512, user+"-pw", salt, sasl.IterationsMin)
		if err != nil {
			t.Fatal(err)
		}
		if err := tc.servers[1].Cluster().UpsertScramCredential(user, sasl.ScramSHA512, sasl.IterationsMin, salt, salted); err != nil {
			t.Fatal(err)
		}
	}
	waitUsers(t, tc, "admin", "bob")
	as := func(user string) []kgo.Opt {
		opts := []kgo.Opt{kgo.SASL(scram.Auth{User: user, Pass: user + "-pw"}.AsSha512Mechanism())}
		if clientTLS != nil {
			opts = append(opts, kgo.DialTLSConfig(clientTLS))
		}
		return opts
	}

	const topic, id = "txn-sasl", "txn-sasl-producer"
	ctx, cancel := context.WithTimeout(context.Background(), 4*failoverStageWaitMax)
	defer cancel()
	createReplicated(ctx, t, tc, topic, as("admin")...)
	// Partition i led by node i+1: whichever node coordinates, two of
	// the three partitions are led by another.
	for i := range int32(failoverPartitions) {
		if err := tc.servers[i+1].Cluster().TransferLeader(ctx, topic, i, i+1); err != nil {
			t.Fatalf("lead %s-%d on node %d: %v", topic, i, i+1, err)
		}
		if l := tc.leaderOf(topic, i); l != i+1 {
			t.Fatalf("%s-%d is led by node %d, want %d", topic, i, l, i+1)
		}
	}

	producer := newFailoverClient(t, tc, append(as("admin"), kgo.TransactionalID(id), kgo.RecordPartitioner(kgo.ManualPartitioner()))...)
	for _, txn := range []struct {
		prefix string
		commit kgo.TransactionEndTry
	}{{"c", kgo.TryCommit}, {"a", kgo.TryAbort}, {"d", kgo.TryCommit}} {
		if err := producer.BeginTransaction(); err != nil {
			t.Fatal(err)
		}
		for i := range failoverPartitions {
			r := &kgo.Record{Topic: topic, Partition: int32(i), Value: fmt.Appendf(nil, "%s%d", txn.prefix, i)}
			if err := producer.ProduceSync(ctx, r).FirstErr(); err != nil {
				t.Fatalf("produce %s to partition %d: %v", r.Value, i, err)
			}
		}
		if err := producer.EndTransaction(ctx, txn.commit); err != nil {
			t.Fatalf("end transaction %s: %v", txn.prefix, err)
		}
	}

	// The d records follow the aborted ones in every partition: once all
	// six are read, read_committed has passed the aborted transaction.
	consumer := newFailoverClient(t, tc, append(as("admin"), kgo.ConsumeTopics(topic), kgo.FetchIsolationLevel(kgo.ReadCommitted()),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))...)
	var got []string
	for len(got) < 2*failoverPartitions && ctx.Err() == nil {
		consumer.PollFetches(ctx).EachRecord(func(r *kgo.Record) { got = append(got, string(r.Value)) })
	}
	sort.Strings(got)
	if want := []string{"c0", "c1", "c2", "d0", "d1", "d2"}; !slices.Equal(got, want) {
		t.Fatalf("read_committed saw %v, want %v", got, want)
	}

	bob := newFailoverClient(t, tc, as("bob")...)
	req := kmsg.NewPtrWriteTxnMarkersRequest()
	m := kmsg.NewWriteTxnMarkersRequestMarker()
	m.ProducerID, m.ProducerEpoch, m.Committed = 1, 0, false
	mt := kmsg.NewWriteTxnMarkersRequestMarkerTopic()
	mt.Topic, mt.Partitions = topic, []int32{0}
	m.Topics = append(m.Topics, mt)
	req.Markers = append(req.Markers, m)
	// Straight to a broker: kgo would look the partition's leader up
	// first, which bob may not Describe.
	r, err := bob.SeedBrokers()[0].Request(ctx, req)
	if err != nil {
		t.Fatal(err)
	}
	code := r.(*kmsg.WriteTxnMarkersResponse).Markers[0].Topics[0].Partitions[0].ErrorCode
	if err := kerr.ErrorForCode(code); !errors.Is(err, kerr.ClusterAuthorizationFailed) {
		t.Fatalf("bob's WriteTxnMarkers answered %v, want CLUSTER_AUTHORIZATION_FAILED", err)
	}
}
