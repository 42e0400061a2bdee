package controller

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"net"
	"path/filepath"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	metav1 "github.com/cairnlog/cairn/api/cairn/meta/v1"
	"github.com/cairnlog/cairn/env"
	"github.com/cairnlog/cairn/meta"
	"github.com/cairnlog/cairn/replica"
	"github.com/cairnlog/cairn/storage/vfs"
	"github.com/cairnlog/cairn/transport"
	"go.etcd.io/raft/v3/raftpb"
)

// waitMax bounds every wait of these tests: what takes milliseconds on
// loopback and has not happened by then will not happen.
const waitMax = 20 * time.Second

// cluster is nodes of one process over loopback TCP. Their data
// directories live on one in-memory filesystem and their meta logs in
// MemStorages kept across restarts (the durable log of a node's
// directory).
type cluster struct {
	t       *testing.T
	fs      vfs.FS
	peers   map[int32]string
	logs    map[int32]*replica.MemStorage
	nodes   map[int32]*node
	entries uint64 // Config.SnapshotEntries
	// proposeTimeout is Config.ProposeTimeout (10 s when 0).
	proposeTimeout time.Duration
	// clusterID is derived from the initial peers; joined nodes keep it.
	clusterID string
	// joined maps the incarnation AddNode gave each node started with Join.
	joined map[int32]uint32
	// durable: the initial nodes run the controller's own raftlog meta log
	// on the filesystem instead of MemStorages.
	durable bool
	// wrap, when set, stands between a node's controller and its
	// transport's SendFrame (a test loses frames there).
	wrap func(id int32, s FrameSender) FrameSender
}

// logKinds are the meta logs the cluster tests run over.
var logKinds = []struct {
	name    string
	durable bool
}{{"MemStorage", false}, {"raftlog", true}}

type node struct {
	id    int32
	tcp   *transport.TCP
	sched *replica.Scheduler
	c     *Controller
}

// freeAddrs reserves n loopback addresses: the peer list, and so the
// cluster id, must be known before any node listens.
func freeAddrs(t *testing.T, n int) []string {
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

func newCluster(t *testing.T, n int, snapshotEntries uint64) *cluster {
	return newClusterOf(t, n, snapshotEntries, false)
}

func newClusterOf(t *testing.T, n int, snapshotEntries uint64, durable bool) *cluster {
	cl := &cluster{}
	cl.init(t, n, snapshotEntries, durable)
	return cl
}

// init starts n nodes of a new cluster; fields set before (wrap,
// proposeTimeout) apply to them.
//
// The addresses are picked free and then bound by the nodes, so another
// socket (another test, or one of these nodes dialling out from an
// ephemeral port) can take one in between: such a start is retried on
// fresh addresses.
func (cl *cluster) init(t *testing.T, n int, snapshotEntries uint64, durable bool) {
	for attempt := 1; ; attempt++ {
		err := cl.tryInit(t, n, snapshotEntries, durable)
		if err == nil {
			break
		}
		if attempt == 5 || !errors.Is(err, syscall.EADDRINUSE) {
			t.Fatal(err)
		}
	}
	t.Cleanup(func() {
		for id := range cl.nodes {
			cl.stop(id)
		}
	})
}

func (cl *cluster) tryInit(t *testing.T, n int, snapshotEntries uint64, durable bool) error {
	cl.t, cl.fs, cl.peers, cl.logs, cl.nodes = t, vfs.NewMem(), map[int32]string{}, map[int32]*replica.MemStorage{}, map[int32]*node{}
	cl.entries, cl.durable = snapshotEntries, durable
	for i, addr := range freeAddrs(t, n) {
		cl.peers[int32(i+1)] = addr
	}
	cl.clusterID, cl.joined = ClusterIDFromPeers(cl.peers), map[int32]uint32{}
	for id := range cl.peers {
		cl.logs[id] = replica.NewMemStorage()
	}
	// Concurrently: each new node waits in Open for a quorum of its peers
	// to answer the probe.
	opened := make(chan result, len(cl.peers))
	for id := range cl.peers {
		go func() {
			n, err := cl.open(id)
			opened <- result{id, n, err}
		}()
	}
	var failed error
	for range cl.peers {
		r := <-opened
		if r.err != nil {
			failed = r.err
			continue
		}
		cl.nodes[r.id] = r.n
	}
	if failed != nil {
		for id := range cl.nodes {
			cl.stop(id)
		}
	}
	return failed
}

type result struct {
	id  int32
	n   *node
	err error
}

func testEnv(fs vfs.FS, seed uint64) env.Env {
	return env.Env{Clock: env.RealClock(), Rand: env.NewSeededRand(seed), FS: fs, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))}
}

func (cl *cluster) dir(id int32) string { return filepath.Join("/data", "node"+string(rune('0'+id))) }

// start opens node id from its directory and log.
func (cl *cluster) start(id int32) *node {
	cl.t.Helper()
	n, err := cl.open(id)
	if err != nil {
		cl.t.Fatal(err)
	}
	cl.nodes[id] = n
	return n
}

// open opens node id; it reads the cluster's maps and writes none.
func (cl *cluster) open(id int32) (*node, error) {
	e := testEnv(cl.fs, uint64(id))
	ident, err := OpenIdentity(cl.fs, cl.dir(id), id, cl.clusterID)
	if err != nil {
		return nil, fmt.Errorf("node %d: %w", id, err)
	}
	var sched atomic.Pointer[replica.Scheduler]
	var ctrl atomic.Pointer[Controller]
	probe := NewProbe(!ident.New)
	handlers := FrameHandlers(ctrl.Load)
	maps.Copy(handlers, probe.Handlers())
	incarnation, join := cl.joined[id]
	if join && ident.New {
		ident.Incarnation = incarnation
	}
	tcp, err := transport.New(e, transport.Config{
		ClusterID: ident.ClusterID, NodeID: uint64(id), Incarnation: uint64(ident.Incarnation), ListenAddr: cl.peers[id],
		Handler: func(_ uint64, group uint64, msgs []*raftpb.Message) {
			if s := sched.Load(); s != nil {
				for _, m := range msgs {
					s.Deliver(group, m)
				}
			}
		},
		Handlers: handlers,
		JoinHandler: func(from uint64, p []byte) []byte {
			if c := ctrl.Load(); c != nil {
				return c.ServeJoin(from, p)
			}
			return nil
		},
		ReconnectDelayMax: 200 * time.Millisecond,
	})
	if err != nil {
		return nil, fmt.Errorf("node %d: %w", id, err)
	}
	probe.SetSender(tcp)
	known := map[int32]bool{id: true} // touched by this goroutine, then only by OnApplied on the worker
	for peer, addr := range cl.peers {
		if peer != id {
			if err := tcp.AddPeer(uint64(peer), addr); err != nil {
				tcp.Close()
				return nil, err
			}
			known[peer] = true
		}
	}
	// Nodes added to the meta group become transport peers as their
	// registration applies, as the server's wiring will do.
	onApplied := func(uint64) {
		c := ctrl.Load()
		if c == nil {
			return
		}
		for _, b := range c.State().Brokers {
			if !known[b.NodeId] && b.RaftAddr != "" {
				known[b.NodeId] = tcp.AddPeer(uint64(b.NodeId), b.RaftAddr) == nil
			}
		}
	}
	s, err := replica.NewScheduler(e, replica.SchedulerConfig{Workers: 1, SyncWorkers: 1, TickInterval: 10 * time.Millisecond}, transport.ReplicaSender{TCP: tcp})
	if err != nil {
		tcp.Close()
		return nil, err
	}
	sched.Store(s)
	peers := cl.peers
	if join {
		peers = nil // its voters come with the leader's snapshot
	}
	var log Log = cl.logs[id]
	if cl.durable {
		log = nil // the controller's own raftlog, created empty for a join
	}
	c, err := Open(Config{
		Env: e, DataDir: cl.dir(id), Identity: ident, Peers: peers, Join: join, OnApplied: onApplied,
		Log: log, Scheduler: s, Transport: cl.sender(id, tcp), SnapshotEntries: cl.entries,
		ProposeTimeout: cmp.Or(cl.proposeTimeout, 10*time.Second),
		Probe:          probe, ProbeTimeout: waitMax,
	})
	if err != nil {
		s.Close()
		tcp.Close()
		return nil, fmt.Errorf("node %d: open: %w", id, err)
	}
	ctrl.Store(c)
	return &node{id: id, tcp: tcp, sched: s, c: c}, nil
}

func (cl *cluster) sender(id int32, tcp *transport.TCP) FrameSender {
	if cl.wrap == nil {
		return tcp
	}
	return cl.wrap(id, tcp)
}

// stop closes node id as a crash would: what its log did not sync is lost.
func (cl *cluster) stop(id int32) {
	n := cl.nodes[id]
	delete(cl.nodes, id)
	n.c.Close()
	n.sched.Close()
	n.tcp.Close()
	cl.logs[id].Crash() // unused by a durable node's controller
}

// leader waits until the running nodes agree on a leader and returns it.
func (cl *cluster) leader() *node {
	cl.t.Helper()
	deadline := time.Now().Add(waitMax)
	for time.Now().Before(deadline) {
		var lead uint64
		agreed := true
		for _, n := range cl.nodes {
			l := n.c.Leadership().Leader
			if lead == 0 {
				lead = l
			}
			agreed = agreed && l != 0 && l == lead
		}
		if agreed {
			if n, ok := cl.nodes[int32(transport.NodeOf(lead))]; ok {
				return n
			}
		}
		time.Sleep(5 * time.Millisecond) // polling a status: no event to wait on across nodes
	}
	cl.t.Fatal("no leader agreed on")
	return nil
}

// converge waits until every running node applied index and checks their
// states are byte-identical.
func (cl *cluster) converge(index uint64) []byte {
	cl.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), waitMax)
	defer cancel()
	var want []byte
	for id, n := range cl.nodes {
		if err := n.c.WaitApplied(ctx, index); err != nil {
			cl.t.Fatalf("node %d: applied %d, waiting for %d: %v", id, n.c.Applied(), index, err)
		}
	}
	// A node may have applied past index: compare at the highest one.
	var top uint64
	for _, n := range cl.nodes {
		top = max(top, n.c.Applied())
	}
	for id, n := range cl.nodes {
		if err := n.c.WaitApplied(ctx, top); err != nil {
			cl.t.Fatalf("node %d: %v", id, err)
		}
		got, err := n.c.Snapshot()
		if err != nil {
			cl.t.Fatal(err)
		}
		if want == nil {
			want = got
		} else if string(got) != string(want) {
			cl.t.Fatalf("node %d: state differs at index %d", id, top)
		}
	}
	return want
}

func propose(t *testing.T, c *Controller, cmd *metav1.Command) *metav1.Result {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), waitMax)
	defer cancel()
	res, err := c.Propose(ctx, cmd)
	if err != nil {
		t.Fatalf("propose %v: %v", cmd, err)
	}
	if err := meta.ResultError(res); err != nil {
		t.Fatalf("propose %v: refused: %v", cmd, err)
	}
	return res
}

// createTopic builds a CreateTopic placed on the state c has applied.
func createTopic(t *testing.T, c *Controller, name string, partitions int32) *metav1.Command {
	t.Helper()
	sets, err := meta.Place(c.State(), name, 0, partitions, 0)
	if err != nil {
		t.Fatal(err)
	}
	id := make([]byte, 16)
	copy(id, name)
	id[15] = 1
	return &metav1.Command{Command: &metav1.Command_CreateTopic{CreateTopic: &metav1.CreateTopic{Name: name, Id: id, Partitions: sets}}}
}

func setConfigs(name string, configs map[string]string) *metav1.Command {
	return &metav1.Command{Command: &metav1.Command_SetTopicConfigs{SetTopicConfigs: &metav1.SetTopicConfigs{Name: name, Configs: configs}}}
}

func allocate(node int32) *metav1.Command {
	return &metav1.Command{Command: &metav1.Command_AllocateProducerIds{AllocateProducerIds: &metav1.AllocateProducerIDs{NodeId: node, Count: meta.ProducerIDBlock}}}
}

// follower returns a running node that is not the leader.
func (cl *cluster) follower() *node {
	lead := cl.leader()
	for _, n := range cl.nodes {
		if n != lead {
			return n
		}
	}
	cl.t.Fatal("no follower")
	return nil
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(waitMax)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond) // polling a state with no event to wait on
	}
}

func fileExists(fs vfs.FS, name string) bool {
	_, err := fs.Stat(name)
	return err == nil
}

func findTopic(st *metav1.State, name string) (*metav1.Topic, bool) {
	for _, tp := range st.Topics {
		if tp.Name == name {
			return tp, true
		}
	}
	return nil, false
}

// join adds node id through member and starts it.
func (cl *cluster) join(member *node, id int32) *node {
	cl.t.Helper()
	addr := freeAddrs(cl.t, 1)[0]
	ctx, cancel := context.WithTimeout(context.Background(), waitMax)
	defer cancel()
	incarnation, err := member.c.AddNode(ctx, id, addr)
	if err != nil {
		cl.t.Fatalf("add node %d through node %d: %v", id, member.id, err)
	}
	cl.peers[id], cl.joined[id], cl.logs[id] = addr, incarnation, replica.NewMemStorage()
	return cl.start(id)
}

// brokerOf returns node's broker in c's applied state.
func brokerOf(c *Controller, node int32) (*metav1.Broker, bool) {
	for _, b := range c.State().Brokers {
		if b.NodeId == node {
			return b, true
		}
	}
	return nil, false
}

// snapshotIndexNow is the index of the last snapshot taken.
func (c *Controller) snapshotIndexNow() uint64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.snapshotIndex
}
