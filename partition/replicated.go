package partition

import (
	"context"
	"errors"
	"fmt"
	"time"

	"go.etcd.io/raft/v3/raftpb"

	"github.com/cairnlog/cairn/batch"
	"github.com/cairnlog/cairn/env"
	"github.com/cairnlog/cairn/raftlog"
	"github.com/cairnlog/cairn/replica"
	"github.com/cairnlog/cairn/streams"
)

// Proposer runs f on the goroutine that drives the partition's replica
// (replica.Scheduler.Do on a node, sim.Cluster.Do in the simulator) and
// returns f's error. Appends and DeleteRecords of a replicated partition
// reach the replica only through it.
type Proposer func(f func(r *replica.Replica) error) error

// ReplicaConfig is what a replicated partition needs beyond its topic's
// config.
type ReplicaConfig struct {
	// Propose reaches the partition's replica.
	Propose Proposer
	// ReadIndex confirms the replica's leadership for Linearize; without it
	// Linearize answers ErrNoReadIndex.
	ReadIndex ReadIndexer
	// Bootstrap creates the group's Raft log when the directory has none
	// (a new replica): group and replica id, the initial snapshot's index,
	// term and voters.
	Bootstrap raftlog.Bootstrap
	// ConfState reads the replica's configuration as of what it applied
	// (replica.Replica.ConfState), on the replica's goroutine: the Raft log
	// records it with the applied index after a configuration change.
	ConfState func() *raftpb.ConfState
	// DiskFull, when set, is called on the replica's goroutine when a
	// write of the Raft log failed for lack of space and so stopped the
	// replica: the caller recreates it, off that goroutine and after a
	// backoff, from RestartPoint (replicadiskfull.go). Without it the
	// replica stays stopped until the process restarts.
	DiskFull func()
	// Damaged, when set, is called once when a read found the stored log
	// damaged and took the partition offline (classifyReadError), on the
	// reading goroutine: the owner stops the replica and has it replaced.
	// It must not wait on the partition.
	Damaged func(error)
	// CopiesSnapshots: the owner copies the data below a snapshot into the
	// replica's staging directory (OpenSnapshotCopy) before raft sees the
	// snapshot, as a cluster's snapshot fetcher does. A snapshot that
	// would install without that copy is then refused, nothing written,
	// rather than restart the log empty at the snapshot's next offset,
	// past records its group acknowledged (raftlog.Log.RequireStagedData):
	// the replica stops, and Restart is called (without it, Damaged).
	CopiesSnapshots bool
	// Restart, when set, is called on the replica's goroutine when the
	// replica stopped on a snapshot it refused (CopiesSnapshots) with its
	// Raft log unchanged: the caller recreates the replica from that log
	// (RestartPoint), off that goroutine, as after a full disk.
	Restart func()
}

// replicated is the state of a partition that is a replica's state
// machine. Every field but propose is changed only on the replica's
// goroutine (PrepareProposal, Apply, LeadershipChanged, and the functions
// appends and DeleteRecords hand to the proposer), always under
// Partition.mu, under which LocalSynced (on a sync worker) and an append
// waiting for its streams' turn read it.
type replicated struct {
	propose   Proposer
	readIndex ReadIndexer
	boot      raftlog.Bootstrap
	confState func() *raftpb.ConfState
	diskFull  func()
	damaged   func(error)
	// copiesSnapshots and restart are ReplicaConfig's.
	copiesSnapshots bool
	restart         func()

	leadership replica.Leadership
	// next is the offset the next proposal gets; valid while ready.
	next int64
	// pending are the data batches proposed in this term and not applied
	// yet, in index order; overlay is the applied producer state with
	// them recorded, what a new batch is checked against.
	pending []pendingBatch
	overlay *producerState
	// validated is the config the batch being proposed was validated
	// against (and its records, for stream topics); PrepareProposal
	// validates it again under another. appended is what the stream checks
	// of the batch just stamped gave.
	validated     Config
	validatedRecs []batch.Record
	appended      []streams.Appended
	// proposingData: a data batch is being proposed (proposeBatch), which
	// PrepareProposal must stamp, never pass as a command. stamped is where
	// PrepareProposal stamped it (zero: not stamped), the only pending
	// batch a drop by raft may undo.
	proposingData bool
	stamped       replica.ProposalPoint
	// pendingStreams counts the pending batches touching each stream. A
	// stream's checks read the index, which takes a batch only when it is
	// applied, so a batch touching a pending stream waits (errStreamPending).
	pendingStreams map[string]int
	// confChanged: a configuration change was applied whose ConfState the
	// Raft log has not recorded yet (see recordApplied). deferredStart is
	// the log start an applied DeleteRecords asked for meanwhile (0: none),
	// which waits for the applied index to be recorded past the data it
	// removes (applyDeferredStart).
	confChanged   bool
	deferredStart int64
	// confIndex is the index of the last configuration change applied, and
	// confAt the ConfState each change made, by index, when known (read
	// at the next Apply, or from raft-state at open): what a compaction
	// of the Raft log past a change records (compactionConf).
	confIndex uint64
	confAt    map[uint64]*raftpb.ConfState
}

// pendingBatch is one proposed data batch, as stamped.
type pendingBatch struct {
	at      replica.ProposalPoint
	header  batch.Header
	kind    marker // what a control batch ends
	streams []string
}

// pendingProducers is the producers of the batches proposed and not yet
// applied. Under the partition's mu.
func (r *replicated) pendingProducers() map[int64]bool {
	ids := make(map[int64]bool, len(r.pending))
	for _, b := range r.pending {
		ids[b.header.ProducerID] = true
	}
	return ids
}

// errStreamPending: a batch touches a stream that a pending batch touches;
// the append waits until that one is applied, then proposes again.
var errStreamPending = errors.New("a batch to the same stream is pending")

// Partition commands: an entry whose data starts with a byte >= 0x80
// (design §1.5; a batch's first byte, of its base offset, is at most 0x7F).
const (
	commandDeleteRecords = 0x81
	deleteRecordsBytes   = 9 // kind, offset i64
)

// OpenReplica opens the partition stored in dir as the state machine of a
// Raft group: appends and DeleteRecords become proposals through
// rc.Propose, and the group's applied entries move the log, producer state
// and high watermark on every replica. No leader epoch starts at open: the
// epoch is the term of the leader that stamped each batch.
//
// The group's Raft log is the partition's directory (raftlog): opened, or
// created from rc.Bootstrap when there is none, its segments holding each
// data entry once, as the batch the leader stamped; RaftStorage gives it to
// the replica. Producer state and the stream index are caught up at open
// to raft-state's applied index, whose offset is the high watermark; raft
// delivers the entries after it again.
//
// On a stream topic a batch is checked against the stream index, which
// takes a batch when it is applied; so appends to one stream take turns:
// a batch touching a stream a pending batch touches waits until that one
// is applied. Such topics take one batch per produce.
func OpenReplica(e env.Env, dir, topic string, index int32, cfg Config, rc ReplicaConfig) (*Partition, error) {
	if rc.Propose == nil || rc.ConfState == nil {
		return nil, fmt.Errorf("partition %s-%d: a replicated partition needs a proposer and the replica's ConfState", topic, index)
	}
	return openMode(e, dir, topic, index, cfg, &replicated{propose: rc.Propose, readIndex: rc.ReadIndex, boot: rc.Bootstrap, confState: rc.ConfState, diskFull: rc.DiskFull, damaged: rc.Damaged,
		copiesSnapshots: rc.CopiesSnapshots, restart: rc.Restart, confAt: map[uint64]*raftpb.ConfState{}})
}

// RaftStorage is the group's Raft log as the replica persists through it
// (replica.New, Scheduler.AddGroup): the partition's own log, each Sync
// reporting what it made durable (LocalSynced), each snapshot install
// preceded by the producer state it carries (snapshotInstaller).
func (p *Partition) RaftStorage() replica.Storage {
	st := p.LocalSyncer(p.raft.Storage(func() int64 { return p.clock.Now().UnixMilli() }))
	return &snapshotInstaller{Storage: st, p: p}
}

// RaftApplied is the applied index the Raft log recorded, the replica's
// Config.Applied: raft delivers the entries after it again.
func (p *Partition) RaftApplied() (uint64, error) {
	hs, _, err := p.raft.InitialState()
	if err != nil {
		return 0, err
	}
	return hs.GetCommit(), nil
}

// Replicated reports whether the partition is a replica's state machine.
func (p *Partition) Replicated() bool { return p.repl != nil }

// LogLost implements replica.LogLoser: the replica stopped because the
// Raft log, which is this partition's log, lost records it had
// acknowledged, so the partition goes offline (ErrStorageFailed) rather
// than serve what is left as if whole.
func (p *Partition) LogLost(err error) { p.fail(err) }

var _ replica.LogLoser = (*Partition)(nil)

// LeadershipChanged implements replica.StateMachine. A replica that stops
// being the ready leader of a term drops what it had pending: those
// proposals either commit under the next leader or are lost. Their
// waiters not answered yet get ErrNotLeader at once, either way (Kafka's
// NOT_LEADER_OR_FOLLOWER): the producer's retry is answered from producer
// state as a duplicate if the batch committed.
func (p *Partition) LeadershipChanged(l replica.Leadership) {
	p.mu.Lock()
	r := p.repl
	was := r.leadership
	r.leadership = l
	if l.Ready && (!was.Ready || was.Term != l.Term) {
		r.next = p.log.NextOffset()
		r.overlay, r.pending = p.producers.clone(), nil
	}
	if !l.Ready {
		r.overlay, r.pending = nil, nil
	}
	if r.pending == nil {
		clear(r.pendingStreams)
	}
	if !l.Ready || was.Term != l.Term {
		// Another leader may write a producer's marker meanwhile, which
		// this replica applies without ending its verification: a late
		// batch of the ended transaction would pass as verified.
		clear(p.verified)
		p.guardsDropped = p.guards
	}
	p.mu.Unlock()

	p.epochMu.Lock()
	p.term = l.Term
	p.epochMu.Unlock()

	p.stateMu.Lock()
	defer p.stateMu.Unlock()
	p.servingTerm = 0
	if l.Ready {
		p.servingTerm = l.Term
	}
	p.groupRunsLocked(l)
	// What the syncs of another term made durable says nothing of this
	// term's batches, which may reuse its offsets.
	p.localDurable = termEnd{term: p.servingTerm}
	p.wakeLocked()
}

// termEnd is the end of what a leader's own log holds durably of the
// batches it proposed in term: it counts only for waiters of that term.
type termEnd struct {
	term uint64
	end  int64
}

// duplicateError refuses to propose a retry of a batch already applied or
// pending; the append answers with the original's offsets and term, the
// term it was applied in or, pending, this leader's: a pending original may
// still be lost with the term, so the retry's waiter waits for it to commit
// (WaitCommitted) as the original's does.
type duplicateError struct {
	batch appendedBatch
	term  uint64
}

func (d *duplicateError) Error() string {
	return fmt.Sprintf("duplicate of the batch at offset %d", d.batch.BaseOffset)
}

// PrepareProposal implements replica.StateMachine: a data batch is checked
// against producer state as applied and pending, then stamped with the next
// offset, the term as leader epoch and, if the topic says so, the append
// time. Commands pass as they are.
func (p *Partition) PrepareProposal(prop *replica.Proposal, at replica.ProposalPoint) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return fmt.Errorf("%w: %s-%d", ErrClosed, p.topic, p.index)
	}
	if err := p.Err(); err != nil {
		return err // offline partitions take no writes, in either mode
	}
	r := p.repl
	if !r.leadership.Ready || r.leadership.Term != at.Term {
		return fmt.Errorf("%w: %s-%d: term %d", ErrNotLeader, p.topic, p.index, at.Term)
	}
	if len(prop.Data) == 0 || prop.Data[0] >= 0x80 {
		if r.proposingData {
			return fmt.Errorf("%w: %s-%d: a data batch that reads as a partition command", ErrInvalidRecord, p.topic, p.index)
		}
		return nil
	}
	if at.Term > maxEpoch {
		return fmt.Errorf("%w: %s-%d: term %d past the largest leader epoch", ErrNotLeader, p.topic, p.index, at.Term)
	}
	recs := r.validatedRecs
	if p.cfg != r.validated {
		// Control batches reach a proposal only from WriteMarker.
		_, all, err := validateBatches(prop.Data, p.cfg, true)
		if err != nil {
			return err
		}
		recs = nil
		if len(all) > 0 {
			recs = all[0]
		}
	}
	h, err := batch.ParseHeader(prop.Data)
	if err != nil {
		return fmt.Errorf("%w: %v", ErrInvalidRecord, err)
	}
	kind, err := markerOf(h, prop.Data, p.cfg.Limits)
	if err != nil {
		return fmt.Errorf("%w: %v", ErrInvalidRecord, err)
	}
	dup, err := r.overlay.check(h, kind, p.verifiedLocked(h))
	if err != nil {
		return err
	}
	if dup != nil {
		return &duplicateError{batch: *dup, term: p.originalTerm(*dup, at.Term)}
	}
	touched, err := p.checkPendingStreams(h, recs, at.Term)
	if err != nil {
		return err
	}
	nowMs := p.clock.Now().UnixMilli()
	batch.SetBaseOffset(prop.Data, r.next)
	batch.SetPartitionLeaderEpoch(prop.Data, int32(at.Term))
	if p.cfg.LogAppendTime {
		batch.SetLogAppendTime(prop.Data, nowMs)
	}
	h.BaseOffset = r.next
	r.next = h.NextOffset()
	r.overlay.recordBatch(h, kind, nowMs)
	r.pending = append(r.pending, pendingBatch{at: at, header: h, kind: kind, streams: touched})
	r.notePendingStreams(touched, 1)
	r.stamped = at
	return nil
}

// originalTerm is the term of the batch a retry duplicates: the leader
// epoch it was applied with, or, above the high watermark, term, the
// leader's own (pending batches are of the serving term: a new term starts
// with none). Callers hold mu.
func (p *Partition) originalTerm(orig appendedBatch, term uint64) uint64 {
	if orig.LastOffset < p.HighWatermark() {
		return uint64(p.epochAt(orig.LastOffset))
	}
	return term
}

// checkPendingStreams runs the stream checks of a batch about to be
// stamped at the next proposal offset in term, and returns the streams it
// touches. A retry is answered with its original's term (originalTerm), so
// that it is waited for as the original is. Callers hold mu.
func (p *Partition) checkPendingStreams(h batch.Header, recs []batch.Record, term uint64) ([]string, error) {
	r := p.repl
	r.appended = nil
	if !p.cfg.Streams {
		return nil, nil
	}
	if p.build != nil && carriesStreamHeaders([][]batch.Record{recs}) {
		return nil, fmt.Errorf("%w: %s-%d", ErrStreamIndexBuilding, p.topic, p.index)
	}
	if h.Control() {
		// Nothing touching what the marker ends goes ahead of it (see
		// markerStreams); it carries no stream records to check.
		return p.markerStreams(h.ProducerID), nil
	}
	touched := streamsOf(recs)
	if h.Transactional() && r.markerPending(h.ProducerID) {
		// The held table still has the producer's previous transaction.
		return nil, errStreamPending
	}
	for _, s := range touched {
		if r.pendingStreams[s] > 0 {
			return nil, errStreamPending
		}
	}
	change, dup, err := p.checkStreams([]batch.Header{h}, [][]batch.Record{recs}, r.next)
	if err != nil {
		return nil, err
	}
	if dup != nil {
		res := dup.result
		res.Term = int32(p.originalTerm(appendedBatch{BaseOffset: res.BaseOffset, LastOffset: res.LastOffset}, term))
		return nil, &streamDuplicateError{result: res}
	}
	if change != nil {
		r.appended = change.Appended()
	}
	return touched, nil
}

// streamsOf lists the streams records touch: every keyed record of a
// stream topic is an event or an operation of the stream its key names.
func streamsOf(recs []batch.Record) []string {
	var out []string
	seen := map[string]bool{}
	for _, rec := range recs {
		if rec.Key != nil && !seen[string(rec.Key)] {
			seen[string(rec.Key)] = true
			out = append(out, string(rec.Key))
		}
	}
	return out
}

// markerStreams lists the streams a marker of producerID ends the hold
// of: those its transaction holds as applied and those its pending batches
// touch. Counted as the marker's streams until it is applied, they make
// other writes to them wait for it rather than be refused as busy.
// Callers hold mu.
func (p *Partition) markerStreams(producerID int64) []string {
	var out []string
	if p.streamTxns != nil {
		out = p.streamTxns.StreamsOf(producerID)
	}
	for _, b := range p.repl.pending {
		if b.kind.kind == markerNone && b.header.Transactional() && b.header.ProducerID == producerID {
			out = append(out, b.streams...)
		}
	}
	return out
}

// markerPending reports whether a marker of producerID is pending: its
// next transaction's batches wait until it is applied, as the held table
// would otherwise take them for the one the marker ends.
func (r *replicated) markerPending(producerID int64) bool {
	for _, b := range r.pending {
		if b.kind.kind != markerNone && b.header.ProducerID == producerID {
			return true
		}
	}
	return false
}

func (r *replicated) notePendingStreams(names []string, delta int) {
	if len(names) == 0 {
		return
	}
	if r.pendingStreams == nil {
		r.pendingStreams = map[string]int{}
	}
	for _, s := range names {
		if r.pendingStreams[s] += delta; r.pendingStreams[s] <= 0 {
			delete(r.pendingStreams, s)
		}
	}
}

// streamsPending reports whether a pending batch touches one of names,
// or, for producer (-1: none), a marker of producer is pending.
func (p *Partition) streamsPending(names []string, producer int64) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if producer >= 0 && p.repl.markerPending(producer) {
		return true
	}
	for _, s := range names {
		if p.repl.pendingStreams[s] > 0 {
			return true
		}
	}
	return false
}

// streamDuplicateError refuses to propose an event-store append whose
// events are all in the stream already; the append answers with them.
type streamDuplicateError struct{ result AppendResult }

func (d *streamDuplicateError) Error() string { return "a retry of events already appended" }

// maxEpoch is the largest term a Kafka leader epoch (int32) can carry.
const maxEpoch = 1<<31 - 1

// undoLastProposal rolls back the batch PrepareProposal just stamped at
// `at`, which raft then dropped: its offsets go to the next proposal. Only
// the last pending batch, and only if it is the one stamped at `at`: a
// proposal not stamped (zero at) undoes nothing.
func (p *Partition) undoLastProposal(at replica.ProposalPoint) {
	p.mu.Lock()
	defer p.mu.Unlock()
	r := p.repl
	if len(r.pending) == 0 || at.Index == 0 || r.pending[len(r.pending)-1].at != at {
		return
	}
	last := r.pending[len(r.pending)-1]
	r.pending = r.pending[:len(r.pending)-1]
	r.notePendingStreams(last.streams, -1)
	r.next = last.header.BaseOffset
	r.overlay = p.producers.clone()
	nowMs := p.clock.Now().UnixMilli()
	for _, b := range r.pending {
		r.overlay.recordBatch(b.header, b.kind, nowMs)
	}
}

// TermReader answers the term of a Raft log's entry (raft.Storage.Term);
// it must be safe beside the replica's writes, as replica.MemStorage is.
type TermReader interface {
	Term(i uint64) (uint64, error)
}

// LocalSynced tells a leader that its own log, read through log, is durable
// up to Raft index index (a Sync that began after index was written
// returned): the batches it proposed up to there, still at their index with
// their term, are what WaitLocalDurable (acks=1) waits for. A batch whose
// index another term's entry took meanwhile is not counted. Safe from any
// goroutine; LocalSyncer calls it after each Sync. Only the serving
// term's batches count: a report that comes late, after the term changed,
// is dropped.
func (p *Partition) LocalSynced(log TermReader, index uint64) {
	p.mu.Lock()
	term := p.repl.leadership.Term
	var candidates []pendingBatch
	for _, b := range p.repl.pending {
		if b.at.Index <= index {
			candidates = append(candidates, b)
		}
	}
	p.mu.Unlock()
	end := int64(-1)
	for _, b := range candidates {
		if got, err := log.Term(b.at.Index); err != nil || got != b.at.Term || b.at.Term != term {
			break
		}
		end = b.header.NextOffset()
	}
	p.stateMu.Lock()
	defer p.stateMu.Unlock()
	if term == p.localDurable.term && term == p.servingTerm && end > p.localDurable.end {
		p.localDurable.end = end
		p.wakeLocked()
	}
}

// LocalSyncer wraps the replica's storage so that each completed Sync
// reports to the partition what its own log holds durably (LocalSynced):
// give the wrapper to replica.New and the Scheduler in place of st.
func (p *Partition) LocalSyncer(st replica.Storage) replica.Storage {
	return &localSyncer{Storage: st, p: p}
}

type localSyncer struct {
	replica.Storage
	p *Partition
}

// Sync syncs and then reports the last index written before it began. A
// failed sync takes the partition offline for good (ErrStorageFailed), as
// the single writer's does, before the replica stops on it: its waiters
// and front ends see the storage failure, not a lost leadership.
func (s *localSyncer) Sync() error {
	last, err := s.Storage.LastIndex()
	if err != nil {
		return err
	}
	if err := s.Storage.Sync(); err != nil {
		s.p.fail(fmt.Errorf("sync the raft log: %w", err))
		return err
	}
	s.p.LocalSynced(s.Storage, last)
	return nil
}

// appendReplicated proposes validated batches, one entry each and in one
// turn of the replica's goroutine, so they are consecutive. A batch refused
// after an earlier one of the same produce was proposed leaves that one
// proposed: the caller gets the error, and an idempotent retry is answered
// from producer state. recs are the batches' records (stream topics only).
func (p *Partition) appendReplicated(records []byte, headers []batch.Header, recs [][]batch.Record, cfg Config, term int32) (AppendResult, error) {
	if cfg.Streams && len(headers) > 1 {
		return AppendResult{}, fmt.Errorf("%w: a replicated stream topic takes one batch per produce", ErrInvalidRecord)
	}
	var touched []string
	producer := int64(-1)
	if cfg.Streams && !headers[0].Control() && len(recs) > 0 {
		touched = streamsOf(recs[0])
		producer = txnHolder(headers)
	}
	// Append has no caller's context: the waits for a turn are bounded, as
	// a batch ahead may never commit (an isolated leader keeps it pending).
	ctx, cancel := env.WithTimeout(context.Background(), p.clock, streamTurnTimeout)
	defer cancel()
	for range streamTurnsMax {
		res, err := p.proposeBatches(records, headers, recs, cfg, term)
		if !errors.Is(err, errStreamPending) {
			return res, err
		}
		// Wait, off the replica's goroutine, for the pending batch to the
		// same stream to be applied (or dropped with the term).
		if p.waitingTurn != nil {
			p.waitingTurn()
		}
		if err := p.waitTurn(ctx, touched, producer); err != nil {
			return AppendResult{}, err
		}
	}
	return AppendResult{}, fmt.Errorf("%w: %s-%d: appends to the same streams kept racing", ErrNotLeader, p.topic, p.index)
}

// waitTurn waits until no pending batch touches the streams named, nor a
// marker of producer (-1: none) is pending, which a leadership change ends
// too (it drops what was pending). A failed or
// closed partition ends it with its error, and ctx's end with the
// retriable ErrNotLeader: the batch ahead did not commit in time.
func (p *Partition) waitTurn(ctx context.Context, names []string, producer int64) error {
	err := p.waitFor(ctx, func() (bool, error) {
		if err := p.Err(); err != nil {
			return true, err
		}
		return !p.streamsPending(names, producer), nil
	})
	if ctx.Err() != nil && errors.Is(err, ctx.Err()) {
		return fmt.Errorf("%w: %s-%d: a batch to the same stream did not commit within %v", ErrNotLeader, p.topic, p.index, streamTurnTimeout)
	}
	return err
}

// streamTurnsMax bounds how often an append waits for its streams' turn,
// and streamTurnTimeout how long it waits in all (Kafka's default request
// timeout).
const (
	streamTurnsMax    = 64
	streamTurnTimeout = 30 * time.Second
)

func (p *Partition) proposeBatches(records []byte, headers []batch.Header, recs [][]batch.Record, cfg Config, term int32) (AppendResult, error) {
	res := AppendResult{BaseOffset: -1, LogAppendTimeMs: -1}
	err := p.repl.propose(func(r *replica.Replica) error {
		// On the replica's goroutine the term cannot change before the
		// proposal is made, and raft proposes in the current term.
		if l := r.Leadership(); term != anyTerm && l.Term != uint64(term) {
			return fmt.Errorf("%w: %s-%d: leading term %d, the append was for term %d", ErrNotLeader, p.topic, p.index, l.Term, term)
		}
		data := records
		for i, h := range headers {
			whole := data[:h.TotalBytes()]
			data = data[h.TotalBytes():]
			var batchRecs []batch.Record
			if i < len(recs) {
				batchRecs = recs[i]
			}
			out, err := p.proposeBatch(r, whole, batchRecs, cfg, len(headers) > 1)
			if err != nil {
				return err
			}
			if out.dup != nil {
				res = *out.dup
				return nil
			}
			if i == 0 {
				res.BaseOffset = out.header.BaseOffset
			}
			res.LastOffset, res.Term = out.header.LastOffset(), out.term
			res.Streams = append(res.Streams, out.appended...)
			if cfg.LogAppendTime {
				res.LogAppendTimeMs = out.header.MaxTimestamp
			}
		}
		return nil
	})
	if err != nil {
		return AppendResult{}, p.whileDiskFull(err)
	}
	res.LogStartOffset = p.log.StartOffset()
	if !res.Duplicate {
		appendedRecords.Add(float64(res.LastOffset + 1 - res.BaseOffset))
		appendedBytes.Add(float64(len(records)))
	}
	return res, nil
}

// proposed is one batch's outcome: stamped and proposed, or the retry of
// an appended one.
type proposed struct {
	header   batch.Header
	term     int32
	appended []streams.Appended
	dup      *AppendResult
}

// proposeBatch proposes one batch on the replica's goroutine.
func (p *Partition) proposeBatch(r *replica.Replica, whole []byte, recs []batch.Record, cfg Config, several bool) (proposed, error) {
	// The client's base offset is ignored, as Kafka does: PrepareProposal
	// stamps the assigned one. Zeroing it first keeps a negative one (first
	// byte >= 0x80) from reading as a partition command.
	batch.SetBaseOffset(whole, 0)
	p.mu.Lock()
	p.repl.validated, p.repl.validatedRecs = cfg, recs
	closed := p.closed
	p.repl.proposingData, p.repl.stamped = !closed, replica.ProposalPoint{}
	p.mu.Unlock()
	if closed {
		return proposed{}, fmt.Errorf("%w: %s-%d", ErrClosed, p.topic, p.index)
	}
	at, err := r.Propose(replica.Proposal{Data: whole})
	p.mu.Lock()
	p.repl.proposingData = false
	stamped := p.repl.stamped
	p.mu.Unlock()
	var dup *duplicateError
	var streamDup *streamDuplicateError
	switch {
	case errors.As(err, &dup), errors.As(err, &streamDup):
		if several {
			return proposed{}, fmt.Errorf("%w: a retried idempotent batch must be sent alone", ErrInvalidRecord)
		}
		if streamDup != nil {
			return proposed{dup: &streamDup.result}, nil
		}
		return proposed{dup: &AppendResult{BaseOffset: dup.batch.BaseOffset, LastOffset: dup.batch.LastOffset, LogAppendTimeMs: -1, Duplicate: true, Term: int32(dup.term)}}, nil
	case errors.Is(err, replica.ErrProposalDropped):
		p.undoLastProposal(stamped)
		return proposed{}, fmt.Errorf("%w: %s-%d: %v", ErrNotLeader, p.topic, p.index, err)
	case errors.Is(err, replica.ErrNotLeader), errors.Is(err, replica.ErrFailed):
		return proposed{}, fmt.Errorf("%w: %s-%d: %v", ErrNotLeader, p.topic, p.index, err)
	case err != nil:
		return proposed{}, err
	}
	h, err := batch.ParseHeader(whole)
	if err != nil {
		return proposed{}, fmt.Errorf("stamped batch: %w", err)
	}
	p.mu.Lock()
	appended := p.repl.appended
	p.mu.Unlock()
	return proposed{header: h, term: int32(at.Term), appended: appended}, nil
}

// WaitCommitted blocks until the batch ending at lastOffset, proposed in
// term, is committed and applied here (acks=all). ErrNotLeader when this
// replica stopped leading term first, though the batch may still commit
// under the next leader (an idempotent retry is then a duplicate), or when
// the offset was committed with another term's batch (ours was truncated
// and the offset reused).
func (p *Partition) WaitCommitted(ctx context.Context, lastOffset int64, term int32) error {
	return p.waitFor(ctx, func() (bool, error) { return p.committed(lastOffset, term) })
}

// WaitLocalDurable blocks until the leader's own log holds the batch ending
// at lastOffset durably (acks=1), or it is committed. A failover can still
// lose such a batch, as in Kafka: a new leader need not have it.
func (p *Partition) WaitLocalDurable(ctx context.Context, lastOffset int64, term int32) error {
	return p.waitFor(ctx, func() (bool, error) { return p.localDurableDone(lastOffset, term) })
}

func (p *Partition) waitFor(ctx context.Context, done func() (bool, error)) error {
	for {
		ch := p.Changed()
		if ok, err := done(); ok {
			return err
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// committed is WaitCommitted's check: (true, nil) committed in term,
// (true, err) never will be, (false, nil) not yet.
func (p *Partition) committed(lastOffset int64, term int32) (bool, error) {
	p.stateMu.Lock()
	hwm, failure, serving := p.hwm, p.failure, p.servingTerm
	p.stateMu.Unlock()
	if failure != nil {
		return true, failure
	}
	if lastOffset < hwm {
		if got := p.epochAt(lastOffset); got != term {
			return true, fmt.Errorf("%w: %s-%d: offset %d was committed in term %d, not %d", ErrNotLeader, p.topic, p.index, lastOffset, got, term)
		}
		return true, nil
	}
	if err := p.fullIn(uint64(term)); err != nil {
		return true, err
	}
	if serving != uint64(term) {
		return true, fmt.Errorf("%w: %s-%d: term %d ended before offset %d committed", ErrNotLeader, p.topic, p.index, term, lastOffset)
	}
	return false, nil
}

func (p *Partition) localDurableDone(lastOffset int64, term int32) (bool, error) {
	p.stateMu.Lock()
	local, serving := p.localDurable, p.servingTerm
	p.stateMu.Unlock()
	if lastOffset < local.end && local.term == uint64(term) && serving == uint64(term) {
		return true, nil
	}
	return p.committed(lastOffset, term)
}

// epochAt is the leader epoch of the applied batch holding offset.
func (p *Partition) epochAt(offset int64) int32 {
	p.epochMu.Lock()
	defer p.epochMu.Unlock()
	return p.epochs.epochAt(offset)
}

// wakeLocked wakes every waiter; callers hold stateMu.
func (p *Partition) wakeLocked() {
	close(p.changed)
	p.changed = make(chan struct{})
}

// SchedulerProposer reaches the replica of group on a node's Scheduler.
func SchedulerProposer(s *replica.Scheduler, group uint64) Proposer {
	return func(f func(r *replica.Replica) error) error {
		var ferr error
		if err := s.Do(group, func(r *replica.Replica) { ferr = f(r) }); err != nil {
			return err
		}
		return ferr
	}
}

// WaitAppended blocks until an append's records are acknowledged as the
// producer asked, in either mode: with all (acks=all, and every internal
// writer) once committed, on a single-writer partition once durable;
// without (acks=1) once durable in the leader's own log, which a failover
// can lose, as in Kafka.
func (p *Partition) WaitAppended(ctx context.Context, res AppendResult, all bool) error {
	switch {
	case p.repl == nil:
		return p.WaitDurable(ctx, res.LastOffset)
	case all:
		return p.WaitCommitted(ctx, res.LastOffset, res.Term)
	default:
		return p.WaitLocalDurable(ctx, res.LastOffset, res.Term)
	}
}
