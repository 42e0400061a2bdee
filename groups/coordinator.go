package groups

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cairnlog/cairn/batch"
	"github.com/cairnlog/cairn/cluster"
	"github.com/cairnlog/cairn/env"
)

// Coordinator drives a Machine from one goroutine: it serialises calls,
// keeps a timer at the Machine's next deadline, delivers deferred replies
// and writes the offsets log. It coordinates the groups of the
// __consumer_offsets partitions this node leads: it loads a partition's
// groups when it becomes their leader and drops them when it stops. Its
// methods are safe for concurrent use; each waits for its answer or for ctx.
type Coordinator struct {
	cfg     Config
	logger  *slog.Logger
	clock   env.Clock // the cluster's: deadlines, commit timestamps
	cluster *cluster.Cluster
	leaders Leaders
	calls   chan func(nowMs int64)
	loaded  chan loadResult
	stop    chan struct{}
	done    chan struct{}
	// ctx is cancelled at Close, stopping replays; loaders counts the
	// goroutines replaying a partition.
	ctx     context.Context
	cancel  context.CancelFunc
	loaders sync.WaitGroup

	// createMu makes creations of the offsets topic take turns;
	// configsFixed is set once its configs were rewritten (or tried).
	createMu     sync.Mutex
	configsFixed atomic.Bool

	// Owned by the loop goroutine.
	machine        *Machine
	log            *offsetsLog
	parts          []offsetsPartition // by offsets partition
	gens           uint64
	leadersChanged <-chan struct{}
	nextWaiter     Waiter
	waiters        map[Waiter]chan any
	stats          Stats
}

// Stats are counters and gauges for metrics.
type Stats struct {
	Groups     int
	Members    int
	Rebalances int64
}

// Open loads the groups of the offsets partitions this node leads and
// starts the driver; on a single node that is every partition, replayed
// before Open returns. It runs in the cluster's environment (Cluster.Env):
// its timer and times come from that clock, the member id prefix from that
// randomness. The caller must Close it before closing the cluster.
func Open(c *cluster.Cluster, cfg Config, logger *slog.Logger) (*Coordinator, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	leaders := cfg.Leaders
	if leaders == nil {
		leaders = c
	}
	e := c.Env()
	var prefix [6]byte
	_, _ = e.Rand.Read(prefix[:]) // never fails
	ctx, cancel := context.WithCancel(context.Background())
	co := &Coordinator{cfg: cfg, logger: logger, clock: e.Clock, cluster: c, leaders: leaders,
		calls: make(chan func(int64), cfg.CallsQueuedMax), loaded: make(chan loadResult),
		stop: make(chan struct{}), done: make(chan struct{}), ctx: ctx, cancel: cancel,
		machine: NewMachine(cfg, hex.EncodeToString(prefix[:])), log: newOffsetsLog(c),
		waiters: map[Waiter]chan any{}}
	started := co.clock.Now()
	if err := co.reconcile(true); err != nil {
		cancel()
		return nil, fmt.Errorf("restore committed offsets: %w", err)
	}
	co.machine.Ready() // restoring produces no replies worth keeping
	logger.Info("group coordinator started", "groups", len(co.machine.groups),
		"took", co.clock.Now().Sub(started).Round(time.Millisecond))
	go co.loop()
	return co, nil
}

// Close stops the driver and any replay. Calls after Close return
// ErrClosed.
func (co *Coordinator) Close() error {
	select {
	case <-co.stop:
	default:
		close(co.stop)
	}
	co.cancel()
	<-co.done
	co.loaders.Wait()
	return nil
}

func (co *Coordinator) loop() {
	defer close(co.done)
	timer := co.clock.NewTimer(time.Hour)
	defer timer.Stop()
	for {
		if next := co.machine.NextDeadlineMs(); next > 0 {
			timer.ResetAt(time.UnixMilli(next))
		} else {
			timer.Reset(time.Hour)
		}
		select {
		case <-co.stop:
			return
		case call := <-co.calls:
			call(co.clock.Now().UnixMilli())
		case <-timer.C():
			// A leadership change ready as well would otherwise wait:
			// expiry must not act on groups another leader moved on.
			co.refresh()
			co.machine.Tick(co.clock.Now().UnixMilli())
		case <-co.leadersChanged:
			_ = co.reconcile(false) // a failed replay is logged where it ends (finishLoad)
		case r := <-co.loaded:
			co.finishLoad(r)
		}
		co.deliver(co.clock.Now().UnixMilli())
	}
}

// deliver hands deferred replies to their callers and persists changes.
func (co *Coordinator) deliver(nowMs int64) {
	ready := co.machine.Ready()
	for _, j := range ready.Joins {
		co.answer(j.Waiter, j.Result)
	}
	for _, s := range ready.Syncs {
		co.answer(s.Waiter, s.Result)
	}
	co.stats.Rebalances += int64(ready.Rebalances)
	for _, c := range ready.Changes {
		if co.gate(c.Group) != nil {
			continue // unloaded by an earlier change's write
		}
		if _, err := co.persist(c, nowMs); err != nil && !errors.Is(err, ErrNotCoordinator) {
			// These changes (a group becoming empty, expiry) have no client
			// to tell. The in-memory state moved on; after a restart the
			// records written before this one apply, and retention runs
			// again. Deletions a client asks for never come this way: they
			// are written before they apply and answered once durable. A
			// deposed partition is no failure: write unloaded its groups,
			// which its new leader runs from the log.
			co.logger.Error("recording group change", "group", c.Group, "err", err)
		}
	}
	co.stats.Groups = len(co.machine.groups)
	members := 0
	for _, g := range co.machine.groups {
		members += g.liveMembers()
	}
	co.stats.Members = members
}

func (co *Coordinator) answer(w Waiter, result any) {
	if ch, ok := co.waiters[w]; ok {
		ch <- result // buffered: the caller may have gone
		delete(co.waiters, w)
	}
}

// persist writes the records of a change; the result says what to wait on
// for their durability.
func (co *Coordinator) persist(c Change, nowMs int64) (appended, error) {
	records := changeRecords(c)
	if len(records) == 0 {
		return appended{}, nil
	}
	return co.write(c.Group, records, nowMs)
}

// write appends records to the offsets partition of group, which the
// caller checked is loaded. A partition found deposed has its groups
// unloaded, and the error is ErrNotCoordinator. On the loop.
func (co *Coordinator) write(group string, records []batch.Record, nowMs int64) (appended, error) {
	index := co.log.indexOf(group)
	if index < 0 {
		return appended{}, fmt.Errorf("%w: %s does not exist", ErrNotCoordinator, OffsetsTopic)
	}
	gen := co.parts[index].gen
	a, err := co.log.append(index, gen, co.parts[index].writeEpoch, records, nowMs)
	if isNotLeader(err) {
		co.fence(index, gen)
		return appended{}, notCoordinator(err)
	}
	return a, err
}

// settle waits until a is committed. When its partition lost its
// leadership first, the partition's groups are unloaded and the answer is
// ErrNotCoordinator. Off the loop.
func (co *Coordinator) settle(ctx context.Context, a appended) error {
	err := a.wait(ctx)
	if err == nil || !isNotLeader(err) {
		return err
	}
	// Should ctx end first, the unload is left to the leader view, which
	// moves with the partition's leadership.
	_ = co.do(ctx, func(int64) { co.fence(a.index, a.gen) })
	return notCoordinator(err)
}

// changeRecords returns the offsets-log records that make c durable.
func changeRecords(c Change) []batch.Record {
	var records []batch.Record
	switch c.Kind {
	case ChangeEmpty:
		records = append(records, batch.Record{Key: groupKey(c.Group), Value: groupValue(c)})
	case ChangeDeleted, ChangeOffsetsDeleted:
		if c.Kind == ChangeDeleted && !c.Persisted {
			return nil
		}
		for _, tp := range c.Offsets {
			records = append(records, batch.Record{Key: offsetKey(c.Group, tp)})
		}
		if c.Kind == ChangeDeleted {
			records = append(records, batch.Record{Key: groupKey(c.Group)})
		}
	}
	return records
}

// writeDelete appends the tombstones of a deletion checked by the Machine and
// then applies it, so that a failed append leaves the group unchanged. It
// runs on the loop; the caller waits on the result off the loop.
func (co *Coordinator) writeDelete(c Change, nowMs int64) (appended, error) {
	a, err := co.persist(c, nowMs)
	if err != nil {
		return appended{}, err
	}
	co.machine.ApplyDelete(c)
	return a, nil
}

// do runs f on the driver goroutine and waits for it.
func (co *Coordinator) do(ctx context.Context, f func(nowMs int64)) error {
	finished := make(chan struct{})
	call := func(nowMs int64) {
		defer close(finished)
		f(nowMs)
	}
	select {
	case co.calls <- call:
	case <-co.stop:
		return ErrClosed
	case <-ctx.Done():
		return ctx.Err()
	}
	select {
	case <-finished:
		return nil
	case <-co.done:
		return ErrClosed
	}
}

// doGroup runs f on the driver goroutine for a request about group, if
// this node coordinates the group: it creates the offsets topic when
// missing first, and returns gate's refusal instead of running f
// otherwise.
func (co *Coordinator) doGroup(ctx context.Context, group string, f func(nowMs int64)) error {
	if err := co.ensureTopic(); err != nil {
		return err
	}
	var refused error
	if err := co.do(ctx, func(nowMs int64) {
		co.refresh()
		if refused = co.gate(group); refused == nil {
			f(nowMs)
		}
	}); err != nil {
		return err
	}
	return refused
}

// register makes a waiter for a deferred reply; called on the loop.
func (co *Coordinator) register() (Waiter, chan any) {
	co.nextWaiter++
	ch := make(chan any, 1)
	co.waiters[co.nextWaiter] = ch
	return co.nextWaiter, ch
}

func (co *Coordinator) await(ctx context.Context, ch chan any) (any, error) {
	select {
	case v := <-ch:
		return v, nil
	case <-ctx.Done():
		return nil, ctx.Err()
	case <-co.done:
		return nil, ErrClosed
	}
}

// Join handles a JoinGroup; it returns when the rebalance completes.
func (co *Coordinator) Join(ctx context.Context, req JoinRequest) (JoinResult, error) {
	var ch chan any
	if err := co.doGroup(ctx, req.Group, func(nowMs int64) {
		var w Waiter
		w, ch = co.register()
		co.machine.Join(nowMs, w, req)
	}); err != nil {
		return JoinResult{}, err
	}
	v, err := co.await(ctx, ch)
	if err != nil {
		return JoinResult{}, err
	}
	return v.(JoinResult), nil
}

// Sync handles a SyncGroup; a follower's returns when the leader has synced.
func (co *Coordinator) Sync(ctx context.Context, req SyncRequest) (SyncResult, error) {
	var ch chan any
	if err := co.doGroup(ctx, req.Group, func(nowMs int64) {
		var w Waiter
		w, ch = co.register()
		co.machine.Sync(nowMs, w, req)
	}); err != nil {
		return SyncResult{}, err
	}
	v, err := co.await(ctx, ch)
	if err != nil {
		return SyncResult{}, err
	}
	return v.(SyncResult), nil
}

// Heartbeat handles a Heartbeat.
func (co *Coordinator) Heartbeat(ctx context.Context, req HeartbeatRequest) error {
	var result error
	if err := co.doGroup(ctx, req.Group, func(nowMs int64) { result = co.machine.Heartbeat(nowMs, req) }); err != nil {
		return err
	}
	return result
}

// Leave handles a LeaveGroup: one error (or nil) per member.
func (co *Coordinator) Leave(ctx context.Context, group string, members []LeaveMember) ([]error, error) {
	var result []error
	err := co.doGroup(ctx, group, func(nowMs int64) { result = co.machine.Leave(nowMs, group, members) })
	return result, err
}

// CommitOffsets checks the committer, appends the offsets to the log and
// returns once they are committed. perPartition has an error for each
// offset refused on its own (metadata too large); those are not written.
func (co *Coordinator) CommitOffsets(ctx context.Context, req CommitRequest, offsets map[TopicPartition]OffsetCommit) (map[TopicPartition]error, error) {
	perPartition := map[TopicPartition]error{}
	var a appended
	var result error
	err := co.doGroup(ctx, req.Group, func(nowMs int64) {
		if result = co.machine.CheckCommit(nowMs, req); result != nil {
			return
		}
		accepted := map[TopicPartition]OffsetCommit{}
		var records []batch.Record
		for tp, oc := range offsets {
			if err := co.machine.CheckOffsetMetadata(oc.Metadata); err != nil {
				perPartition[tp] = err
				continue
			}
			oc.CommitTimestampMs = nowMs
			accepted[tp] = oc
			records = append(records, batch.Record{Key: offsetKey(req.Group, tp), Value: offsetValue(oc)})
		}
		if len(records) == 0 {
			return
		}
		if a, result = co.write(req.Group, records, nowMs); result != nil {
			return
		}
		co.machine.ApplyCommit(nowMs, req.Group, accepted)
	})
	if err != nil {
		return nil, err
	}
	if result != nil {
		return nil, result
	}
	if err := co.settle(ctx, a); err != nil {
		return nil, fmt.Errorf("commit offsets for %s: %w", req.Group, err)
	}
	return perPartition, nil
}

// FetchOffsets returns committed offsets (all of the group's when tps is
// nil), once everything appended for the group is committed and, on a
// replicated offsets partition, once a quorum confirmed after the call
// began that this node still leads it in the epoch it was loaded in
// (linearize): a deposed coordinator that does not know it yet answers
// NOT_COORDINATOR, never offsets a new coordinator has moved past.
func (co *Coordinator) FetchOffsets(ctx context.Context, group string, tps []TopicPartition) (map[TopicPartition]OffsetCommit, error) {
	var out map[TopicPartition]OffsetCommit
	var a appended
	index, epoch := int32(-1), int32(0)
	if err := co.doGroup(ctx, group, func(int64) {
		out = co.machine.FetchOffsets(group, tps)
		if index = co.log.indexOf(group); index >= 0 {
			a = co.log.lastAppended[index]
			epoch = co.parts[index].epoch
		}
	}); err != nil {
		return nil, err
	}
	if err := co.settle(ctx, a); err != nil {
		return nil, fmt.Errorf("fetch offsets for %s: %w", group, err)
	}
	if index >= 0 {
		if err := co.linearize(ctx, index, epoch); err != nil {
			return nil, fmt.Errorf("fetch offsets for %s: %w", group, err)
		}
	}
	return out, nil
}

// Describe reports a group.
func (co *Coordinator) Describe(ctx context.Context, group string) (GroupDescription, error) {
	var d GroupDescription
	err := co.doGroup(ctx, group, func(int64) { d = co.machine.Describe(group) })
	return d, err
}

// List reports every group of the partitions loaded here.
func (co *Coordinator) List(ctx context.Context) ([]GroupListing, error) {
	var out []GroupListing
	err := co.do(ctx, func(int64) {
		co.refresh()
		out = co.machine.List()
	})
	return out, err
}

// DeleteGroup deletes an empty group and its offsets; it returns once their
// tombstones are committed. It is refused while the group's offsets
// partition is failed.
func (co *Coordinator) DeleteGroup(ctx context.Context, group string) error {
	var a appended
	var result error
	if err := co.doGroup(ctx, group, func(nowMs int64) {
		if result = co.log.failure(co.log.indexOf(group)); result != nil {
			return
		}
		var c Change
		if c, result = co.machine.CheckDeleteGroup(nowMs, group); result == nil {
			a, result = co.writeDelete(c, nowMs)
		}
	}); err != nil {
		return err
	}
	if result != nil {
		return fmt.Errorf("delete group %s: %w", group, result)
	}
	if err := co.settle(ctx, a); err != nil {
		return fmt.Errorf("delete group %s: %w", group, err)
	}
	return nil
}

// DeleteOffsets deletes some of a group's offsets (OffsetDelete); it returns
// once their tombstones are committed. It is refused while the group's
// offsets partition is failed.
func (co *Coordinator) DeleteOffsets(ctx context.Context, group string, tps []TopicPartition) (map[TopicPartition]error, error) {
	var out map[TopicPartition]error
	var a appended
	var result error
	if err := co.doGroup(ctx, group, func(nowMs int64) {
		if result = co.log.failure(co.log.indexOf(group)); result != nil {
			return
		}
		var c Change
		if out, c, result = co.machine.CheckDeleteOffsets(nowMs, group, tps); result == nil {
			a, result = co.writeDelete(c, nowMs)
		}
	}); err != nil {
		return nil, err
	}
	if result != nil {
		return nil, fmt.Errorf("delete offsets of %s: %w", group, result)
	}
	if err := co.settle(ctx, a); err != nil {
		return nil, fmt.Errorf("delete offsets of %s: %w", group, err)
	}
	return out, nil
}

// Stats returns the current counters.
func (co *Coordinator) Stats(ctx context.Context) (Stats, error) {
	var s Stats
	err := co.do(ctx, func(int64) { s = co.stats })
	return s, err
}

// ConsumerHeartbeat handles a ConsumerGroupHeartbeat (KIP-848) against the
// cluster's current topics.
func (co *Coordinator) ConsumerHeartbeat(ctx context.Context, req ConsumerHeartbeatRequest) (ConsumerHeartbeatResult, error) {
	req.Topics = co.topics()
	var res ConsumerHeartbeatResult
	var a appended
	var werr error
	err := co.doGroup(ctx, req.Group, func(nowMs int64) {
		res = co.machine.ConsumerHeartbeat(nowMs, req)
		if res.Err != nil {
			return
		}
		// An epoch the answer may carry is recorded first (as Kafka's
		// ConsumerGroupMetadata record), so a coordinator that loads the
		// group later goes on above it; and the answer waits until what
		// the partition holds is committed, an epoch record another
		// heartbeat appended included.
		if meta, ok := co.machine.ConsumerEpochToPersist(nowMs, req.Group); ok {
			if _, werr = co.write(req.Group, []batch.Record{{Key: groupKey(req.Group), Value: groupValue(meta)}}, nowMs); werr != nil {
				// Kafka reverts a failed write's records, a joined member
				// with them: one kept would hold its partitions until its
				// session expired, its caller told to retry.
				co.machine.ConsumerJoinUnanswered(nowMs, req.Group, res)
				return
			}
			co.machine.ConsumerEpochPersisted(req.Group, meta.Generation)
		}
		if index := co.log.indexOf(req.Group); index >= 0 {
			a = co.log.lastAppended[index]
		}
	})
	if err != nil {
		return res, err
	}
	if werr == nil {
		if werr = co.settle(ctx, a); werr != nil && !errors.Is(werr, ErrNotCoordinator) && res.join != 0 {
			// The caller's deadline may have passed: the member goes anyway.
			_ = co.doGroup(context.WithoutCancel(ctx), req.Group, func(nowMs int64) {
				co.machine.ConsumerJoinUnanswered(nowMs, req.Group, res)
			})
		}
	}
	switch {
	case werr == nil:
		return res, nil
	case errors.Is(werr, ErrNotCoordinator):
		return ConsumerHeartbeatResult{}, werr
	default:
		// A failed write or sync, or the wait cut short: retriable for
		// the client, which sends the heartbeat again.
		return ConsumerHeartbeatResult{}, fmt.Errorf("%w: record the epoch of consumer group %s: %v", ErrCoordinatorNotAvailable, req.Group, werr)
	}
}

// topics snapshots topic sizes and ids; called off the loop, since it
// takes the cluster's lock.
func (co *Coordinator) topics() map[string]TopicInfo {
	out := map[string]TopicInfo{}
	for _, t := range co.cluster.Topics() {
		out[t.Name] = TopicInfo{ID: t.ID, Partitions: int32(len(t.Partitions))}
	}
	return out
}
