package raftlog

import (
	"errors"
	"fmt"
	"io/fs"
	"path/filepath"

	"github.com/cairnlog/cairn/batch"
	"github.com/cairnlog/cairn/storage"
	"github.com/cairnlog/cairn/storage/vfs"
)

// Staging directory layout (design §2.2): a follower copying the data
// below a leader's snapshot writes it beside its log, in <dir>.install/,
// before the snapshot is installed. Part of the format; doc.go draws it.
const (
	stagingSuffix        = ".install"
	stagingMetaName      = "install-meta"
	stagingDataName      = "data"
	stagingCompleteName  = "complete"
	stagingMagic         = 0x43524e49 // "CRNI"
	stagingFormatVersion = 2
	stagingMetaBytesV1   = 4 + 2 + 2 + 8 + 8 + 8 + 8 + 4 // still read: no sender
	stagingMetaBytes     = stagingMetaBytesV1 + 8
)

// StagingDir is where the data below a snapshot is copied for the log in
// dir before the snapshot is installed.
func StagingDir(dir string) string { return filepath.Clean(dir) + stagingSuffix }

// StagedSnapshot names the snapshot a staging directory copies the data of.
type StagedSnapshot struct {
	Index, Term uint64
	// LogStartOffset and NextOffset are the descriptor's: the copy holds
	// the sender's batches in [LogStartOffset, NextOffset).
	LogStartOffset, NextOffset int64
	// Sender names who the data is copied from (a node): a copy resumes
	// only from the same sender, since replicas clean their logs each on
	// its own, so two of them may hold different data below one snapshot.
	// Zero where it does not matter: an install takes the complete copy
	// whoever sent it; a copy recorded without one resumes for no sender.
	Sender uint64
}

// resumes says whether a copy recorded as m continues the one asked for
// as want: the same snapshot, and the same sender unless want names none.
func (m StagedSnapshot) resumes(want StagedSnapshot) bool {
	sender := m.Sender
	m.Sender = want.Sender
	return m == want && (want.Sender == 0 || sender == want.Sender)
}

// Staging is a copy in progress of the data below a snapshot, resumable: a
// reopen for the same snapshot continues after the last whole batch that
// reached the disk; for another snapshot, over damaged bookkeeping, or
// over a complete copy damaged since, it starts again empty. Not safe for concurrent use.
type Staging struct {
	fs   vfs.FS
	dir  string
	snap StagedSnapshot
	data vfs.File
	// next is where the copy continues: the offset after the last batch
	// kept, or further when the sender said a gap follows.
	next int64
}

// OpenStaging opens the log's staging directory for snap, as the
// function OpenStaging does, once no install is using it: an install
// under way reads the directory and then removes it.
func (l *Log) OpenStaging(snap StagedSnapshot) (*Staging, error) {
	l.stagingMu.Lock()
	defer l.stagingMu.Unlock()
	return OpenStaging(l.fs, l.dir, snap)
}

// OpenStaging opens the staging directory of the log in dir for snap,
// resuming a copy of the same snapshot or starting a new one.
func OpenStaging(fsys vfs.FS, dir string, snap StagedSnapshot) (*Staging, error) {
	if snap.Index == 0 || snap.Term == 0 || snap.LogStartOffset < 0 || snap.LogStartOffset > snap.NextOffset {
		return nil, fmt.Errorf("staging for %+v: %w", snap, ErrInvalid)
	}
	s := &Staging{fs: fsys, dir: StagingDir(dir), snap: snap, next: snap.LogStartOffset}
	var corrupt *storage.CorruptionError
	if err := s.resume(); err == nil {
		return s, nil
	} else if !errors.Is(err, errStartAgain) && !errors.As(err, &corrupt) {
		return nil, err
	}
	// A damaged copy is copied again; the install refuses it instead
	// (openStagedCopy), as it has no sender to copy from.
	if err := s.start(); err != nil {
		return nil, err
	}
	return s, nil
}

// errStartAgain: the staging directory holds no usable copy of the
// snapshot asked for.
var errStartAgain = errors.New("no copy to resume")

// resume reopens a copy of the same snapshot, cutting a torn tail.
func (s *Staging) resume() error {
	meta, err := s.readMeta()
	if err != nil || !meta.resumes(s.snap) {
		return errStartAgain
	}
	f, err := s.fs.OpenAppend(filepath.Join(s.dir, stagingDataName))
	if errors.Is(err, fs.ErrNotExist) {
		return errStartAgain
	}
	if err != nil {
		return fmt.Errorf("staging %s: %w", s.dir, err)
	}
	s.data = f
	// A gap may end the copy: only the marker Complete writes says the
	// data, synced before it, reaches the snapshot's next offset.
	_, err = s.fs.Stat(filepath.Join(s.dir, stagingCompleteName))
	complete := err == nil
	if err := s.scan(complete); err != nil {
		s.data.Close()
		return err
	}
	if complete {
		s.next = s.snap.NextOffset
	}
	return nil
}

// scan walks the data file's batches, keeping the whole valid ones in
// order and cutting what follows. In a complete copy, synced whole before
// its marker, nothing may follow: that is damage, and installing the
// batches before it would drop the committed ones after it.
func (s *Staging) scan(complete bool) error {
	size, err := s.data.Size()
	if err != nil {
		return fmt.Errorf("staging %s: %w", s.dir, err)
	}
	var position int64
	header := make([]byte, batch.HeaderBytes)
	for position < size {
		whole, ok := s.readBatch(position, size, header)
		if !ok {
			break
		}
		end, err := s.check(whole)
		if err != nil {
			break
		}
		position, s.next = position+int64(len(whole)), end
	}
	if position < size && complete {
		return &storage.CorruptionError{Dir: s.dir, Detail: fmt.Sprintf("the complete copy of snapshot %d holds a bad batch at position %d of %d", s.snap.Index, position, size)}
	}
	if position < size {
		if err := s.data.Truncate(position); err != nil {
			return fmt.Errorf("staging %s: cut the torn tail at %d: %w", s.dir, position, err)
		}
	}
	return nil
}

// readBatch reads the whole batch at position, false when none fits
// before size (a torn tail).
func (s *Staging) readBatch(position, size int64, header []byte) ([]byte, bool) {
	if size-position < batch.HeaderBytes {
		return nil, false
	}
	if _, err := s.data.ReadAt(header, position); err != nil {
		return nil, false
	}
	h, err := batch.ParseHeader(header)
	if err != nil || int64(h.TotalBytes()) > size-position {
		return nil, false
	}
	whole := make([]byte, h.TotalBytes())
	if _, err := s.data.ReadAt(whole, position); err != nil {
		return nil, false
	}
	return whole, true
}

// start empties the staging directory and records the snapshot it copies:
// the directory and the meta file are durable before any data is kept.
func (s *Staging) start() error {
	if err := s.fs.RemoveAll(s.dir); err != nil {
		return fmt.Errorf("staging %s: remove the previous copy: %w", s.dir, err)
	}
	if err := s.fs.MkdirAll(s.dir); err != nil {
		return fmt.Errorf("staging %s: %w", s.dir, err)
	}
	if err := s.fs.SyncDir(filepath.Dir(s.dir)); err != nil {
		return fmt.Errorf("staging %s: %w", s.dir, err)
	}
	if err := s.writeMeta(); err != nil {
		return err
	}
	f, err := s.fs.Create(filepath.Join(s.dir, stagingDataName))
	if err != nil {
		return fmt.Errorf("staging %s: %w", s.dir, err)
	}
	if err := s.fs.SyncDir(s.dir); err != nil {
		f.Close()
		return fmt.Errorf("staging %s: %w", s.dir, err)
	}
	s.data, s.next = f, s.snap.LogStartOffset
	return nil
}

// writeMeta writes the meta file (then the caller syncs the directory).
func (s *Staging) writeMeta() error {
	f, err := s.fs.Create(filepath.Join(s.dir, stagingMetaName))
	if err != nil {
		return fmt.Errorf("staging %s: %w", s.dir, err)
	}
	_, err = f.Write(encodeStagingMeta(s.snap))
	if err == nil {
		err = f.Sync()
	}
	if closeErr := f.Close(); err == nil {
		err = closeErr
	}
	if err != nil {
		return fmt.Errorf("staging %s: write %s: %w", s.dir, stagingMetaName, err)
	}
	return nil
}

// readMeta reads the meta file; any failure means there is nothing to
// resume.
func (s *Staging) readMeta() (StagedSnapshot, error) {
	f, err := s.fs.Open(filepath.Join(s.dir, stagingMetaName))
	if err != nil {
		return StagedSnapshot{}, err
	}
	defer f.Close()
	b := make([]byte, stagingMetaBytes+1)
	n, _ := f.ReadAt(b, 0)
	return decodeStagingMeta(b[:n])
}

func encodeStagingMeta(m StagedSnapshot) []byte {
	b := make([]byte, 0, stagingMetaBytes)
	b = be.AppendUint32(b, stagingMagic)
	b = be.AppendUint16(b, stagingFormatVersion)
	b = be.AppendUint16(b, 0) // flags
	b = be.AppendUint64(b, m.Index)
	b = be.AppendUint64(b, m.Term)
	b = be.AppendUint64(b, uint64(m.LogStartOffset))
	b = be.AppendUint64(b, uint64(m.NextOffset))
	b = be.AppendUint64(b, m.Sender)
	return be.AppendUint32(b, crcOf(b))
}

// decodeStagingMeta reads either version: 1 (no sender; an install may
// still take such a copy) or 2.
func decodeStagingMeta(b []byte) (StagedSnapshot, error) {
	want := map[uint16]int{1: stagingMetaBytesV1, 2: stagingMetaBytes}
	if len(b) < 8 || be.Uint32(b) != stagingMagic || len(b) != want[be.Uint16(b[4:])] ||
		be.Uint32(b[len(b)-4:]) != crcOf(b[:len(b)-4]) || be.Uint16(b[6:]) != 0 {
		return StagedSnapshot{}, fmt.Errorf("%s: %w", stagingMetaName, ErrInvalid)
	}
	m := StagedSnapshot{Index: be.Uint64(b[8:]), Term: be.Uint64(b[16:]),
		LogStartOffset: int64(be.Uint64(b[24:])), NextOffset: int64(be.Uint64(b[32:]))}
	if len(b) == stagingMetaBytes {
		m.Sender = be.Uint64(b[40:])
	}
	return m, nil
}

// Next is the offset the copy continues at.
func (s *Staging) Next() int64 { return s.next }

// Done says the copy reached the snapshot's next offset.
func (s *Staging) Done() bool { return s.next >= s.snap.NextOffset }

// Add keeps a piece the sender answered a read at Next with: its batches
// (checked by CheckSnapshotData, or CheckFirstSnapshotData for the first)
// and next, where the sender's following
// read starts (past the batches when a gap follows them). Written, not
// synced.
func (s *Staging) Add(batches []byte, next int64) error {
	end := s.next
	if len(batches) > 0 {
		var err error
		if end, err = s.check(batches); err != nil {
			return fmt.Errorf("staging %s: %w", s.dir, err)
		}
	}
	if next < end || next > s.snap.NextOffset || (len(batches) == 0 && next <= s.next) {
		return fmt.Errorf("staging %s: piece at %d ending at %d continues at %d (snapshot's next offset %d): %w",
			s.dir, s.next, end, next, s.snap.NextOffset, ErrInvalid)
	}
	if len(batches) > 0 {
		if _, err := s.data.Write(batches); err != nil {
			return fmt.Errorf("staging %s: %w", s.dir, err)
		}
	}
	s.next = next
	return nil
}

// check verifies batches that continue the copy at Next: the first piece
// (Next still the log start offset: every batch kept ends past it) may
// begin with the batch holding the log start.
func (s *Staging) check(batches []byte) (int64, error) {
	if s.next == s.snap.LogStartOffset {
		return CheckFirstSnapshotData(batches, s.next, s.snap.NextOffset)
	}
	return CheckSnapshotData(batches, s.next, s.snap.NextOffset)
}

// Sync makes what Add wrote durable.
func (s *Staging) Sync() error {
	if err := s.data.Sync(); err != nil {
		return fmt.Errorf("staging %s: %w", s.dir, err)
	}
	return nil
}

// Complete records that the copy reached the snapshot's next offset: the
// data synced, then an empty marker file made durable in the directory.
// An install uses only a complete copy.
func (s *Staging) Complete() error {
	if !s.Done() {
		return fmt.Errorf("staging %s: complete at %d, before the next offset %d: %w", s.dir, s.next, s.snap.NextOffset, ErrInvalid)
	}
	if err := s.Sync(); err != nil {
		return err
	}
	f, err := s.fs.Create(filepath.Join(s.dir, stagingCompleteName))
	if err != nil {
		return fmt.Errorf("staging %s: %w", s.dir, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("staging %s: %w", s.dir, err)
	}
	if err := s.fs.SyncDir(s.dir); err != nil {
		return fmt.Errorf("staging %s: %w", s.dir, err)
	}
	return nil
}

// Close closes the data file; the copy stays for a reopen.
func (s *Staging) Close() error { return s.data.Close() }

// RemoveStaging removes the staging directory of the log in dir (after an
// install, or a copy given up), durably.
func RemoveStaging(fsys vfs.FS, dir string) error {
	sd := StagingDir(dir)
	if err := fsys.RemoveAll(sd); err != nil {
		return fmt.Errorf("remove %s: %w", sd, err)
	}
	if err := fsys.SyncDir(filepath.Dir(sd)); err != nil {
		return fmt.Errorf("remove %s: %w", sd, err)
	}
	return nil
}
