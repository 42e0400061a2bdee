package kafka

import (
	"context"
	"errors"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/cairnlog/cairn/acl"
	"github.com/cairnlog/cairn/auth"
)

// TestEveryAPIHasAnAuthorization: an API registered without saying what it
// checks fails here, and so does a decision for an API not registered.
func TestEveryAPIHasAnAuthorization(t *testing.T) {
	registered := map[int16]bool{}
	for _, a := range SupportedAPIs() {
		registered[a.Key] = true
		if authorization[a.Key] == "" {
			t.Errorf("%s (key %d) is registered without an authorization decision in authorize.go", a.Name, a.Key)
		}
	}
	for key := range authorization {
		if !registered[key] {
			t.Errorf("authorization names %s (key %d), which is not registered", kmsg.NameForKey(key), key)
		}
	}
}

// TestCompatDocAuthorization: the authorization table of
// docs/kafka-compat.md is the one authorize.go declares, in key order.
func TestCompatDocAuthorization(t *testing.T) {
	text, err := os.ReadFile(compatDocPath)
	if err != nil {
		t.Fatal(err)
	}
	_, section, ok := strings.Cut(string(text), "\n## Authorization\n")
	if !ok {
		t.Fatalf("%s has no ## Authorization section", compatDocPath)
	}
	section, _, _ = strings.Cut(section, "\n## ")
	var got []string
	for _, line := range strings.Split(section, "\n") {
		if strings.HasPrefix(line, "| ") && !strings.HasPrefix(line, "| API ") && !strings.HasPrefix(line, "| ---") {
			got = append(got, line)
		}
	}
	var want []string
	for _, a := range SupportedAPIs() {
		want = append(want, "| "+a.Name+" | "+authorization[a.Key]+" |")
	}
	if !slices.Equal(got, want) {
		t.Fatalf("the ## Authorization table of %s should be:\n| API | Needs |\n| --- | --- |\n%s", compatDocPath, strings.Join(want, "\n"))
	}
}

// testPrincipals is the principal a test connection acts as, by client id:
// the stand-in for authentication, which these tests do not exercise.
var (
	testPrincipals     sync.Map // client id → auth.Principal
	testPrincipalsOnce sync.Once
)

// actAsClientPrincipals wraps every handler so that a connection whose
// request names a client id of testPrincipals acts as that principal.
func actAsClientPrincipals() {
	testPrincipalsOnce.Do(func() {
		for key, a := range apis {
			h := a.handle
			a.handle = func(s *Server, c *conn, r kmsg.Request) reply {
				if p, ok := testPrincipals.Load(c.clientID); ok {
					c.principal = p.(auth.Principal)
				}
				return h(s, c, r)
			}
			apis[key] = a
		}
	})
}

// authServer starts a server with the authorizer on and User:admin a super
// user; clients act as the user they are given.
func authServer(t *testing.T, allowIfNoACL bool) *testServer {
	t.Helper()
	actAsClientPrincipals()
	for _, u := range []string{"admin", "alice", "bob"} {
		testPrincipals.Store("acl-test-"+u, auth.User(u))
	}
	return startServer(t, func(c *Config) {
		c.AutoCreateTopics = false
		c.Authorizer = acl.NewAuthorizer(acl.Config{SuperUsers: []auth.Principal{auth.User("admin")}, AllowEveryoneIfNoACL: allowIfNoACL})
	})
}

// as returns a client acting as user.
func (ts *testServer) as(t *testing.T, user string, opts ...kgo.Opt) *kgo.Client {
	t.Helper()
	return ts.client(t, append([]kgo.Opt{kgo.ClientID("acl-test-" + user), kgo.RecordRetries(2),
		kgo.RetryTimeout(3 * time.Second)}, opts...)...)
}

func testContext(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// grant has admin create ACLs with the builder.
func grant(t *testing.T, ts *testServer, b *kadm.ACLBuilder) {
	t.Helper()
	results, err := kadm.NewClient(ts.as(t, "admin")).CreateACLs(testContext(t), b)
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range results {
		if r.Err != nil {
			t.Fatalf("create ACL %+v: %v", r, r.Err)
		}
	}
}

func createTopics(t *testing.T, ts *testServer, names ...string) {
	t.Helper()
	for _, name := range names {
		if _, err := ts.cluster.CreateTopic(name, 1, nil, false); err != nil {
			t.Fatal(err)
		}
	}
}

// produceAs sends one record as user and returns the error it got.
func produceAs(t *testing.T, ts *testServer, user, topic string, opts ...kgo.Opt) error {
	t.Helper()
	return ts.as(t, user, opts...).ProduceSync(testContext(t), &kgo.Record{Topic: topic, Value: []byte("v")}).FirstErr()
}

// TestProduceNeedsWrite: a principal with Describe but not Write on a topic
// is refused with TOPIC_AUTHORIZATION_FAILED; with Write it produces, an
// idempotent producer included (Write on a topic is enough for its
// InitProducerId); a principal with nothing at all is refused too, and a
// super user needs no ACL.
func TestProduceNeedsWrite(t *testing.T) {
	ts := authServer(t, false)
	createTopics(t, ts, "orders")
	grant(t, ts, kadm.NewACLs().Topics("orders").Allow("User:alice").Operations(kadm.OpWrite))
	grant(t, ts, kadm.NewACLs().Topics("orders").Allow("User:bob").Operations(kadm.OpDescribe))
	if err := produceAs(t, ts, "alice", "orders"); err != nil {
		t.Fatalf("alice, allowed Write: %v", err)
	}
	if err := produceAs(t, ts, "bob", "orders", kgo.DisableIdempotentWrite()); !errors.Is(err, kerr.TopicAuthorizationFailed) {
		t.Fatalf("bob, Describe only: %v, want TOPIC_AUTHORIZATION_FAILED", err)
	}
	if err := produceAs(t, ts, "carol", "orders", kgo.DisableIdempotentWrite()); err == nil {
		t.Fatal("an anonymous client produced")
	}
	if err := produceAs(t, ts, "admin", "orders"); err != nil {
		t.Fatalf("the super user: %v", err)
	}
	// Bob's idempotent producer has Write on no topic: its InitProducerId
	// is refused.
	if err := produceAs(t, ts, "bob", "orders"); !errors.Is(err, kerr.ClusterAuthorizationFailed) {
		t.Fatalf("bob's idempotent producer: %v, want CLUSTER_AUTHORIZATION_FAILED", err)
	}
}

// TestMetadataHidesTopics: listing topics shows only those with Describe;
// naming one without it answers TOPIC_AUTHORIZATION_FAILED.
func TestMetadataHidesTopics(t *testing.T) {
	ts := authServer(t, false)
	createTopics(t, ts, "orders", "payments", "audit")
	grant(t, ts, kadm.NewACLs().Topics("orders").Allow("User:alice").Operations(kadm.OpRead))
	grant(t, ts, kadm.NewACLs().Topics("audit").Allow("User:alice").Operations(kadm.OpDescribeConfigs))
	adm := kadm.NewClient(ts.as(t, "alice"))
	topics, err := adm.ListTopics(testContext(t))
	if err != nil {
		t.Fatal(err)
	}
	if names := topics.Names(); !slices.Equal(names, []string{"orders"}) {
		t.Fatalf("alice lists %v, want [orders] (Read implies Describe; DescribeConfigs does not)", names)
	}
	req := kmsg.NewPtrMetadataRequest()
	named := kmsg.NewMetadataRequestTopic()
	named.Topic = kmsg.StringPtr("payments")
	req.Topics = append(req.Topics, named)
	resp, err := req.RequestWith(testContext(t), ts.as(t, "alice"))
	if err != nil {
		t.Fatal(err)
	}
	if len(resp.Topics) != 1 || resp.Topics[0].ErrorCode != kerr.TopicAuthorizationFailed.Code {
		t.Fatalf("payments named: %+v, want TOPIC_AUTHORIZATION_FAILED", resp.Topics)
	}
	all, err := kadm.NewClient(ts.as(t, "admin")).ListTopics(testContext(t))
	if err != nil || len(all.Names()) != 3 {
		t.Fatalf("the super user lists %v, %v", all.Names(), err)
	}
}

// TestPrefixedAndDenyACLs: a PREFIXED allow covers the topics starting with
// it; a DENY wins over an ALLOW, a wildcard one included.
func TestPrefixedAndDenyACLs(t *testing.T) {
	ts := authServer(t, false)
	createTopics(t, ts, "orders", "orders-eu", "payments")
	grant(t, ts, kadm.NewACLs().Topics("ord").ResourcePatternType(kadm.ACLPatternPrefixed).
		Allow("User:*").Operations(kadm.OpWrite))
	grant(t, ts, kadm.NewACLs().Topics("orders-eu").Deny("User:bob").Operations(kadm.OpWrite))
	for _, tc := range []struct {
		user, topic string
		allowed     bool
	}{
		{"alice", "orders", true},
		{"alice", "orders-eu", true},
		{"bob", "orders", true},
		{"bob", "orders-eu", false},
		{"alice", "payments", false},
	} {
		err := produceAs(t, ts, tc.user, tc.topic, kgo.DisableIdempotentWrite())
		if tc.allowed && err != nil || !tc.allowed && !errors.Is(err, kerr.TopicAuthorizationFailed) {
			t.Errorf("%s producing to %s: %v, want allowed=%v", tc.user, tc.topic, err, tc.allowed)
		}
	}
}

// TestAllowEveryoneIfNoACLFound: with the opt-in, a topic no ACL names is
// open to all, and one that has an ACL is not.
func TestAllowEveryoneIfNoACLFound(t *testing.T) {
	ts := authServer(t, true)
	createTopics(t, ts, "open", "orders")
	grant(t, ts, kadm.NewACLs().Topics("orders").Allow("User:alice").Operations(kadm.OpWrite))
	if err := produceAs(t, ts, "bob", "open", kgo.DisableIdempotentWrite()); err != nil {
		t.Fatalf("bob on a topic without ACLs: %v", err)
	}
	if err := produceAs(t, ts, "bob", "orders", kgo.DisableIdempotentWrite()); !errors.Is(err, kerr.TopicAuthorizationFailed) {
		t.Fatalf("bob on a topic with ACLs for alice: %v", err)
	}
}

// TestACLAdminAPIs: kadm creates, describes with filters (MATCH, ANY,
// principal) and deletes with a filter; a non-super user without Alter on
// the cluster is refused.
func TestACLAdminAPIs(t *testing.T) {
	ts := authServer(t, false)
	adm := kadm.NewClient(ts.as(t, "admin"))
	ctx := testContext(t)
	grant(t, ts, kadm.NewACLs().Topics("orders").Allow("User:alice").Operations(kadm.OpRead, kadm.OpWrite))
	grant(t, ts, kadm.NewACLs().Topics("ord").ResourcePatternType(kadm.ACLPatternPrefixed).Deny("User:bob").DenyHosts("10.0.0.1").Operations(kadm.OpAll))
	grant(t, ts, kadm.NewACLs().Groups("g1").Allow("User:alice").Operations(kadm.OpRead))

	count := func(b *kadm.ACLBuilder) int {
		t.Helper()
		described, err := adm.DescribeACLs(ctx, b)
		if err != nil {
			t.Fatal(err)
		}
		n := 0
		for _, d := range described {
			if d.Err != nil {
				t.Fatal(d.Err)
			}
			n += len(d.Described)
		}
		return n
	}
	if n := count(kadm.NewACLs().AnyResource().ResourcePatternType(kadm.ACLPatternAny).Allow().AllowHosts().Deny().DenyHosts().Operations(kadm.OpAny)); n != 4 {
		t.Fatalf("all ACLs: %d, want 4", n)
	}
	if n := count(kadm.NewACLs().Topics("orders").ResourcePatternType(kadm.ACLPatternMatch).Allow().AllowHosts().Deny().DenyHosts().Operations(kadm.OpAny)); n != 3 {
		t.Fatalf("MATCH orders: %d, want 3 (two literal, one prefixed)", n)
	}
	if n := count(kadm.NewACLs().Topics("orders").ResourcePatternType(kadm.ACLPatternLiteral).Allow().AllowHosts().Deny().DenyHosts().Operations(kadm.OpAny)); n != 2 {
		t.Fatalf("LITERAL orders: %d, want 2", n)
	}
	if n := count(kadm.NewACLs().AnyResource().ResourcePatternType(kadm.ACLPatternAny).Allow("User:alice").AllowHosts().Operations(kadm.OpRead)); n != 2 {
		t.Fatalf("alice's Read: %d, want 2 (topic and group)", n)
	}

	results, err := kadm.NewClient(ts.as(t, "alice")).CreateACLs(ctx, kadm.NewACLs().Topics("x").Allow("User:alice").Operations(kadm.OpAll))
	if err != nil || len(results) != 1 || !errors.Is(results[0].Err, kerr.ClusterAuthorizationFailed) {
		t.Fatalf("alice's create: %+v, %v; want CLUSTER_AUTHORIZATION_FAILED", results, err)
	}
	described, err := kadm.NewClient(ts.as(t, "bob")).DescribeACLs(ctx, kadm.NewACLs().AnyResource().ResourcePatternType(kadm.ACLPatternAny).Allow().AllowHosts().Operations(kadm.OpAny))
	if err != nil || len(described) == 0 || !errors.Is(described[0].Err, kerr.ClusterAuthorizationFailed) {
		t.Fatalf("bob's describe: %+v, %v; want CLUSTER_AUTHORIZATION_FAILED", described, err)
	}

	deleted, err := adm.DeleteACLs(ctx, kadm.NewACLs().Topics("orders").ResourcePatternType(kadm.ACLPatternMatch).Allow("User:alice").AllowHosts().Operations(kadm.OpAny))
	if err != nil {
		t.Fatal(err)
	}
	if len(deleted) != 1 || deleted[0].Err != nil || len(deleted[0].Deleted) != 2 {
		t.Fatalf("deleted %+v, want alice's two topic ACLs", deleted)
	}
	if n := count(kadm.NewACLs().AnyResource().ResourcePatternType(kadm.ACLPatternAny).Allow().AllowHosts().Deny().DenyHosts().Operations(kadm.OpAny)); n != 2 {
		t.Fatalf("after the delete: %d, want 2", n)
	}
	if n := ts.cluster.ACLs().Len(); n != 2 {
		t.Fatalf("the cluster holds %d ACLs, want 2", n)
	}
}

// TestConsumerGroupWithReadACLs: Read on a topic and on a group is all a
// consumer group member needs (FindCoordinator, JoinGroup, SyncGroup,
// Heartbeat, Fetch, OffsetCommit, OffsetFetch), as in Kafka.
func TestConsumerGroupWithReadACLs(t *testing.T) {
	ts := authServer(t, false)
	createTopics(t, ts, "orders")
	for i := range 3 {
		if err := ts.as(t, "admin").ProduceSync(testContext(t), &kgo.Record{Topic: "orders", Value: []byte{byte(i)}}).FirstErr(); err != nil {
			t.Fatal(err)
		}
	}
	grant(t, ts, kadm.NewACLs().Topics("orders").Groups("readers").Allow("User:alice").Operations(kadm.OpRead))
	ctx := testContext(t)
	consumer := ts.as(t, "alice", kgo.ConsumeTopics("orders"), kgo.ConsumerGroup("readers"),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()), kgo.DisableAutoCommit())
	got := 0
	for got < 3 {
		fetches := consumer.PollFetches(ctx)
		if err := fetches.Err(); err != nil {
			t.Fatalf("after %d records: %v", got, err)
		}
		got += fetches.NumRecords()
	}
	if err := consumer.CommitUncommittedOffsets(ctx); err != nil {
		t.Fatal(err)
	}
	offsets, err := kadm.NewClient(ts.as(t, "alice")).FetchOffsets(ctx, "readers")
	if err != nil {
		t.Fatal(err)
	}
	if o, ok := offsets.Lookup("orders", 0); !ok || o.Err != nil || o.At != 3 {
		t.Fatalf("committed offset of orders-0: %+v (found %v), want 3", o, ok)
	}
}
