package replica

import (
	"errors"
	"fmt"
	"sync"

	"go.etcd.io/raft/v3"
	"go.etcd.io/raft/v3/raftpb"
	"google.golang.org/protobuf/proto"
)

// Storage is the Raft log and hard state a Replica persists through. Writes
// (Append, SetHardState, ApplySnapshot) come from the Raft goroutine and are
// visible to its reads at once; Sync makes them durable and may run on another
// goroutine (the flusher) concurrently with them.
type Storage interface {
	raft.Storage
	// Append writes entries (the first may overlap the end: a conflicting suffix is
	// truncated first). Written, not yet durable.
	Append(ents []*raftpb.Entry) error
	// SetHardState records term/vote/commit; durable at the next Sync.
	SetHardState(hs *raftpb.HardState) error
	// ApplySnapshot replaces the log by the snapshot (entries at or below it dropped).
	ApplySnapshot(snap *raftpb.Snapshot) error
	// Sync makes everything written before the call durable.
	Sync() error
}

// memLog is one version of a MemStorage's contents. ents[0] is a dummy entry
// at the snapshot's index and term, as in raft.MemoryStorage. Entries are
// never mutated, and slices are shared between versions only with their
// capacity capped, so an append to one version never shows in another.
type memLog struct {
	hardState *raftpb.HardState
	snapshot  *raftpb.Snapshot
	ents      []*raftpb.Entry
	// applied and appliedConf are what RecordApplied recorded: the
	// ConfState as of applied, which InitialState returns while applied
	// is past the snapshot.
	applied     uint64
	appliedConf *raftpb.ConfState
}

func (l memLog) frozen() memLog {
	l.ents = l.ents[:len(l.ents):len(l.ents)]
	return l
}

func (l memLog) firstIndex() uint64 { return l.ents[0].GetIndex() + 1 }
func (l memLog) lastIndex() uint64  { return l.ents[0].GetIndex() + uint64(len(l.ents)) - 1 }

// MemStorage is an in-memory Storage with crash semantics: it keeps what was
// written and, separately, what the last completed Sync made durable; Crash
// throws away everything else, hard state and snapshot included. Tests and
// the simulator use it where production uses the partition's raft log.
type MemStorage struct {
	mu      sync.Mutex
	written memLog
	durable memLog
	// syncErr, when set, fails every Sync from then on (a failed fsync is
	// final, as for the partition's flusher).
	syncErr error
	syncs   int
}

// NewMemStorage returns an empty storage, durable as it is.
func NewMemStorage() *MemStorage {
	l := memLog{hardState: &raftpb.HardState{}, snapshot: raftpb.EnsureSnapshot(nil), ents: []*raftpb.Entry{{Index: new(uint64(0)), Term: new(uint64(0))}}}
	return &MemStorage{written: l.frozen(), durable: l.frozen()}
}

// NewBootstrapStorage returns a durable storage holding only a snapshot at
// index 1, term 1 whose configuration has the given voters: the same start
// for every member of a new group, so no member needs a bootstrap entry of
// its own.
func NewBootstrapStorage(voters []uint64) *MemStorage {
	s := NewMemStorage()
	snap := &raftpb.Snapshot{Metadata: &raftpb.SnapshotMetadata{
		Index: new(uint64(1)), Term: new(uint64(1)),
		ConfState: &raftpb.ConfState{Voters: append([]uint64(nil), voters...)},
	}}
	if err := s.ApplySnapshot(snap); err != nil {
		panic(fmt.Sprintf("bootstrap snapshot on an empty storage: %v", err)) // cannot fail on an empty log
	}
	s.durable = s.written.frozen()
	return s
}

// InitialState implements raft.Storage.
func (s *MemStorage) InitialState() (*raftpb.HardState, *raftpb.ConfState, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	l := s.written
	cs := raftpb.EnsureConfState(l.snapshot.GetMetadata().GetConfState())
	if l.applied > l.snapshot.GetMetadata().GetIndex() {
		cs = l.appliedConf
	}
	return proto.Clone(l.hardState).(*raftpb.HardState), proto.Clone(cs).(*raftpb.ConfState), nil
}

// RecordApplied records that the state machine applied up to index, with
// the ConfState as of index, as the partition's raft log does at a
// checkpoint: durable at the next Sync, and from then on InitialState's
// ConfState (until a later snapshot), so a replica opened with
// Config.Applied = index starts in that configuration and raft re-applies
// only the changes after it.
func (s *MemStorage) RecordApplied(index uint64, cs *raftpb.ConfState) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	l := &s.written
	if snap := l.snapshot.GetMetadata().GetIndex(); index < snap || index > l.lastIndex() {
		return fmt.Errorf("record applied %d outside the log [%d, %d]", index, snap, l.lastIndex())
	}
	l.applied, l.appliedConf = index, proto.Clone(raftpb.EnsureConfState(cs)).(*raftpb.ConfState)
	return nil
}

// Entries implements raft.Storage.
func (s *MemStorage) Entries(lo, hi, maxSize uint64) ([]*raftpb.Entry, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	l := s.written
	if lo < l.firstIndex() {
		return nil, raft.ErrCompacted
	}
	if hi > l.lastIndex()+1 {
		return nil, fmt.Errorf("entries [%d, %d) past the last index %d", lo, hi, l.lastIndex())
	}
	if lo >= hi {
		return nil, nil
	}
	off := l.ents[0].GetIndex()
	ents := l.ents[lo-off : hi-off]
	var size uint64
	for i, e := range ents {
		size += uint64(proto.Size(e))
		if i > 0 && size > maxSize {
			ents = ents[:i]
			break
		}
	}
	return ents[:len(ents):len(ents)], nil
}

// Term implements raft.Storage.
func (s *MemStorage) Term(i uint64) (uint64, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	l := s.written
	off := l.ents[0].GetIndex()
	if i < off {
		return 0, raft.ErrCompacted
	}
	if i > l.lastIndex() {
		return 0, raft.ErrUnavailable
	}
	return l.ents[i-off].GetTerm(), nil
}

// LastIndex implements raft.Storage.
func (s *MemStorage) LastIndex() (uint64, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.written.lastIndex(), nil
}

// FirstIndex implements raft.Storage.
func (s *MemStorage) FirstIndex() (uint64, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.written.firstIndex(), nil
}

// Snapshot implements raft.Storage.
func (s *MemStorage) Snapshot() (*raftpb.Snapshot, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return proto.Clone(s.written.snapshot).(*raftpb.Snapshot), nil
}

// Append implements Storage.
func (s *MemStorage) Append(ents []*raftpb.Entry) error {
	if len(ents) == 0 {
		return nil
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	l := &s.written
	first := ents[0].GetIndex()
	if first < l.firstIndex() {
		return fmt.Errorf("append at %d below the first index %d", first, l.firstIndex())
	}
	if first > l.lastIndex()+1 {
		return fmt.Errorf("append at %d leaves a gap after the last index %d", first, l.lastIndex())
	}
	for i, e := range ents[1:] {
		if e.GetIndex() != first+uint64(i)+1 {
			return fmt.Errorf("append: entry %d has index %d, want %d", i+1, e.GetIndex(), first+uint64(i)+1)
		}
	}
	keep := first - l.ents[0].GetIndex()
	// The capped slice makes append copy when it truncates, so entries other
	// versions (durable, handed out by Entries) still see stay as they were.
	l.ents = append(l.ents[:keep:keep], ents...)
	return nil
}

// SetHardState implements Storage.
func (s *MemStorage) SetHardState(hs *raftpb.HardState) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.written.hardState = proto.Clone(hs).(*raftpb.HardState)
	return nil
}

// ApplySnapshot implements Storage.
func (s *MemStorage) ApplySnapshot(snap *raftpb.Snapshot) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	idx, term := snap.GetMetadata().GetIndex(), snap.GetMetadata().GetTerm()
	if cur := s.written.snapshot.GetMetadata().GetIndex(); cur != 0 && cur >= idx {
		return fmt.Errorf("apply snapshot at %d: %w (have %d)", idx, raft.ErrSnapOutOfDate, cur)
	}
	s.written.snapshot = proto.Clone(snap).(*raftpb.Snapshot)
	s.written.ents = []*raftpb.Entry{{Index: new(idx), Term: new(term)}}
	return nil
}

// CreateSnapshot records a snapshot at index i (at most the last index) with
// the configuration cs and the state machine's data, and drops the entries
// at or below it. Used by tests to make a follower need a snapshot.
func (s *MemStorage) CreateSnapshot(i uint64, cs *raftpb.ConfState, data []byte) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	l := &s.written
	if i < l.firstIndex() || i > l.lastIndex() {
		return fmt.Errorf("snapshot at %d outside the log [%d, %d]", i, l.firstIndex(), l.lastIndex())
	}
	off := l.ents[0].GetIndex()
	term := l.ents[i-off].GetTerm()
	l.snapshot = &raftpb.Snapshot{Data: data, Metadata: &raftpb.SnapshotMetadata{
		Index: new(i), Term: new(term), ConfState: proto.Clone(cs).(*raftpb.ConfState),
	}}
	rest := l.ents[i-off+1:]
	l.ents = append([]*raftpb.Entry{{Index: new(i), Term: new(term)}}, rest...)
	return nil
}

// ErrSyncFailed is what Sync answers once FailSyncs was called.
var ErrSyncFailed = errors.New("replica: storage sync failed")

// Sync implements Storage: the written state becomes the durable one.
func (s *MemStorage) Sync() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.syncErr != nil {
		return s.syncErr
	}
	s.durable = s.written.frozen()
	s.syncs++
	return nil
}

// Syncs returns how many Syncs completed.
func (s *MemStorage) Syncs() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.syncs
}

// FailSyncs makes every later Sync fail.
func (s *MemStorage) FailSyncs() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.syncErr = ErrSyncFailed
}

// Crash drops everything written since the last completed Sync, as a power
// cut would: the storage then reads as it was durable. A replica over it
// must be recreated.
func (s *MemStorage) Crash() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.written = s.durable.frozen()
}
