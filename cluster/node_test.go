package cluster

import (
	"context"
	"errors"
	"fmt"
	"net"
	"path"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/cairnlog/cairn/batch"
	"github.com/cairnlog/cairn/partition"
	"github.com/cairnlog/cairn/raftlog"
	"github.com/cairnlog/cairn/storage/vfs"
)

// nodeWaitMax bounds every wait of the cluster tests: what takes
// milliseconds over loopback and has not happened by then will not.
const nodeWaitMax = 20 * time.Second

// testNodes are cluster nodes of one process over loopback TCP, each with
// its own in-memory filesystem kept across its restarts.
type testNodes struct {
	t     *testing.T
	peers map[int32]string
	fs    map[int32]vfs.FS
	nodes map[int32]*Cluster
	// nodesMu guards nodes against the test goroutine's stop and restart
	// while another goroutine (an appender) looks through it.
	nodesMu sync.Mutex
	// faulty: each node's FS is a vfs.ErrorFS a test injects faults into.
	faulty bool
	// kafkaPort is the port each node registers in its Kafka address
	// (never bound here); a test changes it before a restart.
	kafkaPort map[int32]int
	// edit, when set, changes every node's config.
	edit func(*Config)
}

// freeLoopbackAddrs reserves n loopback addresses: the peer list, and so
// the cluster id, must be known before any node listens.
func freeLoopbackAddrs(t *testing.T, n int) []string {
	var addrs []string
	for range n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		addrs = append(addrs, l.Addr().String())
		l.Close()
	}
	return addrs
}

// startNodes starts a new cluster of n nodes. The addresses are picked
// free and then bound, so another socket (a node dialling out from an
// ephemeral port) may take one in between: such a start is retried on
// fresh addresses.
func startNodes(t *testing.T, n int) *testNodes {
	return startNodesOf(&testNodes{t: t}, n)
}

func startNodesOf(tn *testNodes, n int) *testNodes {
	t := tn.t
	for attempt := 1; ; attempt++ {
		err := tn.tryStart(n)
		if err == nil {
			break
		}
		if attempt == 5 || !errors.Is(err, syscall.EADDRINUSE) {
			t.Fatal(err)
		}
	}
	t.Cleanup(func() {
		for id := range tn.nodes {
			tn.stop(id)
		}
	})
	return tn
}

func (tn *testNodes) tryStart(n int) error {
	tn.peers, tn.fs, tn.nodes, tn.kafkaPort = map[int32]string{}, map[int32]vfs.FS{}, map[int32]*Cluster{}, map[int32]int{}
	for i, addr := range freeLoopbackAddrs(tn.t, n) {
		id := int32(i + 1)
		tn.peers[id], tn.fs[id], tn.kafkaPort[id] = addr, vfs.NewMem(), 19090+int(id)
		if tn.faulty {
			tn.fs[id] = vfs.NewErrorFS(tn.fs[id])
		}
	}
	// Concurrently: each new node waits in Open for a quorum of its peers.
	type opened struct {
		id  int32
		c   *Cluster
		err error
	}
	results := make(chan opened, n)
	for id := range tn.peers {
		go func() {
			c, err := tn.open(id)
			results <- opened{id, c, err}
		}()
	}
	var failed error
	for range n {
		r := <-results
		if r.err != nil {
			failed = r.err
			continue
		}
		tn.nodes[r.id] = r.c
	}
	if failed != nil {
		for id := range tn.nodes {
			tn.stop(id)
		}
	}
	return failed
}

func (tn *testNodes) config(id int32) Config {
	cfg := DefaultConfig("/data")
	cfg.NodeID, cfg.Peers = id, tn.peers
	cfg.KafkaAddr = fmt.Sprintf("127.0.0.1:%d", tn.kafkaPort[id])
	cfg.Rack = fmt.Sprintf("rack-%d", id)
	cfg.RaftTickMs, cfg.StartTimeoutMs = 10, nodeWaitMax.Milliseconds()
	if tn.edit != nil {
		tn.edit(&cfg)
	}
	return cfg
}

func (tn *testNodes) open(id int32) (*Cluster, error) {
	c, err := Open(testEnv(tn.fs[id]), tn.config(id))
	if err != nil {
		return nil, fmt.Errorf("node %d: %w", id, err)
	}
	return c, nil
}

func (tn *testNodes) stop(id int32) {
	c := tn.nodes[id]
	tn.nodesMu.Lock()
	delete(tn.nodes, id)
	tn.nodesMu.Unlock()
	if err := c.Close(); err != nil {
		tn.t.Errorf("close node %d: %v", id, err)
	}
}

// restart opens node id again from its data directory, on its old
// address; another socket may hold the port a moment, so a refused bind
// is retried.
func (tn *testNodes) restart(id int32) {
	tn.t.Helper()
	deadline := time.Now().Add(nodeWaitMax)
	for {
		c, err := tn.open(id)
		if err == nil {
			tn.nodesMu.Lock()
			tn.nodes[id] = c
			tn.nodesMu.Unlock()
			return
		}
		if !errors.Is(err, syscall.EADDRINUSE) || time.Now().After(deadline) {
			tn.t.Fatal(err)
		}
		time.Sleep(50 * time.Millisecond) // the port's holder is outside the test's reach
	}
}

func waitUntil(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(nodeWaitMax)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond) // polling state across nodes: no one event to wait on
	}
}

// leader waits until every running node reports the same leader of a
// partition, which alone serves it, and returns it.
func (tn *testNodes) leader(topic string, index int32) int32 {
	tn.t.Helper()
	var lead int32
	waitUntil(tn.t, fmt.Sprintf("a leader of %s-%d agreed on", topic, index), func() bool {
		lead = -1
		for id, c := range tn.nodes {
			l, err := c.Leader(topic, index)
			if err != nil || l.Node < 1 || (lead != -1 && l.Node != lead) || l.Local != (l.Node == id) {
				return false
			}
			lead = l.Node
		}
		_, running := tn.nodes[lead]
		return running
	})
	return lead
}

// controller waits until every running node names the same meta leader,
// one of them.
func (tn *testNodes) controller() int32 {
	tn.t.Helper()
	var ctl int32
	waitUntil(tn.t, "a metadata leader agreed on", func() bool {
		ctl = -1
		for _, c := range tn.nodes {
			id := c.ControllerID()
			if id < 1 || (ctl != -1 && id != ctl) {
				return false
			}
			ctl = id
		}
		_, running := tn.nodes[ctl]
		return running
	})
	return ctl
}

func (tn *testNodes) other(than int32) int32 {
	for id := range tn.nodes {
		if id != than {
			return id
		}
	}
	tn.t.Fatalf("no node but %d", than)
	return 0
}

// appendAll appends one record and waits for acks=all.
func appendAll(t *testing.T, c *Cluster, topic string, index int32, value string) partition.AppendResult {
	t.Helper()
	p, err := c.Partition(topic, index)
	if err != nil {
		t.Fatal(err)
	}
	res, err := p.Append(batch.Build([]batch.Record{{TimestampMs: time.Now().UnixMilli(), Value: []byte(value)}}, batch.None))
	if err != nil {
		t.Fatalf("append %q on node %d: %v", value, c.NodeID(), err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), nodeWaitMax)
	defer cancel()
	if err := p.WaitAppended(ctx, res, true); err != nil {
		t.Fatalf("append %q on node %d: %v", value, c.NodeID(), err)
	}
	return res
}

// records reads a partition up to its high watermark as offset:value.
func records(t *testing.T, p *partition.Partition) []string {
	t.Helper()
	var out []string
	for from := p.LogStartOffset(); from < p.HighWatermark(); {
		res, err := p.Read(from, 1<<20)
		if err != nil {
			t.Fatal(err)
		}
		for rest := res.Records; len(rest) > 0; {
			_, whole, next, err := batch.Next(rest)
			if err != nil {
				t.Fatal(err)
			}
			recs, err := batch.Records(whole, batch.DefaultLimits())
			if err != nil {
				t.Fatal(err)
			}
			for _, r := range recs {
				if r.Offset >= from && r.Offset < res.HighWatermark {
					out = append(out, fmt.Sprintf("%d:%s", r.Offset, r.Value))
				}
				from = max(from, r.Offset+1)
			}
			rest = next
		}
	}
	return out
}

// waitReplicated waits until every running node's replica holds want.
func (tn *testNodes) waitReplicated(topic string, index int32, want []string) {
	tn.t.Helper()
	for id, c := range tn.nodes {
		p, err := c.Partition(topic, index)
		if err != nil {
			tn.t.Fatalf("node %d: %v", id, err)
		}
		waitUntil(tn.t, fmt.Sprintf("node %d to apply %s-%d up to %d", id, topic, index, len(want)), func() bool {
			return p.HighWatermark() >= int64(len(want))
		})
		if got := records(tn.t, p); !slices.Equal(got, want) {
			tn.t.Fatalf("node %d holds %v, want %v", id, got, want)
		}
	}
}

// TestClusterReplicatesPartitions: three nodes over loopback; an RF 3
// topic created through a follower of the metadata group is opened on
// every node, each partition elects a leader every node agrees on, an
// acknowledged append is on every replica, a follower refuses appends,
// a stopped leader is replaced with nothing acknowledged lost, the
// stopped node catches up after its restart (and registers the new Kafka
// address it restarted with), and a deletion removes the replicas
// everywhere.
func TestClusterReplicatesPartitions(t *testing.T) {
	tn := startNodes(t, 3)
	via := tn.other(tn.controller())
	topic, err := tn.nodes[via].CreateTopicReplicated("events", 2, 3, nil, false)
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range topic.Partitions {
		if got := slices.Sorted(slices.Values(s.Replicas)); !slices.Equal(got, []int32{1, 2, 3}) {
			t.Fatalf("partition %d replicas %v", s.Index, s.Replicas)
		}
	}
	tn.leader("events", 1)
	lead := tn.leader("events", 0)
	want := []string{fmt.Sprintf("%d:a", appendAll(t, tn.nodes[lead], "events", 0, "a").BaseOffset)}
	tn.waitReplicated("events", 0, want)
	for id, c := range tn.nodes {
		if id == lead {
			continue
		}
		p, err := c.Partition("events", 0)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := p.Append(testBatch(t)); !errors.Is(err, ErrNotLeader) {
			t.Fatalf("append on follower %d: %v, want ErrNotLeader", id, err)
		}
	}
	for id, c := range tn.nodes {
		waitUntil(t, fmt.Sprintf("node %d to count every replica in sync", id), func() bool {
			return slices.Equal(c.InSync("events", 0), []int32{1, 2, 3})
		})
	}

	watcher := tn.other(lead)
	changed := tn.nodes[watcher].LeadersChanged()
	tn.stop(lead)
	next := tn.leader("events", 0)
	select {
	case <-changed:
	default:
		t.Fatalf("node %d saw the leader move from %d to %d without LeadersChanged", watcher, lead, next)
	}
	var alive []int32
	for id := range tn.nodes {
		alive = append(alive, id)
	}
	slices.Sort(alive)
	waitUntil(t, "the new leader to drop the stopped node from the in-sync replicas", func() bool {
		return slices.Equal(tn.nodes[next].InSync("events", 0), alive)
	})
	want = append(want, fmt.Sprintf("%d:b", appendAll(t, tn.nodes[next], "events", 0, "b").BaseOffset))
	tn.waitReplicated("events", 0, want)

	tn.kafkaPort[lead] += 1000 // the restarted node registers its new address
	tn.restart(lead)
	tn.waitReplicated("events", 0, want)
	tn.leader("events", 0)
	for id, c := range tn.nodes {
		waitUntil(t, fmt.Sprintf("node %d to see node %d's new address", id, lead), func() bool {
			for _, b := range c.Brokers() {
				if b.NodeID == lead {
					return b.KafkaAddr == fmt.Sprintf("127.0.0.1:%d", tn.kafkaPort[lead])
				}
			}
			return false
		})
	}

	if err := tn.nodes[via].DeleteTopic("events"); err != nil {
		t.Fatal(err)
	}
	for id, c := range tn.nodes {
		waitUntil(t, fmt.Sprintf("node %d to drop the topic", id), func() bool {
			_, ok := c.Topic("events")
			return !ok
		})
		for _, name := range listData(t, tn.fs[id], "/data") {
			if strings.HasPrefix(name, "events-") {
				t.Fatalf("node %d keeps %s", id, name)
			}
		}
	}
}

// TestClusterPartitionsWithoutLocalReplica: an RF 1 topic on three nodes
// has each partition on one node; the others hold no replica, report its
// slot as not led here, and know its leader from the leader table. The
// brokers are listed with the addresses and racks they registered.
func TestClusterPartitionsWithoutLocalReplica(t *testing.T) {
	tn := startNodes(t, 3)
	if _, err := tn.nodes[1].CreateTopicReplicated("single", 3, 1, nil, false); err != nil {
		t.Fatal(err)
	}
	if _, err := tn.nodes[1].CreateTopicReplicated("too-many", 1, 4, nil, false); !errors.Is(err, ErrInvalidReplicationFactor) {
		t.Fatalf("rf 4 on 3 nodes: %v", err)
	}
	for i := range int32(3) {
		var owner int32
		waitUntil(t, "every node to know the topic", func() bool {
			for _, c := range tn.nodes {
				if _, ok := c.Topic("single"); !ok {
					return false
				}
			}
			return true
		})
		for id, c := range tn.nodes {
			top, _ := c.Topic("single")
			s := top.Partitions[i]
			if len(s.Replicas) != 1 {
				t.Fatalf("node %d: partition %d replicas %v", id, i, s.Replicas)
			}
			owner = s.Replicas[0]
			_, err := c.Partition("single", i)
			if hosted := err == nil; hosted != (id == owner) || (!hosted && !errors.Is(err, ErrNotLeader)) {
				t.Fatalf("node %d, partition %d on node %d: %v", id, i, owner, err)
			}
		}
		if lead := tn.leader("single", i); lead != owner {
			t.Fatalf("partition %d led by %d, its replica is on %d", i, lead, owner)
		}
	}
	brokers := tn.nodes[2].Brokers()
	if len(brokers) != 3 {
		t.Fatalf("brokers %+v", brokers)
	}
	for _, b := range brokers {
		if b.KafkaAddr != fmt.Sprintf("127.0.0.1:%d", 19090+b.NodeID) || b.Rack != fmt.Sprintf("rack-%d", b.NodeID) {
			t.Fatalf("broker %+v", b)
		}
	}
}

// TestClusterConfigValidate: cluster-mode settings are checked before
// anything opens.
func TestClusterConfigValidate(t *testing.T) {
	peers := map[int32]string{1: "127.0.0.1:1", 2: "127.0.0.1:2", 3: "127.0.0.1:3"}
	for _, tc := range []struct {
		name string
		edit func(*Config)
		want string
	}{
		{"node 0", func(c *Config) { c.NodeID = 0 }, "between 1 and"},
		{"not a peer", func(c *Config) { c.NodeID = 4 }, "not among the peers"},
		{"bad peer address", func(c *Config) { c.Peers = map[int32]string{1: "nowhere"} }, "not HOST:PORT"},
		{"bad kafka address", func(c *Config) { c.KafkaAddr = "9092" }, "kafka address"},
		{"election ticks", func(c *Config) { c.RaftElectionTicks = 2 }, "election ticks"},
		{"dial address of itself", func(c *Config) { c.PeerDialAddrs = map[int32]string{1: "127.0.0.1:9"} }, "not another node's id"},
		{"bad dial address", func(c *Config) { c.PeerDialAddrs = map[int32]string{2: "nowhere"} }, "peer dial address of node 2"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := DefaultConfig("/data")
			cfg.NodeID, cfg.Peers = 1, peers
			if err := cfg.Validate(); err != nil {
				t.Fatalf("the valid config: %v", err)
			}
			tc.edit(&cfg)
			err := cfg.Validate()
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("got %v, want an error saying %q", err, tc.want)
			}
			if _, err := Open(testEnv(vfs.NewMem()), cfg); err == nil {
				t.Fatal("Open accepted it")
			}
		})
	}
}

// TestClusterOpenWithoutQuorumIsBounded: a new node whose peers never
// answer gives up after StartTimeoutMs with an error naming the wait, and
// leaves its data directory unlocked.
func TestClusterOpenWithoutQuorumIsBounded(t *testing.T) {
	addrs := freeLoopbackAddrs(t, 3)
	fsys := vfs.NewMem()
	cfg := DefaultConfig("/data")
	cfg.NodeID, cfg.Peers = 1, map[int32]string{1: addrs[0], 2: addrs[1], 3: addrs[2]}
	cfg.RaftTickMs, cfg.StartTimeoutMs = 10, 300
	started := time.Now()
	_, err := Open(testEnv(fsys), cfg)
	if err == nil {
		t.Fatal("a node alone opened a cluster of three")
	}
	if elapsed := time.Since(started); elapsed > 10*time.Second {
		t.Fatalf("gave up after %v", elapsed)
	}
	if !strings.Contains(err.Error(), "peers") {
		t.Fatalf("error %q does not name the peers", err)
	}
	lock, err := fsys.Lock("/data/LOCK")
	if err != nil {
		t.Fatalf("the data dir stayed locked: %v", err)
	}
	lock.Close()
}

// TestClusterNodeAwayDuringDeletion: a node stopped while one topic is
// deleted and another deleted and created again under its name starts
// again: its replica of the deleted topic is removed, and the old replica
// at the recreated topic's place is replaced by the new group's, which
// catches up with what was appended while it was away.
func TestClusterNodeAwayDuringDeletion(t *testing.T) {
	tn := startNodes(t, 3)
	for _, name := range []string{"gone", "again"} {
		if _, err := tn.nodes[1].CreateTopicReplicated(name, 1, 3, nil, false); err != nil {
			t.Fatal(err)
		}
		lead := tn.leader(name, 0)
		tn.waitReplicated(name, 0, []string{fmt.Sprintf("%d:old", appendAll(t, tn.nodes[lead], name, 0, "old").BaseOffset)})
	}
	away := tn.other(1)
	tn.stop(away)
	tn.controller() // a proposal forwarded to the stopped leader would have an unknown outcome
	for _, name := range []string{"gone", "again"} {
		if err := tn.nodes[1].DeleteTopic(name); err != nil {
			t.Fatal(err)
		}
	}
	again, err := tn.nodes[1].CreateTopicReplicated("again", 1, 3, nil, false)
	if err != nil {
		t.Fatal(err)
	}
	lead := tn.leader("again", 0)
	want := []string{fmt.Sprintf("%d:new", appendAll(t, tn.nodes[lead], "again", 0, "new").BaseOffset)}

	tn.restart(away)
	// Open returns once the node applied the metadata log as far as the
	// leader's first heartbeat told it was committed, which may stop short
	// of the deletions: until the rest arrives the node opens the old
	// topic's replica, a follower of a group no other node has. Waiting
	// on that replica would pass on its old record.
	waitUntil(t, "the restarted node to apply the recreated topic", func() bool {
		topic, ok := tn.nodes[away].Topic("again")
		return ok && topic.ID == again.ID
	})
	tn.waitReplicated("again", 0, want)
	if _, ok := tn.nodes[away].Topic("gone"); ok {
		t.Fatal("the deleted topic is back")
	}
	for _, name := range listData(t, tn.fs[away], "/data") {
		if strings.HasPrefix(name, "gone-") || strings.HasSuffix(name, deletionSuffix) {
			t.Fatalf("node %d keeps %s", away, name)
		}
	}
}

// TestClusterOfOneNode: --peers naming only this node runs the cluster
// path with one voter everywhere: the default replication factor is 1,
// the partition elects this node, and a restart keeps what was
// acknowledged.
func TestClusterOfOneNode(t *testing.T) {
	tn := startNodes(t, 1)
	topic, err := tn.nodes[1].CreateTopicReplicated("one", 2, -1, nil, false)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(topic.Partitions[1].Replicas, []int32{1}) {
		t.Fatalf("replicas %v", topic.Partitions[1].Replicas)
	}
	want := []string{fmt.Sprintf("%d:a", appendAll(t, tn.nodes[tn.leader("one", 0)], "one", 0, "a").BaseOffset)}
	tn.stop(1)
	tn.restart(1)
	tn.waitReplicated("one", 0, want)
	if lead := tn.leader("one", 0); lead != 1 {
		t.Fatalf("led by %d", lead)
	}
}

// TestClusterLeavesAnotherGroupsReplica: a directory at a partition's place
// holding another group's replica (a topic of the name deleted and created
// again in a metadata state newer than the one the node applied, found by
// a node restarted behind) is neither opened as the partition's replica nor
// removed when the older topic's deletion is applied: either would leave
// the newer group's replica on this node without the log it acknowledged.
func TestClusterLeavesAnotherGroupsReplica(t *testing.T) {
	tn := startNodes(t, 3)
	topic, err := tn.nodes[1].CreateTopicReplicated("t", 1, 3, nil, false)
	if err != nil {
		t.Fatal(err)
	}
	lead := tn.leader("t", 0)
	tn.waitReplicated("t", 0, []string{fmt.Sprintf("%d:a", appendAll(t, tn.nodes[lead], "t", 0, "a").BaseOffset)})
	away := tn.other(lead)
	tn.stop(away)
	name := path.Join("/data", partitionDirName("t", 0), raftStateFile)
	s, err := raftlog.ReadState(tn.fs[away], name)
	if err != nil {
		t.Fatal(err)
	}
	group := topic.Partitions[0].Group
	s.GroupID = group + 1000 // a group the state does not know yet
	if err := raftlog.WriteState(tn.fs[away], name, s); err != nil {
		t.Fatal(err)
	}
	tn.restart(away)
	waitUntil(t, "the restarted node to leave the partition offline, waiting", func() bool {
		got, ok := tn.nodes[away].Topic("t")
		return ok && errors.Is(got.Partitions[0].Offline, errReplicaWaits)
	})
	if got, _ := tn.nodes[away].Topic("t"); got.Partitions[0].Partition != nil {
		t.Fatal("another group's replica was opened as the partition's")
	}
	if err := tn.nodes[1].DeleteTopic("t"); err != nil {
		t.Fatal(err)
	}
	waitUntil(t, "the restarted node to apply the deletion", func() bool {
		_, ok := tn.nodes[away].Topic("t")
		return !ok
	})
	after, err := raftlog.ReadState(tn.fs[away], name)
	if err != nil || after.GroupID != s.GroupID {
		t.Fatalf("the other group's replica after the deletion: %+v, %v; want it left in place", after, err)
	}
}
