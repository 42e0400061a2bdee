package partition

import (
	"errors"
	"fmt"
	"slices"
	"syscall"

	"go.etcd.io/raft/v3/raftpb"

	"github.com/cairnlog/cairn/replica"
	"github.com/cairnlog/cairn/storage"
)

// A replica whose write of the Raft log fails for lack of space stops
// (replica.ErrFailed): raft believes the entries it handed over are being
// persisted, and it must never be told they are durable when they are not,
// so the raft node itself cannot go on. The Raft log stays consistent: a
// data write that failed is undone by the segments (storage.Log.Append),
// so the log ends at its last whole entry, and raft-state records nothing
// beyond it. The partition answers the term's waiters with ErrDiskFull and
// asks its owner (ReplicaConfig.DiskFull) to recreate the replica from the
// log: RestartPoint syncs the log first, so everything the new raft node
// reads as its log is durable, as raft assumes of the log it starts from.
// A failed sync stays fatal (ErrStorageFailed).

// termFull is a failed write for lack of space in a term; stopped until
// the group runs here again (a leader is known); recovering until the
// Raft log took entries with data again.
type termFull struct {
	term       uint64
	err        error
	stopped    bool
	recovering bool
}

// noteDiskFull records a failed write of the Raft log for lack of space,
// in the term this replica serves (0 as a follower), and asks the owner to
// recreate the replica. On the replica's goroutine.
func (p *Partition) noteDiskFull(err error) {
	p.stateMu.Lock()
	p.full = termFull{term: p.servingTerm, err: fmt.Errorf("%w: %s-%d: write the raft log: %v", ErrDiskFull, p.topic, p.index, err), stopped: true, recovering: true}
	p.wakeLocked()
	p.stateMu.Unlock()
	p.logger.Error("the raft log is out of space; its replica stops until recreated", "err", err)
	if p.repl.diskFull != nil {
		p.repl.diskFull()
	}
}

// fullIn is the disk-full error of term, nil if no write failed in it.
func (p *Partition) fullIn(term uint64) error {
	p.stateMu.Lock()
	defer p.stateMu.Unlock()
	if p.full.err != nil && p.full.term == term && term != 0 {
		return p.full.err
	}
	return nil
}

// whileDiskFull gives an append refused because the replica is stopped or
// being recreated after a failed write for lack of space that write's
// error, until the group knows a leader again (then a follower's refusal
// is the retriable ErrNotLeader it is).
func (p *Partition) whileDiskFull(err error) error {
	if !errors.Is(err, ErrNotLeader) && !errors.Is(err, replica.ErrUnknownGroup) {
		return err
	}
	p.stateMu.Lock()
	defer p.stateMu.Unlock()
	if p.full.stopped && p.servingTerm == 0 {
		return p.full.err
	}
	return err
}

// groupRunsLocked notes that the group knows a leader again: appends refused
// here are no longer for lack of space. Callers hold stateMu.
func (p *Partition) groupRunsLocked(l replica.Leadership) {
	if l.Leader != 0 {
		p.full.stopped = false
	}
}

// DiskFullRecovering reports whether this replica's Raft log failed a
// write for lack of space and has taken no record batch since. Such a
// replica elected leader hands its leadership to a follower: it would
// refuse every produce until space returns, while another replica could
// take them.
func (p *Partition) DiskFullRecovering() bool {
	p.stateMu.Lock()
	defer p.stateMu.Unlock()
	return p.full.recovering
}

// HandedOffAfterDiskFull ends DiskFullRecovering once the replica handed a
// leadership over: should it win again, it leads (a produce that finds the
// disk still full stops it again), so replicas that all ran out of space
// do not pass the leadership round among themselves.
func (p *Partition) HandedOffAfterDiskFull() {
	p.stateMu.Lock()
	defer p.stateMu.Unlock()
	p.full.recovering = false
}

// RestartPoint prepares the recreation of a replica stopped with its Raft
// log whole (a failed write for lack of space, a snapshot refused for want
// of its data): it records in the Raft log what the partition applied,
// syncs the log, so that the new raft node starts from a durable log, and
// returns the applied index for its replica.Config. The caller has taken
// the stopped replica off its worker; ReplicaConfig.ConfState still
// answers for it. A failed sync takes the partition offline for good.
//
// The recording matters after a configuration change: the Raft log
// records the index applied after one only at the next Apply
// (recordApplied), which a stopped replica never runs. A new raft node
// started below what the partition applied would hand those entries to
// Apply again, which refuses a batch below its high watermark (the
// partition stays open, so no replay resets it) and would take the
// partition offline; and it would start with the ConfState from before
// the change.
func (p *Partition) RestartPoint() (uint64, error) {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return 0, fmt.Errorf("%w: %s-%d", ErrClosed, p.topic, p.index)
	}
	err := p.Err()
	if err == nil {
		err = p.recordAppliedForRestart()
	}
	p.mu.Unlock()
	if err != nil {
		return 0, err
	}
	if err := p.raft.Sync(); err != nil {
		p.fail(fmt.Errorf("sync the raft log: %w", err))
		return 0, p.Err()
	}
	return p.RaftApplied()
}

// recordAppliedForRestart records the entries the partition applied, and
// the ConfState a configuration change among them left, where the Raft log
// does not have them yet. Callers hold mu.
func (p *Partition) recordAppliedForRestart() error {
	conf := p.confToRecord()
	p.stateMu.Lock()
	applied := p.appliedIndex
	p.stateMu.Unlock()
	recorded, err := p.RaftApplied()
	if err != nil {
		return err
	}
	if conf == nil && applied <= recorded {
		return nil
	}
	if err := p.raft.RecordApplied(max(applied, recorded), conf); err != nil {
		return fmt.Errorf("partition %s-%d: record applied %d for a restart: %w", p.topic, p.index, applied, err)
	}
	return nil
}

// Append appends to the Raft log; a failure for lack of space that left
// the log whole (not failed) is noted (noteDiskFull) before the replica
// stops on it.
func (s *localSyncer) Append(ents []*raftpb.Entry) error {
	err := s.Storage.Append(ents)
	if err != nil && errors.Is(err, syscall.ENOSPC) && !errors.Is(err, storage.ErrFailed) && s.p.Err() == nil {
		s.p.noteDiskFull(err)
	}
	if err == nil && s.p.DiskFullRecovering() && slices.ContainsFunc(ents, isBatchEntry) {
		s.p.stateMu.Lock()
		s.p.full.recovering = false
		s.p.stateMu.Unlock()
	}
	return err
}

// isBatchEntry reports whether e carries a record batch, which the
// segments store (not a command, a configuration change or a term's
// empty entry, which raft-meta does).
func isBatchEntry(e *raftpb.Entry) bool {
	return e.Type == nil && len(e.GetData()) > 0 && e.GetData()[0] < 0x80
}
