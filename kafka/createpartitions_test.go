package kafka

import (
	"fmt"
	"testing"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

func createPartitionsEntry(topic string, count int32, assignment ...[]int32) kmsg.CreatePartitionsRequestTopic {
	rt := kmsg.NewCreatePartitionsRequestTopic()
	rt.Topic, rt.Count = topic, count
	for _, replicas := range assignment {
		a := kmsg.NewCreatePartitionsRequestTopicAssignment()
		a.Replicas = replicas
		rt.Assignment = append(rt.Assignment, a)
	}
	return rt
}

func createPartitionsRequest(version int16, validateOnly bool, topics ...kmsg.CreatePartitionsRequestTopic) *kmsg.CreatePartitionsRequest {
	req := kmsg.NewPtrCreatePartitionsRequest()
	req.Version, req.ValidateOnly, req.TimeoutMillis = version, validateOnly, 5000
	req.Topics = topics
	return req
}

// TestCreatePartitionsVersions proves each served version (lowest, both
// sides of the flexible switch at v2, highest) grows a topic to the new total.
func TestCreatePartitionsVersions(t *testing.T) {
	ts := startServer(t)
	for _, version := range []int16{0, 1, 2, 3} {
		name := fmt.Sprintf("grown-v%d", version)
		adminCreate(t, ts, name, 1, nil)
		resp := ts.dial(t).roundTrip(createPartitionsRequest(version, false, createPartitionsEntry(name, 3))).(*kmsg.CreatePartitionsResponse)
		if len(resp.Topics) != 1 || resp.Topics[0].ErrorCode != 0 || resp.Topics[0].Topic != name {
			t.Fatalf("v%d: response %+v", version, resp.Topics)
		}
		if topic, _ := ts.cluster.Topic(name); len(topic.Partitions) != 3 {
			t.Fatalf("v%d: %d partitions, want 3", version, len(topic.Partitions))
		}
	}
}

// TestCreatePartitionsRefusals proves refused entries get their Kafka error
// codes with a message and leave the partition count as it was, and that
// accepted assignments and validate-only behave.
func TestCreatePartitionsRefusals(t *testing.T) {
	ts := startServer(t)
	adminCreate(t, ts, "two", 2, nil)
	cases := []struct {
		name         string
		entry        kmsg.CreatePartitionsRequestTopic
		validateOnly bool
		code         *kerr.Error // nil: accepted
		partitions   int         // of topic "two" afterwards
	}{
		{"same count", createPartitionsEntry("two", 2), false, kerr.InvalidPartitions, 2},
		{"fewer", createPartitionsEntry("two", 1), false, kerr.InvalidPartitions, 2},
		{"unknown topic", createPartitionsEntry("missing", 4), false, kerr.UnknownTopicOrPartition, 2},
		{"assignment too short", createPartitionsEntry("two", 4, []int32{0}), false, kerr.InvalidReplicaAssignment, 2},
		{"assignment on another node", createPartitionsEntry("two", 3, []int32{5}), false, kerr.InvalidReplicaAssignment, 2},
		{"validate only", createPartitionsEntry("two", 5), true, nil, 2},
		{"assignment on this node", createPartitionsEntry("two", 4, []int32{0}, []int32{0}), false, nil, 4},
	}
	rc := ts.dial(t)
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			resp := rc.roundTrip(createPartitionsRequest(3, tc.validateOnly, tc.entry)).(*kmsg.CreatePartitionsResponse)
			got := resp.Topics[0]
			switch {
			case tc.code == nil && got.ErrorCode != 0:
				t.Errorf("%s (%v), want success", codeOf(got.ErrorCode), got.ErrorMessage)
			case tc.code != nil && (got.ErrorCode != tc.code.Code || got.ErrorMessage == nil):
				t.Errorf("%s (%v), want %s with a message", codeOf(got.ErrorCode), got.ErrorMessage, tc.code.Message)
			}
			if topic, _ := ts.cluster.Topic("two"); len(topic.Partitions) != tc.partitions {
				t.Errorf("%d partitions afterwards, want %d", len(topic.Partitions), tc.partitions)
			}
		})
	}
	dup := createPartitionsRequest(1, false, createPartitionsEntry("two", 6), createPartitionsEntry("two", 7))
	for i, st := range rc.roundTrip(dup).(*kmsg.CreatePartitionsResponse).Topics {
		if st.ErrorCode != kerr.InvalidRequest.Code {
			t.Errorf("duplicated entry %d: %s, want INVALID_REQUEST", i, codeOf(st.ErrorCode))
		}
	}
}

// TestCreatePartitionsWithKadm proves franz-go's admin client adds partitions
// and then sees them in metadata, and can produce to the new partition.
func TestCreatePartitionsWithKadm(t *testing.T) {
	ts := startServer(t)
	adm := kadm.NewClient(ts.client(t))
	ctx := adminContext(t)
	adminCreate(t, ts, "widening", 1, nil)
	resps, err := adm.CreatePartitions(ctx, 2, "widening")
	if err != nil || resps.Error() != nil {
		t.Fatalf("create partitions: %v %v", err, resps.Error())
	}
	details, err := adm.ListTopics(ctx, "widening")
	if err != nil {
		t.Fatal(err)
	}
	if n := len(details["widening"].Partitions); n != 3 {
		t.Fatalf("%d partitions in metadata, want 3", n)
	}
	adminProduce(t, ts, "widening", 2, 1)
	if _, err := adm.ValidateCreatePartitions(ctx, 1, "widening"); err != nil {
		t.Fatal(err)
	}
	if topic, _ := ts.cluster.Topic("widening"); len(topic.Partitions) != 3 {
		t.Errorf("validate-only changed the count to %d", len(topic.Partitions))
	}
}
