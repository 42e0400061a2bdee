package storage

import (
	"fmt"
	"io"
)

// Tail is the batches appended to a log since it was last made durable,
// as UnsyncedTail found them: what a node journal can hold in place of the
// log's own Sync.
type Tail struct {
	// First is the offset of the first batch, Next the offset after the
	// last: the log end when UnsyncedTail ran. First == Next when
	// everything appended is durable already.
	First, Next int64

	segment   *segment // referenced until ReadTail
	from, end int64    // positions in segment
}

// Len is the bytes of the tail's batches.
func (t Tail) Len() int { return int(t.end - t.from) }

// UnsyncedTail returns the batches appended since the last Sync or
// MarkJournaled, when all of them lie in the active segment, every other
// segment is synced and no directory change waits for a sync; ok is false
// otherwise (after a roll, say), or when there are more than maxBytes of
// them: then only Sync will do. A non-empty tail holds its segment open
// until ReadTail. It may run concurrently with one mutation, like Sync.
func (l *Log) UnsyncedTail(maxBytes int64) (t Tail, ok bool, err error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if err := l.checkWritableLocked(); err != nil {
		return Tail{}, false, err
	}
	s := l.active()
	if l.nextOffset == l.durableNext {
		return Tail{First: l.nextOffset, Next: l.nextOffset}, true, nil
	}
	usable := s == l.durableSegment && l.dirGeneration == l.dirSyncedGeneration &&
		s.sizeBytes-l.durableSize <= maxBytes
	for _, other := range l.segments[:len(l.segments)-1] {
		usable = usable && other.writeGeneration == other.syncedGeneration
	}
	if !usable {
		return Tail{}, false, nil
	}
	s.acquire()
	return Tail{First: l.durableNext, Next: l.nextOffset, segment: s, from: l.durableSize, end: s.sizeBytes}, true, nil
}

// ReadTail reads t's batches into dst (t.Len() bytes) and lets go of its
// segment; call it once for every non-empty tail, also when dst is nil
// (to let go only).
func (l *Log) ReadTail(t Tail, dst []byte) error {
	if t.segment == nil {
		return nil
	}
	defer t.segment.release()
	if dst == nil {
		return nil
	}
	if _, err := t.segment.log.ReadAt(dst[:t.Len()], t.from); err != nil && err != io.EOF {
		return fmt.Errorf("read unsynced tail of segment %d of %s: %w", t.segment.base, l.dir, err)
	}
	return nil
}

// MarkJournaled records that t, taken by UnsyncedTail, is durable in a
// journal: the next UnsyncedTail starts after it. It changes nothing the
// log's own recovery relies on: Sync still syncs those batches' segment,
// and the recovery point moves only with a sync.
func (l *Log) MarkJournaled(t Tail) {
	l.mu.Lock()
	defer l.mu.Unlock()
	// A Sync since t was taken may have covered more, past a roll.
	if t.segment == l.durableSegment && t.Next > l.durableNext {
		l.durableNext, l.durableSize = t.Next, t.end
	}
}

// NeedsJournal says whether the log still needs a journal's copy of its
// batches below next: true until a Sync covered them or the log was closed
// or deleted, and always once the log failed (its files cannot be trusted
// to hold what was appended; the next Open replays the journal).
func (l *Log) NeedsJournal(next int64) bool {
	l.mu.RLock()
	defer l.mu.RUnlock()
	if l.failure != nil {
		return true
	}
	return !l.closed && l.syncedNextOffset < next
}
