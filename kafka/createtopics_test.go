package kafka

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/cairnlog/cairn/cluster"
)

// adminContext bounds one test's client calls.
func adminContext(t *testing.T) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// adminCreate creates a topic directly in the cluster, for tests of other APIs.
func adminCreate(t *testing.T, ts *testServer, name string, partitions int32, configs map[string]string) *cluster.Topic {
	t.Helper()
	topic, err := ts.cluster.CreateTopic(name, partitions, configs, false)
	if err != nil {
		t.Fatal(err)
	}
	return topic
}

// adminProduce appends count one-record batches to a partition and waits
// until they are durable.
func adminProduce(t *testing.T, ts *testServer, topic string, partition int32, count int) {
	t.Helper()
	cl := ts.client(t, kgo.RecordPartitioner(kgo.ManualPartitioner()))
	for i := 0; i < count; i++ {
		// Keyed, so compacted topics accept the records too.
		r := &kgo.Record{Topic: topic, Partition: partition, Key: []byte(fmt.Sprintf("key-%d", i)), Value: []byte("event")}
		if err := cl.ProduceSync(adminContext(t), r).FirstErr(); err != nil {
			t.Fatalf("produce to %s-%d: %v", topic, partition, err)
		}
	}
}

// codeOf names an error code for failure messages.
func codeOf(code int16) string {
	if code == 0 {
		return "NONE"
	}
	if err := kerr.ErrorForCode(code); err != nil {
		var ke *kerr.Error
		if errors.As(err, &ke) {
			return ke.Message
		}
	}
	return "unknown code"
}

func createTopicsRequest(version int16, validateOnly bool, topics ...kmsg.CreateTopicsRequestTopic) *kmsg.CreateTopicsRequest {
	req := kmsg.NewPtrCreateTopicsRequest()
	req.Version, req.ValidateOnly, req.TimeoutMillis = version, validateOnly, 5000
	req.Topics = topics
	return req
}

func createTopicEntry(name string, partitions int32, replicationFactor int16, configs map[string]*string) kmsg.CreateTopicsRequestTopic {
	rt := kmsg.NewCreateTopicsRequestTopic()
	rt.Topic, rt.NumPartitions, rt.ReplicationFactor = name, partitions, replicationFactor
	for k, v := range configs {
		c := kmsg.NewCreateTopicsRequestTopicConfig()
		c.Name, c.Value = k, v
		rt.Configs = append(rt.Configs, c)
	}
	return rt
}

// TestCreateTopicsVersions proves each served version (lowest, both sides of
// the flexible switch at v5, highest) creates the topic with its partitions
// and configs, and that v5+ report the count, factor and configs, v7 the id.
func TestCreateTopicsVersions(t *testing.T) {
	ts := startServer(t)
	for _, version := range []int16{0, 4, 5, 7} {
		name := fmt.Sprintf("created-v%d", version)
		entry := createTopicEntry(name, 2, 1, map[string]*string{"retention.ms": kmsg.StringPtr("1000")})
		resp := ts.dial(t).roundTrip(createTopicsRequest(version, false, entry)).(*kmsg.CreateTopicsResponse)
		if len(resp.Topics) != 1 || resp.Topics[0].Topic != name || resp.Topics[0].ErrorCode != 0 {
			t.Fatalf("v%d: response %+v", version, resp.Topics)
		}
		got := resp.Topics[0]
		topic, ok := ts.cluster.Topic(name)
		if !ok || len(topic.Partitions) != 2 || topic.Configs["retention.ms"] != "1000" {
			t.Fatalf("v%d: topic in cluster %+v, exists %v", version, topic, ok)
		}
		if version >= 5 {
			if got.NumPartitions != 2 || got.ReplicationFactor != 1 {
				t.Errorf("v%d: partitions %d, replication factor %d", version, got.NumPartitions, got.ReplicationFactor)
			}
			sources := map[string]int8{}
			for _, c := range got.Configs {
				sources[c.Name] = c.Source
			}
			if sources["retention.ms"] != 1 || sources["cleanup.policy"] != 5 {
				t.Errorf("v%d: config sources %v, want retention.ms 1 (topic), cleanup.policy 5 (default)", version, sources)
			}
		}
		if version >= 7 && (got.TopicID != topic.ID || got.TopicID == [16]byte{}) {
			t.Errorf("v%d: topic id %x, cluster has %x", version, got.TopicID, topic.ID)
		}
	}
}

// TestCreateTopicsRefusals proves each invalid entry gets its Kafka error
// code, and that a refused entry creates nothing.
func TestCreateTopicsRefusals(t *testing.T) {
	ts := startServer(t, func(c *Config) { c.DefaultPartitions = 3 })
	adminCreate(t, ts, "existing", 1, nil)
	assign := func(partition int32, replicas ...int32) kmsg.CreateTopicsRequestTopicReplicaAssignment {
		a := kmsg.NewCreateTopicsRequestTopicReplicaAssignment()
		a.Partition, a.Replicas = partition, replicas
		return a
	}
	withAssignment := func(name string, partitions int32, a ...kmsg.CreateTopicsRequestTopicReplicaAssignment) kmsg.CreateTopicsRequestTopic {
		rt := createTopicEntry(name, partitions, -1, nil)
		rt.ReplicaAssignment = a
		return rt
	}
	cases := []struct {
		name        string
		entry       kmsg.CreateTopicsRequestTopic
		code        *kerr.Error // nil: created
		partitions  int
		messageHint string
	}{
		{"default partitions", createTopicEntry("defaulted", -1, -1, nil), nil, 3, ""},
		{"replication factor 3", createTopicEntry("rf3", 1, 3, nil), kerr.InvalidReplicationFactor, 0, "single node"},
		{"replication factor 0", createTopicEntry("rf0", 1, 0, nil), kerr.InvalidReplicationFactor, 0, "single node"},
		{"zero partitions", createTopicEntry("p0", 0, 1, nil), kerr.InvalidPartitions, 0, ""},
		{"invalid name", createTopicEntry("bad name", 1, 1, nil), kerr.InvalidTopicException, 0, ""},
		{"exists", createTopicEntry("existing", 1, 1, nil), kerr.TopicAlreadyExists, 0, ""},
		{"bad config value", createTopicEntry("badcfg", 1, 1, map[string]*string{"retention.ms": kmsg.StringPtr("soon")}), kerr.InvalidConfig, 0, "retention.ms"},
		{"unknown config", createTopicEntry("unknowncfg", 1, 1, map[string]*string{"no.such.key": kmsg.StringPtr("1")}), kerr.InvalidConfig, 0, "no.such.key"},
		{"null config ignored", createTopicEntry("nullcfg", 1, 1, map[string]*string{"retention.ms": nil}), nil, 1, ""},
		{"assignment on this node", withAssignment("assigned", -1, assign(1, 0), assign(0, 0)), nil, 2, ""},
		{"assignment on another node", withAssignment("elsewhere", -1, assign(0, 1)), kerr.InvalidReplicaAssignment, 0, "not a broker"},
		{"assignment with two replicas", withAssignment("two", -1, assign(0, 0, 1)), kerr.InvalidReplicaAssignment, 0, ""},
		{"assignment with a gap", withAssignment("gap", -1, assign(0, 0), assign(2, 0)), kerr.InvalidReplicaAssignment, 0, "partitions 0 to 1"},
		{"assignment and a count", withAssignment("both", 2, assign(0, 0)), kerr.InvalidRequest, 0, "one or the other"},
	}
	rc := ts.dial(t)
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			resp := rc.roundTrip(createTopicsRequest(7, false, tc.entry)).(*kmsg.CreateTopicsResponse)
			got := resp.Topics[0]
			topic, exists := ts.cluster.Topic(tc.entry.Topic)
			if tc.code == nil {
				if got.ErrorCode != 0 || !exists || len(topic.Partitions) != tc.partitions {
					t.Fatalf("error %s (%v), exists %v, topic %+v; want %d partitions", codeOf(got.ErrorCode), got.ErrorMessage, exists, topic, tc.partitions)
				}
				if len(topic.Configs) != 0 {
					t.Errorf("overrides %v, want none", topic.Configs)
				}
				return
			}
			if got.ErrorCode != tc.code.Code {
				t.Fatalf("error %s (%v), want %s", codeOf(got.ErrorCode), got.ErrorMessage, tc.code.Message)
			}
			if got.ErrorMessage == nil || !strings.Contains(*got.ErrorMessage, tc.messageHint) {
				t.Errorf("message %v, want it to mention %q", got.ErrorMessage, tc.messageHint)
			}
			if got.NumPartitions != -1 || got.ReplicationFactor != -1 || got.Configs != nil {
				t.Errorf("failed entry reports partitions %d, factor %d, configs %v", got.NumPartitions, got.ReplicationFactor, got.Configs)
			}
			if tc.entry.Topic != "existing" && exists {
				t.Errorf("refused topic %q was created", tc.entry.Topic)
			}
		})
	}
}

// TestCreateTopicsDuplicateNames proves a topic named twice in one request
// is refused on both entries while the other entries proceed.
func TestCreateTopicsDuplicateNames(t *testing.T) {
	ts := startServer(t)
	req := createTopicsRequest(4, false,
		createTopicEntry("twice", 1, 1, nil), createTopicEntry("once", 1, 1, nil), createTopicEntry("twice", 2, 1, nil))
	resp := ts.dial(t).roundTrip(req).(*kmsg.CreateTopicsResponse)
	want := []int16{kerr.InvalidRequest.Code, 0, kerr.InvalidRequest.Code}
	for i, st := range resp.Topics {
		if st.ErrorCode != want[i] {
			t.Errorf("entry %d (%s): %s, want %s", i, st.Topic, codeOf(st.ErrorCode), codeOf(want[i]))
		}
	}
	if _, ok := ts.cluster.Topic("twice"); ok {
		t.Error("the duplicated topic was created")
	}
}

// TestCreateTopicsValidateOnly proves validate-only checks without creating,
// and reports the configs the request sets.
func TestCreateTopicsValidateOnly(t *testing.T) {
	ts := startServer(t)
	for _, version := range []int16{1, 7} {
		entry := createTopicEntry("checked", 4, -1, map[string]*string{"cleanup.policy": kmsg.StringPtr("compact")})
		resp := ts.dial(t).roundTrip(createTopicsRequest(version, true, entry)).(*kmsg.CreateTopicsResponse)
		got := resp.Topics[0]
		if got.ErrorCode != 0 {
			t.Fatalf("v%d: %s %v", version, codeOf(got.ErrorCode), got.ErrorMessage)
		}
		if _, ok := ts.cluster.Topic("checked"); ok {
			t.Fatalf("v%d: validate-only created the topic", version)
		}
		if version >= 5 && (got.NumPartitions != 4 || len(got.Configs) != 1 || got.Configs[0].Name != "cleanup.policy" || got.Configs[0].Source != 1) {
			t.Errorf("v%d: partitions %d, configs %+v", version, got.NumPartitions, got.Configs)
		}
	}
}

// TestCreateTopicsWithKadm proves franz-go's admin client creates topics with
// configs, validates without creating, and reads the refusals it expects.
func TestCreateTopicsWithKadm(t *testing.T) {
	ts := startServer(t)
	adm := kadm.NewClient(ts.client(t))
	ctx := adminContext(t)

	created, err := adm.CreateTopic(ctx, 3, -1, map[string]*string{"retention.ms": kmsg.StringPtr("60000")}, "orders")
	if err != nil {
		t.Fatal(err)
	}
	if created.NumPartitions != 3 || created.ReplicationFactor != 1 || created.ID == (kadm.TopicID{}) {
		t.Errorf("created %+v", created)
	}
	if c := created.Configs["retention.ms"]; c.MaybeValue() != "60000" || c.Source != kmsg.ConfigSourceDynamicTopicConfig {
		t.Errorf("retention.ms reported as %q from source %v", c.MaybeValue(), c.Source)
	}
	details, err := adm.ListTopics(ctx, "orders")
	if err != nil {
		t.Fatal(err)
	}
	if d := details["orders"]; len(d.Partitions) != 3 || d.Err != nil {
		t.Errorf("listed %+v", d)
	}

	validated, err := adm.ValidateCreateTopics(ctx, 1, 1, nil, "dry-run")
	if err != nil || validated.Error() != nil {
		t.Fatalf("validate: %v %v", err, validated.Error())
	}
	if _, ok := ts.cluster.Topic("dry-run"); ok {
		t.Error("validate-only created the topic")
	}

	refusals := []struct {
		topic             string
		replicationFactor int16
		want              *kerr.Error
	}{
		{"orders", 1, kerr.TopicAlreadyExists},
		{"no/slashes", 1, kerr.InvalidTopicException},
		{"replicated", 3, kerr.InvalidReplicationFactor},
		{"two replicas", 2, kerr.InvalidReplicationFactor},
	}
	for _, r := range refusals {
		_, err := adm.CreateTopic(ctx, 1, r.replicationFactor, nil, r.topic)
		if !errors.Is(err, r.want) {
			t.Errorf("create %q with factor %d: %v, want %v", r.topic, r.replicationFactor, err, r.want)
		}
	}
}
