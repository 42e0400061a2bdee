package raftlog

import (
	"errors"
	"fmt"
	"io/fs"
	"math"
	"path/filepath"
	"sort"

	"go.etcd.io/raft/v3/raftpb"
	"google.golang.org/protobuf/proto"

	"github.com/cairnlog/cairn/storage"
	"github.com/cairnlog/cairn/storage/vfs"
)

// File names beside the segments. Part of the format.
const (
	stateFileName = "raft-state"
	metaFileName  = "raft-meta"
)

// ErrExists: Create found a raft log already there.
var ErrExists = errors.New("raftlog: log exists")

// Bootstrap describes a new replica's log: etcd's recommended bootstrap,
// a snapshot at Index (≥ 1) of Term holding the initial ConfState, with
// no entry and no Kafka offset below it (design §1.8).
type Bootstrap struct {
	GroupID, ReplicaID uint64
	Index, Term        uint64
	ConfState          *raftpb.ConfState
}

// Create makes the raft log of a partition in dir: raft-meta holding the
// bootstrap snapshot, then raft-state (term, applied = the snapshot
// index), each written atomically, so a crash leaves either no raft-state
// (Open says ErrStateMissing and Create may run again) or the whole log.
// A directory with a raft-state is ErrExists.
//
// A legacy directory, written by the single-node partition (segments,
// perhaps leader-epochs.json, no raft log), keeps its data below the
// snapshot (design §1.8): the snapshot's next offset is the legacy log
// end, its log start the legacy start, its term the larger of boot.Term
// and the newest legacy epoch, and the legacy epochs go into it, so
// EpochEndOffset answers them below it and Snapshot's descriptor carries
// them. The legacy files are left alone.
func Create(fsys vfs.FS, dir string, cfg storage.Config, boot Bootstrap, nowMs int64) (*Log, error) {
	if boot.Index == 0 || boot.Term == 0 || boot.Term > math.MaxInt32 {
		return nil, fmt.Errorf("create raft log %s: bootstrap at index %d, term %d", dir, boot.Index, boot.Term)
	}
	conf, err := (proto.MarshalOptions{Deterministic: true}).Marshal(boot.ConfState)
	if err != nil || len(conf) > confStateBytesMax {
		return nil, fmt.Errorf("create raft log %s: ConfState of %d bytes: %v", dir, len(conf), err)
	}
	st, err := storage.Open(fsys, dir, cfg, nowMs)
	if err != nil {
		return nil, err
	}
	l, err := create(fsys, dir, st, boot, conf)
	if err != nil {
		st.Close()
		return nil, err
	}
	return l, nil
}

func create(fsys vfs.FS, dir string, st *storage.Log, boot Bootstrap, conf []byte) (*Log, error) {
	statePath, metaPath := filepath.Join(dir, stateFileName), filepath.Join(dir, metaFileName)
	if _, err := fsys.Stat(statePath); err == nil {
		return nil, fmt.Errorf("create raft log %s: %w", dir, ErrExists)
	} else if !errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("create raft log %s: %w", dir, err)
	}
	legacy, err := loadLegacyEpochs(fsys, dir, st.NextOffset())
	if err != nil {
		return nil, fmt.Errorf("create raft log %s: %w", dir, err)
	}
	snap, err := legacySnapshot(boot, conf, st.StartOffset(), st.NextOffset(), legacy)
	if err != nil {
		return nil, fmt.Errorf("create raft log %s: %w", dir, err)
	}
	h, err := writeMeta(fsys, metaPath, MetaHeader{GroupID: boot.GroupID, ReplicaID: boot.ReplicaID, Generation: 1}, []Record{snap})
	if err != nil {
		return nil, fmt.Errorf("create raft log %s: %w", dir, err)
	}
	state := State{GroupID: boot.GroupID, ReplicaID: boot.ReplicaID, Term: snap.Term, Applied: boot.Index,
		MetaRecoveryPoint: h.WrittenBytes, MetaGeneration: h.Generation, ConfState: conf}
	if err := WriteState(fsys, statePath, state); err != nil {
		return nil, fmt.Errorf("create raft log %s: %w", dir, err)
	}
	b := &book{}
	if err := b.apply(snap); err != nil {
		return nil, fmt.Errorf("create raft log %s: %w", dir, err)
	}
	meta, err := fsys.OpenAppend(metaPath)
	if err != nil {
		return nil, fmt.Errorf("create raft log %s: %w", dir, err)
	}
	return &Log{storage: st, fs: fsys, dir: dir, meta: meta, book: b, last: boot.Index,
		metaWritten: h.WrittenBytes, metaVital: h.WrittenBytes, metaSynced: h.WrittenBytes, metaGeneration: h.Generation, want: state, persisted: state}, nil
}

// Open opens the raft log in dir and recovers it (design §1.6): the
// segments as storage.OpenSyncedTo recovers them given raft-meta's last
// Synced offset, raft-state, raft-meta up to its
// recovery point (a torn tail after it is cut), then a walk from the last
// anchor below the segments' end that counts entries to the end of the
// log and stops at the first disagreement between the segments and
// raft-meta; what follows is cut (segments first, then a Truncate
// record, as Append does). What was cut was never covered by a completed
// Sync, or is a suffix a leader of a higher term overrode: a cut below
// the last Synced record is damage instead.
//
// Damage is a *storage.CorruptionError: raft-state unreadable, or missing
// beside segments holding batches; raft-meta missing, of a wrong
// generation, damaged before its recovery point or contradicting itself;
// a snapshot past the segments' end; an applied entry the walk does not
// reach; segments ending, or a walk stopping, below the offset raft-meta's
// last Synced record says they were synced up to. A directory without
// raft-state and without batches gives an error wrapping ErrStateMissing
// (never created, or Create interrupted).
func Open(fsys vfs.FS, dir string, cfg storage.Config, nowMs int64) (*Log, error) {
	st, err := storage.OpenSyncedTo(fsys, dir, cfg, nowMs, syncedFloor(fsys, dir))
	if err != nil {
		return nil, err
	}
	l, err := open(fsys, dir, st, nowMs)
	if err != nil {
		st.Close()
		return nil, err
	}
	return l, nil
}

// syncedFloor is the offset raft-meta's last Synced record says the
// segments were synced up to, read before the segments are recovered so
// that storage refuses to cut below it (the batches after damage stay on
// disk for whoever looks at the refused directory). It reads without
// changing a file; what it cannot read gives 0, and open then reports why.
func syncedFloor(fsys vfs.FS, dir string) int64 {
	state, err := ReadState(fsys, filepath.Join(dir, stateFileName))
	if err != nil {
		return 0
	}
	name := filepath.Join(dir, metaFileName)
	if size, err := fsys.Stat(name); err != nil || size > metaFileBytesMax {
		return 0
	}
	b, err := vfs.ReadFile(fsys, name)
	if err != nil {
		return 0
	}
	scan, err := ScanMeta(name, b, state.MetaGeneration, state.MetaRecoveryPoint)
	if err != nil {
		return 0
	}
	book, err := bookOf(name, scan.Records)
	if err != nil {
		return 0
	}
	return book.synced
}

func open(fsys vfs.FS, dir string, st *storage.Log, nowMs int64) (*Log, error) {
	state, err := readStateForOpen(fsys, dir, st)
	if err != nil {
		return nil, err
	}
	metaPath := filepath.Join(dir, metaFileName)
	scan, err := readMeta(fsys, metaPath, state.MetaGeneration, state.MetaRecoveryPoint)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, corruption(metaPath, "missing beside raft-state")
	}
	if err != nil {
		return nil, fmt.Errorf("open raft log %s: %w", dir, err)
	}
	if scan.Header.GroupID != state.GroupID || scan.Header.ReplicaID != state.ReplicaID {
		return nil, corruption(metaPath, "group %d replica %d, raft-state says group %d replica %d",
			scan.Header.GroupID, scan.Header.ReplicaID, state.GroupID, state.ReplicaID)
	}
	b, err := bookOf(metaPath, scan.Records)
	if err != nil {
		return nil, err
	}
	if end := st.NextOffset(); b.synced > end {
		// storage cut what it took for a torn tail, but a sync had
		// covered it: damage, whose cut loses entries this replica may
		// have acknowledged. syncedFloor makes storage refuse this
		// itself; this check holds when that first read of raft-meta
		// failed (it then gives 0) and this one succeeded.
		return nil, corruption(dir, "the segments end at offset %d, below offset %d, which they were synced up to", end, b.synced)
	}
	// An installed snapshot's raft-meta that raft-state does not name yet:
	// the segments' reset may not have happened.
	resetDue := scan.Header.ResetSegments && scan.Header.Generation != state.MetaGeneration
	if resetDue {
		if err := finishReset(fsys, dir, st, b.snapshot, nowMs); err != nil {
			return nil, err
		}
	}
	meta, err := fsys.OpenAppend(metaPath)
	if err != nil {
		return nil, fmt.Errorf("open raft log %s: %w", dir, err)
	}
	// Bytes after raft-state's recovery point were read back, not
	// necessarily synced: sync them so that metaSynced is true.
	if err := meta.Sync(); err != nil {
		meta.Close()
		return nil, fmt.Errorf("open raft log %s: sync %s: %w", dir, metaFileName, err)
	}
	// Compacted entries were applied; raft-state may predate the
	// compaction (it is written at checkpoints), and raft refuses an
	// applied index or commit below the snapshot.
	want := state
	if b.snapshot.Index > state.Applied {
		want.Applied, want.ConfState = b.snapshot.Index, b.snapshot.ConfState
	}
	l := &Log{storage: st, fs: fsys, dir: dir, meta: meta, book: b,
		metaWritten: scan.ValidBytes, metaVital: scan.ValidBytes, metaSynced: scan.ValidBytes, metaGeneration: scan.Header.Generation,
		want: want, persisted: state}
	if err := l.recoverEnd(); err != nil {
		meta.Close()
		return nil, err
	}
	if scan.Header.Generation != state.MetaGeneration {
		// raft-meta was replaced (a rewrite or an install) and raft-state
		// not written after: name the new file now, so that the next
		// replacement is never two generations ahead of raft-state, and
		// an install's reset is history.
		if err := l.writeStateLocked(want); err != nil {
			meta.Close()
			return nil, fmt.Errorf("open raft log %s: %w", dir, err)
		}
	}
	if err := removeInstalledStaging(fsys, dir, b.snapshot.Index); err != nil {
		meta.Close()
		return nil, fmt.Errorf("open raft log %s: %w", dir, err)
	}
	return l, nil
}

// finishReset restarts the segments empty at the installed snapshot's
// next offset unless they already are, and when the snapshot's log start
// is below it (the install had the staged copy) installs the staged data
// below them again. The old segments may span exactly the offsets the
// copy fills (the install cuts only entries reaching past the next
// offset), so segments there cannot be told from an install done; the
// staged copy stays until raft-state names the install, so it is there
// to install again.
func finishReset(fsys vfs.FS, dir string, st *storage.Log, snap Snapshot, nowMs int64) error {
	start, next := snap.LogStartOffset, snap.NextOffset
	if start == next && st.StartOffset() == next && st.NextOffset() == next {
		return nil
	}
	if err := st.Reset(next, nowMs); err != nil {
		return fmt.Errorf("finish installing the snapshot at %d: %w", snap.Index, err)
	}
	if start < next {
		if err := installStaged(fsys, dir, st, stagedOf(snap), nowMs); err != nil {
			return fmt.Errorf("finish installing the snapshot at %d: %w", snap.Index, err)
		}
	}
	return nil
}

// readStateForOpen reads raft-state, telling a log never created apart
// from damage.
func readStateForOpen(fsys vfs.FS, dir string, st *storage.Log) (State, error) {
	statePath := filepath.Join(dir, stateFileName)
	state, err := ReadState(fsys, statePath)
	switch {
	case errors.Is(err, ErrStateMissing) && st.NextOffset() == 0:
		return State{}, fmt.Errorf("open raft log %s: %w", dir, err)
	case errors.Is(err, ErrStateMissing):
		// Segments without raft-state: a legacy directory, or one whose
		// Create was interrupted, unless raft-meta shows the log was used.
		if unused, detail := createUnfinished(fsys, dir); !unused {
			return State{}, corruption(statePath, "missing beside segments ending at offset %d and %s", st.NextOffset(), detail)
		}
		return State{}, fmt.Errorf("open raft log %s: %w", dir, err)
	case errors.Is(err, ErrInvalid):
		return State{}, corruption(statePath, "%v", err)
	case err != nil:
		return State{}, fmt.Errorf("open raft log %s: %w", dir, err)
	}
	return state, nil
}

// createUnfinished reports whether dir's raft-meta is absent or is what
// Create writes before raft-state: generation 1 holding only the Snapshot
// record. Otherwise it says what shows the log was used.
func createUnfinished(fsys vfs.FS, dir string) (bool, string) {
	name := filepath.Join(dir, metaFileName)
	b, err := vfs.ReadFile(fsys, name)
	if errors.Is(err, fs.ErrNotExist) {
		return true, ""
	}
	if err != nil {
		return false, fmt.Sprintf("%s unreadable: %v", metaFileName, err)
	}
	scan, err := ScanMeta(name, b, 1, 0)
	if err != nil {
		return false, fmt.Sprintf("%s damaged: %v", metaFileName, err)
	}
	if _, snap := firstRecord(scan.Records).(*Snapshot); scan.Header.Generation != 1 || len(scan.Records) != 1 || !snap {
		return false, fmt.Sprintf("%s of generation %d holding %d records", metaFileName, scan.Header.Generation, len(scan.Records))
	}
	return true, ""
}

func firstRecord(records []Record) Record {
	if len(records) == 0 {
		return nil
	}
	return records[0]
}

// bookOf applies raft-meta's records; a contradiction is corruption.
func bookOf(name string, records []Record) (*book, error) {
	b := &book{}
	for k, r := range records {
		if err := b.apply(r); err != nil {
			return nil, corruption(name, "record %d (%s): %v", k, r.Type(), err)
		}
	}
	if !b.hasSnapshot {
		return nil, corruption(name, "no Snapshot record")
	}
	return b, nil
}

// recoverEnd finds the last entry by walking from the last anchor below
// the segments' end, and cuts whatever the walk could not account for.
func (l *Log) recoverEnd() error {
	segmentsEnd := l.storage.NextOffset()
	if next := l.book.snapshot.NextOffset; next > segmentsEnd {
		return corruption(l.dir, "snapshot at entry %d is followed by offset %d, the segments end at %d",
			l.book.snapshot.Index, next, segmentsEnd)
	}
	end, err := walkToEnd(l.book, l.headerReader(), recoveryStart(l.book, segmentsEnd))
	if err != nil {
		return fmt.Errorf("open raft log %s: %w", l.dir, err)
	}
	l.last = end.Index - 1
	if l.last < l.want.Applied {
		return corruption(l.dir, "entry %d was applied, the log ends at entry %d (%v)", l.want.Applied, l.last, end.mismatch)
	}
	for _, a := range end.fine {
		l.book.addFine(a)
	}
	l.w.lastData = end.lastData
	if end.mismatch == nil && l.book.lastIndex() < end.Index && segmentsEnd == end.Offset {
		return nil
	}
	if end.Offset < l.book.synced {
		// The segments and raft-meta disagree below where a sync reached:
		// what was synced is damaged (a batch's leader epoch, which its
		// CRC does not cover), not torn.
		return corruption(l.dir, "entry %d at offset %d is not what raft-meta describes (%v), below offset %d, which the segments were synced up to",
			end.Index, end.Offset, end.mismatch, l.book.synced)
	}
	return l.cutAtOpen(end.Position, segmentsEnd)
}

// recoveryStart is where Open's walk begins: the last persisted anchor
// below the segments' end (one at or past it may describe a batch a crash
// or an interrupted truncation took away), else the entry after the
// snapshot. Everything before it was synced when the anchor was written.
func recoveryStart(b *book, segmentsEnd int64) Position {
	pos := Position{Index: b.snapshot.Index + 1, Offset: b.snapshot.NextOffset}
	at := sort.Search(len(b.anchors), func(k int) bool { return b.anchors[k].Offset >= segmentsEnd })
	if at > 0 && b.anchors[at-1].Index >= pos.Index {
		pos = Position(b.anchors[at-1])
	}
	return pos
}

// cutAtOpen cuts the log at end, as a conflicting Append does: segments
// first, then a synced Truncate record.
func (l *Log) cutAtOpen(end Position, segmentsEnd int64) error {
	if end.Offset < segmentsEnd {
		if err := l.storage.TruncateSuffix(end.Offset); err != nil {
			return fmt.Errorf("open raft log %s: cut at entry %d, offset %d: %w", l.dir, end.Index, end.Offset, err)
		}
	}
	t := &Truncate{Index: end.Index, NextOffset: end.Offset}
	if err := l.book.apply(t); err != nil {
		return corruption(l.dir, "cut at entry %d: %v", end.Index, err)
	}
	if err := l.writeMetaRecord(t); err != nil {
		return err
	}
	return l.syncMeta()
}

// InitialState returns the hard state (term and vote as set, the applied
// index standing for the commit index, design §1.3) and the ConfState as
// of the applied index.
func (l *Log) InitialState() (*raftpb.HardState, *raftpb.ConfState, error) {
	l.mu.RLock()
	s := l.want
	l.mu.RUnlock()
	cs := &raftpb.ConfState{}
	if err := proto.Unmarshal(s.ConfState, cs); err != nil {
		return nil, nil, fmt.Errorf("raft log %s: ConfState: %w", l.dir, err)
	}
	hs := &raftpb.HardState{Term: proto.Uint64(s.Term), Vote: proto.Uint64(s.Vote), Commit: proto.Uint64(s.Applied)}
	return hs, raftpb.EnsureConfState(cs), nil
}
