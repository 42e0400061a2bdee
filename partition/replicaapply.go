package partition

import (
	"context"
	"encoding/binary"
	"fmt"
	"time"

	"go.etcd.io/raft/v3/raftpb"

	"github.com/cairnlog/cairn/batch"
	"github.com/cairnlog/cairn/replica"
)

// Apply implements replica.StateMachine. The entries are in the Raft log,
// which is the partition's segments: a committed data batch is already
// stored at the offset after the previous one, and applying it checks its
// header says so, records it in producer state, the stream index and the
// leader-epoch history, and the high watermark rises past it; a
// DeleteRecords command advances the log start; empty and configuration
// entries pass. Batches below the derived states' own positions (a
// producer snapshot, the index's covered offset, written after raft-state's
// applied index) were applied before a restart and are not recorded again.
// An error fails the replica: the partition can no longer follow its group.
func (p *Partition) Apply(ents []*raftpb.Entry) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	end := p.HighWatermark()
	conf := p.confToRecord()
	for _, e := range ents {
		var err error
		if end, err = p.applyEntry(e, end); err == nil {
			err = p.recordApplied(e, conf)
		}
		if err != nil {
			p.fail(fmt.Errorf("apply entry %d: %w", e.GetIndex(), err))
			return p.Err()
		}
		p.dropPending(e.GetIndex())
	}
	if len(ents) > 0 {
		last := ents[len(ents)-1]
		p.noteApplied(last.GetIndex(), last.GetTerm())
	}
	p.advance(end)
	if err := p.applyDeferredStart(); err != nil {
		p.fail(fmt.Errorf("apply delete records: %w", err))
		return p.Err()
	}
	p.checkpointReplica()
	return nil
}

// applyEntry applies one entry on top of the data applied up to end, and
// returns the new end.
func (p *Partition) applyEntry(e *raftpb.Entry, end int64) (int64, error) {
	data := e.GetData()
	switch {
	case e.GetType() != raftpb.EntryNormal || len(data) == 0:
		return end, nil
	case data[0] >= 0x80:
		return end, p.applyCommand(data, end)
	default:
		return p.applyBatch(e.GetIndex(), data, e.GetTerm(), end)
	}
}

// recordApplied tells the Raft log an entry is applied, so a restart
// delivers only those after it, with conf, the ConfState as of it (nil:
// unchanged). A configuration change changes the ConfState raft-state must
// record with the applied index, and the replica applies it after this
// Apply returns: the applied index recorded stays below it until the next
// Apply reads the new ConfState (confToRecord). Meanwhile a restart
// delivers the change again and the replica applies it once more over the
// ConfState recorded before it.
func (p *Partition) recordApplied(e *raftpb.Entry, conf *raftpb.ConfState) error {
	if e.GetType() == raftpb.EntryConfChange || e.GetType() == raftpb.EntryConfChangeV2 {
		p.repl.confChanged, p.repl.confIndex = true, e.GetIndex()
		return nil
	}
	if p.repl.confChanged {
		return nil
	}
	return p.raft.RecordApplied(e.GetIndex(), conf)
}

// confToRecord returns the replica's ConfState when a configuration change
// applied before waits for it, and clears the wait; nil otherwise.
func (p *Partition) confToRecord() *raftpb.ConfState {
	r := p.repl
	if !r.confChanged {
		return nil
	}
	r.confChanged = false
	cs := r.confState()
	r.confAt[r.confIndex] = cs
	return cs
}

// checkpointReplica, when the checkpoint interval passed, checkpoints the
// Raft log (raft-state records the applied index, the next open walks only
// what came after) and hands a copy of producer state to the flusher to
// write, bounding a restart's replay. It runs on the replica's goroutine,
// the Raft log's write side. Callers hold mu.
func (p *Partition) checkpointReplica() {
	now := p.clock.Now()
	if now.Sub(p.lastCheckpoint) < time.Duration(p.cfg.CheckpointIntervalMs)*time.Millisecond {
		return
	}
	p.lastCheckpoint = now
	if err := p.raft.Checkpoint(); err != nil {
		p.fail(fmt.Errorf("checkpoint: %w", err))
		return
	}
	p.producers.expire(now.UnixMilli(), p.cfg.ProducerIDExpirationMs)
	p.producers.trimAborted(p.log.StartOffset())
	if o := p.repl.overlay; o != nil {
		// A leader's overlay was cloned at its term's start and only
		// records proposals: without this it would hold every producer
		// the term has seen. It forgets exactly what the applied state
		// just forgot, never a producer that state still holds (its own
		// last append, taken at proposal rather than at apply, is earlier)
		// nor one with a batch pending.
		o.forgetAllBut(p.producers, p.repl.pendingProducers())
		o.trimAborted(p.log.StartOffset())
	}
	p.publishTxns(nil)
	select {
	case p.snapshots <- p.copyProducers():
	default: // the flusher is still writing the previous one; the next checkpoint takes a newer copy
	}
}

func (p *Partition) noteApplied(index, term uint64) {
	p.stateMu.Lock()
	defer p.stateMu.Unlock()
	p.appliedIndex, p.appliedTerm = index, term
	p.wakeLocked()
}

// applyBatch applies the committed batch data of entry index, which the
// Raft log stores at end, and returns the offset after it. Callers hold mu.
//
// Apply writes nothing: the batch must already be in the segments at end,
// as the Raft log stored it. The header checks below place the entry;
// checkStored then checks the segments hold that very batch there, so a
// replay after a restart (every entry below the log end) never takes a
// batch for another stored at its offset.
func (p *Partition) applyBatch(index uint64, data []byte, term uint64, end int64) (int64, error) {
	h, err := batch.ParseHeader(data)
	if err != nil {
		return end, err
	}
	switch {
	case h.TotalBytes() != len(data):
		return end, fmt.Errorf("entry of %d bytes holds a batch of %d", len(data), h.TotalBytes())
	case uint64(h.PartitionLeaderEpoch) != term:
		return end, fmt.Errorf("batch at offset %d stamped with epoch %d in an entry of term %d", h.BaseOffset, h.PartitionLeaderEpoch, term)
	case h.BaseOffset != end:
		return end, fmt.Errorf("batch [%d, %d] applied after offset %d", h.BaseOffset, h.LastOffset(), end)
	case h.NextOffset() > p.log.NextOffset():
		return end, fmt.Errorf("batch [%d, %d] past the segments' end %d", h.BaseOffset, h.LastOffset(), p.log.NextOffset())
	}
	if err := p.checkStored(index, h); err != nil {
		return end, err
	}
	if h.BaseOffset >= p.producersNext {
		kind, err := markerOf(h, data, p.cfg.Limits)
		if err != nil {
			return end, err
		}
		p.recordTxn(h, kind, p.clock.Now().UnixMilli())
		p.producersNext = h.NextOffset()
	}
	if err := p.applyStreams(h, data); err != nil {
		return end, err
	}
	p.noteEpoch(h)
	return h.NextOffset(), nil
}

// checkStored checks that the segments hold the batch h describes, entry
// index's, at its base offset: same offsets, epoch, size and CRC.
func (p *Partition) checkStored(index uint64, h batch.Header) error {
	stored, err := p.storedBatch(index, h)
	if err != nil {
		return err
	}
	s, err := batch.ParseHeader(stored)
	if err != nil {
		return fmt.Errorf("stored batch at offset %d: %w", h.BaseOffset, err)
	}
	if s.BaseOffset != h.BaseOffset || s.LastOffsetDelta != h.LastOffsetDelta || s.PartitionLeaderEpoch != h.PartitionLeaderEpoch ||
		s.BatchLength != h.BatchLength || s.CRC != h.CRC {
		return fmt.Errorf("entry's batch [%d, %d] (epoch %d, %d bytes, crc %08x) is not the one stored there ([%d, %d], epoch %d, %d bytes, crc %08x)",
			h.BaseOffset, h.LastOffset(), h.PartitionLeaderEpoch, h.TotalBytes(), h.CRC,
			s.BaseOffset, s.LastOffset(), s.PartitionLeaderEpoch, s.TotalBytes(), s.CRC)
	}
	return nil
}

// storedBatch returns the batch stored for entry index, whose entry holds
// h. While the Raft log's entry cache holds the entry, that is the data
// the log appended for it (raftlog.Log.AppendedData): the very bytes it
// wrote at the entry's place, checked to begin at the log end then, and
// dropped from the cache by any cut, compaction or install since, so the
// segments need not be read back. Otherwise (a replay after a restart, an
// entry evicted) the batch is read from the segments at h's base offset.
func (p *Partition) storedBatch(index uint64, h batch.Header) ([]byte, error) {
	if data, ok := p.raft.AppendedData(index); ok {
		return data, nil
	}
	stored, err := p.log.Read(h.BaseOffset, 1, h.NextOffset())
	if err != nil {
		return nil, fmt.Errorf("read the stored batch at offset %d: %w", h.BaseOffset, err)
	}
	return stored, nil
}

// applyStreams gives the stream index an applied batch h (whole): its
// records are committed with the covered offset, a transaction's are held
// until its marker, and a marker commits or drops what its transaction
// held, exactly as replayIndex does, so every replica's index and held
// table are the same function of the log. A transaction's batch below the
// covered offset is delivered again after a restart, whose replay stopped
// at the high watermark, and is held again; a marker there was applied
// before. Callers hold mu.
func (p *Partition) applyStreams(h batch.Header, whole []byte) error {
	x, pending := p.streamIdx, p.streamTxns
	if x == nil {
		return nil // not a stream topic, or a build replays the log
	}
	defer func() { p.streamsHeld.Store(int64(pending.Streams())) }()
	change := x.NewChange()
	commit := func(next int64) error {
		if err := x.Commit(change); err != nil {
			return err
		}
		change = x.NewChange()
		return x.SetNext(next)
	}
	if err := p.replayBatch(x, pending, &change, h, whole, h.BaseOffset, x.Next(), p.cfg.Limits, commit, nil); err != nil {
		return err
	}
	if !h.Control() && txnHolder([]batch.Header{h}) >= 0 {
		// Before the commit below moves the covered offset past its records.
		if err := x.SetHeld(pending.First()); err != nil {
			return err
		}
	}
	return commit(h.NextOffset())
}

// noteEpoch records a new leader epoch at its first batch applied here,
// which is what WaitCommitted compares a proposal's term with. The Raft
// log keeps the terms for good (EndOffsetForEpoch).
func (p *Partition) noteEpoch(h batch.Header) {
	p.epochMu.Lock()
	defer p.epochMu.Unlock()
	if h.PartitionLeaderEpoch > p.epochs.current() {
		p.epochs.begin(h.PartitionLeaderEpoch, h.BaseOffset)
	}
}

// applyCommand applies the partition command data, with the data applied
// up to end. Callers hold mu.
func (p *Partition) applyCommand(data []byte, end int64) error {
	switch data[0] {
	case commandDeleteRecords:
		if len(data) != deleteRecordsBytes {
			return fmt.Errorf("DeleteRecords command of %d bytes", len(data))
		}
		return p.applyDeleteRecords(int64(binary.BigEndian.Uint64(data[1:])), end)
	default:
		return fmt.Errorf("unknown partition command 0x%x", data[0])
	}
}

// applyDeleteRecords advances the log start to offset, never past what
// this replica applied (end), so every replica ends with the same start.
// After a configuration change whose ConfState is not recorded yet, the
// Raft log cannot be compacted past it: the start then moves at the end of
// a later Apply (applyDeferredStart); a restart before delivers the command
// again.
func (p *Partition) applyDeleteRecords(offset, end int64) error {
	offset = min(offset, end)
	if offset <= p.log.StartOffset() {
		return nil
	}
	if p.repl.confChanged {
		p.repl.deferredStart = max(p.repl.deferredStart, offset)
		return nil
	}
	return p.advanceStart(offset)
}

// applyDeferredStart moves the log start as a DeleteRecords applied while
// a configuration change was not recorded asked, once it is.
func (p *Partition) applyDeferredStart() error {
	r := p.repl
	if r.deferredStart == 0 || r.confChanged {
		return nil
	}
	offset := r.deferredStart
	r.deferredStart = 0
	if offset <= p.log.StartOffset() {
		return nil
	}
	return p.advanceStart(offset)
}

// advanceStart compacts the Raft log below offset and moves the log start
// there. Callers hold mu.
func (p *Partition) advanceStart(offset int64) error {
	if err := p.snapshotBeforeTrim(); err != nil {
		return err
	}
	if err := p.compactRaftBelow(offset); err != nil {
		return err
	}
	if err := p.log.AdvanceStartOffset(offset); err != nil {
		return err
	}
	p.logger.Info("log start offset advanced", "offset", offset)
	return nil
}

// dropPending forgets the proposals at or below an applied index: applied,
// or overwritten by another leader's entry at their index.
func (p *Partition) dropPending(index uint64) {
	r := p.repl
	n := 0
	for n < len(r.pending) && r.pending[n].at.Index <= index {
		r.notePendingStreams(r.pending[n].streams, -1)
		n++
	}
	r.pending = r.pending[n:]
}

// deleteRecordsCommand encodes DeleteRecords{offset}.
func deleteRecordsCommand(offset int64) []byte {
	b := make([]byte, deleteRecordsBytes)
	b[0] = commandDeleteRecords
	binary.BigEndian.PutUint64(b[1:], uint64(offset))
	return b
}

// ProposeDeleteRecords proposes advancing the log start to offset on every
// replica (-1: the high watermark) and returns the command's place in the
// group's log, to wait on with WaitApplied.
func (p *Partition) ProposeDeleteRecords(offset int64) (replica.ProposalPoint, error) {
	offset, err := p.checkDeleteRecords(offset)
	if err != nil {
		return replica.ProposalPoint{}, err
	}
	var at replica.ProposalPoint
	err = p.repl.propose(func(r *replica.Replica) error {
		var err error
		at, err = r.Propose(replica.Proposal{Data: deleteRecordsCommand(offset)})
		return err
	})
	if err != nil {
		return replica.ProposalPoint{}, fmt.Errorf("%w: %s-%d: delete records: %v", ErrNotLeader, p.topic, p.index, err)
	}
	return at, nil
}

// deleteRecordsReplicated is DeleteRecordsBefore in the replicated mode:
// the command is proposed and waited for until this replica applied it.
func (p *Partition) deleteRecordsReplicated(ctx context.Context, offset int64) (int64, error) {
	at, err := p.ProposeDeleteRecords(offset)
	if err != nil {
		return -1, err
	}
	if err := p.waitFor(ctx, func() (bool, error) { return p.appliedDone(at) }); err != nil {
		return -1, err
	}
	return p.log.StartOffset(), nil
}

// appliedDone reports whether the entry at `at` was applied here, and an
// error when the term it was proposed in ended before. Applied entries
// reaching past at.Index whose last is of at.Term hold the entry proposed
// there: a term has one leader, and its log holds each entry it proposed
// from the term's first on.
func (p *Partition) appliedDone(at replica.ProposalPoint) (bool, error) {
	p.stateMu.Lock()
	defer p.stateMu.Unlock()
	switch {
	case p.failure != nil:
		return true, p.failure
	case p.appliedIndex >= at.Index && p.appliedTerm == at.Term:
		return true, nil
	case p.servingTerm != at.Term:
		return true, fmt.Errorf("%w: %s-%d: term %d ended before index %d applied", ErrNotLeader, p.topic, p.index, at.Term, at.Index)
	}
	return false, nil
}
