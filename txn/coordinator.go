package txn

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"time"

	"github.com/cairnlog/cairn/batch"
	"github.com/cairnlog/cairn/cluster"
	"github.com/cairnlog/cairn/env"
	"github.com/cairnlog/cairn/partition"
)

// Leaders is what the coordinator asks about who leads the partitions of
// __transaction_state and where nodes are. *cluster.Cluster is one.
type Leaders interface {
	Leader(topic string, index int32) (cluster.Leader, error)
	LeadersChanged() <-chan struct{}
	Brokers() []cluster.Broker
}

// MarkerWriter writes the marker that ends producerID's transaction on one
// partition and returns once it is committed there; a partition that no
// longer exists counts as done. The server's writes to local partitions
// directly and to others through their leaders. A marker refused as from
// an older coordinator than the producer's last marker there fails with
// an error wrapping ErrCoordinatorFenced.
type MarkerWriter interface {
	WriteMarker(ctx context.Context, tp TopicPartition, producerID int64, producerEpoch int16, commit bool, coordinatorEpoch int32) error
}

// persistTimeout bounds the wait for a __transaction_state write; a write
// that did not commit in time unloads its partition, so the Machine is
// reloaded from what the log holds.
const persistTimeout = 30 * time.Second

// statePartition is the coordinator's view of one __transaction_state
// partition.
type statePartition struct {
	loaded bool
	epoch  int32
	// gen names the current load, so the work of an earlier one (a
	// completion, a write) does not change the next one's state.
	gen uint64
}

// Coordinator is the transaction coordinator of the __transaction_state
// partitions this node leads: it serialises the requests of each
// transactional id through the Machine, persists each decision before
// answering, writes the markers of ending transactions and aborts the ones
// that time out. Its methods are safe for concurrent use.
type Coordinator struct {
	cfg     Config
	logger  *slog.Logger
	clock   env.Clock
	cluster *cluster.Cluster
	leaders Leaders
	markers MarkerWriter

	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup
	kick   chan struct{}

	createMu sync.Mutex
	// loadMu makes loads and unloads take turns (taken before mu).
	loadMu sync.Mutex

	mu         sync.Mutex
	machine    *Machine
	busy       map[string]bool // ids with a write in flight
	parts      []statePartition
	partitions int32 // the topic's partition count as last seen; 0: none
	gens       uint64
}

// Open loads the transactions of the __transaction_state partitions this
// node leads, resumes the ones that were ending, and starts the loop that
// follows leadership and aborts timed-out transactions. It runs on the
// cluster's clock. Close it before the cluster.
func Open(c *cluster.Cluster, cfg Config, markers MarkerWriter, logger *slog.Logger) (*Coordinator, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg = cfg.withDefaults()
	leaders := cfg.Leaders
	if leaders == nil {
		leaders = c
	}
	ctx, cancel := context.WithCancel(context.Background())
	co := &Coordinator{cfg: cfg, logger: logger, clock: c.Env().Clock, cluster: c, leaders: leaders, markers: markers,
		ctx: ctx, cancel: cancel, kick: make(chan struct{}, 1), machine: NewMachine(cfg), busy: map[string]bool{}}
	changed := co.leaders.LeadersChanged()
	if err := co.reconcile(); err != nil {
		cancel()
		return nil, fmt.Errorf("load transaction state: %w", err)
	}
	co.wg.Add(1)
	go co.loop(changed)
	return co, nil
}

// Close stops the loop and the marker writers.
func (co *Coordinator) Close() error {
	co.cancel()
	co.wg.Wait()
	return nil
}

func (co *Coordinator) loop(changed <-chan struct{}) {
	defer co.wg.Done()
	ticker := co.clock.NewTimer(co.cfg.AbortCheckInterval)
	defer ticker.Stop()
	for {
		select {
		case <-co.ctx.Done():
			return
		case <-changed:
			changed = co.leaders.LeadersChanged()
			co.logReconcile()
		case <-co.kick:
			co.logReconcile()
		case <-ticker.C():
			ticker.Reset(co.cfg.AbortCheckInterval)
			co.abortExpired()
		}
	}
}

func (co *Coordinator) logReconcile() {
	if err := co.reconcile(); err != nil && co.ctx.Err() == nil {
		co.logger.Error("loading transaction state", "err", err)
	}
}

// reconcile loads the __transaction_state partitions this node leads and
// unloads the others.
func (co *Coordinator) reconcile() error {
	co.loadMu.Lock()
	defer co.loadMu.Unlock()
	var n int32
	if t, ok := co.cluster.Topic(StateTopic); ok {
		n = int32(len(t.Partitions))
	}
	co.mu.Lock()
	if n != co.partitions {
		// Ids map to partitions by count: a new count moves them all.
		co.machine.Unload(func(string) bool { return true })
		co.parts, co.partitions = make([]statePartition, n), n
		co.gens++
	}
	co.mu.Unlock()
	var errs []error
	for i := int32(0); i < n; i++ {
		l, err := co.leaders.Leader(StateTopic, i)
		local := err == nil && l.Local
		co.mu.Lock()
		st := co.parts[i]
		if st.loaded && (!local || l.Epoch != st.epoch) {
			co.unloadLocked(i)
			st = co.parts[i]
		}
		co.mu.Unlock()
		if local && !st.loaded {
			errs = append(errs, co.load(i, l.Epoch))
		}
	}
	return errors.Join(errs...)
}

// reloadLocked unloads partition index after a failed write, whose record
// the log may or may not hold, and has the loop load it again from the
// log. Callers hold mu.
func (co *Coordinator) reloadLocked(index int32) {
	co.unloadLocked(index)
	select {
	case co.kick <- struct{}{}:
	default:
	}
}

// unloadLocked drops partition index's transactions. Callers hold mu.
func (co *Coordinator) unloadLocked(index int32) {
	if !co.parts[index].loaded {
		return
	}
	n := co.partitions
	dropped := co.machine.Unload(func(id string) bool { return PartitionFor(id, n) == index })
	co.gens++
	co.parts[index] = statePartition{gen: co.gens}
	co.logger.Info("transaction coordinator unloaded partition", "partition", index, "transactions", dropped)
}

// load replays partition index, led here at epoch, and adopts its
// transactions; the ending ones get their markers written again. Callers
// hold loadMu.
func (co *Coordinator) load(index, epoch int32) error {
	p, err := co.cluster.Partition(StateTopic, index)
	if err != nil {
		return fmt.Errorf("load %s-%d: %w", StateTopic, index, err)
	}
	m := NewMachine(co.cfg)
	records, err := replay(co.ctx, m, p)
	if err != nil {
		return fmt.Errorf("load %s-%d: %w", StateTopic, index, err)
	}
	co.mu.Lock()
	if int(index) >= len(co.parts) {
		co.mu.Unlock()
		return nil
	}
	for _, id := range m.IDs() {
		md, _ := m.Get(id)
		co.machine.Apply(id, &md)
	}
	co.gens++
	co.parts[index] = statePartition{loaded: true, epoch: epoch, gen: co.gens}
	gen := co.gens
	ending := m.Ending()
	co.mu.Unlock()
	co.logger.Info("transaction coordinator loaded partition", "partition", index, "epoch", epoch,
		"records", records, "transactions", len(m.txns), "ending", len(ending))
	for _, md := range ending {
		_ = co.startCompletion(md, index, gen)
	}
	return nil
}

// replay reads p up to its high watermark into m.
func replay(ctx context.Context, m *Machine, p *partition.Partition) (int, error) {
	if end := p.LogEndOffset(); !p.Replicated() && end > 0 {
		if err := p.WaitDurable(ctx, end-1); err != nil {
			return 0, err
		}
	}
	count := 0
	for offset, end := p.LogStartOffset(), p.HighWatermark(); offset < end; {
		res, err := p.Read(offset, 1<<20)
		if err != nil {
			return count, err
		}
		if len(res.Records) == 0 {
			break
		}
		lim := p.Limits()
		for data := res.Records; len(data) > 0; {
			h, whole, rest, err := batch.Next(data)
			if err != nil {
				return count, fmt.Errorf("batch at %d: %w", offset, err)
			}
			data, offset = rest, max(offset, h.NextOffset())
			if h.Control() {
				continue
			}
			recs, err := batch.Records(whole, lim)
			if err != nil {
				return count, fmt.Errorf("batch at %d: %w", h.BaseOffset, err)
			}
			for _, r := range recs {
				id, md, err := decodeRecord(r.Key, r.Value)
				if err != nil {
					return count, fmt.Errorf("record at %d: %w", r.Offset, err)
				}
				m.Apply(id, md)
				count++
			}
		}
	}
	return count, nil
}

// gateLocked returns the partition of id when this node coordinates it.
// Callers hold mu.
func (co *Coordinator) gateLocked(id string) (int32, error) {
	if co.ctx.Err() != nil {
		return -1, ErrClosed
	}
	if co.partitions == 0 {
		return -1, fmt.Errorf("%w: %s does not exist", ErrNotCoordinator, StateTopic)
	}
	index := PartitionFor(id, co.partitions)
	if !co.parts[index].loaded {
		return index, fmt.Errorf("%w: this node does not coordinate %s-%d", ErrNotCoordinator, StateTopic, index)
	}
	return index, nil
}

// gate is gateLocked after loading id's partition if this node leads it
// but has not loaded it yet (a leadership the loop has not caught up
// with).
func (co *Coordinator) gate(id string) error {
	co.mu.Lock()
	index, err := co.gateLocked(id)
	var st statePartition
	if err == nil {
		st = co.parts[index]
	}
	co.mu.Unlock()
	switch {
	case err == nil:
		// Loaded, but the leadership may have been lost since, or lost
		// and won back, before the loop caught up: the transactions held
		// then miss what the leader between wrote.
		if !co.epochMoved(index, st.epoch) {
			return nil
		}
		co.mu.Lock()
		if int(index) < len(co.parts) && co.parts[index].gen == st.gen {
			co.unloadLocked(index)
		}
		co.mu.Unlock()
	case !errors.Is(err, ErrNotCoordinator):
		return err
	}
	if err := co.reconcile(); err != nil {
		return fmt.Errorf("%w: %v", ErrCoordinatorLoadInProgress, err)
	}
	return nil
}

// run decides a request for id under mu, persists the decision, and
// applies it once durable. It returns the metadata the answer is made of.
func (co *Coordinator) run(id string, decide func(m *Machine, nowMs int64) Decision) (Metadata, error) {
	md, _, err := co.runEnding(id, decide)
	return md, err
}

// runEnding is run that also returns, when the decision ends a
// transaction, a channel closed once its completion is done (or given up
// on this node).
func (co *Coordinator) runEnding(id string, decide func(m *Machine, nowMs int64) Decision) (Metadata, <-chan struct{}, error) {
	if err := co.gate(id); err != nil {
		return Metadata{}, nil, err
	}
	co.mu.Lock()
	index, err := co.gateLocked(id)
	if err != nil {
		co.mu.Unlock()
		return Metadata{}, nil, err
	}
	if co.busy[id] {
		co.mu.Unlock()
		return Metadata{}, nil, fmt.Errorf("%w: a request for %q is being persisted", ErrConcurrentTransactions, id)
	}
	d := decide(co.machine, co.clock.Now().UnixMilli())
	if d.Next == nil {
		cur, _ := co.machine.Get(id)
		co.mu.Unlock()
		return cur, nil, d.Err
	}
	st := co.parts[index]
	co.busy[id] = true
	co.mu.Unlock()
	if err := co.persist(index, st, d.Next); err != nil {
		return Metadata{}, nil, err
	}
	var done <-chan struct{}
	if d.Next.State.Ending() {
		done = co.startCompletion(*d.Next, index, st.gen)
	}
	return *d.Next, done, d.Err
}

// persist writes md to id's partition, loaded as st, waits until it is
// committed and applies it, unless the partition was unloaded meanwhile.
// A failed write unloads the partition: the log may or may not hold md,
// so the Machine is rebuilt from it. It clears md.ID's busy mark.
func (co *Coordinator) persist(index int32, st statePartition, md *Metadata) error {
	err := co.writeRecord(index, st.epoch, md.ID, md)
	co.mu.Lock()
	defer co.mu.Unlock()
	delete(co.busy, md.ID)
	switch {
	case int(index) >= len(co.parts) || co.parts[index].gen != st.gen:
		return fmt.Errorf("%w: %s-%d was unloaded", ErrNotCoordinator, StateTopic, index)
	case err != nil:
		co.reloadLocked(index)
		return fmt.Errorf("%w: %v", ErrNotCoordinator, err)
	}
	co.machine.Apply(md.ID, md)
	return nil
}

// writeRecord writes id's metadata (a tombstone for nil) to partition
// index, loaded while it led at epoch, and waits until it is committed.
// The record is appended in that leader epoch only: a decision made on
// what was loaded then must not land after another leader's writes.
func (co *Coordinator) writeRecord(index, epoch int32, id string, md *Metadata) error {
	p, err := co.cluster.Partition(StateTopic, index)
	if err != nil {
		return fmt.Errorf("write %s-%d: %w", StateTopic, index, err)
	}
	rec := batch.Record{TimestampMs: co.clock.Now().UnixMilli(), Key: stateKey(id)}
	if md != nil {
		rec.Value = stateValue(*md)
	}
	res, err := p.AppendInTerm(batch.Build([]batch.Record{rec}, batch.None), epoch)
	if err != nil {
		return fmt.Errorf("write %s-%d: %w", StateTopic, index, err)
	}
	ctx, cancel := context.WithTimeout(co.ctx, persistTimeout)
	defer cancel()
	if err := p.WaitAppended(ctx, res, true); err != nil {
		return fmt.Errorf("write %s-%d: %w", StateTopic, index, err)
	}
	return nil
}

// startCompletion writes the markers of the ending transaction md on a
// goroutine of its own, then persists its completion.
func (co *Coordinator) startCompletion(md Metadata, index int32, gen uint64) <-chan struct{} {
	done := make(chan struct{})
	co.wg.Add(1)
	go func() {
		defer co.wg.Done()
		defer close(done)
		co.complete(md, index, gen)
	}()
	return done
}

func (co *Coordinator) complete(md Metadata, index int32, gen uint64) {
	commit := md.State == PrepareCommit
	for {
		co.mu.Lock()
		current := int(index) < len(co.parts) && co.parts[index].gen == gen
		epoch := int32(-1)
		if current {
			epoch = co.parts[index].epoch
		}
		co.mu.Unlock()
		if !current {
			return // the next coordinator of the partition resumes it
		}
		err := co.writeMarkers(md, commit, epoch)
		if err == nil {
			break
		}
		co.logger.Warn("writing transaction markers", "transactional_id", md.ID, "commit", commit, "err", err)
		if errors.Is(err, ErrCoordinatorFenced) && co.epochMoved(index, epoch) {
			// A newer coordinator of the partition wrote markers of this
			// producer: what this one holds is stale. Load it again, if
			// this node leads it again. Fenced in the epoch it still leads
			// (a marker naming a higher epoch came from elsewhere), it
			// retries after a pause like any failed write, never reloading
			// in a loop.
			co.mu.Lock()
			if int(index) < len(co.parts) && co.parts[index].gen == gen {
				co.reloadLocked(index)
			}
			co.mu.Unlock()
			return
		}
		if !co.pause() {
			return
		}
	}
	for {
		co.mu.Lock()
		next, ok := co.machine.Complete(md.ID, md.ProducerEpoch, co.clock.Now().UnixMilli())
		if !ok || co.parts[index].gen != gen {
			co.mu.Unlock()
			return // completed already, or the partition moved on
		}
		if !co.busy[md.ID] {
			co.busy[md.ID] = true
			st := co.parts[index]
			co.mu.Unlock()
			if err := co.persist(index, st, next); err != nil {
				co.logger.Warn("completing transaction", "transactional_id", md.ID, "err", err)
			}
			return
		}
		// A request's write for the id is in flight (the Machine refuses
		// most while the transaction ends): complete after it.
		co.mu.Unlock()
		if !co.pause() {
			return
		}
	}
}

// epochMoved reports whether partition index is no longer led here in
// epoch, as the leader view says now.
func (co *Coordinator) epochMoved(index, epoch int32) bool {
	l, err := co.leaders.Leader(StateTopic, index)
	return err != nil || !l.Local || l.Epoch != epoch
}

// pause waits MarkerRetryInterval on the coordinator's clock; false when
// the coordinator closed meanwhile.
func (co *Coordinator) pause() bool {
	t := co.clock.NewTimer(co.cfg.MarkerRetryInterval)
	defer t.Stop()
	select {
	case <-co.ctx.Done():
		return false
	case <-t.C():
		return true
	}
}

// writeMarkers writes md's marker to each of its partitions.
func (co *Coordinator) writeMarkers(md Metadata, commit bool, coordinatorEpoch int32) error {
	ctx, cancel := context.WithTimeout(co.ctx, persistTimeout)
	defer cancel()
	var errs []error
	for _, tp := range md.Partitions {
		if err := co.markers.WriteMarker(ctx, tp, md.ProducerID, md.ProducerEpoch, commit, coordinatorEpoch); err != nil {
			errs = append(errs, fmt.Errorf("%s-%d: %w", tp.Topic, tp.Partition, err))
		}
	}
	return errors.Join(errs...)
}

// abortExpired aborts the transactions whose timeout passed and removes
// the transactional ids idle past their expiration.
func (co *Coordinator) abortExpired() {
	co.mu.Lock()
	nowMs := co.clock.Now().UnixMilli()
	ids, idle := co.machine.Expired(nowMs), co.machine.IdleExpired(nowMs)
	co.mu.Unlock()
	for _, id := range idle {
		if err := co.remove(id, nowMs); err != nil {
			co.logger.Warn("removing an expired transactional id", "transactional_id", id, "err", err)
		}
	}
	for _, id := range ids {
		co.logger.Info("aborting a transaction past its timeout", "transactional_id", id)
		if _, err := co.run(id, func(m *Machine, nowMs int64) Decision { return m.Abort(id, nowMs) }); err != nil {
			co.logger.Warn("aborting a timed-out transaction", "transactional_id", id, "err", err)
		}
	}
}

// remove writes id's tombstone and forgets it, if it is still idle past
// its expiration at nowMs.
func (co *Coordinator) remove(id string, nowMs int64) error {
	co.mu.Lock()
	index, err := co.gateLocked(id)
	if err != nil || co.busy[id] {
		co.mu.Unlock()
		return err
	}
	if !slices.Contains(co.machine.IdleExpired(nowMs), id) {
		co.mu.Unlock()
		return nil
	}
	st := co.parts[index]
	co.busy[id] = true
	co.mu.Unlock()
	err = co.writeRecord(index, st.epoch, id, nil)
	co.mu.Lock()
	defer co.mu.Unlock()
	delete(co.busy, id)
	switch {
	case int(index) >= len(co.parts) || co.parts[index].gen != st.gen:
		return fmt.Errorf("%w: %s-%d was unloaded", ErrNotCoordinator, StateTopic, index)
	case err != nil:
		co.reloadLocked(index)
		return err
	}
	co.machine.Apply(id, nil)
	return nil
}

// InitProducerID answers InitProducerId for a transactional id.
func (co *Coordinator) InitProducerID(id string, timeoutMs int32, producerID int64, producerEpoch int16) (int64, int16, error) {
	md, err := co.run(id, func(m *Machine, nowMs int64) Decision {
		return m.Init(id, timeoutMs, producerID, producerEpoch, nowMs, co.cluster.NextProducerID)
	})
	if err != nil {
		return -1, -1, err
	}
	return md.ProducerID, md.ProducerEpoch, nil
}

// AddPartitions adds tps to id's transaction (AddPartitionsToTxn, and
// AddOffsetsToTxn with the group's offsets partition).
func (co *Coordinator) AddPartitions(id string, producerID int64, producerEpoch int16, tps []TopicPartition) error {
	_, err := co.run(id, func(m *Machine, nowMs int64) Decision {
		return m.AddPartitions(id, producerID, producerEpoch, tps, nowMs)
	})
	return err
}

// Verify answers whether tp is in id's ongoing transaction at producerID
// and producerEpoch (KIP-890: a partition's first transactional batch of
// a producer is accepted only then).
func (co *Coordinator) Verify(id string, producerID int64, producerEpoch int16, tp TopicPartition) error {
	if err := co.gate(id); err != nil {
		return err
	}
	co.mu.Lock()
	defer co.mu.Unlock()
	if _, err := co.gateLocked(id); err != nil {
		return err
	}
	return co.machine.Contains(id, producerID, producerEpoch, tp)
}

// End ends id's transaction (EndTxn). The outcome is decided once
// PrepareCommit or PrepareAbort is durable; End then waits, at most
// Config.EndWaitMax, for the markers and the completion, so that the
// producer's next transaction does not find this one still ending
// (CONCURRENT_TRANSACTIONS, a retry after a client backoff). It succeeds
// either way: the markers follow.
func (co *Coordinator) End(id string, producerID int64, producerEpoch int16, commit bool) error {
	_, done, err := co.runEnding(id, func(m *Machine, nowMs int64) Decision {
		return m.End(id, producerID, producerEpoch, commit, nowMs)
	})
	if err != nil || done == nil {
		return err
	}
	t := co.clock.NewTimer(co.cfg.EndWaitMax)
	defer t.Stop()
	select {
	case <-done:
	case <-t.C():
	case <-co.ctx.Done():
	}
	return nil
}

// Abort aborts id's ongoing transaction as its timeout would (operators).
func (co *Coordinator) Abort(id string) error {
	_, err := co.run(id, func(m *Machine, nowMs int64) Decision { return m.Abort(id, nowMs) })
	return err
}

// Describe returns id's metadata (DescribeTransactions).
func (co *Coordinator) Describe(id string) (Metadata, error) {
	if err := co.gate(id); err != nil {
		return Metadata{}, err
	}
	co.mu.Lock()
	defer co.mu.Unlock()
	if _, err := co.gateLocked(id); err != nil {
		return Metadata{}, err
	}
	md, ok := co.machine.Get(id)
	if !ok {
		return Metadata{}, fmt.Errorf("%w: %q", ErrTransactionalIDNotFound, id)
	}
	return md, nil
}

// List returns the transactions this node coordinates, sorted by id
// (ListTransactions).
func (co *Coordinator) List() []Metadata {
	co.mu.Lock()
	defer co.mu.Unlock()
	var out []Metadata
	for _, id := range co.machine.IDs() {
		md, _ := co.machine.Get(id)
		out = append(out, md)
	}
	return out
}

// CountByState counts the transactional ids this node coordinates by the
// state of their transaction, for metrics.
func (co *Coordinator) CountByState() map[State]int {
	co.mu.Lock()
	defer co.mu.Unlock()
	out := map[State]int{}
	for _, t := range co.machine.txns {
		out[t.State]++
	}
	return out
}

// Locate names the coordinator of id: the leader of its
// __transaction_state partition, created when missing (FindCoordinator).
func (co *Coordinator) Locate(id string) (cluster.Broker, error) {
	if err := co.ensureTopic(); err != nil {
		return cluster.Broker{}, err
	}
	t, ok := co.cluster.Topic(StateTopic)
	if !ok {
		return cluster.Broker{}, fmt.Errorf("%w: %s was deleted", ErrCoordinatorNotAvailable, StateTopic)
	}
	index := PartitionFor(id, int32(len(t.Partitions)))
	l, err := co.leaders.Leader(StateTopic, index)
	if err != nil {
		return cluster.Broker{}, fmt.Errorf("%w: %v", ErrCoordinatorNotAvailable, err)
	}
	if l.Node < 0 {
		return cluster.Broker{}, fmt.Errorf("%w: %s-%d has no leader", ErrCoordinatorNotAvailable, StateTopic, index)
	}
	for _, b := range co.leaders.Brokers() {
		if b.NodeID == l.Node {
			return b, nil
		}
	}
	return cluster.Broker{}, fmt.Errorf("%w: %s-%d leader %d is not a known broker", ErrCoordinatorNotAvailable, StateTopic, index, l.Node)
}

// ensureTopic creates __transaction_state (compacted) when missing.
func (co *Coordinator) ensureTopic() error {
	if _, ok := co.cluster.Topic(StateTopic); ok {
		return nil
	}
	co.createMu.Lock()
	defer co.createMu.Unlock()
	if _, ok := co.cluster.Topic(StateTopic); ok {
		return nil
	}
	_, err := co.cluster.CreateTopicReplicated(StateTopic, co.cfg.StateTopicPartitions, -1, map[string]string{"cleanup.policy": "compact"}, false)
	if err != nil && !errors.Is(err, cluster.ErrTopicExists) {
		return fmt.Errorf("%w: create %s: %v", ErrCoordinatorNotAvailable, StateTopic, err)
	}
	select {
	case co.kick <- struct{}{}:
	default:
	}
	return nil
}
