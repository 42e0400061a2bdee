package kafka

import (
	"fmt"
	"net"
	"strconv"
	"sync"
	"testing"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/cairnlog/cairn/cluster"
	"github.com/cairnlog/cairn/groups"
)

// movableLeader is a leader view in which every __consumer_offsets
// partition has the one leader the test sets; node 7 is another broker.
type movableLeader struct {
	mu      sync.Mutex
	leader  cluster.Leader
	changed chan struct{}
}

const otherBrokerID, otherBrokerAddr = 7, "other.example:9093"

func (m *movableLeader) Leader(topic string, index int32) (cluster.Leader, error) {
	if topic != groups.OffsetsTopic {
		return cluster.Leader{Node: -1, Epoch: -1}, fmt.Errorf("%w: %s", cluster.ErrUnknownTopic, topic)
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.leader, nil
}

func (m *movableLeader) LeadersChanged() <-chan struct{} {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.changed
}

func (m *movableLeader) Brokers() []cluster.Broker {
	return []cluster.Broker{{NodeID: 0}, {NodeID: otherBrokerID, KafkaAddr: otherBrokerAddr}}
}

func (m *movableLeader) set(l cluster.Leader) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.leader = l
	close(m.changed)
	m.changed = make(chan struct{})
}

// findCoordinator asks for key's coordinator at version v.
func findCoordinator(rc *rawConn, v int16, key string) (node int32, host string, port int32, code int16) {
	req := kmsg.NewPtrFindCoordinatorRequest()
	req.Version = v
	if v < 4 {
		req.CoordinatorKey = key
		resp := rc.roundTrip(req).(*kmsg.FindCoordinatorResponse)
		return resp.NodeID, resp.Host, resp.Port, resp.ErrorCode
	}
	req.CoordinatorKeys = []string{key}
	resp := rc.roundTrip(req).(*kmsg.FindCoordinatorResponse)
	if len(resp.Coordinators) != 1 || resp.Coordinators[0].Key != key {
		rc.t.Fatalf("v%d answers %+v for key %q", v, resp.Coordinators, key)
	}
	c := resp.Coordinators[0]
	return c.NodeID, c.Host, c.Port, c.ErrorCode
}

// joinCode sends a v4 JoinGroup without a member id and returns its code.
func joinCode(rc *rawConn, group string) int16 {
	req := kmsg.NewPtrJoinGroupRequest()
	req.Version, req.Group, req.ProtocolType = 4, group, "consumer"
	req.SessionTimeoutMillis, req.RebalanceTimeoutMillis = 10_000, 10_000
	req.Protocols = []kmsg.JoinGroupRequestProtocol{{Name: "range", Metadata: []byte{}}}
	return rc.roundTrip(req).(*kmsg.JoinGroupResponse).ErrorCode
}

// TestFindCoordinatorNamesTheOffsetsLeader: FindCoordinator (single key
// and batched) answers the node leading the group's __consumer_offsets
// partition with that broker's address, and this node's own address when
// it leads; COORDINATOR_NOT_AVAILABLE while the partition has no leader.
// A group whose partition is led elsewhere gets NOT_COORDINATOR from the
// group APIs, and is served once the leadership comes here.
func TestFindCoordinatorNamesTheOffsetsLeader(t *testing.T) {
	leaders := &movableLeader{leader: cluster.Leader{Node: otherBrokerID, Epoch: 1}, changed: make(chan struct{})}
	ts := startServer(t, fastGroups, func(c *Config) { c.Groups.Leaders = leaders })
	rc := ts.dial(t)
	host, portText, _ := net.SplitHostPort(ts.addr)
	port, _ := strconv.Atoi(portText)
	otherHost, otherPortText, _ := net.SplitHostPort(otherBrokerAddr)
	otherPort, _ := strconv.Atoi(otherPortText)

	for _, v := range []int16{0, 3, 4} {
		node, h, p, code := findCoordinator(rc, v, "g")
		if code != 0 || node != otherBrokerID || h != otherHost || p != int32(otherPort) {
			t.Fatalf("v%d led elsewhere: node %d at %s:%d code %d, want node %d at %s", v, node, h, p, code, otherBrokerID, otherBrokerAddr)
		}
	}
	if _, ok := ts.cluster.Topic(groups.OffsetsTopic); !ok {
		t.Fatalf("FindCoordinator did not create %s", groups.OffsetsTopic)
	}
	if code := joinCode(rc, "g"); code != kerr.NotCoordinator.Code {
		t.Fatalf("JoinGroup led elsewhere: code %d, want NOT_COORDINATOR", code)
	}

	leaders.set(cluster.Leader{Node: -1, Epoch: -1})
	for _, v := range []int16{3, 4} {
		if node, _, _, code := findCoordinator(rc, v, "g"); code != kerr.CoordinatorNotAvailable.Code || node != -1 {
			t.Fatalf("v%d without a leader: node %d code %d, want COORDINATOR_NOT_AVAILABLE", v, node, code)
		}
	}

	leaders.set(cluster.Leader{Node: 0, Epoch: 2, Local: true})
	for _, v := range []int16{3, 4} {
		node, h, p, code := findCoordinator(rc, v, "g")
		if code != 0 || node != 0 || h != host || p != int32(port) {
			t.Fatalf("v%d led here: node %d at %s:%d code %d, want node 0 at %s", v, node, h, p, code, ts.addr)
		}
	}
	if code := joinCode(rc, "g"); code != kerr.MemberIDRequired.Code {
		t.Fatalf("JoinGroup led here: code %d, want MEMBER_ID_REQUIRED (served)", code)
	}
}
