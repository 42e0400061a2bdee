package kafka

import (
	"fmt"
	"maps"
	"strings"
	"testing"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/cairnlog/cairn/cluster"
	"github.com/cairnlog/cairn/streams"
)

// TestLeavingStreamNeedsForce: an event store does not stop being one by
// accident. A non-incremental AlterConfigs that leaves cleanup.policy out,
// and an incremental one that sets another policy, are refused with
// POLICY_VIOLATION and change nothing; with the request-only force key the
// change is made and the key is not stored.
func TestLeavingStreamNeedsForce(t *testing.T) {
	ts := startServer(t)
	adm := kadm.NewClient(ts.client(t))
	ctx := adminContext(t)
	stream := map[string]string{"cleanup.policy": "stream"}
	adminCreate(t, ts, "events", 1, stream)

	check := func(step string, resps kadm.AlterConfigsResponses, err error, want error) {
		t.Helper()
		if err != nil {
			t.Fatalf("%s: %v", step, err)
		}
		r, err := resps.On("events", nil)
		if err != nil {
			t.Fatalf("%s: %v", step, err)
		}
		if r.Err != want {
			t.Fatalf("%s: %v (%s), want %v", step, r.Err, r.ErrMessage, want)
		}
		if want != nil && !strings.Contains(r.ErrMessage, cluster.ForceLeaveStreamConfig) {
			t.Errorf("%s: message %q does not say how to force the change", step, r.ErrMessage)
		}
	}
	resps, err := adm.AlterTopicConfigsState(ctx, []kadm.AlterConfig{{Name: "segment.ms", Value: kmsg.StringPtr("60000")}}, "events")
	check("replace without cleanup.policy", resps, err, kerr.PolicyViolation)
	resps, err = adm.AlterTopicConfigs(ctx, []kadm.AlterConfig{{Op: kadm.SetConfig, Name: "cleanup.policy", Value: kmsg.StringPtr("delete")}}, "events")
	check("incremental set to delete", resps, err, kerr.PolicyViolation)
	resps, err = adm.AlterTopicConfigs(ctx, []kadm.AlterConfig{{Op: kadm.DeleteConfig, Name: "cleanup.policy"}}, "events")
	check("incremental delete of cleanup.policy", resps, err, kerr.PolicyViolation)
	if got, _ := ts.cluster.Topic("events"); !maps.Equal(got.Configs, stream) {
		t.Fatalf("refused changes altered the overrides to %v", got.Configs)
	}

	resps, err = adm.AlterTopicConfigs(ctx, []kadm.AlterConfig{
		{Op: kadm.SetConfig, Name: "cleanup.policy", Value: kmsg.StringPtr("compact")},
		{Op: kadm.SetConfig, Name: cluster.ForceLeaveStreamConfig, Value: kmsg.StringPtr("true")},
	}, "events")
	check("forced incremental", resps, err, nil)
	if got, _ := ts.cluster.Topic("events"); !maps.Equal(got.Configs, map[string]string{"cleanup.policy": "compact"}) {
		t.Fatalf("overrides after the forced change: %v", got.Configs)
	}

	adminCreate(t, ts, "events2", 1, stream)
	resps, err = adm.AlterTopicConfigsState(ctx, []kadm.AlterConfig{
		{Name: "segment.ms", Value: kmsg.StringPtr("60000")},
		{Name: cluster.ForceLeaveStreamConfig, Value: kmsg.StringPtr("true")},
	}, "events2")
	if err != nil {
		t.Fatal(err)
	}
	if r, _ := resps.On("events2", nil); r.Err != nil {
		t.Fatalf("forced replace: %v %s", r.Err, r.ErrMessage)
	}
	if got, _ := ts.cluster.Topic("events2"); !maps.Equal(got.Configs, map[string]string{"segment.ms": "60000"}) {
		t.Fatalf("overrides after the forced replace: %v", got.Configs)
	}
}

// TestEnteringStreamOnANonEmptyTopic: a plain topic with records becomes an
// event store through IncrementalAlterConfigs; its existing records are
// numbered by the index built from the log, and a produce checked against
// that numbering lands at the next revision.
func TestEnteringStreamOnANonEmptyTopic(t *testing.T) {
	ts := startServer(t)
	cl := ts.client(t, kgo.DefaultProduceTopic("orders"), kgo.RecordPartitioner(kgo.ManualPartitioner()))
	adm := kadm.NewClient(cl)
	ctx := adminContext(t)
	adminCreate(t, ts, "orders", 1, nil)
	for i := range 5 {
		r := &kgo.Record{Key: []byte("order-1"), Value: []byte(fmt.Sprint(i))}
		if err := cl.ProduceSync(ctx, r).FirstErr(); err != nil {
			t.Fatal(err)
		}
	}
	resps, err := adm.AlterTopicConfigs(ctx, []kadm.AlterConfig{{Op: kadm.SetConfig, Name: "cleanup.policy", Value: kmsg.StringPtr("stream")}}, "orders")
	if err != nil {
		t.Fatal(err)
	}
	if r, _ := resps.On("orders", nil); r.Err != nil {
		t.Fatalf("enter stream: %v %s", r.Err, r.ErrMessage)
	}
	checked := &kgo.Record{Key: []byte("order-1"), Value: []byte("5"), Headers: []kgo.RecordHeader{
		{Key: streams.HeaderExpectedRevision, Value: []byte("4")}, {Key: streams.HeaderID, Value: []byte("e5")}}}
	if err := cl.ProduceSync(ctx, checked).FirstErr(); err != nil {
		t.Fatalf("produce expecting revision 4: %v", err)
	}
	p, err := ts.cluster.Partition("orders", 0)
	if err != nil {
		t.Fatal(err)
	}
	x, err := p.StreamIndex()
	if err != nil {
		t.Fatal(err)
	}
	if st, err := x.State("order-1"); err != nil || st.LastRevision != 5 {
		t.Fatalf("order-1 state %+v %v, want revision 5", st, err)
	}
}
