package raftlog

import (
	"bytes"
	"errors"
	"fmt"
	"path/filepath"
	"syscall"

	"go.etcd.io/raft/v3/raftpb"
	"google.golang.org/protobuf/proto"

	"github.com/cairnlog/cairn/storage"
)

// writer is the write side's own state, touched by the Raft goroutine
// only.
type writer struct {
	// lastData is the last data entry appended or found at open (zero
	// Index when none is known): the entry a checkpoint anchors.
	lastData Position
	// fineBytes counts batch bytes appended since the last fine anchor.
	fineBytes int64
	// scratch joins a run of data entries into one storage.Append.
	scratch []byte
	// nonDataUnsynced: a non-data Entry record was written and not yet
	// synced by the write side. See appendData.
	nonDataUnsynced bool
}

// scratchBytesMax bounds the join buffer kept between appends.
const scratchBytesMax = 8 << 20

// Append writes entries to the log. When the first one is at or below the
// last index, the entries from there on are cut first (a new leader
// overriding a suffix): the segments are truncated, then a Truncate record
// is written and synced, before anything new is written, so that no crash
// mixes the old suffix with the new one. Entries at or below the snapshot
// index are skipped, as raft.MemoryStorage does. Data entries go to the
// segments as they are (one storage.Append per run), the others to
// raft-meta as Entry records. Apart from the Truncate record and a
// non-data record that data follows (see appendData), nothing is synced:
// that is Sync's job.
//
// Entries that break the rules of a Raft log or that this log could not
// give back intact (see classify) are refused before anything is written.
// A write that fails part-way makes the log failed (storage.ErrFailed):
// raft cannot go on from a log it does not know, the replica must reopen.
// The exception is a data write refused for lack of space, which the
// segments undo: the log then ends at the last entry written before it,
// and a replica recreated from it may append again.
func (l *Log) Append(ents []*raftpb.Entry, nowMs int64) error {
	if err := l.checkWritable(); err != nil {
		return err
	}
	plan, cut, err := l.plan(ents)
	if err != nil || len(plan) == 0 {
		return err
	}
	if cut {
		if err := l.truncate(plan[0].ent.GetIndex(), plan[0].nextOffset); err != nil {
			return err
		}
	}
	for k := 0; k < len(plan); {
		n := 1
		if plan[k].data {
			for k+n < len(plan) && plan[k+n].data {
				n++
			}
			err = l.appendData(plan[k:k+n], nowMs)
		} else {
			err = l.appendNonData(plan[k])
		}
		if err != nil {
			return err
		}
		k += n
	}
	return nil
}

// plan checks ents against the log and says whether they overlap it.
func (l *Log) plan(ents []*raftpb.Entry) ([]planned, bool, error) {
	l.mu.RLock()
	defer l.mu.RUnlock()
	snap := l.book.snapshot.Index
	if len(ents) > 0 && ents[0].GetIndex() <= snap {
		skip := snap - ents[0].GetIndex() + 1
		if skip >= uint64(len(ents)) {
			return nil, false, nil
		}
		ents = ents[skip:]
	}
	if len(ents) == 0 {
		return nil, false, nil
	}
	first := ents[0].GetIndex()
	if first > l.last+1 {
		return nil, false, fmt.Errorf("append entries from %d after the last entry %d: %w", first, l.last, errRefusedEntry)
	}
	cut := first <= l.last
	if cut && first <= l.want.Applied {
		// Applied entries are committed: no leader overrides them.
		return nil, false, fmt.Errorf("append entries from %d over applied entry %d: %w", first, l.want.Applied, errRefusedEntry)
	}
	begin := l.storage.NextOffset()
	if cut {
		var err error
		if begin, _, err = offsetOf(l.book, l.headerReader(), first); err != nil {
			return nil, false, fmt.Errorf("append entries from %d: %w", first, err)
		}
	}
	termBefore, _ := l.book.term(first - 1)
	plan, err := planAppend(ents, termBefore, begin)
	if err != nil {
		return nil, false, fmt.Errorf("append entries from %d: %w", first, err)
	}
	return plan, cut, nil
}

// truncate cuts every entry from first on, which begins at offset. The
// book forgets them first, so readers stop asking for what is about to
// go; then the segments are cut (synced inside) and the Truncate record
// written and synced. A crash after the cut and before the record leaves
// raft-meta describing entries past the segments' end, which Open's walk
// finds and cuts (§1.6); the reverse order could let a stale non-data
// record renumber the batches after it.
//
// A Synced record above the cut is lowered to it first, durably, so that
// a crash between the cut and the Truncate record does not leave
// raft-meta saying that synced batches past the segments' end were lost.
// syncMu is held throughout, so no Sync records the old end meanwhile.
func (l *Log) truncate(first uint64, offset int64) error {
	t := &Truncate{Index: first, NextOffset: offset}
	l.syncMu.Lock()
	defer l.syncMu.Unlock()
	if l.syncedClaim() > offset {
		if err := l.claimLocked(offset); err != nil {
			return err
		}
		if err := l.syncMetaLocked(); err != nil {
			return err
		}
	}
	l.mu.Lock()
	err := l.book.apply(t)
	l.cache.truncateFrom(first)
	l.last = first - 1
	l.mu.Unlock()
	if err != nil {
		return l.fail(fmt.Errorf("truncate at entry %d: %w", first, err))
	}
	if l.w.lastData.Index >= first {
		l.w.lastData = Position{}
	}
	if err := l.storage.TruncateSuffix(offset); err != nil {
		return l.fail(fmt.Errorf("truncate at entry %d: %w", first, err))
	}
	if err := l.writeMetaRecord(t); err != nil {
		return err
	}
	return l.syncMetaLocked()
}

// appendData writes a run of data entries with one storage.Append.
//
// A non-data Entry record written before it is synced first. Otherwise a
// crash could keep these batches and lose that record (each file keeps
// its own prefix of what was not synced), and Open's count, missing an
// entry, would give each later batch the index of the one before it; the
// epoch check cannot see that within a term. With the record durable
// before any batch that follows it, batches that survive always have
// their non-data entries. raft-state's recovery point then moves past the
// record too: a record after it is taken for a torn tail when damaged,
// and its loss would renumber the batches after it just the same. It
// costs one raft-meta fsync and one raft-state write per term start, conf
// change or command followed by data.
func (l *Log) appendData(run []planned, nowMs int64) error {
	if l.w.nonDataUnsynced {
		if err := l.syncMetaVital(); err != nil {
			return err
		}
		l.w.nonDataUnsynced = false
	}
	data := run[0].ent.GetData()
	if len(run) > 1 {
		buf := l.w.scratch[:0]
		for _, p := range run {
			buf = append(buf, p.ent.GetData()...)
		}
		data = buf
		if cap(buf) <= scratchBytesMax {
			l.w.scratch = buf[:0]
		}
	}
	if err := l.storage.Append(data, nowMs); err != nil {
		err = fmt.Errorf("append entries [%d, %d]: %w", run[0].ent.GetIndex(), run[len(run)-1].ent.GetIndex(), err)
		if errors.Is(err, syscall.ENOSPC) && !errors.Is(err, storage.ErrFailed) {
			// The segments undid the write: the log ends at the entry
			// before this run, whole, and may take it again later.
			return err
		}
		return l.fail(err)
	}
	l.mu.Lock()
	for _, p := range run {
		if l.w.fineBytes >= fineAnchorBytes {
			l.book.addFine(Anchor{Index: p.ent.GetIndex(), Offset: p.nextOffset})
			l.w.fineBytes = 0
		}
		l.w.fineBytes += int64(len(p.ent.GetData()))
		// As Entries builds it from the segments: the Type raft may have
		// set is not stored.
		l.cache.add(&raftpb.Entry{Term: proto.Uint64(p.ent.GetTerm()), Index: proto.Uint64(p.ent.GetIndex()), Data: p.ent.GetData()})
	}
	l.last = run[len(run)-1].ent.GetIndex()
	l.mu.Unlock()
	end := run[len(run)-1]
	l.w.lastData = Position{Index: end.ent.GetIndex(), Offset: end.nextOffset}
	return nil
}

// appendNonData writes a non-data entry as an Entry record.
func (l *Log) appendNonData(p planned) error {
	e := &Entry{Index: p.ent.GetIndex(), Term: p.ent.GetTerm(), Kind: p.kind, NextOffset: p.nextOffset}
	if len(p.ent.GetData()) > 0 {
		e.Data = bytes.Clone(p.ent.GetData())
	}
	if err := l.writeMetaRecord(e); err != nil {
		return err
	}
	l.w.nonDataUnsynced = true
	l.mu.Lock()
	defer l.mu.Unlock()
	if err := l.book.apply(e); err != nil {
		return l.failLocked(fmt.Errorf("entry %d: %w", e.Index, err))
	}
	l.cache.add(nonDataEntry(e))
	l.last = e.Index
	return nil
}

// writeMetaRecord appends r to raft-meta. A failed write may leave part of
// the record, so it fails the log: no record may follow torn bytes.
//
// The write side and Sync both write raft-meta, so each checks under
// metaWriteMu that the other's last write did not fail first.
func (l *Log) writeMetaRecord(r Record) error {
	l.metaWriteMu.Lock()
	defer l.metaWriteMu.Unlock()
	if err := l.checkWritable(); err != nil {
		return err
	}
	n, err := writeRecord(l.meta, r)
	if err != nil {
		return l.fail(fmt.Errorf("write %s: %w", metaFileName, err))
	}
	l.mu.Lock()
	l.metaWritten += int64(n)
	if t := r.Type(); t != RecordSynced && t != RecordAnchor {
		l.metaVital = l.metaWritten
	}
	l.mu.Unlock()
	return nil
}

// claimLocked writes a Synced record for offset. The caller holds syncMu.
func (l *Log) claimLocked(offset int64) error {
	s := &Synced{NextOffset: offset}
	if err := l.writeMetaRecord(s); err != nil {
		return err
	}
	l.mu.Lock()
	err := l.book.apply(s)
	l.mu.Unlock()
	if err != nil {
		return l.fail(fmt.Errorf("synced %d: %w", offset, err))
	}
	return nil
}

// syncedClaim is the offset of the last Synced record in force (lowered
// by a truncation since). Only syncMu's holder changes it.
func (l *Log) syncedClaim() int64 {
	l.mu.RLock()
	defer l.mu.RUnlock()
	return l.book.synced
}

// SetHardState records raft's hard state. Term and vote are written to
// raft-state by the next Sync; the commit index is not stored (at restart
// the applied index stands for it, design §1.3).
func (l *Log) SetHardState(hs *raftpb.HardState) error {
	if err := l.checkWritable(); err != nil {
		return err
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if hs.GetTerm() < l.want.Term {
		return fmt.Errorf("hard state term %d below term %d", hs.GetTerm(), l.want.Term)
	}
	l.want.Term, l.want.Vote = hs.GetTerm(), hs.GetVote()
	return nil
}

// RecordApplied records that entries up to index are applied, with the
// ConfState as of index (nil: unchanged). It is written to raft-state at
// the next checkpoint (or term change). Raft hands out only entries that
// are locally durable, so raft-state never names an applied entry a crash
// could take back.
func (l *Log) RecordApplied(index uint64, conf *raftpb.ConfState) error {
	var cs []byte
	if conf != nil {
		var err error
		if cs, err = (proto.MarshalOptions{Deterministic: true}).Marshal(conf); err != nil {
			return fmt.Errorf("record applied %d: %w", index, err)
		}
		if len(cs) > confStateBytesMax {
			return fmt.Errorf("record applied %d: ConfState of %d bytes, max %d", index, len(cs), confStateBytesMax)
		}
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if index < l.want.Applied || index > l.last {
		return fmt.Errorf("record applied %d: outside [%d, %d]", index, l.want.Applied, l.last)
	}
	l.want.Applied = index
	if conf != nil {
		l.want.ConfState = cs
	}
	return nil
}

// Sync makes everything written before the call durable: the segments,
// then raft-meta, with a Synced record of the segments' new synced end
// when it moved, then raft-state when the term or vote changed or a
// record other than Synced and Anchor records lies past its recovery
// point. The Synced record is what lets Open tell synced batches a disk
// damaged from a torn write: a replica that cut the former as the latter
// could vote a leader lacking entries it acknowledged into office. It may
// run on another goroutine (a flusher) concurrently with the write side.
// A failure makes the log failed for good, as storage.Log.Sync does.
func (l *Log) Sync() error {
	l.syncMu.Lock()
	defer l.syncMu.Unlock()
	want, err := l.syncLocked()
	if err != nil {
		return err
	}
	l.mu.RLock()
	vital := l.metaVital
	l.mu.RUnlock()
	// raft-meta's records past raft-state's recovery point are taken for
	// a torn tail when damaged, so one whose loss would lose entries
	// acknowledged after this Sync (a non-data entry, which the batches
	// after it are counted from; a truncation; a compaction point) moves
	// the recovery point past it now. Only Synced records (and anchors)
	// stay past it, and losing those only weakens the segments' check.
	// Such records are rare (a term's first entry, a conf change), so this
	// rewrite is too.
	behind := l.persisted.MetaGeneration == l.metaGeneration && vital > l.persisted.MetaRecoveryPoint
	if want.Term == l.persisted.Term && want.Vote == l.persisted.Vote && !behind {
		return nil
	}
	return l.writeStateLocked(want)
}

// syncLocked syncs the segments and raft-meta and returns the raft-state
// wanted when it began. The caller holds syncMu.
func (l *Log) syncLocked() (State, error) {
	if err := l.checkWritable(); err != nil {
		return State{}, err
	}
	l.mu.RLock()
	want := l.want
	l.mu.RUnlock()
	// The segments first: a raft-meta record synced before the batches
	// it follows would describe entries a crash may lose, which Open
	// cuts; the reverse is never needed. The Synced record is written
	// after their sync returned, so it never claims more than is durable,
	// whenever writeback takes it to the disk.
	synced, err := l.storage.Sync()
	if err != nil {
		return State{}, l.fail(fmt.Errorf("sync: %w", err))
	}
	if synced > l.syncedClaim() {
		if err := l.claimLocked(synced); err != nil {
			return State{}, err
		}
	}
	if err := l.syncMetaLocked(); err != nil {
		return State{}, err
	}
	return want, nil
}

// syncMeta fsyncs raft-meta.
func (l *Log) syncMeta() error {
	l.syncMu.Lock()
	defer l.syncMu.Unlock()
	return l.syncMetaLocked()
}

// syncMetaVital syncs raft-meta and moves raft-state's recovery point past
// what it holds, the raft-state otherwise as last written.
func (l *Log) syncMetaVital() error {
	l.syncMu.Lock()
	defer l.syncMu.Unlock()
	if err := l.syncMetaLocked(); err != nil {
		return err
	}
	if l.persisted.MetaGeneration == l.metaGeneration && l.metaSynced <= l.persisted.MetaRecoveryPoint {
		return nil
	}
	return l.writeStateLocked(l.persisted)
}

func (l *Log) syncMetaLocked() error {
	l.mu.RLock()
	written, failure := l.metaWritten, l.failure
	l.mu.RUnlock()
	if failure != nil {
		// Torn bytes may end the file: a sync would make them durable,
		// and a later record would follow them.
		return failure
	}
	if written <= l.metaSynced {
		return nil
	}
	if err := l.meta.Sync(); err != nil {
		return l.fail(fmt.Errorf("sync %s: %w", metaFileName, err))
	}
	l.metaSynced = written
	return nil
}

// writeStateLocked writes raft-state s with the raft-meta bytes known
// synced. The caller holds syncMu.
func (l *Log) writeStateLocked(s State) error {
	if err := l.checkWritable(); err != nil {
		return err // a recovery point past torn bytes would make them damage
	}
	s.MetaRecoveryPoint, s.MetaGeneration, s.Clean = l.metaSynced, l.metaGeneration, false
	if err := WriteState(l.fs, filepath.Join(l.dir, stateFileName), s); err != nil {
		return l.fail(err)
	}
	l.persisted = s
	return nil
}

// Checkpoint bounds the work of the next Open: it anchors the last data
// entry in raft-meta, syncs everything, checkpoints the segments (their
// recovery point moves to the end), rewrites raft-meta when it grew well
// past its live records (rewriteMetaLocked), and writes raft-state with
// the applied index, ConfState and raft-meta's synced size and
// generation, unless nothing changed since it was last written (an idle
// log writes nothing). A restart then
// walks only what was appended after it. Write side only.
func (l *Log) Checkpoint() error {
	if err := l.anchorLastData(); err != nil {
		return err
	}
	l.syncMu.Lock()
	defer l.syncMu.Unlock()
	want, err := l.syncLocked()
	if err != nil {
		return err
	}
	if err := l.storage.Checkpoint(); err != nil {
		return l.fail(fmt.Errorf("checkpoint: %w", err))
	}
	if err := l.rewriteMetaLocked(); err != nil {
		return err
	}
	if sameState(want, l.persisted, l.metaSynced, l.metaGeneration) {
		return nil
	}
	return l.writeStateLocked(want)
}

// sameState reports whether writing want would change raft-state p.
func sameState(want, p State, metaSynced int64, metaGeneration uint32) bool {
	return want.Term == p.Term && want.Vote == p.Vote && want.Applied == p.Applied &&
		bytes.Equal(want.ConfState, p.ConfState) && metaSynced == p.MetaRecoveryPoint && metaGeneration == p.MetaGeneration
}

// anchorLastData appends an Anchor record for the last data entry when it
// is above the last persisted anchor and the compaction point; the sync that follows in Checkpoint
// covers the batch before the record.
func (l *Log) anchorLastData() error {
	if err := l.checkWritable(); err != nil {
		return err
	}
	a := Anchor(l.w.lastData)
	l.mu.RLock()
	last, ok := l.book.anchorAtOrBelow(l.last)
	compacted := a.Index <= l.book.snapshot.Index
	l.mu.RUnlock()
	if a.Index == 0 || compacted || (ok && last.Index >= a.Index) {
		return nil
	}
	if err := l.writeMetaRecord(&a); err != nil {
		return err
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if err := l.book.apply(&a); err != nil {
		return l.failLocked(fmt.Errorf("anchor %+v: %w", a, err))
	}
	return nil
}

// checkWritable returns the failure that stopped the log, if any.
func (l *Log) checkWritable() error {
	l.mu.RLock()
	defer l.mu.RUnlock()
	return l.failure
}

// fail makes the log failed with cause and returns the failure.
func (l *Log) fail(cause error) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.failLocked(cause)
}

func (l *Log) failLocked(cause error) error {
	if l.failure == nil {
		if !errors.Is(cause, storage.ErrFailed) {
			cause = fmt.Errorf("%w: %w", storage.ErrFailed, cause)
		}
		l.failure = fmt.Errorf("raft log %s: %w", l.dir, cause)
	}
	return l.failure
}

// Close closes the segments and raft-meta without syncing: a caller that
// wants a short next Open checkpoints first.
func (l *Log) Close() error {
	err := l.meta.Close()
	if serr := l.storage.Close(); err == nil {
		err = serr
	}
	if err != nil {
		return fmt.Errorf("close raft log %s: %w", l.dir, err)
	}
	return nil
}
