package cluster

import (
	"bytes"
	"crypto/tls"
	"errors"
	"fmt"
	"maps"
	"net"
	"os"
	"path"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cairnlog/cairn/acl"
	"github.com/cairnlog/cairn/batch"
	"github.com/cairnlog/cairn/cluster/topicrules"
	"github.com/cairnlog/cairn/controller"
	"github.com/cairnlog/cairn/env"
	"github.com/cairnlog/cairn/meta"
	"github.com/cairnlog/cairn/partition"
	"github.com/cairnlog/cairn/quota"
	"github.com/cairnlog/cairn/replica"
	"github.com/cairnlog/cairn/storage/vfs"
	"github.com/cairnlog/cairn/transport"
)

// Expected conditions, mapped to protocol errors by the front ends.
var (
	ErrUnknownTopic      = errors.New("unknown topic or partition")
	ErrTopicExists       = errors.New("topic already exists")
	ErrInvalidTopic      = topicrules.ErrInvalidTopic
	ErrInvalidConfig     = topicrules.ErrInvalidConfig
	ErrInvalidPartitions = errors.New("invalid partition count")
	ErrPartitionOffline  = errors.New("partition offline")
	// ErrInvalidReplicationFactor: more replicas than active brokers, or
	// fewer than one.
	ErrInvalidReplicationFactor = meta.ErrReplicationFactor
	// ErrNotLeader: this node does not lead the partition (it holds a
	// follower replica, or none); Leader says who does, when known.
	ErrNotLeader = partition.ErrNotLeader
	// ErrUnknownPartitions: the data directory holds partition directories
	// that no topic owns and that are not marked for deletion. Open refuses
	// to start rather than guess whether they are data or garbage.
	ErrUnknownPartitions = errors.New("partition directories that no topic owns")
)

// Config is the cluster component's configuration.
type Config struct {
	DataDir string
	// NodeID is this broker's id in metadata responses.
	NodeID int32
	// PartitionsMax bounds partitions per topic and protects the node from a
	// request that would create millions of directories.
	PartitionsMax int32
	// CleanIntervalMs is how often retention and compaction run (log.retention.check.interval.ms).
	CleanIntervalMs int64
	// DecompressedBatchBytesMax bounds one batch's records after
	// decompression, so a decompression bomb costs at most this much memory.
	DecompressedBatchBytesMax int
	// ProducerIDExpirationMs forgets an idempotent producer that appended
	// nothing to a partition for this long (producer.id.expiration.ms).
	ProducerIDExpirationMs int64
	// SyncWorkers bounds the fdatasyncs a node's partitions run at once,
	// shared by all of them (0: partition.SyncWorkersDefault): a single
	// node's partition.Syncer, a cluster node's Raft scheduler's sync
	// workers (replica.SchedulerConfig.SyncWorkers, otherwise one per CPU,
	// too few for the syncs of many groups to overlap on the device).
	SyncWorkers int

	// Cluster mode: Peers non-empty. A single node (no peers) uses none of
	// the fields below.

	// Peers maps the node id of every initial voter of the metadata group
	// to its Raft address (HOST:PORT other nodes dial), this node
	// included; the same map on every node, since the cluster id is derived
	// from it. NodeID must then be at least 1 and one of its keys.
	Peers map[int32]string
	// RaftAddr is where this node's transport listens; empty: its address
	// in Peers.
	RaftAddr string
	// PeerDialAddrs, by node id, is where this node dials that node instead
	// of its address in Peers or registered in the metadata group: a node
	// reaching another through a different route (a NAT, a proxy) while
	// Peers, from which the cluster id is derived, stays the same on every
	// node. Only the dialling side of a pair (the lower id) uses it.
	PeerDialAddrs map[int32]string
	// Join, instead of Peers, is the Raft address (HOST:PORT) of a member
	// of a running cluster: the node joins it as a learner of the metadata
	// group under a new incarnation (controller.JoinByAddress) and becomes
	// ACTIVE once caught up. RaftAddr is then required: the address this
	// node listens on and the others dial.
	Join string
	// KafkaAddr and HTTPAddr are the addresses clients reach this node at
	// (HOST:PORT, advertised in Metadata and the event store's redirects),
	// and Rack its rack label; registered in the metadata group.
	KafkaAddr string
	HTTPAddr  string
	Rack      string
	// KafkaListeners, when the node has named Kafka listeners, are their
	// advertised addresses by name (KafkaAddr is the first's); registered
	// too, so that a client is given each broker's address for the
	// listener it connected to.
	KafkaListeners map[string]string
	// TransportTLS, when set, runs the connections to the other nodes
	// (and a join's) over TLS with it (transport.Config.TLS).
	TransportTLS *tls.Config
	// RaftTickMs is one Raft tick of every group on the node, and
	// RaftElectionTicks the election timeout in ticks (randomised up to
	// twice it); heartbeats go every 2 ticks. 50 ms and 12: a failover
	// within about 2 s (docs/design/replication.md §3).
	RaftTickMs        int64
	RaftElectionTicks int
	// StartTimeoutMs bounds each wait of Open for the other nodes: for a
	// quorum of the peers to answer a new node's probe, and for the
	// metadata group to have a leader. 5 min, as the nodes of a new
	// cluster may be started minutes apart.
	StartTimeoutMs int64
	// Transport opens the node's transport to the other nodes; nil: TCP
	// (transport.New). A simulation puts an in-memory network here.
	Transport TransportOpener
	// Joiner runs a joining node's exchange with the member at Join; nil:
	// transport.Join over TCP (with TransportTLS). A simulation puts its
	// network's here.
	Joiner transport.Joiner
	// raftStepper, when set, has the node's Raft groups run by no worker:
	// Open hands it the scheduler's Step (replica.SchedulerConfig.Stepped)
	// as soon as the scheduler exists, before anything waits on it, and a
	// simulation calls it as its clock advances.
	raftStepper func(step func() bool)
}

// Cluster-mode defaults (Config's fields of the same names).
const (
	RaftTickMsDefault        = 50
	RaftElectionTicksDefault = 12
	raftHeartbeatTicks       = 2
	StartTimeoutMsDefault    = 5 * 60 * 1000
)

// DefaultConfig returns the defaults for a data directory.
func DefaultConfig(dataDir string) Config {
	return Config{DataDir: dataDir, NodeID: 0, PartitionsMax: 10000, CleanIntervalMs: 30_000,
		DecompressedBatchBytesMax: batch.DecompressedBytesMaxDefault,
		ProducerIDExpirationMs:    partition.DefaultConfig().ProducerIDExpirationMs,
		RaftTickMs:                RaftTickMsDefault, RaftElectionTicks: RaftElectionTicksDefault,
		StartTimeoutMs: StartTimeoutMsDefault}
}

// syncWorkers is SyncWorkers with its default.
func (c Config) syncWorkers() int {
	if c.SyncWorkers == 0 {
		return partition.SyncWorkersDefault
	}
	return c.SyncWorkers
}

// clustered reports whether c runs a node of a cluster (peers given,
// even only this node), rather than a single node.
func (c Config) clustered() bool { return len(c.Peers) > 0 || c.Join != "" }

// Validate reports the first problem in c.
func (c Config) Validate() error {
	if c.DataDir == "" {
		return errors.New("cluster: data dir is empty")
	}
	if c.PartitionsMax < 1 {
		return fmt.Errorf("cluster: partitions max %d must be positive", c.PartitionsMax)
	}
	if c.DecompressedBatchBytesMax < 1<<20 {
		return fmt.Errorf("cluster: decompressed batch bytes max %d must be at least 1 MiB", c.DecompressedBatchBytesMax)
	}
	if c.CleanIntervalMs < 1 {
		return fmt.Errorf("cluster: clean interval %d ms must be positive", c.CleanIntervalMs)
	}
	if c.ProducerIDExpirationMs < 1 {
		return fmt.Errorf("cluster: producer id expiration %d ms must be positive", c.ProducerIDExpirationMs)
	}
	if c.SyncWorkers < 0 {
		return fmt.Errorf("cluster: sync workers %d must not be negative", c.SyncWorkers)
	}
	if c.clustered() {
		return c.validateClustered()
	}
	return nil
}

// validateClustered checks the cluster-mode fields.
func (c Config) validateClustered() error {
	if c.NodeID < 1 || c.NodeID > meta.NodeIDMax {
		return fmt.Errorf("cluster: node id %d: a node of a cluster needs an id between 1 and %d", c.NodeID, meta.NodeIDMax)
	}
	switch _, ok := c.Peers[c.NodeID]; {
	case c.Join != "" && len(c.Peers) > 0:
		return fmt.Errorf("cluster: join %s and peers %s: a joining node learns the members from the one it joins through", c.Join, peersString(c.Peers))
	case c.Join != "":
		if err := checkHostPort("join address", c.Join, false); err != nil {
			return err
		}
		if err := checkHostPort("raft address of a joining node", c.RaftAddr, false); err != nil {
			return err
		}
	case !ok:
		return fmt.Errorf("cluster: node id %d is not among the peers %s", c.NodeID, peersString(c.Peers))
	}
	for id, addr := range c.Peers {
		if id < 1 {
			return fmt.Errorf("cluster: peer id %d: node ids start at 1", id)
		}
		if err := checkHostPort("raft address of peer "+strconv.Itoa(int(id)), addr, false); err != nil {
			return err
		}
	}
	for id, addr := range c.PeerDialAddrs {
		if id < 1 || id == c.NodeID {
			return fmt.Errorf("cluster: peer dial address of node %d: not another node's id", id)
		}
		if err := checkHostPort("peer dial address of node "+strconv.Itoa(int(id)), addr, false); err != nil {
			return err
		}
	}
	for _, a := range []struct{ name, value string }{{"raft listen address", c.RaftAddr}, {"kafka address", c.KafkaAddr}, {"http address", c.HTTPAddr}} {
		if err := checkHostPort(a.name, a.value, true); err != nil {
			return err
		}
	}
	for name, addr := range c.KafkaListeners {
		if err := checkHostPort("kafka listener "+name, addr, false); err != nil {
			return err
		}
	}
	if c.RaftTickMs < 1 || c.RaftElectionTicks <= raftHeartbeatTicks || c.StartTimeoutMs < 1 {
		return fmt.Errorf("cluster: raft tick %d ms, election ticks %d, start timeout %d ms: the tick and timeout must be positive, the election ticks above %d",
			c.RaftTickMs, c.RaftElectionTicks, c.StartTimeoutMs, raftHeartbeatTicks)
	}
	return nil
}

// checkHostPort refuses an address that is not HOST:PORT (empty passes
// when optional).
func checkHostPort(name, addr string, optional bool) error {
	if addr == "" && optional {
		return nil
	}
	if _, _, err := net.SplitHostPort(addr); err != nil {
		return fmt.Errorf("cluster: %s %q: not HOST:PORT: %w", name, addr, err)
	}
	return nil
}

// peersString lists peers as id=address, by id, for messages.
func peersString(peers map[int32]string) string {
	ids := slices.Sorted(maps.Keys(peers))
	parts := make([]string, len(ids))
	for i, id := range ids {
		parts[i] = fmt.Sprintf("%d=%s", id, peers[id])
	}
	return strings.Join(parts, ",")
}

// Topic is one topic. Its fields are immutable; a change makes a new *Topic.
type Topic struct {
	Name       string
	ID         [16]byte
	Configs    map[string]string // overrides of the defaults
	Partitions []*PartitionSlot
}

// PartitionSlot is one partition of a topic: open, or offline with the reason.
type PartitionSlot struct {
	Index     int32
	Partition *partition.Partition // nil when offline
	Offline   error
	// Group is the partition's Raft group id in the metadata state, and
	// Replicas the node ids of its replicas, preferred leader first.
	Group    uint64
	Replicas []int32

	// replicaID is the id of this node's replica the slot runs or tried
	// to open (placement included); a move back places another, which
	// reopens the slot, as does a state as new as this node's data for a
	// slot Offline with errReplicaWaits.
	replicaID uint64
}

// Cluster is the set of topics on this node.
type Cluster struct {
	cfg Config
	env env.Env // every partition opens with it

	lock  vfs.File // the data directory's lock, held until Close
	sched *replica.Scheduler
	ctl   *controller.Controller
	id    string
	// syncer runs a single node's partition syncs (nil on a cluster
	// node); closed after the partitions.
	syncer *partition.Syncer

	// admin serialises the calls that change topics, from validation to
	// the proposal and the partition work after it, as one lock did before
	// the metadata group.
	admin sync.Mutex
	// mu guards the topic map; reconcile holds it while it opens and closes
	// partitions.
	mu     sync.Mutex
	topics map[string]*Topic

	// aclMu makes this node's ACL changes take turns; acls is the applied
	// state's bindings (ACLs), replaced by reconcile when they change.
	aclMu sync.Mutex
	acls  atomic.Pointer[acl.Set]
	// quotas is the applied state's client quotas, replaced by reconcile.
	quotas atomic.Pointer[quota.Config]

	producerMu     sync.Mutex
	nextProducerID int64 // next id handed out
	producerIDEnd  int64 // end of the block allocated by the metadata group

	applied chan struct{} // signalled by OnApplied, buffered 1
	// metaApplied wakes a cluster node's moveLoop after the metadata
	// group applied entries; buffered 1.
	metaApplied chan struct{}
	// node is a cluster node's transport and leader table; nil on a
	// single node.
	node *node
	// deliverTo is the scheduler the transport hands Raft messages to,
	// once it exists.
	deliverTo atomic.Pointer[replica.Scheduler]

	// watchMu guards leadersChanged, leaderships and handingOff. The replicas' workers
	// take it when a partition's leadership changes, and they must never
	// wait on mu (reconcile holds mu while it waits on them), so it is a
	// leaf: taken after mu, never the reverse.
	watchMu sync.Mutex
	// leadersChanged is closed and replaced when the topics or the leaders
	// of partitions change.
	leadersChanged chan struct{}
	// leaderships are the last leadership each local replica of a
	// partition reported, by group.
	leaderships map[uint64]replica.Leadership
	// handingOff holds the groups whose leadership this node is handing
	// to another while it stops (HandOff): it reports no leader of them
	// until the new one is known.
	handingOff map[uint64]bool
	// damaged holds this node's replicas whose copy was found damaged,
	// by replica id, until the metadata group replaced them (damaged.go).
	// Guarded by watchMu: the replicas' workers record them.
	damaged map[uint64]damagedReplica
	// reconciled is the applied index of the metadata state the
	// partitions were last made to match (guarded by mu).
	reconciled uint64
	// removalsDeferred: a replica directory was kept because the state
	// reconciled was older than the meta log at start (removeUnassigned);
	// reconcileTo looks again once it is not (guarded by mu).
	removalsDeferred bool
	stop             chan struct{}
	done             sync.WaitGroup
}

// Open takes the data directory's lock, opens the metadata group (see
// metagroup.go: bootstrapped on the first start, or migrated from a legacy
// directory's cluster.json and topics.json) and every partition of the
// applied state. A partition that fails to open (for example, corruption
// before its recovery point) is kept offline with its error; the rest of
// the node serves. Open refuses a data directory holding partition
// directories that no topic owns (ErrUnknownPartitions) and deletes only
// directories marked for deletion. Credentials staged in the data directory
// (StageUser, stagedusers.go) are proposed before Open returns. When it fails it leaves nothing open or
// locked, and a new node writes its metadata group only once the data
// directory passed the check. The data directory is on e's filesystem; the
// cleaner runs on e's clock and new ids come from e's randomness.
func Open(e env.Env, cfg Config) (*Cluster, error) {
	if err := e.Check(); err != nil {
		return nil, fmt.Errorf("cluster: %w", err)
	}
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if err := createDataDir(e.FS, cfg.DataDir); err != nil {
		return nil, err
	}
	lock, err := lockDataDir(e.FS, cfg.DataDir)
	if err != nil {
		return nil, err
	}
	c := &Cluster{cfg: cfg, env: e, lock: lock, topics: map[string]*Topic{},
		applied: make(chan struct{}, 1), metaApplied: make(chan struct{}, 1), stop: make(chan struct{}), leadersChanged: make(chan struct{}),
		leaderships: map[uint64]replica.Leadership{}, damaged: map[uint64]damagedReplica{}}
	if !cfg.clustered() {
		if c.syncer, err = partition.NewSyncer(e.Clock, cfg.syncWorkers()); err != nil {
			_ = lock.Close()
			return nil, fmt.Errorf("cluster: %w", err)
		}
	}
	if err := c.load(); err != nil {
		c.closeAll()
		return nil, err
	}
	if err := c.applyStagedUsers(); err != nil {
		c.closeAll()
		return nil, err
	}
	c.done.Add(2)
	go c.cleanLoop()
	go c.reconcileLoop()
	return c, nil
}

// createDataDir creates the data directory when it is missing and makes
// its entry durable: what is synced inside it counts on that.
func createDataDir(fsys vfs.FS, dir string) error {
	if _, err := fsys.List(dir); err == nil {
		return nil
	}
	if err := fsys.MkdirAll(dir); err != nil {
		return fmt.Errorf("create data dir: %w", err)
	}
	if err := fsys.SyncDir(path.Dir(path.Clean(dir))); err != nil {
		return fmt.Errorf("create data dir: %w", err)
	}
	return nil
}

// load opens the metadata group, checks the data directory against its
// state, finishes interrupted deletions, removes marked directories and
// opens the partitions.
func (c *Cluster) load() error {
	names, err := c.env.FS.List(c.cfg.DataDir)
	if err != nil {
		return fmt.Errorf("list data dir: %w", err)
	}
	if err := c.openMeta(names); err != nil {
		return err
	}
	st := c.ctl.State()
	c.id = st.ClusterId
	plan := planDataDir(names, st.Topics)
	marked := plan.marked
	if c.cfg.clustered() {
		rest, stale, err := c.markStale(plan.unknown, st)
		if err != nil {
			return err
		}
		plan.unknown, marked = rest, append(marked, stale...)
	}
	if len(plan.unknown) > 0 {
		return unknownPartitionsError(c.cfg.DataDir, plan.unknown)
	}
	for _, t := range st.Topics {
		if plan.deleting[t.Name] {
			c.env.Logger.Warn("finishing the deletion of a topic interrupted before the last stop", "topic", t.Name)
			dirs, err := c.finishDeletion(t)
			if err != nil {
				return fmt.Errorf("finish deleting topic %s: %w", t.Name, err)
			}
			marked = append(marked, dirs...)
		}
	}
	if err := c.removeMarked(marked); err != nil {
		return err
	}
	if err := c.reconcile(); err != nil {
		c.env.Logger.Error("applying a topic's config to its partitions", "err", err)
	}
	return nil
}

// closeAll closes what a failed Open opened, in Close's order.
func (c *Cluster) closeAll() {
	c.mu.Lock()
	_ = c.closePartitions() // the open error is the one to report
	c.mu.Unlock()
	c.closeSyncer()
	c.closeMeta()
	_ = c.lock.Close() // releasing a lock only fails on a closed handle
}

// lockFile holds the data directory's lock and, for an operator refused by
// it, the pid of the process holding it.
const lockFile = "LOCK"

// lockDataDir makes this process the only one using dir: two processes
// appending to one segment would interleave their batches and corrupt it.
func lockDataDir(fsys vfs.FS, dir string) (vfs.File, error) {
	name := path.Join(dir, lockFile)
	lock, err := fsys.Lock(name)
	if errors.Is(err, vfs.ErrLocked) {
		holder := "unknown pid"
		if data, readErr := vfs.ReadFile(fsys, name); readErr == nil && len(bytes.TrimSpace(data)) > 0 {
			holder = "pid " + string(bytes.TrimSpace(data))
		}
		return nil, fmt.Errorf("data dir %s is in use by another cairn process (%s): stop it first, or use another data dir: %w",
			dir, holder, err)
	}
	if err != nil {
		return nil, fmt.Errorf("lock data dir: %w", err)
	}
	// The pid only names the holder in the message above; the lock itself is
	// what excludes, so the file needs no sync.
	if err := lock.Truncate(0); err == nil {
		_, err = fmt.Fprintf(lock, "%d\n", os.Getpid())
	}
	if err != nil {
		_ = lock.Close()
		return nil, fmt.Errorf("write pid to %s: %w", name, err)
	}
	return lock, nil
}

// Env is the environment the cluster was opened with, for components
// (the group coordinator) that run beside it on the same node.
func (c *Cluster) Env() env.Env { return c.env }

// ID is the cluster id reported to clients.
func (c *Cluster) ID() string { return c.id }

// NodeID is this broker's node id.
func (c *Cluster) NodeID() int32 { return c.cfg.NodeID }

// removeMarked removes directories marked for deletion and makes their
// removal durable.
func (c *Cluster) removeMarked(dirs []string) error {
	for _, dir := range dirs {
		c.env.Logger.Info("removing the directory of a deleted topic", "dir", dir)
		if err := c.env.FS.RemoveAll(path.Join(c.cfg.DataDir, dir)); err != nil {
			return fmt.Errorf("remove deleted partition %s: %w", dir, err)
		}
	}
	if len(dirs) == 0 {
		return nil
	}
	if err := c.env.FS.SyncDir(c.cfg.DataDir); err != nil {
		return fmt.Errorf("remove deleted partitions: %w", err)
	}
	return nil
}

func (c *Cluster) openPartition(topic string, index int32, cfg partition.Config) *PartitionSlot {
	dir := path.Join(c.cfg.DataDir, partitionDirName(topic, index))
	p, err := partition.Open(c.env, dir, topic, index, cfg)
	if err != nil {
		c.env.Logger.Error("partition offline", "topic", topic, "partition", index, "err", err)
		return &PartitionSlot{Index: index, Offline: fmt.Errorf("%w: %v", ErrPartitionOffline, err)}
	}
	return &PartitionSlot{Index: index, Partition: p}
}

// Close stops the cleaner and the replica manager, closes every partition
// cleanly, then the metadata group (its group on the scheduler, then the
// scheduler and the meta log), and releases the data directory.
func (c *Cluster) Close() error {
	close(c.stop)
	c.done.Wait()
	c.mu.Lock()
	err := c.closePartitions()
	c.mu.Unlock()
	c.closeSyncer()
	c.closeMeta()
	if lockErr := c.lock.Close(); lockErr != nil {
		err = errors.Join(err, fmt.Errorf("unlock data dir: %w", lockErr))
	}
	return err
}

// closeSyncer stops the partitions' shared syncs once they are closed.
func (c *Cluster) closeSyncer() {
	if c.syncer != nil {
		c.syncer.Close()
	}
}

// closePartitions closes every open partition. Callers hold mu, or own c alone.
func (c *Cluster) closePartitions() error {
	var errs []error
	for _, t := range c.topics {
		for _, s := range t.Partitions {
			if err := c.closeSlot(s); err != nil {
				errs = append(errs, err)
			}
		}
	}
	return errors.Join(errs...)
}

// cleanLoop applies retention and compaction to every partition at a fixed
// rate on the cluster's clock: a pass longer than the interval is followed
// at once by the next, never by a backlog of passes.
func (c *Cluster) cleanLoop() {
	defer c.done.Done()
	clock := c.env.Clock
	interval := time.Duration(c.cfg.CleanIntervalMs) * time.Millisecond
	next := clock.Now().Add(interval)
	timer := clock.NewTimer(interval)
	defer timer.Stop()
	for {
		select {
		case <-c.stop:
			return
		case <-timer.C():
			c.CleanOnce(clock.Now().UnixMilli())
			next = next.Add(interval)
			if now := clock.Now(); next.Before(now) {
				next = now
			}
			timer.ResetAt(next)
		}
	}
}

// CleanOnce runs retention and compaction over every partition now.
func (c *Cluster) CleanOnce(nowMs int64) {
	for _, t := range c.Topics() {
		for _, s := range t.Partitions {
			if s.Partition == nil {
				continue
			}
			if err := s.Partition.Clean(nowMs); err != nil {
				c.env.Logger.Error("cleaning partition", "topic", t.Name, "partition", s.Index, "err", err)
			}
		}
	}
}

// partitionConfig is the topic's partition config with the node-wide limits applied.
func (c *Cluster) partitionConfig(overrides map[string]string) (partition.Config, error) {
	cfg, err := topicrules.PartitionConfig(overrides)
	cfg.Limits.DecompressedBytesMax = c.cfg.DecompressedBatchBytesMax
	cfg.ProducerIDExpirationMs = c.cfg.ProducerIDExpirationMs
	cfg.Syncer = c.syncer
	return cfg, err
}
