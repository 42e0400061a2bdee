package raftlog

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"path/filepath"

	"github.com/cairnlog/cairn/batch"
	"github.com/cairnlog/cairn/storage"
	"github.com/cairnlog/cairn/storage/vfs"
)

// stagedPieceBytes bounds the batches handed to storage.InstallBelow at a
// time while a staged copy is installed.
const stagedPieceBytes = 1 << 20

// openStagedCopy opens the staging directory of the log in dir when it
// holds the whole data below snap (Staging.Complete); ok is false (and
// nothing is changed) when it holds another snapshot's, or only part of
// it, or nothing. A complete copy damaged since is a
// *storage.CorruptionError: installing the batches before the damage
// would drop committed ones after it.
func openStagedCopy(fsys vfs.FS, dir string, snap StagedSnapshot) (s *Staging, ok bool, err error) {
	s = &Staging{fs: fsys, dir: StagingDir(dir), snap: snap, next: snap.LogStartOffset}
	if err := s.resume(); errors.Is(err, errStartAgain) {
		return nil, false, nil
	} else if err != nil {
		return nil, false, err
	}
	if _, err := s.fs.Stat(filepath.Join(s.dir, stagingCompleteName)); err != nil {
		return nil, false, s.Close()
	}
	return s, true, nil
}

// pieces reads the staged batches in order, about stagedPieceBytes at a
// time, io.EOF after the last. The copy was scanned whole by resume.
func (s *Staging) pieces() func() ([]byte, error) {
	var position int64
	header := make([]byte, batch.HeaderBytes)
	return func() ([]byte, error) {
		size, err := s.data.Size()
		if err != nil {
			return nil, fmt.Errorf("staging %s: %w", s.dir, err)
		}
		var piece []byte
		for position < size && len(piece) < stagedPieceBytes {
			whole, ok := s.readBatch(position, size, header)
			if !ok {
				return nil, fmt.Errorf("staging %s: batch at position %d: %w", s.dir, position, ErrInvalid)
			}
			piece, position = append(piece, whole...), position+int64(len(whole))
		}
		if len(piece) == 0 {
			return nil, io.EOF
		}
		return piece, nil
	}
}

// installStaged puts the staged data below snap under the segments, which
// must be empty at snap's next offset.
func installStaged(fsys vfs.FS, dir string, st *storage.Log, snap StagedSnapshot, nowMs int64) error {
	s, ok, err := openStagedCopy(fsys, dir, snap)
	if err != nil {
		return err
	}
	if !ok {
		return fmt.Errorf("the copy of the data in [%d, %d) below snapshot %d is not staged in %s: %w",
			snap.LogStartOffset, snap.NextOffset, snap.Index, StagingDir(dir), ErrInvalid)
	}
	err = st.InstallBelow(snap.LogStartOffset, s.pieces(), nowMs)
	if closeErr := s.Close(); err == nil {
		err = closeErr
	}
	return err
}

// stagedOf names the copy an installed snapshot record's data comes from.
func stagedOf(rec Snapshot) StagedSnapshot {
	return StagedSnapshot{Index: rec.Index, Term: rec.Term, LogStartOffset: rec.LogStartOffset, NextOffset: rec.NextOffset}
}

// removeInstalledStaging removes a staging directory whose snapshot the
// log installed already (or passed): a crash after an install can leave
// it. A copy for a later snapshot stays, to be resumed.
func removeInstalledStaging(fsys vfs.FS, dir string, snapshotIndex uint64) error {
	s := &Staging{fs: fsys, dir: StagingDir(dir)}
	if _, err := fsys.List(s.dir); errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	// Damaged bookkeeping holds nothing to resume either.
	if meta, err := s.readMeta(); err == nil && meta.Index > snapshotIndex {
		return nil
	}
	return RemoveStaging(fsys, dir)
}
