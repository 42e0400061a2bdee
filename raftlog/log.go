package raftlog

import (
	"bytes"
	"errors"
	"fmt"
	"math"
	"sync"

	"go.etcd.io/raft/v3"
	"go.etcd.io/raft/v3/raftpb"
	"google.golang.org/protobuf/proto"

	"github.com/cairnlog/cairn/batch"
	"github.com/cairnlog/cairn/storage"
	"github.com/cairnlog/cairn/storage/vfs"
)

// Log is a partition's Raft log: its segments (data entries, one
// RecordBatch each), the bookkeeping of raft-meta (everything else) and
// the hard state of raft-state.
//
// Concurrency: the write side (Append, SetHardState, RecordApplied,
// Checkpoint, Close) runs on one goroutine, the group's Raft goroutine.
// Sync may run concurrently with it on another (the flusher), and the
// read side (Entries, Term, FirstIndex, LastIndex, OffsetOf,
// InitialState) concurrently with both. Readers hold mu shared for a
// whole call, since they walk the bookkeeping while they read segments;
// the write side takes it exclusively only to change memory, never across
// file I/O.
type Log struct {
	storage *storage.Log
	fs      vfs.FS
	dir     string
	// meta is raft-meta open for appending. The write side writes it, and
	// Sync its Synced records, each holding metaWriteMu for the write; Sync
	// fsyncs it, possibly concurrently.
	meta        vfs.File
	metaWriteMu sync.Mutex

	mu   sync.RWMutex
	book *book
	// cache holds the entries appended last (cache.go); the write side
	// changes it with book.
	cache entryCache
	// last is the index of the last entry (the snapshot index when there
	// is none above it).
	last uint64
	// metaWritten is the size of raft-meta as written, and metaVital its
	// size after the last record other than a Synced or an Anchor record:
	// the records whose loss would lose entries. See Sync.
	metaWritten, metaVital int64
	// want is the raft-state the next Sync or Checkpoint may write: the
	// hard state set, the applied index and ConfState recorded.
	want State
	// failure is set once a write or sync failed part-way: what is on disk
	// is unknown until a reopen recovers it. It wraps storage.ErrFailed.
	failure error

	// snapshotData is the SetSnapshotData hook.
	snapshotData func(index uint64) ([]byte, error)
	// stagedOnly: RequireStagedData was called.
	stagedOnly bool
	// prepareInstall is the SetInstallPrepare hook.
	prepareInstall func(snap *raftpb.Snapshot) error

	// stagingMu keeps a copy from opening the staging directory (and
	// starting again there) while an install reads it and then removes
	// it: an install's removal would take a newer copy staged meanwhile,
	// whose snapshot then installs without its data (OpenStaging).
	stagingMu sync.Mutex

	// w is the write side's own state (the Raft goroutine only).
	w writer

	// syncMu serializes Sync, Checkpoint and every fsync of raft-meta, and
	// guards the fields below. Lock order: syncMu, then mu.
	syncMu sync.Mutex
	// persisted is the raft-state last written.
	persisted State
	// metaSynced is how much of raft-meta is known synced, and
	// metaGeneration the generation of the file open as meta (replaced by
	// a rewrite).
	metaSynced     int64
	metaGeneration uint32
}

// newLog builds a read-only Log over segments and the bookkeeping read
// from raft-meta, counting forward from the last known position to find
// the last entry. Segments that disagree with the bookkeeping are
// errLogMismatch: cutting them back is recovery's business (Open), not
// this.
func newLog(st *storage.Log, b *book) (*Log, error) {
	pos, ok := b.start(math.MaxUint64)
	if !ok {
		return nil, fmt.Errorf("raftlog: no entry can follow the snapshot at %d", b.snapshot.Index)
	}
	end, err := walkToEnd(b, &batchReader{log: st, readBytes: headerReadBytes}, pos)
	if err != nil {
		return nil, fmt.Errorf("find the last entry: %w", err)
	}
	if end.mismatch != nil {
		return nil, fmt.Errorf("find the last entry: %w", end.mismatch)
	}
	l := &Log{storage: st, book: b, last: end.Index - 1}
	if known := b.lastIndex(); known > l.last {
		return nil, fmt.Errorf("raft-meta knows entry %d, the segments end at entry %d: %w", known, l.last, errLogMismatch)
	}
	return l, nil
}

// FirstIndex is the first entry not compacted into the snapshot.
func (l *Log) FirstIndex() (uint64, error) {
	l.mu.RLock()
	defer l.mu.RUnlock()
	return l.book.snapshot.Index + 1, nil
}

// LastIndex is the index of the last entry.
func (l *Log) LastIndex() (uint64, error) {
	l.mu.RLock()
	defer l.mu.RUnlock()
	return l.last, nil
}

// Term returns the term of entry i, answered from memory: for i in
// [FirstIndex-1, LastIndex]; below, raft.ErrCompacted; above,
// raft.ErrUnavailable (as raft.MemoryStorage answers).
func (l *Log) Term(i uint64) (uint64, error) {
	l.mu.RLock()
	defer l.mu.RUnlock()
	if i > l.last {
		return 0, raft.ErrUnavailable
	}
	term, ok := l.book.term(i)
	if !ok {
		return 0, raft.ErrCompacted
	}
	return term, nil
}

// OffsetOf returns the Kafka offset entry i begins at: a data entry's
// base offset, the offset a non-data entry precedes, and for the entry
// after the last the log end. raft.ErrCompacted at or below the snapshot
// index, raft.ErrUnavailable past the entry after the last.
func (l *Log) OffsetOf(i uint64) (int64, error) {
	l.mu.RLock()
	defer l.mu.RUnlock()
	if i > l.last+1 {
		return 0, fmt.Errorf("offset of entry %d after the last entry %d: %w", i, l.last, raft.ErrUnavailable)
	}
	off, ok, err := offsetOf(l.book, l.headerReader(), i)
	if err != nil {
		return 0, fmt.Errorf("offset of entry %d: %w", i, err)
	}
	if !ok {
		return 0, raft.ErrCompacted
	}
	return off, nil
}

// Entries returns entries [lo, hi): raft.ErrCompacted when lo is at or
// below the snapshot index, raft.ErrUnavailable when the log holds no
// entry above the snapshot or hi is past the entry after the last. It
// stops before the entries' encoded size would exceed maxSize but returns
// at least one (raft's rule). Entries appended since the open come from
// the entry cache while it holds them, each in an Entry of its own whose
// Data the cache shares (no reader changes an entry's Data, as with raft's
// MemoryStorage); the others from the segments, each Data a copy of its
// own, so raft keeping one does not keep the chunk read.
func (l *Log) Entries(lo, hi, maxSize uint64) ([]*raftpb.Entry, error) {
	l.mu.RLock()
	defer l.mu.RUnlock()
	if lo <= l.book.snapshot.Index {
		return nil, raft.ErrCompacted
	}
	if hi > l.last+1 {
		return nil, fmt.Errorf("entries [%d, %d) past the last entry %d: %w", lo, hi, l.last, raft.ErrUnavailable)
	}
	if l.last == l.book.snapshot.Index {
		return nil, raft.ErrUnavailable
	}
	if out, ok := l.cache.entries(lo, hi, maxSize); ok {
		return out, nil
	}
	out := []*raftpb.Entry{}
	var size uint64
	var readErr error
	limited := false
	// Until lo, the count reads chunks for headers only; from lo on, of
	// what is left of maxSize.
	src := l.headerReader()
	_, err := scan(l.book, src, lo, hi, func(e located) bool {
		ent, err := l.entry(src, e)
		if err != nil {
			readErr = err
			return false
		}
		size += uint64(proto.Size(ent))
		if len(out) > 0 && size > maxSize {
			limited = true
			return false
		}
		out = append(out, ent)
		src.readBytes = int(max(1, min(maxSize-min(size, maxSize), entriesReadBytesMax)))
		return true
	})
	if err == nil {
		err = readErr
	}
	if err != nil {
		return nil, fmt.Errorf("entries [%d, %d): %w", lo, hi, err)
	}
	if got := lo + uint64(len(out)); !limited && got < hi {
		return nil, fmt.Errorf("entries [%d, %d): the segments end before entry %d: %w", lo, hi, got, errLogMismatch)
	}
	return out, nil
}

// AppendedData returns the data of entry index as this Log appended it,
// while the entry cache holds it; false otherwise. For a data entry that is
// the batch the segments hold at the entry's place, without reading them:
// planAppend checked the batch began at the log end, storage.Append wrote
// it as given, and a cut, a compaction or a snapshot install drops the
// entry from the cache as it changes the segments there. The slice is
// shared with the cache: callers must not change it.
func (l *Log) AppendedData(index uint64) ([]byte, bool) {
	l.mu.RLock()
	defer l.mu.RUnlock()
	return l.cache.data(index)
}

// entry makes the raft entry of a located one: a non-data entry from
// memory, a data entry from the batch the count just read.
func (l *Log) entry(src *batchReader, e located) (*raftpb.Entry, error) {
	if e.NonData != nil {
		return nonDataEntry(e.NonData), nil
	}
	term, _ := l.book.term(e.Index)
	data, err := src.whole(e.Offset)
	if err != nil {
		return nil, fmt.Errorf("entry %d: %w", e.Index, err)
	}
	return &raftpb.Entry{Term: proto.Uint64(term), Index: proto.Uint64(e.Index), Data: data}, nil
}

// batchReader is the headerSource over a storage.Log: it reads whole
// batches up to readBytes at a time (the first always whole) and parses
// their headers. Entries keeps one per call, with its chunk, so each batch
// is read once, for the count and for its data.
type batchReader struct {
	log *storage.Log
	// readBytes sizes the next chunk.
	readBytes int
	// headers and wholes are the batches of the chunk last read, in offset
	// order; next is the first not yet handed out or passed over.
	parsed []batch.Header
	wholes [][]byte
	next   int
}

// headerReader returns a reader of its own to each call: a batchReader
// keeps the chunk it read, and the Log serves concurrent readers.
func (l *Log) headerReader() *batchReader {
	return &batchReader{log: l.storage, readBytes: headerReadBytes}
}

// headerReadBytes bounds one read of batches for their headers; the first
// batch always comes whole, however large.
const headerReadBytes = 1 << 20

// entriesReadBytesMax bounds one chunk read for Entries, whatever maxSize
// raft passes.
const entriesReadBytesMax = 4 << 20

func (r *batchReader) headers(from int64) ([]batch.Header, error) {
	data, err := readChunk(r.log, from, r.readBytes)
	if err != nil {
		return nil, err
	}
	r.parsed, r.wholes, r.next = r.parsed[:0], r.wholes[:0], 0
	for len(data) > 0 {
		h, err := batch.ParseHeader(data)
		if err != nil {
			return nil, fmt.Errorf("batch header after offset %d: %w", from, err)
		}
		if h.TotalBytes() > len(data) {
			return nil, fmt.Errorf("batch at offset %d: %d of %d bytes read: %w", h.BaseOffset, len(data), h.TotalBytes(), batch.ErrShort)
		}
		r.parsed, r.wholes, data = append(r.parsed, h), append(r.wholes, data[:h.TotalBytes()]), data[h.TotalBytes():]
	}
	return r.parsed, nil
}

// whole returns a checked copy of the batch at offset (raft may keep an
// entry's Data long after the chunk is gone) from the chunk last read.
// Offsets ask in ascending order: the count passes entries below lo by.
func (r *batchReader) whole(offset int64) ([]byte, error) {
	for ; r.next < len(r.wholes); r.next++ {
		if r.parsed[r.next].BaseOffset != offset {
			continue
		}
		whole := r.wholes[r.next]
		r.next++
		if err := batch.CheckCRC(whole); err != nil {
			return nil, fmt.Errorf("batch at offset %d: %w", offset, err)
		}
		return bytes.Clone(whole), nil
	}
	return nil, fmt.Errorf("batch at offset %d not in the chunk read: %w", offset, errLogMismatch)
}

// nonDataEntry is the raft entry kept as raft-meta Entry record e, as
// raft made it: a conf change and a no-op (raft's stand-in for a refused
// conf change) carry their Type, the other normal entries leave it unset,
// so the entry goes back to raft intact and sizes match raft's own
// accounting.
func nonDataEntry(e *Entry) *raftpb.Entry {
	ent := &raftpb.Entry{Term: proto.Uint64(e.Term), Index: proto.Uint64(e.Index)}
	switch e.Kind {
	case KindConfChange:
		ent.Type = raftpb.EntryConfChange.Enum()
	case KindConfChangeV2:
		ent.Type = raftpb.EntryConfChangeV2.Enum()
	case KindNoop:
		ent.Type = raftpb.EntryNormal.Enum()
	}
	if len(e.Data) > 0 {
		ent.Data = append([]byte(nil), e.Data...)
	}
	return ent
}

// readChunk reads whole batches from the one holding offset from, up to
// maxBytes (the first whole), to the log end.
func readChunk(log *storage.Log, from int64, maxBytes int) ([]byte, error) {
	data, err := log.Read(from, maxBytes, log.NextOffset())
	if errors.Is(err, storage.ErrOffsetOutOfRange) {
		// Counting reached an offset the segments do not have.
		return nil, fmt.Errorf("%w: %w", errLogMismatch, err)
	}
	return data, err
}

// Segments returns the partition's segments, for Kafka reads (fetch):
// they also hold the batches below the snapshot (a legacy directory's
// data, data installed out of band), which no entry describes.
func (l *Log) Segments() *storage.Log { return l.storage }
