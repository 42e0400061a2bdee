package cluster

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	metav1 "github.com/cairnlog/cairn/api/cairn/meta/v1"
	"github.com/cairnlog/cairn/controller"
	"github.com/cairnlog/cairn/env"
	"github.com/cairnlog/cairn/leaders"
	"github.com/cairnlog/cairn/meta"
	"github.com/cairnlog/cairn/replica"
	"github.com/cairnlog/cairn/transport"
	"go.etcd.io/raft/v3/raftpb"
)

// A node of a multi-node cluster (Config.Peers set) runs, beside what a
// single node runs: the TCP transport to the other nodes (Raft batches to
// the scheduler, the controller's and the probe's frames, heartbeats to
// the leader table, join connections to the controller), one scheduler
// sending through it for the metadata group and every partition group,
// and the leader table with its heartbeat goroutine.

// Transport is what a cluster node needs of its network to the other
// nodes, as transport.TCP provides it: lossy sends that never block, in
// order per destination, handlers (given at opening) run on one goroutine
// per sending node, and the peers lost reported on Unreachable.
type Transport interface {
	transport.NodeSender
	SendFrame(to uint64, typ transport.FrameType, payload []byte) error
	AddPeer(id uint64, addr string) error
	Unreachable() <-chan uint64
	// Gone reports peers whose process ended; PeerGone and PeerConnected
	// say how a peer stands now.
	Gone() <-chan uint64
	PeerGone(id uint64) bool
	PeerConnected(id uint64) bool
	// Ping confirms a peer is alive now: a round trip within timeout.
	Ping(id uint64, timeout time.Duration) error
	Metrics() transport.Metrics
	Close() error
}

// TransportOpener opens a node's transport, listening at cfg.ListenAddr
// and handing what arrives to cfg's handlers (Config.Transport).
type TransportOpener func(e env.Env, cfg transport.Config) (Transport, error)

// openTCP is the production TransportOpener.
func openTCP(e env.Env, cfg transport.Config) (Transport, error) { return transport.New(e, cfg) }

// node is a cluster node's transport and leader table.
type node struct {
	tcp     Transport // transport.TCP unless Config.Transport says otherwise
	leaders *leaders.Leaders
	// known maps the nodes added as transport peers to their Raft
	// address (guarded by knownMu: Open and the metadata group's
	// OnApplied both add peers).
	knownMu sync.Mutex
	known   map[int32]string
	// counters are the elections counted for NodeStats.
	counters nodeCounters
	// snapshots serves followers copying the data below a snapshot;
	// fetcher makes this node's followers' copies.
	snapshots *snapshotServer
	fetcher   *snapshotFetcher
	// requests carries the front ends' requests to other nodes
	// (noderequest.go).
	requests *nodeRequests
	cancel   context.CancelFunc // stops the goroutines below
	wg       sync.WaitGroup
}

// stopLoops stops the goroutines of startNodeLoops, which read the
// controller and the scheduler: first in Close.
func (n *node) stopLoops() {
	if n.cancel != nil {
		n.cancel()
	}
	n.wg.Wait()
	if n.requests != nil {
		n.requests.close()
	}
	if n.snapshots != nil {
		n.snapshots.close()
	}
	if n.fetcher != nil {
		n.fetcher.close()
	}
}

// closeTransport closes the transport: last, after the scheduler, which
// sends through it.
func (n *node) closeTransport() {
	if n.tcp != nil {
		_ = n.tcp.Close() // a closed transport has nothing left to lose
	}
}

// lateSender is the leader table's Sender, bound to the transport once it
// exists: the transport's handlers need the table first.
type lateSender struct{ tcp Transport }

func (s *lateSender) SendFrame(to uint64, typ transport.FrameType, payload []byte) error {
	return s.tcp.SendFrame(to, typ, payload)
}

// metaPollInterval is how often Open looks for a metadata leader: the
// controller exposes the leadership but no event for it.
const metaPollInterval = 10 * time.Millisecond

// openNode opens a cluster node: identity, transport, scheduler, the
// controller with the peers (a new node first probes them, then
// bootstraps with them), the leader table; then it waits for the metadata
// group to have a leader and for this node to apply what it committed,
// and registers this node's client addresses when the state holds others.
// Each wait is bounded by StartTimeoutMs.
func (c *Cluster) openNode(names []string) error {
	ident, err := c.nodeIdentity(names)
	if err != nil {
		return err
	}
	cfg := c.cfg
	n := &node{known: map[int32]string{}}
	c.node = n
	var ctl atomic.Pointer[controller.Controller]
	probe := controller.NewProbe(!ident.New)
	sender := &lateSender{}
	n.snapshots = newSnapshotServer(c.env.Logger, sender, c.snapshotSourceOf)
	election := time.Duration(cfg.RaftTickMs*int64(cfg.RaftElectionTicks)) * time.Millisecond
	n.fetcher = newSnapshotFetcher(c.env.Clock, c.env.Logger, sender, c.snapshotTargetOf, c.stepSnapshot, snapshotReadTimeoutFor(election))
	n.requests = newNodeRequests(c.env, sender.SendFrame)
	n.leaders, err = leaders.New(c.env, leaders.Config{NodeID: uint64(cfg.NodeID), Incarnation: uint64(ident.Incarnation)}, sender)
	if err != nil {
		return fmt.Errorf("cluster: %w", err)
	}
	if n.tcp, err = c.openTransport(ident, probe, ctl.Load); err != nil {
		return err
	}
	sender.tcp = n.tcp
	probe.SetSender(n.tcp)
	if err := c.addPeers(cfg.Peers); err != nil {
		return err
	}
	n.leaders.SetPeers(peerNodes(cfg.Peers))
	tick := time.Duration(cfg.RaftTickMs) * time.Millisecond
	// Partition groups quiesce while idle (design §3.6, M13); the leader
	// table's node liveness wakes those whose leader's node, or a
	// follower's, stops heartbeating.
	alive := func(replicaID uint64) bool { return n.leaders.Alive(uint64(meta.NodeOf(replicaID))) }
	if c.sched, err = replica.NewScheduler(c.env, replica.SchedulerConfig{TickInterval: tick, Alive: alive,
		SyncWorkers: cfg.syncWorkers(), Stepped: cfg.raftStepper != nil},
		countingSender{Sender: transport.ReplicaSender{TCP: n.tcp}, counters: &n.counters}); err != nil {
		return fmt.Errorf("cluster: %w", err)
	}
	if cfg.raftStepper != nil {
		cfg.raftStepper(c.sched.Step)
	}
	c.deliverTo.Store(c.sched)
	startTimeout := time.Duration(cfg.StartTimeoutMs) * time.Millisecond
	c.ctl, err = controller.Open(controller.Config{Env: c.env, DataDir: cfg.DataDir, Identity: ident, Peers: cfg.Peers,
		Join: cfg.Join != "", Scheduler: c.sched, Transport: n.tcp, Raft: c.raftConfig(), Probe: probe, ProbeTimeout: startTimeout,
		ResendInterval: time.Duration(cfg.RaftTickMs*int64(cfg.RaftElectionTicks)) * time.Millisecond,
		OnApplied:      func(index uint64) { c.onMetaApplied(ctl.Load()) }})
	if err != nil {
		return fmt.Errorf("cluster: open the metadata group with peers %s: %w", peersString(cfg.Peers), err)
	}
	ctl.Store(c.ctl)
	if err := c.addPeers(c.ctl.JoinedPeers()); err != nil {
		return err
	}
	c.onMetaApplied(c.ctl) // what applied before ctl was stored
	c.startNodeLoops()
	ctx, cancel := env.WithTimeout(context.Background(), c.env.Clock, startTimeout)
	defer cancel()
	if err := c.findMembers(ctx); err != nil {
		return err
	}
	if err := c.awaitMeta(ctx); err != nil {
		return err
	}
	return c.registerSelf(ctx)
}

// openTransport listens on the node's Raft address, handing Raft batches
// to the scheduler and the other frames to the controller, the probe and
// the leader table.
func (c *Cluster) openTransport(ident controller.Identity, probe *controller.Probe, ctl func() *controller.Controller) (Transport, error) {
	handlers := controller.FrameHandlers(ctl)
	maps.Copy(handlers, probe.Handlers())
	handlers[transport.FrameNodeHeartbeat] = c.node.leaders.FrameHandler()
	handlers[transport.FrameSnapshotRead] = c.node.snapshots.handle
	handlers[transport.FrameSnapshotChunk] = c.node.fetcher.handleChunk
	handlers[transport.FrameNodeRequest] = c.node.requests.handleRequest
	handlers[transport.FrameNodeResponse] = c.node.requests.handleResponse
	open := c.cfg.Transport
	if open == nil {
		open = openTCP
	}
	tcp, err := open(c.env, transport.Config{
		ClusterID: ident.ClusterID, NodeID: uint64(c.cfg.NodeID), Incarnation: uint64(ident.Incarnation),
		ListenAddr: cmp.Or(c.cfg.RaftAddr, c.cfg.Peers[c.cfg.NodeID]),
		Handler: func(from uint64, group uint64, msgs []*raftpb.Message) {
			for _, m := range msgs {
				// A snapshot with data below it waits for its copy.
				if !c.node.fetcher.intercept(from, group, m) {
					c.deliver(group, m)
				}
			}
		},
		Handlers: handlers,
		TLS:      c.cfg.TransportTLS,
		// Leader's Disconnected follows the connections.
		PeerChanged: func(uint64) { c.signalLeaders() },
		JoinHandler: func(from uint64, payload []byte) []byte {
			if ct := ctl(); ct != nil {
				return ct.ServeJoin(from, payload)
			}
			return nil
		},
	})
	if err != nil {
		return nil, fmt.Errorf("cluster: raft transport: %w", err)
	}
	return tcp, nil
}

// raftConfig is the Raft configuration of every group on the node.
func (c *Cluster) raftConfig() replica.Config {
	if !c.cfg.clustered() {
		return replica.Config{}
	}
	return replica.Config{HeartbeatTick: raftHeartbeatTicks, ElectionTick: c.cfg.RaftElectionTicks}
}

// peerNodes lists the node ids of peers.
func peerNodes(peers map[int32]string) []uint64 {
	out := make([]uint64, 0, len(peers))
	for id := range peers {
		out = append(out, uint64(id))
	}
	return out
}

// dialAddr is where this node dials node id, known at addr: the
// configured override (Config.PeerDialAddrs) when there is one. known
// keeps addr itself, so a registration unchanged adds nothing.
func (c *Cluster) dialAddr(id int32, addr string) string {
	return cmp.Or(c.cfg.PeerDialAddrs[id], addr)
}

// onMetaApplied is the metadata group's OnApplied on a cluster node: it
// wakes the replica manager and makes every registered broker a transport
// peer and a heartbeat peer. It runs on the group's worker: nothing here
// waits (AddPeer starts the peer's goroutine and returns).
func (c *Cluster) onMetaApplied(ctl *controller.Controller) {
	c.signalApplied(0)
	c.signalMoves()
	if ctl == nil {
		return
	}
	n := c.node
	n.knownMu.Lock()
	defer n.knownMu.Unlock()
	var nodes []uint64
	for _, b := range ctl.State().Brokers {
		if b.State == metav1.BrokerState_BROKER_STATE_REMOVED {
			continue
		}
		nodes = append(nodes, uint64(b.NodeId))
		if b.NodeId == c.cfg.NodeID || b.RaftAddr == "" || n.known[b.NodeId] == b.RaftAddr {
			continue
		}
		if err := n.tcp.AddPeer(uint64(b.NodeId), c.dialAddr(b.NodeId, b.RaftAddr)); err != nil {
			c.env.Logger.Warn("adding a registered node as a transport peer", "node", b.NodeId, "err", err)
			continue
		}
		n.known[b.NodeId] = b.RaftAddr
	}
	n.leaders.SetPeers(nodes)
}

// startNodeLoops runs the leader table's heartbeats, the moves of the
// partitions this node leads (moveLoop), wakes LeadersChanged
// watchers when the table changes, and tells the table and the groups of
// peers the transport lost frames to (reportUnreachable) and of the
// peers it found gone (reportGone).
func (c *Cluster) startNodeLoops() {
	n := c.node
	ctx, cancel := context.WithCancel(context.Background())
	n.cancel = cancel
	n.wg.Go(func() { n.leaders.Run(ctx) })
	n.wg.Go(func() { c.moveLoop(ctx) })
	n.wg.Go(func() {
		for {
			changed := n.leaders.Changed()
			select {
			case <-ctx.Done():
				return
			case <-changed:
				c.signalLeaders()
			}
		}
	})
	n.wg.Go(func() {
		for {
			select {
			case <-ctx.Done():
				return
			case peer := <-n.tcp.Unreachable():
				c.reportUnreachable(peer)
			}
		}
	})
	n.wg.Go(func() {
		for {
			select {
			case <-ctx.Done():
				return
			case <-n.tcp.Gone():
				c.reportGone()
			}
		}
	})
}

// reportGone tells every local group that the nodes the transport found
// gone (their process ended) are, so that the followers of a leader there
// elect a new one at once rather than after the election timeout
// (replica.Scheduler.ReportGone), and wakes the LeadersChanged watchers:
// Leader no longer names a gone node.
func (c *Cluster) reportGone() {
	c.sched.ReportGone(c.replicaGone)
	c.signalLeaders()
}

// replicaGone reports whether a replica's node is gone as the transport
// last found it (a lost connection, then a refused dial, and no
// connection since).
func (c *Cluster) replicaGone(replicaID uint64) bool {
	return c.nodeGone(meta.NodeOf(replicaID))
}

func (c *Cluster) nodeGone(node int32) bool {
	return node != c.cfg.NodeID && c.node.tcp.PeerGone(uint64(node))
}

// reportUnreachable tells the leader table that frames to node were lost
// (its next heartbeat is full), and every local group with a replica
// there, so that a leader probes that replica again rather than streaming
// appends into the void.
func (c *Cluster) reportUnreachable(node uint64) {
	c.node.leaders.PeerLost(node)
	st := c.ctl.State()
	var replicaID uint64
	for _, b := range st.Brokers {
		if uint64(b.NodeId) == node {
			replicaID = meta.ReplicaID(b.NodeId, b.Incarnation)
		}
	}
	if replicaID == 0 {
		return
	}
	c.sched.ReportUnreachable(controller.GroupID, replicaID)
	// A partition's replica there has its own placement; groups not
	// running here ignore the report.
	for _, t := range st.Topics {
		for _, p := range t.Partitions {
			for _, r := range slices.Concat(p.Replicas, p.TargetReplicas) {
				if meta.NodeReplicaID(r) == replicaID {
					c.sched.ReportUnreachable(p.GroupId, r)
				}
			}
		}
	}
}

// awaitMeta waits until the metadata group has a leader and this node
// applied what it knows committed. A restarted node learns the commit
// index from the leader's heartbeats, which carry no more than the
// leader's match of this node's log: entries this node missed while away
// may still be on their way, and the state read after this can lag the
// cluster's by them (a topic deleted meanwhile opens, as a replica of a
// group no other node has, until its deletion applies).
func (c *Cluster) awaitMeta(ctx context.Context) error {
	for c.ctl.Leadership().Leader == 0 {
		timer := c.env.Clock.NewTimer(metaPollInterval)
		select {
		case <-ctx.Done():
			timer.Stop()
			return fmt.Errorf("cluster: no metadata leader elected among the peers %s: %w; are a quorum of them running and reachable?",
				peersString(c.cfg.Peers), ctx.Err())
		case <-timer.C():
		}
	}
	var commit uint64
	if err := c.sched.Do(controller.GroupID, func(r *replica.Replica) { commit = r.Status().GetCommit() }); err != nil {
		return fmt.Errorf("cluster: read the metadata commit index: %w", err)
	}
	if err := c.ctl.WaitApplied(ctx, commit); err != nil {
		return fmt.Errorf("cluster: apply the metadata log up to %d: %w", commit, err)
	}
	return nil
}

// registerSelf records this node's addresses and rack in the metadata
// group, under its current incarnation, when the state holds others. A
// proposal whose outcome is unknown (a forwarded one whose request or
// answer was lost) is made again until ctx ends: registering is
// idempotent, and the state is read first each time.
func (c *Cluster) registerSelf(ctx context.Context) error {
	ident := c.ctl.Identity()
	want := &metav1.RegisterBroker{NodeId: c.cfg.NodeID, Incarnation: ident.Incarnation, RaftAddr: c.cfg.Peers[c.cfg.NodeID],
		KafkaAddr: c.cfg.KafkaAddr, HttpAddr: c.cfg.HTTPAddr, Rack: c.cfg.Rack, Listeners: c.cfg.KafkaListeners}
	for {
		for _, b := range c.ctl.State().Brokers {
			if b.NodeId == want.NodeId && b.Incarnation == want.Incarnation && b.RaftAddr == want.RaftAddr &&
				b.KafkaAddr == want.KafkaAddr && b.HttpAddr == want.HttpAddr && b.Rack == want.Rack && maps.Equal(b.Listeners, want.Listeners) {
				return nil
			}
		}
		res, err := c.ctl.Propose(ctx, &metav1.Command{Command: &metav1.Command_RegisterBroker{RegisterBroker: want}})
		if err == nil {
			err = meta.ResultError(res)
		}
		switch {
		case err == nil:
			return nil
		case errors.Is(err, controller.ErrTimeout) && ctx.Err() == nil:
			c.env.Logger.Warn("registering this node: outcome unknown, proposing again", "node", c.cfg.NodeID, "err", err)
		default:
			return fmt.Errorf("cluster: register node %d's addresses: %w", c.cfg.NodeID, err)
		}
	}
}

// Incarnation is this node's incarnation (node.json's): 1 for a node of
// the initial peers, more for one that joined again after losing its
// data. A single node is incarnation 1.
func (c *Cluster) Incarnation() uint32 { return c.ctl.Identity().Incarnation }

// replicaID is this node's replica id in every group it holds a replica of.
func (c *Cluster) replicaID() uint64 { return c.ctl.Identity().ReplicaID() }

// errNoReplica is the Offline error of a partition with no replica on
// this node: the front ends answer as to a follower.
func errNoReplica(topic string, index int32) error {
	return fmt.Errorf("%w: %s-%d has no replica on this node", ErrNotLeader, topic, index)
}

// isNoReplica reports whether a slot's partition lives on other nodes.
func isNoReplica(s *PartitionSlot) bool {
	return s.Partition == nil && errors.Is(s.Offline, ErrNotLeader)
}

// NoLocalReplica reports whether the partition has no replica on this
// node (a cluster node's slot of a partition placed elsewhere): it is not
// offline, and Leader says which node serves it.
func (s *PartitionSlot) NoLocalReplica() bool { return isNoReplica(s) }
