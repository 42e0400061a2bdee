package storage

import (
	"errors"
	"fmt"
)

// Reset empties the log and restarts it at offset, at or past NextOffset:
// every segment goes, StartOffset and NextOffset become offset, and the
// next Append starts there. A Raft follower installing a snapshot whose
// data it does not hold restarts its log at the snapshot's next offset
// this way; the data below comes later, out of band, or never (delete
// retention). It is a mutation: the caller serializes it with the others.
//
// Crash safety: the state file naming offset as start, log end and only
// segment is written first, atomically; that is the commit point.
// Recovery removes segments below the start and creates the empty segment
// holding the recovery point when it is missing, so a crash before the
// state file leaves the old log and any crash after it the empty one.
func (l *Log) Reset(offset, nowMs int64) error {
	if err := l.checkWritable(); err != nil {
		return err
	}
	l.mu.RLock()
	next, active := l.nextOffset, l.active()
	l.mu.RUnlock()
	if offset < next {
		return fmt.Errorf("reset log %s at %d: below the log end %d: %w", l.dir, offset, next, ErrOffsetOutOfRange)
	}
	// Only an empty active segment can already sit at offset (its base is
	// at most the log end); it is kept as the new log's only segment.
	keep := active.base == offset
	created := nowMs
	if keep {
		created = active.createdMs
	}
	st := logState{
		startOffset: offset,
		recovery:    recoveryPoint{nextOffset: offset, segmentBase: offset, maxTimestampMs: noTimestamp, maxTimestampOffset: -1},
		segments:    []segmentRecord{{base: offset, createdMs: created}},
	}
	if err := l.writeState(st); err != nil {
		return fmt.Errorf("reset log %s at %d: %w", l.dir, offset, err)
	}
	if err := l.swapForEmpty(offset, created, keep); err != nil {
		return fmt.Errorf("reset log %s at %d: %w", l.dir, offset, err)
	}
	return nil
}

// swapForEmpty replaces the segments by one empty segment at offset (the
// active one when keep), after the state file already says so, and removes
// the old files. Readers of the old segments keep them open until they
// finish; a read spanning segments starts over, as after a cut.
func (l *Log) swapForEmpty(offset, createdMs int64, keep bool) error {
	var s *segment
	if keep {
		s = l.active()
	} else {
		var err error
		if s, err = l.createSegment(offset, createdMs); err != nil {
			// The state file names a segment that is not there: only a
			// recovery (which creates it) can go on.
			return l.fail(err)
		}
	}
	l.mu.Lock()
	var dropped []*segment
	for _, old := range l.segments {
		if old != s {
			dropped = append(dropped, old)
		}
	}
	l.segments = []*segment{s}
	l.startOffset, l.nextOffset, l.syncedNextOffset = offset, offset, offset
	l.dirGeneration++
	l.truncations++
	l.mu.Unlock()
	var errs []error
	for _, old := range dropped {
		errs = append(errs, old.closeIndexFiles(), old.retire(), l.removeSegmentFiles(old.base))
	}
	if err := errors.Join(errs...); err != nil {
		return err
	}
	// The new segment's files must be durable in the directory before
	// anything appended to them is called synced.
	return l.checkpoint(false, offset, 0)
}
