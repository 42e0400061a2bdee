package controller

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"maps"
	"path/filepath"
	"slices"
	"sync"
	"time"

	metav1 "github.com/cairnlog/cairn/api/cairn/meta/v1"
	"github.com/cairnlog/cairn/env"
	"github.com/cairnlog/cairn/meta"
	"github.com/cairnlog/cairn/replica"
	"github.com/cairnlog/cairn/transport"
	"go.etcd.io/raft/v3/raftpb"
)

// GroupID is the metadata group's Raft group id.
const GroupID = 0

// bootstrapIndex is the index of the snapshot every member of a new meta
// group starts from (design §5.4): the same on every node, so no member
// needs a bootstrap entry of its own.
const bootstrapIndex = 1

// bootstrapTerm is the term of the bootstrap snapshot: a member in a later
// term has seen a quorum pre-vote for an election.
const bootstrapTerm = 1

// MetaDirName is the meta log's directory under the data directory;
// SnapshotFileName the meta-snapshot file in it.
const (
	MetaDirName      = "meta"
	SnapshotFileName = "meta-snapshot"
)

// Errors of the proposal path. ErrNotController and ErrTimeout are
// retriable by a client (Kafka's NOT_CONTROLLER and REQUEST_TIMED_OUT).
var (
	// ErrNotController: no meta leader could take the command before the
	// deadline; it was not applied.
	ErrNotController = errors.New("controller: no metadata leader")
	// ErrTimeout: the command may or may not be applied (the deadline
	// passed after it was proposed or forwarded, or the node jumped past
	// it with a snapshot); it was not retried, since a retry could apply
	// it twice.
	ErrTimeout = errors.New("controller: metadata proposal outcome unknown")
	// ErrRefused: the request was refused for good (a join under a live
	// node's id, or a registered id at another address); it was not
	// applied, and asking again is refused alike.
	ErrRefused = errors.New("controller: request refused")
	// ErrLiveIncarnation refuses a registration that would replace a
	// replica the leader heard from within the last election timeout: a
	// node started with a live member's id, or one whose data was lost
	// and that came back within that time (asking again once the old
	// incarnation has been silent that long succeeds). It is an
	// ErrRefused.
	ErrLiveIncarnation = fmt.Errorf("%w: the node's current incarnation is alive", ErrRefused)
	// ErrClosed: the controller is closed.
	ErrClosed = errors.New("controller: closed")
)

// errLost: a proposal's index was applied with another term, or a later
// term's entry was applied before it: a new leader overwrote it, so it
// will never apply and may be proposed again.
var errLost = fmt.Errorf("%w: proposal lost to a new leader", ErrNotController)

// Log is the meta group's Raft log: a replica.Storage that can also drop
// the entries below a snapshot of the state taken at an applied index.
// The controller's own raftlog (metaLog) is the durable one;
// replica.MemStorage fits it for tests.
type Log interface {
	replica.Storage
	CreateSnapshot(index uint64, cs *raftpb.ConfState, data []byte) error
}

// FrameSender sends a frame to a node (transport.TCP).
type FrameSender interface {
	SendFrame(to uint64, typ transport.FrameType, payload []byte) error
}

// Config opens a Controller. Zero limits take the defaults beside them.
type Config struct {
	Env     env.Env
	DataDir string
	// Identity is this node's, from OpenIdentity.
	Identity Identity
	// Peers maps every initial voter's node id to its Raft address, this
	// node included; the same list on every node. Empty: a single node.
	Peers map[int32]string
	// Bootstrap, when set, is the state a new single-node meta log starts
	// from instead of an empty cluster (MigrateLegacyDir's); its applied
	// index must be 1 and its cluster id the identity's.
	Bootstrap *metav1.State
	// Log is the meta log; nil: raftlog over <data>/meta/log, opened and
	// closed by the controller. Scheduler is the node's, which runs the
	// group.
	Log       Log
	Scheduler *replica.Scheduler
	// Transport carries forwarded proposals and their results; the
	// transport hands the frames back through FrameHandlers.
	Transport FrameSender
	// Raft sets ticks and limits of the group (ID, GroupID and Applied are
	// the controller's).
	Raft replica.Config
	// OnApplied, when set, runs on the group's worker after every batch of
	// applied entries, with the applied index; it must not block (the
	// replica manager signals its own goroutine).
	OnApplied func(index uint64)

	// Probe is the node's cluster probe (NewProbe), whose handlers the
	// transport serves: required for a new node with peers, which asks
	// them whether the cluster exists before bootstrapping it.
	Probe *Probe

	// Join starts a node added with AddNode or JoinByAddress
	// (Identity.Incarnation set to the one it returned): its meta log,
	// created empty (raftlog.CreateEmpty) when it is the own one, waits
	// for the leader's snapshot instead of being bootstrapped.
	Join bool

	SnapshotEntries    uint64        // entries between meta-snapshot files; 1000
	MembershipInterval time.Duration // the leader's check of learners to promote and brokers to activate; 200 ms
	ProposeTimeout     time.Duration // bound on one Propose; 5 s
	RetryDelay         time.Duration // pause before proposing again when no leader is known; 50 ms
	ForwardedMax       int           // forwarded proposals served at once; 256
	MetaSegmentBytes   int64         // the own meta log's segment size; 64 MiB (segments below a compaction are removed)
	// ResendInterval is how often a request sent to another node (a
	// forwarded proposal, a learner to add, a join) goes again under its
	// id while unanswered; 500 ms (a cluster node: its election timeout).
	ResendInterval time.Duration
	// ProbeTimeout bounds a new node's wait for a quorum of its peers to
	// answer the probe, and then for a member to register it; 5 min, as
	// the nodes of a new cluster may be started minutes apart.
	ProbeTimeout time.Duration
}

func (c Config) withDefaults() Config {
	c.SnapshotEntries = cmp.Or(c.SnapshotEntries, 1000)
	c.ProposeTimeout = cmp.Or(c.ProposeTimeout, 5*time.Second)
	c.RetryDelay = cmp.Or(c.RetryDelay, 50*time.Millisecond)
	c.ResendInterval = cmp.Or(c.ResendInterval, 500*time.Millisecond)
	c.ForwardedMax = cmp.Or(c.ForwardedMax, 256)
	c.MetaSegmentBytes = cmp.Or(c.MetaSegmentBytes, 64<<20)
	c.MembershipInterval = cmp.Or(c.MembershipInterval, 200*time.Millisecond)
	c.ProbeTimeout = cmp.Or(c.ProbeTimeout, 5*time.Minute)
	return c
}

// Validate reports the first missing or impossible setting.
func (c Config) Validate() error {
	switch {
	case c.DataDir == "":
		return errors.New("controller config: no data directory")
	case c.Scheduler == nil:
		return errors.New("controller config: needs a scheduler")
	case len(c.Peers) > 1 && c.Transport == nil:
		return errors.New("controller config: peers need a transport")
	case len(c.Peers) > 0 && c.Peers[c.Identity.NodeID] == "":
		return fmt.Errorf("controller config: node %d is not among its peers", c.Identity.NodeID)
	case len(c.Peers) > 1 && c.Identity.New && !c.Join && c.Probe == nil:
		return errors.New("controller config: a new node with peers needs a Probe, to ask them whether the cluster exists")
	case c.Bootstrap != nil && (len(c.Peers) > 1 || c.Join):
		return errors.New("controller config: a migrated state bootstraps a single node only")
	case c.SnapshotEntries == 0 || c.MembershipInterval <= 0 || c.ProposeTimeout <= 0 || c.RetryDelay <= 0 || c.ResendInterval <= 0 || c.ForwardedMax <= 0 || c.ProbeTimeout <= 0 || c.MetaSegmentBytes <= 0:
		return errors.New("controller config: every limit must be positive")
	}
	return c.Env.Check()
}

// Controller runs the metadata group on a node: meta.Machine applied from
// the meta log, proposals from any node (forwarded to the leader), the
// meta-snapshot file and compaction behind it.
type Controller struct {
	e   env.Env
	cfg Config
	dir string
	id  uint64 // replica id
	// identity is the node's, as node.json holds it once Open wrote it.
	identity Identity
	// log is Config.Log, or the meta log Open opened (own) over
	// <data>/meta/log; nil until a new node bootstraps it.
	log Log
	own *metaLog
	// rejoined: a new node found its cluster existing and joined it;
	// joinedPeers are the brokers the member that registered it named.
	rejoined    bool
	joinedPeers map[int32]string
	// startLast is the meta log's last index as Open found it (set
	// before the group runs, read-only after).
	startLast uint64

	// Owned by the group's worker (PrepareProposal and the Do calls of
	// proposeLocal): the offset the next proposal of prepTerm gets.
	prepTerm uint64
	prepNext int64

	// snapshotMu serialises snapshot: the snapshot goroutine, AddNode and
	// join goroutines call it at once, and the file's write goes through
	// one temporary name.
	snapshotMu sync.Mutex

	mu      sync.Mutex
	machine *meta.Machine
	// appliedNext is the meta log's next offset after the applied index.
	appliedNext int64
	applied     uint64
	appliedTerm uint64
	changed     chan struct{} // closed and replaced when applied moves
	leadership  replica.Leadership
	leaderMoved chan struct{} // closed and replaced when leadership changes
	waiters     map[uint64]*waiter
	// forwards are the requests forwarded and not yet answered, by
	// request id; nextRequest the last id drawn, starting at a random
	// one, so a late result meant for an earlier run matches no request.
	forwards    map[uint64]pendingForward
	nextRequest uint64
	// served remembers the requests served here lately (proposals,
	// learner additions, joins), so a copy, duplicated or resent, is not
	// acted on twice.
	served *servedTable
	// snapshotIndex is the index of the last meta-snapshot file (or of
	// the state the controller started from); snapshotErr the last
	// failure to write one.
	snapshotIndex uint64
	snapshotErr   error
	restores      int
	closed        bool

	snapshotDue chan struct{}
	memberDue   chan struct{} // an apply happened: membership duties may be due
	// tenureTerm is the term this node last led the group in, from
	// tenureStart as tendMembers first saw it (knowsProgress).
	tenureTerm   uint64
	tenureStart  time.Time
	forwardSlots chan struct{}
	ctx          context.Context // cancelled by Close
	cancel       context.CancelFunc
	wg           sync.WaitGroup
}

// waiter is a local proposal waiting for its entry to apply.
type waiter struct {
	term uint64
	done chan waitResult // buffered, 1
}

type waitResult struct {
	result *metav1.Result
	err    error
}

// Open starts the metadata group on cfg.Scheduler: it bootstraps a new
// node's empty meta log, restores the state from the meta-snapshot file or
// the log's snapshot, and registers group 0.
func Open(cfg Config) (*Controller, error) {
	cfg = cfg.withDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	c := &Controller{
		e: cfg.Env, cfg: cfg, dir: filepath.Join(cfg.DataDir, MetaDirName), id: cfg.Identity.ReplicaID(), identity: cfg.Identity,
		changed: make(chan struct{}), leaderMoved: make(chan struct{}),
		waiters: map[uint64]*waiter{}, forwards: map[uint64]pendingForward{}, nextRequest: randomRequestID(cfg.Env.Rand),
		served:      newServedTable(servedPerSlot * cfg.ForwardedMax),
		snapshotDue: make(chan struct{}, 1), memberDue: make(chan struct{}, 1), forwardSlots: make(chan struct{}, cfg.ForwardedMax),
	}
	c.ctx, c.cancel = context.WithCancel(context.Background())
	if c.identity.New {
		if err := c.identity.drawNonce(c.e); err != nil {
			return nil, err
		}
	}
	if err := c.openLog(); err != nil {
		return nil, err
	}
	start, err := c.restoreAtStart()
	if err != nil {
		c.closeLog()
		return nil, err
	}
	past, err := c.pastBootstrap()
	if err != nil {
		c.closeLog()
		return nil, err
	}
	last, err := c.log.LastIndex()
	if err != nil {
		c.closeLog()
		return nil, fmt.Errorf("controller: read the meta log's last index: %w", err)
	}
	c.startLast = max(last, start)
	if c.cfg.Join || c.rejoined || past {
		cfg.Probe.set(answerExists)
	} else {
		cfg.Probe.set(answerForming)
	}
	rcfg := cfg.Raft
	rcfg.ID, rcfg.GroupID, rcfg.Applied = c.id, GroupID, start
	r, err := replica.New(c.e, rcfg, c.log, (*stateMachine)(c))
	if err != nil {
		c.closeLog()
		return nil, fmt.Errorf("controller: open the meta replica: %w", err)
	}
	if err := cfg.Scheduler.AddGroup(GroupID, r, c.log, replica.GroupOptions{}); err != nil {
		c.closeLog()
		return nil, fmt.Errorf("controller: %w", err)
	}
	c.wg.Go(c.snapshotLoop)
	c.wg.Go(c.membershipLoop)
	if c.soleVoter(r.ConfState()) {
		// A one-voter group needs no election timeout to elect itself.
		if err := cfg.Scheduler.Do(GroupID, func(r *replica.Replica) { _ = r.Campaign() }); err != nil {
			c.Close()
			return nil, fmt.Errorf("controller: campaign: %w", err)
		}
	}
	return c, nil
}

// openLog takes Config.Log or opens the own meta log, then bootstraps a
// new node's.
func (c *Controller) openLog() error {
	if err := c.e.FS.MkdirAll(c.dir); err != nil {
		return fmt.Errorf("controller: create %s: %w", c.dir, err)
	}
	c.log = c.cfg.Log
	if c.log == nil {
		own, err := openMetaLog(c.e, c.dir, c.cfg.MetaSegmentBytes)
		switch {
		case errors.Is(err, errMetaLogMissing):
		case err != nil:
			return err
		default:
			c.log, c.own = own, own
		}
	}
	if err := c.bootstrapIfNew(); err != nil {
		c.closeLog()
		return err
	}
	return nil
}

// closeLog closes the meta log the controller opened.
func (c *Controller) closeLog() {
	if c.own == nil {
		return
	}
	if err := c.own.Close(); err != nil {
		c.e.Logger.Error("controller: close the meta log", "err", err)
	}
}

func (c *Controller) soleVoter(cs *raftpb.ConfState) bool {
	return len(cs.GetVoters()) == 1 && cs.GetVoters()[0] == c.id && len(cs.GetVotersOutgoing()) == 0
}

// Close stops the group (removing it from the scheduler) and the
// controller's goroutines, and fails the proposals still waiting.
func (c *Controller) Close() {
	c.mu.Lock()
	c.closed = true
	c.mu.Unlock()
	c.cancel()
	c.cfg.Scheduler.RemoveGroup(GroupID)
	c.wg.Wait()
	c.closeLog()
}

// Identity returns the node's identity as node.json holds it.
func (c *Controller) Identity() Identity { return c.identity }

// JoinedPeers are the Raft addresses of the brokers the member that
// registered this node under a new incarnation named (Open found its
// cluster existing), nil otherwise. The node must reach them before its
// state names them: the metadata leader may be a node that joined after
// the initial peers, and it waits for this node's answers before it sends
// the state.
func (c *Controller) JoinedPeers() map[int32]string { return maps.Clone(c.joinedPeers) }

// State returns a copy of the applied state.
func (c *Controller) State() *metav1.State {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.machine.State()
}

// Snapshot returns the applied state marshalled deterministically: equal
// on every node that applied the same index.
func (c *Controller) Snapshot() ([]byte, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.machine.Snapshot()
}

// Applied returns the index of the last applied entry.
func (c *Controller) Applied() uint64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.applied
}

// StartIndex is the meta log's last index when Open found it. Every
// entry this node applied before it started is at or below it (raft
// applies only entries already durable here), so a state applied that
// far is at least as new as any this node acted on in an earlier run:
// until then, the applied state may predate what this node's data
// directory holds (a restart resumes from the last meta snapshot, and
// learns how far the log is committed only from a leader).
//
// Entries a new leader overwrote (a suffix this node wrote, never
// committed) were never applied either: the bound drops below them, so a
// state that will never reach an overwritten tail still counts as new.
func (c *Controller) StartIndex() uint64 {
	if c.own != nil {
		if cut := c.own.overwrittenFrom(); cut != 0 && cut-1 < c.startLast {
			return cut - 1
		}
	}
	return c.startLast
}

// Leadership returns what this node knows of the meta leader.
func (c *Controller) Leadership() replica.Leadership {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.leadership
}

// Restores counts the snapshots the leader sent that replaced the state.
func (c *Controller) Restores() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.restores
}

// SnapshotErr returns the last failure to write the meta-snapshot file or
// compact behind it (nil once one succeeds again).
func (c *Controller) SnapshotErr() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.snapshotErr
}

// WaitApplied returns once this node has applied index, or with ctx's
// error, or ErrClosed.
func (c *Controller) WaitApplied(ctx context.Context, index uint64) error {
	return c.waitApplied(ctx, index, nil)
}

// waitApplied is WaitApplied also bounded by deadline (nil: none).
func (c *Controller) waitApplied(ctx context.Context, index uint64, deadline <-chan time.Time) error {
	for {
		c.mu.Lock()
		applied, changed := c.applied, c.changed
		c.mu.Unlock()
		if applied >= index {
			return nil
		}
		select {
		case <-changed:
		case <-deadline:
			return fmt.Errorf("%w: applied %d, waiting for %d", ErrTimeout, applied, index)
		case <-ctx.Done():
			return ctx.Err()
		case <-c.ctx.Done():
			return ErrClosed
		}
	}
}

// leaderView returns the leadership known now and the channel closed at
// its next change.
func (c *Controller) leaderView() (replica.Leadership, <-chan struct{}) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.leadership, c.leaderMoved
}

// voters returns the initial voters' replica ids: every peer at
// incarnation 1, or this node alone.
func (c *Controller) voters() []uint64 {
	if len(c.cfg.Peers) == 0 {
		return []uint64{c.id}
	}
	var ids []uint64
	for node := range c.cfg.Peers {
		ids = append(ids, meta.ReplicaID(node, 1))
	}
	slices.Sort(ids)
	return ids
}

// WaitLeading returns once this node leads the metadata group and has
// applied its term's first entry, so its state holds every entry
// committed before (a single node's start waits for it before reading
// the state), or with ctx's error, or ErrClosed.
func (c *Controller) WaitLeading(ctx context.Context) error {
	for {
		l, moved := c.leaderView()
		if l.Leader == c.id && l.Ready {
			return nil
		}
		select {
		case <-moved:
		case <-ctx.Done():
			return fmt.Errorf("controller: waiting to lead (leader %d, ready %t): %w", l.Leader, l.Ready, ctx.Err())
		case <-c.ctx.Done():
			return ErrClosed
		}
	}
}

// ScramCredential returns a copy of user's applied SCRAM credential for
// mechanism, without copying the whole state as State does: a SASL
// exchange reads it on every login.
func (c *Controller) ScramCredential(user, mechanism string) (*metav1.ScramCredential, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.machine.ScramCredential(user, mechanism)
}

// Users returns a copy of the applied users and their credentials.
func (c *Controller) Users() []*metav1.User {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.machine.Users()
}
