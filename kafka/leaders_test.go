package kafka

import (
	"cmp"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/cairnlog/cairn/cluster"
	"github.com/cairnlog/cairn/partition"
	"github.com/cairnlog/cairn/storage/vfs"
)

// fakeView is a single node's cluster seen as a node of a larger cluster
// would see it: some partitions led elsewhere or by no one, with other
// replicas, and more brokers. It is filled before the server starts and
// only read after.
type fakeView struct {
	*cluster.Cluster
	leaders    map[string]cluster.Leader // by partKey; the others are the cluster's
	inSync     map[string][]int32
	replicas   map[string][]int32
	noReplica  map[string]bool  // partitions with no replica on this node
	brokers    []cluster.Broker // besides the cluster's
	controller int32
}

func partKey(topic string, index int32) string { return fmt.Sprintf("%s/%d", topic, index) }

func (f *fakeView) Leader(topic string, index int32) (cluster.Leader, error) {
	own, err := f.Cluster.Leader(topic, index)
	if l, ok := f.leaders[partKey(topic, index)]; ok && err == nil {
		return l, nil
	}
	return own, err
}

func (f *fakeView) InSync(topic string, index int32) []int32 {
	if isr, ok := f.inSync[partKey(topic, index)]; ok {
		return isr
	}
	return f.Cluster.InSync(topic, index)
}

func (f *fakeView) Brokers() []cluster.Broker {
	out := append(f.Cluster.Brokers(), f.brokers...)
	slices.SortFunc(out, func(a, b cluster.Broker) int { return cmp.Compare(a.NodeID, b.NodeID) })
	return out
}

func (f *fakeView) ControllerID() int32 { return f.controller }

// Partition is the cluster's, but ErrNotLeader for a partition with no
// replica here, as a node of a cluster answers.
func (f *fakeView) Partition(topic string, index int32) (*partition.Partition, error) {
	if f.noReplica[partKey(topic, index)] {
		return nil, fmt.Errorf("%w: no replica of %s", cluster.ErrNotLeader, partKey(topic, index))
	}
	return f.Cluster.Partition(topic, index)
}

func (f *fakeView) Topics() []*cluster.Topic {
	var out []*cluster.Topic
	for _, t := range f.Cluster.Topics() {
		out = append(out, f.withReplicas(t))
	}
	return out
}

func (f *fakeView) Topic(name string) (*cluster.Topic, bool) {
	t, ok := f.Cluster.Topic(name)
	return f.withReplicas(t), ok
}

func (f *fakeView) TopicByID(id [16]byte) (*cluster.Topic, bool) {
	t, ok := f.Cluster.TopicByID(id)
	return f.withReplicas(t), ok
}

// withReplicas is a copy of t with the fake's replica lists.
func (f *fakeView) withReplicas(t *cluster.Topic) *cluster.Topic {
	if t == nil {
		return nil
	}
	cp := *t
	cp.Partitions = nil
	for _, s := range t.Partitions {
		slot := *s
		if r, ok := f.replicas[partKey(t.Name, s.Index)]; ok {
			slot.Replicas = r
		}
		if f.noReplica[partKey(t.Name, s.Index)] {
			slot.Partition, slot.Offline = nil, fmt.Errorf("%w: no replica here", cluster.ErrNotLeader)
		}
		cp.Partitions = append(cp.Partitions, &slot)
	}
	return &cp
}

// movedCluster is the cluster of the not-leader tests, seen from node self:
// topic "moved" has partition 0 led by node self+2 (epoch 7) with replicas
// on self+2, self and self+3 (whose address is unusable), partition 1 with
// no leader, and partition 2 led by the unreachable self+3, with replicas
// on self+2 and self+3 only. Node self+2 is the controller.
type movedCluster struct {
	ts                 *testServer
	self, other, unreg int32
}

func startMovedCluster(t *testing.T) movedCluster {
	t.Helper()
	var m movedCluster
	m.ts = startServerView(t, func(c *cluster.Cluster) clusterView {
		m.self = c.NodeID()
		m.other, m.unreg = m.self+2, m.self+3
		return &fakeView{
			Cluster: c,
			leaders: map[string]cluster.Leader{
				partKey("moved", 0): {Node: m.other, Epoch: 7},
				partKey("moved", 1): {Node: -1, Epoch: -1},
				partKey("moved", 2): {Node: m.unreg, Epoch: 4},
			},
			inSync: map[string][]int32{partKey("moved", 0): {m.self, m.other}, partKey("moved", 2): {m.other, m.unreg}},
			replicas: map[string][]int32{
				partKey("moved", 0): {m.other, m.self, m.unreg},
				partKey("moved", 2): {m.unreg, m.other},
			},
			noReplica: map[string]bool{partKey("moved", 2): true},
			brokers: []cluster.Broker{
				{NodeID: m.other, KafkaAddr: "127.0.0.2:9192", Rack: "r2"},
				{NodeID: m.unreg, KafkaAddr: "0.0.0.0:9092"},
			},
			controller: m.self + 2,
		}
	})
	if _, err := m.ts.cluster.CreateTopic("moved", 3, nil, false); err != nil {
		t.Fatal(err)
	}
	return m
}

func fetchRequest(version int16, topic string, index, currentEpoch int32) *kmsg.FetchRequest {
	req := kmsg.NewPtrFetchRequest()
	req.SetVersion(version)
	req.MaxBytes, req.SessionEpoch = 1<<20, -1
	rt := kmsg.NewFetchRequestTopic()
	rt.Topic = topic
	rp := kmsg.NewFetchRequestTopicPartition()
	rp.Partition, rp.PartitionMaxBytes, rp.CurrentLeaderEpoch = index, 1<<20, currentEpoch
	rt.Partitions = append(rt.Partitions, rp)
	req.Topics = append(req.Topics, rt)
	return req
}

func listOffsetsRequest(version int16, topic string, index, currentEpoch int32) *kmsg.ListOffsetsRequest {
	req := kmsg.NewPtrListOffsetsRequest()
	req.SetVersion(version)
	req.ReplicaID = -1
	rt := kmsg.NewListOffsetsRequestTopic()
	rt.Topic = topic
	rp := kmsg.NewListOffsetsRequestTopicPartition()
	rp.Partition, rp.Timestamp, rp.CurrentLeaderEpoch = index, listLatest, currentEpoch
	rt.Partitions = append(rt.Partitions, rp)
	req.Topics = append(req.Topics, rt)
	return req
}

func offsetForLeaderEpochRequest(version int16, topic string, index, currentEpoch, epoch int32) *kmsg.OffsetForLeaderEpochRequest {
	req := kmsg.NewPtrOffsetForLeaderEpochRequest()
	req.SetVersion(version)
	req.ReplicaID = -1
	rt := kmsg.NewOffsetForLeaderEpochRequestTopic()
	rt.Topic = topic
	rp := kmsg.NewOffsetForLeaderEpochRequestTopicPartition()
	rp.Partition, rp.CurrentLeaderEpoch, rp.LeaderEpoch = index, currentEpoch, epoch
	rt.Partitions = append(rt.Partitions, rp)
	req.Topics = append(req.Topics, rt)
	return req
}

// TestLeaderEpochChecks proves Fetch, ListOffsets and OffsetForLeaderEpoch
// check the client's current leader epoch as Kafka does (KIP-320): an older
// one is FENCED_LEADER_EPOCH (a v12 fetch also names the leader and its
// epoch), a newer one UNKNOWN_LEADER_EPOCH, the current one and none (-1)
// are served. The partition's epoch is raised past 0 by a restart, so the
// stale epoch is a real earlier one; Metadata reports the same epoch.
func TestLeaderEpochChecks(t *testing.T) {
	fsys := vfs.NewMem()
	t.Run("first start", func(t *testing.T) {
		ts := startServerFS(t, fsys)
		adminCreate(t, ts, "e", 1, nil)
		adminProduce(t, ts, "e", 0, 2)
	})
	ts := startServerFS(t, fsys)
	p, err := ts.cluster.Partition("e", 0)
	if err != nil {
		t.Fatal(err)
	}
	epoch := p.LeaderEpoch()
	if epoch < 1 {
		t.Fatalf("epoch %d after a restart, want at least 1", epoch)
	}
	rc := ts.dial(t)
	cases := []struct {
		name      string
		requested int32
		want      *kerr.Error // nil: served
	}{
		{"none", -1, nil},
		{"current", epoch, nil},
		{"stale", epoch - 1, kerr.FencedLeaderEpoch},
		{"future", epoch + 1, kerr.UnknownLeaderEpoch},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			want := int16(0)
			if tc.want != nil {
				want = tc.want.Code
			}
			for _, v := range []int16{9, 12} {
				sp := rc.roundTrip(fetchRequest(v, "e", 0, tc.requested)).(*kmsg.FetchResponse).Topics[0].Partitions[0]
				if sp.ErrorCode != want {
					t.Errorf("fetch v%d: %s, want %s", v, codeOf(sp.ErrorCode), codeOf(want))
				}
				if want == 0 && (sp.HighWatermark != 2 || len(sp.RecordBatches) == 0) {
					t.Errorf("fetch v%d: hwm %d, %d bytes", v, sp.HighWatermark, len(sp.RecordBatches))
				}
				fenced := tc.want == kerr.FencedLeaderEpoch && v >= 12
				if l := sp.CurrentLeader; fenced != (l.LeaderID == ts.cluster.NodeID() && l.LeaderEpoch == epoch) {
					t.Errorf("fetch v%d: current leader %+v", v, l)
				}
			}
			for _, v := range []int16{4, 7} {
				sp := rc.roundTrip(listOffsetsRequest(v, "e", 0, tc.requested)).(*kmsg.ListOffsetsResponse).Topics[0].Partitions[0]
				if sp.ErrorCode != want || (want == 0 && (sp.Offset != 2 || sp.LeaderEpoch != epoch)) {
					t.Errorf("list offsets v%d: %s offset %d epoch %d", v, codeOf(sp.ErrorCode), sp.Offset, sp.LeaderEpoch)
				}
			}
			for _, v := range []int16{2, 4} {
				sp := rc.roundTrip(offsetForLeaderEpochRequest(v, "e", 0, tc.requested, epoch)).(*kmsg.OffsetForLeaderEpochResponse).Topics[0].Partitions[0]
				if sp.ErrorCode != want || (want == 0 && (sp.LeaderEpoch != epoch || sp.EndOffset != 2)) {
					t.Errorf("offset for leader epoch v%d: %s epoch %d end %d", v, codeOf(sp.ErrorCode), sp.LeaderEpoch, sp.EndOffset)
				}
			}
		})
	}
	// Versions before the field ignore it.
	sp := rc.roundTrip(listOffsetsRequest(1, "e", 0, epoch+1)).(*kmsg.ListOffsetsResponse).Topics[0].Partitions[0]
	if sp.ErrorCode != 0 || sp.Offset != 2 {
		t.Errorf("list offsets v1: %s offset %d", codeOf(sp.ErrorCode), sp.Offset)
	}

	meta := rc.roundTrip(metadataRequest(12, "e")).(*kmsg.MetadataResponse)
	mp := meta.Topics[0].Partitions[0]
	self := ts.cluster.NodeID()
	if mp.ErrorCode != 0 || mp.Leader != self || mp.LeaderEpoch != epoch ||
		fmt.Sprint(mp.Replicas, mp.ISR, mp.OfflineReplicas) != fmt.Sprint([]int32{self}, []int32{self}, []int32{}) {
		t.Errorf("metadata partition %+v, want led by %d at epoch %d", mp, self, epoch)
	}
	if len(meta.Brokers) != 1 || meta.Brokers[0].NodeID != self || meta.Brokers[0].Port != ts.first.port || meta.ControllerID != self {
		t.Errorf("metadata brokers %+v controller %d", meta.Brokers, meta.ControllerID)
	}
}

// derefOr is *s, or "" for nil.
func derefOr(s *string) string {
	if s == nil {
		return ""
	}
	return *s
}

func metadataRequest(version int16, topics ...string) *kmsg.MetadataRequest {
	req := kmsg.NewPtrMetadataRequest()
	req.SetVersion(version)
	for _, name := range topics {
		rt := kmsg.NewMetadataRequestTopic()
		rt.Topic = kmsg.StringPtr(name)
		req.Topics = append(req.Topics, rt)
	}
	return req
}

// TestNotLeaderAnswers proves the APIs only a leader serves answer
// NOT_LEADER_OR_FOLLOWER for a partition led by another node or by none,
// and that a v12 fetch names the leader this node knows of (KIP-951); the
// epoch check comes first, as in Kafka.
func TestNotLeaderAnswers(t *testing.T) {
	m := startMovedCluster(t)
	rc := m.ts.dial(t)
	notLeader := kerr.NotLeaderForPartition.Code
	for _, acks := range []int16{1, -1} {
		for index := range int32(3) {
			req := kmsg.NewPtrProduceRequest()
			req.SetVersion(9)
			req.Acks, req.TimeoutMillis = acks, 5000
			rt := kmsg.NewProduceRequestTopic()
			rt.Topic = "moved"
			rp := kmsg.NewProduceRequestTopicPartition()
			rp.Partition, rp.Records = index, oneRecord("v")
			rt.Partitions = append(rt.Partitions, rp)
			req.Topics = append(req.Topics, rt)
			sp := rc.roundTrip(req).(*kmsg.ProduceResponse).Topics[0].Partitions[0]
			if sp.ErrorCode != notLeader || sp.BaseOffset != -1 || sp.ErrorMessage == nil {
				t.Errorf("produce acks=%d partition %d: %s (%v) base %d", acks, index, codeOf(sp.ErrorCode), sp.ErrorMessage, sp.BaseOffset)
			}
		}
	}
	// From v10 the answer names the leader and its address (KIP-951);
	// a partition with no leader gets no hint.
	for index, want := range []kmsg.ProduceResponseTopicPartitionCurrentLeader{{LeaderID: m.other, LeaderEpoch: 7}, {LeaderID: -1, LeaderEpoch: -1}} {
		for _, version := range []int16{9, 10} {
			req := kmsg.NewPtrProduceRequest()
			req.SetVersion(version)
			req.Acks, req.TimeoutMillis = -1, 5000
			rt := kmsg.NewProduceRequestTopic()
			rt.Topic = "moved"
			rp := kmsg.NewProduceRequestTopicPartition()
			rp.Partition, rp.Records = int32(index), oneRecord("v")
			rt.Partitions = append(rt.Partitions, rp)
			req.Topics = append(req.Topics, rt)
			resp := rc.roundTrip(req).(*kmsg.ProduceResponse)
			sp := resp.Topics[0].Partitions[0]
			hinted := version >= 10 && want.LeaderID >= 0
			wantLeader, wantBrokers := kmsg.NewProduceResponseTopicPartitionCurrentLeader(), "[]"
			if hinted {
				wantLeader, wantBrokers = want, fmt.Sprintf("[%d 127.0.0.2:9192 r2]", m.other)
			}
			var brokers []string
			for _, b := range resp.Brokers {
				brokers = append(brokers, fmt.Sprintf("%d %s:%d %s", b.NodeID, b.Host, b.Port, derefOr(b.Rack)))
			}
			if sp.ErrorCode != notLeader || sp.CurrentLeader.LeaderID != wantLeader.LeaderID || sp.CurrentLeader.LeaderEpoch != wantLeader.LeaderEpoch || fmt.Sprint(brokers) != wantBrokers {
				t.Errorf("produce v%d partition %d: %s, leader %+v, brokers %v; want leader %+v, brokers %s",
					version, index, codeOf(sp.ErrorCode), sp.CurrentLeader, brokers, wantLeader, wantBrokers)
			}
		}
	}
	if p, _ := m.ts.cluster.Partition("moved", 0); p.LogEndOffset() != 0 {
		t.Fatalf("a refused produce appended: log end %d", p.LogEndOffset())
	}

	fetchCases := []struct {
		index, requested int32
		code             int16
		leader           kmsg.FetchResponseTopicPartitionCurrentLeader
	}{
		{0, -1, notLeader, kmsg.FetchResponseTopicPartitionCurrentLeader{LeaderID: m.other, LeaderEpoch: 7}},
		{0, 7, notLeader, kmsg.FetchResponseTopicPartitionCurrentLeader{LeaderID: m.other, LeaderEpoch: 7}},
		{0, 6, kerr.FencedLeaderEpoch.Code, kmsg.FetchResponseTopicPartitionCurrentLeader{LeaderID: m.other, LeaderEpoch: 7}},
		{0, 8, kerr.UnknownLeaderEpoch.Code, kmsg.FetchResponseTopicPartitionCurrentLeader{LeaderID: -1, LeaderEpoch: -1}},
		{1, -1, notLeader, kmsg.FetchResponseTopicPartitionCurrentLeader{LeaderID: -1, LeaderEpoch: -1}},
		{1, 3, notLeader, kmsg.FetchResponseTopicPartitionCurrentLeader{LeaderID: -1, LeaderEpoch: -1}},
	}
	for _, c := range fetchCases {
		sp := rc.roundTrip(fetchRequest(12, "moved", c.index, c.requested)).(*kmsg.FetchResponse).Topics[0].Partitions[0]
		if sp.ErrorCode != c.code || sp.CurrentLeader.LeaderID != c.leader.LeaderID || sp.CurrentLeader.LeaderEpoch != c.leader.LeaderEpoch ||
			sp.HighWatermark != -1 || len(sp.RecordBatches) != 0 {
			t.Errorf("fetch partition %d epoch %d: %s, current leader %+v, hwm %d; want %s, %+v",
				c.index, c.requested, codeOf(sp.ErrorCode), sp.CurrentLeader, sp.HighWatermark, codeOf(c.code), c.leader)
		}
	}
	for index := range int32(2) {
		ls := rc.roundTrip(listOffsetsRequest(7, "moved", index, -1)).(*kmsg.ListOffsetsResponse).Topics[0].Partitions[0]
		if ls.ErrorCode != notLeader || ls.Offset != -1 {
			t.Errorf("list offsets partition %d: %s offset %d", index, codeOf(ls.ErrorCode), ls.Offset)
		}
		oe := rc.roundTrip(offsetForLeaderEpochRequest(4, "moved", index, -1, 0)).(*kmsg.OffsetForLeaderEpochResponse).Topics[0].Partitions[0]
		if oe.ErrorCode != notLeader || oe.EndOffset != -1 {
			t.Errorf("offset for leader epoch partition %d: %s end %d", index, codeOf(oe.ErrorCode), oe.EndOffset)
		}
		dr := rc.roundTrip(deleteRecordsRequest(2, "moved", map[int32]int64{index: 0})).(*kmsg.DeleteRecordsResponse).Topics[0].Partitions[0]
		if dr.ErrorCode != notLeader || dr.LowWatermark != -1 {
			t.Errorf("delete records partition %d: %s low %d", index, codeOf(dr.ErrorCode), dr.LowWatermark)
		}
	}
	fenced := rc.roundTrip(listOffsetsRequest(7, "moved", 0, 6)).(*kmsg.ListOffsetsResponse).Topics[0].Partitions[0]
	if fenced.ErrorCode != kerr.FencedLeaderEpoch.Code {
		t.Errorf("list offsets with a stale epoch: %s", codeOf(fenced.ErrorCode))
	}
}

// TestMetadataFollowsTheClusterView proves Metadata and DescribeCluster
// give clients the cluster's brokers (this node at its advertised address,
// another at its registered one with its rack, one with an unusable address
// left out), its controller, and per partition the leader and epoch,
// replicas, ISR and offline replicas; a partition with no leader, or led by
// a node clients cannot reach, is LEADER_NOT_AVAILABLE with leader -1.
func TestMetadataFollowsTheClusterView(t *testing.T) {
	m := startMovedCluster(t)
	rc := m.ts.dial(t)
	type broker struct {
		node int32
		addr string
		rack string
	}
	wantBrokers := fmt.Sprint([]broker{{m.self, m.ts.addr, ""}, {m.other, "127.0.0.2:9192", "r2"}})
	for _, v := range []int16{1, 9, 12} {
		resp := rc.roundTrip(metadataRequest(v, "moved")).(*kmsg.MetadataResponse)
		var brokers []broker
		for _, b := range resp.Brokers {
			brokers = append(brokers, broker{b.NodeID, fmt.Sprintf("%s:%d", b.Host, b.Port), derefOr(b.Rack)})
		}
		if fmt.Sprint(brokers) != wantBrokers || resp.ControllerID != m.other {
			t.Fatalf("v%d: brokers %v controller %d; want %s controller %d", v, brokers, resp.ControllerID, wantBrokers, m.other)
		}
		ps := resp.Topics[0].Partitions
		if len(ps) != 3 {
			t.Fatalf("v%d: %d partitions", v, len(ps))
		}
		got := func(p kmsg.MetadataResponseTopicPartition) string {
			return fmt.Sprintf("%s leader %d epoch %d replicas %v isr %v offline %v",
				codeOf(p.ErrorCode), p.Leader, p.LeaderEpoch, p.Replicas, p.ISR, p.OfflineReplicas)
		}
		want := []string{
			fmt.Sprintf("%s leader %d epoch 7 replicas %v isr %v offline %v", codeOf(0), m.other,
				[]int32{m.other, m.self, m.unreg}, []int32{m.self, m.other}, []int32{m.unreg}),
			fmt.Sprintf("%s leader -1 epoch -1 replicas %v isr %v offline []", codeOf(kerr.LeaderNotAvailable.Code),
				[]int32{m.self}, []int32{m.self}),
			fmt.Sprintf("%s leader -1 epoch 4 replicas %v isr %v offline %v", codeOf(kerr.LeaderNotAvailable.Code),
				[]int32{m.unreg, m.other}, []int32{m.other}, []int32{m.unreg}),
		}
		for i, p := range ps {
			if v < 7 {
				want[i] = strings.Replace(want[i], "epoch 7", "epoch -1", 1)
				want[i] = strings.Replace(want[i], "epoch 4", "epoch -1", 1)
			}
			if v < 5 { // offline replicas came with v5
				want[i] = strings.Replace(want[i], fmt.Sprintf("offline %v", []int32{m.unreg}), "offline []", 1)
			}
			if got(p) != want[i] {
				t.Errorf("v%d partition %d: %s\nwant %s", v, i, got(p), want[i])
			}
		}
	}
	for _, v := range []int16{0, 1} {
		req := kmsg.NewPtrDescribeClusterRequest()
		req.Version, req.EndpointType = v, 1
		resp := rc.roundTrip(req).(*kmsg.DescribeClusterResponse)
		var brokers []broker
		for _, b := range resp.Brokers {
			brokers = append(brokers, broker{b.NodeID, fmt.Sprintf("%s:%d", b.Host, b.Port), derefOr(b.Rack)})
		}
		if resp.ErrorCode != 0 || fmt.Sprint(brokers) != wantBrokers || resp.ControllerID != m.other {
			t.Errorf("describe cluster v%d: %s brokers %v controller %d", v, codeOf(resp.ErrorCode), brokers, resp.ControllerID)
		}
	}
}

// TestCreateTopicsReplicaAssignmentOnACluster proves a manual replica
// assignment is refused on a cluster of several nodes (not supported yet),
// and one naming a node that is no broker is an invalid assignment.
func TestCreateTopicsReplicaAssignmentOnACluster(t *testing.T) {
	m := startMovedCluster(t)
	rc := m.ts.dial(t)
	cases := []struct {
		name     string
		replicas []int32
		code     *kerr.Error
		hint     string
	}{
		{"this node", []int32{m.self}, kerr.InvalidRequest, "not supported yet"},
		{"two nodes", []int32{m.self, m.other}, kerr.InvalidRequest, "not supported yet"},
		{"unknown node", []int32{m.self + 9}, kerr.InvalidReplicaAssignment, "not a broker"},
	}
	for _, tc := range cases {
		rt := createTopicEntry("assigned", -1, -1, nil)
		a := kmsg.NewCreateTopicsRequestTopicReplicaAssignment()
		a.Partition, a.Replicas = 0, tc.replicas
		rt.ReplicaAssignment = append(rt.ReplicaAssignment, a)
		got := rc.roundTrip(createTopicsRequest(7, false, rt)).(*kmsg.CreateTopicsResponse).Topics[0]
		if got.ErrorCode != tc.code.Code || got.ErrorMessage == nil || !strings.Contains(*got.ErrorMessage, tc.hint) {
			t.Errorf("%s: %s (%v), want %s mentioning %q", tc.name, codeOf(got.ErrorCode), got.ErrorMessage, tc.code.Message, tc.hint)
		}
	}
	if _, ok := m.ts.cluster.Topic("assigned"); ok {
		t.Error("a refused assignment created the topic")
	}
	cp := createPartitionsEntry("moved", 4, []int32{m.self})
	got := rc.roundTrip(createPartitionsRequest(3, false, cp)).(*kmsg.CreatePartitionsResponse).Topics[0]
	if got.ErrorCode != kerr.InvalidRequest.Code {
		t.Errorf("create partitions with an assignment: %s (%v)", codeOf(got.ErrorCode), got.ErrorMessage)
	}
}

// TestOffsetCommitForPartitionsElsewhere proves a group may commit offsets
// of a partition with no replica on this node (its coordinator need not
// hold what its members consume), while a partition past the topic's
// count stays UNKNOWN_TOPIC_OR_PARTITION.
func TestOffsetCommitForPartitionsElsewhere(t *testing.T) {
	m := startMovedCluster(t)
	rc := m.ts.dial(t)
	req := kmsg.NewPtrOffsetCommitRequest()
	req.SetVersion(9)
	req.Group, req.Generation = "g", -1
	rt := kmsg.NewOffsetCommitRequestTopic()
	rt.Topic = "moved"
	for _, index := range []int32{2, 3} {
		rp := kmsg.NewOffsetCommitRequestTopicPartition()
		rp.Partition, rp.Offset = index, 5
		rt.Partitions = append(rt.Partitions, rp)
	}
	req.Topics = append(req.Topics, rt)
	ps := rc.roundTrip(req).(*kmsg.OffsetCommitResponse).Topics[0].Partitions
	if ps[0].ErrorCode != 0 || ps[1].ErrorCode != kerr.UnknownTopicOrPartition.Code {
		t.Fatalf("commit: partition 2 %s, partition 3 %s", codeOf(ps[0].ErrorCode), codeOf(ps[1].ErrorCode))
	}
	fetch := kmsg.NewPtrOffsetFetchRequest()
	fetch.SetVersion(7)
	fetch.Group = "g"
	fetch.Topics = []kmsg.OffsetFetchRequestTopic{{Topic: "moved", Partitions: []int32{2}}}
	fp := rc.roundTrip(fetch).(*kmsg.OffsetFetchResponse).Topics[0].Partitions[0]
	if fp.ErrorCode != 0 || fp.Offset != 5 {
		t.Fatalf("fetched %s offset %d, want 5", codeOf(fp.ErrorCode), fp.Offset)
	}
}

// switchView is a cluster's view whose partition leaders and other brokers
// a test changes while clients run.
type switchView struct {
	*cluster.Cluster
	mu      sync.Mutex
	leaders map[string]cluster.Leader // by partKey; the others are the cluster's
	brokers []cluster.Broker          // besides the cluster's
	ids     map[string][16]byte       // topic ids to report, as one cluster has one
}

// setID reports topic with id, the one another node gave it.
func (v *switchView) setID(topic string, id [16]byte) {
	v.mu.Lock()
	defer v.mu.Unlock()
	v.ids = map[string][16]byte{topic: id}
}

func (v *switchView) withID(t *cluster.Topic) *cluster.Topic {
	v.mu.Lock()
	defer v.mu.Unlock()
	id, ok := v.ids[t.Name]
	if !ok {
		return t
	}
	cp := *t
	cp.ID = id
	return &cp
}

func (v *switchView) Topics() []*cluster.Topic {
	var out []*cluster.Topic
	for _, t := range v.Cluster.Topics() {
		out = append(out, v.withID(t))
	}
	return out
}

func (v *switchView) Topic(name string) (*cluster.Topic, bool) {
	t, ok := v.Cluster.Topic(name)
	if !ok {
		return nil, false
	}
	return v.withID(t), true
}

func (v *switchView) TopicByID(id [16]byte) (*cluster.Topic, bool) {
	for _, t := range v.Topics() {
		if t.ID == id {
			return t, true
		}
	}
	return nil, false
}

// set makes node l.Node the leader of topic-index as this node sees it.
func (v *switchView) set(topic string, index int32, l cluster.Leader) {
	v.mu.Lock()
	defer v.mu.Unlock()
	if v.leaders == nil {
		v.leaders = map[string]cluster.Leader{}
	}
	v.leaders[partKey(topic, index)] = l
}

func (v *switchView) addBroker(b cluster.Broker) {
	v.mu.Lock()
	defer v.mu.Unlock()
	v.brokers = append(v.brokers, b)
}

func (v *switchView) Leader(topic string, index int32) (cluster.Leader, error) {
	own, err := v.Cluster.Leader(topic, index)
	v.mu.Lock()
	defer v.mu.Unlock()
	if l, ok := v.leaders[partKey(topic, index)]; ok && err == nil {
		return l, nil
	}
	return own, err
}

func (v *switchView) InSync(topic string, index int32) []int32 {
	v.mu.Lock()
	l, ok := v.leaders[partKey(topic, index)]
	v.mu.Unlock()
	if ok {
		return []int32{l.Node}
	}
	return v.Cluster.InSync(topic, index)
}

func (v *switchView) Brokers() []cluster.Broker {
	v.mu.Lock()
	defer v.mu.Unlock()
	out := append(v.Cluster.Brokers(), v.brokers...)
	slices.SortFunc(out, func(a, b cluster.Broker) int { return cmp.Compare(a.NodeID, b.NodeID) })
	return out
}

// TestFranzGoFollowsALeaderChange proves a franz-go producer and consumer
// follow a partition's leader from one node to another with no code of
// their own: two single nodes, 0 and 1, each hold the partition (under one
// topic id, as in a cluster), node 1 a copy of node 0's records as a
// follower would; both first say node 0 leads it, then both say node 1
// does, at a later epoch, and node 0 answers NOT_LEADER_OR_FOLLOWER. Every
// record is acknowledged, the later ones appended on node 1, and the
// consumer reads them all in order.
func TestFranzGoFollowsALeaderChange(t *testing.T) {
	views := [2]*switchView{}
	var servers [2]*testServer
	for node := range int32(2) {
		servers[node] = startServerWith(t, serverSetup{node: node, view: func(c *cluster.Cluster) clusterView {
			views[node] = &switchView{Cluster: c}
			return views[node]
		}})
		adminCreate(t, servers[node], "moving", 1, nil)
	}
	topic, _ := servers[0].cluster.Topic("moving")
	views[1].setID("moving", topic.ID)
	for node := range int32(2) {
		other := 1 - node
		views[node].addBroker(cluster.Broker{NodeID: other, KafkaAddr: servers[other].addr})
	}
	p0, _ := servers[0].cluster.Partition("moving", 0)
	p1, _ := servers[1].cluster.Partition("moving", 0)
	epoch := p0.LeaderEpoch()
	views[1].set("moving", 0, cluster.Leader{Node: 0, Epoch: epoch})

	// Idempotence off: node 1 never saw node 0's producer state, as a real
	// follower would have. A short metadata age and fetch wait only keep
	// the test quick: franz-go refreshes after NOT_LEADER_OR_FOLLOWER once
	// its metadata is that old (5 s by default), and node 0's long poll
	// ends at the wait, as nothing wakes it.
	cl := servers[0].client(t, kgo.DefaultProduceTopic("moving"), kgo.DisableIdempotentWrite(),
		kgo.RecordPartitioner(kgo.ManualPartitioner()), kgo.MetadataMinAge(50*time.Millisecond))
	consumer := servers[0].client(t, kgo.ConsumeTopics("moving"), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		kgo.MetadataMinAge(50*time.Millisecond), kgo.FetchMaxWait(100*time.Millisecond))
	produce := func(from, count int) {
		t.Helper()
		for i := from; i < from+count; i++ {
			r := &kgo.Record{Partition: 0, Value: []byte(fmt.Sprint("v", i))}
			if err := cl.ProduceSync(adminContext(t), r).FirstErr(); err != nil {
				t.Fatalf("record %d: %v", i, err)
			}
		}
	}
	var consumed []string
	consume := func(upTo int) {
		t.Helper()
		ctx := adminContext(t)
		for len(consumed) < upTo {
			fetches := consumer.PollFetches(ctx)
			if err := ctx.Err(); err != nil {
				t.Fatalf("consumed %v, want %d records: %v", consumed, upTo, err)
			}
			fetches.EachRecord(func(r *kgo.Record) { consumed = append(consumed, string(r.Value)) })
		}
	}

	produce(0, 3)
	for i := range 3 { // node 1's copy, at the same offsets
		if _, err := p1.Append(oneRecord(fmt.Sprint("v", i))); err != nil {
			t.Fatal(err)
		}
	}
	consume(3)
	if p0.LogEndOffset() != 3 || p1.LogEndOffset() != 3 {
		t.Fatalf("before the change: node 0 holds %d records, node 1 %d", p0.LogEndOffset(), p1.LogEndOffset())
	}

	moved := cluster.Leader{Node: 1, Epoch: epoch + 1}
	views[0].set("moving", 0, moved)
	moved.Local = true
	views[1].set("moving", 0, moved)
	produce(3, 3)
	if p0.LogEndOffset() != 3 || p1.LogEndOffset() != 6 {
		t.Fatalf("after the change: node 0 holds %d records, node 1 %d", p0.LogEndOffset(), p1.LogEndOffset())
	}
	consume(6)
	if got, want := fmt.Sprint(consumed), fmt.Sprint([]string{"v0", "v1", "v2", "v3", "v4", "v5"}); got != want {
		t.Fatalf("consumed %s, want %s", got, want)
	}
}

// TestMinInSyncReplicas: an acks=all produce to a partition with fewer
// in-sync replicas than min.insync.replicas is refused with
// NOT_ENOUGH_REPLICAS before anything is appended; acks=1 is served, and
// so is acks=all once enough replicas are in sync. Values below 1 are
// refused as configs.
func TestMinInSyncReplicas(t *testing.T) {
	ts := startServerView(t, func(c *cluster.Cluster) clusterView {
		self := c.NodeID()
		return &fakeView{Cluster: c, inSync: map[string][]int32{partKey("enough", 0): {self, self + 1}}}
	})
	for _, name := range []string{"isr", "enough"} {
		if _, err := ts.cluster.CreateTopic(name, 1, map[string]string{"min.insync.replicas": "2"}, false); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := ts.cluster.CreateTopic("bad", 1, map[string]string{"min.insync.replicas": "0"}, false); !errors.Is(err, cluster.ErrInvalidConfig) {
		t.Fatalf("min.insync.replicas=0: %v", err)
	}
	rc := ts.dial(t)
	produce := func(topic string, acks int16) kmsg.ProduceResponseTopicPartition {
		req := kmsg.NewPtrProduceRequest()
		req.SetVersion(9)
		req.Acks, req.TimeoutMillis = acks, 5000
		rt := kmsg.NewProduceRequestTopic()
		rt.Topic = topic
		rp := kmsg.NewProduceRequestTopicPartition()
		rp.Records = oneRecord("v")
		rt.Partitions = append(rt.Partitions, rp)
		req.Topics = append(req.Topics, rt)
		return rc.roundTrip(req).(*kmsg.ProduceResponse).Topics[0].Partitions[0]
	}
	if sp := produce("isr", -1); sp.ErrorCode != kerr.NotEnoughReplicas.Code || sp.ErrorMessage == nil {
		t.Fatalf("acks=all with 1 of 2 in sync: %s (%v)", codeOf(sp.ErrorCode), sp.ErrorMessage)
	}
	if p, _ := ts.cluster.Partition("isr", 0); p.LogEndOffset() != 0 {
		t.Fatalf("a refused produce appended: log end %d", p.LogEndOffset())
	}
	if sp := produce("isr", 1); sp.ErrorCode != 0 || sp.BaseOffset != 0 {
		t.Fatalf("acks=1: %s base %d", codeOf(sp.ErrorCode), sp.BaseOffset)
	}
	if sp := produce("enough", -1); sp.ErrorCode != 0 || sp.BaseOffset != 0 {
		t.Fatalf("acks=all with 2 in sync: %s base %d", codeOf(sp.ErrorCode), sp.BaseOffset)
	}
}
