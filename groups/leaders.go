package groups

import (
	"context"
	"errors"
	"fmt"

	"github.com/cairnlog/cairn/cluster"
	"github.com/cairnlog/cairn/partition"
	"github.com/cairnlog/cairn/replica"
)

// Leaders is what the coordinator asks about who leads the partitions of
// __consumer_offsets and where nodes are. *cluster.Cluster is one; tests
// pass a fake to move leadership by hand.
type Leaders interface {
	// Leader reports a partition's leader as this node knows it.
	Leader(topic string, index int32) (cluster.Leader, error)
	// LeadersChanged returns a channel closed at the next change of the
	// topics or of a leader.
	LeadersChanged() <-chan struct{}
	// Brokers lists the nodes by node id.
	Brokers() []cluster.Broker
}

// loadState is where the coordinator is with one offsets partition.
type loadState int8

const (
	// unloaded: this node does not coordinate the partition's groups.
	unloaded loadState = iota
	// loading: this node leads the partition and replays it; its groups'
	// requests get ErrCoordinatorLoadInProgress.
	loading
	// loaded: this node coordinates the partition's groups.
	loaded
)

// offsetsPartition is the coordinator's view of one offsets partition.
// Owned by the loop goroutine.
type offsetsPartition struct {
	state loadState
	// epoch is the leader epoch the partition is loaded (or loading) under;
	// a new epoch means another leader may have written, so it reloads.
	epoch int32
	// writeEpoch is the partition's own leader epoch when its replay began:
	// the load's writes are appended in it only (partition.AppendInTerm),
	// so none decided on this load lands after another leader's writes,
	// even when the leadership was lost and won back before the leader
	// view moved.
	writeEpoch int32
	// gen names the current load or unload (Coordinator.nextGen), so a
	// replay finishing after its load was abandoned, or a write failure of
	// an earlier load, is ignored.
	gen uint64
	// fenced: a write found this node deposed at epoch fencedEpoch although
	// the leader view still says it leads; no reload until the view moves.
	fenced      bool
	fencedEpoch int32
	// cancel stops a replay in progress.
	cancel context.CancelFunc
	// markers are the transaction markers committed while loading: the
	// replay reads to the high watermark it found when it began, and a
	// marker past it would be lost (finishLoad applies them).
	markers []txnMarker
}

// txnMarker is a transaction marker committed to an offsets partition.
type txnMarker struct {
	offset     int64
	producerID int64
	commit     bool
}

// loadResult is a replay finished off the loop.
type loadResult struct {
	index   int32
	gen     uint64
	machine *Machine
	records int
	// end is the offset the replay read to.
	end int64
	err error
}

// isNotLeader reports whether err says the partition's leadership moved,
// or its replica left this node's scheduler (a move, a renewal, the node
// closing) before anything was proposed.
func isNotLeader(err error) bool {
	return errors.Is(err, partition.ErrNotLeader) || errors.Is(err, cluster.ErrNotLeader) ||
		errors.Is(err, replica.ErrUnknownGroup) || errors.Is(err, replica.ErrClosed)
}

// notCoordinator is the error of a request whose write found the
// partition deposed. The cause is text only, so the Kafka error table
// answers NOT_COORDINATOR and not the partition's NOT_LEADER_OR_FOLLOWER.
func notCoordinator(cause error) error {
	return fmt.Errorf("%w: %v", ErrNotCoordinator, cause)
}

// ensureTopic creates __consumer_offsets when it is missing (on a cluster a
// proposal forwarded to the metadata leader, at the default replication
// factor), and makes it compacted when someone else created it otherwise,
// at most once per process. Called off the loop: both may wait on the
// metadata group.
func (co *Coordinator) ensureTopic() error {
	if t, ok := co.cluster.Topic(OffsetsTopic); ok {
		if t.Configs["cleanup.policy"] == "compact" || !co.configsFixed.CompareAndSwap(false, true) {
			return nil
		}
		// Created by someone else (a client, an operator) with other
		// configs: offsets must be compacted, never deleted by age.
		if err := co.cluster.SetConfigs(OffsetsTopic, offsetsTopicConfigs(), false); err != nil {
			return fmt.Errorf("%w: make %s compacted: %v", ErrCoordinatorNotAvailable, OffsetsTopic, err)
		}
		return nil
	}
	co.createMu.Lock()
	defer co.createMu.Unlock()
	if _, ok := co.cluster.Topic(OffsetsTopic); ok {
		return nil
	}
	_, err := co.cluster.CreateTopicReplicated(OffsetsTopic, co.cfg.OffsetsTopicPartitions, -1, offsetsTopicConfigs(), false)
	if err != nil && !errors.Is(err, cluster.ErrTopicExists) {
		return fmt.Errorf("%w: create %s: %v", ErrCoordinatorNotAvailable, OffsetsTopic, err)
	}
	return nil
}

// Locate names the coordinator of group: the leader of its offsets
// partition, as this node knows it (FindCoordinator). The broker of this
// node may have an empty KafkaAddr: the caller fills in its own. It creates
// the offsets topic when missing; ErrCoordinatorNotAvailable while the
// partition has no known leader or the leader no known broker.
func (co *Coordinator) Locate(group string) (cluster.Broker, error) {
	if err := co.ensureTopic(); err != nil {
		return cluster.Broker{}, err
	}
	t, ok := co.cluster.Topic(OffsetsTopic)
	if !ok {
		return cluster.Broker{}, fmt.Errorf("%w: %s was deleted", ErrCoordinatorNotAvailable, OffsetsTopic)
	}
	index := partitionFor(group, int32(len(t.Partitions)))
	l, err := co.leaders.Leader(OffsetsTopic, index)
	if err != nil {
		return cluster.Broker{}, fmt.Errorf("%w: %v", ErrCoordinatorNotAvailable, err)
	}
	if l.Node < 0 {
		return cluster.Broker{}, fmt.Errorf("%w: %s-%d has no leader", ErrCoordinatorNotAvailable, OffsetsTopic, index)
	}
	for _, b := range co.leaders.Brokers() {
		if b.NodeID == l.Node {
			return b, nil
		}
	}
	return cluster.Broker{}, fmt.Errorf("%w: %s-%d leader %d is not a known broker", ErrCoordinatorNotAvailable, OffsetsTopic, index, l.Node)
}

// gate says whether this node serves group now: nil when its partition is
// loaded. An empty group id passes, for the Machine to refuse. On the loop.
func (co *Coordinator) gate(group string) error {
	if group == "" {
		return nil
	}
	index := co.log.indexOf(group)
	if index < 0 {
		return fmt.Errorf("%w: %s does not exist", ErrNotCoordinator, OffsetsTopic)
	}
	switch co.parts[index].state {
	case loaded:
		return nil
	case loading:
		return fmt.Errorf("%w: %s-%d", ErrCoordinatorLoadInProgress, OffsetsTopic, index)
	}
	return fmt.Errorf("%w: this node does not lead %s-%d", ErrNotCoordinator, OffsetsTopic, index)
}

// refresh follows the leader view when it changed since the last look, or
// while the offsets topic is not known yet, so a request sees the topic its
// caller just created whatever the loop has heard so far. On the loop.
func (co *Coordinator) refresh() {
	if co.log.partitions == 0 {
		_ = co.reconcile(false) // a failed replay is logged where it ends (finishLoad)
		return
	}
	select {
	case <-co.leadersChanged:
		_ = co.reconcile(false)
	default:
	}
}

// reconcile loads the offsets partitions this node leads and unloads the
// others. With inline every replay runs on the calling goroutine (at Open);
// otherwise only empty partitions load at once, the others on a loader
// goroutine. On the loop, or in Open before it starts. It returns the first
// replay error of an inline load.
func (co *Coordinator) reconcile(inline bool) error {
	// Take the channel before reading, so a change after the reads wakes
	// the loop again.
	co.leadersChanged = co.leaders.LeadersChanged()
	var n int32
	if t, ok := co.cluster.Topic(OffsetsTopic); ok {
		n = int32(len(t.Partitions))
	}
	if n != co.log.partitions {
		// Groups map to partitions by count: a new count (the topic was
		// created, deleted, or grown) moves groups, so start over.
		for i := range co.parts {
			co.unload(int32(i))
		}
		co.log.partitions, co.parts = n, make([]offsetsPartition, n)
	}
	var errs []error
	for i := int32(0); i < n; i++ {
		l, err := co.leaders.Leader(OffsetsTopic, i)
		local := err == nil && l.Local
		errs = append(errs, co.follow(i, local, l.Epoch, inline))
	}
	return errors.Join(errs...)
}

// follow brings one partition to what the leader view says.
func (co *Coordinator) follow(index int32, local bool, epoch int32, inline bool) error {
	st := &co.parts[index]
	if st.state != unloaded && (!local || epoch != st.epoch) {
		co.unload(index)
	}
	if !local {
		st.fenced = false
		return nil
	}
	if st.state != unloaded || st.fenced && st.fencedEpoch == epoch {
		return nil
	}
	st.fenced = false
	return co.load(index, epoch, inline)
}

// load starts replaying partition index, led here at epoch.
func (co *Coordinator) load(index int32, epoch int32, inline bool) error {
	st := &co.parts[index]
	p, err := co.cluster.Partition(OffsetsTopic, index)
	if err != nil {
		// Led but not open here (offline): its groups stay unserved, and
		// the partition's own failure is what gets reported.
		co.logger.Error("cannot load offsets partition", "partition", index, "err", err)
		st.fenced, st.fencedEpoch = true, epoch
		return nil
	}
	st.gen = co.nextGen()
	st.state, st.epoch, st.writeEpoch = loading, epoch, p.LeaderEpoch()
	if inline || p.HighWatermark() <= p.LogStartOffset() && (p.Replicated() || p.LogEndOffset() <= p.LogStartOffset()) {
		res := co.replay(co.ctx, index, st.gen, p)
		co.finishLoad(res)
		return res.err
	}
	ctx, cancel := context.WithCancel(co.ctx)
	st.cancel = cancel
	gen := st.gen
	co.loaders.Add(1)
	go func() {
		defer co.loaders.Done()
		res := co.replay(ctx, index, gen, p)
		select {
		case co.loaded <- res:
		case <-co.stop:
		}
	}()
	return nil
}

// replay reads partition index into a Machine of its own. Safe off the
// loop: it touches nothing of the coordinator's.
func (co *Coordinator) replay(ctx context.Context, index int32, gen uint64, p *partition.Partition) loadResult {
	m := NewMachine(co.cfg, "")
	n, end, err := restorePartition(ctx, m, p)
	if err != nil {
		err = fmt.Errorf("load %s-%d: %w", OffsetsTopic, index, err)
	}
	return loadResult{index: index, gen: gen, machine: m, records: n, end: end, err: err}
}

// finishLoad adopts a replay's groups unless its load was abandoned. On
// the loop.
func (co *Coordinator) finishLoad(r loadResult) {
	if int(r.index) >= len(co.parts) {
		return
	}
	st := &co.parts[r.index]
	if st.gen != r.gen || st.state != loading {
		return
	}
	st.cancel = nil
	markers := st.markers
	st.markers = nil
	if r.err != nil {
		// A partition that cannot be read is failed (it reports so itself);
		// stop here until the leader view moves rather than read it again
		// at every change.
		co.logger.Error("loading group offsets", "partition", r.index, "err", r.err)
		st.state, st.fenced, st.fencedEpoch = unloaded, true, st.epoch
		st.gen = co.nextGen()
		return
	}
	groups := co.machine.Adopt(r.machine)
	st.state = loaded
	n := co.log.partitions
	for _, m := range markers {
		if m.offset >= r.end { // the replay read those below
			co.machine.EndTxnOffsets(co.clock.Now().UnixMilli(), m.producerID, m.commit,
				func(group string) bool { return partitionFor(group, n) == r.index })
		}
	}
	co.logger.Info("group coordinator loaded offsets partition", "partition", r.index, "epoch", st.epoch,
		"records", r.records, "groups", groups)
}

// unload drops the groups of partition index and stops its replay, if any.
// Members waiting in JoinGroup or SyncGroup are answered ErrNotCoordinator.
func (co *Coordinator) unload(index int32) {
	st := &co.parts[index]
	if st.state == unloaded {
		return
	}
	if st.cancel != nil {
		st.cancel()
		st.cancel = nil
	}
	wasLoaded := st.state == loaded
	st.state, st.markers = unloaded, nil
	st.gen = co.nextGen()
	delete(co.log.lastAppended, index)
	if !wasLoaded {
		return
	}
	n := co.log.partitions
	dropped := co.machine.Unload(func(group string) bool { return partitionFor(group, n) == index })
	co.logger.Info("group coordinator unloaded offsets partition", "partition", index, "epoch", st.epoch, "groups", dropped)
}

// nextGen numbers a load or unload, unique across partitions and
// partition counts. On the loop.
func (co *Coordinator) nextGen() uint64 {
	co.gens++
	return co.gens
}

// fence unloads partition index after a write under load gen found the
// partition deposed, and keeps it unloaded until the leader view moves
// past that epoch. On the loop.
func (co *Coordinator) fence(index int32, gen uint64) {
	if int(index) >= len(co.parts) {
		return
	}
	st := &co.parts[index]
	if st.gen != gen || st.state != loaded {
		return
	}
	epoch := st.epoch
	co.unload(index)
	st.fenced, st.fencedEpoch = true, epoch
}

// linearize confirms a read of the groups of offsets partition index,
// loaded at epoch and read before the call: the partition's replica here
// is still its leader in that epoch, as a quorum confirmed after the read
// began (partition.Linearize), so no other coordinator can have committed
// anything the read missed. A single writer confirms at once. Off the
// loop: it waits for a quorum round.
func (co *Coordinator) linearize(ctx context.Context, index, epoch int32) error {
	p, err := co.cluster.Partition(OffsetsTopic, index)
	switch {
	case isNotLeader(err):
		return notCoordinator(err)
	case err != nil:
		return fmt.Errorf("%w: %v", ErrCoordinatorNotAvailable, err)
	case !p.Replicated():
		return nil
	}
	term, err := p.Linearize(ctx)
	switch {
	case isNotLeader(err):
		return notCoordinator(err)
	case err != nil && ctx.Err() != nil:
		return err
	case err != nil:
		return fmt.Errorf("%w: %v", ErrCoordinatorNotAvailable, err)
	case term != epoch:
		// Led again after a change this node's view has not caught up
		// with: the groups loaded are another epoch's.
		return notCoordinator(fmt.Errorf("%s-%d is led here in epoch %d, its groups were loaded in epoch %d", OffsetsTopic, index, term, epoch))
	}
	return nil
}
