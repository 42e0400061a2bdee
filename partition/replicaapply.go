package partition

import (
	"context"
	"encoding/binary"
	"fmt"

	"go.etcd.io/raft/v3/raftpb"

	"github.com/cairnlog/cairn/batch"
	"github.com/cairnlog/cairn/replica"
)

// Apply implements replica.StateMachine: committed data batches go to the
// log (as stamped by their leader), producer state and the leader-epoch
// history, and the high watermark rises past the last of them; a
// DeleteRecords command advances the log start; empty and configuration
// entries pass. Entries below the log end were applied before a restart
// and are passed over. An error fails the replica: the partition can no
// longer follow its group.
func (p *Partition) Apply(ents []*raftpb.Entry) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, e := range ents {
		if err := p.applyEntry(e); err != nil {
			p.fail(fmt.Errorf("apply entry %d: %w", e.GetIndex(), err))
			return p.Err()
		}
		p.dropPending(e.GetIndex())
	}
	if len(ents) > 0 {
		last := ents[len(ents)-1]
		p.noteApplied(last.GetIndex(), last.GetTerm())
	}
	p.advance(p.log.NextOffset())
	select {
	case p.kick <- struct{}{}: // the flusher syncs the applied batches, bounding recovery
	default:
	}
	return nil
}

func (p *Partition) applyEntry(e *raftpb.Entry) error {
	data := e.GetData()
	switch {
	case e.GetType() != raftpb.EntryNormal || len(data) == 0:
		return nil
	case data[0] >= 0x80:
		return p.applyCommand(data)
	default:
		return p.applyBatch(data, e.GetTerm())
	}
}

func (p *Partition) noteApplied(index, term uint64) {
	p.stateMu.Lock()
	defer p.stateMu.Unlock()
	p.appliedIndex, p.appliedTerm = index, term
	p.wakeLocked()
}

// applyBatch appends one committed batch. Callers hold mu.
func (p *Partition) applyBatch(data []byte, term uint64) error {
	h, err := batch.ParseHeader(data)
	if err != nil {
		return err
	}
	if h.TotalBytes() != len(data) {
		return fmt.Errorf("entry of %d bytes holds a batch of %d", len(data), h.TotalBytes())
	}
	if uint64(h.PartitionLeaderEpoch) != term {
		return fmt.Errorf("batch at offset %d stamped with epoch %d in an entry of term %d", h.BaseOffset, h.PartitionLeaderEpoch, term)
	}
	end := p.log.NextOffset()
	switch {
	case h.NextOffset() <= end:
		return nil // applied before a restart; the log already holds it
	case h.BaseOffset != end:
		return fmt.Errorf("batch [%d, %d] does not start at the log end %d", h.BaseOffset, h.LastOffset(), end)
	}
	if err := batch.CheckCRC(data); err != nil {
		return err
	}
	nowMs := p.clock.Now().UnixMilli()
	if err := p.log.Append(data, nowMs); err != nil {
		return err
	}
	p.producers.record(h, nowMs)
	if err := p.applyStreams(data); err != nil {
		return err
	}
	return p.noteEpoch(h)
}

// applyStreams commits an applied batch's records to the stream index, the
// covered offset with them in one pebble batch: every replica builds its
// index from the same records, as replayIndex does. Callers hold mu.
func (p *Partition) applyStreams(whole []byte) error {
	x := p.streamIdx
	if x == nil {
		return nil // not a stream topic, or a build replays the log
	}
	recs, err := batch.Records(whole, p.cfg.Limits)
	if err != nil {
		return err
	}
	change := x.NewChange()
	for _, r := range recs {
		if r.Offset < x.Next() {
			continue
		}
		if err := change.Apply(r, r.Offset); err != nil {
			return fmt.Errorf("stream index at offset %d: %w", r.Offset, err)
		}
	}
	return x.Commit(change)
}

// noteEpoch records a new leader epoch at its first applied batch.
func (p *Partition) noteEpoch(h batch.Header) error {
	p.epochMu.Lock()
	fresh := h.PartitionLeaderEpoch > p.epochs.current()
	if fresh {
		p.epochs.begin(h.PartitionLeaderEpoch, h.BaseOffset)
	}
	p.epochMu.Unlock()
	if !fresh {
		return nil
	}
	return p.persistEpochs()
}

// applyCommand applies a partition command entry. Callers hold mu.
func (p *Partition) applyCommand(data []byte) error {
	switch data[0] {
	case commandDeleteRecords:
		if len(data) != deleteRecordsBytes {
			return fmt.Errorf("DeleteRecords command of %d bytes", len(data))
		}
		return p.applyDeleteRecords(int64(binary.BigEndian.Uint64(data[1:])))
	default:
		return fmt.Errorf("unknown partition command 0x%x", data[0])
	}
}

// applyDeleteRecords advances the log start to offset, never past what
// this replica applied, so every replica ends with the same start.
func (p *Partition) applyDeleteRecords(offset int64) error {
	offset = min(offset, p.log.NextOffset())
	if offset <= p.log.StartOffset() {
		return nil
	}
	if err := p.snapshotBeforeTrim(); err != nil {
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
