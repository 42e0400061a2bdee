package raftlog

import (
	"errors"
	"fmt"
	"math"
	"path/filepath"

	"go.etcd.io/raft/v3"
	"go.etcd.io/raft/v3/raftpb"
	"google.golang.org/protobuf/proto"
)

// install is what ApplySnapshot does, decided before anything is written.
type install struct {
	rec *Snapshot
	// cut, when not zero, is the first entry cut (at offset cutOffset)
	// before the snapshot is written: the entries above the snapshot when
	// the log holds it, those reaching past its next offset otherwise.
	cut       uint64
	cutOffset int64
	// reset: the segments restart empty at rec.NextOffset (the log does not
	// hold the snapshot's entry, so the data below it is not known here).
	reset bool
	// staged, with reset: the data below the snapshot, copied whole into
	// the staging directory, goes under the emptied segments
	// (rec.LogStartOffset is then the descriptor's).
	staged *Staging
}

// ApplySnapshot makes the log the snapshot snap, as raft.MemoryStorage
// does: every entry goes, FirstIndex becomes the snapshot index + 1 and
// LastIndex the snapshot index; a snapshot at or below the current one is
// raft.ErrSnapOutOfDate. snap.Data is a Descriptor (EncodeDescriptor);
// the state machine decodes its StateData itself (DecodeDescriptor).
//
// When the log holds the snapshot's entry (same index and term), the
// segments keep the data up to it and the entries above are cut; the
// descriptor may then be absent. Otherwise the descriptor is required:
// the entries whose data reaches past the descriptor's next offset are
// cut (a suffix the leader's log does not hold: its entries below the
// snapshot's lie below that offset), and the segments restart empty at
// the descriptor's next offset; the data below it comes from the staging
// directory (StagingDir) when it holds the whole copy of this snapshot's
// data from the descriptor's log start, and is otherwise never installed
// (delete retention, or a sender that did not copy it), unless the log
// was told to refuse such an install (RequireStagedData:
// ErrSnapshotDataMissing, nothing written).
//
// The SetInstallPrepare hook runs once the install is planned, before
// any write.
//
// Crash safety: the cut is written as Append writes one (segments, then a
// synced Truncate record); the segments kept below a held snapshot are
// synced. Then a fresh raft-meta holding only the
// snapshot replaces the old one atomically, with the next generation and,
// for a reset, the ResetSegments flag; then the segments are reset (and
// the staged copy installed below them, storage.InstallBelow); then
// raft-state names the new generation, the snapshot index as applied and
// the snapshot's ConfState; then the staging directory goes. A crash
// before the new raft-meta leaves the old log, cut only of entries never
// committed, which raft replaces; after it, Open finds the
// new generation and does the reset and the staged copy's install again
// (the old segments may span the very offsets the copy fills). Write side
// only; a failure after the first write makes the log failed.
func (l *Log) ApplySnapshot(snap *raftpb.Snapshot, nowMs int64) error {
	if err := l.checkWritable(); err != nil {
		return err
	}
	l.stagingMu.Lock()
	defer l.stagingMu.Unlock()
	staged, err := l.openStagedFor(snap)
	if err != nil {
		l.mu.RLock()
		stagedOnly := l.stagedOnly
		l.mu.RUnlock()
		if stagedOnly {
			// A complete copy damaged since, or unreadable: no usable copy,
			// and nothing written yet.
			err = fmt.Errorf("%w: the staged copy: %v", ErrSnapshotDataMissing, err)
		}
		return fmt.Errorf("apply snapshot at %d: %w", snap.GetMetadata().GetIndex(), err)
	}
	if staged != nil {
		defer staged.Close()
	}
	in, err := l.planInstall(snap, staged)
	if err != nil {
		return fmt.Errorf("apply snapshot at %d: %w", snap.GetMetadata().GetIndex(), err)
	}
	l.mu.RLock()
	prepare := l.prepareInstall
	l.mu.RUnlock()
	if prepare != nil {
		if err := prepare(snap); err != nil {
			return err
		}
	}
	if in.cut != 0 {
		if err := l.truncate(in.cut, in.cutOffset); err != nil {
			return err
		}
	}
	l.syncMu.Lock()
	defer l.syncMu.Unlock()
	return l.installLocked(in, nowMs)
}

// openStagedFor opens the staged copy of the data below snap, nil when
// there is none (or no data below it, or no descriptor). Done before the
// plan, outside the log's lock: it reads the whole copy.
func (l *Log) openStagedFor(snap *raftpb.Snapshot) (*Staging, error) {
	if len(snap.GetData()) == 0 {
		return nil, nil
	}
	d, err := DecodeDescriptor(snap.GetData())
	if err != nil || d.LogStartOffset >= d.NextOffset {
		return nil, nil // planInstall reports a bad descriptor
	}
	md := snap.GetMetadata()
	s, ok, err := openStagedCopy(l.fs, l.dir, StagedSnapshot{Index: md.GetIndex(), Term: md.GetTerm(),
		LogStartOffset: d.LogStartOffset, NextOffset: d.NextOffset})
	if err != nil || !ok {
		return nil, err
	}
	return s, nil
}

// planInstall checks snap against the log and decides the install.
func (l *Log) planInstall(snap *raftpb.Snapshot, staged *Staging) (install, error) {
	md := snap.GetMetadata()
	idx, term := md.GetIndex(), md.GetTerm()
	conf, err := (proto.MarshalOptions{Deterministic: true}).Marshal(raftpb.EnsureConfState(md.GetConfState()))
	if err != nil {
		return install{}, err
	}
	if len(conf) > confStateBytesMax || term == 0 || term > math.MaxInt32 {
		return install{}, fmt.Errorf("term %d, ConfState of %d bytes", term, len(conf))
	}
	var desc *Descriptor
	if len(snap.GetData()) > 0 {
		d, err := DecodeDescriptor(snap.GetData())
		if err != nil {
			return install{}, err
		}
		desc = &d
	}
	l.mu.RLock()
	defer l.mu.RUnlock()
	if cur := l.book.snapshot.Index; idx <= cur {
		return install{}, fmt.Errorf("%w (the log's is at %d)", raft.ErrSnapOutOfDate, cur)
	}
	if idx < l.want.Applied {
		// Raft installs only snapshots past its commit index.
		return install{}, fmt.Errorf("below the applied index %d", l.want.Applied)
	}
	rec := &Snapshot{Index: idx, Term: term, ConfState: conf}
	if held, _ := l.book.term(idx); idx <= l.last && held == term {
		return l.planHeld(rec, desc)
	}
	if desc == nil {
		return install{}, errors.New("the log does not hold the snapshot's entry and the snapshot has no descriptor")
	}
	return l.planReset(rec, desc, staged)
}

// planHeld plans the install of a snapshot whose entry the log holds: the
// data below it stays, the entries above it go.
func (l *Log) planHeld(rec *Snapshot, desc *Descriptor) (install, error) {
	next, _, err := offsetOf(l.book, l.headerReader(), rec.Index+1)
	if err != nil {
		return install{}, err
	}
	if desc != nil && desc.NextOffset != next {
		return install{}, fmt.Errorf("the descriptor's next offset %d, the log's %d", desc.NextOffset, next)
	}
	rec.NextOffset, rec.LogStartOffset = next, min(l.storage.StartOffset(), next)
	rec.Terms, rec.Legacy = termsUpTo(l.book.terms, rec.Index), l.book.snapshot.Legacy
	in := install{rec: rec}
	if rec.Index < l.last {
		in.cut, in.cutOffset = rec.Index+1, next
	}
	return in, checkRecordSize(rec)
}

// planReset plans the install of a snapshot whose entry the log does not
// hold: the segments restart at the descriptor's next offset, and the
// entries reaching past it are cut first.
func (l *Log) planReset(rec *Snapshot, desc *Descriptor, staged *Staging) (install, error) {
	applied := max(l.want.Applied, l.book.snapshot.Index)
	keptEnd, _, err := offsetOf(l.book, l.headerReader(), applied+1)
	if err != nil {
		return install{}, err
	}
	if desc.NextOffset < keptEnd {
		return install{}, fmt.Errorf("the descriptor's next offset %d is below offset %d after applied entry %d", desc.NextOffset, keptEnd, applied)
	}
	rec.NextOffset, rec.LogStartOffset = desc.NextOffset, desc.NextOffset
	rec.Terms, rec.Legacy = termsUpTo(desc.Terms, rec.Index), desc.LegacyEpochs
	if err := checkTermHistory(rec); err != nil {
		return install{}, err
	}
	in := install{rec: rec, reset: true}
	if staged != nil {
		rec.LogStartOffset, in.staged = desc.LogStartOffset, staged
	} else if l.stagedOnly && desc.LogStartOffset < desc.NextOffset {
		return install{}, fmt.Errorf("%w: offsets [%d, %d) of snapshot %d (term %d)",
			ErrSnapshotDataMissing, desc.LogStartOffset, desc.NextOffset, rec.Index, rec.Term)
	}
	if l.storage.NextOffset() > desc.NextOffset {
		// storage.Reset restarts the segments at or past their end, so
		// what reaches past the descriptor's next offset goes first:
		// entries of a suffix the leader's log does not hold (the ones it
		// holds lie below the snapshot's entry, and so below that offset),
		// never committed. What lies below stays until the reset, which a
		// crash before the new raft-meta then leaves whole: cutting
		// entries above the applied index that were committed, and
		// acknowledged, would let this replica vote as if it never held
		// them, and put its high watermark above its segments' end.
		cut, cutOffset, err := l.firstPast(applied, desc.NextOffset)
		if err != nil {
			return install{}, err
		}
		in.cut, in.cutOffset = cut, cutOffset
	}
	return in, checkRecordSize(rec)
}

// firstPast finds the first entry above applied whose data reaches past
// offset, and where it starts; the caller knows the log's end lies past
// offset and that the entry after applied starts at or below it.
func (l *Log) firstPast(applied uint64, offset int64) (uint64, int64, error) {
	// The smallest k in (applied+1, last+1] starting past offset; the
	// entry before it holds the data that reaches past.
	lo, hi := applied+2, l.last+1
	for lo < hi {
		mid := lo + (hi-lo)/2
		begin, _, err := offsetOf(l.book, l.headerReader(), mid)
		if err != nil {
			return 0, 0, err
		}
		if begin > offset {
			hi = mid
		} else {
			lo = mid + 1
		}
	}
	begin, _, err := offsetOf(l.book, l.headerReader(), lo-1)
	if err != nil {
		return 0, 0, err
	}
	return lo - 1, begin, nil
}

// termsUpTo returns a copy of the term boundaries at or below index.
func termsUpTo(terms []TermStart, index uint64) []TermStart {
	var out []TermStart
	for _, t := range terms {
		if t.Index <= index {
			out = append(out, t)
		}
	}
	return out
}

// checkRecordSize refuses a Snapshot record too large to write.
func checkRecordSize(rec *Snapshot) error {
	if len(rec.Terms)*termStartBytes+len(rec.Legacy)*legacyEpochBytes > recordBytesMax/2 {
		return fmt.Errorf("%d term boundaries, %d legacy epochs", len(rec.Terms), len(rec.Legacy))
	}
	return nil
}

// installLocked writes the planned install: raft-meta, the segments'
// reset, raft-state. The caller holds syncMu.
func (l *Log) installLocked(in install, nowMs int64) error {
	if err := l.checkWritable(); err != nil {
		return err
	}
	// The data kept below a held snapshot must be durable before raft-meta
	// says the log starts after it: appended batches may not be synced
	// yet, and a cut at the log end syncs nothing.
	if !in.reset {
		if _, err := l.storage.Sync(); err != nil {
			return l.fail(fmt.Errorf("apply snapshot at %d: %w", in.rec.Index, err))
		}
	}
	// raft-state names the current raft-meta (Open and every replacement
	// write it), so the new file is one generation ahead of it.
	b := &book{}
	if err := b.apply(in.rec); err != nil {
		return fmt.Errorf("apply snapshot at %d: %w", in.rec.Index, err)
	}
	if err := l.replaceMetaLocked(in); err != nil {
		return err
	}
	l.mu.Lock()
	l.book, l.last = b, in.rec.Index
	l.cache.clear()
	l.want.Applied, l.want.ConfState = in.rec.Index, in.rec.ConfState
	want := l.want
	l.mu.Unlock()
	l.w = writer{scratch: l.w.scratch}
	if in.reset {
		if err := l.storage.Reset(in.rec.NextOffset, nowMs); err != nil {
			return l.fail(fmt.Errorf("apply snapshot at %d: %w", in.rec.Index, err))
		}
	}
	if in.staged != nil {
		if err := l.storage.InstallBelow(in.rec.LogStartOffset, in.staged.pieces(), nowMs); err != nil {
			return l.fail(fmt.Errorf("apply snapshot at %d: %w", in.rec.Index, err))
		}
	}
	if err := l.writeStateLocked(want); err != nil {
		return err
	}
	if in.staged != nil {
		// Installed: the copy is history (Open removes it after a crash).
		if err := RemoveStaging(l.fs, l.dir); err != nil {
			return fmt.Errorf("apply snapshot at %d: %w", in.rec.Index, err)
		}
	}
	return nil
}

// replaceMetaLocked writes the fresh raft-meta of an install and swaps
// the open handle for it. The caller holds syncMu.
func (l *Log) replaceMetaLocked(in install) error {
	path := filepath.Join(l.dir, metaFileName)
	h := MetaHeader{GroupID: l.persisted.GroupID, ReplicaID: l.persisted.ReplicaID,
		Generation: l.metaGeneration + 1, ResetSegments: in.reset}
	h, err := writeMeta(l.fs, path, h, []Record{in.rec})
	if err != nil {
		return l.fail(fmt.Errorf("apply snapshot at %d: %w", in.rec.Index, err))
	}
	f, err := l.fs.OpenAppend(path)
	if err != nil {
		return l.fail(fmt.Errorf("apply snapshot at %d: %w", in.rec.Index, err))
	}
	old := l.meta
	l.meta, l.metaSynced, l.metaGeneration = f, h.WrittenBytes, h.Generation
	l.mu.Lock()
	l.metaWritten, l.metaVital = h.WrittenBytes, h.WrittenBytes
	l.mu.Unlock()
	if err := old.Close(); err != nil {
		return l.fail(fmt.Errorf("apply snapshot at %d: close the old %s: %w", in.rec.Index, metaFileName, err))
	}
	return nil
}
