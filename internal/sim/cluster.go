package sim

import (
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"slices"

	"github.com/cairnlog/cairn/env"
	"github.com/cairnlog/cairn/replica"
	"go.etcd.io/raft/v3"
	"go.etcd.io/raft/v3/raftpb"
)

// Config describes a simulated group.
type Config struct {
	// Seed drives every random choice of the network, the sync delays and
	// the tick phases. Raft's own election jitter comes from crypto/rand:
	// pin it with testing/cryptotest.SetGlobalRandom before New.
	Seed uint64
	// Voters of the bootstrap configuration.
	Voters []uint64
	// TickMs is the virtual time between two Ticks of a replica.
	TickMs int64
	// SyncDelayMaxMs bounds how long a replica's flusher takes to start a
	// Sync after a write asked for one (uniform in [0, max]).
	SyncDelayMaxMs int64
	// Replica is the template of every replica's config (ID set per node).
	Replica replica.Config
	// NewStateMachine makes the state machine of a (re)started replica,
	// which persists through the node's MemStorage.
	NewStateMachine func(id uint64) replica.StateMachine
	// NewNode, when set instead, opens a (re)started replica's storage and
	// state machine both, from what the node kept (a partition's Raft log
	// on its own filesystem): Crash then drops nothing itself, the caller
	// crashes what NewNode opens from.
	NewNode func(id uint64) (NodeParts, error)
	// AfterSync, when set, runs after each completed Sync of a node's
	// storage, before its held responses are released: a state machine
	// that answers on local durability (a partition's acks=1) hears of it.
	AfterSync func(n *Node)
	Logger    *slog.Logger
}

// NodeParts is what NewNode opens: the storage, the state machine and the
// applied index the storage recorded (replica.Config.Applied).
type NodeParts struct {
	Storage replica.Storage
	SM      replica.StateMachine
	Applied uint64
}

// Node is one simulated replica: its storage survives crashes, its
// Replica and state machine do not.
type Node struct {
	ID uint64
	// Storage is the node's MemStorage (nil with Config.NewNode); Store the
	// storage its replica persists through, either that or NewNode's.
	Storage *replica.MemStorage
	Store   replica.Storage
	Replica *replica.Replica
	SM      replica.StateMachine
	Up      bool
	// Starts counts how many times the replica was (re)started.
	Starts int

	nextTickMs int64
	syncDueMs  int64 // -1: no sync scheduled
	syncSeq    uint64
}

// Cluster runs the replicas of one group, the network between them and
// their flushers on one goroutine under a virtual clock: the same seed gives
// the same run.
type Cluster struct {
	cfg   Config
	rng   *rand.Rand
	e     env.Env
	Net   *Network
	NowMs int64
	nodes map[uint64]*Node
	ids   []uint64
	// Reads collects the ReadStates answered, in order.
	Reads []raft.ReadState
}

// New starts a group whose voters share a bootstrap snapshot.
func New(cfg Config) (*Cluster, error) {
	if cfg.TickMs <= 0 || cfg.SyncDelayMaxMs < 0 || (cfg.NewStateMachine == nil) == (cfg.NewNode == nil) || len(cfg.Voters) == 0 {
		return nil, errors.New("sim: config needs voters, a tick, a sync delay and one state machine maker")
	}
	rng := rand.New(rand.NewPCG(cfg.Seed, 0x5eed))
	c := &Cluster{
		cfg:   cfg,
		rng:   rng,
		e:     env.Env{Logger: cfg.Logger, Rand: env.NewSeededRand(cfg.Seed)},
		Net:   NewNetwork(rand.New(rand.NewPCG(cfg.Seed, 0x6e7))),
		nodes: map[uint64]*Node{},
	}
	for _, id := range cfg.Voters {
		var st *replica.MemStorage
		if cfg.NewNode == nil {
			st = replica.NewBootstrapStorage(cfg.Voters)
		}
		if err := c.AddNode(id, st); err != nil {
			return nil, err
		}
	}
	return c, nil
}

// AddNode starts a replica over storage (an empty one for a replica that
// joins through a configuration change; nil with Config.NewNode).
func (c *Cluster) AddNode(id uint64, storage *replica.MemStorage) error {
	if _, ok := c.nodes[id]; ok {
		return fmt.Errorf("sim: node %d exists", id)
	}
	n := &Node{ID: id, Storage: storage}
	c.nodes[id] = n
	c.ids = append(c.ids, id)
	slices.Sort(c.ids)
	return c.start(n)
}

func (c *Cluster) start(n *Node) error {
	cfg := c.cfg.Replica
	cfg.ID = n.ID
	if c.cfg.NewNode != nil {
		parts, err := c.cfg.NewNode(n.ID)
		if err != nil {
			return fmt.Errorf("sim: open %d: %w", n.ID, err)
		}
		n.Store, n.SM, cfg.Applied = parts.Storage, parts.SM, parts.Applied
	} else {
		n.Store, n.SM = n.Storage, c.cfg.NewStateMachine(n.ID)
	}
	r, err := replica.New(c.e, cfg, n.Store, n.SM)
	if err != nil {
		return fmt.Errorf("sim: start %d: %w", n.ID, err)
	}
	n.Replica, n.Up, n.syncDueMs, n.syncSeq = r, true, -1, 0
	n.Starts++
	// Replicas tick out of phase, as separate machines do.
	n.nextTickMs = c.NowMs + 1 + c.rng.Int64N(c.cfg.TickMs)
	return nil
}

// IDs returns the node ids in order.
func (c *Cluster) IDs() []uint64 { return c.ids }

// Node returns a node, nil if unknown.
func (c *Cluster) Node(id uint64) *Node { return c.nodes[id] }

// Crash stops a replica and drops what its MemStorage had not synced.
func (c *Cluster) Crash(id uint64) {
	n := c.nodes[id]
	n.Up = false
	if n.Storage != nil {
		n.Storage.Crash()
	}
}

// Restart starts a crashed replica again over what its storage kept.
func (c *Cluster) Restart(id uint64) error {
	n := c.nodes[id]
	if n.Up {
		return fmt.Errorf("sim: restart %d: it is up", id)
	}
	return c.start(n)
}

// Leader returns the ready leader with the highest term among live nodes.
func (c *Cluster) Leader() (uint64, bool) {
	var best uint64
	var term uint64
	for _, id := range c.ids {
		n := c.nodes[id]
		if !n.Up {
			continue
		}
		if l := n.Replica.Leadership(); l.Ready && l.Leader == id && l.Term >= term {
			best, term = id, l.Term
		}
	}
	return best, best != 0
}

// Do runs f on a live node's replica (Propose, Campaign, ...) and handles
// the work it made.
func (c *Cluster) Do(id uint64, f func(r *replica.Replica) error) error {
	n := c.nodes[id]
	if n == nil || !n.Up {
		return fmt.Errorf("sim: node %d is not up", id)
	}
	if err := f(n.Replica); err != nil {
		return err
	}
	return c.drain(n)
}

// SyncNow runs node id's pending sync at once.
func (c *Cluster) SyncNow(id uint64) error {
	n := c.nodes[id]
	if !n.Up || n.syncDueMs < 0 {
		return nil
	}
	n.syncDueMs = c.NowMs
	return c.runSync(n)
}

// RunFor advances virtual time by ms, handling every tick, delivery and
// sync due on the way.
func (c *Cluster) RunFor(ms int64) error {
	_, err := c.RunUntil(func() bool { return false }, ms)
	return err
}

// RunUntil advances virtual time until cond holds (checked after every
// event) or maxMs passed, and reports whether cond held.
func (c *Cluster) RunUntil(cond func() bool, maxMs int64) (bool, error) {
	end := c.NowMs + maxMs
	for {
		if cond() {
			return true, nil
		}
		next := c.nextEventMs()
		if next > end {
			c.NowMs = end
			return cond(), nil
		}
		c.NowMs = next
		if err := c.step(); err != nil {
			return false, err
		}
	}
}

func (c *Cluster) nextEventMs() int64 {
	next := int64(1<<62 - 1)
	if at, ok := c.Net.NextDueMs(); ok {
		next = at
	}
	for _, id := range c.ids {
		n := c.nodes[id]
		if !n.Up {
			continue
		}
		next = min(next, n.nextTickMs)
		if n.syncDueMs >= 0 {
			next = min(next, n.syncDueMs)
		}
	}
	return next
}

// step handles everything due at NowMs: deliveries, then per node (in id
// order) its tick and its sync, then each node's Ready.
func (c *Cluster) step() error {
	msgs, err := c.Net.Deliver(c.NowMs)
	if err != nil {
		return err
	}
	for _, m := range msgs {
		n := c.nodes[m.GetTo()]
		if n == nil || !n.Up || n.Replica.Err() != nil {
			continue // a failed replica hears nothing, as if down
		}
		if err := n.Replica.Step(m); err != nil && !errors.Is(err, raft.ErrStepPeerNotFound) {
			return fmt.Errorf("sim: node %d step %s from %d: %w", n.ID, m.GetType(), m.GetFrom(), err)
		}
	}
	for _, id := range c.ids {
		n := c.nodes[id]
		if !n.Up {
			continue
		}
		if n.nextTickMs <= c.NowMs {
			n.Replica.Tick()
			n.nextTickMs += c.cfg.TickMs
		}
		if n.syncDueMs >= 0 && n.syncDueMs <= c.NowMs {
			if err := c.runSync(n); err != nil {
				return err
			}
		}
		if err := c.drain(n); err != nil {
			return err
		}
	}
	return nil
}

// runSync is the node's flusher: a Sync covering every write so far, then
// the held responses released.
func (c *Cluster) runSync(n *Node) error {
	n.syncDueMs = -1
	if err := n.Store.Sync(); err != nil {
		n.Replica.SyncFailed(err)
		return nil
	}
	if c.cfg.AfterSync != nil {
		c.cfg.AfterSync(n)
	}
	out, err := n.Replica.Synced(n.syncSeq)
	if err != nil {
		return fmt.Errorf("sim: node %d synced: %w", n.ID, err)
	}
	if err := c.send(out); err != nil {
		return err
	}
	return c.drain(n)
}

// drain handles a node's Ready until raft has nothing more, sending its
// messages and scheduling its sync.
func (c *Cluster) drain(n *Node) error {
	for n.Replica.HasReady() {
		w, err := n.Replica.HandleReady()
		if err != nil {
			return fmt.Errorf("sim: node %d: %w", n.ID, err)
		}
		if err := c.send(w.Messages); err != nil {
			return err
		}
		n.Replica.SnapshotsSent(w.Messages) // as the node's Scheduler does
		c.Reads = append(c.Reads, w.ReadStates...)
		if w.SyncSeq > n.syncSeq {
			n.syncSeq = w.SyncSeq
			if n.syncDueMs < 0 {
				n.syncDueMs = c.NowMs + c.rng.Int64N(c.cfg.SyncDelayMaxMs+1)
			}
		}
	}
	return nil
}

func (c *Cluster) send(msgs []*raftpb.Message) error {
	for _, m := range msgs {
		if err := c.Net.Send(c.NowMs, m); err != nil {
			return err
		}
	}
	return nil
}
