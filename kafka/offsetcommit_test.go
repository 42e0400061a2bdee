package kafka

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/cairnlog/cairn/groups"
)

// TestOffsetCommitFetchEveryVersion commits at every OffsetCommit version
// and reads back at every OffsetFetch version, metadata and leader epoch
// included where the version carries them; unknown partitions are refused.
func TestOffsetCommitFetchEveryVersion(t *testing.T) {
	ts := startServer(t)
	if _, err := ts.cluster.CreateTopic("t", 2, nil, false); err != nil {
		t.Fatal(err)
	}
	rc := ts.dial(t)
	for version := int16(0); version <= 9; version++ {
		group := fmt.Sprintf("c%d", version)
		req := kmsg.NewPtrOffsetCommitRequest()
		req.SetVersion(version)
		req.Group, req.Generation = group, -1
		rt := kmsg.NewOffsetCommitRequestTopic()
		rt.Topic = "t"
		for p := int32(0); p < 3; p++ { // partition 2 does not exist
			rp := kmsg.NewOffsetCommitRequestTopicPartition()
			meta := fmt.Sprintf("m%d", p)
			rp.Partition, rp.Offset, rp.LeaderEpoch, rp.Metadata = p, int64(10*version+int16(p)), 4, &meta
			rt.Partitions = append(rt.Partitions, rp)
		}
		req.Topics = append(req.Topics, rt)
		resp := rc.roundTrip(req).(*kmsg.OffsetCommitResponse)
		codes := []int16{resp.Topics[0].Partitions[0].ErrorCode, resp.Topics[0].Partitions[1].ErrorCode, resp.Topics[0].Partitions[2].ErrorCode}
		if codes[0] != 0 || codes[1] != 0 || codes[2] != kerr.UnknownTopicOrPartition.Code {
			t.Fatalf("commit v%d: error codes %v", version, codes)
		}
	}
	for version := int16(0); version <= 9; version++ {
		commitVersion := version
		group := fmt.Sprintf("c%d", commitVersion)
		req := kmsg.NewPtrOffsetFetchRequest()
		req.SetVersion(version)
		if version < 8 {
			req.Group = group
			req.Topics = []kmsg.OffsetFetchRequestTopic{{Topic: "t", Partitions: []int32{1, 0}}}
		} else {
			g := kmsg.NewOffsetFetchRequestGroup()
			g.Group = group
			g.Topics = []kmsg.OffsetFetchRequestGroupTopic{{Topic: "t", Partitions: []int32{1, 0}}}
			other := kmsg.NewOffsetFetchRequestGroup()
			other.Group = "c0" // several groups in one request, all topics
			req.Groups = append(req.Groups, g, other)
		}
		resp := rc.roundTrip(req).(*kmsg.OffsetFetchResponse)
		var offsets []int64
		var epochs []int32
		var metas []string
		if version < 8 {
			for _, p := range resp.Topics[0].Partitions {
				offsets, epochs, metas = append(offsets, p.Offset), append(epochs, p.LeaderEpoch), append(metas, *p.Metadata)
			}
		} else {
			for _, p := range resp.Groups[0].Topics[0].Partitions {
				offsets, epochs, metas = append(offsets, p.Offset), append(epochs, p.LeaderEpoch), append(metas, *p.Metadata)
			}
			if len(resp.Groups) != 2 || len(resp.Groups[1].Topics) != 1 || resp.Groups[1].Topics[0].Partitions[0].Offset != 0 {
				t.Fatalf("fetch v%d second group: %+v", version, resp.Groups)
			}
		}
		wantEpoch := int32(-1)
		if commitVersion >= 6 {
			wantEpoch = 4
		}
		want := fmt.Sprint([]int64{int64(10*commitVersion + 1), int64(10 * commitVersion)})
		if fmt.Sprint(offsets) != want || fmt.Sprint(metas) != "[m1 m0]" || (version >= 5 && epochs[0] != wantEpoch) {
			t.Fatalf("fetch v%d: offsets %v metadata %v epochs %v, want %s [m1 m0] epoch %d", version, offsets, metas, epochs, want, wantEpoch)
		}
	}
}

// TestGroupAdministration drives describe, list, offset delete and group
// delete through kadm, and checks that a group with live members refuses
// deletion and member-only commits.
func TestGroupAdministration(t *testing.T) {
	ts := startServer(t, fastGroups)
	if _, err := ts.cluster.CreateTopic("a", 2, nil, false); err != nil {
		t.Fatal(err)
	}
	if _, err := ts.cluster.CreateTopic("b", 1, nil, false); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	admin := kadm.NewClient(ts.client(t))
	offsets := kadm.Offsets{}
	offsets.AddOffset("a", 0, 3, -1)
	offsets.AddOffset("a", 1, 4, -1)
	offsets.AddOffset("b", 0, 5, -1)
	if err := admin.CommitAllOffsets(ctx, "admin", offsets); err != nil {
		t.Fatal(err)
	}
	fetched, err := admin.FetchOffsets(ctx, "admin")
	if err != nil {
		t.Fatal(err)
	}
	if o, _ := fetched.Lookup("a", 1); o.At != 4 {
		t.Fatalf("fetched a-1 at %d, want 4", o.At)
	}
	listed, err := admin.ListGroups(ctx)
	if err != nil || len(listed) != 1 || listed["admin"].State != "Empty" {
		t.Fatalf("list groups: %+v %v", listed, err)
	}
	deleted, err := admin.DeleteOffsets(ctx, "admin", kadm.TopicsSet{"b": {0: {}}})
	if err != nil || deleted.Error() != nil {
		t.Fatalf("delete offsets: %v %v", err, deleted.Error())
	}
	if fetched, _ = admin.FetchOffsets(ctx, "admin"); len(fetched["b"]) != 0 || len(fetched["a"]) != 2 {
		t.Fatalf("after offset delete: %+v", fetched)
	}

	consumer := startGroupConsumer(t, ts, "admin", "a")
	waitStable(t, ts, "admin", 1)
	resps, err := admin.DeleteGroups(ctx, "admin")
	if err != nil || resps["admin"].Err != kerr.NonEmptyGroup {
		t.Fatalf("delete a live group: %+v %v, want NON_EMPTY_GROUP", resps, err)
	}
	refused, err := admin.DeleteOffsets(ctx, "admin", kadm.TopicsSet{"a": {0: {}}})
	if err != nil || refused.Error() != kerr.GroupSubscribedToTopic {
		t.Fatalf("delete offsets of a subscribed topic: %v %v", err, refused.Error())
	}
	described, err := admin.DescribeGroups(ctx, "admin", "nobody")
	if err != nil {
		t.Fatal(err)
	}
	d := described["admin"]
	if d.Protocol != "cooperative-sticky" && d.Protocol != "range" && d.Protocol != "sticky" || len(d.Members) != 1 || d.Members[0].ClientHost != "/127.0.0.1" {
		t.Fatalf("described: %+v", d)
	}
	if assigned, ok := d.Members[0].Assigned.AsConsumer(); !ok || len(assigned.Topics) != 1 || len(assigned.Topics[0].Partitions) != 2 {
		t.Fatalf("member assignment: %+v", d.Members[0].Assigned)
	}
	if described["nobody"].State != "Dead" {
		t.Fatalf("unknown group state %q, want Dead", described["nobody"].State)
	}

	consumer.stop()
	<-consumer.done
	consumer.client.Close()
	if resps, err = admin.DeleteGroups(ctx, "admin"); err != nil || resps["admin"].Err != nil {
		t.Fatalf("delete an empty group: %+v %v", resps, err)
	}
	if resps, _ = admin.DeleteGroups(ctx, "admin"); resps["admin"].Err != kerr.GroupIDNotFound {
		t.Fatalf("delete again: %v, want GROUP_ID_NOT_FOUND", resps["admin"].Err)
	}
	if _, ok := ts.cluster.Topic(groups.OffsetsTopic); !ok {
		t.Fatalf("%s was not created", groups.OffsetsTopic)
	}
}
