package replica

import (
	"bytes"
	"cmp"
	"errors"
	"fmt"
	"log/slog"
	"runtime"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cairnlog/cairn/env"
	"go.etcd.io/raft/v3"
	"go.etcd.io/raft/v3/raftpb"
)

// Sender carries a group's messages to the replicas of other nodes. Send
// must not block: a full queue drops (raft retransmits).
type Sender interface {
	Send(groupID uint64, msgs []*raftpb.Message)
}

// SchedulerConfig sizes a node's Scheduler.
type SchedulerConfig struct {
	// Workers run groups' Raft work (default GOMAXPROCS).
	Workers int
	// SyncWorkers run Storage.Sync for all groups (default Workers): a
	// group's sync never holds a Raft worker.
	SyncWorkers int
	// TickInterval is the time of one Raft tick for every group (50 ms).
	TickInterval time.Duration
	// InboxMessagesMax bounds the messages queued for one group; more are
	// dropped, as a congested network would (4096).
	InboxMessagesMax int
	// OpsQueuedMax bounds the calls (proposals, campaigns) waiting for one
	// group; Do refuses beyond it with ErrBusy (1024, proposalsQueuedMax of
	// the design).
	OpsQueuedMax int
	// Alive tells whether the node of a replica is alive (the leader
	// table's liveness). Without it no group quiesces; with it, a group
	// added with GroupOptions.Quiesce stops ticking while idle (quiesce.go).
	Alive func(replicaID uint64) bool
	// Stepped starts no worker and no ticker: the owner calls Step, which
	// ticks and runs the groups on its own goroutine in a fixed order, so
	// that a simulation decides when and in which order groups run
	// (Workers is then unused). StepSyncs has Step run the syncs too,
	// inline, instead of the sync workers: only for storage whose Sync
	// does not wait for the stepping goroutine (a simulated disk whose
	// sync takes time on the clock that goroutine advances would).
	Stepped, StepSyncs bool
}

func (c SchedulerConfig) withDefaults() SchedulerConfig {
	setDefault(&c.Workers, runtime.GOMAXPROCS(0))
	setDefault(&c.SyncWorkers, c.Workers)
	if c.TickInterval == 0 {
		c.TickInterval = 50 * time.Millisecond
	}
	setDefault(&c.InboxMessagesMax, 4096)
	setDefault(&c.OpsQueuedMax, 1024)
	return c
}

// Validate refuses sizes that would stall the scheduler.
func (c SchedulerConfig) Validate() error {
	if c.Workers <= 0 || c.SyncWorkers <= 0 || c.TickInterval <= 0 || c.InboxMessagesMax <= 0 || c.OpsQueuedMax <= 0 {
		return fmt.Errorf("replica scheduler config: every size must be positive: %+v", c)
	}
	return nil
}

// Errors of the scheduler.
var (
	ErrClosed       = errors.New("replica: scheduler closed")
	ErrUnknownGroup = errors.New("replica: unknown group")
	ErrBusy         = errors.New("replica: too many calls queued for the group")
	// ErrReentrant: Do or RemoveGroup called on one of the scheduler's
	// workers (from a Do, a hook or a StateMachine method) would wait for
	// that worker; call the Replica directly there instead.
	ErrReentrant = errors.New("replica: scheduler call from its own worker")
)

// maxTicksQueued caps the ticks a group catches up on after a stall, so a
// slow worker does not fire elections in a burst.
const maxTicksQueued = 2

// Scheduler runs the Raft groups of one node on a few workers: a group
// with pending events (messages, calls, ticks, completed syncs) is queued
// once and run by the next free worker, so idle groups cost no goroutine.
// One ticker ticks every group from the env's clock.
type Scheduler struct {
	e    env.Env
	cfg  SchedulerConfig
	send Sender

	mu       sync.Mutex
	work     *sync.Cond // runnable grew, or closed
	syncWork *sync.Cond // toSync grew, or closed
	settled  *sync.Cond // a run or a sync ended (see waitIdle)
	groups   map[uint64]*group
	runnable []*group
	toSync   []*group
	closed   bool
	ticks    uint64 // Tick calls
	// workerGoroutines are the goroutine ids of the workers, so calls that
	// would wait for a worker can refuse to run on one.
	workerGoroutines map[uint64]bool
	// inRun counts the workers inside run, the only place a worker runs
	// the code (calls, hooks, StateMachine methods) that could call Do:
	// while it is 0 the caller is no worker, and Do skips goroutineID, a
	// stack trace that cost a twelfth of a busy node's CPU when taken at
	// every proposal.
	inRun atomic.Int32
	// readSeq numbers read rounds (readindex.go), their contexts in raft.
	readSeq atomic.Uint64
	// stepper is the goroutine that called Step last, stepping whether a
	// Step runs, and nextTick the tick Step gives next (Stepped only).
	stepper  uint64
	stepping bool
	nextTick time.Time

	stopTicker chan struct{}
	wg         sync.WaitGroup
}

// GroupOptions are a group's hooks into its owner.
type GroupOptions struct {
	// OnReadState receives the answers to ReadIndex calls, on a worker.
	OnReadState func(raft.ReadState)
	// Quiesce lets the group stop ticking while it is idle and the nodes
	// it depends on are alive (needs SchedulerConfig.Alive).
	Quiesce bool
}

// group is one Replica and the events waiting for it. The fields after mu
// are guarded by Scheduler.mu; the replica belongs to whichever worker has
// the group running (at most one).
type group struct {
	id      uint64
	r       *Replica
	storage Storage
	opts    GroupOptions

	queued, running, removed bool
	inbox                    []*raftpb.Message
	ops                      []op
	// reads wait for the next read round; round is the one in flight,
	// which belongs to the worker running the group (readindex.go).
	reads       []readWaiter
	round       *readRound
	unreachable []uint64 // peers a send to failed
	// gone, when set, tells the replicas whose process ended (ReportGone).
	gone  func(replicaID uint64) bool
	ticks int
	// wantSync is the highest SyncSeq HandleReady asked for, syncedSeq the
	// highest a completed Sync covered and not yet handed to Synced.
	wantSync, syncedSeq uint64
	syncing             bool
	syncErr             error
	// quiesced: the group gets no ticks until an event wakes it or a
	// replica in watch is no longer alive (quiesce.go).
	quiesced   bool
	watch      []uint64
	quiescedAs role   // the role, leader and term it quiesced in
	wakes      uint64 // events that wake the group, counted
}

type op struct {
	f    func(r *Replica)
	done chan error
}

// NewScheduler starts the workers, the sync workers and the ticker.
func NewScheduler(e env.Env, cfg SchedulerConfig, send Sender) (*Scheduler, error) {
	cfg = cfg.withDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if e.Clock == nil {
		return nil, errors.New("replica scheduler: env has no clock")
	}
	e.Logger = cmp.Or(e.Logger, slog.Default())
	s := &Scheduler{e: e, cfg: cfg, send: send, groups: map[uint64]*group{}, workerGoroutines: map[uint64]bool{}, stopTicker: make(chan struct{})}
	s.work = sync.NewCond(&s.mu)
	s.syncWork = sync.NewCond(&s.mu)
	s.settled = sync.NewCond(&s.mu)
	if !cfg.Stepped || !cfg.StepSyncs {
		for range cfg.SyncWorkers {
			s.wg.Go(s.syncer)
		}
	}
	if cfg.Stepped {
		s.nextTick = e.Clock.Now().Add(cfg.TickInterval)
		return s, nil
	}
	for range cfg.Workers {
		s.wg.Go(s.worker)
	}
	s.wg.Go(s.ticker)
	return s, nil
}

// AddGroup hands a replica, and the storage it writes to, to the
// scheduler; from then on only the scheduler's workers touch it.
func (s *Scheduler) AddGroup(groupID uint64, r *Replica, storage Storage, opts GroupOptions) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return ErrClosed
	}
	if _, ok := s.groups[groupID]; ok {
		return fmt.Errorf("replica scheduler: group %d added twice", groupID)
	}
	g := &group{id: groupID, r: r, storage: storage, opts: opts}
	s.groups[groupID] = g
	s.enqueueLocked(g) // a replica may have work from its start (a restored term)
	return nil
}

// RemoveGroup stops scheduling a group; calls still queued fail with
// ErrUnknownGroup. It returns once no worker runs the group and no Sync
// of its storage is under way, so the owner may close the storage then.
// On a worker it answers ErrReentrant: it would wait for itself.
func (s *Scheduler) RemoveGroup(groupID uint64) error {
	gid := goroutineID()
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.workerGoroutines[gid] {
		return ErrReentrant
	}
	g, ok := s.groups[groupID]
	if !ok {
		return nil
	}
	delete(s.groups, groupID)
	g.removed = true
	for _, o := range g.ops {
		o.done <- ErrUnknownGroup
	}
	g.ops, g.inbox = nil, nil
	g.failReadsLocked(ErrUnknownGroup)
	s.runnable = slices.DeleteFunc(s.runnable, func(q *group) bool { return q == g })
	if n := len(s.toSync); n > 0 {
		if s.toSync = slices.DeleteFunc(s.toSync, func(q *group) bool { return q == g }); len(s.toSync) < n {
			g.syncing = false // queued, not started
		}
	}
	g.queued = false
	// Workers and syncers broadcast settled when they finish, closed or not.
	for g.running || g.syncing {
		s.settled.Wait()
	}
	g.failReadsLocked(ErrUnknownGroup) // the round, now that no worker runs it
	return nil
}

// goroutineID returns the id of the calling goroutine, read from the
// first line of its stack trace ("goroutine 42 [running]:"): the one
// way to tell a worker's own call, which must not wait for it.
func goroutineID() uint64 {
	var buf [64]byte
	b := buf[:runtime.Stack(buf[:], false)]
	b, _ = bytes.CutPrefix(b, []byte("goroutine "))
	if i := bytes.IndexByte(b, ' '); i > 0 {
		b = b[:i]
	}
	id, _ := strconv.ParseUint(string(b), 10, 64)
	return id
}

// Deliver queues a message from another node for its group. Messages for
// an unknown group, or beyond the inbox bound, are dropped.
func (s *Scheduler) Deliver(groupID uint64, m *raftpb.Message) {
	s.mu.Lock()
	defer s.mu.Unlock()
	g, ok := s.groups[groupID]
	if !ok || len(g.inbox) >= s.cfg.InboxMessagesMax {
		return
	}
	g.inbox = append(g.inbox, m)
	if wakes(m) {
		g.wakeLocked()
	}
	s.enqueueLocked(g)
}

// ReportUnreachable tells a group a message to peer was dropped (a full
// queue, a broken connection), so its leader probes that peer again
// instead of streaming appends into the void.
func (s *Scheduler) ReportUnreachable(groupID, peer uint64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	g, ok := s.groups[groupID]
	if !ok || slices.Contains(g.unreachable, peer) {
		return
	}
	g.unreachable = append(g.unreachable, peer)
	g.wakeLocked()
	s.enqueueLocked(g)
}

// ReportGone tells every group that the processes of the replicas for
// which gone is true have ended (their node's connection closed and a
// dial was refused): a follower of such a leader forgets it and the
// lowest surviving voter campaigns at once (Replica.LeaderGone), instead
// of waiting for the election timeout. A quiesced group whose leader is
// not gone stays quiesced. gone is called on the workers and under the
// scheduler's lock: it must not call the scheduler.
func (s *Scheduler) ReportGone(gone func(replicaID uint64) bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, g := range s.groups {
		if g.quiesced {
			if g.quiescedAs.state == raft.StateLeader || !gone(g.quiescedAs.lead) {
				continue
			}
			g.wakeLocked()
		}
		g.gone = gone
		s.enqueueLocked(g)
	}
}

// Do runs f on the group's replica on a worker (Propose, Campaign,
// ProposeConfChange, ReadIndex...) and returns once it ran; the work f
// makes is handled right after it.
//
// On a Stepped scheduler f runs at the next Step, or at once when the
// caller is the goroutine that steps, between Steps (it would wait for
// itself); before the first Step no goroutine is known to step, and the
// call waits for one.
func (s *Scheduler) Do(groupID uint64, f func(r *Replica)) error {
	done := make(chan error, 1)
	g, err := s.lockQueue(groupID, func(g *group) int { return len(g.ops) }, true)
	if err != nil {
		return err
	}
	g.ops = append(g.ops, op{f: f, done: done})
	if s.cfg.Stepped && s.stepper != 0 && goroutineID() == s.stepper {
		s.stepGroupLocked(g)
	} else {
		s.enqueueLocked(g)
	}
	s.mu.Unlock()
	return <-done
}

// lockQueue locks s.mu and returns the group a caller may queue work for,
// or unlocks it and says why not: the scheduler closed, the caller is a
// worker (it would wait for itself), no such group, or queued (the
// length of the queue the work goes to) at OpsQueuedMax. On a Stepped
// scheduler the stepping goroutine is a worker during a Step, and between
// Steps too unless the work runs inline (Do's).
func (s *Scheduler) lockQueue(groupID uint64, queued func(*group) int, inline bool) (*group, error) {
	var gid uint64 // no goroutine has id 0
	if s.inRun.Load() > 0 || s.cfg.Stepped {
		gid = goroutineID()
	}
	s.mu.Lock()
	g, ok := s.groups[groupID]
	var err error
	switch {
	case s.closed:
		err = ErrClosed
	case s.workerGoroutines[gid], s.cfg.Stepped && gid == s.stepper && !inline:
		err = ErrReentrant
	case !ok:
		err = ErrUnknownGroup
	case queued(g) >= s.cfg.OpsQueuedMax:
		err = ErrBusy
	}
	if err != nil {
		s.mu.Unlock()
		return nil, err
	}
	return g, nil
}

// Tick gives every group one tick. The ticker calls it every TickInterval.
func (s *Scheduler) Tick() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.tickLocked()
}

func (s *Scheduler) tickLocked() {
	s.ticks++
	alive := s.aliveMemo()
	for _, g := range s.groups {
		if g.quiesced && s.stayQuiesced(g, alive) {
			continue
		}
		g.ticks = min(g.ticks+1, maxTicksQueued)
		s.enqueueLocked(g)
	}
}

// Ticks returns how many ticks the scheduler has given its groups.
func (s *Scheduler) Ticks() uint64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.ticks
}

// Close stops every goroutine and fails the calls still queued.
func (s *Scheduler) Close() {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return
	}
	s.closed = true
	for _, g := range s.groups {
		for _, o := range g.ops {
			o.done <- ErrClosed
		}
		g.ops = nil
		g.failReadsLocked(ErrClosed)
	}
	s.work.Broadcast()
	s.syncWork.Broadcast()
	s.settled.Broadcast()
	for s.stepping { // it stops after the turn or sync it runs
		s.settled.Wait()
	}
	s.mu.Unlock()
	close(s.stopTicker)
	s.wg.Wait()
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, g := range s.groups {
		g.failReadsLocked(ErrClosed) // rounds of groups that were running
	}
}

func (s *Scheduler) enqueueLocked(g *group) {
	if g.queued || g.running || g.removed {
		return // a running group is requeued when its worker finds more
	}
	g.queued = true
	s.runnable = append(s.runnable, g)
	s.work.Signal()
}

func (s *Scheduler) ticker() {
	t := s.e.Clock.NewTimer(s.cfg.TickInterval)
	defer t.Stop()
	next := s.e.Clock.Now().Add(s.cfg.TickInterval)
	for {
		select {
		case <-s.stopTicker:
			return
		case <-t.C():
			s.Tick()
			next = nextTick(next, s.e.Clock.Now(), s.cfg.TickInterval)
			t.ResetAt(next)
		}
	}
}

// nextTick is when the tick after the one due at prev fires: one interval
// later, so ticks keep their rate whatever a Tick cost, unless that has
// passed already (the process stalled): then one interval from now, as
// ticks fired back to back would expire every election and CheckQuorum
// timer at once.
func nextTick(prev, now time.Time, interval time.Duration) time.Time {
	if next := prev.Add(interval); next.After(now) {
		return next
	}
	return now.Add(interval)
}

func (s *Scheduler) worker() {
	s.mu.Lock()
	s.workerGoroutines[goroutineID()] = true
	s.mu.Unlock()
	for {
		s.mu.Lock()
		for len(s.runnable) == 0 && !s.closed {
			s.work.Wait()
		}
		if s.closed {
			s.mu.Unlock()
			return
		}
		g := s.runnable[0]
		s.runnable = s.runnable[1:]
		s.runTurnLocked(g)
		s.mu.Unlock()
	}
}

// runTurnLocked gives queued group g one turn (run) and requeues it when
// events came meanwhile. Callers hold mu, which it releases during run.
func (s *Scheduler) runTurnLocked(g *group) {
	g.queued, g.running = false, true
	ev := takeEvents(g)
	s.mu.Unlock()

	s.inRun.Add(1)
	wantSync, q := s.run(g, ev)
	s.inRun.Add(-1)

	s.mu.Lock()
	g.running = false
	if wantSync > g.wantSync {
		g.wantSync = wantSync
		s.requestSyncLocked(g)
	}
	if g.wakes == ev.wakes { // else woken during the run: not quiesced
		s.setQuiescedLocked(g, q)
	}
	if g.hasEventsLocked() {
		s.enqueueLocked(g)
	}
	s.settled.Broadcast()
}

// Step, on a Stepped scheduler, gives the ticks due by the env's clock,
// then one turn to every group with events, in group-id order, then (with
// StepSyncs) runs the syncs those turns asked for, in group-id order, all
// on the caller's goroutine. It reports whether any group ran or synced:
// work a turn made (a sync's release, a message to itself) waits for the
// next Step. Do and RemoveGroup called from a group's turn answer
// ErrReentrant, as on a worker.
func (s *Scheduler) Step() bool {
	gid := goroutineID()
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed || !s.cfg.Stepped {
		return false
	}
	s.stepper = gid
	defer s.enterStepLocked()()
	for now := s.e.Clock.Now(); !now.Before(s.nextTick); s.nextTick = nextTick(s.nextTick, now, s.cfg.TickInterval) {
		s.tickLocked()
	}
	runnable := s.runnable
	s.runnable = nil
	slices.SortFunc(runnable, func(a, b *group) int { return cmp.Compare(a.id, b.id) })
	for _, g := range runnable {
		if s.closed {
			return true
		}
		if !g.removed { // a turn before it may have removed it
			s.runTurnLocked(g)
		}
	}
	return s.syncTurnsLocked() || len(runnable) > 0
}

// stepGroupLocked is Step for group g alone, for a call from the
// stepping goroutine between Steps. Callers hold mu.
func (s *Scheduler) stepGroupLocked(g *group) {
	defer s.enterStepLocked()()
	if g.queued {
		s.runnable = slices.DeleteFunc(s.runnable, func(q *group) bool { return q == g })
	}
	s.runTurnLocked(g)
	s.syncTurnsLocked()
}

// enterStepLocked marks the stepping goroutine running groups, a worker
// for the reentrancy checks and a step Close waits for, until the
// function it returns is called. Callers hold mu.
func (s *Scheduler) enterStepLocked() (leave func()) {
	s.workerGoroutines[s.stepper], s.stepping = true, true
	return func() {
		delete(s.workerGoroutines, s.stepper)
		s.stepping = false
		s.settled.Broadcast() // a Close waits for it
	}
}

// syncTurnsLocked runs the syncs asked for, in group-id order, on the
// caller's goroutine (StepSyncs), and reports whether it ran any. Callers
// hold mu, which it releases during each sync.
func (s *Scheduler) syncTurnsLocked() bool {
	if !s.cfg.StepSyncs {
		return false
	}
	toSync := s.toSync
	s.toSync = nil
	slices.SortFunc(toSync, func(a, b *group) int { return cmp.Compare(a.id, b.id) })
	for _, g := range toSync {
		if s.closed {
			g.syncing = false
			continue
		}
		if g.removed { // by a call while an earlier sync ran
			g.syncing = false
			s.settled.Broadcast()
			continue
		}
		s.syncTurnLocked(g)
	}
	return len(toSync) > 0
}

// events are what a worker takes from a group in one turn.
type events struct {
	inbox       []*raftpb.Message
	unreachable []uint64
	gone        func(replicaID uint64) bool
	ops         []op
	reads       []readWaiter
	ticks       int
	syncedSeq   uint64
	syncErr     error
	// quiesced, watch and quiescedAs are the group's when taken;
	// wakes its count of waking events then.
	quiesced   bool
	watch      []uint64
	quiescedAs role
	wakes      uint64
}

func takeEvents(g *group) events {
	ev := events{inbox: g.inbox, unreachable: g.unreachable, gone: g.gone, ops: g.ops, ticks: g.ticks, syncedSeq: g.syncedSeq, syncErr: g.syncErr,
		quiesced: g.quiesced, watch: g.watch, quiescedAs: g.quiescedAs, wakes: g.wakes}
	g.inbox, g.unreachable, g.gone, g.ops, g.ticks, g.syncedSeq, g.syncErr = nil, nil, nil, nil, 0, 0, nil
	if g.round == nil { // else they wait for the next round
		ev.reads, g.reads = g.reads, nil
	}
	return ev
}

func (g *group) hasEventsLocked() bool {
	return !g.removed && (len(g.inbox) > 0 || len(g.unreachable) > 0 || g.gone != nil || len(g.ops) > 0 || g.ticks > 0 || g.syncedSeq > 0 || g.syncErr != nil ||
		len(g.reads) > 0 && g.round == nil)
}

// run is one turn of a group on a worker: ticks, messages, unreachable
// peers, a completed sync, calls, reads, then the Ready they made, then
// the read round's end. It returns the sync to ask for, and whether the
// group may quiesce.
func (s *Scheduler) run(g *group, ev events) (uint64, quiescence) {
	r := g.r
	if ev.syncErr != nil {
		r.SyncFailed(ev.syncErr)
	}
	for range ev.ticks {
		r.Tick()
	}
	for _, m := range ev.inbox {
		// A message raft refuses (a peer it does not know) is one a real
		// network could have lost: nothing to do.
		_ = r.Step(m)
	}
	for _, peer := range ev.unreachable {
		r.ReportUnreachable(peer)
	}
	if ev.gone != nil {
		r.LeaderGone(ev.gone)
	}
	if ev.syncedSeq > 0 {
		if out, err := r.Synced(ev.syncedSeq); err == nil && len(out) > 0 {
			s.send.Send(g.id, out)
		}
	}
	for _, o := range ev.ops {
		o.f(r)
		o.done <- nil
	}
	if g.round != nil {
		g.round.ticks += ev.ticks
	} else {
		s.startRead(g, ev.reads)
	}
	var wantSync uint64
	var states []raft.ReadState
	for r.HasReady() {
		w, err := r.HandleReady()
		if err != nil {
			s.e.Logger.Error("replica failed", "group", g.id, "replica", r.ID(), "err", err)
			break
		}
		if len(w.Messages) > 0 {
			s.send.Send(g.id, w.Messages)
			r.SnapshotsSent(w.Messages)
		}
		if g.opts.OnReadState != nil {
			for _, rs := range w.ReadStates {
				g.opts.OnReadState(rs)
			}
		}
		states = append(states, w.ReadStates...)
		wantSync = max(wantSync, w.SyncSeq)
	}
	s.settleRead(g, states)
	return wantSync, s.quiesceAfterRun(g, ev)
}

func (s *Scheduler) requestSyncLocked(g *group) {
	if g.syncing || g.removed {
		return // the running sync's worker asks again when it ends
	}
	g.syncing = true
	s.toSync = append(s.toSync, g)
	s.syncWork.Signal()
}

// syncer is a flusher shared by all groups: it syncs a group's storage,
// covering every write made before the Sync started, then queues the group
// to release the responses held behind it.
func (s *Scheduler) syncer() {
	for {
		s.mu.Lock()
		for len(s.toSync) == 0 && !s.closed {
			s.syncWork.Wait()
		}
		if s.closed {
			s.mu.Unlock()
			return
		}
		g := s.toSync[0]
		s.toSync = s.toSync[1:]
		s.syncTurnLocked(g)
		s.mu.Unlock()
	}
}

// syncTurnLocked syncs group g's storage, taken off toSync, and queues
// the group to release what waited for it. Callers hold mu, which it
// releases during the sync.
func (s *Scheduler) syncTurnLocked(g *group) {
	seq := g.wantSync // written before this Sync starts
	s.mu.Unlock()

	err := g.storage.Sync()

	s.mu.Lock()
	g.syncing = false
	if err != nil {
		g.syncErr = err // final: the replica stops when it runs next
	} else {
		g.syncedSeq = max(g.syncedSeq, seq)
		if g.wantSync > seq {
			s.requestSyncLocked(g)
		}
	}
	s.enqueueLocked(g)
	s.settled.Broadcast()
}

// waitIdle waits until no group is queued, running or syncing, and
// reports false when the scheduler closed first. Tests use it to step a
// node to a quiet point without sleeping.
func (s *Scheduler) waitIdle() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	for !s.closed && !s.idleLocked() {
		s.settled.Wait()
	}
	return !s.closed
}

func (s *Scheduler) idleLocked() bool {
	if len(s.runnable) > 0 || len(s.toSync) > 0 {
		return false
	}
	for _, g := range s.groups {
		if g.running || g.syncing {
			return false
		}
	}
	return true
}
