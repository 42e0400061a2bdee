package replica

import (
	"cmp"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"

	"github.com/cairnlog/cairn/env"
	"go.etcd.io/raft/v3"
	"go.etcd.io/raft/v3/raftpb"
	"google.golang.org/protobuf/proto"
)

// Errors of the proposal path.
var (
	// ErrNotLeader: this replica is not a ready leader (design §3.5); the
	// proposal was not prepared.
	ErrNotLeader = errors.New("replica: not the ready leader")
	// ErrProposalDropped: raft refused the proposal after PrepareProposal
	// stamped it (a leader transfer is under way, or the uncommitted log is
	// full); the proposer undoes what PrepareProposal reserved.
	ErrProposalDropped = fmt.Errorf("replica: %w", raft.ErrProposalDropped)
	// ErrFailed wraps the error that stopped a replica for good.
	ErrFailed = errors.New("replica: failed")
	// ErrLogLost: the leader commits entries this replica acknowledged
	// but its log no longer holds, or its storage cannot give back
	// committed entries to apply (it lost or damaged them); with ErrFailed.
	ErrLogLost = errors.New("replica: log lost acknowledged entries")
)

// maxReadyRounds bounds HandleReady's loop: a round's local responses
// (applied entries) can make another Ready, rarely more than two deep.
const maxReadyRounds = 8

// Replica is one member of a Raft group. It is not safe for concurrent use:
// one goroutine (a worker of the node, or the simulator) calls everything,
// and only the flusher's Storage.Sync runs elsewhere.
type Replica struct {
	id      uint64
	rn      *raft.RawNode
	storage Storage
	sm      StateMachine

	// lastIndex is the index of the last entry in raft's log as the replica
	// last saw it: exact after HandleReady found nothing more to do, and
	// advanced by each accepted proposal (the next one goes after it).
	lastIndex uint64
	applied   uint64
	// confState is the configuration as of applied: what a snapshot or a
	// checkpoint taken there records.
	confState *raftpb.ConfState
	// termStart is the current term's first entry on a leader (index,
	// term); from an earlier term until the Ready carrying it was written.
	termStart  ProposalPoint
	leadership Leadership
	// pendingConf is the index of the last configuration change proposed
	// or written: another waits until it is applied.
	pendingConf uint64

	// writeSeq counts storage writes (MsgStorageAppend handled); held are
	// their responses, in order, waiting for a Sync covering them.
	writeSeq uint64
	held     []heldResponses
	// restores are snapshots written and not yet durable: the state
	// machine takes one only once a Sync covers its write.
	restores []heldRestore

	// strangers counts messages stepped from outside the configuration.
	strangers uint64

	// electionTicks is the group's election timeout in ticks;
	// campaignTicksLeft the ticks a campaign LeaderGone started still
	// repeats its pre-vote (leadergone.go).
	electionTicks     int
	campaignTicksLeft int

	err error
}

type heldRestore struct {
	seq  uint64
	snap *raftpb.Snapshot
}

type heldResponses struct {
	seq  uint64
	msgs []*raftpb.Message
}

// Work is what HandleReady leaves to its caller.
type Work struct {
	// Messages go to other replicas now; ahead of the local sync, which is
	// the point of asynchronous writes.
	Messages []*raftpb.Message
	// SyncSeq, when not 0, asks for a Storage.Sync started after this call;
	// once it completes, Synced(SyncSeq) releases the responses it covers.
	SyncSeq uint64
	// ReadStates answer ReadIndex calls: the read may be served once the
	// replica has applied Index.
	ReadStates []raft.ReadState
}

// New opens a replica over storage; of e it uses only the logger (none:
// slog's default). When the storage's snapshot is past
// cfg.Applied the state machine is restored from it first.
func New(e env.Env, cfg Config, storage Storage, sm StateMachine) (*Replica, error) {
	cfg = cfg.WithDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	snap, err := storage.Snapshot()
	if err != nil {
		return nil, fmt.Errorf("replica %x: read snapshot: %w", cfg.ID, err)
	}
	applied := cfg.Applied
	if idx := snap.GetMetadata().GetIndex(); idx > applied {
		if err := sm.Restore(snap); err != nil {
			return nil, fmt.Errorf("replica %x: restore snapshot at %d: %w", cfg.ID, idx, err)
		}
		applied = idx
	}
	hs, cs, err := storage.InitialState()
	if err != nil {
		return nil, fmt.Errorf("replica %x: initial state: %w", cfg.ID, err)
	}
	last, err := storage.LastIndex()
	if err != nil {
		return nil, fmt.Errorf("replica %x: last index: %w", cfg.ID, err)
	}
	// The snapshot counts as committed, whatever the hard state says.
	if err := checkApplied(applied, max(hs.GetCommit(), snap.GetMetadata().GetIndex()), last); err != nil {
		return nil, fmt.Errorf("replica %x: %w", cfg.ID, err)
	}
	rn, err := raft.NewRawNode(raftConfig(e, cfg, storage, applied))
	if err != nil {
		return nil, fmt.Errorf("replica %x: %w", cfg.ID, err)
	}
	r := &Replica{id: cfg.ID, rn: rn, storage: storage, sm: sm, lastIndex: last, applied: applied, confState: cs,
		electionTicks: cfg.ElectionTick}
	r.notifyLeadership() // the term it restarts in
	return r, nil
}

// checkApplied refuses what raft would panic on: a state machine applied
// past the commit index (it is ahead of its log: the log lost writes the
// state machine had made durable), or a commit index past the log.
func checkApplied(applied, commit, last uint64) error {
	switch {
	case commit > last:
		return fmt.Errorf("commit index %d past the last index %d", commit, last)
	case applied > commit:
		return fmt.Errorf("applied index %d past the commit index %d: the state machine is ahead of its log", applied, commit)
	}
	return nil
}

func raftConfig(e env.Env, cfg Config, storage Storage, applied uint64) *raft.Config {
	return &raft.Config{
		ID:                        cfg.ID,
		ElectionTick:              cfg.ElectionTick,
		HeartbeatTick:             cfg.HeartbeatTick,
		Storage:                   raftStorage{storage},
		Applied:                   applied,
		AsyncStorageWrites:        true,
		MaxSizePerMsg:             cfg.MaxSizePerMsgBytes,
		MaxCommittedSizePerReady:  cfg.MaxCommittedSizePerReadyBytes,
		MaxUncommittedEntriesSize: cfg.MaxUncommittedEntriesSizeBytes,
		MaxInflightMsgs:           cfg.MaxInflightMsgs,
		MaxInflightBytes:          cfg.MaxInflightBytes,
		CheckQuorum:               true,
		PreVote:                   true,
		ReadOnlyOption:            raft.ReadOnlySafe,
		DisableProposalForwarding: true,
		StepDownOnRemoval:         true,
		Logger:                    raftLogger{cmp.Or(e.Logger, slog.Default()).With("group", cfg.GroupID, "replica", cfg.ID)},
	}
}

// ID returns the replica's Raft id.
func (r *Replica) ID() uint64 { return r.id }

// Applied returns the index of the last entry handed to the state machine.
func (r *Replica) Applied() uint64 { return r.applied }

// Leadership returns what the state machine was last told.
func (r *Replica) Leadership() Leadership { return r.leadership }

// ConfState returns the configuration as of the applied index.
func (r *Replica) ConfState() *raftpb.ConfState { return proto.Clone(r.confState).(*raftpb.ConfState) }

// Status returns raft's status, with the followers' progress on a leader.
func (r *Replica) Status() raft.Status { return r.rn.Status() }

// Err returns the error that stopped the replica, or nil.
func (r *Replica) Err() error { return r.err }

// HasReady reports whether HandleReady has work.
func (r *Replica) HasReady() bool { return r.err == nil && r.rn.HasReady() }

// Tick advances raft's logical clock by one tick.
func (r *Replica) Tick() {
	defer func() { r.lost(recover()) }()
	if r.err == nil {
		r.rn.Tick()
		r.retryCampaign()
	}
}

// Step hands a message from another replica to raft. It refuses what no
// peer sends: a message only the replica makes itself (proposals too,
// since followers do not forward them: one stepped into a leader would
// take the index the next Propose is told), one from no replica or from
// itself, and one addressed to another replica.
func (r *Replica) Step(m *raftpb.Message) (err error) {
	defer func() {
		if r.lost(recover()) {
			err = r.err
		}
	}()
	if r.err != nil {
		return r.err
	}
	if err := r.checkFromNetwork(m); err != nil {
		return err
	}
	if !r.isMember(m.GetFrom()) {
		// Counted, not dropped: a replica behind on the log has not applied
		// the change that added a new leader, and must still hear from it.
		r.strangers++
	}
	return r.rn.Step(m)
}

// ErrBadMessage: Step refused a message no peer sends.
var ErrBadMessage = errors.New("replica: message no peer sends")

func (r *Replica) checkFromNetwork(m *raftpb.Message) error {
	switch t := m.GetType(); {
	case raft.IsLocalMsg(t) || t == raftpb.MsgProp || t == raftpb.MsgForgetLeader:
		return fmt.Errorf("%w: replica %x: local-only %s from %x", ErrBadMessage, r.id, t, m.GetFrom())
	case m.GetTo() != r.id:
		return fmt.Errorf("%w: replica %x: %s addressed to %x", ErrBadMessage, r.id, t, m.GetTo())
	case m.GetFrom() == 0 || m.GetFrom() == r.id:
		return fmt.Errorf("%w: replica %x: %s from %x", ErrBadMessage, r.id, t, m.GetFrom())
	}
	return nil
}

// isMember reports whether id is in the configuration as of applied; an
// empty configuration (a new replica waiting for its snapshot) knows no
// one and counts everyone a member.
func (r *Replica) isMember(id uint64) bool {
	cs := r.confState
	if len(cs.GetVoters()) == 0 && len(cs.GetLearners()) == 0 {
		return true
	}
	return slices.Contains(cs.GetVoters(), id) || slices.Contains(cs.GetLearners(), id) ||
		slices.Contains(cs.GetVotersOutgoing(), id) || slices.Contains(cs.GetLearnersNext(), id)
}

// Strangers returns how many messages Step took from replicas outside the
// configuration as of applied.
func (r *Replica) Strangers() uint64 { return r.strangers }

// Propose prepares p with the state machine and proposes it, refusing
// unless this replica is the ready leader. On ErrProposalDropped the
// proposer undoes what PrepareProposal reserved.
func (r *Replica) Propose(p Proposal) (at ProposalPoint, err error) {
	defer func() {
		if r.lost(recover()) {
			at, err = ProposalPoint{}, r.err
		}
	}()
	if r.err != nil {
		return ProposalPoint{}, r.err
	}
	if !r.readyLeader() {
		return ProposalPoint{}, ErrNotLeader
	}
	at = ProposalPoint{Index: r.lastIndex + 1, Term: r.leadership.Term}
	if err := r.sm.PrepareProposal(&p, at); err != nil {
		return ProposalPoint{}, err
	}
	if err := r.rn.Propose(p.Data); err != nil {
		if errors.Is(err, raft.ErrProposalDropped) {
			return ProposalPoint{}, ErrProposalDropped
		}
		return ProposalPoint{}, fmt.Errorf("replica %x: propose: %w", r.id, err)
	}
	r.lastIndex = at.Index
	return at, nil
}

// readyLeader checks readiness against raft's state now, not the last
// notification: a Step since then may have cost the leadership.
func (r *Replica) readyLeader() bool {
	st := r.rn.BasicStatus()
	return st.RaftState == raft.StateLeader && st.GetTerm() == r.leadership.Term && r.leadership.Ready
}

// ProposeConfChange proposes a membership change (learners, promotion,
// joint configurations). Only a ready leader accepts it, and only when
// raft would not silently replace it by an empty entry: while an earlier
// change is not applied (ErrConfChangePending), or when it would enter a
// joint configuration from a joint one or leave one it is not in
// (ErrConfChangeRefused).
func (r *Replica) ProposeConfChange(cc *raftpb.ConfChangeV2) (err error) {
	defer func() {
		if r.lost(recover()) {
			err = r.err
		}
	}()
	if r.err != nil {
		return r.err
	}
	if !r.readyLeader() {
		return ErrNotLeader
	}
	if err := r.checkConfChange(cc); err != nil {
		return err
	}
	if err := r.rn.ProposeConfChange(cc); err != nil {
		if errors.Is(err, raft.ErrProposalDropped) {
			return ErrProposalDropped
		}
		return fmt.Errorf("replica %x: propose conf change: %w", r.id, err)
	}
	r.lastIndex++
	r.pendingConf = r.lastIndex
	return nil
}

// Errors of ProposeConfChange: raft takes one change at a time.
var (
	ErrConfChangePending = errors.New("replica: a configuration change is not applied yet")
	ErrConfChangeRefused = errors.New("replica: configuration change refused")
)

// checkConfChange mirrors raft's checks on a leader. With no change pending
// the configuration as of applied is raft's current one.
func (r *Replica) checkConfChange(cc *raftpb.ConfChangeV2) error {
	if r.pendingConf > r.applied {
		return fmt.Errorf("%w: replica %x: change at %d, applied %d", ErrConfChangePending, r.id, r.pendingConf, r.applied)
	}
	joint := len(r.confState.GetVotersOutgoing()) > 0
	leave := len(cc.GetChanges()) == 0
	switch {
	case joint && !leave:
		return fmt.Errorf("%w: replica %x: leave the joint configuration first", ErrConfChangeRefused, r.id)
	case !joint && leave:
		return fmt.Errorf("%w: replica %x: not in a joint configuration to leave", ErrConfChangeRefused, r.id)
	}
	return nil
}

// Campaign starts an election now (the preferred leader of a new group).
func (r *Replica) Campaign() (err error) {
	defer func() {
		if r.lost(recover()) {
			err = r.err
		}
	}()
	if r.err != nil {
		return r.err
	}
	return r.rn.Campaign()
}

// TransferLeader asks the leader to hand leadership to another voter;
// proposals are dropped until it completes or times out.
func (r *Replica) TransferLeader(to uint64) {
	defer func() { r.lost(recover()) }()
	if r.err == nil {
		r.rn.TransferLeader(to)
	}
}

// ReadIndex asks for a linearizable read point, answered in a later
// Work.ReadStates carrying rctx.
func (r *Replica) ReadIndex(rctx []byte) {
	defer func() { r.lost(recover()) }()
	if r.err == nil {
		r.rn.ReadIndex(rctx)
	}
}

// ReportUnreachable tells raft a message to peer could not be sent.
func (r *Replica) ReportUnreachable(peer uint64) {
	if r.err == nil {
		r.rn.ReportUnreachable(peer)
	}
}

// ReportSnapshot tells raft whether a snapshot sent to peer arrived: until
// then the leader sends that peer nothing else. A transport reports after
// sending it (the follower's answer corrects an optimistic report).
func (r *Replica) ReportSnapshot(peer uint64, delivered bool) {
	if r.err != nil {
		return
	}
	status := raft.SnapshotFailure
	if delivered {
		status = raft.SnapshotFinish
	}
	r.rn.ReportSnapshot(peer, status)
}

// SnapshotsSent reports each snapshot among msgs as delivered: call it once
// msgs are handed to the network. Until a snapshot is reported the leader
// sends its follower nothing else, so a lost one must be reported too; the
// optimistic report is corrected by the follower, whose rejection of the
// next append makes the leader send another.
func (r *Replica) SnapshotsSent(msgs []*raftpb.Message) {
	for _, m := range msgs {
		if m.GetType() == raftpb.MsgSnap {
			r.ReportSnapshot(m.GetTo(), true)
		}
	}
}

// SyncFailed stops the replica for good: with a failed fsync nothing it
// wrote can be promised, so it stops voting and campaigning.
func (r *Replica) SyncFailed(err error) {
	r.fail(fmt.Errorf("sync: %w", err))
}

// fail stops the replica and tells the state machine it knows no leader
// any more: a failed leader must stop serving at once.
func (r *Replica) fail(err error) {
	if r.err != nil {
		return
	}
	r.err = fmt.Errorf("%w: replica %x: %w", ErrFailed, r.id, err)
	if l := (Leadership{Term: r.leadership.Term}); l != r.leadership {
		r.leadership = l
		r.sm.LeadershipChanged(l)
	}
}

// HandleReady writes what raft asks to persist (inline, not yet durable),
// applies committed entries, and returns the messages to send now and the
// sync to ask for. Call it after Tick, Step, Propose and Synced until
// HasReady is false. It never calls Advance: the replica runs raft with
// asynchronous storage writes.
func (r *Replica) HandleReady() (Work, error) {
	var w Work
	for range maxReadyRounds {
		if r.err != nil {
			return w, r.err
		}
		if !r.rn.HasReady() {
			break
		}
		rd, ok := r.ready()
		if !ok {
			return w, r.err
		}
		w.ReadStates = append(w.ReadStates, rd.ReadStates...)
		for _, m := range rd.Messages {
			if err := r.handleMessage(m, &w); err != nil {
				// Nothing after a failed write may run: an apply would act
				// on entries the log no longer promises.
				r.fail(err)
				return w, r.err
			}
		}
		r.notifyLeadership()
	}
	if len(r.held) > 0 {
		w.SyncSeq = r.held[len(r.held)-1].seq
	}
	return w, r.err
}

// raftStorage is the Storage raft reads through: it tags the errors raft
// does not expect (all but the raft sentinels it compares with ==), so
// that lost tells raft panicking with one as is from any other panic.
type raftStorage struct{ Storage }

// storageError is an error raftStorage returned to raft.
type storageError struct{ error }

func (e storageError) Unwrap() error { return e.error }

func tagged(err error) error {
	switch err {
	case nil, raft.ErrCompacted, raft.ErrUnavailable, raft.ErrSnapOutOfDate, raft.ErrSnapshotTemporarilyUnavailable:
		return err
	}
	return storageError{err}
}

func (s raftStorage) InitialState() (*raftpb.HardState, *raftpb.ConfState, error) {
	hs, cs, err := s.Storage.InitialState()
	return hs, cs, tagged(err)
}

func (s raftStorage) Entries(lo, hi, maxSize uint64) ([]*raftpb.Entry, error) {
	ents, err := s.Storage.Entries(lo, hi, maxSize)
	return ents, tagged(err)
}

func (s raftStorage) Term(i uint64) (uint64, error) {
	t, err := s.Storage.Term(i)
	return t, tagged(err)
}

func (s raftStorage) LastIndex() (uint64, error) {
	i, err := s.Storage.LastIndex()
	return i, tagged(err)
}

func (s raftStorage) FirstIndex() (uint64, error) {
	i, err := s.Storage.FirstIndex()
	return i, tagged(err)
}

func (s raftStorage) Snapshot() (*raftpb.Snapshot, error) {
	snap, err := s.Storage.Snapshot()
	return snap, tagged(err)
}

// ready is rn.Ready, or false when the replica failed in it (lost).
func (r *Replica) ready() (rd raft.Ready, ok bool) {
	defer func() {
		if r.lost(recover()) {
			ok = false
		}
	}()
	return r.rn.Ready(), true
}

// lost takes what a call into raft panicked with (nil: it did not), which
// every entry point recovers. Raft panics where its log lost or damaged
// entries:
//   - a heartbeat committing past the log's last entry ("tocommit"): a
//     leader commits on a heartbeat at most what this replica acknowledged
//     as durable, so its storage lost entries after syncing them. Raft's
//     own check is the one that counts: the replica's lastIndex lags
//     raft's log by what Step appended since the last HandleReady, so a
//     check against it also stopped healthy replicas catching up;
//   - storage that cannot give back entries, to apply committed ones
//     (Ready), to look for a conf change among them before campaigning
//     (Tick, Step, Campaign), or to send them (Propose, TransferLeader, a
//     conf change applied, a local response stepped back in): with its
//     storage's error as is (a damaged batch of the metadata log, found
//     when read), or through its logger (the partition's storage answers
//     raft.ErrCompacted for damaged batches, which raft takes for a
//     compaction except where it applies or scans).
//
// A panic would take every group of the node down, again at each
// restart; the replica stops instead (ErrLogLost), tells its state
// machine, and its RawNode is not used again. It reports whether it
// stopped the replica, and panics again with anything else (a bug, or a
// state machine's panic: only errors raftStorage tagged count).
func (r *Replica) lost(p any) bool {
	if p == nil {
		return false
	}
	var why string
	switch v := p.(type) {
	case raftPanic:
		if !strings.HasPrefix(string(v), "tocommit(") &&
			!strings.HasPrefix(string(v), "unexpected error when getting unapplied entries") &&
			!strings.HasPrefix(string(v), "error scanning unapplied entries") {
			panic(p)
		}
		why = string(v)
	case storageError:
		why = "raft could not read its storage: " + v.Error()
	default:
		panic(p)
	}
	r.stopLost(why)
	return true
}

// LogDamaged stops the replica as lost does (ErrLogLost), for damage its
// owner found reading the log outside raft: a compaction counting the
// entries below its index through a damaged batch. Raft would meet the
// same batch when it next reads there, sending a snapshot or applying;
// stopping now hands the group to replicas that can still do what this
// one was asked to (a leader that cannot compact cannot send a joining
// node the snapshot that names it). No-op once the replica stopped.
func (r *Replica) LogDamaged(err error) {
	if r.err == nil {
		r.stopLost("its log is damaged: " + err.Error())
	}
}

func (r *Replica) stopLost(why string) {
	r.fail(fmt.Errorf("%w: %s", ErrLogLost, why))
	if l, ok := r.sm.(LogLoser); ok {
		l.LogLost(r.err)
	}
}

func (r *Replica) handleMessage(m *raftpb.Message, w *Work) error {
	switch m.GetTo() {
	case raft.LocalAppendThread:
		return r.write(m)
	case raft.LocalApplyThread:
		return r.apply(m)
	default:
		if m.GetType() == raftpb.MsgSnap && !confNames(m.GetSnapshot().GetMetadata().GetConfState(), m.GetTo()) {
			// The receiver drops a snapshot whose configuration does not
			// name it (one taken before it was added) and acknowledges
			// index 0, which sends the leader straight into another
			// append and so another snapshot, a round trip apart, until
			// a newer snapshot names it. Reported failed instead, the
			// next try waits for a heartbeat's answer.
			r.rn.ReportSnapshot(m.GetTo(), raft.SnapshotFailure)
			return nil
		}
		w.Messages = append(w.Messages, m)
		return nil
	}
}

// confNames reports whether a configuration names replica id, in any role.
func confNames(cs *raftpb.ConfState, id uint64) bool {
	for _, set := range [][]uint64{cs.GetVoters(), cs.GetLearners(), cs.GetVotersOutgoing(), cs.GetLearnersNext()} {
		if slices.Contains(set, id) {
			return true
		}
	}
	return false
}

// write persists a MsgStorageAppend (snapshot, entries, hard state) and
// holds its responses until a Sync covers it.
func (r *Replica) write(m *raftpb.Message) error {
	if snap := m.GetSnapshot(); snap != nil && snap.GetMetadata().GetIndex() > 0 {
		if err := r.writeSnapshot(snap); err != nil {
			return err
		}
	}
	if ents := m.GetEntries(); len(ents) > 0 {
		if err := r.storage.Append(ents); err != nil {
			return fmt.Errorf("append entries [%d, %d]: %w", ents[0].GetIndex(), ents[len(ents)-1].GetIndex(), err)
		}
		r.noteAppended(ents)
	}
	if m.Term != nil {
		hs := &raftpb.HardState{Term: new(m.GetTerm()), Vote: new(m.GetVote()), Commit: new(m.GetCommit())}
		if err := r.storage.SetHardState(hs); err != nil {
			return fmt.Errorf("set hard state: %w", err)
		}
	}
	r.writeSeq++
	if len(m.GetResponses()) > 0 {
		r.held = append(r.held, heldResponses{seq: r.writeSeq, msgs: m.GetResponses()})
	}
	return nil
}

// writeSnapshot writes a snapshot into the log and holds the state
// machine's Restore until a Sync covers the write: a persistent state
// machine restored first and crashed before the sync would restart past
// the end of its log.
func (r *Replica) writeSnapshot(snap *raftpb.Snapshot) error {
	idx := snap.GetMetadata().GetIndex()
	if err := r.storage.ApplySnapshot(snap); err != nil {
		return fmt.Errorf("apply snapshot at %d: %w", idx, err)
	}
	r.lastIndex = idx
	r.restores = append(r.restores, heldRestore{seq: r.writeSeq + 1, snap: snap}) // this write's
	return nil
}

// restoreSynced restores the state machine from the snapshots whose
// writes are durable up to seq.
func (r *Replica) restoreSynced(seq uint64) error {
	for len(r.restores) > 0 && r.restores[0].seq <= seq {
		snap := r.restores[0].snap
		r.restores = r.restores[1:]
		idx := snap.GetMetadata().GetIndex()
		if err := r.sm.Restore(snap); err != nil {
			return fmt.Errorf("restore snapshot at %d: %w", idx, err)
		}
		r.applied = idx
		r.confState = proto.Clone(raftpb.EnsureConfState(snap.GetMetadata().GetConfState())).(*raftpb.ConfState)
	}
	return nil
}

// noteAppended moves lastIndex to the end of a write (which truncates
// anything after it), records the first entry of a leader's term and the
// last configuration change written.
func (r *Replica) noteAppended(ents []*raftpb.Entry) {
	st := r.rn.BasicStatus()
	if st.RaftState == raft.StateLeader && r.termStart.Term != st.GetTerm() {
		for _, e := range ents {
			if e.GetTerm() == st.GetTerm() {
				r.termStart = ProposalPoint{Index: e.GetIndex(), Term: e.GetTerm()}
				break
			}
		}
	}
	r.lastIndex = ents[len(ents)-1].GetIndex()
	for _, e := range ents {
		if t := e.GetType(); t == raftpb.EntryConfChange || t == raftpb.EntryConfChangeV2 {
			// Raft's own too (leaving a joint configuration automatically).
			r.pendingConf = max(r.pendingConf, e.GetIndex())
		}
	}
}

// apply hands committed entries to the state machine, applies the
// configuration changes among them, and steps the responses back at once.
func (r *Replica) apply(m *raftpb.Message) error {
	ents := m.GetEntries()
	if len(ents) > 0 {
		if first := ents[0].GetIndex(); first != r.applied+1 {
			return fmt.Errorf("apply from %d after applying %d: raft skipped or repeated entries", first, r.applied)
		}
		if err := r.sm.Apply(ents); err != nil {
			return fmt.Errorf("apply [%d, %d]: %w", ents[0].GetIndex(), ents[len(ents)-1].GetIndex(), err)
		}
		for _, e := range ents {
			if err := r.applyConfChange(e); err != nil {
				return err
			}
		}
		r.applied = ents[len(ents)-1].GetIndex()
	}
	return r.stepLocal(m.GetResponses())
}

func (r *Replica) applyConfChange(e *raftpb.Entry) error {
	var cc raftpb.ConfChangeI
	switch e.GetType() {
	case raftpb.EntryConfChange:
		var v1 raftpb.ConfChange
		if err := proto.Unmarshal(e.GetData(), &v1); err != nil {
			return fmt.Errorf("conf change at %d: %w", e.GetIndex(), err)
		}
		cc = &v1
	case raftpb.EntryConfChangeV2:
		var v2 raftpb.ConfChangeV2
		if err := proto.Unmarshal(e.GetData(), &v2); err != nil {
			return fmt.Errorf("conf change at %d: %w", e.GetIndex(), err)
		}
		cc = &v2
	default:
		return nil
	}
	r.confState = r.rawApplyConfChange(cc)
	return r.err
}

// rawApplyConfChange is rn.ApplyConfChange, which sends appends to the
// new configuration's members (reading the log), recovered as lost.
func (r *Replica) rawApplyConfChange(cc raftpb.ConfChangeI) (cs *raftpb.ConfState) {
	defer func() {
		if r.lost(recover()) {
			cs = r.confState
		}
	}()
	return r.rn.ApplyConfChange(cc)
}

// stepLocal steps responses addressed to this replica back into raft. A
// response raft no longer has a peer for is dropped, as raft's own Node
// does: a leader that applied its own removal gets its acknowledgement of
// a later write back from itself.
func (r *Replica) stepLocal(msgs []*raftpb.Message) (err error) {
	defer func() {
		if r.lost(recover()) {
			err = r.err
		}
	}()
	for _, m := range msgs {
		if err := r.rn.Step(m); errors.Is(err, raft.ErrStepPeerNotFound) {
			continue
		} else if err != nil {
			return fmt.Errorf("step local %s: %w", m.GetType(), err)
		}
	}
	return nil
}

// Synced releases the responses of every write up to seq, which a Sync
// started after the HandleReady that returned seq has made durable: a
// snapshot among the writes is restored into the state machine, the
// responses for this replica are stepped into raft, the rest returned to
// be sent.
// Call HandleReady afterwards.
func (r *Replica) Synced(seq uint64) ([]*raftpb.Message, error) {
	if r.err != nil {
		return nil, r.err
	}
	var out []*raftpb.Message
	n := 0
	for _, h := range r.held {
		if h.seq > seq {
			break
		}
		n++
		// A snapshot's restore comes before its write's responses: raft
		// applies entries after the snapshot once it hears it is written.
		if err := r.restoreSynced(h.seq); err != nil {
			r.fail(err)
			return nil, r.err
		}
		for _, m := range h.msgs {
			if m.GetTo() != r.id {
				out = append(out, m)
				continue
			}
			if err := r.stepLocal([]*raftpb.Message{m}); err != nil {
				r.fail(err)
				return nil, r.err
			}
		}
	}
	r.held = r.held[n:]
	if err := r.restoreSynced(seq); err != nil {
		r.fail(err)
		return nil, r.err
	}
	r.notifyLeadership()
	return out, nil
}

// notifyLeadership tells the state machine when (term, leader, ready)
// changed.
func (r *Replica) notifyLeadership() {
	st := r.rn.BasicStatus()
	l := Leadership{Term: st.GetTerm(), Leader: st.Lead}
	l.Ready = st.RaftState == raft.StateLeader && r.termStart.Term == st.GetTerm() && r.applied >= r.termStart.Index
	if l != r.leadership {
		r.leadership = l
		r.sm.LeadershipChanged(l)
	}
}
