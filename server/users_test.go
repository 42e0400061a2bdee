package server

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/sasl/scram"

	"github.com/cairnlog/cairn/auth/sasl"
)

// userNames lists the users s has applied.
func userNames(s *Server) []string {
	var names []string
	for _, u := range s.Cluster().Users() {
		names = append(names, u.Name)
	}
	return names
}

// waitUsers waits (bounded) until every running node has applied exactly
// want.
func waitUsers(t *testing.T, tc *testCluster, want ...string) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		done := true
		for _, s := range tc.servers {
			done = done && slices.Equal(userNames(s), want)
		}
		if done {
			return
		}
		if time.Now().After(deadline) {
			for id, s := range tc.servers {
				t.Errorf("node %d has users %v", id, userNames(s))
			}
			t.Fatalf("users not %v on every node", want)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestUsersOnEveryNode: on a three-node cluster requiring SCRAM, a user
// created through one node's metadata proposal and another created with
// kadm through a second node reach every node; a client authenticating as
// the second produces through the third, which still knows both users
// after a restart.
func TestUsersOnEveryNode(t *testing.T) {
	tc := startClusterWith(t, &testCluster{t: t, sasl: []string{sasl.ScramSHA512}})
	salt := []byte("admin-salt")
	salted, err := sasl.SaltPassword(sasl.ScramSHA512, "admin-pw", salt, sasl.IterationsMin)
	if err != nil {
		t.Fatal(err)
	}
	if err := tc.servers[2].Cluster().UpsertScramCredential("admin", sasl.ScramSHA512, sasl.IterationsMin, salt, salted); err != nil {
		t.Fatal(err)
	}
	waitUsers(t, tc, "admin")

	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	client := func(addr, user, password string, opts ...kgo.Opt) *kgo.Client {
		cl, err := kgo.NewClient(append([]kgo.Opt{kgo.SeedBrokers(addr),
			kgo.SASL(scram.Auth{User: user, Pass: password}.AsSha512Mechanism())}, opts...)...)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(cl.Close)
		return cl
	}
	adm := kadm.NewClient(client(tc.servers[1].KafkaAddr(), "admin", "admin-pw"))
	altered, err := adm.AlterUserSCRAMs(ctx, nil, []kadm.UpsertSCRAM{{User: "bob", Mechanism: kadm.ScramSha512, Password: "bob-pw"}})
	if err != nil || altered["bob"].Err != nil {
		t.Fatalf("create bob through node 1: %v %v", err, altered["bob"].Err)
	}
	waitUsers(t, tc, "admin", "bob")

	bob := client(tc.servers[3].KafkaAddr(), "bob", "bob-pw", kgo.DefaultProduceTopic("bob-writes"), kgo.AllowAutoTopicCreation())
	if err := bob.ProduceSync(ctx, &kgo.Record{Value: []byte("hi")}).FirstErr(); err != nil {
		t.Fatalf("bob produces through node 3: %v", err)
	}
	bob.Close()

	tc.stop(3)
	tc.restart(3)
	if names := userNames(tc.servers[3]); !slices.Equal(names, []string{"admin", "bob"}) {
		t.Fatalf("node 3 after a restart has users %v", names)
	}
	again := client(tc.servers[3].KafkaAddr(), "bob", "bob-pw")
	if err := again.Ping(ctx); err != nil {
		t.Fatalf("bob logs in to the restarted node 3: %v", err)
	}
	wrong := client(tc.servers[3].KafkaAddr(), "bob", "admin-pw", kgo.RequestRetries(0))
	if err := wrong.Ping(ctx); err == nil {
		t.Fatal("bob logged in with admin's password")
	}
}
