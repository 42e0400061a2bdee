package streams

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/bloom"
	pebblevfs "github.com/cockroachdb/pebble/v2/vfs"

	"github.com/cairnlog/cairn/env"
)

// formatVersion is stored with the covered offset; an index of another
// version is deleted and rebuilt from the log.
const formatVersion = 1

// Key prefixes. Stream names are length-prefixed so no stream's keys are a
// prefix range of another's.
const (
	prefixCovered  = 'c'
	prefixState    = 's'
	prefixRevision = 'r'
	prefixID       = 'i'
	prefixOffset   = 'o'
	prefixHeld     = 'h'
)

// Index is one partition's stream index, stored in pebble. Reads are safe
// at any time; Commit, Reset and the cleaner's deletions are called under
// the partition's writer lock.
type Index struct {
	db     *pebble.DB
	dir    string
	fs     pebblevfs.FS
	logger *slog.Logger
	clock  env.Clock // the rate limit of pebble's error messages
	next   int64     // offset after the last record the index covers
	// held is the first offset of the oldest transaction open when it was
	// last set (-1: none): the records of a transaction whose marker is
	// not covered yet are held outside the index (Pending), so a replay
	// must read them again from there even when next is past them.
	held int64

	// rw guards db against use after Abandon: readers of other goroutines
	// hold it shared while they use db; Close, Delete, Reset and Abandon
	// hold it exclusively.
	rw        sync.RWMutex
	onFailure func(error)
	failOnce  sync.Once
	failed    atomic.Bool // pebble reported a background error

	// states caches recently written stream states: every append looks its
	// stream up, and hot streams are few.
	statesMu sync.Mutex
	states   map[string]State
}

// statesCached bounds the state cache; past it the cache starts over.
const statesCached = 1 << 16

func (x *Index) cacheStates(c *Change) {
	x.statesMu.Lock()
	defer x.statesMu.Unlock()
	if x.states == nil || len(x.states)+len(c.order) > statesCached {
		x.states = make(map[string]State, len(c.order))
	}
	for _, stream := range c.order {
		x.states[stream] = *c.states[stream]
	}
}

func (x *Index) forgetStates() {
	x.statesMu.Lock()
	defer x.statesMu.Unlock()
	x.states = nil
}

// Options tunes an Index.
type Options struct {
	// FS holds the index's files; nil is the operating system's filesystem.
	// Partitions pass their own filesystem (storage/vfs/pebblefs), so crash
	// and fault tests reach the index as they reach the log.
	FS pebblevfs.FS
	// Cache is shared by the indexes of all partitions; nil gives each its own.
	Cache  *pebble.Cache
	Logger *slog.Logger
	// Clock times the rate limit of pebble's error messages; nil is the
	// wall clock. Partitions pass their env's.
	Clock env.Clock
	// OnFailure is called once, on its own goroutine, when pebble reports
	// a background error (a flush or compaction that failed: disk full,
	// files gone). Pebble retries such work without pause, so the owner
	// should Abandon the index and rebuild it later.
	OnFailure func(error)
}

// ErrClosed is returned by an index that was closed or abandoned.
var ErrClosed = errors.New("stream index closed")

// Open opens (creating if needed) the index in dir. When it covers more than
// logEnd (the log lost a tail it had indexed, after a power cut), or was
// written by another format, it starts over empty. Callers then feed it the
// records from Next() to the log end with Apply and Commit.
func Open(dir string, logEnd int64, opts Options) (*Index, error) {
	logger := opts.Logger
	if logger == nil {
		logger = slog.Default()
	}
	fsys := opts.FS
	if fsys == nil {
		fsys = pebblevfs.Default
	}
	clock := opts.Clock
	if clock == nil {
		clock = env.RealClock()
	}
	x := &Index{dir: dir, fs: fsys, logger: logger, clock: clock, onFailure: opts.OnFailure, held: -1}
	if err := x.open(opts.Cache); err != nil {
		// The index is derived from the log: files a crash or a disk fault
		// left unreadable are rebuilt, not a reason to keep the partition down.
		logger.Warn("stream index cannot be opened; rebuilding it from the log", "dir", dir, "err", err)
		if err := x.Reset(opts.Cache); err != nil {
			return nil, err
		}
		return x, nil
	}
	next, version, err := x.covered()
	if err == nil && version == formatVersion && next <= logEnd {
		x.next = next
		if x.held, err = x.readHeld(); err == nil {
			return x, nil
		}
	}
	if err != nil {
		logger.Warn("stream index unreadable; rebuilding it from the log", "dir", dir, "err", err)
	} else if next > logEnd {
		logger.Warn("stream index is ahead of the log; rebuilding it", "dir", dir, "index_next", next, "log_end", logEnd)
	}
	if err := x.Reset(opts.Cache); err != nil {
		return nil, err
	}
	return x, nil
}

func (x *Index) open(cache *pebble.Cache) error {
	o := &pebble.Options{
		// The log is the write-ahead log: after a crash the index replays it
		// from the covered offset, so pebble's own WAL would only cost syncs.
		DisableWAL:   true,
		MemTableSize: 4 << 20,
		Cache:        cache,
		Logger:       &pebbleLogger{l: x.logger, clock: x.clock},
		EventListener: &pebble.EventListener{BackgroundError: func(err error) {
			x.failed.Store(true)
			x.failOnce.Do(func() {
				x.logger.Error("stream index failed; the partition goes offline until a restart rebuilds the index", "dir", x.dir, "err", err)
				if x.onFailure != nil {
					go x.onFailure(err)
				}
			})
		}},
	}
	// Appends look up ids that are mostly absent: bloom filters answer
	// those without reading blocks.
	for i := range o.Levels {
		o.Levels[i].FilterPolicy = bloom.FilterPolicy(10)
	}
	o.FS = x.fs
	db, err := pebble.Open(x.dir, o)
	if err != nil {
		return fmt.Errorf("open stream index %s: %w", x.dir, err)
	}
	x.db = db
	return nil
}

// Reset empties the index, so it covers nothing.
func (x *Index) Reset(cache *pebble.Cache) error {
	x.rw.Lock()
	defer x.rw.Unlock()
	x.forgetStates()
	if x.db != nil {
		_ = x.db.Close() // about to be removed
		x.db = nil
	}
	if err := x.fs.RemoveAll(x.dir); err != nil {
		return fmt.Errorf("reset stream index %s: %w", x.dir, err)
	}
	x.next, x.held = 0, -1
	return x.open(cache)
}

func (x *Index) covered() (next int64, version int, err error) {
	v, closer, err := x.db.Get([]byte{prefixCovered})
	if errors.Is(err, pebble.ErrNotFound) {
		return 0, formatVersion, nil
	}
	if err != nil {
		return 0, 0, fmt.Errorf("read covered offset: %w", err)
	}
	defer closer.Close()
	if len(v) != 9 {
		return 0, 0, fmt.Errorf("covered offset record of %d bytes", len(v))
	}
	return int64(binary.BigEndian.Uint64(v[1:])), int(v[0]), nil
}

// Next is the offset after the last record the index covers.
func (x *Index) Next() int64 { return x.next }

// Held is the first offset of the oldest transaction that held streams
// when SetHeld was last called, -1 when none did. A replay starts at
// min(Held, Next): the records of transactions whose markers lie at or
// past Next are held again from there (ReplayStart).
func (x *Index) Held() int64 { return x.held }

// ReplayStart is where a replay of the log into the index starts.
func (x *Index) ReplayStart() int64 {
	if x.held >= 0 && x.held < x.next {
		return x.held
	}
	return x.next
}

// SetHeld records first, the first offset of the oldest open transaction
// (-1: none). The partition sets it when a transaction first holds
// streams, before any later commit moves Next past its records, and after
// the commit that ends one: pebble keeps its writes in order, so an index
// recovered with Next past a transaction's records also has a Held no
// later than them.
func (x *Index) SetHeld(first int64) error {
	x.rw.RLock()
	defer x.rw.RUnlock()
	if x.db == nil {
		return ErrClosed
	}
	if first == x.held {
		return nil
	}
	if err := x.db.Set([]byte{prefixHeld}, binary.BigEndian.AppendUint64(nil, uint64(first)), pebble.NoSync); err != nil {
		return fmt.Errorf("stream index: %w", err)
	}
	x.held = first
	return nil
}

func (x *Index) readHeld() (int64, error) {
	v, closer, err := x.db.Get([]byte{prefixHeld})
	if errors.Is(err, pebble.ErrNotFound) {
		return -1, nil
	}
	if err != nil {
		return 0, fmt.Errorf("read held offset: %w", err)
	}
	defer closer.Close()
	if len(v) != 8 {
		return 0, fmt.Errorf("held offset record of %d bytes", len(v))
	}
	return int64(binary.BigEndian.Uint64(v)), nil
}

// Close persists what the index holds and closes it.
func (x *Index) Close() error {
	x.rw.Lock()
	defer x.rw.Unlock()
	if x.db == nil {
		return nil
	}
	// Without a WAL, only flushed data survives; flushing here makes a clean
	// shutdown's next open replay nothing. After a background failure a
	// flush would wait for work that keeps failing.
	var errFlush error
	if !x.failed.Load() {
		errFlush = x.db.Flush()
	}
	errClose := x.db.Close()
	x.db = nil
	if err := errors.Join(errFlush, errClose); err != nil {
		return fmt.Errorf("close stream index %s: %w", x.dir, err)
	}
	return nil
}

// Delete closes the index and removes its files.
func (x *Index) Delete() error {
	x.rw.Lock()
	defer x.rw.Unlock()
	if x.db != nil {
		_ = x.db.Close() // about to be removed
		x.db = nil
	}
	if err := x.fs.RemoveAll(x.dir); err != nil {
		return fmt.Errorf("delete stream index %s: %w", x.dir, err)
	}
	return nil
}

// Abandon closes the index without flushing, after a failure: what it holds
// is not to be trusted, and the next open replays the log. Later calls get
// ErrClosed.
func (x *Index) Abandon() {
	x.rw.Lock()
	defer x.rw.Unlock()
	x.forgetStates()
	if x.db != nil {
		_ = x.db.Close() // stops pebble's retries; its error is the failure already reported
		x.db = nil
	}
}

// NewChange starts a change against the committed index.
func (x *Index) NewChange() *Change { return NewChange(x) }

// Commit stores a change. The records it describes must already be in the log.
func (x *Index) Commit(c *Change) error {
	x.rw.RLock()
	defer x.rw.RUnlock()
	if x.db == nil {
		return ErrClosed
	}
	b := x.db.NewBatch()
	defer b.Close()
	for _, stream := range c.order {
		if err := b.Set(stateKey(stream), encodeState(*c.states[stream]), nil); err != nil {
			return fmt.Errorf("stream index: %w", err)
		}
		for _, e := range c.entries[stream] {
			if err := b.Set(revisionKey(stream, e.Revision), encodeEntry(e), nil); err != nil {
				return fmt.Errorf("stream index: %w", err)
			}
			if e.ID != "" {
				if err := b.Set(idKey(stream, e.ID), binary.AppendUvarint(nil, uint64(e.Revision)), nil); err != nil {
					return fmt.Errorf("stream index: %w", err)
				}
			}
			if err := b.Set(offsetKey(e.Offset), binary.AppendUvarint(nil, uint64(e.Revision)), nil); err != nil {
				return fmt.Errorf("stream index: %w", err)
			}
		}
	}
	next := max(c.next, x.next)
	if err := b.Set([]byte{prefixCovered}, coveredValue(next), nil); err != nil {
		return fmt.Errorf("stream index: %w", err)
	}
	if err := b.Commit(pebble.NoSync); err != nil {
		x.forgetStates()
		return fmt.Errorf("stream index commit: %w", err)
	}
	x.cacheStates(c)
	x.next = next
	return nil
}

// SetNext records that the index covers the log up to next (records that
// touched no stream).
func (x *Index) SetNext(next int64) error {
	x.rw.RLock()
	defer x.rw.RUnlock()
	if x.db == nil {
		return ErrClosed
	}
	if next <= x.next {
		return nil
	}
	if err := x.db.Set([]byte{prefixCovered}, coveredValue(next), pebble.NoSync); err != nil {
		return fmt.Errorf("stream index: %w", err)
	}
	x.next = next
	return nil
}

// State returns a stream's state; a stream never written has NewState().
func (x *Index) State(stream string) (State, error) {
	x.statesMu.Lock()
	st, ok := x.states[stream]
	x.statesMu.Unlock()
	if ok {
		return st, nil
	}
	x.rw.RLock()
	defer x.rw.RUnlock()
	if x.db == nil {
		return State{}, ErrClosed
	}
	v, closer, err := x.db.Get(stateKey(stream))
	if errors.Is(err, pebble.ErrNotFound) {
		return NewState(), nil
	}
	if err != nil {
		return State{}, fmt.Errorf("stream index: state of %q: %w", stream, err)
	}
	defer closer.Close()
	st, err = decodeState(v)
	if err != nil {
		return State{}, fmt.Errorf("stream index: state of %q: %w", stream, err)
	}
	return st, nil
}

// RevisionOfID returns the revision of the event with id in stream.
func (x *Index) RevisionOfID(stream, id string) (int64, bool, error) {
	x.rw.RLock()
	defer x.rw.RUnlock()
	if x.db == nil {
		return -1, false, ErrClosed
	}
	v, closer, err := x.db.Get(idKey(stream, id))
	if errors.Is(err, pebble.ErrNotFound) {
		return -1, false, nil
	}
	if err != nil {
		return -1, false, fmt.Errorf("stream index: id %s of %q: %w", id, stream, err)
	}
	defer closer.Close()
	rev, n := binary.Uvarint(v)
	if n <= 0 {
		return -1, false, fmt.Errorf("stream index: id %s of %q: bad value", id, stream)
	}
	return int64(rev), true, nil
}

// RevisionAt returns the revision of the event at offset, if the record
// there is an event the index lists.
func (x *Index) RevisionAt(offset int64) (int64, bool, error) {
	x.rw.RLock()
	defer x.rw.RUnlock()
	if x.db == nil {
		return -1, false, ErrClosed
	}
	v, closer, err := x.db.Get(offsetKey(offset))
	if errors.Is(err, pebble.ErrNotFound) {
		return -1, false, nil
	}
	if err != nil {
		return -1, false, fmt.Errorf("stream index: offset %d: %w", offset, err)
	}
	defer closer.Close()
	rev, n := binary.Uvarint(v)
	if n <= 0 {
		return -1, false, fmt.Errorf("stream index: offset %d: bad value", offset)
	}
	return int64(rev), true, nil
}

// Entry returns the event at rev of stream.
func (x *Index) Entry(stream string, rev int64) (Entry, bool, error) {
	x.rw.RLock()
	defer x.rw.RUnlock()
	if x.db == nil {
		return Entry{}, false, ErrClosed
	}
	v, closer, err := x.db.Get(revisionKey(stream, rev))
	if errors.Is(err, pebble.ErrNotFound) {
		return Entry{}, false, nil
	}
	if err != nil {
		return Entry{}, false, fmt.Errorf("stream index: %q revision %d: %w", stream, rev, err)
	}
	defer closer.Close()
	e, err := decodeEntry(rev, v)
	return e, err == nil, err
}

// Entries returns up to max events of stream starting at revision from,
// ascending or (backwards) descending. Events the cleaner removed are absent.
func (x *Index) Entries(stream string, from int64, backwards bool, max int) ([]Entry, error) {
	x.rw.RLock()
	defer x.rw.RUnlock()
	if x.db == nil {
		return nil, ErrClosed
	}
	return x.entries(stream, from, backwards, max)
}

func (x *Index) entries(stream string, from int64, backwards bool, max int) ([]Entry, error) {
	lower, upper := revisionKey(stream, 0), revisionKey(stream, from+1)
	if !backwards {
		lower, upper = revisionKey(stream, from), streamUpper(prefixRevision, stream)
	}
	it, err := x.db.NewIter(&pebble.IterOptions{LowerBound: lower, UpperBound: upper})
	if err != nil {
		return nil, fmt.Errorf("stream index: read %q: %w", stream, err)
	}
	defer it.Close()
	var out []Entry
	valid := it.First()
	if backwards {
		valid = it.Last()
	}
	for ; valid && len(out) < max; valid = step(it, backwards) {
		key := it.Key()
		rev := int64(binary.BigEndian.Uint64(key[len(key)-8:]))
		e, err := decodeEntry(rev, it.Value())
		if err != nil {
			return nil, fmt.Errorf("stream index: read %q: %w", stream, err)
		}
		out = append(out, e)
	}
	if err := it.Error(); err != nil {
		return nil, fmt.Errorf("stream index: read %q: %w", stream, err)
	}
	return out, nil
}

func step(it *pebble.Iterator, backwards bool) bool {
	if backwards {
		return it.Prev()
	}
	return it.Next()
}

// EachState calls fn for every stream with a state, in key order, until fn
// returns false.
func (x *Index) EachState(fn func(stream string, st State) bool) error {
	x.rw.RLock()
	defer x.rw.RUnlock()
	if x.db == nil {
		return ErrClosed
	}
	it, err := x.db.NewIter(&pebble.IterOptions{LowerBound: []byte{prefixState}, UpperBound: []byte{prefixState + 1}})
	if err != nil {
		return fmt.Errorf("stream index: %w", err)
	}
	defer it.Close()
	for valid := it.First(); valid; valid = it.Next() {
		st, err := decodeState(it.Value())
		if err != nil {
			return fmt.Errorf("stream index: state of %q: %w", it.Key()[1:], err)
		}
		if !fn(string(it.Key()[1:]), st) {
			break
		}
	}
	return it.Error()
}

// DeleteBelow drops up to stepMax of stream's lowest entries below revision
// rev (the cleaner removed their records), each with its id and offset keys,
// in one batch, and reports whether none is left below rev. Callers repeat
// it until done, so each step's memory and time stay bounded (the cleaner
// takes the writer lock for one step at a time). It keeps no state between
// steps: an entry is removed together with its keys, so after a restart the
// entries still below the cut are listed as before, the next cleaner pass
// finds them dead again and the deletion resumes where it stopped.
func (x *Index) DeleteBelow(stream string, rev int64, stepMax int) (done bool, err error) {
	if stepMax < 1 {
		return false, fmt.Errorf("stream index: delete below %d of %q: step of %d entries", rev, stream, stepMax)
	}
	x.rw.RLock()
	defer x.rw.RUnlock()
	if x.db == nil {
		return false, ErrClosed
	}
	entries, err := x.entries(stream, 0, false, stepMax)
	if err != nil {
		return false, err
	}
	b := x.db.NewBatch()
	defer b.Close()
	done = len(entries) < stepMax
	deleted := 0
	for _, e := range entries {
		if e.Revision >= rev {
			done = true
			break
		}
		if err := deleteKeys(b, stream, e); err != nil {
			return false, fmt.Errorf("stream index: delete below %d of %q: %w", rev, stream, err)
		}
		deleted++
	}
	// One range tombstone for the entries, so the next step's listing from
	// revision 0 skips them in one seek instead of stepping over a
	// tombstone per deleted entry.
	if deleted > 0 {
		last := entries[deleted-1].Revision
		if err := b.DeleteRange(revisionKey(stream, 0), revisionKey(stream, last+1), nil); err != nil {
			return false, fmt.Errorf("stream index: delete below %d of %q: %w", rev, stream, err)
		}
	}
	if err := b.Commit(pebble.NoSync); err != nil {
		return false, fmt.Errorf("stream index: delete below %d of %q: %w", rev, stream, err)
	}
	return done, nil
}

// deleteKeys adds to b the deletion of the keys that lead to an entry.
func deleteKeys(b *pebble.Batch, stream string, e Entry) error {
	if e.ID != "" {
		if err := b.Delete(idKey(stream, e.ID), nil); err != nil {
			return err
		}
	}
	return b.Delete(offsetKey(e.Offset), nil)
}

func streamPrefix(prefix byte, stream string) []byte {
	k := make([]byte, 0, 1+binary.MaxVarintLen32+len(stream)+8)
	k = append(k, prefix)
	k = binary.AppendUvarint(k, uint64(len(stream)))
	return append(k, stream...)
}

// streamUpper is the first key after every key of stream under prefix.
func streamUpper(prefix byte, stream string) []byte {
	k := streamPrefix(prefix, stream)
	return append(k, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff)
}

func revisionKey(stream string, rev int64) []byte {
	return binary.BigEndian.AppendUint64(streamPrefix(prefixRevision, stream), uint64(rev))
}

func idKey(stream, id string) []byte {
	return append(streamPrefix(prefixID, stream), id...)
}

func offsetKey(offset int64) []byte {
	return binary.BigEndian.AppendUint64([]byte{prefixOffset}, uint64(offset))
}

func stateKey(stream string) []byte {
	return append([]byte{prefixState}, stream...)
}

func coveredValue(next int64) []byte {
	return binary.BigEndian.AppendUint64([]byte{formatVersion}, uint64(next))
}

func encodeEntry(e Entry) []byte {
	v := binary.AppendUvarint(nil, uint64(e.Offset))
	v = binary.AppendVarint(v, e.TimestampMs)
	return append(v, e.ID...)
}

func decodeEntry(rev int64, v []byte) (Entry, error) {
	off, n := binary.Uvarint(v)
	if n <= 0 {
		return Entry{}, errors.New("bad entry")
	}
	ts, m := binary.Varint(v[n:])
	if m <= 0 {
		return Entry{}, errors.New("bad entry")
	}
	return Entry{Revision: rev, Offset: int64(off), TimestampMs: ts, ID: string(v[n+m:])}, nil
}

const (
	flagSoftDeleted = 1 << iota
	flagHardDeleted
)

func encodeState(st State) []byte {
	var flags uint64
	if st.SoftDeleted {
		flags |= flagSoftDeleted
	}
	if st.HardDeleted {
		flags |= flagHardDeleted
	}
	v := []byte{formatVersion}
	for _, f := range []int64{st.LastRevision, st.LastOffset, st.Metadata.MaxCount, st.Metadata.MaxAgeMs, st.Metadata.TruncateBefore} {
		v = binary.AppendVarint(v, f)
	}
	return binary.AppendUvarint(v, flags)
}

func decodeState(v []byte) (State, error) {
	r := bytes.NewReader(v)
	if version, err := r.ReadByte(); err != nil || version != formatVersion {
		return State{}, errors.New("bad state version")
	}
	var st State
	for _, f := range []*int64{&st.LastRevision, &st.LastOffset, &st.Metadata.MaxCount, &st.Metadata.MaxAgeMs, &st.Metadata.TruncateBefore} {
		x, err := binary.ReadVarint(r)
		if err != nil {
			return State{}, errors.New("bad state")
		}
		*f = x
	}
	flags, err := binary.ReadUvarint(r)
	if err != nil {
		return State{}, errors.New("bad state")
	}
	st.SoftDeleted = flags&flagSoftDeleted != 0
	st.HardDeleted = flags&flagHardDeleted != 0
	return st, nil
}

// pebbleLogger sends pebble's messages to slog: routine flush and
// compaction notices at debug level, errors at most once a second (pebble
// retries failed work without pause, and would flood the log).
type pebbleLogger struct {
	l          *slog.Logger
	clock      env.Clock
	mu         sync.Mutex
	last       time.Time
	suppressed int
}

func (p *pebbleLogger) Infof(format string, args ...any) {
	p.l.Debug("stream index: " + fmt.Sprintf(format, args...))
}

func (p *pebbleLogger) Errorf(format string, args ...any) {
	p.mu.Lock()
	now := p.clock.Now()
	if now.Sub(p.last) < time.Second {
		p.suppressed++
		p.mu.Unlock()
		return
	}
	suppressed := p.suppressed
	p.last, p.suppressed = now, 0
	p.mu.Unlock()
	p.l.Error("stream index: "+fmt.Sprintf(format, args...), "similar_errors_suppressed", suppressed)
}

func (p *pebbleLogger) Fatalf(format string, args ...any) {
	p.l.Error("stream index: fatal: " + fmt.Sprintf(format, args...))
	panic(fmt.Sprintf(format, args...))
}
